"""Token buckets shared by the fleet: one per rate-limit key, in the database or in Redis.

A bucket holds up to ``burst`` tokens and refills at ``per_second``; a request spends one. ``take`` is one
atomic step in either store (an ``UPDATE ... RETURNING`` in SQLite or PostgreSQL, a Lua script in Redis),
all three computing ``take`` below, so however many processes take, the tokens handed out up to time T
never exceed ``burst + per_second * T``. A process takes a few tokens at a time and spends them locally
(``runtime/flow_control.py``), so a store round trip serves several requests.

The same stores keep the fleet's "not before" per key: a 429 with ``Retry-After`` pauses the key for every
process (``pause``), and ``take`` hands out nothing while it lasts.

Times are epoch seconds from the callers' clocks (the stores never move a bucket's time backwards).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Float, Integer, case, literal, select, update

from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import rate_limits


@dataclass(frozen=True)
class Grant:
    granted: int
    tokens: float  # left in the bucket after this take
    paused_until: float


def take(tokens: float, updated_at: float, paused_until: float, *, now: float, per_second: float, burst: float,
         want: int) -> tuple[int, float, float]:
    """(granted, tokens left, new updated_at): ``want`` tokens if the bucket has them, else one, else none;
    none at all while the key is paused."""
    elapsed = now - updated_at if now > updated_at else 0.0
    level = min(burst, tokens + elapsed * per_second)
    if paused_until > now:
        granted = 0
    elif level >= want:
        granted = want
    elif level >= 1:
        granted = 1
    else:
        granted = 0
    return granted, level - granted, max(now, updated_at)


class BucketStore(Protocol):
    async def take(self, key: str, *, want: int, per_second: float, burst: float, now: float) -> Grant: ...

    async def pause(self, key: str, until: float, *, now: float) -> None: ...

    async def pauses(self, now: float) -> dict[str, float]:
        """Every key paused beyond ``now``, with its "not before"."""
        ...

    async def aclose(self) -> None: ...


class DatabaseBuckets:
    """Buckets in ``ll_rate_limits`` of the engine's database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._known: set[str] = set()

    async def take(self, key: str, *, want: int, per_second: float, burst: float, now: float) -> Grant:
        return await self._db.write(
            lambda conn: self.take_sync(conn, key, want=want, per_second=per_second, burst=burst, now=now))

    def take_sync(self, conn: Connection, key: str, *, want: int, per_second: float, burst: float,
                  now: float) -> Grant:
        if key not in self._known:
            conn.execute(self._db.insert(rate_limits).values(
                key=key, tokens=burst, updated_at=now, granted=0, paused_until=0.0,
            ).on_conflict_do_nothing(index_elements=["key"]))
        t = rate_limits.c
        at = literal(now, Float)
        refill = t.tokens + case((at > t.updated_at, at - t.updated_at), else_=literal(0.0, Float)) * per_second
        level = case((refill > burst, literal(burst, Float)), else_=refill)
        granted = case((t.paused_until > at, literal(0, Integer)), (level >= want, literal(want, Integer)),
                       (level >= 1, literal(1, Integer)), else_=literal(0, Integer))
        row = conn.execute(
            update(rate_limits).where(t.key == key)
            .values(tokens=level - granted, granted=granted, updated_at=case((at > t.updated_at, at),
                                                                              else_=t.updated_at))
            .returning(t.granted, t.tokens, t.paused_until)
        ).one()
        self._known.add(key)
        return Grant(int(row.granted), float(row.tokens), float(row.paused_until))

    async def pause(self, key: str, until: float, *, now: float) -> None:
        def write(conn: Connection) -> None:
            insert = self._db.insert(rate_limits).values(key=key, tokens=0.0, updated_at=0.0, granted=0,
                                                        paused_until=until)
            current = rate_limits.c.paused_until
            conn.execute(insert.on_conflict_do_update(index_elements=["key"], set_={
                "paused_until": case((current < insert.excluded.paused_until, insert.excluded.paused_until),
                                     else_=current)}))

        await self._db.write(write)

    async def pauses(self, now: float) -> dict[str, float]:
        return await self._db.read(lambda conn: self.pauses_sync(conn, now))

    @staticmethod
    def pauses_sync(conn: Connection, now: float) -> dict[str, float]:
        rows = conn.execute(select(rate_limits.c.key, rate_limits.c.paused_until)
                            .where(rate_limits.c.paused_until > now))
        return {row.key: float(row.paused_until) for row in rows}

    async def aclose(self) -> None:
        return None


_TAKE = """
local want, rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(held[1]) or burst
local ts = tonumber(held[2]) or now
if now > ts then
  tokens = tokens + (now - ts) * rate
  ts = now
end
if tokens > burst then tokens = burst end
local paused = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[5])) or 0
local granted = 0
if paused <= now then
  if tokens >= want then granted = want elseif tokens >= 1 then granted = 1 end
end
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('EXPIRE', KEYS[1], 86400)
return {granted, tostring(tokens), tostring(paused)}
"""


class RedisBuckets:
    """Buckets in Redis (``runtime.rate_limits.redis_url``): a hash per key, and one sorted set of pauses.

    Keys live under ``<prefix>:`` so several engines (or test runs) can share one Redis.
    """

    def __init__(self, url: str, *, prefix: str = "ledgerlink", timeout_seconds: float = 1.0) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.Redis.from_url(url, socket_timeout=timeout_seconds,
                                                   socket_connect_timeout=timeout_seconds)
        self._prefix = prefix
        self._pauses = f"{prefix}:pauses"
        self._take = self._redis.register_script(_TAKE)
        self._pruned_at = 0.0

    def _bucket(self, key: str) -> str:
        return f"{self._prefix}:bucket:{key}"

    async def take(self, key: str, *, want: int, per_second: float, burst: float, now: float) -> Grant:
        granted, tokens, paused = await self._take(keys=[self._bucket(key), self._pauses],
                                                   args=[want, repr(per_second), repr(burst), repr(now), key])
        return Grant(int(granted), float(tokens), float(paused))

    async def pause(self, key: str, until: float, *, now: float) -> None:
        await self._redis.zadd(self._pauses, {key: until}, gt=True)

    async def pauses(self, now: float) -> dict[str, float]:
        if now - self._pruned_at > 60:
            self._pruned_at = now
            await self._redis.zremrangebyscore(self._pauses, "-inf", now - 3600)
        found = await self._redis.zrangebyscore(self._pauses, f"({now!r}", "+inf", withscores=True)
        return {(k.decode() if isinstance(k, bytes) else k): float(score) for k, score in found}

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def clear(self) -> None:
        """Remove every key under the prefix (tests)."""
        async for name in self._redis.scan_iter(match=f"{self._prefix}:*"):
            await self._redis.delete(name)

    async def aclose(self) -> None:
        await self._redis.aclose()
