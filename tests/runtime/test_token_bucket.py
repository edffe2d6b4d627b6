"""The token bucket: its arithmetic by property, and the database and Redis stores computing the same."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerlink.runtime.db import Database
from ledgerlink.runtime.ratelimit import DatabaseBuckets, RedisBuckets, take

REDIS_URL = "redis://127.0.0.1:6379/15"

takes = st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(1, 5)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(takes, st.floats(0.5, 50.0), st.floats(1.0, 20.0))
def test_never_more_than_burst_plus_rate_times_time(steps: list[tuple[float, int]], rate: float,
                                                    burst: float) -> None:
    tokens, at, now, granted_total = burst, 0.0, 0.0, 0
    for dt, want in steps:
        now += dt
        granted, tokens, at = take(tokens, at, 0.0, now=now, per_second=rate, burst=burst, want=want)
        granted_total += granted
        assert 0 <= granted <= want
        assert -1e-9 <= tokens <= burst
        assert granted_total <= burst + rate * now + 1e-6
        if granted < want:  # it gave what it had: less than ``want`` (one if it had at least one)
            assert tokens + granted < want + 1e-9


def test_a_paused_key_gives_nothing_and_time_never_runs_back() -> None:
    assert take(5.0, 0.0, 10.0, now=1.0, per_second=1.0, burst=5.0, want=1)[0] == 0
    granted, tokens, at = take(2.0, 10.0, 0.0, now=9.0, per_second=1.0, burst=5.0, want=1)  # a clock behind
    assert (granted, tokens, at) == (1, 1.0, 10.0)


SEQUENCE = [(0.0, 3), (0.1, 3), (0.05, 1), (0.5, 4), (0.0, 4), (2.0, 2), (0.01, 5), (0.3, 1)]


def expected(rate: float, burst: float) -> list[tuple[int, float]]:
    tokens, at, now, out = burst, 100.0, 100.0, []
    for dt, want in SEQUENCE:
        now += dt
        granted, tokens, at = take(tokens, at, 0.0, now=now, per_second=rate, burst=burst, want=want)
        out.append((granted, tokens))
    return out


async def test_the_database_computes_the_same(database: Database) -> None:
    store, now, got = DatabaseBuckets(database), 100.0, []
    for dt, want in SEQUENCE:
        now += dt
        grant = await store.take("sl", want=want, per_second=4.0, burst=6.0, now=now)
        got.append((grant.granted, grant.tokens))
    assert [g for g, _ in got] == [g for g, _ in expected(4.0, 6.0)]
    assert [round(t, 6) for _, t in got] == [round(t, 6) for _, t in expected(4.0, 6.0)]
    await store.pause("sl", 200.0, now=now)
    await store.pause("sl", 150.0, now=now)  # a shorter pause never shortens one in force
    assert await store.pauses(now) == {"sl": 200.0}
    assert (await store.take("sl", want=1, per_second=4.0, burst=6.0, now=now + 10)).granted == 0


@cache
def redis_unavailable() -> str | None:
    """None when Redis answers, else why the Redis backend's tests are skipped."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"Redis not reachable at {REDIS_URL} ({type(exc).__name__}): the Redis backend is not tested"
    return None


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisBuckets]:
    reason = redis_unavailable()
    if reason:
        pytest.skip(reason)
    store = RedisBuckets(REDIS_URL, prefix=f"llt-{uuid.uuid4().hex[:10]}")
    yield store
    await store.clear()
    await store.aclose()


async def test_redis_computes_the_same(redis_store: RedisBuckets) -> None:
    now, got = 100.0, []
    for dt, want in SEQUENCE:
        now += dt
        grant = await redis_store.take("sl", want=want, per_second=4.0, burst=6.0, now=now)
        got.append((grant.granted, grant.tokens))
    assert [g for g, _ in got] == [g for g, _ in expected(4.0, 6.0)]
    assert [round(t, 6) for _, t in got] == [round(t, 6) for _, t in expected(4.0, 6.0)]
    await redis_store.pause("sl", 200.0, now=now)
    await redis_store.pause("sl", 150.0, now=now)
    assert await redis_store.pauses(now) == {"sl": 200.0}
    assert (await redis_store.take("sl", want=1, per_second=4.0, burst=6.0, now=now + 10)).granted == 0
