"""Card-number detector micro-benchmark: what the PAN checks cost where they run, and how often they misfire.

    .venv/bin/python benchmarks/cardnumbers.py                      # CPU µs per call, best of 9 runs
    .venv/bin/python benchmarks/cardnumbers.py --baseline OLD.py    # the same, against another detector
    .venv/bin/python benchmarks/cardnumbers.py --false-positives    # rates on the generated corpus

Inputs are real: a ``payments.payments.accept`` notification as the Cybersource sandbox sends it (the webhook
edge checks every one: ``body_card_number_fields`` is the whole edge check), a log line, a step journal, a
settlement-report page full of digits. ``--baseline`` loads a detector module from a file (e.g. the previous
version: ``git show HEAD:src/ledgerlink/model/cardnumbers.py > /tmp/old.py``) and times both in turn, which
keeps the comparison fair on a busy machine. ``--false-positives`` runs the corpus of
``tests/model/pan_corpus.py`` (the figures in docs/security.md).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from order_to_cash import sale_template  # noqa: E402

from ledgerlink.model import cardnumbers  # noqa: E402
from ledgerlink.service.webhooks import body_card_number_fields  # noqa: E402


def load_detector(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_cardnumbers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def inputs(webhook: bytes) -> dict[str, str]:
    text = webhook.decode()
    rng = random.Random(7)
    report = "\n".join(
        f"{rng.randrange(10**21, 10**22)},{rng.randrange(10**11, 10**12)},2026-11-21T10:{i % 60:02d}:00Z,"
        f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d},USD,VI,{rng.randint(1000, 9999)}" for i in range(40)
    )
    journal = orjson.dumps({"effects": {f"sl:order:WEB-{i:07d}": f"{rng.randrange(10**5, 10**6)}"
                                        for i in range(8)}, "status": "CAPTURED"}).decode()
    return {
        "webhook": text,
        "webhook with a PAN": text.replace('"code":"TEMPLATE"', '"code":"4111 1111 1111 1111"'),
        "log line": "event cybersource 7093261290346789104953 attempt 2 failed (Rejected: 422 from SL); "
                    "retrying in 1.25s",
        "step journal": journal,
        "report page": report,
    }


def cases(module: Any, texts: dict[str, str]) -> dict[str, tuple[int, Callable[[], object]]]:
    return {
        "webhook body, clean: contains": (len(texts["webhook"]), lambda: module.contains_card_number(texts["webhook"])),
        "webhook body, one PAN: find": (len(texts["webhook with a PAN"]),
                                        lambda: module.find_card_numbers(texts["webhook with a PAN"])),
        "log line: redact": (len(texts["log line"]), lambda: module.redact_card_numbers(texts["log line"])),
        "step journal: contains": (len(texts["step journal"]),
                                   lambda: module.contains_card_number(texts["step journal"])),
        "report page, digit-heavy: contains": (len(texts["report page"]),
                                               lambda: module.contains_card_number(texts["report page"])),
    }


def measure(fn: Callable[[], object], *, repeat: int = 9) -> float:
    timer = timeit.Timer(fn, timer=time.thread_time)  # CPU time: steadier than wall time on a shared machine
    number, _ = timer.autorange()
    return min(timer.repeat(repeat, number)) / number * 1e6


def speed(baseline: Path | None) -> None:
    webhook = orjson.dumps(asyncio.run(sale_template()))
    texts = inputs(webhook)
    current = cases(cardnumbers, texts)
    previous = cases(load_detector(baseline), texts) if baseline else {}
    print(f"{'':40} {'bytes':>6} {'µs':>8}" + (f" {'baseline µs':>12}" if previous else ""))
    edge = measure(lambda: body_card_number_fields(webhook))
    print(f"{'webhook edge check (whole)':40} {len(webhook):6} {edge:8.2f}")
    for name, (size, fn) in current.items():
        best = min(measure(fn) for _ in range(3))
        line = f"{name:40} {size:6} {best:8.2f}"
        if previous:
            line += f" {min(measure(previous[name][1]) for _ in range(3)):12.2f}"
        print(line)


def false_positives() -> None:
    from tests.model.pan_corpus import lookalikes

    corpus = lookalikes(per_category=10_000)
    total = hits = 0
    for name, texts in corpus.items():
        found = [text for text in texts if cardnumbers.contains_card_number(text)]
        total, hits = total + len(texts), hits + len(found)
        print(f"{name:60} {len(found):5} / {len(texts)}  {len(found) / len(texts):7.3%}")
    print(f"{'all':60} {hits:5} / {total}  {hits / total:7.3%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="a detector module file to compare with")
    parser.add_argument("--false-positives", action="store_true", help="rates on the generated corpus")
    args = parser.parse_args()
    if args.false_positives:
        false_positives()
    else:
        speed(args.baseline)


if __name__ == "__main__":
    main()
