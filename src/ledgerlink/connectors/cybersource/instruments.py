"""A TMS payment instrument (spec §5) read into the canonical ``StoredInstrument``.

Only what a renewal needs to know before it charges: is the token still usable (``state``), and until when
(``card.expirationMonth``/``expirationYear``). The masked number TMS shows is not read.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ledgerlink.connectors.cybersource.cards import brand_for_type, expiry_date
from ledgerlink.model import FieldIssue, InvalidInput, PaymentToken, StoredInstrument, TokenState

GATEWAY = "cybersource"
SOURCE = "cybersource payment instrument"


def read_instrument(doc: Any, *, today: date | None = None) -> StoredInstrument:
    """``state`` CLOSED is ``deleted``; an ACTIVE card whose expiry month ended before ``today`` is ``expired``."""
    if not isinstance(doc, dict):
        raise InvalidInput(FieldIssue("body", "a payment instrument is a JSON object"), source=SOURCE)
    issues: list[FieldIssue] = []
    token_id = doc.get("id")
    if not isinstance(token_id, str) or not token_id:
        issues.append(FieldIssue("id", "missing payment instrument id"))
    card = doc.get("card") if isinstance(doc.get("card"), dict) else {}
    expiry = None
    try:
        expiry = expiry_date(card.get("expirationMonth"), card.get("expirationYear"))
    except ValueError as exc:
        issues.append(FieldIssue("card.expirationMonth", str(exc)))
    if issues:
        raise InvalidInput(issues, source=SOURCE)
    identifier = doc.get("instrumentIdentifier") if isinstance(doc.get("instrumentIdentifier"), dict) else {}
    embedded = (doc.get("_embedded") or {}).get("instrumentIdentifier") or {}
    masked = (embedded.get("card") or {}).get("number") if isinstance(embedded, dict) else None
    last4 = masked[-4:] if isinstance(masked, str) and masked[-4:].isdigit() else None
    state = TokenState.DELETED if str(doc.get("state", "ACTIVE")).upper() == "CLOSED" else TokenState.ACTIVE
    if state is TokenState.ACTIVE and expiry is not None and today is not None and expiry < today:
        state = TokenState.EXPIRED
    token = PaymentToken(gateway=GATEWAY, token_id=str(token_id), kind="payment_instrument",
                         brand=brand_for_type(card.get("type")), last4=last4, expiry=expiry)
    return StoredInstrument(token=token, instrument_identifier=identifier.get("id"), state=state,
                            default=doc.get("default") is True)
