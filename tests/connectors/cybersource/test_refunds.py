"""Refunds by reference, finding them again through Transaction Search, and the follow-on webhooks."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from ledgerlink.connectors.cybersource import CybersourceGateway, build_gateway
from ledgerlink.connectors.cybersource.client import CybersourceClient
from ledgerlink.connectors.cybersource.gateway import search_value
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.connectors.cybersource.sandbox.search import parse_query
from ledgerlink.connectors.cybersource.webhooks import parse_notification
from ledgerlink.connectors.kit.errors import Rejected
from ledgerlink.model import (
    AuthorizationRequest,
    EventType,
    InvalidInput,
    Money,
    Payment,
    PaymentKind,
    PaymentStatus,
    PaymentToken,
)

from .conftest import GATEWAY_SETTINGS, VISA_INSTRUMENT, Receiver, drain, sandbox_settings

TOKEN = PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT, kind="payment_instrument")


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


async def sale(gateway: CybersourceGateway, amount: str = "50.00", order: str = "ORD-1") -> Payment:
    return await gateway.authorize(AuthorizationRequest(amount=usd(amount), order_reference=order, capture=True,
                                                        token=TOKEN))


async def test_refund_sends_our_reference_as_the_client_transaction_id(gateway: CybersourceGateway,
                                                                      sandbox: Sandbox) -> None:
    paid = await sale(gateway)
    refund = await gateway.refund(paid.id, usd("20.00"), reference="refund:ORD-1:1", order_reference="ORD-1")
    assert (refund.kind, refund.status, refund.amount, refund.parent_id, refund.order_reference) == (
        PaymentKind.REFUND, PaymentStatus.REFUNDED, usd("20.00"), paid.id, "ORD-1")
    stored = sandbox.store.transactions[refund.id]
    assert (stored.client_transaction_id, stored.code) == ("refund:ORD-1:1", "ORD-1")
    details = await gateway.client.get_transaction(refund.id)
    assert details.client_reference_information is not None
    assert details.client_reference_information.transaction_id == "refund:ORD-1:1"


async def test_refund_of_a_capture_and_without_order_reference(gateway: CybersourceGateway) -> None:
    auth = await gateway.authorize(AuthorizationRequest(amount=usd("30.00"), order_reference="ORD-2", token=TOKEN))
    capture = await gateway.capture(auth.id, usd("30.00"))
    refund = await gateway.refund(capture.id, usd("30.00"), reference="r-2")
    assert refund.parent_id == capture.id and refund.order_reference == "ORD-2"  # inherited from the auth
    found = await gateway.find_refund("r-2")
    assert found is not None and (found.id, found.parent_id, found.root_id) == (refund.id, capture.id, auth.id)


async def test_refund_needs_a_reference(gateway: CybersourceGateway) -> None:
    paid = await sale(gateway)
    with pytest.raises(InvalidInput, match="reference"):
        await gateway.refund(paid.id, usd("1.00"), reference=" ")


async def test_over_refund_is_a_400_naming_the_amount(gateway: CybersourceGateway) -> None:
    paid = await sale(gateway, "10.00")
    await gateway.refund(paid.id, usd("6.00"), reference="a")
    with pytest.raises(Rejected) as refused:
        await gateway.refund(paid.id, usd("4.01"), reference="b")
    assert (refused.value.status, refused.value.provider_code, refused.value.field) == (
        400, "INVALID_AMOUNT", "orderInformation.amountDetails.totalAmount")
    assert await gateway.find_refund("b") is None  # a refused refund leaves nothing to find


async def test_find_refund_survives_awkward_references(gateway: CybersourceGateway) -> None:
    paid = await sale(gateway)
    awkward = 'refund "one" AND id:1 \\ x'
    refund = await gateway.refund(paid.id, usd("1.00"), reference=awkward)
    found = await gateway.find_refund(awkward)
    assert found is not None and found.id == refund.id
    assert await gateway.find_refund("refund") is None


async def test_find_refund_ignores_non_refunds_with_the_same_client_id(gateway: CybersourceGateway,
                                                                       sandbox: Sandbox) -> None:
    paid = await sale(gateway)
    sandbox.store.transactions[paid.id].client_transaction_id = "shared"  # as if the sale had been sent with it
    sandbox.store.by_client_transaction_id["shared"] = [paid.id]
    summaries = (await gateway.client.search_transactions('clientReferenceInformation.transactionId:"shared"')).summaries
    assert [s.id for s in summaries] == [paid.id]
    assert await gateway.find_refund("shared") is None
    first = await gateway.refund(paid.id, usd("1.00"), reference="shared")
    await gateway.refund(paid.id, usd("2.00"), reference="shared")
    found = await gateway.find_refund("shared")
    assert found is not None and found.id == first.id  # the earliest of a reference used twice


async def test_a_declined_refund_is_a_result_and_emits_a_reject(receiver: Receiver) -> None:
    settings = sandbox_settings(refund_outcome_by_cents={"01": "DECLINED:PROCESSOR_DECLINED"})
    async with Sandbox(settings, webhook_transport=httpx.ASGITransport(app=receiver)) as sandbox, \
            build_gateway(GATEWAY_SETTINGS, transport=httpx.ASGITransport(app=sandbox.app)) as gateway:
        paid = await sale(gateway)
        declined = await gateway.refund(paid.id, usd("10.01"), reference="d-1")
        assert (declined.kind, declined.status, declined.decline_reason) == (
            PaymentKind.REFUND, PaymentStatus.DECLINED, "PROCESSOR_DECLINED")
        accepted = await gateway.refund(paid.id, usd("50.00"), reference="d-2")  # the decline held nothing back
        assert accepted.status is PaymentStatus.REFUNDED
        events = [gateway.parse_webhook(d.headers, d.body) for d in await drain(sandbox, receiver)]
        rejects = [e for e in events if e.gateway_event_type == "payments.refunds.reject"]
        assert len(rejects) == 1 and rejects[0].event_type is EventType.REFUND
        assert rejects[0].payment is not None and rejects[0].payment.status is PaymentStatus.DECLINED


@pytest.mark.parametrize("detail", ["full", "id_only"])
async def test_follow_on_webhooks_say_what_they_act_on(receiver: Receiver, detail: str) -> None:
    async with Sandbox(sandbox_settings(emitter={"payload_detail": detail}),
                       webhook_transport=httpx.ASGITransport(app=receiver)) as sandbox, \
            build_gateway(GATEWAY_SETTINGS, transport=httpx.ASGITransport(app=sandbox.app)) as gateway:
        paid = await sale(gateway, "40.00", "ORD-W")
        refund = await gateway.refund(paid.id, usd("15.00"), reference="w-1")
        voided_sale = await sale(gateway, "12.00", "ORD-V")
        void = await gateway.void(voided_sale.id)
        held = await gateway.authorize(AuthorizationRequest(amount=usd("9.00"), order_reference="ORD-R", token=TOKEN))
        reversal = await gateway.reverse(held.id, usd("9.00"))
        expected = {refund.id: (EventType.REFUND, PaymentKind.REFUND, "15.00", paid.id, "ORD-W"),
                    void.id: (EventType.VOID, PaymentKind.VOID, "12.00", voided_sale.id, "ORD-V"),
                    reversal.id: (EventType.REVERSAL, PaymentKind.REVERSAL, "9.00", held.id, "ORD-R")}
        seen = {}
        for delivery in await drain(sandbox, receiver):
            event = gateway.parse_webhook(delivery.headers, delivery.body)
            if event.payment_id in expected:
                payment = event.payment or await gateway.get_payment(event.payment_id)
                seen[event.payment_id] = (event.event_type, payment.kind, payment.amount.format(),
                                          payment.parent_id, payment.order_reference)
                assert payment.root_id == expected[event.payment_id][3] or payment.root_id == held.id
                if detail == "full":  # an id-only event knows no order reference
                    assert event.partition_key == expected[event.payment_id][4]
        assert seen == expected


async def test_tss_search_over_http(client: CybersourceClient, gateway: CybersourceGateway) -> None:
    first = await sale(gateway, "11.00", "SEARCH-1")
    second = await sale(gateway, "12.00", "SEARCH-1")
    found = await client.search_transactions('clientReferenceInformation.code:SEARCH-1 AND '
                                             'submitTimeUtc:[NOW/DAY-7DAYS TO NOW/DAY+1DAY}',
                                             sort="submitTimeUtc:desc,id:desc")
    assert [s.id for s in found.summaries] == [second.id, first.id]
    assert found.total_count == 2 and found.count == 2 and found.search_id
    summary = found.summaries[0]
    assert summary.order_information is not None and summary.order_information.amount_details is not None
    assert summary.order_information.amount_details.total_amount == "12.00"
    assert summary.links is not None and summary.links["transactionDetail"]["href"].endswith(second.id)
    page = await client.search_transactions(f"id:{first.id}", limit=1, offset=0)
    assert [s.id for s in page.summaries] == [first.id]
    empty = await client.search_transactions("id:0")
    assert empty.total_count == 0 and empty.summaries == []
    again = await client._call("GET", f"/tss/v2/searches/{found.search_id}", "get_search")
    assert [s["id"] for s in again["_embedded"]["transactionSummaries"]] == [second.id, first.id]


@pytest.mark.parametrize(("query", "message"), [
    ("merchantId:testrest", "not supported"),
    ("id:1 OR id:2", "Only AND"),
    ("id:1 AND", "ends with AND"),
    ("justtext", "field:value"),
    ('id:"unterminated', "cannot be read"),
    ("id:[1 TO 2]", "Ranges"),
])
async def test_unsupported_queries_are_400s_naming_query(client: CybersourceClient, query: str,
                                                         message: str) -> None:
    with pytest.raises(Rejected) as refused:
        await client.search_transactions(query)
    assert refused.value.field == "query" and message in str(refused.value.body)


def test_query_values_round_trip_through_quoting() -> None:
    for value in ["plain", "with space", 'quote"inside', "back\\slash", "x AND id:1", "colon:yes"]:
        assert parse_query(f"clientReferenceInformation.transactionId:{search_value(value)}") == [
            ("clientReferenceInformation.transactionId", value)]


async def test_search_bad_paging_is_refused(sandbox: Sandbox, client: CybersourceClient) -> None:
    body: dict[str, Any] = {"query": "id:1", "limit": -1}
    with pytest.raises(Rejected) as refused:
        await client._call("POST", "/tss/v2/searches", "search", body)
    assert refused.value.field == "limit"


@pytest.mark.parametrize(("event_type", "block", "kind", "event"), [
    ("payments.refunds.accept", {"refundAmountDetails": {"refundAmount": "7.50", "currency": "USD"}},
     PaymentKind.REFUND, EventType.REFUND),
    ("payments.voids.accept", {"voidAmountDetails": {"voidAmount": "7.50", "currency": "USD"}},
     PaymentKind.VOID, EventType.VOID),
    ("payments.reversals.accept", {"reversalAmountDetails": {"reversedAmount": "7.50", "currency": "USD"}},
     PaymentKind.REVERSAL, EventType.REVERSAL),
])
def test_follow_on_payloads_with_their_own_amount_blocks(event_type: str, block: dict[str, Any], kind: PaymentKind,
                                                         event: EventType) -> None:
    status = {"payments.refunds.accept": "PENDING", "payments.voids.accept": "VOIDED"}.get(event_type, "REVERSED")
    data = {"id": "7000000000000000000002", "rootId": "7000000000000000000001", "status": status,
            "clientReferenceInformation": {"code": "ORD-1", "transactionId": "ref-1"},
            "_links": {"parentTransaction": {"href": "/tss/v2/transactions/7000000000000000000001/"}}, **block}
    body = orjson.dumps({"eventType": event_type, "payload": {"data": data}})
    parsed = parse_notification(body)
    assert parsed.event_type is event and parsed.payment is not None
    payment = parsed.payment
    assert (payment.kind, payment.amount, payment.root_id, payment.parent_id, payment.order_reference) == (
        kind, usd("7.50"), "7000000000000000000001", "7000000000000000000001", "ORD-1")
