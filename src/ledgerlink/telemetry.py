"""Logs and metrics shared by the service, the runtime and the CLI.

Logs are JSON lines. Every record passes a filter that redacts card numbers
from the message and its arguments before any handler sees it, so a PAN that
slips into an exception text still never reaches a log file.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson
from prometheus_client import Counter, Gauge, Histogram

from ledgerlink.model.cardnumbers import redact_card_numbers

WEBHOOKS = Counter("ledgerlink_webhooks_total", "Webhook requests by source and result", ["source", "result"])
INTAKE_BATCH = Histogram("ledgerlink_intake_batch_size", "Events per intake group commit",
                         buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
INTAKE_COMMIT = Histogram("ledgerlink_intake_commit_seconds", "Time of one intake group commit")
EVENTS = Counter("ledgerlink_events_total", "Events finished by source and outcome", ["source", "outcome"])
EVENT_LATENCY = Histogram("ledgerlink_event_latency_seconds", "Webhook receipt to back-office commit",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
RETRIES = Counter("ledgerlink_event_retries_total", "Event attempts that failed and were scheduled again", ["source"])
DEAD_LETTERS = Counter("ledgerlink_dead_letters_total", "Events moved to the dead-letter list", ["source"])
LEASED_BUCKETS = Gauge("ledgerlink_leased_buckets", "Partitions buckets this process owns")
IN_FLIGHT = Gauge("ledgerlink_events_in_flight", "Events being processed by this process")


class RedactingFilter(logging.Filter):
    """Replaces card numbers in a record's message (after formatting its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_card_numbers(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_card_numbers(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key.startswith("ll_"):
                entry[key[3:]] = value
        if record.exc_text:
            entry["exc"] = record.exc_text
        return redact_card_numbers(orjson.dumps(entry, default=str).decode())


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Install the redacting filter and formatter on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ledgerlink", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._ledgerlink = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add the redacting filter to every handler of ``logger`` (root by default), e.g. pytest's capture."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
