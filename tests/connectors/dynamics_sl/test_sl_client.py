"""Client <-> sandbox over HTTP: in-process (ASGI), over a real socket (uvicorn), faults, and batching."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn

from ledgerlink.connectors.dynamics_sl import DynamicsSLBackOffice, DynamicsSLClient, build_back_office
from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState, create_app
from ledgerlink.connectors.dynamics_sl.sandbox.faults import FaultRule
from ledgerlink.connectors.kit.errors import Conflict, NotFound, RateLimited, Rejected, RetryableError
from ledgerlink.model import DocumentKind, Money, OrderLine, Party, SalesOrder

from .conftest import settings


def _order(customer_id: str, key: str) -> SalesOrder:
    return SalesOrder(key=key, customer_id=customer_id, order_reference=key[-20:], order_date=datetime.now(UTC),
                      currency="USD", lines=(OrderLine(sku="SKU", description="Thing",
                                                       unit_price=Money.of("5.00", "USD")),))


async def test_typed_errors_carry_code_and_field(client: DynamicsSLClient) -> None:
    with pytest.raises(NotFound):
        await client.get_customer("NOPE")
    with pytest.raises(Rejected) as refused:
        await client.create_customer({"CustId": "C1", "Name": "x" * 61})
    assert refused.value.provider_code == "FieldTooLong" and refused.value.field == "Name"
    await client.create_customer({"CustId": "C1", "Name": "Ann"}, key="shop:c:1")
    with pytest.raises(Conflict) as duplicate:
        await client.create_customer({"CustId": "C2", "Name": "Ann"}, key="shop:c:1")
    assert duplicate.value.existing == "C1"
    assert (await client.find_key("shop:c:1")).Id == "C1"


async def test_crash_after_commit_then_retry_posts_once(back_office: DynamicsSLBackOffice,
                                                        state: SandboxState) -> None:
    party = await back_office.create_party(Party(name="Ann", email="ann@example.com"))
    state.faults.add(FaultRule(method="POST", path="/api/v1/salesorders", status=503, after_commit=True))
    order = _order(party.id or "", "shop:salesorder:1001")
    with pytest.raises(RetryableError):
        await back_office.create_sales_order(order)  # SL committed; the answer was lost
    assert await back_office.find_document(DocumentKind.SALES_ORDER, order.key) is not None
    ref = await back_office.create_sales_order(order)  # the runtime's retry
    assert state.counts()["orders"] == 1 and ref.id == "SO000001"


async def test_rate_limit_is_retryable_with_retry_after(back_office: DynamicsSLBackOffice,
                                                        state: SandboxState) -> None:
    state.faults.add(FaultRule(path="/api/v1/$batch", status=429, retry_after=7))
    with pytest.raises(RateLimited) as limited:
        await back_office.find_party(Party(email="x@example.com"), ["email"])
    assert limited.value.retry_after == 7


async def test_concurrent_calls_share_a_few_requests(back_office: DynamicsSLBackOffice, state: SandboxState) -> None:
    parties = await asyncio.gather(*(back_office.create_party(Party(name=f"P{i}", email=f"p{i}@example.com"))
                                     for i in range(200)))
    sent = back_office.client.requests_sent
    refs = await asyncio.gather(*(back_office.create_sales_order(_order(p.id or "", f"shop:so:{i}"))
                                  for i, p in enumerate(parties)))
    assert len(set(refs)) == 200 and state.counts()["orders"] == 200
    assert back_office.client.requests_sent - sent <= 4  # 200 orders, a handful of $batch requests


@pytest.fixture
def server() -> Iterator[str]:
    """The sandbox under uvicorn on a free local port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app({}), host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            http="h11", loop="asyncio")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    for _ in range(500):
        if running.started:
            break
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(5)


async def test_over_a_real_socket_with_oauth(server: str) -> None:
    bo = build_back_office({"base_url": server, "client_id": "ledgerlink", "client_secret": "sl-sandbox-secret"})
    party = await bo.create_party(Party(name="Socket Sam", email="sam@example.com"))
    ref = await bo.create_sales_order(_order(party.id or "", "shop:so:socket"))
    assert await bo.find_document(DocumentKind.SALES_ORDER, "shop:so:socket") == ref
    await bo.aclose()
    async with httpx.AsyncClient(base_url=server) as raw:
        assert (await raw.get("/api/v1/setup")).status_code == 401


async def test_settings_need_a_credential() -> None:
    with pytest.raises(ValueError, match="api_key"):
        settings(api_key=None)
