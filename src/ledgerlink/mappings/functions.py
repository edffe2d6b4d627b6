"""The only functions a mapping template may call.

A mapping file is configuration an operator edits, so it must not be able to
run code. Templates reach values by dotted path and pass them through these
whitelisted filters, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ledgerlink.model import normalise


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


def upper(value: Any) -> str:
    return _text(value).upper()


def lower(value: Any) -> str:
    return _text(value).lower()


def strip(value: Any) -> str:
    return _text(value).strip()


def truncate(value: Any, length: str) -> str:
    return _text(value)[: int(length)]


def default(value: Any, fallback: str) -> Any:
    return fallback if value in (None, "", [], ()) else value


def digits(value: Any) -> str:
    return "".join(ch for ch in _text(value) if ch.isdigit())


def join(value: Any, separator: str = ",") -> str:
    if isinstance(value, (list, tuple)):
        return separator.join(_text(v) for v in value)
    return _text(value)


def date_format(value: Any, fmt: str, timezone: str = "UTC") -> str:
    """Format a datetime (converted to ``timezone``) or a date with ``strftime``."""
    if value in (None, ""):
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(ZoneInfo(timezone))
        return value.strftime(fmt)
    if isinstance(value, date):
        return value.strftime(fmt)
    raise ValueError(f"date filter needs a date, got {type(value).__name__}")


def phone(value: Any, region: str = "US") -> str:
    """E.164 (``+14158880000``) through libphonenumber; ``region`` reads a number without a country code."""
    return normalise.phone_e164(_text(value), region) or ""


def country(value: Any) -> str:
    """ISO 3166-1 alpha-2 from a code or a country name."""
    return normalise.country_code(_text(value)) or ""


def region(value: Any, country_code: str = "") -> str:
    """The ISO 3166-2 subdivision code (``CA``) of a state or province, by code or name, within a country."""
    return normalise.region_code(_text(value), normalise.country_code(country_code) if country_code else None) or ""


def postal_code(value: Any, country_code: str = "") -> str:
    """A postal code upper-cased and spaced as its country writes it (US ZIP, Canada, UK)."""
    return normalise.postal_code(_text(value), normalise.country_code(country_code) if country_code else None) or ""


FILTERS: dict[str, Callable[..., Any]] = {
    "upper": upper,
    "lower": lower,
    "strip": strip,
    "truncate": truncate,
    "default": default,
    "digits": digits,
    "join": join,
    "date": date_format,
    "phone": phone,
    "country": country,
    "region": region,
    "postal_code": postal_code,
}

# How many arguments each filter takes (min, max), to reject a bad template when the file loads.
ARITY: dict[str, tuple[int, int]] = {
    "upper": (0, 0), "lower": (0, 0), "strip": (0, 0), "truncate": (1, 1), "default": (1, 1),
    "digits": (0, 0), "join": (0, 1), "date": (1, 2), "phone": (0, 1), "country": (0, 0), "region": (0, 1),
    "postal_code": (0, 1),
}

as_text = _text
