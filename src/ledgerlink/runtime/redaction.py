"""Card numbers out of what the runtime stores from other systems.

A webhook's card number is refused at the edge, but the engine also stores what
back offices and gateways answer: the step journal in partition state, events a
poll emits (an SL user's refund note, a chargeback), cases and their evidence,
reconciliation reports, dead-letter evidence. Those pass through here and have
every card number replaced by ``[redacted card number]`` before they are
written. The checks scan the JSON text once (a few microseconds for a journal);
only a document that holds a card number is walked and rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from ledgerlink.model.cardnumbers import (
    card_number_fields,
    contains_card_number,
    redact_card_numbers,
    redact_document,
)

log = logging.getLogger(__name__)


def holds_card_number(text: str) -> bool:
    """True when JSON text holds a card number (orjson writes control characters as ``\\u`` escapes; the
    parsed text is what a reader would see)."""
    return contains_card_number(text) or ("\\u" in text and bool(card_number_fields(orjson.loads(text))))


def stored_json(document: Any, *, what: str, option: int = 0, default: Callable[[Any], Any] | None = None) -> str:
    """``document`` as JSON text to store, card numbers redacted (``what`` names it in the warning)."""
    text = orjson.dumps(document, option=option, default=default).decode()
    if not holds_card_number(text):
        return text
    log.warning("a card number in %s was redacted before it was stored", what)
    return orjson.dumps(redact_document(orjson.loads(text)), option=option).decode()


def stored_text(text: str | None, *, what: str) -> str | None:
    if text is None or not contains_card_number(text):
        return text
    log.warning("a card number in %s was redacted before it was stored", what)
    return redact_card_numbers(text)


def stored_body(body: bytes, *, what: str) -> bytes:
    """A raw event body to store: JSON is redacted as a document (so it stays JSON), anything else as text."""
    text = body.decode("utf-8", "replace")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        redacted = stored_text(text, what=what)
        return body if redacted == text else (redacted or "").encode()
    if not (contains_card_number(text) or card_number_fields(document)):
        return body
    log.warning("a card number in %s was redacted before it was stored", what)
    return orjson.dumps(redact_document(document))
