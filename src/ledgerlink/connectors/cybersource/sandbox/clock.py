"""The sandbox's business clock: when a transaction happened, which day it settles on, when a dispute opened.

It is separate from the wall clock that request signatures and webhook timestamps
use, because clients sign with their own (real) clocks. Tests pin or advance this
one to build several days of history in milliseconds; by default it follows real
time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(value: datetime) -> str:
    """Cybersource's UTC timestamp text (``2024-03-01T10:15:30Z``)."""
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """The inverse of ``format_time``; also reads any ISO 8601 time with an offset (naive means UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class Clock:
    """Real UTC time, optionally pinned to an instant or shifted by an offset."""

    def __init__(self) -> None:
        self._pinned: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        if self._pinned is not None:
            return self._pinned
        return datetime.now(UTC) + self._offset

    def text(self) -> str:
        return format_time(self.now())

    def today(self) -> date:
        return self.now().date()

    def pin(self, instant: datetime | None) -> None:
        """Stop the clock at ``instant`` (None: follow real time again, without offset)."""
        self._pinned = instant.astimezone(UTC) if instant is not None else None
        if instant is None:
            self._offset = timedelta(0)

    def advance(self, seconds: float) -> None:
        if self._pinned is not None:
            self._pinned += timedelta(seconds=seconds)
        else:
            self._offset += timedelta(seconds=seconds)

    def describe(self) -> dict[str, object]:
        return {"now": self.text(), "pinned": self._pinned is not None,
                "offset_seconds": self._offset.total_seconds()}
