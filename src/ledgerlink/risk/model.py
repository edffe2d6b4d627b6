"""The scorer: a logistic regression read from a JSON artifact, explained feature by feature.

    score = sigmoid(intercept + sum_i weight_i * (x_i - mean_i) / scale_i)

Each term ``weight_i * (x_i - mean_i) / scale_i`` is that feature's contribution in log-odds,
measured from the average training payment (where every term is 0). The terms add up to the
score exactly, so "the features that raised this score most" is not an approximation: it is the
largest terms. Nothing here needs numpy; scoring one payment takes microseconds.

The artifact (``model.json`` beside this file, written by ``benchmarks/train_risk_model.py``) is
plain JSON: it is read, never executed, so a model file cannot run code the way a pickle can.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ledgerlink.model import RiskFactor, RiskScore
from ledgerlink.risk.features import FEATURE_NAMES, FeatureValue

ARTIFACT = "model.json"


class RiskModelError(ValueError):
    """A model artifact that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Weight:
    feature: str
    mean: float
    scale: float
    weight: float


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class RiskModel:
    def __init__(self, *, version: str, intercept: float, weights: tuple[Weight, ...],
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.version = version
        self.intercept = intercept
        self.weights = weights
        self.metadata = dict(metadata or {})

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "risk model") -> RiskModel:
        if not isinstance(doc, dict):
            raise RiskModelError(f"{source}: must be a JSON object")
        problems: list[str] = []
        version = doc.get("version")
        if not isinstance(version, str) or not version:
            problems.append("version: missing")
        intercept = doc.get("intercept")
        if not isinstance(intercept, int | float) or isinstance(intercept, bool):
            problems.append("intercept: must be a number")
        by_name: dict[str, Weight] = {}
        features = doc.get("features")
        if not isinstance(features, list):
            problems.append("features: must be a list")
            features = []
        for index, item in enumerate(features):
            try:
                weight = Weight(str(item["name"]), float(item["mean"]), float(item["scale"]), float(item["weight"]))
            except (KeyError, TypeError, ValueError):
                problems.append(f"features[{index}]: needs name, mean, scale and weight (numbers)")
                continue
            if weight.scale <= 0 or not all(map(math.isfinite, (weight.mean, weight.scale, weight.weight))):
                problems.append(f"features[{index}] ({weight.feature}): scale must be > 0 and numbers finite")
            by_name[weight.feature] = weight
        missing = [name for name in FEATURE_NAMES if name not in by_name]
        unknown = [name for name in by_name if name not in FEATURE_NAMES]
        if missing:
            problems.append(f"features: missing {', '.join(missing)}")
        if unknown:
            problems.append(f"features: unknown to this version of ledgerlink: {', '.join(unknown)}")
        if problems:
            raise RiskModelError(f"{source}: " + "; ".join(problems))
        assert isinstance(version, str) and isinstance(intercept, int | float)
        return cls(version=version, intercept=float(intercept),
                   weights=tuple(by_name[name] for name in FEATURE_NAMES),
                   metadata={k: v for k, v in doc.items() if k not in ("features", "intercept", "version")})

    @classmethod
    def load(cls, path: str | Path) -> RiskModel:
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise RiskModelError(f"{path}: cannot read the model ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise RiskModelError(f"{path}: not JSON ({exc})") from None
        return cls.from_dict(doc, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "intercept": self.intercept,
                "features": [{"name": w.feature, "mean": w.mean, "scale": w.scale, "weight": w.weight}
                             for w in self.weights], **self.metadata}

    def contributions(self, values: Mapping[str, FeatureValue]) -> list[float]:
        return [w.weight * (values[w.feature].value - w.mean) / w.scale for w in self.weights]

    def probability(self, values: Mapping[str, FeatureValue]) -> float:
        return _sigmoid(self.intercept + sum(self.contributions(values)))

    def score(self, values: Mapping[str, FeatureValue], *, top: int = 3) -> RiskScore:
        """The score with the ``top`` features that raised it most (only those that raised it)."""
        terms = self.contributions(values)
        probability = _sigmoid(self.intercept + sum(terms))
        ranked = sorted(zip(self.weights, terms, strict=True), key=lambda pair: pair[1], reverse=True)
        factors = tuple(
            RiskFactor(feature=w.feature, value=round(values[w.feature].value, 4), contribution=round(term, 4),
                       description=values[w.feature].description)
            for w, term in ranked[:top] if term > 0
        )
        return RiskScore(score=round(probability, 6), model=self.version, factors=factors)


@cache
def default_model() -> RiskModel:
    """The model shipped with ledgerlink (``model.json`` in this package)."""
    text = resources.files("ledgerlink.risk").joinpath(ARTIFACT).read_text()
    return RiskModel.from_dict(json.loads(text), source=f"ledgerlink/risk/{ARTIFACT}")
