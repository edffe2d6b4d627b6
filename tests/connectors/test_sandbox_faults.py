"""The fault script both sandboxes share: rules, rates, shots, latency, maintenance windows, broken
connections (in-process and over a real socket), and the ``/__sandbox/faults`` control endpoint."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from ledgerlink.connectors.cybersource.sandbox.app import Sandbox
from ledgerlink.connectors.dynamics_sl.sandbox import create_app as create_sl_app
from ledgerlink.connectors.dynamics_sl.sandbox.faults import FaultRule as SLFaultRule
from ledgerlink.connectors.kit.errors import RetryableError
from ledgerlink.connectors.kit.sandbox_faults import FaultPlan, FaultRule, FaultScript, MaintenanceWindow

SL_KEY = {"X-API-Key": "sl-sandbox-key"}


def fired(script: FaultScript, n: int, method: str = "POST", path: str = "/api/v1/salesorders") -> list[bool]:
    return [script.take(method, path) is not None for _ in range(n)]


def test_a_rate_is_seeded_and_repeats() -> None:
    plan = FaultPlan(seed=7, rules=[FaultRule(path="/api/v1/salesorders", status=502, rate=0.3)])
    first, second = fired(FaultScript(plan), 1000), fired(FaultScript(plan), 1000)
    assert first == second
    assert 250 < sum(first) < 350
    assert fired(FaultScript(plan.model_copy(update={"seed": 8})), 1000) != first


def test_rules_match_method_and_path_and_use_their_shots() -> None:
    script = FaultScript(FaultPlan(rules=[
        FaultRule(method="POST", path="/api/v1/salesorders", exact=True, status=422, times=2),
        FaultRule(path="/api/v1/", status=503, rate=1.0, times=None, kind="latency", latency_ms=5),
    ]))
    assert script.take("GET", "/api/v1/salesorders").kind == "latency"  # type: ignore[union-attr]
    invoice = script.take("POST", "/api/v1/salesorders/SO1/invoice")
    assert invoice is not None and invoice.kind == "latency"  # not the exact path
    faults = [script.take("POST", "/api/v1/salesorders") for _ in range(3)]
    assert [f.status if f and f.fails else None for f in faults] == [422, 422, None]
    assert faults[0] is not None and faults[0].latency_ms == 5  # latency rules add up with the failure
    assert script.rules[0].times == 0
    assert script.injected["error:422"] == 2


def test_times_default_once_for_a_certain_fault_and_unlimited_for_a_rate() -> None:
    assert FaultRule().times == 1
    assert FaultRule(rate=0.5).times is None
    assert FaultRule(rate=0.5, times=3).times == 3
    assert SLFaultRule is FaultRule  # the SL sandbox's rules are the kit's


def test_maintenance_window_refuses_everything_then_ends() -> None:
    now = [1000.0]
    script = FaultScript(FaultPlan(maintenance=[MaintenanceWindow(after_seconds=10, seconds=60)]),
                         clock=lambda: now[0])
    assert script.take("GET", "/api/v1/setup") is None
    now[0] = 1015.0
    fault = script.take("GET", "/api/v1/setup")
    assert fault is not None and (fault.status, fault.cause, fault.retry_after) == (503, "maintenance", 55)
    now[0] = 1070.0
    assert script.take("GET", "/api/v1/setup") is None
    start = script.maintenance[0].start
    assert start == datetime.fromtimestamp(1010.0, UTC)  # resolved once, shown as a time


def test_broken_connections_in_process_are_transport_errors() -> None:
    """Through ASGITransport the app's exception is itself an httpx transport error."""
    import asyncio

    async def run() -> None:
        app = create_sl_app({})
        app.state.sl.faults.load(FaultPlan(rules=[
            FaultRule(path="/api/v1/setup", kind="reset"),
            FaultRule(path="/api/v1/setup", kind="timeout", stall_seconds=0.01)]))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sl",
                                     headers=SL_KEY) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/api/v1/setup")
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/api/v1/setup")
            assert (await client.get("/api/v1/setup")).status_code == 200

    asyncio.run(run())


@pytest.fixture(params=["httptools", "h11"])
def sl_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    """The SL sandbox under uvicorn on a free port, as ``ledgerlink sandbox`` runs it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_sl_app({})
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            http=request.param, loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", app.state.sl
    server.should_exit = True
    thread.join(5)


async def test_over_a_real_socket_a_reset_and_a_timeout_look_like_the_network(sl_server: tuple[str, Any]) -> None:
    url, state = sl_server
    state.faults.load(FaultPlan(rules=[
        FaultRule(method="GET", path="/api/v1/setup", kind="reset"),
        FaultRule(method="GET", path="/api/v1/setup", kind="timeout", stall_seconds=1.0),
        FaultRule(method="GET", path="/api/v1/setup", status=429, retry_after=3),
    ]))
    async with httpx.AsyncClient(base_url=url, headers=SL_KEY, timeout=httpx.Timeout(0.3)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/api/v1/setup")
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/api/v1/setup")
        limited = await client.get("/api/v1/setup")
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
        assert limited.json()["error"]["code"] == "TooManyRequests"
        assert (await client.get("/api/v1/setup")).status_code == 200


async def test_a_reset_after_commit_leaves_the_record_and_a_retryable_error(sl_server: tuple[str, Any]) -> None:
    from ledgerlink.connectors.dynamics_sl import build_back_office
    from ledgerlink.model import DocumentKind, Party

    url, state = sl_server
    back_office = build_back_office({"base_url": url, "api_key": "sl-sandbox-key"})
    try:
        state.faults.add(FaultRule(method="POST", path="/api/v1/customers", kind="reset", after_commit=True))
        with pytest.raises(RetryableError, match=r"RemoteProtocolError|InjectedConnectionReset"):
            await back_office.create_party(Party(name="Reset Rita", email="rita@example.com"))
        assert state.counts()["customers"] >= 1  # committed before the connection dropped
        found = await back_office.find_party(Party(name="Reset Rita", email="rita@example.com"), ["email"])
        assert found is not None
        assert await back_office.find_document(DocumentKind.SALES_ORDER, "none") is None
    finally:
        await back_office.aclose()


async def test_sl_control_endpoint_get_put_post_delete() -> None:
    app = create_sl_app({"faults": {"seed": 3, "rules": [{"path": "/api/v1/customers", "status": 502,
                                                          "rate": 0.5}]}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sl",
                                 headers=SL_KEY) as client:
        shown = (await client.get("/__sandbox/faults")).json()
        assert shown["seed"] == 3 and shown["rules"][0]["rate"] == 0.5 and shown["faults"] == shown["rules"]
        put = await client.put("/__sandbox/faults", json={"latency_ms": [1, 2], "rules": [{"kind": "reset"}]})
        assert put.status_code == 200 and put.json()["latency_ms"] == [1.0, 2.0]
        added = await client.post("/__sandbox/faults", json={"method": "POST", "path": "/api/v1/$batch"})
        assert len(added.json()["rules"]) == 2
        window = await client.post("/__sandbox/faults/maintenance", json={"after_seconds": 60, "seconds": 5})
        assert window.json()["maintenance"][0]["seconds"] == 5
        bad = await client.put("/__sandbox/faults", json={"rules": [{"kind": "explode"}]})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidFaultScript"
        cleared = (await client.delete("/__sandbox/faults")).json()
        assert cleared["rules"] == [] and cleared["maintenance"] == []


async def test_cybersource_control_endpoint_and_webhook_faults() -> None:
    sandbox = Sandbox({"faults": {"rules": [{"method": "GET", "path": "/tss/v2/", "status": 429,
                                             "retry_after": 2}]}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://cs") as client:
        shown = (await client.get("/__sandbox/faults")).json()
        assert shown["rules"][0]["status"] == 429 and shown["webhooks"]["drop_rate"] == 0.0
        put = await client.put("/__sandbox/faults", json={
            "webhooks": {"duplicate_rate": 0.1, "reorder_window": 4, "drop_rate": 0.2},
            "maintenance": [{"start": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), "seconds": 30}]})
        assert put.status_code == 200
        knobs = sandbox.emitter.settings
        assert (knobs.duplicate_rate, knobs.reorder_window, knobs.drop_rate) == (0.1, 4, 0.2)
        assert put.json()["rules"] == [] and len(sandbox.fault_script.maintenance) == 1
        merged = await client.post("/__sandbox/faults", json={"error_rate": 0.5})  # the original knobs still work
        assert merged.json()["error_rate"] == 0.5 and merged.json()["maintenance"]
        assert len(sandbox.fault_script.rules) == 1  # the global error rate is one more rule
        cleared = (await client.delete("/__sandbox/faults")).json()
        assert cleared["error_rate"] == 0 and cleared["webhooks"]["drop_rate"] == 0.0
        assert not sandbox.fault_script.active
        bad = await client.put("/__sandbox/faults", json={"latency_ms": [5, 1]})
        assert bad.status_code == 400


@pytest.mark.parametrize("bad", [(-1.0, 5.0), (10.0, 5.0)])
def test_a_millisecond_range_must_be_ordered_and_not_negative(bad: tuple[float, float]) -> None:
    from pydantic import ValidationError

    from ledgerlink.connectors.cybersource.sandbox.settings import EmitterSettings

    assert FaultPlan(latency_ms=(0.0, 5.0)).latency_ms == (0.0, 5.0)
    assert EmitterSettings(delay_ms=(5.0, 5.0)).delay_ms == (5.0, 5.0)
    for build, field in ((lambda: FaultPlan(latency_ms=bad), "latency_ms"),
                         (lambda: EmitterSettings(delay_ms=bad), "delay_ms")):
        with pytest.raises(ValidationError, match=rf"{field}\n.*must be \[min, max\]"):
            build()
