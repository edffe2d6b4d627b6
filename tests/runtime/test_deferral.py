"""Work held back by flow control waits: no attempt counted, nothing dead-lettered, its steps kept."""

from __future__ import annotations

import time

import orjson
from sqlalchemy import select

from ledgerlink.connectors.kit.errors import CircuitOpen, RetryableError, Throttled
from ledgerlink.flows.context import FlowContext, InboundMessage
from ledgerlink.runtime import Database
from ledgerlink.runtime.schema import inbox
from ledgerlink.telemetry import EVENTS_DEFERRED
from tests.runtime.helpers import fast_settings, finished, item, running_engine, statuses, wait_until


async def test_a_deferred_event_waits_without_using_up_its_attempts(database: Database) -> None:
    calls: list[tuple[int, bool]] = []
    created: list[str] = []
    before = EVENTS_DEFERRED.labels("test", "circuit_open")._value.get()

    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        calls.append((ctx.attempt, ctx.recovering))

        async def create() -> str:
            created.append("x")
            return "SO1"

        await ctx.once("order", create)
        if len(calls) <= 6:  # more deferrals than max_attempts (4) allows failures
            raise CircuitOpen("sl/batch: the circuit is open", system="sl", operation="batch", retry_after=0.01)

    async with running_engine(database, {"test": handler}, fast_settings()) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "order-1"))
        await wait_until(finished(database, 1))
    assert statuses(database) == {"done": 1}
    row = database.read_sync(lambda conn: conn.execute(
        select(inbox.c.attempts, inbox.c.history, inbox.c.outcome)).one())
    assert row.attempts == 1  # six deferrals, one real attempt
    history = orjson.loads(row.history)
    assert len(history) == 1 and history[0]["deferred"] == "circuit_open" and history[0]["times"] == 6
    assert created == ["x"]  # the step done before the first deferral was journaled, not repeated
    assert [attempt for attempt, _ in calls] == [1] * 7
    assert calls[0] == (1, False) and all(recovering for _, recovering in calls[1:])  # look keys up first
    assert EVENTS_DEFERRED.labels("test", "circuit_open")._value.get() == before + 6


async def test_a_deferral_waits_as_long_as_it_is_told(database: Database) -> None:
    seen: list[float] = []

    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        seen.append(time.monotonic())
        if len(seen) == 1:
            raise Throttled("sl: paused after a 429", system="sl", retry_after=0.5)

    async with running_engine(database, {"test": handler}, fast_settings()) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "order-1"))
        await wait_until(finished(database, 1))
    assert seen[1] - seen[0] >= 0.5


async def test_real_failures_still_count_and_dead_letter(database: Database) -> None:
    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        raise RetryableError("sl down", system="sl", status=503)

    async with running_engine(database, {"test": handler}, fast_settings()) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "order-1"))
        await wait_until(finished(database, 1))
    assert statuses(database) == {"dead": 1}
    assert database.read_sync(lambda conn: conn.execute(select(inbox.c.attempts)).scalar_one()) == 4
