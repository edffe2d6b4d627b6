"""Decision Manager: reason codes in words, case actions against the sandbox over signed HTTP, and the
``risk.casemanagement.decision.*`` notifications it sends (signed like every other) and how they parse."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from ledgerlink.connectors.cybersource import CybersourceGateway
from ledgerlink.connectors.cybersource.decision_manager import case_action, describe
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.connectors.cybersource.webhooks import parse_notification
from ledgerlink.connectors.kit.errors import PermanentError
from ledgerlink.model import (
    AuthorizationRequest,
    EventType,
    InvalidInput,
    Money,
    Party,
    PaymentStatus,
    PaymentToken,
    ReviewDecision,
)

from .conftest import GATEWAY_SETTINGS, VISA_CUSTOMER, Receiver, drain

TOKEN = PaymentToken(gateway="cybersource", token_id=VISA_CUSTOMER, kind="customer")


async def held(gateway: CybersourceGateway, order: str, amount: str = "40.09", *, capture: bool = False) -> Any:
    payment = await gateway.authorize(AuthorizationRequest(
        amount=Money.of(amount, "USD"), order_reference=order, token=TOKEN, capture=capture,
        party=Party(first_name="Ada", last_name="Lovelace", email="ada@example.com")))
    assert payment.status is PaymentStatus.PENDING_REVIEW
    return payment


def test_reason_codes_are_described_in_plain_words() -> None:
    reasons = {r.code: r.description for r in describe(["480", "V", "VEL-CC", "COR-BA", "NEG-EM", "VELX-ZZ",
                                                        "XYZ", "480"])}
    assert reasons["480"] == "Decision Manager marked the order for review"
    assert reasons["V"].startswith("Velocity")
    assert "negative list" in reasons["NEG-EM"]
    assert reasons["VELX-ZZ"].startswith("Velocity") and "(VELX-ZZ)" in reasons["VELX-ZZ"]
    assert reasons["XYZ"] == "Decision Manager code XYZ (no description known)"
    assert len(describe(["480", "480"])) == 1


async def test_a_review_payment_carries_its_reasons_in_words(gateway: CybersourceGateway) -> None:
    payment = await held(gateway, "DM-1")
    assert payment.risk is not None and payment.risk.decision == "review"
    described = {r.code: r.description for r in payment.risk.reasons}
    assert {"480", "VEL-CC", "COR-BA"} <= set(described) and all(described.values())


async def test_accepting_captures_and_notifies(gateway: CybersourceGateway, sandbox: Sandbox,
                                               receiver: Receiver) -> None:
    payment = await held(gateway, "DM-2")
    await drain(sandbox, receiver)
    assert await gateway.review_outcome(payment.id) is None
    verdict = await gateway.decide_review(payment.id, ReviewDecision.ACCEPT, comments="ok", reviewer="rita")
    capture = sandbox.store.transactions[verdict.follow_on_id or ""]
    assert capture.kind == "capture" and capture.amount == Decimal("40.09")
    assert sandbox.store.transactions[payment.id].status == "AUTHORIZED"
    outcome = await gateway.review_outcome(payment.id)
    assert outcome is not None and outcome.decision is ReviewDecision.ACCEPT and outcome.follow_on_id == capture.id
    types = {d.headers["v-c-event-type"]: d for d in await drain(sandbox, receiver)}
    assert {"payments.captures.accept", "risk.casemanagement.decision.accept"} <= set(types)
    delivery = types["risk.casemanagement.decision.accept"]
    gateway.verify_webhook(delivery.headers, delivery.body)  # signed like every other notification
    event = gateway.parse_webhook(delivery.headers, delivery.body)
    assert event.event_type is EventType.REVIEW_DECISION and event.payment_id == payment.id
    assert event.partition_key == "DM-2" and event.event_id == f"risk.casemanagement.decision.accept:{payment.id}"
    assert event.review is not None and event.review.decision is ReviewDecision.ACCEPT
    assert event.review.follow_on_id == capture.id

    with pytest.raises(PermanentError) as closed:  # the case is closed: refused, nothing changes
        await gateway.decide_review(payment.id, ReviewDecision.REJECT)
    assert closed.value.provider_code == "NOT_SUPPORTED"
    assert sandbox.store.transactions[payment.id].status == "AUTHORIZED"


async def test_rejecting_reverses(gateway: CybersourceGateway, sandbox: Sandbox) -> None:
    payment = await held(gateway, "DM-3")
    verdict = await gateway.decide_review(payment.id, ReviewDecision.REJECT)
    reversal = sandbox.store.transactions[verdict.follow_on_id or ""]
    assert reversal.kind == "reversal" and sandbox.store.transactions[payment.id].status == "REVERSED"
    outcome = await gateway.review_outcome(payment.id)
    assert outcome is not None and outcome.decision is ReviewDecision.REJECT and outcome.follow_on_id == reversal.id


async def test_a_sale_in_review_is_captured_in_itself_when_accepted(gateway: CybersourceGateway,
                                                                    sandbox: Sandbox) -> None:
    sale = await held(gateway, "DM-4", capture=True)
    verdict = await gateway.decide_review(sale.id, ReviewDecision.ACCEPT)
    assert verdict.follow_on_id == sale.id
    fetched = await gateway.get_payment(sale.id)
    assert fetched.status is PaymentStatus.CAPTURED


async def test_case_actions_refuse_bad_bodies_naming_the_field(gateway: CybersourceGateway, sandbox: Sandbox) -> None:
    payment = await held(gateway, "DM-5")
    for body, field in (({}, "decisionInformation.decision"),
                        ({"decisionInformation": {"decision": "MAYBE"}}, "decisionInformation.decision"),
                        ({"decisionInformation": {"decision": "ACCEPT"},
                          "processingInformation": {"actionList": ["REVERSE"]}}, "processingInformation.actionList")):
        with pytest.raises(PermanentError) as refused:
            await gateway.client.case_action(payment.id, body)
        assert refused.value.field == field
    assert sandbox.store.transactions[payment.id].status == "AUTHORIZED_PENDING_REVIEW"
    assert case_action(ReviewDecision.REJECT, comments="fraud", reviewer="bob") == {
        "decisionInformation": {"decision": "REJECT", "comments": "[bob] fraud"},
        "processingInformation": {"actionList": ["REVERSE"]}}


def _notification(event_type: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"webhookId": "w", "transactionTraceId": "t", "productId": "decisionManager",
                         "organizationId": GATEWAY_SETTINGS["merchant_id"], "eventType": event_type,
                         "eventDate": "2026-03-01T10:15:30", "requestType": "NEW", "retryNumber": 0,
                         "payload": {"data": data}})


def test_a_case_decision_notification_parses_reviewer_comments_and_embedded_capture() -> None:
    event = parse_notification(_notification("risk.casemanagement.decision.reject", {
        "id": "7000000000000000000001", "clientReferenceInformation": {"code": "WEB-9"},
        "notes": [{"addedBy": "rita", "comment": "called the bank"}, {"comment": "no answer"}],
        "_embedded": {"reversal": {"_links": {"self": {"href": "/pts/v2/reversals/7000000000000000000002"}}}}}))
    assert event.event_type is EventType.REVIEW_DECISION and event.payment is None
    assert event.review is not None and event.review.decision is ReviewDecision.REJECT
    assert event.review.reviewer == "rita" and event.review.comments == "called the bank / no answer"
    assert event.review.follow_on_id == "7000000000000000000002" and event.partition_key == "WEB-9"
    with pytest.raises(InvalidInput) as bad:
        parse_notification(_notification("risk.casemanagement.decision.accept", {"notes": []}))
    assert bad.value.issues[0].field == "payload.data.id"
