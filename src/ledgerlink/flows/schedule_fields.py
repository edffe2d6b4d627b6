"""The two kinds of schedule field an integration file has: a cron expression and an IANA time zone.

Every flow's settings and the scheduler take them through these types, so a bad value is refused when the file
is loaded, with the field named (a time zone lookup raises ``KeyError``, which pydantic would not turn into a
validation error on its own).
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator


def _cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a valid cron expression (e.g. '30 6 * * *')")
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
    return value


CronExpression = Annotated[str, AfterValidator(_cron)]
TimeZoneName = Annotated[str, AfterValidator(_zone)]
