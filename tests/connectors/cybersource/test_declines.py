"""Hard or soft: Cybersource decline reasons (spec §4.5) classified for dunning, and what a renewal sends."""

from __future__ import annotations

from datetime import date

import pytest

from ledgerlink.connectors.cybersource.declines import HARD_DECLINES, SOFT_DECLINES, classify_decline
from ledgerlink.connectors.cybersource.instruments import read_instrument
from ledgerlink.connectors.cybersource.translate import payment_request, to_payment
from ledgerlink.model import (
    AuthorizationRequest,
    DeclineCategory,
    Money,
    PaymentKind,
    PaymentStatus,
    PaymentToken,
    TokenState,
)

SPEC_REASONS = """AVS_FAILED, CONTACT_PROCESSOR, EXPIRED_CARD, PROCESSOR_DECLINED, INSUFFICIENT_FUND,
STOLEN_LOST_CARD, ISSUER_UNAVAILABLE, UNAUTHORIZED_CARD, CVN_NOT_MATCH, EXCEEDS_CREDIT_LIMIT,
INVALID_CVN, BLOCKED_BY_CARDHOLDER, DECLINED_CHECK, BLACKLISTED_CUSTOMER, SUSPENDED_ACCOUNT,
PAYMENT_REFUSED, CV_FAILED, INVALID_ACCOUNT, GENERAL_DECLINE, INVALID_MERCHANT_CONFIGURATION,
DECISION_PROFILE_REJECT, SCORE_EXCEEDS_THRESHOLD, PENDING_AUTHENTICATION, ACH_VERIFICATION_FAILED,
DECISION_PROFILE_REVIEW, CONSUMER_AUTHENTICATION_REQUIRED, CONSUMER_AUTHENTICATION_FAILED,
ALLOWABLE_PIN_RETRIES_EXCEEDED, PROCESSOR_ERROR, CUSTOMER_WATCHLIST_MATCH,
ADDRESS_COUNTRY_WATCHLIST_MATCH, EMAIL_COUNTRY_WATCHLIST_MATCH, IP_COUNTRY_WATCHLIST_MATCH,
DAGGREJECTED, DAGGDENIED, DSYSREJECTED"""


@pytest.mark.parametrize("reason", ["STOLEN_LOST_CARD", "INVALID_ACCOUNT", "SUSPENDED_ACCOUNT", "EXPIRED_CARD",
                                    "BLOCKED_BY_CARDHOLDER", "DECISION_PROFILE_REJECT", "stolen_lost_card "])
def test_hard_declines(reason: str) -> None:
    assert classify_decline(reason) is DeclineCategory.HARD


@pytest.mark.parametrize("reason", ["INSUFFICIENT_FUND", "ISSUER_UNAVAILABLE", "EXCEEDS_CREDIT_LIMIT",
                                    "PROCESSOR_DECLINED", "GENERAL_DECLINE", "PROCESSOR_ERROR", None,
                                    "SOMETHING_NEW"])
def test_soft_declines(reason: str | None) -> None:
    assert classify_decline(reason) is DeclineCategory.SOFT


def test_every_reason_in_the_spec_is_classified_on_purpose() -> None:
    reasons = {r.strip() for r in SPEC_REASONS.replace("\n", " ").split(",")}
    assert len(reasons) == 36
    assert reasons <= HARD_DECLINES | SOFT_DECLINES
    assert not HARD_DECLINES & SOFT_DECLINES


def test_a_declined_response_carries_its_category() -> None:
    doc = {"id": "7000000000000000000001", "status": "DECLINED", "submitTimeUtc": "2027-01-01T06:00:00Z",
           "clientReferenceInformation": {"code": "SUB-RC000001-20270101"},
           "errorInformation": {"reason": "STOLEN_LOST_CARD", "message": "Decline - Stolen or lost card."}}
    payment = to_payment(doc, kind=PaymentKind.SALE, fallback_amount=Money.of("29.90", "USD"))
    assert payment.status is PaymentStatus.DECLINED and payment.decline_category is DeclineCategory.HARD
    approved = to_payment({**doc, "status": "AUTHORIZED", "errorInformation": None}, kind=PaymentKind.SALE,
                          fallback_amount=Money.of("29.90", "USD"))
    assert approved.decline_category is None


def test_a_renewal_is_a_merchant_initiated_recurring_sale_with_our_key() -> None:
    request = AuthorizationRequest(amount=Money.of("29.90", "USD"), order_reference="SUB-RC000001-20270101",
                                   capture=True, recurring=True, reference="subscription:x:2027-01-01:charge:1",
                                   token=PaymentToken(gateway="cybersource", token_id="A" * 32))
    wire = payment_request(request).to_wire()
    assert wire["clientReferenceInformation"] == {"code": "SUB-RC000001-20270101",
                                                  "transactionId": "subscription:x:2027-01-01:charge:1"}
    processing = wire["processingInformation"]
    assert processing["commerceIndicator"] == "recurring" and processing["capture"] is True
    assert processing["authorizationOptions"]["initiator"] == {"type": "merchant", "credentialStoredOnFile": True,
                                                               "storedCredentialUsed": True}
    plain = payment_request(request.model_copy(update={"recurring": False, "reference": None})).to_wire()
    assert plain["processingInformation"] == {"capture": True, "commerceIndicator": "internet"}
    assert "transactionId" not in plain["clientReferenceInformation"]


def test_a_payment_instrument_reads_as_a_stored_card() -> None:
    doc = {"id": "B" * 32, "state": "ACTIVE", "card": {"type": "002", "expirationMonth": "03",
                                                        "expirationYear": "2027"},
           "instrumentIdentifier": {"id": "7010000000012345555"},
           "_embedded": {"instrumentIdentifier": {"card": {"number": "XXXXXXXXXXXX5555"}}}}
    card = read_instrument(doc)
    assert card.state is TokenState.ACTIVE and card.token.expiry == date(2027, 3, 31)
    assert card.token.brand == "mastercard" and card.token.last4 == "5555"
    assert read_instrument(doc, today=date(2027, 4, 1)).state is TokenState.EXPIRED
    assert read_instrument({**doc, "state": "CLOSED"}).state is TokenState.DELETED
