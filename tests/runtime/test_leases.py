"""Bucket leases: fair shares between live workers, takeover after a crash, hand-back at shutdown."""

from __future__ import annotations

import pytest

from ledgerlink.runtime import Database
from ledgerlink.runtime.leases import BucketLeases


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def idle(bucket: int) -> bool:
    return False


@pytest.mark.postgres
async def test_live_workers_share_buckets_and_a_dead_ones_are_taken_over(postgres_schema):
    from tests.conftest import POSTGRES_URL

    clock = Clock(1000.0)
    dbs = [Database(POSTGRES_URL, schema=postgres_schema) for _ in range(2)]
    try:
        a = BucketLeases(dbs[0], worker_id="a", buckets=64, ttl_seconds=10, clock=clock)
        b = BucketLeases(dbs[1], worker_id="b", buckets=64, ttl_seconds=10, clock=clock)
        await a.heartbeat(busy=idle, in_flight=[])
        assert len(a.owned) == 64  # alone, it takes everything
        await b.heartbeat(busy=idle, in_flight=[])
        await a.heartbeat(busy=idle, in_flight=[])  # now two are live: a hands back its excess
        await b.heartbeat(busy=idle, in_flight=[])
        assert len(a.owned) == len(b.owned) == 32 and not a.owned & b.owned
        clock.now += 5
        await b.heartbeat(busy=idle, in_flight=[])  # a stops beating (crashed)
        clock.now += 11
        await b.heartbeat(busy=idle, in_flight=[])
        assert len(b.owned) == 64, "the dead worker's buckets are taken once its leases expire"
    finally:
        for db in dbs:
            db.close()


@pytest.mark.postgres
async def test_busy_buckets_are_not_handed_back(postgres_schema):
    from tests.conftest import POSTGRES_URL

    clock = Clock(1000.0)
    dbs = [Database(POSTGRES_URL, schema=postgres_schema) for _ in range(2)]
    try:
        a = BucketLeases(dbs[0], worker_id="a", buckets=8, ttl_seconds=10, clock=clock)
        b = BucketLeases(dbs[1], worker_id="b", buckets=8, ttl_seconds=10, clock=clock)
        await a.heartbeat(busy=idle, in_flight=[])
        await b.heartbeat(busy=idle, in_flight=[])
        changes = await a.heartbeat(busy=lambda bucket: True, in_flight=[])
        assert changes.released == set() and len(a.owned) == 8
    finally:
        for db in dbs:
            db.close()


async def test_release_all_hands_every_bucket_back(database):
    clock = Clock(1000.0)
    a = BucketLeases(database, worker_id="a", buckets=8, ttl_seconds=10, clock=clock)
    await a.heartbeat(busy=idle, in_flight=[])
    await a.release_all()
    b = BucketLeases(database, worker_id="b", buckets=8, ttl_seconds=10, clock=clock)
    await b.heartbeat(busy=idle, in_flight=[])
    assert len(b.owned) == 8, "no waiting for expiry after a clean shutdown"
