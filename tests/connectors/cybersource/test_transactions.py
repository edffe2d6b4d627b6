"""Transactions by submit time (Transaction Search ranges), as the events their notifications carried: what
the gap sweep compares with the inbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledgerlink.connectors.cybersource import CybersourceClient, CybersourceGateway
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.connectors.cybersource.transactions import window_query
from ledgerlink.connectors.cybersource.webhooks import parse_notification
from ledgerlink.model import AuthorizationRequest, Money, Party, PaymentToken
from tests.connectors.cybersource.conftest import VISA_INSTRUMENT, Receiver

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


async def pay(gateway: CybersourceGateway, order: str, amount: str, *, capture: bool = True) -> str:
    payment = await gateway.authorize(AuthorizationRequest(
        amount=Money.of(amount, "USD"), order_reference=order, capture=capture,
        token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT), party=Party(email="t@example.com")))
    return payment.id


async def test_search_applies_a_submit_time_range(sandbox: Sandbox, gateway: CybersourceGateway,
                                                  client: CybersourceClient) -> None:
    ids = []
    for minute in range(4):
        sandbox.store.clock.pin(T0 + timedelta(minutes=minute))
        ids.append(await pay(gateway, f"R-{minute}", "10.00"))
    window = window_query(T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))
    found = await client.search_transactions(window)
    assert [s.id for s in found.summaries] == ids[1:3]  # [start, end)
    inclusive = await client.search_transactions(
        "submitTimeUtc:[2026-03-02T12:01:00Z TO 2026-03-02T12:03:00Z]")
    assert [s.id for s in inclusive.summaries] == ids[1:4]
    relative = await client.search_transactions("submitTimeUtc:[NOW-2MINUTES TO *]")  # clock at 12:03
    assert [s.id for s in relative.summaries] == ids[1:4]
    day = await client.search_transactions("submitTimeUtc:[NOW/DAY-7DAYS TO NOW/DAY+1DAY}")
    assert len(day.summaries) == 4


async def test_transaction_events_match_what_the_webhooks_carried(sandbox: Sandbox, gateway: CybersourceGateway,
                                                                  receiver: Receiver) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    sale = await pay(gateway, "E-SALE", "20.00")
    auth = await pay(gateway, "E-PAIR", "30.00", capture=False)
    capture = await gateway.capture(auth, Money.of("30.00", "USD"), order_reference="E-PAIR")
    await gateway.refund(sale, Money.of("5.00", "USD"), reference="refund-1", order_reference="E-SALE")
    await pay(gateway, "E-DECLINE", "40.01")
    await pay(gateway, "E-REVIEW", "50.09")
    reversed_auth = await pay(gateway, "E-REVERSE", "60.00", capture=False)
    await gateway.reverse(reversed_auth, Money.of("60.00", "USD"), order_reference="E-REVERSE")
    voided = await pay(gateway, "E-VOID", "70.00")
    await gateway.void(voided, order_reference="E-VOID")
    await sandbox.emitter.wait_idle(5)

    delivered = {parse_notification(d.body).event_id: parse_notification(d.body) for d in receiver.take()}
    delivered = {k: v for k, v in delivered.items() if k.startswith("payments.")}
    events = await gateway.transaction_events(start, datetime.now(UTC) + timedelta(seconds=1))
    assert {e.event_id for e in events} == set(delivered)
    for event in events:
        webhook = delivered[event.event_id]
        assert (event.event_type, event.payment_id, event.payment) == (webhook.event_type, webhook.payment_id, None)
        if webhook.partition_key.startswith("E-"):  # full-detail webhooks: the order reference
            assert event.partition_key == webhook.partition_key
    assert capture.id in {e.payment_id for e in events}
