"""The sandbox's webhook emitter: signed per spec §6.4, retried, duplicated and reordered on request, never blocking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from ledgerlink.connectors.cybersource import CybersourceGateway, build_gateway
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.model import AuthorizationRequest, EventType, Money, PaymentToken

from .conftest import GATEWAY_SETTINGS, VISA_CUSTOMER, WEBHOOK_URL, Receiver, drain, sandbox_settings

TOKEN = PaymentToken(gateway="cybersource", token_id=VISA_CUSTOMER, kind="customer")


def request(amount: str = "25.00", *, capture: bool = False, ref: str = "ORD-1") -> AuthorizationRequest:
    return AuthorizationRequest(amount=Money.of(amount, "USD"), order_reference=ref, capture=capture, token=TOKEN)


async def wired(receiver: Receiver, **overrides: Any) -> tuple[Sandbox, CybersourceGateway]:
    sandbox = Sandbox(sandbox_settings(**overrides), webhook_transport=httpx.ASGITransport(app=receiver))
    await sandbox.start()
    return sandbox, build_gateway(GATEWAY_SETTINGS, transport=httpx.ASGITransport(app=sandbox.app))


@pytest.fixture
async def stack(receiver: Receiver, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Sandbox, CybersourceGateway]]:
    overrides = getattr(request, "param", {})
    sandbox, gateway = await wired(receiver, **overrides)
    yield sandbox, gateway
    await gateway.aclose()
    await sandbox.stop()


async def test_notifications_are_signed_verified_and_parsed(stack, receiver: Receiver) -> None:
    sandbox, gateway = stack
    auth = await gateway.authorize(request())
    capture = await gateway.capture(auth.id, Money.of("25.00", "USD"), order_reference="ORD-1")
    deliveries = await drain(sandbox, receiver)
    assert [d.headers["v-c-event-type"] for d in deliveries] == ["payments.payments.accept", "payments.captures.accept"]
    for delivery, payment in zip(deliveries, (auth, capture), strict=True):
        headers = delivery.headers
        assert headers["content-type"] == "application/json"
        assert headers["v-c-organization-id"] == "testrest" and headers["v-c-product-name"] == "cardProcessing"
        assert headers["v-c-request-type"] == "NEW" and headers["v-c-retry-count"] == "0"
        envelope = orjson.loads(delivery.body)
        assert delivery.body == orjson.dumps(envelope)  # compact
        assert envelope["transactionTraceId"] == headers["v-c-transaction-trace-id"]
        assert envelope["webhookId"] == headers["v-c-webhook-id"]
        assert set(envelope) == {"webhookId", "transactionTraceId", "productId", "organizationId", "eventType",
                                 "eventDate", "requestType", "retryNumber", "payload"}
        gateway.verify_webhook(headers, delivery.body)
        event = gateway.parse_webhook(headers, delivery.body)
        assert event.payment_id == payment.id and event.partition_key == "ORD-1"
        assert event.payment is not None and event.payment.status is payment.status
    assert sandbox.stats()["webhooks"]["delivered"] == 2


@pytest.mark.parametrize("stack", [{"emitter": {"signature_variant": "raw", "payload_detail": "id_only"}}],
                         indirect=True)
async def test_raw_variant_and_id_only_payloads(stack, receiver: Receiver) -> None:
    sandbox, gateway = stack
    auth = await gateway.authorize(request())
    [delivery] = await drain(sandbox, receiver)
    gateway.verify_webhook(delivery.headers, delivery.body)
    event = gateway.parse_webhook(delivery.headers, delivery.body)
    assert event.payment is None and event.payment_id == auth.id
    assert orjson.loads(delivery.body)["payload"]["data"]["_links"]["self"]["href"] == f"/tss/v2/transactions/{auth.id}"


async def test_review_reaches_card_and_risk_subscribers(stack, receiver: Receiver) -> None:
    sandbox, gateway = stack
    review = await gateway.authorize(request("25.09"))
    events = [gateway.parse_webhook(d.headers, d.body) for d in await drain(sandbox, receiver)]
    assert {e.gateway_event_type for e in events} == {"payments.payments.review", "risk.profile.decision.review"}
    assert {e.event_type for e in events} == {EventType.REVIEW}
    assert all(e.payment is not None and e.payment.risk is not None and e.payment.risk.decision == "review"
               and e.payment_id == review.id for e in events)


async def test_retries_until_2xx_with_new_trace_ids(stack, receiver: Receiver) -> None:
    sandbox, gateway = stack
    receiver.statuses.extend([500, 503, 404])
    await gateway.authorize(request())
    [delivery] = await drain(sandbox, receiver)
    attempts = receiver.attempts
    assert len(attempts) == 4
    assert [a.headers["v-c-request-type"] for a in attempts] == ["NEW", "RETRY", "RETRY", "RETRY"]
    assert [a.headers["v-c-retry-count"] for a in attempts] == ["0", "1", "2", "3"]
    assert len({a.headers["v-c-transaction-trace-id"] for a in attempts}) == 4
    assert orjson.loads(delivery.body)["retryNumber"] == 3
    gateway.verify_webhook(delivery.headers, delivery.body)
    stats = sandbox.stats()["webhooks"]
    assert (stats["delivered"], stats["failed_attempts"], stats["pending"]) == (1, 3, 0)
    log = sandbox.emitter.log[-1]
    assert log["delivered"] and log["retryNumber"] == 3 and log["requestType"] == "RETRY"


@pytest.mark.parametrize("stack", [{"emitter": {"max_attempts": 3}}], indirect=True)
async def test_gives_up_after_max_attempts(stack, receiver: Receiver) -> None:
    sandbox, gateway = stack
    receiver.statuses.extend([500] * 10)
    await gateway.authorize(request())
    assert await drain(sandbox, receiver) == []
    stats = sandbox.stats()["webhooks"]
    assert (stats["failed"], stats["attempts"], stats["pending"]) == (1, 3, 0)
    assert sandbox.emitter.log[-1]["delivered"] is False


async def test_a_refused_connection_is_retried(receiver: Receiver) -> None:
    sandbox = Sandbox(sandbox_settings(subscriptions=[{"url": "http://127.0.0.1:9/webhooks"}],
                                       emitter={"max_attempts": 2}))
    async with sandbox, build_gateway(GATEWAY_SETTINGS, transport=httpx.ASGITransport(app=sandbox.app)).client as c:
        await c.create_payment({"clientReferenceInformation": {"code": "R"},
                                "paymentInformation": {"customer": {"id": VISA_CUSTOMER}},
                                "orderInformation": {"amountDetails": {"totalAmount": "1.00", "currency": "USD"}}})
        assert await sandbox.emitter.wait_idle(5)
    assert sandbox.stats()["webhooks"]["failed"] == 1
    assert "ConnectError" in (sandbox.emitter.log[-1]["error"] or "")


@pytest.mark.parametrize("stack", [{"emitter": {"duplicate_rate": 1.0}}], indirect=True)
async def test_duplicates_share_an_event_id(stack, receiver: Receiver) -> None:
    sandbox, gateway = stack
    await gateway.authorize(request())
    deliveries = await drain(sandbox, receiver)
    assert len(deliveries) == 2
    for delivery in deliveries:
        gateway.verify_webhook(delivery.headers, delivery.body)  # both authentic, neither a replay
    assert len({gateway.parse_webhook(d.headers, d.body).event_id for d in deliveries}) == 1
    assert sandbox.stats()["webhooks"]["duplicates"] == 1


@pytest.mark.parametrize("stack", [{"emitter": {"reorder_window": 6, "concurrency": 1, "seed": 3}}], indirect=True)
async def test_reorder_window_shuffles(stack, receiver: Receiver) -> None:
    sandbox, gateway = stack
    created = [(await gateway.authorize(request(ref=f"ORD-{i}"))).id for i in range(6)]
    delivered = [gateway.parse_webhook(d.headers, d.body).payment_id for d in await drain(sandbox, receiver)]
    assert sorted(delivered) == sorted(created) and delivered != created


@pytest.mark.parametrize("stack", [{"emitter": {"reorder_window": 50, "reorder_flush_ms": 5}}], indirect=True)
async def test_a_partial_window_is_flushed(stack, receiver: Receiver) -> None:
    _, gateway = stack
    await gateway.authorize(request())
    for _ in range(200):  # no wait_idle here: it would flush the window itself
        if receiver.deliveries:
            break
        await asyncio.sleep(0.005)
    assert len(receiver.deliveries) == 1


@pytest.mark.parametrize("stack", [{"emitter": {"delay_ms": [5, 15]}}], indirect=True)
async def test_delays_hold_deliveries_back(stack, receiver: Receiver) -> None:
    sandbox, gateway = stack
    await gateway.authorize(request())
    assert receiver.deliveries == []
    assert len(await drain(sandbox, receiver)) == 1


async def test_delivery_never_blocks_the_api(receiver: Receiver) -> None:
    release = asyncio.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await release.wait()
        await receiver(scope, receive, send)

    sandbox = Sandbox(sandbox_settings(), webhook_transport=httpx.ASGITransport(app=slow))
    gateway = build_gateway(GATEWAY_SETTINGS, transport=httpx.ASGITransport(app=sandbox.app))
    async with sandbox:
        payment = await asyncio.wait_for(gateway.authorize(request()), 2)
        assert sandbox.emitter.pending == 1 and not await sandbox.emitter.wait_idle(0.05)
        release.set()
        assert await sandbox.emitter.wait_idle(5)
    await gateway.aclose()
    assert gateway.parse_webhook(receiver.deliveries[0].headers, receiver.deliveries[0].body).payment_id == payment.id


async def test_events_before_start_wait_and_stop_keeps_the_undelivered(receiver: Receiver) -> None:
    sandbox = Sandbox(sandbox_settings(), webhook_transport=httpx.ASGITransport(app=receiver))
    async with signed(sandbox) as client:
        await client.create_payment(BODY)
    assert sandbox.emitter.pending == 1 and receiver.deliveries == []
    async with sandbox:
        assert await sandbox.emitter.wait_idle(5)
    assert len(receiver.deliveries) == 1


async def test_stop_keeps_delayed_and_retrying_deliveries(receiver: Receiver) -> None:
    sandbox = Sandbox(sandbox_settings(emitter={"delay_ms": [300, 300]}),
                      webhook_transport=httpx.ASGITransport(app=receiver))
    async with sandbox, signed(sandbox) as client:
        await client.create_payment(BODY)
    assert receiver.attempts == [] and sandbox.emitter.pending == 1
    sandbox.emitter.configure({"delay_ms": [0, 0]})
    async with sandbox:
        assert await sandbox.emitter.wait_idle(5)
    assert len(receiver.deliveries) == 1


async def test_control_endpoints(sandbox: Sandbox, receiver: Receiver) -> None:
    async with httpx.AsyncClient(base_url="http://sandbox", transport=httpx.ASGITransport(app=sandbox.app)) as http:
        config = await http.post("/__sandbox/emitter", json={"payload_detail": "id_only", "duplicate_rate": 0.5})
        assert config.json()["payload_detail"] == "id_only" and config.json()["duplicate_rate"] == 0.5
        refused = await http.post("/__sandbox/emitter", json={"duplicate_rate": 2})
        assert refused.status_code == 400
        assert (await http.post("/__sandbox/emitter", content=b"[1]")).status_code == 400
        faults = await http.post("/__sandbox/faults", json={"latency_ms": [0, 1]})
        assert faults.json()["latency_ms"] == [0, 1]
        async with signed(sandbox) as client:
            await client.create_payment({**BODY, "processingInformation": {"capture": True}})
        idle = await http.post("/__sandbox/wait-idle", params={"timeout": "5"})
        assert idle.status_code == 200 and idle.json()["idle"] is True
        stats = (await http.get("/__sandbox/stats")).json()
        assert stats["payments"] == {"sale:AUTHORIZED": 1}
        assert stats["webhooks"]["delivered"] >= 1 and stats["webhooks"]["pending"] == 0
        log = (await http.get("/__sandbox/notifications", params={"eventType": "payments.payments.accept"})).json()
        assert log and log[0]["url"] == WEBHOOK_URL and log[0]["delivered"] is True
        assert (await http.post("/__sandbox/settle")).json()["settled"] == 1
        tokens = (await http.get("/__sandbox/tokens")).json()
        assert [(t["brand"], t["last4"]) for t in tokens] == [("visa", "1111"), ("mastercard", "4444"),
                                                               ("amex", "0005")]
        store = (await http.get("/__sandbox/store")).json()
        assert set(store) >= {"transactions", "customers", "payment_instruments", "instrument_identifiers"}


BODY = {"clientReferenceInformation": {"code": "R"}, "paymentInformation": {"customer": {"id": VISA_CUSTOMER}},
        "orderInformation": {"amountDetails": {"totalAmount": "1.00", "currency": "USD"}}}


def signed(sandbox: Sandbox) -> Any:
    return build_gateway(GATEWAY_SETTINGS, transport=httpx.ASGITransport(app=sandbox.app)).client
