"""Cybersource webhook notifications: verify the ``v-c-signature``, parse the envelope (spec §6.3–§6.4).

Signature: ``t=<ms>;keyId=<kms key id>;sig=<b64>``, the HMAC-SHA256 (key =
base64-decoded KMS key) of ``t + "." + X``. Cybersource's own plugins disagree
on X: the compact JSON of the body's ``payload`` field, or the raw body. The
verifier accepts either (configurable), so whichever the production sender
uses today, a genuine notification passes and a forged one does not.

This runs on the intake hot path: keys are decoded once, the raw-body variant
needs no parsing, and the payload variant re-serialises with orjson (identical
bytes to ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)`` for
everything but floats, which fall back to ``json``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import orjson
from pydantic import ValidationError

from ledgerlink.connectors.cybersource import schemas as wire
from ledgerlink.connectors.cybersource.decision_manager import DECISION_EVENTS, verdict_from_payload
from ledgerlink.connectors.cybersource.profiles import TOKEN_EVENTS, token_event
from ledgerlink.connectors.cybersource.translate import (
    DEFAULT_STATUS_TABLE,
    GATEWAY,
    StatusTable,
    parse_timestamp,
    to_payment,
    validation_issues,
)
from ledgerlink.connectors.kit.errors import WebhookRejected
from ledgerlink.connectors.kit.webhooks import ReplayGuard
from ledgerlink.model import EventType, FieldIssue, InvalidInput, PaymentEvent, PaymentKind

SIGNATURE_HEADER = "v-c-signature"
SOURCE = "cybersource webhook"


class SignatureVariant(StrEnum):
    PAYLOAD = "payload"  # X = compact JSON of the body's ``payload`` field
    RAW = "raw"  # X = the raw body
    EITHER = "either"  # accept both (verifier only)


# Cybersource event type → (canonical event type, kind of the transaction it reports).
EVENT_TYPES: dict[str, tuple[EventType, PaymentKind]] = {
    "payments.payments.accept": (EventType.PAYMENT, PaymentKind.AUTHORIZATION),
    "payments.payments.partial.approval": (EventType.PAYMENT, PaymentKind.AUTHORIZATION),
    "payments.payments.review": (EventType.REVIEW, PaymentKind.AUTHORIZATION),
    "payments.payments.reject": (EventType.DECLINE, PaymentKind.AUTHORIZATION),
    "risk.profile.decision.review": (EventType.REVIEW, PaymentKind.AUTHORIZATION),
    "risk.casemanagement.decision.accept": (EventType.REVIEW_DECISION, PaymentKind.AUTHORIZATION),
    "risk.casemanagement.decision.reject": (EventType.REVIEW_DECISION, PaymentKind.AUTHORIZATION),
    "payments.captures.accept": (EventType.CAPTURE, PaymentKind.CAPTURE),
    "payments.refunds.accept": (EventType.REFUND, PaymentKind.REFUND),
    "payments.refunds.reject": (EventType.REFUND, PaymentKind.REFUND),  # the refund's status says declined
    "payments.voids.accept": (EventType.VOID, PaymentKind.VOID),
    "payments.reversals.accept": (EventType.REVERSAL, PaymentKind.REVERSAL),
}


def compact_json(value: Any) -> bytes:
    """Compact JSON as the payload-field variant signs it."""
    return orjson.dumps(value)


def _python_compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _hmac_b64(key: bytes, timestamp: str, message: bytes) -> str:
    mac = hmac.new(key, timestamp.encode("ascii") + b"." + message, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def sign_notification(
    body: bytes,
    *,
    key: bytes,
    key_id: str,
    timestamp_ms: int,
    variant: SignatureVariant | str = SignatureVariant.PAYLOAD,
    payload_json: bytes | None = None,
) -> str:
    """The ``v-c-signature`` value for ``body`` (what the sandbox sends).

    For the payload variant pass ``payload_json`` (the compact bytes of the
    ``payload`` field) when already at hand, to avoid re-parsing the body.
    """
    t = str(timestamp_ms)
    if SignatureVariant(variant) is SignatureVariant.RAW:
        message = body
    elif payload_json is not None:
        message = payload_json
    else:
        message = compact_json(orjson.loads(body)["payload"])
    return f"t={t};keyId={key_id};sig={_hmac_b64(key, t, message)}"


def parse_signature_header(value: str) -> tuple[str, str, str]:
    """``(t, keyId, sig)``; each part splits on its first ``=`` because base64 may end in ``=``."""
    parts: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, text = part.partition("=")
        if sep:
            parts[name.strip().lower()] = text.strip()
    t, key_id, sig = parts.get("t"), parts.get("keyid"), parts.get("sig")
    if not t or not key_id or not sig:
        raise WebhookRejected(401, "v-c-signature must carry t, keyId and sig", field=SIGNATURE_HEADER)
    if not t.isdigit():
        raise WebhookRejected(401, "v-c-signature timestamp is not epoch milliseconds", field=SIGNATURE_HEADER)
    return t, key_id, sig


def decode_key(key: str | bytes) -> bytes:
    """A KMS key as the HMAC wants it: KMS hands out base64 text."""
    if isinstance(key, bytes):
        return key
    try:
        return base64.b64decode(key, validate=True)
    except binascii.Error:
        raise ValueError("webhook key must be base64 text as KMS issues it") from None


class WebhookVerifier:
    """Authenticity, freshness and first use of a notification; every refusal is ``WebhookRejected(401)``."""

    def __init__(
        self,
        keys: Mapping[str, str | bytes],
        *,
        tolerance_seconds: float = 300.0,
        variant: SignatureVariant | str = SignatureVariant.EITHER,
        replay_guard: ReplayGuard | None = None,
    ) -> None:
        self._keys = {key_id: decode_key(key) for key_id, key in keys.items()}
        self._tolerance_ms = tolerance_seconds * 1000.0
        self._variant = SignatureVariant(variant)
        self._replays = replay_guard or ReplayGuard(window_seconds=tolerance_seconds * 2)

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
        value = headers.get(SIGNATURE_HEADER)
        if not value:
            raise WebhookRejected(401, "missing v-c-signature header", field=SIGNATURE_HEADER)
        t, key_id, sig = parse_signature_header(value)
        key = self._keys.get(key_id)
        if key is None:
            raise WebhookRejected(401, "unknown webhook keyId", field=SIGNATURE_HEADER)
        now_s = time.time() if now is None else now
        if abs(now_s * 1000.0 - int(t)) > self._tolerance_ms:
            raise WebhookRejected(401, "webhook timestamp outside the allowed window", field=SIGNATURE_HEADER)
        if not self._signature_matches(key, t, sig, body):
            raise WebhookRejected(401, "webhook signature does not match", field=SIGNATURE_HEADER)
        # The same bytes under the same signature is a replay. The signature alone is not enough: two
        # subscriptions (or a payment and a risk event) can carry one payload signed in the same millisecond.
        if not self._replays.first_use(f"{key_id}:{t}:{sig}:{hashlib.sha256(body).hexdigest()}", now_s):
            raise WebhookRejected(401, "webhook signature already used (replay)", field=SIGNATURE_HEADER)

    def _signature_matches(self, key: bytes, t: str, sig: str, body: bytes) -> bool:
        # The sandbox's (and commercetools plugin's) payload variant first, then the raw body; Python's
        # own serialisation differs from orjson's only for floats, so it is tried last.
        given = sig.encode("ascii", "replace")

        def matches(message: bytes) -> bool:
            return hmac.compare_digest(_hmac_b64(key, t, message).encode(), given)

        payload = _payload_field(body) if self._variant is not SignatureVariant.RAW else _MISSING
        if payload is not _MISSING and matches(compact_json(payload)):
            return True
        if self._variant is not SignatureVariant.PAYLOAD and matches(body):
            return True
        return payload is not _MISSING and matches(_python_compact_json(payload))


_MISSING = object()


def _payload_field(body: bytes) -> Any:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _MISSING
    return doc.get("payload", _MISSING) if isinstance(doc, dict) else _MISSING


# --- parsing ---------------------------------------------------------------------------------


def parse_notification(body: bytes, *, statuses: StatusTable = DEFAULT_STATUS_TABLE) -> PaymentEvent:
    """A verified notification body as a canonical ``PaymentEvent``.

    ``event_id`` is ``<eventType>:<payload.data.id>``: stable across retries
    (which carry new trace ids) and across two subscriptions delivering the same
    event, so the inbox dedupes both. With only an id in ``payload.data`` the
    event carries no payment and the flow fetches it; with full details (the
    TSS shape) the payment comes whole.
    """
    digest = hashlib.sha256(body).hexdigest()
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(FieldIssue("body", f"not valid JSON ({exc})"), source=SOURCE) from None
    if not isinstance(doc, dict):
        raise InvalidInput(FieldIssue("body", "must be a JSON object"), source=SOURCE)
    try:
        envelope = wire.WebhookEnvelope.model_validate(doc)
    except ValidationError as exc:
        raise InvalidInput(validation_issues(exc), source=SOURCE) from None

    gateway_type = envelope.event_type
    if gateway_type in TOKEN_EVENTS:  # stored cards: a list payload of links (profiles.py)
        occurred = parse_timestamp(envelope.event_date) if envelope.event_date is not None else None
        if envelope.event_date is not None and occurred is None:
            raise InvalidInput(FieldIssue("eventDate", f"{envelope.event_date!r} is not an ISO 8601 time"),
                               source=SOURCE)
        return token_event(gateway_type, envelope.payload, notification_id=envelope.notification_id,
                           occurred_at=occurred, digest=digest, source=SOURCE)
    known = EVENT_TYPES.get(gateway_type)
    payload = envelope.payload
    data = payload.get("data") if isinstance(payload, dict) else None
    data_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(data_id, str) or not data_id:
        data_id = None

    issues: list[FieldIssue] = []
    if not gateway_type.strip():
        issues.append(FieldIssue("eventType", "must not be empty"))
    if known is not None:
        if not isinstance(payload, dict):
            issues.append(FieldIssue("payload", "must be an object"))
        elif not isinstance(data, dict):
            issues.append(FieldIssue("payload.data", "missing"))
        elif data_id is None:
            issues.append(FieldIssue("payload.data.id", "missing transaction id"))
    occurred_at = None
    if envelope.event_date is not None:
        occurred_at = parse_timestamp(envelope.event_date)
        if occurred_at is None:
            issues.append(FieldIssue("eventDate", f"{envelope.event_date!r} is not an ISO 8601 time"))
    if issues:
        raise InvalidInput(issues, source=SOURCE)

    if known is None:
        ident = data_id or envelope.notification_id or hashlib.sha256(compact_json(payload)).hexdigest()
        return PaymentEvent(
            source=GATEWAY,
            event_id=f"{gateway_type}:{ident}",
            event_type=EventType.UNKNOWN,
            gateway_event_type=gateway_type,
            occurred_at=occurred_at,
            partition_key=data_id or ident,
            payment_id=data_id or "",
            payload_sha256=digest,
        )

    event_type, kind = known
    assert isinstance(data, dict) and data_id is not None
    payment = None
    if "status" in data:  # full transaction details, not just an id and links
        payment = to_payment(data, kind_hint=kind, statuses=statuses, review=event_type is EventType.REVIEW,
                             path="payload.data")
    return PaymentEvent(
        source=GATEWAY,
        event_id=f"{gateway_type}:{data_id}",
        event_type=event_type,
        gateway_event_type=gateway_type,
        occurred_at=occurred_at,
        partition_key=_partition_key(data, data_id),
        payment_id=data_id,
        payment=payment,
        review=verdict_from_payload(DECISION_EVENTS[gateway_type], data) if gateway_type in DECISION_EVENTS else None,
        payload_sha256=digest,
    )


def _partition_key(data: Mapping[str, Any], data_id: str) -> str:
    """The merchant's order reference keeps one order's events in order; else the chain's root."""
    reference = data.get("clientReferenceInformation")
    code = reference.get("code") if isinstance(reference, dict) else None
    if isinstance(code, str) and code:
        return code
    root = data.get("rootId")
    return root if isinstance(root, str) and root else data_id
