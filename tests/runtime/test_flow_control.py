"""Flow control shared between processes: two ``FlowControl`` instances, each with its own connections to one
database (a SQLite file, a PostgreSQL schema), stand for two engine processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from ledgerlink.connectors.kit.errors import CircuitOpen, RetryableError, Throttled
from ledgerlink.connectors.kit.guard import OPERATION, Endpoint, Outcome, guarded_transport
from ledgerlink.runtime.breaker import CLOSED, HALF_OPEN, OPEN
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.flow_control import ORDINARY, PROBE, FlowControl, flow_report
from ledgerlink.runtime.settings import RuntimeSettings
from ledgerlink.telemetry import BREAKER_STATE, CALLS_HELD
from tests.runtime.test_token_bucket import REDIS_URL, redis_unavailable

BATCH = Endpoint("sl", "batch")
LOOKUP = Endpoint("sl", "find_key")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def runtime(**sections: Any) -> RuntimeSettings:
    return RuntimeSettings.model_validate({
        "breakers": {"min_calls": 4, "failure_ratio": 0.5, "open_seconds": 5.0, "half_open_probes": 1,
                     "sync_seconds": 0.05, **sections.pop("breakers", {})},
        **sections,
    })


@pytest.fixture
async def pair(database_target: tuple[str, str | None]) -> AsyncIterator[Callable[..., tuple[FlowControl, ...]]]:
    """Makes two flow controls over two Database objects on one database."""
    url, schema = database_target
    made: list[tuple[Database, FlowControl]] = []

    def make(settings: RuntimeSettings | None = None, clock: Callable[[], float] = time.time) -> tuple[
            FlowControl, FlowControl]:
        for _ in range(2):
            db = Database(url, schema=schema)
            made.append((db, FlowControl(db, settings or runtime(), clock=clock)))
        return made[-2][1], made[-1][1]

    yield make
    for db, flow in made:
        await flow.store.aclose()
        db.close()


async def fail(flow: FlowControl, endpoint: Endpoint, times: int) -> None:
    for _ in range(times):
        ticket = await flow.admit(endpoint)
        flow.settle(endpoint, ticket, Outcome.FAILURE)


async def test_a_breaker_opened_by_one_process_holds_the_other_back(pair: Any) -> None:
    clock = Clock()
    a, b = pair(clock=clock)
    await fail(a, BATCH, 2)
    for _ in range(2):
        a.settle(BATCH, await a.admit(BATCH), Outcome.SUCCESS)
    await a.sync()  # 2 of 4 failed: at the ratio, so it opens
    with pytest.raises(CircuitOpen) as held:
        await a.admit(BATCH)
    assert held.value.retry_after == pytest.approx(5.0)
    assert await b.admit(BATCH) == ORDINARY  # b has not looked yet
    await b.sync()
    clock.now += 1
    with pytest.raises(CircuitOpen) as held:
        await b.admit(BATCH)
    assert held.value.retry_after == pytest.approx(4.0) and isinstance(held.value, RetryableError)
    assert await b.admit(LOOKUP) == ORDINARY  # another endpoint of the same system is not affected
    assert BREAKER_STATE.labels("sl/batch")._value.get() == 2
    report = a._db.read_sync(lambda conn: flow_report(conn, runtime(), clock.now))
    assert report["breakers"]["sl/batch"]["state"] == OPEN


async def test_too_few_calls_or_too_few_failures_keep_it_closed(pair: Any) -> None:
    a, b = pair()
    await fail(a, BATCH, 3)
    await a.sync()
    await fail(b, LOOKUP, 2)
    for _ in range(3):
        b.settle(LOOKUP, await b.admit(LOOKUP), Outcome.SUCCESS)
    await b.sync()
    assert await a.admit(BATCH) == ORDINARY and await b.admit(LOOKUP) == ORDINARY


async def test_one_half_open_probe_for_the_fleet_and_its_success_closes_it(pair: Any) -> None:
    clock = Clock()
    a, b = pair(clock=clock)
    await fail(a, BATCH, 4)
    await a.sync()
    await b.sync()
    clock.now += 5.0
    assert await b.admit(BATCH) == PROBE  # b takes the one probe slot
    with pytest.raises(CircuitOpen):
        await a.admit(BATCH)  # a's view says it may probe, but the fleet's one slot is gone
    assert b.settle(BATCH, PROBE, Outcome.SUCCESS) is None
    await b.sync()
    assert b._locals["sl/batch"].breaker.state == CLOSED
    clock.now += 1.0  # a asked again too early (it was told to come back in a second)
    await a.sync()
    assert await a.admit(BATCH) == ORDINARY


async def test_a_failed_probe_opens_it_again_and_the_work_waits(pair: Any) -> None:
    clock = Clock()
    a, b = pair(clock=clock)
    await fail(a, BATCH, 4)
    await a.sync()
    clock.now += 5.0
    assert await a.admit(BATCH) == PROBE
    held = a.settle(BATCH, PROBE, Outcome.FAILURE)
    assert isinstance(held, CircuitOpen) and held.retry_after == pytest.approx(5.0)
    await a.sync()
    await b.sync()
    assert b._locals.get("sl/batch") is None or b._locals["sl/batch"].breaker.state == OPEN
    with pytest.raises(CircuitOpen):
        await b.admit(BATCH)
    clock.now += 5.0
    assert await b.admit(BATCH) == PROBE
    assert b._locals["sl/batch"].breaker.state == HALF_OPEN


async def test_a_local_trip_stops_this_process_before_the_next_sync(pair: Any) -> None:
    a, _ = pair(runtime(breakers={"sync_seconds": 60}))
    await fail(a, BATCH, 4)
    with pytest.raises(CircuitOpen):
        await a.admit(BATCH)
    before = CALLS_HELD.labels("sl/batch", "circuit_open")._value.get()
    with pytest.raises(CircuitOpen):
        await a.admit(BATCH)
    assert CALLS_HELD.labels("sl/batch", "circuit_open")._value.get() == before + 1


async def test_a_429_pauses_the_system_for_every_process(pair: Any) -> None:
    clock = Clock()
    a, b = pair(clock=clock)
    assert await b.admit(LOOKUP) == ORDINARY
    held = a.settle(BATCH, await a.admit(BATCH), Outcome.THROTTLED, retry_after=3.0)
    assert isinstance(held, Throttled) and held.retry_after == pytest.approx(3.0)
    await a.sync()  # writes the pause
    await b.sync()  # reads it
    clock.now += 1.0
    with pytest.raises(Throttled) as paused:
        await b.admit(LOOKUP)  # the whole system (no limit names one endpoint) waits
    assert paused.value.retry_after == pytest.approx(2.0)
    assert await b.admit(Endpoint("cybersource", "get_transaction")) == ORDINARY
    clock.now += 2.5
    assert await b.admit(LOOKUP) == ORDINARY


async def test_a_token_bucket_limits_two_processes_together(pair: Any) -> None:
    settings = runtime(rate_limits={"limits": {"sl": {"per_second": 20, "burst": 4}}, "max_wait_seconds": 5})
    a, b = pair(settings)
    sent: list[float] = []
    started = time.monotonic()

    async def worker(flow: FlowControl) -> None:
        while time.monotonic() - started < 1.5:
            flow.settle(BATCH, await flow.admit(BATCH), Outcome.SUCCESS)
            sent.append(time.monotonic() - started)

    await asyncio.gather(worker(a), worker(b), worker(a), worker(b))
    elapsed = max(sent)
    assert len(sent) <= 4 + 20 * elapsed + 2, (len(sent), elapsed)  # burst + rate x time (+ the last takes)
    assert len(sent) >= 0.6 * 20 * elapsed, (len(sent), elapsed)  # and it does not starve them


async def test_a_long_queue_defers_instead_of_waiting(pair: Any) -> None:
    settings = runtime(rate_limits={"limits": {"sl/batch": {"per_second": 2, "burst": 1}}, "max_wait_seconds": 0.3})
    a, _ = pair(settings)
    results = await asyncio.gather(*(a.admit(BATCH) for _ in range(6)), return_exceptions=True)
    throttled = [r for r in results if isinstance(r, Throttled)]
    assert 1 <= len(results) - len(throttled) <= 2 and throttled
    assert all(t.retry_after > 0 for t in throttled)
    assert await a.admit(LOOKUP) == ORDINARY  # the limit names one endpoint only


async def test_the_guarded_transport_counts_holds_and_pauses(pair: Any) -> None:
    a, _ = pair(runtime(breakers={"sync_seconds": 60}))
    seen: list[str] = []
    answers = iter([503, 503, 503, 503, 429])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions[OPERATION])
        status = next(answers)
        return httpx.Response(status, headers={"Retry-After": "7"} if status == 429 else {})

    transport = guarded_transport(a, system="sl", inner=httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport, base_url="http://sl") as client:
        for _ in range(4):
            response = await client.post("/batch", extensions={OPERATION: "batch"})
            assert response.status_code == 503
        with pytest.raises(CircuitOpen):
            await client.post("/batch", extensions={OPERATION: "batch"})
        assert seen == ["batch"] * 4  # held back unsent
        with pytest.raises(Throttled) as paused:
            await client.get("/keys/x", extensions={OPERATION: "find_key"})
        assert paused.value.retry_after == pytest.approx(7.0, abs=0.1)
        with pytest.raises(Throttled):
            await client.get("/keys/y", extensions={OPERATION: "find_key"})
    assert seen == ["batch"] * 4 + ["find_key"]


@pytest.fixture
def redis_prefix() -> str:
    reason = redis_unavailable()
    if reason:
        pytest.skip(reason)
    return f"llt-{uuid.uuid4().hex[:10]}"


async def test_redis_buckets_and_pauses_are_shared(pair: Any, redis_prefix: str) -> None:
    clock = Clock()
    limits = {"limits": {"sl": {"per_second": 1, "burst": 2}}, "redis_url": REDIS_URL,
              "redis_prefix": redis_prefix, "max_wait_seconds": 0}
    a, b = pair(runtime(rate_limits=limits), clock=clock)
    try:
        assert await a.admit(BATCH) == ORDINARY
        assert await b.admit(BATCH) == ORDINARY
        with pytest.raises(Throttled):
            await a.admit(BATCH)  # two tokens, both spent (one each)
        clock.now += 1.0
        assert await b.admit(LOOKUP) == ORDINARY  # one more second, one more token
        a.settle(BATCH, ORDINARY, Outcome.THROTTLED, retry_after=4.0)
        await a.sync()
        await b.sync()
        with pytest.raises(Throttled) as paused:
            await b.admit(LOOKUP)
        assert paused.value.retry_after == pytest.approx(4.0, abs=0.01)
    finally:
        await a.store.clear()  # type: ignore[attr-defined]
