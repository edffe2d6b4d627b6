"""The storage guard: a tripwire that fails loudly when a card number is about to be stored.

Production code never stores a card number: the edge refuses them and every
store path redacts them. This guard proves it. When ``LEDGERLINK_PAN_GUARD`` is
set (the test suite sets it for the whole run), each store checks what it is
about to write — the runtime database's bound parameters, the Dynamics SL
sandbox's rows, the Cybersource sandbox's records — and raises
``CardNumberStored`` naming where, never the value. Every trip is also kept in
``trips()`` so a test fails even when the exception was caught and retried by
the code under test. Off (the default), stores do not call it at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from ledgerlink.model.cardnumbers import card_number_fields, contains_card_number

ENV = "LEDGERLINK_PAN_GUARD"

_trips: list[str] = []


class CardNumberStored(RuntimeError):
    """A card number reached a store. A bug: something upstream should have refused or redacted it."""


def enabled() -> bool:
    """True when ``LEDGERLINK_PAN_GUARD`` is set to 1/true/yes/on (read when a store is opened)."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def holds_card_number(value: object) -> bool:
    """True when a value about to be stored holds a card number: text, bytes (decoded), a large integer,
    or a JSON text whose ``\\u`` escapes spell one out."""
    wrapped = getattr(value, "obj", None)  # a driver's binary wrapper (psycopg's ``Binary``)
    if isinstance(wrapped, (bytes, bytearray, memoryview)):
        value = wrapped
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        if contains_card_number(value):
            return True
        if "\\u" in value:
            try:
                return bool(card_number_fields(json.loads(value)))
            except ValueError:
                return False
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        return 10**12 <= abs(value) < 10**19 and contains_card_number(str(value))
    if isinstance(value, dict):
        return any(holds_card_number(k) or holds_card_number(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(holds_card_number(v) for v in value)
    return False


def check(values: Iterable[tuple[str, object]], *, where: str) -> None:
    """Raise ``CardNumberStored`` if any (name, value) holds a card number; the message names ``where``
    and the value's name only."""
    for name, value in values:
        if holds_card_number(value):
            message = (f"a card number was about to be stored in {where} ({name}); "
                       "it must be refused at the edge or redacted before it is stored")
            _trips.append(message)
            raise CardNumberStored(message)


def trips() -> list[str]:
    """Every trip since the last ``clear_trips()`` (messages, no values)."""
    return list(_trips)


def clear_trips() -> None:
    _trips.clear()
