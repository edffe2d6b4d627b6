"""The worker: per-partition order, retries, dead letters, replay, crash takeover."""

from __future__ import annotations

import asyncio
import random
import time

import orjson
from sqlalchemy import select

from ledgerlink.connectors.kit.errors import RateLimited, Rejected, RetryableError
from ledgerlink.flows.context import FlowContext, Ignored, InboundMessage
from ledgerlink.model import FieldIssue, InvalidInput
from ledgerlink.runtime import Database, Engine, Intake, dlq
from ledgerlink.runtime.counters import read_counters
from ledgerlink.runtime.schema import inbox
from tests.runtime.helpers import fast_settings, finished, item, running_engine, statuses, wait_until


class Recorder:
    """A handler that records order and effects, and fails on demand."""

    def __init__(self, failure_rate: float = 0.0, seed: int = 7) -> None:
        self.applied: list[tuple[str, int]] = []
        self.effects: dict[str, int] = {}
        self.rng = random.Random(seed)
        self.failure_rate = failure_rate
        self.contexts: list[FlowContext] = []

    async def __call__(self, message: InboundMessage, ctx: FlowContext) -> None:
        partition, index = message.body.decode().split(":")
        self.contexts.append(ctx)
        await asyncio.sleep(self.rng.random() * 0.003)

        async def create() -> str:
            self.effects[message.event_id] = self.effects.get(message.event_id, 0) + 1
            return f"doc-{message.event_id}"

        async def find() -> str | None:
            return f"doc-{message.event_id}" if message.event_id in self.effects else None

        await ctx.once(f"effect:{message.event_id}", create, find, tag="effects.created")
        if self.rng.random() < self.failure_rate:
            raise RetryableError("flaky back office", system="test", status=503)
        self.applied.append((partition, int(index)))
        ctx.state["last"] = int(index)


async def test_partitions_apply_in_order_and_effects_happen_once(database):
    recorder = Recorder(failure_rate=0.2)
    settings = fast_settings(backoff={"base_seconds": 0.005, "cap_seconds": 0.02, "max_attempts": 30})
    async with running_engine(database, {"test": recorder}, settings) as engine:
        assert engine.intake is not None
        items = [item(f"{p}-{i}", f"order-{p}", f"{p}:{i}".encode()) for i in range(5) for p in range(60)]
        await asyncio.gather(*(engine.intake.submit(it) for it in items))
        await wait_until(finished(database, len(items)))
    assert statuses(database) == {"done": 300}
    for p in range(60):
        assert [i for (q, i) in recorder.applied if q == str(p)] == list(range(5))
    assert set(recorder.effects.values()) == {1}, "a retried event must not repeat an effect it journaled"
    assert database.read_sync(read_counters)["effects.created"] == 300


async def test_retry_waits_at_least_what_retry_after_asks(database):
    attempts: list[float] = []

    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RateLimited("slow down", system="test", status=429, retry_after=0.4)

    async with running_engine(database, {"test": handler}) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "p1"))
        await wait_until(finished(database, 1))
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.39
    row = database.read_sync(lambda conn: conn.execute(select(inbox.c.history)).scalar_one())
    history = orjson.loads(row)
    assert history[0]["status"] == 429 and history[0]["retry_in"] >= 0.4


async def test_permanent_failures_dead_letter_at_once_with_redacted_evidence(database):
    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        raise Rejected("back office refused the order", system="dynamics_sl", operation="create_sales_order",
                       status=422, provider_code="FIELD_TOO_LONG",
                       body='{"error":"bad","echo":"4111 1111 1111 1111"}')

    async with running_engine(database, {"test": handler}) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "p1"))
        await wait_until(finished(database, 1))
    [dead] = database.read_sync(lambda conn: dlq.list_dead(conn))
    detail = database.read_sync(lambda conn: dlq.get_dead(conn, dead.seq))
    assert detail is not None
    assert detail.attempts == 1
    assert detail.error["status"] == 422 and detail.error["provider_code"] == "FIELD_TOO_LONG"
    assert "4111" not in orjson.dumps(detail.detail()).decode()
    assert "[redacted card number]" in detail.error["body"]


async def test_invalid_input_and_bugs_are_dead_letters_too(database):
    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        if message.event_id == "bad":
            raise InvalidInput(FieldIssue("payment.party", "no customer"))
        raise KeyError("unexpected")

    async with running_engine(database, {"test": handler}) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("bad", "p1"))
        await engine.intake.submit(item("bug", "p2"))
        await wait_until(finished(database, 2))
    dead = {d.event_id: d for d in database.read_sync(lambda conn: dlq.list_dead(conn))}
    assert dead["bad"].error["issues"] == [{"field": "payment.party", "reason": "no customer"}]
    assert dead["bug"].error["error"] == "KeyError" and "traceback" in dead["bug"].error


async def test_retries_are_capped_then_dead_lettered(database):
    calls = 0

    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        nonlocal calls
        calls += 1
        raise RetryableError("down", system="test", status=503)

    async with running_engine(database, {"test": handler}) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "p1"))
        await wait_until(finished(database, 1))
    assert calls == 4  # max_attempts in fast_settings
    [dead] = database.read_sync(lambda conn: dlq.list_dead(conn))
    assert dead.error.get("exhausted") is True and len(dead.history) == 4


async def test_a_dead_event_does_not_block_its_partition_and_replay_recovers(database):
    recorder = Recorder()
    broken = {"p-0": True}

    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        if broken.get(message.event_id):
            await ctx.once("effect:p-0", lambda: asyncio.sleep(0, result="made-before-failing"))
            raise Rejected("refused", system="test", status=400)
        await recorder(message, ctx)

    async with running_engine(database, {"test": handler}) as engine:
        assert engine.intake is not None
        for i in range(3):
            await engine.intake.submit(item(f"p-{i}", "order-p", f"p:{i}".encode()))
        await wait_until(finished(database, 3))
        assert statuses(database) == {"dead": 1, "done": 2}
        broken.clear()
        replayed = await database.write(lambda conn: dlq.replay(conn, is_sqlite=database.is_sqlite))
        assert len(replayed) == 1
        engine.worker.wake()  # type: ignore[union-attr]
        await wait_until(lambda: statuses(database) == {"done": 3})
    replay_ctx = recorder.contexts[-1]
    assert replay_ctx.recovering is True
    # the effect the failed attempt journaled is still known: the replay did not create it again
    assert replay_ctx.state["effects"]["effect:p-0"] == "made-before-failing"


async def test_ignored_messages_finish_as_ignored(database):
    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        raise Ignored("nothing to do")

    async with running_engine(database, {"test": handler}) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "p1"))
        await wait_until(finished(database, 1))
    assert statuses(database) == {"ignored": 1}


async def test_a_flow_that_hangs_times_out_and_is_retried(database):
    calls = 0

    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(10)

    settings = fast_settings(event_timeout_seconds=0.2)
    async with running_engine(database, {"test": handler}, settings) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "p1"))
        await wait_until(finished(database, 1))
    assert calls == 2 and statuses(database) == {"done": 1}


async def test_events_of_a_crashed_worker_are_taken_over_in_recovery_mode(database_target):
    """Worker A claims events and dies without a word; B takes its buckets and redoes them, looking effects up."""
    url, schema = database_target
    first = Database(url, schema=schema)
    started = asyncio.Event()

    async def hang(message: InboundMessage, ctx: FlowContext) -> None:
        started.set()
        await asyncio.sleep(3600)

    engine_a = Engine(first, handlers={"test": hang}, settings=fast_settings(lease_seconds=0.6))
    await engine_a.start()
    assert engine_a.intake is not None
    await engine_a.intake.submit(item("e1", "p1", b"p1:0"))
    await asyncio.wait_for(started.wait(), 5)
    # "kill -9": stop every loop of A without committing or handing back its leases
    assert engine_a.worker is not None
    for task in [*engine_a.worker._loops, *engine_a.worker._event_tasks]:
        task.cancel()
    await engine_a.intake.stop()
    first.close()

    second = Database(url, schema=schema)
    recorder = Recorder()
    try:
        async with running_engine(second, {"test": recorder}, fast_settings(lease_seconds=0.6)):
            await wait_until(finished(second, 1), timeout=10)
        assert recorder.contexts[0].recovering is True and recorder.contexts[0].attempt == 2
    finally:
        second.close()


async def test_only_one_engine_may_own_a_sqlite_database(sqlite_url):
    from ledgerlink.runtime import DatabaseLocked

    one, two = Database(sqlite_url), Database(sqlite_url)
    try:
        one.acquire_engine_lock()
        try:
            two.acquire_engine_lock()
        except DatabaseLocked as exc:
            assert "another ledgerlink engine" in str(exc)
        else:
            raise AssertionError("a second engine on one SQLite file must be refused")
    finally:
        one.close()
        two.close()


async def test_intake_without_workers_stores_for_a_later_engine(database):
    intake = Intake(database, buckets=16)
    await intake.start()
    await intake.submit(item("e1", "p1", b"p1:0"))
    await intake.stop()
    recorder = Recorder()
    async with running_engine(database, {"test": recorder}):
        await wait_until(finished(database, 1))
    assert statuses(database) == {"done": 1}
