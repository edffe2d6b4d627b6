"""Train the risk model, evaluate it, and write the artifact and its report.

    .venv/bin/python benchmarks/train_risk_model.py            # writes src/ledgerlink/risk/model.json
                                                                #    and docs/risk-model.md
    .venv/bin/python benchmarks/train_risk_model.py --check    # retrains; fails if the committed artifact differs

Reproducible: the labelled payments come from ``ledgerlink.risk.synthetic.generate(seed, n)``, the
split and both learners are seeded, and the features are computed by the same
``ledgerlink.risk.features.extract`` the engine scores with. scikit-learn is needed here only
(``pip install -e '.[train]'``); the engine scores the artifact in pure Python.

What it reports, on a held-out quarter of the payments:

- ROC AUC of the shipped logistic regression (scored through ``RiskModel``, the engine's own scorer)
  and, for comparison, of a gradient-boosted model and of the fraud screen's own score;
- precision at the review-queue size: k is the number of held-out payments the fraud screen sent to
  review, so "the k payments our model scores highest" is the same workload for the same team.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "src" / "ledgerlink" / "risk" / "model.json"
REPORT = ROOT / "docs" / "risk-model.md"
SEED = 20261
SAMPLES = 60_000
TEST_SHARE = 0.25
C = 1.0
TOLERANCE = 1e-6


def dataset(seed: int, samples: int) -> tuple[list[list[float]], list[int], list[Any]]:
    from ledgerlink.risk.features import extract, vector
    from ledgerlink.risk.synthetic import SETTINGS, generate

    rows = generate(seed, samples)
    features = [vector(extract(s.facts, s.history, SETTINGS)) for s in rows]
    return features, [int(s.fraud) for s in rows], rows


def precision_at(scores: list[float], labels: list[int], k: int) -> float:
    if k <= 0:
        return 0.0
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return sum(labels[i] for i in ranked) / k


def train(seed: int = SEED, samples: int = SAMPLES, *, compare: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The artifact (as written to model.json) and the evaluation report."""
    import numpy as np
    import sklearn
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from ledgerlink.risk.features import FEATURE_NAMES, FEATURES, extract
    from ledgerlink.risk.model import RiskModel
    from ledgerlink.risk.synthetic import REVIEW_CODE, SETTINGS

    x_all, y_all, rows = dataset(seed, samples)
    x = np.asarray(x_all, dtype=float)
    y = np.asarray(y_all, dtype=int)
    index = np.arange(len(y))
    train_idx, test_idx = train_test_split(index, test_size=TEST_SHARE, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(x[train_idx])
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    learner = LogisticRegression(C=C, max_iter=5000, solver="lbfgs")
    learner.fit((x[train_idx] - scaler.mean_) / scale, y[train_idx])

    weights = [{"name": name, "mean": round(float(m), 10), "scale": round(float(s), 10), "weight": round(float(w), 10)}
               for name, m, s, w in zip(FEATURE_NAMES, scaler.mean_, scale, learner.coef_[0], strict=True)]
    body = {"intercept": round(float(learner.intercept_[0]), 10), "features": weights}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    y_test = [int(v) for v in y[test_idx]]
    artifact: dict[str, Any] = {
        "name": "ledgerlink-risk",
        "version": f"lr-{digest}",
        **body,
        "training": {"generator": "ledgerlink.risk.synthetic", "seed": seed, "samples": samples,
                     "fraud_rate": round(float(y.mean()), 4), "test_share": TEST_SHARE, "learner":
                     f"LogisticRegression(C={C}, lbfgs) on standardised features, scikit-learn {sklearn.__version__}"},
    }

    # Scored through the engine's own scorer, so the figures are those of what ships.
    model = RiskModel.from_dict(artifact)
    test_rows = [rows[i] for i in test_idx]
    shipped = [model.probability(extract(s.facts, s.history, SETTINGS)) for s in test_rows]
    reference = learner.predict_proba((x[test_idx] - scaler.mean_) / scale)[:, 1]
    drift = max(abs(a - b) for a, b in zip(shipped, reference, strict=True))
    if drift > 1e-9:
        raise SystemExit(f"the pure-Python scorer disagrees with scikit-learn by {drift}")
    screen = [(s.facts.gateway_score if s.facts.gateway_score is not None else -1) for s in test_rows]
    flagged = [int(REVIEW_CODE in s.facts.reason_codes) for s in test_rows]
    k = sum(flagged)
    flagged_fraud = sum(f and label for f, label in zip(flagged, y_test, strict=True))
    fraud_total = sum(y_test)
    report: dict[str, Any] = {
        "test_payments": len(y_test), "test_fraud": fraud_total,
        "roc_auc": round(float(roc_auc_score(y_test, shipped)), 4),
        "screen_score_roc_auc": round(float(roc_auc_score(y_test, screen)), 4),
        "queue_size": k,
        "precision_at_queue": round(precision_at(shipped, y_test, k), 4),
        "recall_at_queue": round(precision_at(shipped, y_test, k) * k / max(fraud_total, 1), 4),
        "screen_queue_precision": round(flagged_fraud / max(k, 1), 4),
        "screen_queue_recall": round(flagged_fraud / max(fraud_total, 1), 4),
        "precision_at": {str(n): round(precision_at(shipped, y_test, n), 4) for n in (50, 100, 250, 500)},
        "weights": sorted(((w["name"], w["weight"]) for w in weights), key=lambda p: -abs(p[1])),
        "meanings": {f.name: f.meaning for f in FEATURES},
        "scenarios": _scenario_recall(test_rows, shipped, k),
    }
    if compare:
        boosted = HistGradientBoostingClassifier(random_state=seed, max_iter=200, learning_rate=0.1)
        boosted.fit(x[train_idx], y[train_idx])
        report["boosted_roc_auc"] = round(float(roc_auc_score(y_test, boosted.predict_proba(x[test_idx])[:, 1])), 4)
    artifact["evaluation"] = {key: report[key] for key in (
        "test_payments", "test_fraud", "roc_auc", "queue_size", "precision_at_queue", "recall_at_queue",
        "screen_queue_precision", "screen_score_roc_auc")}
    return artifact, report


def _scenario_recall(rows: list[Any], scores: list[float], k: int) -> dict[str, str]:
    """Of each kind of fraud in the test set, how much lands in the top-k queue."""
    cutoff = sorted(scores, reverse=True)[k - 1] if k else math.inf
    found: dict[str, list[int]] = {}
    for sample, score in zip(rows, scores, strict=True):
        if sample.fraud:
            hits = found.setdefault(sample.scenario, [0, 0])
            hits[0] += score >= cutoff
            hits[1] += 1
    return {name: f"{hit}/{total}" for name, (hit, total) in sorted(found.items())}


def markdown(artifact: dict[str, Any], report: dict[str, Any]) -> str:
    t = artifact["training"]
    lines = [
        "# The risk model",
        "",
        "Every authorisation the engine sees gets a fraud-risk score from a model trained here, on this",
        "machine, with no download: a logistic regression over features known at authorisation",
        "(`src/ledgerlink/risk/features.py`). Its weights ship as JSON (`src/ledgerlink/risk/model.json`) and",
        "the engine scores in pure Python, so a score splits exactly into per-feature contributions: the",
        "review queue shows the features that raised each score most, and is ordered by the score.",
        "",
        "This page is written by `benchmarks/train_risk_model.py`; run it again to reproduce every figure",
        "(`--check` verifies that the committed artifact is what the script produces).",
        "",
        "## Data",
        "",
        f"{t['samples']:,} labelled payments from `ledgerlink.risk.synthetic.generate(seed={t['seed']})`",
        f"(fraud rate {t['fraud_rate']:.1%}): genuine shoppers, stolen cards, card testing and friendly fraud",
        "(see the module's docstring). A stratified quarter is held out for evaluation.",
        f"Learner: {t['learner']}.",
        "",
        "These are generated payments, not real ones: the figures show the pipeline works and how the",
        "features rank; retrain on your own labelled history (chargebacks and review outcomes) before",
        "trusting the scores as probabilities.",
        "",
        "## Evaluation (held-out payments)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| payments / fraud | {report['test_payments']:,} / {report['test_fraud']:,} |",
        f"| ROC AUC, shipped model (scored by the engine's scorer) | **{report['roc_auc']:.4f}** |",
    ]
    if "boosted_roc_auc" in report:
        lines.append(f"| ROC AUC, gradient-boosted trees on the same features (not shipped) | {report['boosted_roc_auc']:.4f} |")
    lines += [
        f"| ROC AUC, the fraud screen's own score alone | {report['screen_score_roc_auc']:.4f} |",
        f"| review-queue size k (payments the fraud screen sent to review) | {report['queue_size']:,} |",
        f"| precision at k, model's top k | **{report['precision_at_queue']:.4f}** |",
        f"| recall at k, model's top k | {report['recall_at_queue']:.4f} |",
        f"| precision of the fraud screen's own review queue (same k) | {report['screen_queue_precision']:.4f} |",
        f"| recall of the fraud screen's own review queue | {report['screen_queue_recall']:.4f} |",
        "",
        "Precision at other queue sizes: " + ", ".join(f"@{n} {v:.4f}" for n, v in report["precision_at"].items())
        + ".",
        "",
        "Fraud found in the model's top k, by kind: " + ", ".join(f"{n} {v}" for n, v in report["scenarios"].items())
        + " (friendly fraud looks like a genuine purchase at authorisation; no model can see it).",
        "",
        "## Weights (standardised features, log-odds per standard deviation)",
        "",
        "| feature | weight | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {weight:+.3f} | {report['meanings'][name]} |" for name, weight in report["weights"]]
    lines += [
        "",
        f"Model version `{artifact['version']}` (a digest of its weights; every score records it).",
        "",
        "## Using it",
        "",
        "`flows.fraud_review` in an integration file: `home_countries`, `watch_countries` and `timezone` set",
        "what the country and time-of-day features compare with; `model` points at another artifact of the",
        "same shape (for a model retrained on your own data); `top_factors` is how many contributions a case",
        "shows. Why a linear model: its contributions are exact and readable, it needs no numerical library",
        "at run time, and on these features the boosted trees gain little (see the table).",
        "",
    ]
    return "\n".join(lines)


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("version") == b.get("version"):
        return True
    if abs(a["intercept"] - b["intercept"]) > TOLERANCE:
        return False
    return all(x["name"] == y["name"] and all(abs(x[k] - y[k]) <= TOLERANCE for k in ("mean", "scale", "weight"))
               for x, y in zip(a["features"], b["features"], strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--artifact", type=Path, default=ARTIFACT)
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--check", action="store_true", help="retrain and compare with the committed artifact")
    args = parser.parse_args(argv)
    artifact, report = train(args.seed, args.samples, compare=not args.check)
    if args.check:
        committed = json.loads(args.artifact.read_text())
        if not same(committed, artifact):
            print(f"{args.artifact} differs from what the script produces ({artifact['version']})", file=sys.stderr)
            return 1
        print(f"ok: {args.artifact} reproduces ({committed['version']}); ROC AUC {report['roc_auc']}")
        return 0
    args.artifact.write_text(json.dumps(artifact, indent=2) + "\n")
    args.report.write_text(markdown(artifact, report))
    print(json.dumps({k: report[k] for k in ("roc_auc", "boosted_roc_auc", "screen_score_roc_auc", "queue_size",
                                             "precision_at_queue", "screen_queue_precision", "scenarios")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
