"""One bounded run per fault type: a few hundred payments through the whole pair while the sandboxes fail
on purpose (their fault scripts, ``connectors/kit/sandbox_faults.py``). After each, SL holds every payment
exactly once, or the payment's event is in the dead-letter list with its evidence; nothing else.

In-process (the pair of ``tests/flows/harness.py``: both sandboxes and the engine over ASGI); a broken
connection reaches the clients as the ``httpx`` transport error it would be over a socket (the socket
behaviour itself is checked in ``tests/connectors/test_sandbox_faults.py``; kill -9 is ``test_crash.py``'s,
and everything at once over real processes is ``benchmarks/chaos.py``).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from ledgerlink.connectors.cybersource.sandbox.settings import FaultSettings
from ledgerlink.connectors.kit.sandbox_faults import FaultPlan
from ledgerlink.flows.gap_sweep import SWEEP_JOB
from ledgerlink.runtime.schema import inbox
from tests.faults.proof import (
    Expected,
    assert_exactly_once,
    dead_letters,
    dead_orders,
    plan_payments,
    read_sl,
    shop,
)
from tests.flows.harness import Pair, running_pair

pytestmark = pytest.mark.timeout(90)

SALES, PAIRS = 150, 50  # 250 webhook events: 150 sales, 50 authorisations and their 50 captures
RUNTIME = {"backoff": {"base_seconds": 0.02, "cap_seconds": 0.25, "max_attempts": 60}}


@asynccontextmanager
async def faulty_pair(tmp_path: Path, *, emitter: dict[str, Any] | None = None,
                      flows: dict[str, Any] | None = None) -> AsyncIterator[Pair]:
    async with running_pair(tmp_path, f"sqlite:///{tmp_path}/ledgerlink.db", None, runtime=RUNTIME,
                            emitter=emitter, flows=flows) as pair:
        yield pair


async def play(pair: Pair, seed: int, *, sales: int = SALES, pairs: int = PAIRS) -> Expected:
    return await shop(pair.storefront, plan_payments(sales, pairs, random.Random(seed), f"F{seed}"))


async def prove(pair: Pair, expected: Expected, what: str, *, dead_allowed: bool = False) -> None:
    await pair.settle(timeout=60)
    dead = dead_letters(pair.db)
    if not dead_allowed:
        assert dead == [], f"{what}: dead letters {[d.summary() for d in dead]}"
    assert_exactly_once(await read_sl(pair.sl_http), expected, dead=dead, dead_refs=dead_orders(pair.db, dead),
                        what=what)


def attempts(pair: Pair) -> list[dict[str, Any]]:
    """Every failed attempt the inbox recorded."""
    rows = pair.db.read_sync(lambda conn: conn.execute(select(inbox.c.history)
                                                       .where(inbox.c.history.is_not(None))).all())
    return [entry for row in rows for entry in orjson.loads(row.history)]


@pytest.mark.slow
async def test_error_rates_per_endpoint_500_502_503(tmp_path: Path) -> None:
    async with faulty_pair(tmp_path, emitter={"payload_detail": "id_only"}) as pair:
        pair.sl.faults.load(FaultPlan(seed=11, rules=[
            {"method": "POST", "path": "/api/v1/salesorders", "status": 500, "rate": 0.2},
            {"method": "POST", "path": "/api/v1/ar/documents", "status": 502, "rate": 0.2},
            {"path": "/api/v1/customers", "status": 503, "rate": 0.2},
            {"method": "POST", "path": "/api/v1/$batch", "status": 502, "rate": 0.1},
        ]))
        # id-only notifications: every event reads its transaction from Cybersource, which fails too
        pair.cybersource.faults = FaultSettings(seed=12, rules=[
            {"method": "GET", "path": "/tss/v2/transactions/", "status": 503, "rate": 0.2}])
        expected = await play(pair, 1)
        await prove(pair, expected, "error rates")
        injected = pair.sl.faults.injected
        assert injected["error:500"] > 5 and injected["error:502"] > 5 and injected["error:503"] > 5, injected
        assert pair.cybersource.fault_script.injected["error:503"] > 5


async def test_429_with_retry_after_is_honoured(tmp_path: Path) -> None:
    async with faulty_pair(tmp_path) as pair:
        pair.sl.faults.load(FaultPlan(seed=21, rules=[
            {"method": "POST", "path": "/api/v1/salesorders", "status": 429, "retry_after": 1, "rate": 0.15}]))
        expected = await play(pair, 2)
        await prove(pair, expected, "429")
        limited = [a for a in attempts(pair) if a.get("status") == 429]
        assert len(limited) == pair.sl.faults.injected["error:429"] > 10
        assert all(a["retry_in"] >= 1.0 for a in limited), "a retry came sooner than Retry-After"


async def test_added_latency(tmp_path: Path) -> None:
    async with faulty_pair(tmp_path, emitter={"payload_detail": "id_only"}) as pair:
        pair.sl.faults.load(FaultPlan(seed=31, latency_ms=(5, 40), rules=[
            {"path": "/api/v1/$batch", "kind": "latency", "latency_ms": 20, "rate": 0.3}]))
        pair.cybersource.faults = FaultSettings(seed=32, latency_ms=(1, 15))
        expected = await play(pair, 3)
        await prove(pair, expected, "latency")
        assert pair.sl.faults.injected["latency"] > 50


async def test_timeouts_after_commit_post_once(tmp_path: Path) -> None:
    """SL commits, then never answers: the engine retries in recovery, finds the record by key, posts nothing
    twice."""
    async with faulty_pair(tmp_path) as pair:
        pair.sl.faults.load(FaultPlan(seed=41, rules=[
            {"method": "POST", "path": "/api/v1/salesorders", "kind": "timeout", "after_commit": True,
             "stall_seconds": 0.2, "rate": 0.1},
            {"method": "POST", "path": "/api/v1/ar/documents", "kind": "timeout", "after_commit": True,
             "stall_seconds": 0.2, "rate": 0.1},
            {"method": "POST", "path": "/api/v1/salesorders", "status": 503, "after_commit": True, "rate": 0.1},
        ]))
        expected = await play(pair, 4)
        await prove(pair, expected, "timeouts after commit")
        assert pair.sl.faults.injected["timeout"] > 10
        counters = pair.stats()["counters"]
        assert counters.get("effects.recovered", 0) > 10, counters  # found by key, not created again


@pytest.mark.slow
async def test_connection_resets_before_and_after_commit(tmp_path: Path) -> None:
    async with faulty_pair(tmp_path, emitter={"payload_detail": "id_only"}) as pair:
        pair.sl.faults.load(FaultPlan(seed=51, rules=[
            {"method": "POST", "path": "/api/v1/salesorders", "kind": "reset", "rate": 0.1},
            {"method": "POST", "path": "/api/v1/ar/documents", "kind": "reset", "after_commit": True, "rate": 0.1},
        ]))
        pair.cybersource.faults = FaultSettings(seed=52, rules=[
            {"method": "GET", "path": "/tss/v2/transactions/", "kind": "reset", "rate": 0.15}])
        expected = await play(pair, 5)
        await prove(pair, expected, "resets")
        assert pair.sl.faults.injected["reset"] > 10
        assert pair.cybersource.fault_script.injected["reset"] > 5


async def test_maintenance_window_sl_down(tmp_path: Path) -> None:
    """SL answers 503 to everything for 3 s mid-run (Retry-After: the time left); then all of it posts."""
    async with faulty_pair(tmp_path) as pair:
        pair.sl.faults.load(FaultPlan(maintenance=[{"after_seconds": 0.3, "seconds": 3}]))
        expected = await play(pair, 6)
        await prove(pair, expected, "maintenance")
        assert pair.sl.faults.injected["maintenance"] > 0
        refused = [a for a in attempts(pair) if a.get("status") == 503]
        assert refused and all(a["retry_in"] >= 1.0 for a in refused)


async def test_duplicated_and_reordered_webhooks(tmp_path: Path) -> None:
    async with faulty_pair(tmp_path, emitter={"seed": 7}) as pair:
        pair.cybersource.faults = FaultSettings(webhooks={"duplicate_rate": 0.3, "reorder_window": 16})
        expected = await play(pair, 7)
        await prove(pair, expected, "duplicates and reordering")
        duplicated = pair.cybersource.emitter.counters["duplicates"]
        assert duplicated > 30
        counters = pair.stats()["counters"]
        assert counters["events.duplicates"] >= duplicated  # the inbox dropped every second copy


async def test_webhooks_never_delivered_are_found_by_the_gap_sweep(tmp_path: Path) -> None:
    sweep = {"gap_sweep": {"enabled": True, "grace_seconds": 0, "lookback_minutes": 10}}
    async with faulty_pair(tmp_path, emitter={"seed": 8}, flows=sweep) as pair:
        pair.cybersource.faults = FaultSettings(webhooks={"drop_rate": 0.2})
        expected = await play(pair, 8)
        await pair.settle(timeout=60)
        dropped = pair.cybersource.emitter.counters["dropped"]
        assert dropped > 20
        before = await read_sl(pair.sl_http)
        assert len(before.orders) < len(expected.orders)  # the dropped ones are missing for now

        await pair.run_job(SWEEP_JOB)
        await prove(pair, expected, "gap sweep")
        counters = pair.stats()["counters"]
        assert counters["sweeps.gaps_found"] == dropped

        # The lost webhooks turn up after all: duplicates of what the sweep stored, nothing posted again.
        duplicates = counters.get("events.duplicates", 0)
        assert pair.cybersource.emitter.release_dropped() == dropped
        await prove(pair, expected, "late webhooks")
        assert pair.stats()["counters"]["events.duplicates"] == duplicates + dropped
        await pair.run_job(SWEEP_JOB)  # a second sweep over the same window finds nothing
        assert pair.stats()["counters"]["sweeps.gaps_found"] == dropped


async def test_non_retryable_faults_dead_letter_with_evidence(tmp_path: Path) -> None:
    """422 is SL refusing the content: no retry, the event is dead with status, code and attempts; every other
    payment posts exactly once."""
    async with faulty_pair(tmp_path) as pair:
        pair.sl.faults.load(FaultPlan(seed=91, rules=[
            {"method": "POST", "path": "/api/v1/salesorders", "exact": True, "status": 422, "rate": 0.05},
            {"method": "POST", "path": "/api/v1/salesorders", "status": 503, "rate": 0.1},
        ]))
        expected = await play(pair, 9, sales=300, pairs=0)
        await prove(pair, expected, "non-retryable", dead_allowed=True)
        dead = dead_letters(pair.db)
        assert len(dead) == pair.sl.faults.injected["error:422"] > 5
        assert {(d.error["status"], d.error["provider_code"]) for d in dead} == {(422, "InjectedFault")}
        ledger = await read_sl(pair.sl_http)
        assert not dead_orders(pair.db, dead) & set(ledger.orders)  # refused, so not in SL at all
