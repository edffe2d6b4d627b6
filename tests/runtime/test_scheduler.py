"""Cron schedules: one inbox event per tick across processes, catch-up once, jobs run through the runtime."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import select

from ledgerlink.flows.context import FlowContext
from ledgerlink.runtime import Database, ScheduleSpec
from ledgerlink.runtime.scheduler import JobCall, Scheduler, next_tick
from ledgerlink.runtime.schema import inbox, schedules
from tests.runtime.helpers import fast_settings, finished, running_engine, wait_until


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


EVERY_MINUTE = ScheduleSpec(name="sweep", cron="* * * * *", job="noop")
START = 1_800_000_000.0  # a fixed instant, 2027-01-15T08:00:00Z


async def test_racing_schedulers_enqueue_each_tick_exactly_once(database_target):
    url, schema = database_target
    clock = Clock(START)
    dbs = [Database(url, schema=schema) for _ in range(3)]
    try:
        schedulers = [Scheduler(db, [EVERY_MINUTE], buckets=16, clock=clock) for db in dbs]
        for scheduler in schedulers:
            await scheduler.start()
            await scheduler.stop()  # definitions only; ticks are driven below
        for minute in range(1, 6):
            clock.now = START + 60 * minute + 1
            results = await asyncio.gather(*(s.run_due() for s in schedulers))
            assert sum(results) == 1, f"tick {minute} enqueued {sum(results)} times"
        ids = dbs[0].read_sync(lambda conn: conn.execute(
            select(inbox.c.event_id).where(inbox.c.source == "schedule")).scalars().all())
        assert len(ids) == len(set(ids)) == 5
    finally:
        for db in dbs:
            db.close()


async def test_after_downtime_a_job_runs_once_not_once_per_missed_tick(database):
    clock = Clock(START)
    scheduler = Scheduler(database, [EVERY_MINUTE], buckets=16, clock=clock)
    await scheduler.start()
    await scheduler.stop()
    clock.now = START + 3600  # an hour of missed ticks
    assert await scheduler.run_due() == 1
    assert await scheduler.run_due() == 0
    next_run = database.read_sync(lambda conn: conn.execute(select(schedules.c.next_run_at)).scalar_one())
    assert next_run == next_tick("* * * * *", "UTC", clock.now)
    # the one run is for the first missed tick and says which was the last, so a job can catch up
    body = orjson.loads(database.read_sync(lambda conn: conn.execute(select(inbox.c.body)).scalar_one()))
    assert (body["tick"], body["args"]) == (START + 60, {"through": START + 3600})


async def test_a_tick_on_time_names_no_later_one(database):
    clock = Clock(START)
    scheduler = Scheduler(database, [EVERY_MINUTE], buckets=16, clock=clock)
    await scheduler.start()
    await scheduler.stop()
    clock.now = START + 61
    assert await scheduler.run_due() == 1
    body = orjson.loads(database.read_sync(lambda conn: conn.execute(select(inbox.c.body)).scalar_one()))
    assert (body["tick"], body["args"]) == (START + 60, {})


async def test_a_changed_cron_reschedules(database):
    clock = Clock(START)
    await Scheduler(database, [EVERY_MINUTE], buckets=16, clock=clock).start()
    hourly = ScheduleSpec(name="sweep", cron="0 * * * *", job="noop")
    scheduler = Scheduler(database, [hourly], buckets=16, clock=clock)
    await scheduler.start()
    await scheduler.stop()
    row = database.read_sync(lambda conn: conn.execute(select(schedules)).one())
    assert row.cron == "0 * * * *" and row.next_run_at == next_tick("0 * * * *", "UTC", START)


async def test_ticks_run_their_job_through_the_runtime(database):
    ran: list[float] = []

    async def job(call: JobCall, ctx: FlowContext) -> None:
        ran.append(call.tick)
        ctx.count("jobs.noop")

    spec = ScheduleSpec(name="often", cron="* * * * * */1", job="noop")  # every second (seconds field)
    async with running_engine(database, {}, fast_settings(), schedules=[spec], jobs={"noop": job}):
        await wait_until(lambda: len(ran) >= 2, timeout=10)
    body = database.read_sync(lambda conn: conn.execute(
        select(inbox.c.body).where(inbox.c.source == "schedule").limit(1)).scalar_one())
    assert orjson.loads(body)["job"] == "noop"
    await wait_until(finished(database, 1))


def test_bad_cron_and_unknown_zone_are_refused():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="cron"):
        ScheduleSpec(name="x", cron="not a cron", job="j")
    with pytest.raises(ValidationError):
        ScheduleSpec(name="x", cron="* * * * *", job="j", timezone="Mars/Olympus")
