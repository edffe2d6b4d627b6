"""Flow control against the sandboxes' fault scripts: SL down, SL answering 429, a rate limit on SL, and the
Cybersource sandbox failing. On PostgreSQL two engines with workers share one database (the second has no
intake); on SQLite one engine runs, as in production.

Every engine's calls to SL go through a recording transport, so the tests see what reached SL and when.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from ledgerlink.cli import app as cli
from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.connectors.cybersource.sandbox.app import Sandbox
from ledgerlink.connectors.dynamics_sl.sandbox import create_app as create_sl_app
from ledgerlink.connectors.dynamics_sl.sandbox.faults import FaultRule
from ledgerlink.connectors.kit.errors import CircuitOpen, NotFound, RetryableError, Throttled
from ledgerlink.connectors.kit.guard import OPERATION, guarded_transport
from ledgerlink.integrations import Integration, build_integration, parse_integration
from ledgerlink.model import AuthorizationRequest, Money, Party, PaymentToken
from ledgerlink.runtime import Database, Engine
from ledgerlink.runtime.flow_control import FlowControl, flow_report
from ledgerlink.runtime.schema import UNFINISHED, inbox
from ledgerlink.runtime.stats import engine_stats
from ledgerlink.service.app import create_app
from tests.flows.harness import ADMIN_TOKEN, SL_API_KEY, VISA_INSTRUMENT, LateApp, integration_document

pytestmark = [pytest.mark.timeout(120)]

BATCH = "dynamics_sl/batch"


@dataclass
class Sent:
    at: float
    engine: int
    operation: str
    status: int | None


class Recording(httpx.AsyncBaseTransport):
    """The SL sandbox in-process, noting every request that reaches it."""

    def __init__(self, app: Any, engine: int, log: list[Sent]) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.engine = engine
        self.log = log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = Sent(time.monotonic(), self.engine, request.extensions.get(OPERATION, "?"), None)
        self.log.append(sent)
        response = await self.inner.handle_async_request(request)
        sent.status = response.status_code
        return response


@dataclass
class Fleet:
    cybersource: Sandbox
    sl_app: Any
    engines: list[Engine]
    integrations: list[Integration]
    dbs: list[Database]
    storefront: Any
    engine_http: httpx.AsyncClient
    sent: list[Sent] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.dbs[0]

    @property
    def sl(self) -> Any:
        return self.sl_app.state.sl

    async def pay(self, order: str) -> None:
        await self.storefront.authorize(AuthorizationRequest(
            amount=Money.of("25.00", "USD"), order_reference=order, capture=True,
            token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT),
            party=Party(first_name="Flow", last_name="Control", email=f"{order.lower()}@example.com")))

    def statuses(self) -> dict[str, int]:
        return self.db.read_sync(engine_stats)["events"]  # type: ignore[no-any-return]

    def unfinished(self) -> int:
        from sqlalchemy import func, select

        return self.db.read_sync(lambda conn: conn.execute(
            select(func.count()).select_from(inbox).where(inbox.c.status.in_(UNFINISHED))).scalar_one())

    def report(self) -> dict[str, Any]:
        spec = self.integrations[0].spec
        return self.db.read_sync(lambda conn: flow_report(conn, spec.runtime))

    async def settle(self, orders: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.statuses().get("done", 0)
            if self.cybersource.emitter.pending == 0 and self.unfinished() == 0 and done >= orders:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not settled: {self.statuses()}")

    async def orders_in_sl(self) -> Counter[str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.sl_app), base_url="http://sl",
                                     headers={"X-API-Key": SL_API_KEY}) as client:
            rows = (await client.get("/api/v1/salesorders", params={"$top": 1000})).json()["value"]
        return Counter(row["CustOrdNbr"].strip() for row in rows)


@asynccontextmanager
async def fleet(tmp_path: Path, target: tuple[str, str | None], runtime: dict[str, Any]) -> AsyncIterator[Fleet]:
    url, schema = target
    engines = 1 if url.startswith("sqlite") else 2
    engine_proxy = LateApp()
    cybersource = Sandbox(
        {"subscriptions": [{"url": "http://engine.local/webhooks/cybersource"}],
         "emitter": {"retry_base_seconds": 0.02, "retry_cap_seconds": 0.2}},
        webhook_transport=httpx.ASGITransport(app=engine_proxy),
    )
    sl_app = create_sl_app({"database": str(tmp_path / "sl.db")})
    base = {"backoff": {"base_seconds": 0.02, "cap_seconds": 0.1, "max_attempts": 6}}
    spec = parse_integration(integration_document(runtime={**base, **runtime}))
    sent: list[Sent] = []
    members: list[tuple[Database, Integration, Engine]] = []
    for n in range(engines):
        db = Database(url, schema=schema)
        settings = spec.runtime.model_copy(update={"worker_id": f"w{n}-{uuid.uuid4().hex[:6]}"})
        flow = FlowControl(db, settings)
        integration = build_integration(spec, flow_control=flow, transports={
            "cybersource": httpx.ASGITransport(app=cybersource.app), "dynamics_sl": Recording(sl_app, n, sent)})
        engine = Engine(db, handlers=integration.handlers, settings=settings, run_intake=n == 0,
                        flow_control=flow)
        members.append((db, integration, engine))
    engine_proxy.app = create_app(members[0][1], members[0][2], admin_tokens=[ADMIN_TOKEN], manage_engine=False)
    storefront = build_gateway(integration_document()["gateway"]["settings"],
                               transport=httpx.ASGITransport(app=cybersource.app))
    engine_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=engine_proxy.app), base_url="http://engine.local")
    for _, _, engine in members:
        await engine.start()
    await wait_for(lambda: all(e.worker is not None and e.worker.leases.owned for _, _, e in members))
    await cybersource.start()
    try:
        yield Fleet(cybersource, sl_app, [m[2] for m in members], [m[1] for m in members], [m[0] for m in members],
                    storefront, engine_http, sent)
    finally:
        await cybersource.stop()
        for _, integration, engine in members:
            await engine.stop()
            await integration.aclose()
        await storefront.aclose()
        await engine_http.aclose()
        for db, _, _ in members:
            db.close()


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


BREAKER = {"breakers": {"min_calls": 3, "failure_ratio": 0.5, "open_seconds": 0.5, "half_open_probes": 1,
                        "sync_seconds": 0.1}}


async def test_sl_down_opens_the_breaker_work_waits_and_a_probe_closes_it(
        tmp_path: Path, database_target: tuple[str, str | None]) -> None:
    async with fleet(tmp_path, database_target, BREAKER) as f:
        f.sl.faults.add(FaultRule(method="POST", path="/api/v1/$batch", status=503, times=None))
        orders = [f"FC-{n:02d}" for n in range(12)]
        for order in orders:
            await f.pay(order)
        await wait_for(lambda: f.report()["breakers"].get(BATCH, {}).get("state") in ("open", "half_open"))
        opened_at = time.monotonic()
        await asyncio.sleep(2.0)  # about three open/probe cycles with SL still down
        report = f.report()
        assert report["breakers"][BATCH]["state"] in ("open", "half_open")
        assert f.statuses().get("dead", 0) == 0  # waiting, not failing
        for engine in f.engines:  # every engine holds SL back
            assert engine.flow_control is not None
            assert engine.flow_control.snapshot()["breakers"].get(BATCH, "open") in ("open", "half_open")
        while_open = [s for s in f.sent if s.operation == "batch" and s.at > opened_at + 0.3]
        assert len(while_open) <= 8, f"only probes reach SL while the breaker is open: {len(while_open)}"
        f.sl.faults.clear()
        await f.settle(len(orders))
    assert f.statuses().get("dead", 0) == 0
    assert await f.orders_in_sl() == Counter(orders)  # every order exactly once
    assert report["backpressure"]["dead_letters"] == 0


async def test_a_429_with_retry_after_pauses_every_engine(
        tmp_path: Path, database_target: tuple[str, str | None]) -> None:
    async with fleet(tmp_path, database_target, {"breakers": {"sync_seconds": 0.1}}) as f:
        orders = [f"RL-{n:02d}" for n in range(20)]
        for order in orders[:4]:
            await f.pay(order)
        await f.settle(4)
        f.sl.faults.add(FaultRule(method="POST", path="/api/v1/$batch", status=429, retry_after=2, times=1))
        for order in orders[4:8]:
            await f.pay(order)
        await wait_for(lambda: any(s.status == 429 for s in f.sent))
        # Paid during the pause, once every engine has heard of it (it syncs every 0.1 s): each engine's buckets
        # get some of these 12 (all on one engine is a 1 in 2,000 chance), and each must hold them until it ends.
        await asyncio.sleep(0.4)
        for order in orders[8:]:
            await f.pay(order)
        await f.settle(len(orders))
    [limited] = [s for s in f.sent if s.status == 429]
    quiet = [s for s in f.sent if limited.at + 0.3 < s.at < limited.at + 1.9]
    assert not quiet, f"requests reached SL during the fleet's pause: {quiet}"
    after = [s for s in f.sent if s.at >= limited.at + 1.9]
    assert {s.engine for s in after} == set(range(len(f.engines))), "every engine had work, and held it"
    assert f.statuses().get("dead", 0) == 0 and await f.orders_in_sl() == Counter(orders)


async def test_a_rate_limit_holds_the_fleet_to_its_rate(tmp_path: Path, database_target: tuple[str, str | None]) -> None:
    limits = {"rate_limits": {"limits": {"dynamics_sl": {"per_second": 5, "burst": 2}}, "max_wait_seconds": 0.5}}
    async with fleet(tmp_path, database_target, limits) as f:
        orders = [f"TB-{n:02d}" for n in range(16)]
        for order in orders:
            await f.pay(order)
        await f.settle(len(orders))
    times = sorted(s.at for s in f.sent)
    span = times[-1] - times[0]
    assert len(times) <= 2 + 5 * span + 2, (len(times), span)
    assert f.statuses().get("dead", 0) == 0 and await f.orders_in_sl() == Counter(orders)


async def test_dead_letters_past_the_threshold_alert_in_readyz_and_stats_while_webhooks_are_acknowledged(
        tmp_path: Path, database_target: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = {"backpressure": {"max_dead_letters": 1, "check_seconds": 0.05}}
    async with fleet(tmp_path, database_target, runtime) as f:
        f.sl.faults.add(FaultRule(method="POST", path="/api/v1/$batch", status=422, times=None))
        for order in ("BP-1", "BP-2", "BP-3"):
            await f.pay(order)
        await wait_for(lambda: f.statuses().get("dead", 0) == 3 and f.cybersource.emitter.pending == 0)
        assert f.cybersource.emitter.stats().get("failed", 0) == 0  # every webhook was acknowledged
        await wait_for(lambda: f.engines[0].backpressure.pressure is not None
                       and f.engines[0].backpressure.pressure.dead_letters == 3)
        ready = (await f.engine_http.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["alerts"] == ["dead_letters"]
        assert ready["backpressure"]["dead_letters"] == 3 and ready["backpressure"]["max_dead_letters"] == 1
    url, schema = database_target
    config = tmp_path / "integration.yaml"
    config.write_text(yaml.safe_dump(integration_document(runtime=runtime)))
    if schema:
        monkeypatch.setenv("LEDGERLINK_DATABASE_SCHEMA", schema)
    result = CliRunner().invoke(cli, ["stats", "--config", str(config), "--database-url", url])
    assert result.exit_code == 0, result.output
    assert '"alerts": [\n      "dead_letters"\n    ]' in result.output and '"breakers"' in result.output


async def test_the_cybersource_sandbox_failing_opens_the_gateways_breaker(database: Database) -> None:
    sandbox = Sandbox({})
    reached: list[str] = []

    class Counting(httpx.ASGITransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            reached.append(request.extensions[OPERATION])
            return await super().handle_async_request(request)

    spec = parse_integration(integration_document(runtime=BREAKER))
    flow = FlowControl(database, spec.runtime)
    await flow.start()
    gateway = build_gateway(integration_document()["gateway"]["settings"],
                            transport=guarded_transport(flow, system="cybersource", inner=Counting(app=sandbox.app)))
    try:
        sandbox.faults = sandbox.faults.model_copy(update={"error_rate": 1.0, "error_status": 503})
        for _ in range(3):
            with pytest.raises(RetryableError) as failed:
                await gateway.get_payment("7000000000000000000001")
            assert not isinstance(failed.value, CircuitOpen) and failed.value.status == 503
        with pytest.raises(CircuitOpen):
            await gateway.get_payment("7000000000000000000001")
        assert len(reached) == 3  # the fourth was never sent
        operation = reached[0]
        sandbox.faults = sandbox.faults.model_copy(update={"error_rate": 0.0})
        await asyncio.sleep(0.6)  # open_seconds: one probe may go now
        with pytest.raises(NotFound):  # the probe reaches the sandbox (an unknown id: an answer, so it is up)
            await gateway.get_payment("7000000000000000000001")
        assert len(reached) == 4
        await wait_for(lambda: flow.snapshot()["breakers"][f"cybersource/{operation}"] == "closed")
        sandbox.faults = sandbox.faults.model_copy(update={"error_rate": 1.0, "error_status": 429,
                                                           "retry_after_seconds": 3})
        with pytest.raises(Throttled) as paused:
            await gateway.get_payment("7000000000000000000001")
        assert paused.value.retry_after == pytest.approx(3.0, abs=0.1)
        with pytest.raises(Throttled):
            await gateway.get_payment("7000000000000000000002")
        assert len(reached) == 5
    finally:
        await gateway.aclose()
        await flow.stop()
