"""Durable intake: group commit, duplicates, per-partition queueing."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError

from ledgerlink.runtime import Database, Intake, IntakeResult
from ledgerlink.runtime.counters import read_counters
from ledgerlink.runtime.schema import inbox
from tests.runtime.helpers import item


class CountingDatabase(Database):
    """Counts write transactions, to see group commit happen."""

    writes = 0

    async def write(self, fn):  # type: ignore[no-untyped-def]
        type(self).writes += 1
        return await super().write(fn)


async def test_concurrent_events_share_transactions_and_each_gets_its_answer(database_target):
    url, schema = database_target
    db = CountingDatabase(url, schema=schema)
    CountingDatabase.writes = 0
    intake = Intake(db, buckets=16)
    await intake.start()
    try:
        items = [item(f"evt-{i % 450}", f"order-{i % 450}") for i in range(500)]
        results = await asyncio.gather(*(intake.submit(it) for it in items))
    finally:
        await intake.stop()
    assert results.count(IntakeResult.ACCEPTED) == 450
    assert results.count(IntakeResult.DUPLICATE) == 50
    assert all(r is IntakeResult.ACCEPTED for r in results[:450])  # the first copy wins
    assert CountingDatabase.writes < 50, "500 concurrent events should need a handful of commits, not hundreds"
    rows = db.read_sync(lambda conn: conn.execute(select(inbox.c.event_id)).all())
    assert len(rows) == 450
    assert db.read_sync(read_counters) == {"events.received": 450, "events.duplicates": 50}
    db.close()


async def test_a_redelivery_after_commit_is_a_duplicate_not_a_second_row(database):
    intake = Intake(database, buckets=16)
    await intake.start()
    try:
        assert await intake.submit(item("e1", "p1")) is IntakeResult.ACCEPTED
        assert await intake.submit(item("e1", "p1", b"retried body")) is IntakeResult.DUPLICATE
    finally:
        await intake.stop()
    bodies = database.read_sync(lambda conn: conn.execute(select(inbox.c.body)).scalars().all())
    assert bodies == [b"e1"]


async def test_later_events_of_a_partition_wait_behind_its_head(database):
    intake = Intake(database, buckets=16)
    await intake.start()
    try:
        for i in range(3):
            await intake.submit(item(f"a{i}", "order-a"))
        await asyncio.gather(*(intake.submit(item(f"b{i}", "order-b")) for i in range(3)))
    finally:
        await intake.stop()
    rows = database.read_sync(lambda conn: conn.execute(
        select(inbox.c.partition_key, inbox.c.status).order_by(inbox.c.seq)).all())
    for key in ("order-a", "order-b"):
        assert [r.status for r in rows if r.partition_key == key] == ["pending", "waiting", "waiting"]


async def test_unknown_event_types_are_stored_and_marked_ignored(database):
    intake = Intake(database, buckets=16)
    await intake.start()
    try:
        assert await intake.submit(item("x1", "p", ignored=True)) is IntakeResult.ACCEPTED
    finally:
        await intake.stop()
    row = database.read_sync(lambda conn: conn.execute(select(inbox.c.status, inbox.c.outcome)).one())
    assert (row.status, row.outcome) == ("ignored", "ignored")
    assert database.read_sync(read_counters)["events.ignored"] == 1


async def test_a_failed_commit_acknowledges_nothing(sqlite_url):
    db = CountingDatabase(sqlite_url)
    intake = Intake(db, buckets=16)
    await intake.start()
    db.write_sync(lambda conn: conn.exec_driver_sql("DROP TABLE ll_inbox"))
    CountingDatabase.writes = 0
    try:
        results = await asyncio.gather(*(intake.submit(item(f"e{i}", "p")) for i in range(5)),
                                       return_exceptions=True)
    finally:
        await intake.stop()
        db.close()
    assert all(isinstance(r, Exception) for r in results)
    assert CountingDatabase.writes == 1  # a database that fails as a whole is not tried again event by event


class PoisonRefusingIntake(Intake):
    """The database refusing one event of a group commit (as PostgreSQL refuses a value it cannot hold)."""

    def _store(self, conn, items):  # type: ignore[no-untyped-def]
        if any(it.event_id == "poison" for it in items):
            raise DataError("INSERT INTO ll_inbox", {}, ValueError("a value the database refuses"))
        return super()._store(conn, items)


async def test_an_event_the_database_refuses_fails_alone_not_its_whole_group_commit(database):
    intake = PoisonRefusingIntake(database, buckets=16)
    await intake.start()
    try:
        items = [item(f"ok-{i}", f"order-{i}") for i in range(10)] + [item("poison", "order-x")]
        items += [item(f"ok-{i}", f"order-{i}") for i in range(10, 20)]
        results = await asyncio.gather(*(intake.submit(it) for it in items), return_exceptions=True)
        assert await intake.submit(item("after", "order-y")) is IntakeResult.ACCEPTED  # intake still runs
    finally:
        await intake.stop()
    assert isinstance(results[10], DataError)
    assert [r for i, r in enumerate(results) if i != 10] == [IntakeResult.ACCEPTED] * 20
    stored = database.read_sync(lambda conn: conn.execute(select(inbox.c.event_id)).scalars().all())
    assert sorted(stored) == sorted([f"ok-{i}" for i in range(20)] + ["after"])


async def test_submit_refuses_when_not_running(database):
    intake = Intake(database, buckets=16)
    with pytest.raises(RuntimeError):
        await intake.submit(item("e", "p"))
