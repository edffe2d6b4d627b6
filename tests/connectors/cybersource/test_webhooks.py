"""Webhook signature (spec §6.4 vector, both variants, every refusal) and envelope parsing (§6.3)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from ledgerlink.connectors.cybersource.translate import StatusTable
from ledgerlink.connectors.cybersource.webhooks import (
    SignatureVariant,
    WebhookVerifier,
    parse_notification,
    sign_notification,
)
from ledgerlink.connectors.kit.errors import WebhookRejected
from ledgerlink.model import EventType, InvalidInput, PaymentKind, PaymentStatus

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY_ID = "kms-key-1"
T = 1617830804768
NOW = T / 1000
VECTOR_BODY = (
    b'{"eventDate":"2024-03-01T10:15:30","eventType":"payments.captures.accept","organizationId":"testrest",'
    b'"payload":{"data":{"id":"7093261290346789104953"}},"productId":"cardProcessing","requestType":"NEW",'
    b'"retryNumber":0,"transactionTraceId":"f1c0d2e3-0000-4000-8000-000000000001",'
    b'"webhookId":"a1b2c3d4-0000-4000-8000-000000000002"}'
)
RAW_SIG = "8k/df4q7SK1LlanyUxhF+thhi5B6x9tzZZloVrwsiFE="
PAYLOAD_SIG = "SahT7ytlizpgcWfXFzxeh9M67otN/tfkrWrdCv0lXqc="


def header(sig: str, t: int = T, key_id: str = KEY_ID) -> dict[str, str]:
    return {"v-c-signature": f"t={t};keyId={key_id};sig={sig}"}


def verifier(**kwargs: Any) -> WebhookVerifier:
    return WebhookVerifier({KEY_ID: KEY}, **kwargs)


# --- the §6.4 vector -------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "expected"), [("raw", RAW_SIG), ("payload", PAYLOAD_SIG)])
def test_signing_reproduces_the_vector(variant: str, expected: str) -> None:
    value = sign_notification(VECTOR_BODY, key=base64.b64decode(KEY), key_id=KEY_ID, timestamp_ms=T, variant=variant)
    assert value == f"t={T};keyId={KEY_ID};sig={expected}"


@pytest.mark.parametrize("sig", [RAW_SIG, PAYLOAD_SIG], ids=["raw-body", "payload-field"])
def test_either_variant_verifies(sig: str) -> None:
    verifier().verify(header(sig), VECTOR_BODY, now=NOW)


def test_a_pinned_variant_refuses_the_other() -> None:
    verifier(variant=SignatureVariant.RAW).verify(header(RAW_SIG), VECTOR_BODY, now=NOW)
    verifier(variant=SignatureVariant.PAYLOAD).verify(header(PAYLOAD_SIG), VECTOR_BODY, now=NOW)
    with pytest.raises(WebhookRejected):
        verifier(variant=SignatureVariant.RAW).verify(header(PAYLOAD_SIG), VECTOR_BODY, now=NOW)
    with pytest.raises(WebhookRejected):
        verifier(variant=SignatureVariant.PAYLOAD).verify(header(RAW_SIG), VECTOR_BODY, now=NOW)


def test_payload_variant_survives_re_serialised_envelopes() -> None:
    pretty = json.dumps(json.loads(VECTOR_BODY), indent=2).encode()
    verifier().verify(header(PAYLOAD_SIG), pretty, now=NOW)


def test_payload_with_a_float_is_checked_as_python_serialises_it() -> None:
    body = b'{"eventType":"x","payload":{"data":{"id":"1","score":1e16}}}'
    payload = json.dumps(json.loads(body)["payload"], separators=(",", ":"), ensure_ascii=False).encode()
    sig = sign_notification(body, key=base64.b64decode(KEY), key_id=KEY_ID, timestamp_ms=T, payload_json=payload)
    verifier().verify({"v-c-signature": sig}, body, now=NOW)


def test_rotation_accepts_every_configured_key() -> None:
    other = base64.b64encode(bytes(range(32, 64))).decode()
    rotating = WebhookVerifier({KEY_ID: KEY, "kms-key-2": other})
    body = VECTOR_BODY.replace(b"a1b2", b"ffff")
    sig = sign_notification(body, key=base64.b64decode(other), key_id="kms-key-2", timestamp_ms=T)
    rotating.verify({"v-c-signature": sig}, body, now=NOW)
    rotating.verify(header(PAYLOAD_SIG), VECTOR_BODY, now=NOW)


@pytest.mark.parametrize(("headers", "body", "now", "reason"), [
    (header(PAYLOAD_SIG), VECTOR_BODY.replace(b"7093", b"7094"), NOW, "does not match"),
    (header(RAW_SIG), VECTOR_BODY.replace(b"NEW", b"OLD"), NOW, "does not match"),
    (header(PAYLOAD_SIG, key_id="kms-key-9"), VECTOR_BODY, NOW, "unknown webhook keyId"),
    (header(PAYLOAD_SIG, t=T + 1), VECTOR_BODY, NOW, "does not match"),
    (header(PAYLOAD_SIG), VECTOR_BODY, NOW + 301, "outside the allowed window"),
    (header(PAYLOAD_SIG), VECTOR_BODY, NOW - 301, "outside the allowed window"),
    ({}, VECTOR_BODY, NOW, "missing v-c-signature"),
    ({"v-c-signature": f"t={T};sig={PAYLOAD_SIG}"}, VECTOR_BODY, NOW, "must carry t, keyId and sig"),
    ({"v-c-signature": f"t=yesterday;keyId={KEY_ID};sig={PAYLOAD_SIG}"}, VECTOR_BODY, NOW, "epoch milliseconds"),
    ({"v-c-signature": "garbage"}, VECTOR_BODY, NOW, "must carry"),
    (header(PAYLOAD_SIG), b"not json", NOW, "does not match"),
])
def test_refusals_are_401(headers: dict[str, str], body: bytes, now: float, reason: str) -> None:
    with pytest.raises(WebhookRejected, match=reason) as caught:
        verifier().verify(headers, body, now=now)
    assert caught.value.status == 401


def test_wrong_key_is_refused() -> None:
    wrong = WebhookVerifier({KEY_ID: base64.b64encode(b"k" * 32).decode()})
    with pytest.raises(WebhookRejected, match="does not match"):
        wrong.verify(header(PAYLOAD_SIG), VECTOR_BODY, now=NOW)


def test_tolerance_is_configurable() -> None:
    verifier(tolerance_seconds=3600).verify(header(PAYLOAD_SIG), VECTOR_BODY, now=NOW + 3000)


def test_a_replay_is_refused_but_a_second_subscription_is_not() -> None:
    check = verifier()
    check.verify(header(PAYLOAD_SIG), VECTOR_BODY, now=NOW)
    with pytest.raises(WebhookRejected, match="replay"):
        check.verify(header(PAYLOAD_SIG), VECTOR_BODY, now=NOW + 1)
    # The same event from another subscription: same payload and signature, different envelope.
    check.verify(header(PAYLOAD_SIG), VECTOR_BODY.replace(b"a1b2c3d4", b"e5f6a7b8"), now=NOW)


def test_base64_signature_padding_survives_header_splitting() -> None:
    assert PAYLOAD_SIG.endswith("=")  # the '=' inside sig=... must not split the part
    verifier().verify({"v-c-signature": f" t={T} ; keyId={KEY_ID} ; sig={PAYLOAD_SIG} "}, VECTOR_BODY, now=NOW)


# --- parsing ---------------------------------------------------------------------------------

TXN = "7093261290346789104953"
ROOT = "7093261290346789100001"


def details(status: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": TXN,
        "rootId": ROOT,
        "status": status,
        "submitTimeUTC": "2024-03-01T10:15:29Z",
        "reconciliationId": "78243988SD9YL291",
        "clientReferenceInformation": {"code": "ORD-1001"},
        "orderInformation": {
            "amountDetails": {"totalAmount": "102.21", "currency": "USD"},
            "billTo": {"firstName": "John", "lastName": "Doe", "email": "Test@Cybs.com", "phoneNumber": "4158880000",
                       "address1": "1 Market St", "locality": "San Francisco", "administrativeArea": "CA",
                       "postalCode": "94105", "country": "US"},
            "lineItems": [{"productSku": "SKU-1", "productName": "Widget", "quantity": 2, "unitPrice": "51.10"}],
        },
        "paymentInformation": {"card": {"suffix": "1111", "type": "001", "expirationMonth": "12",
                                        "expirationYear": "2031"}, "customer": {"id": "C1"}},
        "tokenInformation": {"paymentInstrument": {"id": "PI1"}},
        "merchantDefinedInformation": [{"key": "1", "value": "web"}],
        "applicationInformation": {"reasonCode": "100", "applications": [{"name": "ics_auth"}]},
    }
    data.update(extra)
    return data


def envelope(event_type: str, data: Any, **extra: Any) -> bytes:
    doc = {"webhookId": "w1", "transactionTraceId": "t1", "productId": "cardProcessing", "organizationId": "testrest",
           "eventType": event_type, "eventDate": "2024-03-01T10:15:30", "requestType": "NEW", "retryNumber": 0,
           "payload": {"data": data}, **extra}
    return orjson.dumps(doc)


EVENTS = [
    ("payments.payments.accept", EventType.PAYMENT, "AUTHORIZED", ["ics_auth"], PaymentKind.AUTHORIZATION,
     PaymentStatus.AUTHORIZED),
    ("payments.payments.accept", EventType.PAYMENT, "AUTHORIZED", ["ics_auth", "ics_bill"], PaymentKind.SALE,
     PaymentStatus.CAPTURED),
    ("payments.payments.review", EventType.REVIEW, "AUTHORIZED_PENDING_REVIEW", ["ics_auth"],
     PaymentKind.AUTHORIZATION, PaymentStatus.PENDING_REVIEW),
    ("risk.profile.decision.review", EventType.REVIEW, "AUTHORIZED_PENDING_REVIEW", ["ics_auth"],
     PaymentKind.AUTHORIZATION, PaymentStatus.PENDING_REVIEW),
    ("payments.payments.reject", EventType.DECLINE, "DECLINED", ["ics_auth"], PaymentKind.AUTHORIZATION,
     PaymentStatus.DECLINED),
    ("payments.captures.accept", EventType.CAPTURE, "PENDING", ["ics_bill"], PaymentKind.CAPTURE,
     PaymentStatus.CAPTURED),
    ("payments.refunds.accept", EventType.REFUND, "PENDING", ["ics_credit"], PaymentKind.REFUND,
     PaymentStatus.REFUNDED),
    ("payments.voids.accept", EventType.VOID, "VOIDED", ["ics_void"], PaymentKind.VOID, PaymentStatus.VOIDED),
    ("payments.reversals.accept", EventType.REVERSAL, "REVERSED", ["ics_auth_reversal"], PaymentKind.REVERSAL,
     PaymentStatus.VOIDED),
]
event_ids = [f"{e[0]}-{e[4].value}" for e in EVENTS]


@pytest.mark.parametrize(("event_type", "canonical", "status", "apps", "kind", "canonical_status"), EVENTS,
                         ids=event_ids)
def test_full_detail_events(event_type, canonical, status, apps, kind, canonical_status) -> None:
    data = details(status, applicationInformation={"applications": [{"name": a} for a in apps]})
    body = envelope(event_type, data)
    event = parse_notification(body)
    assert event.event_type is canonical
    assert event.gateway_event_type == event_type
    assert event.event_id == f"{event_type}:{TXN}"
    assert event.partition_key == "ORD-1001"
    assert event.payment_id == TXN
    assert event.occurred_at == datetime(2024, 3, 1, 10, 15, 30, tzinfo=UTC)
    assert event.payload_sha256 == hashlib.sha256(body).hexdigest()
    payment = event.payment
    assert payment is not None
    assert (payment.kind, payment.status, payment.gateway_status) == (kind, canonical_status, status)
    assert payment.amount.format() == "102.21" and payment.amount.currency == "USD"
    assert payment.order_reference == "ORD-1001" and payment.root_id == ROOT
    assert payment.party is not None and payment.party.email == "test@cybs.com"
    assert payment.party.address is not None and payment.party.address.city == "San Francisco"
    assert payment.token is not None
    assert (payment.token.token_id, payment.token.kind, payment.token.brand, payment.token.last4) == (
        "PI1", "payment_instrument", "visa", "1111")
    assert payment.token.expiry is not None and (payment.token.expiry.year, payment.token.expiry.month) == (2031, 12)
    assert payment.merchant_defined == {"1": "web"}
    assert payment.line_items[0].sku == "SKU-1" and str(payment.line_items[0].unit_price) == "51.10 USD"
    assert payment.submitted_at == datetime(2024, 3, 1, 10, 15, 29, tzinfo=UTC)
    if canonical is EventType.REVIEW:
        assert payment.risk is not None and payment.risk.decision == "review"


@pytest.mark.parametrize("event_type", sorted({e[0] for e in EVENTS}))
def test_id_only_events_carry_no_payment(event_type: str) -> None:
    data = {"id": TXN, "_links": {"self": {"href": f"/tss/v2/transactions/{TXN}"}}}
    event = parse_notification(envelope(event_type, data))
    assert event.payment is None
    assert event.payment_id == TXN and event.partition_key == TXN
    assert event.event_id == f"{event_type}:{TXN}"


def test_partial_approval_is_a_payment_for_the_approved_amount() -> None:
    data = details("PARTIAL_AUTHORIZED")
    data["orderInformation"]["amountDetails"] = {"totalAmount": "102.21", "authorizedAmount": "50.00",
                                                 "currency": "USD"}
    event = parse_notification(envelope("payments.payments.partial.approval", data))
    assert event.event_type is EventType.PAYMENT
    assert event.payment is not None and event.payment.amount.format() == "50.00"
    assert event.payment.status is PaymentStatus.AUTHORIZED


def test_event_id_is_stable_across_retries_and_subscriptions() -> None:
    first = parse_notification(envelope("payments.captures.accept", {"id": TXN}))
    retry = parse_notification(envelope("payments.captures.accept", {"id": TXN}, transactionTraceId="t2",
                                        requestType="RETRY", retryNumber=1, webhookId="w2"))
    assert first.event_id == retry.event_id
    assert first.payload_sha256 != retry.payload_sha256


def test_partition_key_falls_back_to_root_then_id() -> None:
    no_code = details("PENDING", clientReferenceInformation={})
    assert parse_notification(envelope("payments.captures.accept", no_code)).partition_key == ROOT
    no_root = {**no_code, "rootId": None}
    assert parse_notification(envelope("payments.captures.accept", no_root)).partition_key == TXN


def test_unknown_event_types_parse_without_an_id() -> None:
    body = orjson.dumps({"eventType": "tms.networktoken.provisioned",
                         "payload": [{"data": {"_links": {"customers": [{"href": "/tms/v2/customers/X"}]}}}]})
    event = parse_notification(body)
    assert event.event_type is EventType.UNKNOWN and event.payment is None
    assert event.event_id.startswith("tms.networktoken.provisioned:") and event.payment_id == ""
    assert event.event_id == parse_notification(body).event_id


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "body"),
    (b"[1, 2]", "body"),
    (orjson.dumps({"payload": {"data": {"id": TXN}}}), "eventType"),
    (orjson.dumps({"eventType": "payments.payments.accept"}), "payload"),
    (orjson.dumps({"eventType": "payments.payments.accept", "payload": {}}), "payload.data"),
    (orjson.dumps({"eventType": "payments.payments.accept", "payload": {"data": {}}}), "payload.data.id"),
    (orjson.dumps({"eventType": "payments.payments.accept", "payload": "x"}), "payload"),
    (envelope("payments.captures.accept", {"id": TXN}, eventDate="yesterday"), "eventDate"),
])
def test_malformed_envelopes_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_notification(body)
    assert caught.value.issues[0].field == field


AMOUNT = "payload.data.orderInformation.amountDetails.totalAmount"
CURRENCY = "payload.data.orderInformation.amountDetails.currency"


@pytest.mark.parametrize(("amount_details", "field", "reason"), [
    ({"totalAmount": "10.001", "currency": "USD"}, AMOUNT, "decimal places"),
    ({"totalAmount": "ten", "currency": "USD"}, AMOUNT, "not a decimal"),
    ({"totalAmount": 10.5, "currency": "USD"}, AMOUNT, "string"),
    ({"totalAmount": "10.00", "currency": "XYZ"}, CURRENCY, "unknown currency"),
    ({"totalAmount": "10.00"}, CURRENCY, "missing currency"),
    ({"currency": "USD"}, AMOUNT, "missing amount"),
])
def test_bad_amounts_name_the_field(amount_details: dict[str, Any], field: str, reason: str) -> None:
    data = details("AUTHORIZED")
    data["orderInformation"]["amountDetails"] = amount_details
    with pytest.raises(InvalidInput) as caught:
        parse_notification(envelope("payments.payments.accept", data))
    assert caught.value.issues[0].field == field
    assert reason in caught.value.issues[0].reason


def test_unmapped_status_names_the_field_and_status_map_fixes_it() -> None:
    body = envelope("payments.payments.accept", details("PENDING_AUTHENTICATION"))
    with pytest.raises(InvalidInput) as caught:
        parse_notification(body)
    assert caught.value.issues[0].field == "payload.data.status"
    event = parse_notification(body, statuses=StatusTable({"PENDING_AUTHENTICATION": "pending_review"}))
    assert event.payment is not None and event.payment.status is PaymentStatus.PENDING_REVIEW
