"""When to retry, and how long to wait: one decision table and one backoff rule.

The decision is a table from HTTP status to error class, overridable per
connector. The wait is exponential with full jitter and a cap, and never
shorter than what the server asked for in ``Retry-After``. Randomness comes
from an injectable ``random.Random`` so tests can pin it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from ledgerlink.connectors.kit.errors import (
    AuthenticationFailed,
    Conflict,
    ConnectorError,
    NotFound,
    PermanentError,
    RateLimited,
    Rejected,
    RetryableError,
)

DEFAULT_DECISIONS: Mapping[int, type[ConnectorError]] = {
    400: Rejected,
    401: AuthenticationFailed,
    403: AuthenticationFailed,
    404: NotFound,
    408: RetryableError,
    409: Conflict,
    422: Rejected,
    425: RetryableError,
    429: RateLimited,
    500: RetryableError,
    502: RetryableError,
    503: RetryableError,
    504: RetryableError,
}


@dataclass(frozen=True)
class RetryDecisions:
    """Maps an HTTP status to the error class that says what to do with it."""

    table: Mapping[int, type[ConnectorError]] = field(default_factory=lambda: dict(DEFAULT_DECISIONS))

    def error_class(self, status: int) -> type[ConnectorError]:
        if status in self.table:
            return self.table[status]
        if status >= 500:
            return RetryableError
        return PermanentError

    def with_overrides(self, overrides: Mapping[int, type[ConnectorError]]) -> RetryDecisions:
        return RetryDecisions({**self.table, **overrides})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: wait ~ U(0, min(cap, base * 2^(attempt-1))).

    A server's ``Retry-After`` is a floor the jitter cannot undercut, even above the cap.
    """

    base_seconds: float = 1.0
    cap_seconds: float = 300.0
    max_attempts: int = 8

    def delay(self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(0, attempt - 1)))
        jittered = (rng or random).uniform(0, ceiling)
        if retry_after is not None:
            return max(retry_after, jittered)  # the server knows when it will be ready; never retry sooner
        return jittered

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
