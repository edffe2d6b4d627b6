"""Circuit breakers and rate limits per external endpoint, shared by every process: the runtime's guard.

``FlowControl`` is the ``EndpointGuard`` that ``integrations.build_integration`` puts in front of every
connector's transport (``connectors/kit/guard.py``), so each request to ``<system>/<operation>`` passes it:

- **Breaker.** Each process keeps the fleet's breaker states in memory and decides from them, so a request
  costs no database round trip. It counts its own outcomes and, every ``breakers.sync_seconds`` (at once
  when its own counts alone would trip a breaker, or a probe reported), adds them to ``ll_breakers`` and
  reads every endpoint's state back: one small transaction per interval, whatever the traffic. Transitions
  are compare-and-sets through the pure state machine in ``runtime/breaker.py``. While a breaker is open,
  requests are refused unsent with ``CircuitOpen``; the worker puts the event back to wait until the
  breaker may probe, without counting an attempt. Half-open, probe slots are taken one by one from the
  database, so the fleet lets through at most ``half_open_probes``.
- **Rate limits.** An endpoint with a configured limit (its own, or its system's) spends a token per request
  from a bucket shared by the fleet (``runtime/ratelimit.py``: the database, or Redis). A process takes a
  few tokens per round trip and spends them locally for up to a second. A request waits in-process for a
  token up to ``rate_limits.max_wait_seconds``; a longer queue defers the event instead (``Throttled``).
- **429.** A 429 pauses the endpoint's rate-limit key (its system unless a limit names the endpoint) for the
  whole fleet until its ``Retry-After``: the pause is written to the store at once and read back by every
  process at its next sync (and by every token take). Requests meanwhile are held back unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from ledgerlink.connectors.kit.errors import CircuitOpen, Throttled
from ledgerlink.connectors.kit.guard import Endpoint, Outcome
from ledgerlink.runtime.backpressure import measure
from ledgerlink.runtime.breaker import CLOSED, HALF_OPEN, OPEN, STATES, Breaker, apply, take_probe
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.flow_settings import RateLimit
from ledgerlink.runtime.ratelimit import BucketStore, DatabaseBuckets, RedisBuckets
from ledgerlink.runtime.schema import breakers as breakers_table
from ledgerlink.runtime.schema import rate_limits as rate_limits_table
from ledgerlink.runtime.settings import RuntimeSettings
from ledgerlink.telemetry import BREAKER_STATE, BREAKER_TRANSITIONS, CALLS_HELD, RATE_LIMIT_WAIT, RATE_LIMITED

log = logging.getLogger(__name__)

ORDINARY, PROBE, DENIED = 0, 1, 2  # tickets (and probe answers)
TOKEN_TTL = 1.0  # seconds a process may keep tokens it took and has not spent yet
_FIELDS = ("state", "changed_at", "window_start", "calls", "failures", "probes", "probe_successes")


class _Limit:
    """This process's side of one rate-limit key: tokens taken from the shared bucket, not spent yet."""

    __slots__ = ("chunk", "granted_at", "key", "lock", "rule", "tokens", "waiters")

    def __init__(self, key: str, rule: RateLimit) -> None:
        self.key = key
        self.rule = rule
        self.chunk = max(1, min(int(rule.size), int(rule.per_second * 0.05)))  # ~50 ms of traffic per take
        self.tokens = 0
        self.granted_at = 0.0
        self.waiters = 0
        self.lock = asyncio.Lock()

    def spend(self, now: float) -> bool:
        if self.tokens >= 1 and now - self.granted_at < TOKEN_TTL:
            self.tokens -= 1
            return True
        return False


class _Local:
    """This process's view of one endpoint: the fleet's breaker as last read, and counts not yet shared."""

    __slots__ = ("breaker", "endpoint", "failures", "key", "limit", "limit_key", "lock", "probe_denied_until",
                 "probe_failures", "probe_successes", "successes")

    def __init__(self, endpoint: Endpoint, limit_key: str, limit: _Limit | None) -> None:
        self.endpoint = endpoint
        self.key = endpoint.key
        self.limit_key = limit_key
        self.limit = limit
        self.breaker = Breaker()
        self.successes = self.failures = self.probe_successes = self.probe_failures = 0
        self.probe_denied_until = 0.0
        self.lock = asyncio.Lock()

    def take_counts(self) -> tuple[int, int, int, int] | None:
        counts = (self.successes, self.failures, self.probe_successes, self.probe_failures)
        if not any(counts):
            return None
        self.successes = self.failures = self.probe_successes = self.probe_failures = 0
        return counts

    def give_back(self, counts: tuple[int, int, int, int]) -> None:
        self.successes += counts[0]
        self.failures += counts[1]
        self.probe_successes += counts[2]
        self.probe_failures += counts[3]


@dataclass(frozen=True)
class _Row:
    breaker: Breaker
    version: int


def _breaker(row: Any) -> Breaker:
    return Breaker(*(getattr(row, name) for name in _FIELDS))


def read_breakers(conn: Connection) -> dict[str, _Row]:
    return {row.endpoint: _Row(_breaker(row), row.version) for row in conn.execute(select(breakers_table))}


def make_store(db: Database, settings: RuntimeSettings) -> BucketStore:
    limits = settings.rate_limits
    if limits.redis_url:
        return RedisBuckets(limits.redis_url, prefix=limits.redis_prefix)
    return DatabaseBuckets(db)


class FlowControl:
    """Breakers, rate limits and 429 pauses for one process; ``start`` it with the workers."""

    def __init__(self, db: Database, settings: RuntimeSettings, *, clock: Callable[[], float] = time.time,
                 store: BucketStore | None = None) -> None:
        self._db = db
        self._breakers_on = settings.breakers.enabled
        self._sync_seconds = settings.breakers.sync_seconds
        self.policy = settings.breakers.policy()
        self._probe_wait = min(self.policy.open_seconds, 1.0)
        self.limits = settings.rate_limits
        self.store = store or make_store(db, settings)
        self._clock = clock
        self._locals: dict[str, _Local] = {}
        self._fleet: dict[str, Breaker] = {}  # every endpoint's breaker as last read
        self._limit_states: dict[str, _Limit] = {}
        self._pauses: dict[str, float] = {}  # the fleet's pauses as last seen, and ours
        self._new_pauses: dict[str, float] = {}  # ours, not yet written
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._store_warned_at = 0.0

    # -- the guard: one call before and one after every request ----------------------------------

    async def admit(self, endpoint: Endpoint) -> int:
        local = self._locals.get(endpoint.key) or self._add(endpoint)
        now = self._clock()
        paused = self._pauses.get(local.limit_key, 0.0)
        if paused > now:
            raise self._held(local, "paused", paused - now, f"{local.limit_key} is paused after a 429")
        breaker = local.breaker
        if self._breakers_on and breaker.state != CLOSED:
            if breaker.state == OPEN and now < breaker.open_until(self.policy):
                raise self._held(local, "circuit_open", breaker.open_until(self.policy) - now, "the circuit is open")
            if now < local.probe_denied_until:
                raise self._held(local, "circuit_open", local.probe_denied_until - now,
                                 "the circuit is half-open and its probes are out")
        if local.limit is not None and not local.limit.spend(now):
            await self._wait_for_token(local, now)
        if self._breakers_on and local.breaker.state != CLOSED:
            return await self._probe(local)
        return ORDINARY

    def settle(self, endpoint: Endpoint, ticket: object, outcome: Outcome,
               retry_after: float | None = None) -> CircuitOpen | Throttled | None:
        local = self._locals[endpoint.key]
        if outcome is Outcome.THROTTLED:  # not taken by the system: the fleet pauses, and this work waits too
            wait = self._throttled(local, retry_after)
            return self._held(local, "throttled", wait, "answered 429; the fleet pauses it", sent=True, status=429)
        if not self._breakers_on or outcome is Outcome.UNKNOWN:
            return None
        if outcome is Outcome.SUCCESS:
            if ticket == PROBE:
                local.probe_successes += 1
                self._wake.set()
            else:
                local.successes += 1
            return None
        now = self._clock()
        if ticket == PROBE:  # still failing: open again here at once, share it now, and let the work wait
            local.probe_failures += 1
            local.breaker = Breaker(OPEN, changed_at=now, window_start=now)
            self._wake.set()
            return self._held(local, "circuit_open", self.policy.open_seconds,
                              "its probe failed; the circuit is open again", sent=True)
        local.failures += 1
        if local.failures >= self.policy.min_calls and self.policy.trips(local.successes + local.failures,
                                                                         local.failures):
            # This process alone saw enough to trip it: stop here now, and share it now, not at the next tick.
            if local.breaker.state == CLOSED:
                local.breaker = Breaker(OPEN, changed_at=now, window_start=now)
            self._wake.set()
        return None

    def _add(self, endpoint: Endpoint) -> _Local:
        limit_key = self.limits.key_for(endpoint.system, endpoint.operation)
        limit = None
        rule = self.limits.limits.get(limit_key)
        if rule is not None:
            limit = self._limit_states.get(limit_key)
            if limit is None:
                limit = self._limit_states[limit_key] = _Limit(limit_key, rule)
        local = self._locals[endpoint.key] = _Local(endpoint, limit_key, limit)
        local.breaker = self._fleet.get(endpoint.key, local.breaker)
        return local

    def _held(self, local: _Local, reason: str, wait: float, why: str, *, sent: bool = False,
              status: int | None = None) -> CircuitOpen | Throttled:
        """The ``Deferred`` that makes the work wait ``wait`` seconds (``sent``: the request went out, and its
        answer, a 429 or a failed probe, is why)."""
        cls = CircuitOpen if reason == "circuit_open" else Throttled
        if not sent:
            CALLS_HELD.labels(local.key, reason).inc()
            why += "; held back, not sent"
        return cls(f"{local.key}: {why} (try again in {wait:.2f}s)", system=local.endpoint.system,
                   operation=local.endpoint.operation, status=status, retry_after=max(wait, 0.0))

    # -- breakers --------------------------------------------------------------------------------

    async def _probe(self, local: _Local) -> int:
        """A breaker not closed (as this process last saw it): take a probe slot from the database."""
        async with local.lock:
            now = self._clock()
            if now < local.probe_denied_until:
                raise self._held(local, "circuit_open", local.probe_denied_until - now,
                                 "the circuit is half-open and its probes are out")
            if local.breaker.state == CLOSED:
                return ORDINARY
            before = local.breaker.state
            answer, breaker = await self._db.write(lambda conn: self._take_probe(conn, local.key, now))
            local.breaker = breaker
            if answer == DENIED:
                until = breaker.open_until(self.policy)
                wait = until - now if breaker.state == OPEN and until > now else self._probe_wait
                local.probe_denied_until = now + wait
                raise self._held(local, "circuit_open", wait, "the circuit is not closed and no probe slot is free")
            if answer == PROBE and before == OPEN and breaker.probes == 1:
                self._transition(local.key, HALF_OPEN)
            return answer

    def _take_probe(self, conn: Connection, key: str, now: float) -> tuple[int, Breaker]:
        for _ in range(5):
            row = conn.execute(select(breakers_table).where(breakers_table.c.endpoint == key)).one_or_none()
            if row is None:
                return ORDINARY, Breaker()
            current = _breaker(row)
            if current.state == CLOSED:
                return ORDINARY, current
            taken = take_probe(current, self.policy, now)
            if taken is None:
                return DENIED, current
            if self._cas(conn, key, row.version, taken, now):
                return PROBE, taken
        return DENIED, current

    @staticmethod
    def _cas(conn: Connection, key: str, version: int, breaker: Breaker, now: float) -> bool:
        result = conn.execute(  # RETURNING, not rowcount: psycopg does not always report one
            update(breakers_table)
            .where(breakers_table.c.endpoint == key, breakers_table.c.version == version)
            .values(**dict(zip(_FIELDS, astuple(breaker), strict=True)), version=version + 1, updated_at=now)
            .returning(breakers_table.c.version)
        )
        return result.first() is not None

    def _write_counts(self, conn: Connection, pending: dict[str, tuple[int, int, int, int]],
                      now: float) -> tuple[dict[str, _Row], list[tuple[str, str]]]:
        rows = read_breakers(conn)
        changed: list[tuple[str, str]] = []
        for key, (successes, failures, probe_ok, probe_failed) in pending.items():
            for _ in range(5):
                row = rows.get(key)
                current = row.breaker if row else Breaker(changed_at=now, window_start=now)
                new = apply(current, self.policy, now, successes=successes, failures=failures,
                            probe_successes=probe_ok, probe_failures=probe_failed)
                if row is not None and new == current:
                    break
                if row is None:
                    insert = self._db.insert(breakers_table).values(
                        endpoint=key, **dict(zip(_FIELDS, astuple(new), strict=True)), version=1, updated_at=now)
                    written = conn.execute(insert.on_conflict_do_nothing(index_elements=["endpoint"])
                                           .returning(breakers_table.c.version)).first() is not None
                else:
                    written = self._cas(conn, key, row.version, new, now)
                if written:
                    rows[key] = _Row(new, (row.version if row else 0) + 1)
                    if new.state != current.state:
                        changed.append((key, new.state))
                    break
                found = conn.execute(select(breakers_table).where(breakers_table.c.endpoint == key)).one_or_none()
                if found is not None:
                    rows[key] = _Row(_breaker(found), found.version)
        return rows, changed

    def _transition(self, key: str, state: str) -> None:
        BREAKER_TRANSITIONS.labels(key, state).inc()
        BREAKER_STATE.labels(key).set(STATES.index(state))
        if state == OPEN:
            log.warning("circuit breaker %s opened: calls are held back for %.0fs, then probed; events wait "
                        "(no attempt counted, nothing dead-lettered)", key, self.policy.open_seconds)
        elif state == HALF_OPEN:
            log.warning("circuit breaker %s half-open: letting %d probe(s) through", key,
                        self.policy.half_open_probes)
        else:
            log.warning("circuit breaker %s closed: calls flow again", key)

    # -- rate limits and 429 pauses ----------------------------------------------------------------

    async def _wait_for_token(self, local: _Local, started: float) -> None:
        limit = local.limit
        assert limit is not None
        rule, max_wait = limit.rule, self.limits.max_wait_seconds
        queued = limit.waiters / rule.per_second
        if queued > max_wait:  # the line ahead is longer than we may wait: defer instead of queueing
            raise self._held(local, "throttled", queued, f"rate limit {limit.key} has a queue")
        limit.waiters += 1
        try:
            async with limit.lock:
                while True:
                    now = self._clock()
                    if limit.spend(now):
                        break
                    try:
                        grant = await self.store.take(limit.key, want=limit.chunk, per_second=rule.per_second,
                                                      burst=rule.size, now=now)
                    except Exception as exc:  # the store is down: let the call go rather than stop the fleet
                        self._store_failed(exc)
                        return
                    if grant.paused_until > now:
                        self._pauses[limit.key] = max(self._pauses.get(limit.key, 0.0), grant.paused_until)
                        raise self._held(local, "paused", grant.paused_until - now,
                                         f"{limit.key} is paused after a 429")
                    if grant.granted:
                        limit.tokens, limit.granted_at = grant.granted, now
                        continue
                    wait = max(0.001, (1.0 - grant.tokens) / rule.per_second)
                    if now + wait - started > max_wait:
                        raise self._held(local, "throttled", wait, f"rate limit {limit.key} is spent")
                    await asyncio.sleep(wait)
        finally:
            limit.waiters -= 1
        RATE_LIMIT_WAIT.labels(limit.key).observe(max(0.0, self._clock() - started))

    def _throttled(self, local: _Local, retry_after: float | None) -> float:
        RATE_LIMITED.labels(local.key).inc()
        wait = min(self.limits.max_pause_seconds,
                   retry_after if retry_after is not None else self.limits.default_pause_seconds)
        until = self._clock() + wait
        if until > self._pauses.get(local.limit_key, 0.0) + 0.05:
            log.warning("%s answered 429: every process holds %s back for %.1fs", local.key, local.limit_key, wait)
        self._pauses[local.limit_key] = max(until, self._pauses.get(local.limit_key, 0.0))
        self._new_pauses[local.limit_key] = max(until, self._new_pauses.get(local.limit_key, 0.0))
        self._wake.set()
        return wait

    def _store_failed(self, exc: Exception) -> None:
        now = self._clock()
        if now - self._store_warned_at > 30:
            self._store_warned_at = now
            log.warning("rate-limit store unavailable (%s: %s): requests go unmetered until it answers",
                        type(exc).__name__, exc)

    # -- sharing ---------------------------------------------------------------------------------

    async def sync(self) -> None:
        """Share this process's counts and pauses; read the fleet's breakers and pauses back."""
        now = self._clock()
        pending: dict[str, tuple[int, int, int, int]] = {}
        for local in self._locals.values():
            counts = local.take_counts()
            if counts is not None:
                pending[local.key] = counts
        changed: list[tuple[str, str]] = []
        rows: dict[str, _Row] = {}
        if self._breakers_on:
            try:
                if pending:
                    rows, changed = await self._db.write(lambda conn: self._write_counts(conn, pending, now))
                else:
                    rows = await self._db.read(read_breakers)
            except BaseException:
                for key, counts in pending.items():
                    self._locals[key].give_back(counts)
                raise
        pauses, self._new_pauses = self._new_pauses, {}
        fleet_pauses: dict[str, float] = {}
        try:
            for key, until in pauses.items():
                await self.store.pause(key, until, now=now)
            pauses = {}
            fleet_pauses = await self.store.pauses(now)
        except Exception as exc:
            self._store_failed(exc)
            for key, until in pauses.items():
                self._new_pauses[key] = max(until, self._new_pauses.get(key, 0.0))
        for key, until in fleet_pauses.items():
            if until > self._pauses.get(key, 0.0) + 0.05:
                log.info("%s is paused by another process until %.1fs from now", key, until - now)
        merged = dict(self._pauses)
        for key, until in fleet_pauses.items():
            merged[key] = max(until, merged.get(key, 0.0))
        self._pauses = {key: until for key, until in merged.items() if until > self._clock()}
        for key, state in changed:
            self._transition(key, state)
        for key, row in rows.items():
            self._fleet[key] = row.breaker
            local = self._locals.get(key)
            if local is not None and not (local.probe_failures and row.breaker.state == HALF_OPEN):
                local.breaker = row.breaker
            BREAKER_STATE.labels(key).set(STATES.index(row.breaker.state))

    async def _loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as the event is set
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sync_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.sync()
            except Exception:
                log.exception("sharing flow-control state failed; retrying")
                await asyncio.sleep(self._sync_seconds)

    async def start(self) -> None:
        try:
            await self.sync()
        except Exception:
            log.exception("reading flow-control state failed; starting with every breaker closed")
        self._task = asyncio.create_task(self._loop(), name="ledgerlink-flow-control")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            try:
                await self.sync()  # what this process counted last is not lost
            except Exception:
                log.exception("could not share the last flow-control counts")
        await self.store.aclose()

    # -- what operators see ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """This process's view: breakers of the endpoints it called, and pauses in force."""
        now = self._clock()
        return {
            "breakers": {key: local.breaker.state for key, local in sorted(self._locals.items())},
            "paused": {key: round(until - now, 3) for key, until in sorted(self._pauses.items()) if until > now},
        }


def flow_report(conn: Connection, settings: RuntimeSettings, now: float | None = None) -> dict[str, Any]:
    """Back-pressure, breakers and rate limits as the database holds them, for ``ledgerlink stats`` (pauses
    kept in Redis are added by the caller)."""
    now = time.time() if now is None else now
    breakers: dict[str, Any] = {}
    for key, row in sorted(read_breakers(conn).items()):
        b = row.breaker
        entry: dict[str, Any] = {"state": b.state, "since": b.changed_at}
        if b.state == CLOSED:
            entry.update(window_calls=b.calls, window_failures=b.failures)
        else:
            entry.update(probes=b.probes, probe_successes=b.probe_successes,
                         probe_after=max(0.0, round(b.open_until(settings.breakers.policy()) - now, 3)))
        breakers[key] = entry
    rate_limits: dict[str, Any] = {}
    for key, rule in sorted(settings.rate_limits.limits.items()):
        rate_limits[key] = {"per_second": rule.per_second, "burst": rule.size}
    for row in conn.execute(select(rate_limits_table).order_by(rate_limits_table.c.key)):
        entry = rate_limits.setdefault(row.key, {})
        if row.key in settings.rate_limits.limits and not settings.rate_limits.redis_url:
            entry["tokens"] = round(float(row.tokens), 3)
        if row.paused_until > now:
            entry["paused_for_seconds"] = round(row.paused_until - now, 3)
    return {"backpressure": measure(conn, settings.backpressure, now).as_dict(), "breakers": breakers,
            "rate_limits": rate_limits}
