"""Logs and metrics shared by the service, the runtime and the CLI.

Logs are JSON lines. Card numbers are redacted from every log record, whatever
logger it comes from and whatever handler writes it (ours, uvicorn's access and
error loggers, pytest's capture): importing this module installs a log record
factory that redacts the message, its arguments, the traceback and the stack
when the record is made, before any filter or handler sees it. The handler that
``configure_logging`` installs adds a filter for ``extra`` fields, and its JSON
formatter redacts the final line once more.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import orjson
from prometheus_client import Counter, Gauge, Histogram

from ledgerlink.model.cardnumbers import contains_card_number, redact_card_numbers

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
# Flow control (runtime/flow_control.py, runtime/backpressure.py). An endpoint is "<system>/<operation>".
BREAKER_STATE = Gauge("ledgerlink_breaker_state", "Circuit breaker per endpoint: 0 closed, 1 half-open, 2 open",
                      ["endpoint"])
BREAKER_TRANSITIONS = Counter("ledgerlink_breaker_transitions_total",
                              "Breaker changes this process made, by endpoint and new state", ["endpoint", "state"])
CALLS_HELD = Counter("ledgerlink_calls_held_total", "Requests held back unsent, by endpoint and reason "
                     "(circuit_open, paused, throttled)", ["endpoint", "reason"])
RATE_LIMITED = Counter("ledgerlink_rate_limited_total", "429 answers from external systems, by endpoint", ["endpoint"])
RATE_LIMIT_WAIT = Histogram("ledgerlink_rate_limit_wait_seconds", "Time a request waited for a rate-limit token",
                            ["limit"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
EVENTS_DEFERRED = Counter("ledgerlink_events_deferred_total",
                          "Events sent back to wait without counting an attempt, by source and reason",
                          ["source", "reason"])
BACKLOG = Gauge("ledgerlink_backlog_events", "Unfinished events (waiting, pending, running)")
DEAD_LETTER_SIZE = Gauge("ledgerlink_dead_letter_events", "Events on the dead-letter list")
BACKPRESSURE = Gauge("ledgerlink_backpressure_alert", "1 while a back-pressure threshold is passed", ["reason"])
BACKPRESSURE_ALERTS = Counter("ledgerlink_backpressure_alerts_total", "Times a back-pressure threshold was passed",
                              ["reason"])


_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _holds_card_number(text: str) -> bool:
    """Also true for a URL-encoded one (``4111+1111+…``, ``%20``): access logs and HTTP clients log URLs."""
    if contains_card_number(text):
        return True
    return ("%" in text or "+" in text) and contains_card_number(unquote_plus(text))


def redact_text(text: str) -> str:
    """``text`` without card numbers, URL-encoded ones included (then the text is shown decoded)."""
    text = redact_card_numbers(text)
    if ("%" in text or "+" in text) and contains_card_number(unquote_plus(text)):
        return redact_card_numbers(unquote_plus(text))
    return text


def _redact_argument(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value) if _holds_card_number(value) else value
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", "replace")
        return redact_text(text) if _holds_card_number(text) else value
    if isinstance(value, (int, float)) or value is None:
        return value
    text = str(value)  # an object shown with %s (an httpx URL, an exception)
    return redact_text(text) if _holds_card_number(text) else value


def redact_record(record: logging.LogRecord) -> None:
    """Remove card numbers from a record in place: message, arguments, traceback, stack and extras.

    Arguments are redacted one by one and kept, so formatters that read them (uvicorn's access log takes
    the client, method and path from ``args``) still work; only when the formatted message would still
    hold a card number (one split across arguments, or inside an object's text) is it replaced by its
    redacted text.
    """
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: leave it to the handler to report
        message = None
    if message is not None and _holds_card_number(message):
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_argument(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_argument(v) for k, v in record.args.items()}
        try:
            still = _holds_card_number(record.getMessage())
        except Exception:
            still = True
        if still:
            record.msg = redact_text(message)
            record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRIBUTES and isinstance(value, str) and _holds_card_number(value):
            record.__dict__[key] = redact_text(value)


class _RedactingRecordFactory:
    """Wraps the process's log record factory so every record is redacted when it is made."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        redact_record(record)
        return record


def install_record_redaction() -> None:
    """Make every log record of this process redacted at creation (idempotent)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingRecordFactory):
        logging.setLogRecordFactory(_RedactingRecordFactory(current))


class RedactingFilter(logging.Filter):
    """Redacts a record again at the handler: fields added through ``extra`` are set after the record is made."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
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
        return redact_text(orjson.dumps(entry, default=str).decode())


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Install the redacting filter and formatter on the root logger (idempotent).

    Every command of the CLI (serve, worker, sandbox, demo, reconcile) calls it; uvicorn runs with
    ``log_config=None``, so its ``uvicorn.error`` and ``uvicorn.access`` records reach this handler too.
    """
    install_record_redaction()
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
    install_record_redaction()
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


install_record_redaction()
