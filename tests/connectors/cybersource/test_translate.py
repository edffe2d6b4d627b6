"""Wire ↔ canonical: the status table, every response shape, and the token-only payments request."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ledgerlink.connectors.cybersource.translate import StatusTable, payment_request, to_payment
from ledgerlink.model import (
    Address,
    AuthorizationRequest,
    InvalidInput,
    LineItem,
    Money,
    Party,
    PaymentKind,
    PaymentStatus,
    PaymentToken,
)
from ledgerlink.model.cardnumbers import find_card_numbers

K, S = PaymentKind, PaymentStatus
USD = "USD"


@pytest.mark.parametrize(("kind", "status", "expected"), [
    (K.AUTHORIZATION, "AUTHORIZED", S.AUTHORIZED),
    (K.SALE, "AUTHORIZED", S.CAPTURED),
    (K.AUTHORIZATION, "PARTIAL_AUTHORIZED", S.AUTHORIZED),
    (K.AUTHORIZATION, "AUTHORIZED_PENDING_REVIEW", S.PENDING_REVIEW),
    (K.SALE, "PENDING_REVIEW", S.PENDING_REVIEW),
    (K.AUTHORIZATION, "AUTHORIZED_RISK_DECLINED", S.DECLINED),
    (K.AUTHORIZATION, "DECLINED", S.DECLINED),
    (K.SALE, "INVALID_REQUEST", S.DECLINED),
    (K.CAPTURE, "PENDING", S.CAPTURED),
    (K.CAPTURE, "TRANSMITTED", S.CAPTURED),
    (K.REFUND, "PENDING", S.REFUNDED),
    (K.REVERSAL, "REVERSED", S.VOIDED),
    (K.VOID, "VOIDED", S.VOIDED),
    (K.AUTHORIZATION, "PENDING", None),
    (K.AUTHORIZATION, "PENDING_AUTHENTICATION", None),
])
def test_default_status_table(kind: PaymentKind, status: str, expected: PaymentStatus | None) -> None:
    assert StatusTable().resolve(kind, status) == expected


def test_overrides_beat_defaults_plain_and_per_kind() -> None:
    table = StatusTable({"AUTHORIZED_RISK_DECLINED": "pending_review", "refund:PENDING": "partially_refunded"})
    assert table.resolve(K.AUTHORIZATION, "AUTHORIZED_RISK_DECLINED") is S.PENDING_REVIEW
    assert table.resolve(K.REFUND, "PENDING") is S.PARTIALLY_REFUNDED
    assert table.resolve(K.CAPTURE, "PENDING") is S.CAPTURED
    assert StatusTable({"AUTHORIZED": "settled"}).resolve(K.SALE, "AUTHORIZED") is S.SETTLED


def test_an_override_must_name_a_canonical_status() -> None:
    with pytest.raises(ValueError, match="not a canonical status"):
        StatusTable({"AUTHORIZED": "approved"})


def auth_response(status: str = "AUTHORIZED", **extra: Any) -> dict[str, Any]:
    return {
        "id": "6750124114786780104953",
        "status": status,
        "submitTimeUtc": "2023-01-29T17:13:31Z",
        "reconciliationId": "78243988SD9YL291",
        "clientReferenceInformation": {"code": "TC50171_3"},
        "orderInformation": {"amountDetails": {"authorizedAmount": "102.21", "currency": "USD"}},
        "paymentAccountInformation": {"card": {"type": "002"}},
        "paymentInformation": {"paymentInstrument": {"id": "PI9"}, "customer": {"id": "C9"}},
        "processorInformation": {"approvalCode": "888888", "responseCode": "100"},
        **extra,
    }


def test_authorization_response() -> None:
    payment = to_payment(auth_response(), kind=K.AUTHORIZATION)
    assert (payment.kind, payment.status, payment.amount) == (K.AUTHORIZATION, S.AUTHORIZED, Money.of("102.21", USD))
    assert payment.token == PaymentToken(gateway="cybersource", token_id="PI9", kind="payment_instrument",
                                         brand="mastercard")
    assert payment.reconciliation_id == "78243988SD9YL291" and payment.order_reference == "TC50171_3"
    assert payment.submitted_at is not None and payment.submitted_at.year == 2023
    assert payment.risk is None and payment.decline_reason is None


def test_partial_authorization_takes_the_authorized_amount() -> None:
    response = auth_response("PARTIAL_AUTHORIZED")
    response["orderInformation"]["amountDetails"] = {"totalAmount": "100.00", "authorizedAmount": "60.00",
                                                     "currency": "USD"}
    payment = to_payment(response, kind=K.AUTHORIZATION)
    assert (payment.status, payment.amount) == (S.AUTHORIZED, Money.of("60.00", USD))


def test_decline_without_amount_uses_the_requested_amount_and_keeps_the_reason() -> None:
    response = {"id": "1", "status": "DECLINED", "errorInformation": {"reason": "INSUFFICIENT_FUND",
                                                                      "message": "Insufficient funds"}}
    payment = to_payment(response, kind=K.SALE, fallback_amount=Money.of("10.01", USD))
    assert (payment.status, payment.amount) == (S.DECLINED, Money.of("10.01", USD))
    assert (payment.decline_reason, payment.decline_message) == ("INSUFFICIENT_FUND", "Insufficient funds")


def test_risk_declined_and_review_carry_the_risk_verdict() -> None:
    risk = {"rules": [{"name": "Velocity", "decision": "REVIEW"}], "score": {"result": "87", "factorCodes": ["V"]},
            "infoCodes": {"velocity": ["VEL-CC"]}}
    review = to_payment(auth_response("AUTHORIZED_PENDING_REVIEW", riskInformation=risk,
                                      errorInformation={"reason": "DECISION_PROFILE_REVIEW"}), kind=K.AUTHORIZATION)
    assert review.status is S.PENDING_REVIEW and review.decline_reason is None
    assert review.risk is not None
    assert (review.risk.decision, review.risk.score, review.risk.rules) == ("review", 87, ("Velocity",))
    assert review.risk.reason_codes == ("480", "V", "VEL-CC")
    reject = to_payment(auth_response("AUTHORIZED_RISK_DECLINED",
                                      errorInformation={"reason": "DECISION_PROFILE_REJECT", "message": "Reject"}),
                        kind=K.AUTHORIZATION)
    assert reject.status is S.DECLINED and reject.decline_reason == "DECISION_PROFILE_REJECT"
    assert reject.risk is not None and reject.risk.decision == "reject" and reject.risk.reason_codes == ("481",)


@pytest.mark.parametrize(("kind", "doc", "amount"), [
    (K.CAPTURE, {"status": "PENDING", "orderInformation": {"amountDetails": {"totalAmount": "50.00",
                                                                               "currency": "USD"}}}, "50.00"),
    (K.REFUND, {"status": "PENDING", "refundAmountDetails": {"refundAmount": "5.00", "currency": "USD"}}, "5.00"),
    (K.REVERSAL, {"status": "REVERSED", "reversalAmountDetails": {"reversedAmount": "102.21",
                                                                   "originalTransactionAmount": "102.21",
                                                                   "currency": "USD"}}, "102.21"),
    (K.VOID, {"status": "VOIDED", "voidAmountDetails": {"voidAmount": "20.00", "currency": "USD"}}, "20.00"),
])
def test_follow_on_responses(kind: PaymentKind, doc: dict[str, Any], amount: str) -> None:
    payment = to_payment({"id": "2", **doc}, kind=kind, parent_id="1")
    assert payment.kind is kind and payment.amount == Money.of(amount, USD) and payment.parent_id == "1"


@pytest.mark.parametrize(("apps", "kind"), [
    (["ics_auth"], K.AUTHORIZATION), (["ics_auth", "ics_bill"], K.SALE), (["ics_bill"], K.CAPTURE),
    (["ics_credit"], K.REFUND), (["ics_auth_reversal"], K.REVERSAL), (["ics_void"], K.VOID),
])
def test_tss_applications_give_the_kind(apps: list[str], kind: PaymentKind) -> None:
    doc = {"id": "3", "status": {K.CAPTURE: "PENDING", K.REFUND: "PENDING", K.REVERSAL: "REVERSED",
                                  K.VOID: "VOIDED"}.get(kind, "AUTHORIZED"),
           "orderInformation": {"amountDetails": {"totalAmount": "1.00", "currency": "USD"}},
           "applicationInformation": {"applications": [{"name": a} for a in apps]}}
    assert to_payment(doc).kind is kind


def test_several_problems_are_reported_together() -> None:
    doc = {"status": "AUTHORIZED", "orderInformation": {"amountDetails": {"totalAmount": "1.001", "currency": "USD"}},
           "paymentInformation": {"customer": {"id": "C"}, "card": {"suffix": "12"}}, "submitTimeUtc": "soon"}
    with pytest.raises(InvalidInput) as caught:
        to_payment(doc, path="x")
    assert [i.field for i in caught.value.issues] == [
        "x.id", "x.orderInformation.amountDetails.totalAmount", "x.paymentInformation.card.suffix", "x.submitTimeUtc",
    ]


TOKEN = PaymentToken(gateway="cybersource", token_id="A0000000000000000000000000004111", kind="payment_instrument",
                     brand="visa", last4="1111", expiry=date(2031, 12, 31))


def test_payment_request_is_token_only_with_decimal_strings() -> None:
    party = Party(first_name="John", last_name="Doe", email="john@example.com", phone="+14158880000",
                  address=Address(line1="1 Market St", city="San Francisco", region="CA", postal_code="94105",
                                  country="US"))
    request = AuthorizationRequest(
        amount=Money.of("1234.50", USD), order_reference="ORD-7", capture=True, token=TOKEN, party=party,
        merchant_defined={"1": "web"},
        line_items=(LineItem(sku="S", description="Thing", quantity=Decimal(2), unit_price=Money.of("617.25", USD)),),
    )
    body = payment_request(request).to_wire()
    assert body == {
        "clientReferenceInformation": {"code": "ORD-7"},
        "processingInformation": {"capture": True, "commerceIndicator": "internet"},
        "paymentInformation": {"paymentInstrument": {"id": "A0000000000000000000000000004111"}},
        "orderInformation": {
            "amountDetails": {"totalAmount": "1234.50", "currency": "USD"},
            "billTo": {"firstName": "John", "lastName": "Doe", "address1": "1 Market St", "locality": "San Francisco",
                       "administrativeArea": "CA", "postalCode": "94105", "country": "US",
                       "email": "john@example.com", "phoneNumber": "+14158880000"},
            "lineItems": [{"productSku": "S", "productName": "Thing", "quantity": 2, "unitPrice": "617.25"}],
        },
        "merchantDefinedInformation": [{"key": "1", "value": "web"}],
    }
    assert find_card_numbers(str(body)) == []


def test_instrument_identifier_tokens_send_expiry_and_type() -> None:
    token = TOKEN.model_copy(update={"kind": "instrument_identifier", "token_id": "7010000000016241111"})
    body = payment_request(AuthorizationRequest(amount=Money.of(5, "JPY"), order_reference="R", token=token)).to_wire()
    assert body["paymentInformation"] == {"instrumentIdentifier": {"id": "7010000000016241111"},
                                          "card": {"expirationMonth": "12", "expirationYear": "2031", "type": "001"}}
    assert body["orderInformation"]["amountDetails"] == {"totalAmount": "5", "currency": "JPY"}


def test_payment_request_refuses_what_cybersource_would() -> None:
    request = AuthorizationRequest(
        amount=Money.of("10.00", USD), order_reference="R",
        token=TOKEN.model_copy(update={"gateway": "paytrace", "kind": "vault"}),
        merchant_defined={"channel": "web"},
        line_items=(LineItem(quantity=Decimal("1.5"), unit_price=Money.of("1.00", USD)),),
    )
    with pytest.raises(InvalidInput) as caught:
        payment_request(request)
    assert [i.field for i in caught.value.issues] == [
        "token.gateway", "token.kind", "merchant_defined.channel", "line_items[0].quantity",
    ]
