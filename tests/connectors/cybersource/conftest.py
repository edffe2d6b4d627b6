"""Shared wiring: a sandbox whose webhooks land in an in-process recorder, and a gateway talking to it."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ledgerlink.connectors.cybersource import CybersourceClient, CybersourceGateway, build_gateway
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.connectors.cybersource.sandbox.settings import (
    DEMO_KEY_ID,
    DEMO_MERCHANT_ID,
    DEMO_SHARED_SECRET,
)
from ledgerlink.connectors.kit.contract.payment_gateway import WebhookDelivery

WEBHOOK_KEY_ID = "sandbox-webhook-key"
WEBHOOK_KEY = "c2FuZGJveC13ZWJob29rLWtleS0wMTIzNDU2Nzg5YWI="
WEBHOOK_URL = "http://engine.test/webhooks/cybersource"
VISA_CUSTOMER = "C0000000000000000000000000004111"
VISA_INSTRUMENT = "A0000000000000000000000000004111"

GATEWAY_SETTINGS: dict[str, Any] = {
    "base_url": "http://sandbox.test",
    "host": "apitest.cybersource.com",
    "merchant_id": DEMO_MERCHANT_ID,
    "key_id": DEMO_KEY_ID,
    "shared_secret": DEMO_SHARED_SECRET,
    "webhook_key_id": WEBHOOK_KEY_ID,
    "webhook_secret": WEBHOOK_KEY,
}


class Receiver:
    """An in-process webhook endpoint: records every delivery, answers with scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.deliveries: list[WebhookDelivery] = []
        self.attempts: list[WebhookDelivery] = []  # every request, whatever it was answered
        self.statuses: deque[int] = deque()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.attempts.append(WebhookDelivery(headers, body))
        status = self.statuses.popleft() if self.statuses else 200
        if 200 <= status < 300:
            self.deliveries.append(WebhookDelivery(headers, body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def take(self) -> list[WebhookDelivery]:
        taken, self.deliveries = self.deliveries, []
        return taken


def sandbox_settings(**overrides: Any) -> dict[str, Any]:
    emitter = {"retry_base_seconds": 0.001, "retry_cap_seconds": 0.005, "seed": 7, **overrides.pop("emitter", {})}
    return {"subscriptions": [{"url": WEBHOOK_URL, "key_id": WEBHOOK_KEY_ID, "key": WEBHOOK_KEY}], "emitter": emitter,
            **overrides}


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def sandbox(receiver: Receiver) -> AsyncIterator[Sandbox]:
    async with Sandbox(sandbox_settings(), webhook_transport=httpx.ASGITransport(app=receiver)) as running:
        yield running


@pytest.fixture
async def gateway(sandbox: Sandbox) -> AsyncIterator[CybersourceGateway]:
    gateway = build_gateway(GATEWAY_SETTINGS, transport=httpx.ASGITransport(app=sandbox.app))
    yield gateway
    await gateway.aclose()


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[CybersourceClient]:
    client = CybersourceClient(base_url="http://127.0.0.1:8081", host="apitest.cybersource.com",
                               merchant_id=DEMO_MERCHANT_ID, key_id=DEMO_KEY_ID, shared_secret=DEMO_SHARED_SECRET,
                               transport=httpx.ASGITransport(app=sandbox.app))
    yield client
    await client.aclose()


async def drain(sandbox: Sandbox, receiver: Receiver) -> list[WebhookDelivery]:
    assert await sandbox.emitter.wait_idle(5)
    return receiver.take()
