"""Chargebacks: the sandbox's lifecycle controls, the chargeback-details report, and ``disputes(start, end)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from ledgerlink.connectors.cybersource import CybersourceGateway, CybersourceSettings, schemas
from ledgerlink.connectors.cybersource.disputes import DisputeActions, to_disputes
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.connectors.cybersource.sandbox.wire import Problem
from ledgerlink.model import AuthorizationRequest, DisputeStage, InvalidInput, Money, Payment, PaymentToken
from ledgerlink.model.cardnumbers import contains_card_number

from .conftest import GATEWAY_SETTINGS, VISA_INSTRUMENT

TOKEN = PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT, kind="payment_instrument")
OPENED_AT = datetime(2024, 3, 2, 9, tzinfo=UTC)
SDK_FIELDS = {  # ReportingV3ChargebackDetailsGet200ResponseChargebackDetails
    "processorMerchantId", "merchantName", "transactionReferenceNumber", "merchantReferenceNumber",
    "natureOfDispute", "alertType", "amount", "sign", "action", "cardType", "originalSettlementTime",
    "trackingNumber", "currencyCode", "requestId", "responseDueTime", "time", "actionDescription", "customerId",
    "reasonCode", "representmentCPTime", "applications", "eventRequestedTime", "preDisputeFlag",
}


@pytest.fixture
async def settled(sandbox: Sandbox, gateway: CybersourceGateway) -> AsyncIterator[Payment]:
    sandbox.store.clock.pin(datetime(2024, 3, 1, 12, tzinfo=UTC))
    sale = await gateway.authorize(AuthorizationRequest(amount=Money.of("80.00", "USD"), order_reference="ORD-CB",
                                                        capture=True, token=TOKEN))
    sandbox.settlements.close(date(2024, 3, 1))
    sandbox.store.clock.pin(OPENED_AT)
    yield sale


async def test_lifecycle_over_the_controls_and_the_report(sandbox: Sandbox, settled: Payment,
                                                         gateway: CybersourceGateway) -> None:
    async with httpx.AsyncClient(base_url="http://sandbox", transport=httpx.ASGITransport(app=sandbox.app)) as http:
        opened = await http.post("/__sandbox/disputes", json={"transactionId": settled.id, "amount": "30.00",
                                                              "reasonCode": "13.1"})
        assert opened.status_code == 201
        tracking = opened.json()["trackingNumber"]
        assert opened.json()["fee"] == "15.00" and opened.json()["outcome"] is None
        sandbox.store.clock.advance(86_400)
        lost = await http.post(f"/__sandbox/disputes/{tracking}", json={"outcome": "lost"})
        assert lost.json()["outcome"] == "lost"
        again = await http.post(f"/__sandbox/disputes/{tracking}", json={"outcome": "won"})
        assert again.status_code == 409
        listed = (await http.get("/__sandbox/disputes")).json()
        assert [e["action"] for e in listed[0]["events"]] == ["CHARGEBACK", "CHARGEBACK_LOST"]
    details = await gateway.client.chargeback_details(OPENED_AT - timedelta(hours=1), OPENED_AT + timedelta(days=2))
    opened_record, lost_record = (d.model_dump(by_alias=True, exclude_none=True) for d in details.chargeback_details)
    assert set(opened_record) - {"feeAmount", "feeCurrency"} <= SDK_FIELDS
    assert set(opened_record) >= SDK_FIELDS - {"customerId", "representmentCPTime"}
    assert {k: opened_record[k] for k in ("trackingNumber", "requestId", "merchantReferenceNumber", "amount", "sign",
                                          "action", "currencyCode", "reasonCode", "natureOfDispute", "time",
                                          "responseDueTime", "cardType", "feeAmount")} == {
        "trackingNumber": tracking, "requestId": settled.id, "merchantReferenceNumber": "ORD-CB", "amount": "30.00",
        "sign": "-", "action": "CHARGEBACK", "currencyCode": "USD", "reasonCode": "13.1",
        "natureOfDispute": "Consumer Dispute", "time": "2024-03-02T09:00:00Z", "responseDueTime": "2024-04-01T09:00:00Z",
        "cardType": "Visa", "feeAmount": "15.00"}
    assert (lost_record["action"], lost_record["sign"], lost_record["time"]) == (
        "CHARGEBACK_LOST", "", "2024-03-03T09:00:00Z")
    only_first_day = await gateway.client.chargeback_details(OPENED_AT, OPENED_AT + timedelta(days=1))
    assert [d.action for d in only_first_day.chargeback_details] == ["CHARGEBACK"]


async def test_disputes_are_canonical_stages(sandbox: Sandbox, settled: Payment, gateway: CybersourceGateway) -> None:
    chargeback = sandbox.disputes.open(settled.id, reason_code="10.4")
    sandbox.store.clock.advance(3600)
    sandbox.disputes.resolve(chargeback.tracking_number, "won")
    opened, won = await gateway.disputes(datetime(2024, 3, 2), datetime(2024, 3, 3))  # naive means UTC
    assert (opened.dispute_id, opened.transaction_id, opened.order_reference, opened.stage, opened.amount,
            opened.fee, opened.reason_code, opened.reason, opened.occurred_at, opened.respond_by) == (
        chargeback.tracking_number, settled.id, "ORD-CB", DisputeStage.OPENED, Money.of("80.00", "USD"),
        Money.of("15.00", "USD"), "10.4", "Fraud", OPENED_AT, OPENED_AT + timedelta(days=30))
    assert (won.dispute_id, won.stage, won.amount, won.fee, won.occurred_at) == (
        chargeback.tracking_number, DisputeStage.WON, Money.of("80.00", "USD"), None, OPENED_AT + timedelta(hours=1))
    assert await gateway.disputes(OPENED_AT + timedelta(minutes=1), OPENED_AT + timedelta(minutes=30)) == []


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"transactionId": "0"}, 404, "transactionId"),
    ({}, 400, "transactionId"),
    ({"transactionId": "{sale}", "amount": "80.01"}, 400, "amount"),
    ({"transactionId": "{sale}", "amount": "0"}, 400, "amount"),
    ({"transactionId": "{sale}", "amount": "1.001"}, 400, "amount"),
    ({"transactionId": "{sale}", "amount": 1.5}, 400, "amount"),
    ({"transactionId": "{sale}", "amount": "lots"}, 400, "amount"),
    ({"transactionId": "{sale}", "fee": "-1"}, 400, "fee"),
    ({"transactionId": "{unsettled}"}, 400, "transactionId"),
])
async def test_opening_is_refused_unless_it_makes_sense(sandbox: Sandbox, settled: Payment,
                                                        gateway: CybersourceGateway, body: dict[str, Any],
                                                        status: int, field: str) -> None:
    unsettled = await gateway.authorize(AuthorizationRequest(amount=Money.of("5.00", "USD"), order_reference="U",
                                                             capture=True, token=TOKEN))
    body = {k: (v.format(sale=settled.id, unsettled=unsettled.id) if isinstance(v, str) else v)
            for k, v in body.items()}
    async with httpx.AsyncClient(base_url="http://sandbox", transport=httpx.ASGITransport(app=sandbox.app)) as http:
        answer = await http.post("/__sandbox/disputes", json=body)
    assert (answer.status_code, answer.json()["field"]) == (status, field)


async def test_a_second_chargeback_gets_only_what_is_left(sandbox: Sandbox, settled: Payment) -> None:
    first = sandbox.disputes.open(settled.id, amount=Money.of("50.00", "USD").amount)
    with pytest.raises(Problem) as refused:
        sandbox.disputes.open(settled.id, amount=Money.of("30.01", "USD").amount)
    assert "up to 30.00" in refused.value.body["error"]
    sandbox.disputes.resolve(first.tracking_number, "won")  # won: the money is the merchant's again
    assert sandbox.disputes.open(settled.id).amount == Money.of("80.00", "USD").amount


def test_tracking_numbers_never_look_like_card_numbers(sandbox: Sandbox, settled: Payment) -> None:
    """A random 15-digit number passes for an Amex or Diners card about once in a hundred; SL's gateway refuses
    any request holding one, so such a tracking number would dead-letter its chargeback."""
    numbers = [sandbox.disputes.open(settled.id, amount=Money.of("0.01", "USD").amount).tracking_number
               for _ in range(600)]
    assert all(len(n) == 15 and n.isdigit() for n in numbers) and len(set(numbers)) == 600
    assert [n for n in numbers if contains_card_number(n)] == []


def record(**changes: Any) -> dict[str, Any]:
    base = {"trackingNumber": "T1", "requestId": "7000000000000000000001", "merchantReferenceNumber": "ORD-1",
            "action": "CHARGEBACK", "amount": "10.00", "currencyCode": "USD", "time": "2024-03-02T09:00:00Z",
            "reasonCode": "10.4"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


@pytest.mark.parametrize(("changes", "field", "reason"), [
    ({"action": "PRE_ARBITRATION"}, "chargebackDetails[0].action", "not a known chargeback action"),
    ({"action": None}, "chargebackDetails[0].action", "missing"),
    ({"trackingNumber": None}, "chargebackDetails[0].trackingNumber", "missing"),
    ({"requestId": None}, "chargebackDetails[0].requestId", "missing"),
    ({"amount": "10.001"}, "chargebackDetails[0].amount", "more decimal places"),
    ({"currencyCode": "XYZ"}, "chargebackDetails[0].currencyCode", "unknown currency"),
    ({"currencyCode": None}, "chargebackDetails[0].currencyCode", "missing currency"),
    ({"time": "yesterday"}, "chargebackDetails[0].time", "not an ISO 8601 time"),
    ({"time": None}, "chargebackDetails[0].time", "missing time"),
    ({"responseDueTime": "soon"}, "chargebackDetails[0].responseDueTime", "not an ISO 8601 time"),
    ({"feeAmount": "x"}, "chargebackDetails[0].feeAmount", "not a decimal amount"),
])
def test_bad_records_name_the_field(changes: dict[str, Any], field: str, reason: str) -> None:
    doc = schemas.ChargebackDetails.model_validate({"chargebackDetails": [record(**changes)]})
    with pytest.raises(InvalidInput) as refused:
        to_disputes(doc)
    assert refused.value.issues[0].field == field and reason in refused.value.issues[0].reason


def test_actions_are_configurable() -> None:
    doc = schemas.ChargebackDetails.model_validate({"chargebackDetails": [
        record(action="Retrieval Request"), record(action="chargeback"), record(action="Representment Won")]})
    actions = DisputeActions({"Retrieval Request": "ignore", "Representment Won": "won"})
    assert [d.stage for d in to_disputes(doc, actions)] == [DisputeStage.OPENED, DisputeStage.WON]
    with pytest.raises(ValueError, match="not one of"):
        DisputeActions({"X": "maybe"})
    with pytest.raises(ValidationError, match="dispute_actions"):
        CybersourceSettings.model_validate({**GATEWAY_SETTINGS, "dispute_actions": {"X": "maybe"}})
    settings = CybersourceSettings.model_validate({**GATEWAY_SETTINGS, "dispute_actions": {"X": "lost"}})
    assert settings.dispute_actions == {"X": "lost"}
