"""Over real sockets: the sandbox under uvicorn, the gateway over TCP, webhooks to a second server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.connectors.cybersource.sandbox import create_app
from ledgerlink.model import AuthorizationRequest, EventType, Money, PaymentToken

from .conftest import GATEWAY_SETTINGS, VISA_CUSTOMER, WEBHOOK_KEY, WEBHOOK_KEY_ID, Receiver


class Served:
    """An ASGI app served by uvicorn on a free port, in a thread (its own event loop)."""

    def __init__(self, app: Any, *, lifespan: str = "on") -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan, loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            self.thread.join(0.01)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.socket.close()


@pytest.fixture
def servers() -> Iterator[tuple[Served, Served, Receiver]]:
    receiver = Receiver()
    with Served(receiver, lifespan="off") as engine:
        subscription = {"url": f"{engine.url}/webhooks", "key_id": WEBHOOK_KEY_ID, "key": WEBHOOK_KEY}
        app = create_app({"subscriptions": [subscription], "emitter": {"retry_base_seconds": 0.001}})
        with Served(app) as sandbox:
            yield sandbox, engine, receiver


async def test_gateway_and_webhooks_over_tcp(servers: tuple[Served, Served, Receiver]) -> None:
    sandbox, _, receiver = servers
    token = PaymentToken(gateway="cybersource", token_id=VISA_CUSTOMER, kind="customer")
    async with build_gateway({**GATEWAY_SETTINGS, "base_url": sandbox.url}) as gateway:
        auth = await gateway.authorize(AuthorizationRequest(amount=Money.of("12.34", "USD"), order_reference="TCP-1",
                                                            token=token))
        capture = await gateway.capture(auth.id, Money.of("12.34", "USD"))
        assert (await gateway.get_payment(capture.id)).root_id == auth.id
        async with httpx.AsyncClient(base_url=sandbox.url) as control:
            idle = await control.post("/__sandbox/wait-idle", params={"timeout": "5"})
            assert idle.json()["idle"] is True
        events = []
        for delivery in receiver.deliveries:
            assert delivery.headers["host"] == f"127.0.0.1:{servers[1].port}"
            gateway.verify_webhook(delivery.headers, delivery.body)
            events.append(gateway.parse_webhook(delivery.headers, delivery.body))
    assert [(e.event_type, e.payment_id) for e in events] == [(EventType.PAYMENT, auth.id),
                                                              (EventType.CAPTURE, capture.id)]
