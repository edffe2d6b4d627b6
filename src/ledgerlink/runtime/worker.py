"""The worker: claim ready events in batches, run their flows concurrently, commit results in batches.

Three loops share one event loop:

- claim: takes up to ``claim_batch`` ready events from the buckets this process
  leases. Only a partition's head is ever pending (see ``ordering``), so a
  partition has at most one event in flight and its events apply in arrival
  order, while different partitions run side by side.
- run: one asyncio task per claimed event calls its handler with an
  ``EventContext``. Failures are sorted by the error tree: retryable ones are
  rescheduled with backoff (``Retry-After`` honoured), everything else goes to the
  dead-letter list with its evidence.
- flush: finished events are committed together — status, outcome, the
  partition's state (which holds the step journal) and the counters — in one
  transaction, fenced on still holding the event (a process that lost its lease
  cannot overwrite the new owner's work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ledgerlink.connectors.kit.errors import ConnectorError, Deferred, RetryableError
from ledgerlink.flows.context import Ignored, InboundMessage, MessageHandler, OutboundEvent
from ledgerlink.model.cardnumbers import redact_card_numbers, redact_document
from ledgerlink.model.errors import InvalidInput
from ledgerlink.runtime.context import EventContext
from ledgerlink.runtime.counters import increment_counters
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.intake import InboxItem, store_items
from ledgerlink.runtime.leases import BucketLeases
from ledgerlink.runtime.ordering import heal, lock_partitions, promote_next
from ledgerlink.runtime.redaction import holds_card_number, stored_body, stored_json, stored_text
from ledgerlink.runtime.schema import DEAD, DONE, IGNORED, PENDING, RUNNING, inbox, partition_state
from ledgerlink.runtime.settings import RuntimeSettings
from ledgerlink.telemetry import (
    DEAD_LETTERS,
    EVENT_LATENCY,
    EVENTS,
    EVENTS_DEFERRED,
    IN_FLIGHT,
    LEASED_BUCKETS,
    RETRIES,
)

log = logging.getLogger(__name__)

_HISTORY_LIMIT = 50


@dataclass(slots=True)
class Claimed:
    seq: int
    source: str
    event_id: str
    event_type: str
    partition_key: str
    bucket: int
    attempts: int  # including the attempt now starting
    replays: int
    headers: dict[str, str]
    body: bytes
    received_at: float
    history: list[dict[str, Any]]
    state: dict[str, Any]
    state_text: str | None


@dataclass(slots=True)
class Completion:
    claimed: Claimed
    status: str
    outcome: str
    finished_at: float
    available_at: float
    error: dict[str, Any] | None
    history: list[dict[str, Any]] | None
    state_text: str | None  # None: leave the partition state as it is
    tags: dict[str, int]
    emitted: list[InboxItem] = field(default_factory=list)  # stored only if the event is done
    uncounted: bool = False  # deferred (a breaker, a rate limit): the attempt it started does not count


# The worker's statements, built once: building a statement (and its cache key) each time cost more CPU
# than executing it on SQLite. Values vary only through bound parameters.
_CLAIM = (
    select(
        inbox.c.seq, inbox.c.source, inbox.c.event_id, inbox.c.event_type, inbox.c.partition_key,
        inbox.c.bucket, inbox.c.attempts, inbox.c.replays, inbox.c.headers, inbox.c.body,
        inbox.c.received_at, inbox.c.history, partition_state.c.state,
    )
    .select_from(inbox.outerjoin(partition_state, partition_state.c.partition_key == inbox.c.partition_key))
    .where(inbox.c.status == PENDING, inbox.c.available_at <= bindparam("now"))
    .order_by(inbox.c.seq)
    .limit(bindparam("limit"))
)
_CLAIM_BUCKETS = _CLAIM.where(inbox.c.bucket.in_(bindparam("buckets", expanding=True)))
# (owns every bucket, SQLite) -> claim query; PostgreSQL skips rows another worker has locked.
_CLAIMS = {
    (owns_all, is_sqlite): query if is_sqlite else query.with_for_update(of=inbox, skip_locked=True)
    for owns_all, query in ((True, _CLAIM), (False, _CLAIM_BUCKETS))
    for is_sqlite in (True, False)
}
_MARK_RUNNING = (
    update(inbox).where(inbox.c.seq.in_(bindparam("seqs", expanding=True)))
    .values(status=RUNNING, attempts=inbox.c.attempts + 1, lease_owner=bindparam("owner"))
)
_HELD = select(inbox.c.seq).where(
    inbox.c.seq.in_(bindparam("seqs", expanding=True)), inbox.c.status == RUNNING,
    inbox.c.lease_owner == bindparam("owner"),
)
_FINISH = update(inbox).where(inbox.c.seq == bindparam("b_seq")).values(
    status=bindparam("b_status"), outcome=bindparam("b_outcome"),
    finished_at=bindparam("b_finished"), available_at=bindparam("b_available"),
    last_error=bindparam("b_error"), history=bindparam("b_history"), lease_owner=None,
    attempts=inbox.c.attempts - bindparam("b_uncount"),
)


def _state_upsert(insert: Any) -> Any:
    upsert = insert(partition_state)
    return upsert.on_conflict_do_update(
        index_elements=["partition_key"],
        set_={"state": upsert.excluded.state, "updated_at": upsert.excluded.updated_at},
    )


_SAVE_STATE = {True: _state_upsert(sqlite.insert), False: _state_upsert(postgresql.insert)}


def _stored_outbound(event: OutboundEvent, what: str) -> InboxItem:
    """An emitted event as it is stored: what polls read from other systems (an SL user's note, a
    chargeback) has its card numbers redacted."""
    return InboxItem(
        source=event.source, event_id=stored_text(event.event_id, what=what) or "", event_type=event.event_type,
        partition_key=stored_text(event.partition_key, what=what) or "", body=stored_body(event.body, what=what),
        headers={k: stored_text(v, what=what) or "" for k, v in event.headers.items()},
    )


def error_evidence(exc: BaseException) -> dict[str, Any]:
    """What a dead-letter entry shows about a failure; card numbers are redacted from every text."""
    if isinstance(exc, ConnectorError):
        return exc.evidence()
    if isinstance(exc, InvalidInput):
        evidence = {"error": type(exc).__name__, "message": str(exc), "issues": exc.as_dict()["issues"],
                    "retryable": False}
        return redact_document(evidence)  # type: ignore[return-value]
    if isinstance(exc, TimeoutError):
        return {"error": "Timeout", "message": "the event's flow did not finish in time", "retryable": True}
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=8))
    return {
        "error": type(exc).__name__,
        "message": redact_card_numbers(str(exc)),
        "traceback": redact_card_numbers(tail[-4000:]),
        "retryable": False,
    }


class Worker:
    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, MessageHandler],
        settings: RuntimeSettings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        flow_clock: Callable[[], float] | None = None,
    ) -> None:
        self._db = db
        self._handlers = dict(handlers)
        self._settings = settings
        self._clock = clock
        self._flow_clock = flow_clock or clock  # what flows see as ``ctx.now()`` (business time; tests move it)
        self._rng = rng or random.Random()
        self._backoff = settings.backoff.policy()
        self.worker_id = settings.worker_id
        self.leases = BucketLeases(
            db, worker_id=settings.worker_id, buckets=settings.buckets, ttl_seconds=settings.lease_seconds, clock=clock
        )
        self._in_flight: dict[int, Claimed] = {}
        self._bucket_load: Counter[int] = Counter()
        self._completions: list[Completion] = []
        self._claim_wake = asyncio.Event()
        self._flush_wake = asyncio.Event()
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._claiming = False
        self._leases_valid_until = 0.0
        self._flush_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._renew_leases()
        self._claiming = True
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="ledgerlink-claim"),
            asyncio.create_task(self._flush_loop(), name="ledgerlink-flush"),
            asyncio.create_task(self._heartbeat_loop(), name="ledgerlink-heartbeat"),
        ]

    async def stop(self, *, drain_seconds: float = 30.0) -> None:
        """Stop claiming, let running events finish (up to ``drain_seconds``), commit them, hand back leases."""
        self._claiming = False
        self._claim_wake.set()
        if self._event_tasks:
            _, pending = await asyncio.wait(set(self._event_tasks), timeout=drain_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        await self._flush_all()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        try:
            await self.leases.release_all()
        except Exception:
            log.exception("could not hand back bucket leases; they will expire")
        LEASED_BUCKETS.set(0)

    def wake(self) -> None:
        """New events were committed (or a partition became free): look for work now."""
        self._claim_wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- leases ---------------------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        started = self._clock()
        changes = await self.leases.heartbeat(
            busy=lambda bucket: self._bucket_load[bucket] > 0, in_flight=list(self._in_flight)
        )
        self._leases_valid_until = started + self._settings.lease_seconds
        if changes.acquired or changes.lost or changes.released:
            log.info(
                "worker %s buckets: +%d -%d lost %d, now %d",
                self.worker_id, len(changes.acquired), len(changes.released), len(changes.lost),
                len(self.leases.owned),
            )
        if changes.acquired:
            self.wake()
        LEASED_BUCKETS.set(len(self.leases.owned))

    async def _heartbeat_loop(self) -> None:
        interval = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._renew_leases()
                healed = await self._db.write(lambda conn: heal(conn, self._clock()))
                if healed:
                    log.warning("promoted %d stranded partition head(s)", healed)
                    self.wake()
            except Exception:
                log.exception("lease heartbeat failed; claiming pauses when the leases run out")

    # -- claiming -------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        settings = self._settings
        while self._claiming:
            limit = min(settings.max_in_flight - len(self._in_flight), settings.claim_batch)
            claimed: list[Claimed] = []
            if limit > 0 and self.leases.owned and self._clock() < self._leases_valid_until:
                try:
                    claimed = await self._db.write(lambda conn, limit=limit: self._claim(conn, limit))
                except Exception:
                    log.exception("claiming events failed; retrying")
                    await asyncio.sleep(settings.poll_seconds)
                    continue
                for event in claimed:
                    self._start(event)
            if claimed and len(claimed) == limit:
                await asyncio.sleep(0)  # there may be more ready right now
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._claim_wake.wait(), settings.poll_seconds)
            self._claim_wake.clear()

    def _claim(self, conn: Connection, limit: int) -> list[Claimed]:
        owns_all = self.leases.owns_all
        params: dict[str, Any] = {"now": self._clock(), "limit": limit}
        if not owns_all:
            params["buckets"] = sorted(self.leases.owned)
        rows = conn.execute(_CLAIMS[owns_all, self._db.is_sqlite], params).all()
        if not rows:
            return []
        conn.execute(_MARK_RUNNING, {"seqs": [row.seq for row in rows], "owner": self.worker_id})
        return [
            Claimed(
                seq=row.seq, source=row.source, event_id=row.event_id, event_type=row.event_type,
                partition_key=row.partition_key, bucket=row.bucket, attempts=row.attempts + 1,
                replays=row.replays, headers=orjson.loads(row.headers) if row.headers else {},
                body=row.body, received_at=row.received_at,
                history=orjson.loads(row.history) if row.history else [],
                state=orjson.loads(row.state) if row.state else {}, state_text=row.state,
            )
            for row in rows
        ]

    # -- running --------------------------------------------------------------------------------

    def _start(self, event: Claimed) -> None:
        self._in_flight[event.seq] = event
        self._bucket_load[event.bucket] += 1
        IN_FLIGHT.set(len(self._in_flight))
        task = asyncio.create_task(self._run(event))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def _run(self, event: Claimed) -> None:
        ctx = EventContext(
            state=event.state, attempt=event.attempts,
            recovering=event.attempts > 1 or event.replays > 0 or bool(event.history), clock=self._flow_clock,
        )
        message = InboundMessage(
            source=event.source, event_id=event.event_id, event_type=event.event_type,
            body=event.body, headers=event.headers, received_at=event.received_at,
        )
        try:
            handler = self._handlers.get(event.source)
            if handler is None:
                raise LookupError(f"no handler is configured for source {event.source!r}")
            async with asyncio.timeout(self._settings.event_timeout_seconds):
                await handler(message, ctx)
        except Ignored as exc:
            completion = self._finished(event, ctx, IGNORED, "ignored")
            log.info("event %s %s ignored: %s", event.source, event.event_id, exc)
        except asyncio.CancelledError:
            raise
        except Deferred as exc:  # held back unsent (breaker open, rate limit): wait, no attempt counted
            completion = self._deferred(event, ctx, exc)
        except (RetryableError, TimeoutError) as exc:
            completion = self._failed(event, ctx, exc, retryable=True)
        except Exception as exc:
            completion = self._failed(event, ctx, exc, retryable=False)
        else:
            completion = self._finished(event, ctx, DONE, ctx.outcome_word or "done")
        self._completions.append(completion)
        self._flush_wake.set()

    def _state_text(self, event: Claimed, ctx: EventContext) -> str | None:
        text = orjson.dumps(ctx.state, option=orjson.OPT_SORT_KEYS).decode()
        if holds_card_number(text):  # the journal keeps what back offices answered: never a card number
            text = stored_json(ctx.state, what=f"the state of partition {event.partition_key}",
                               option=orjson.OPT_SORT_KEYS)
        return None if text == event.state_text else text

    def _finished(self, event: Claimed, ctx: EventContext, status: str, outcome: str) -> Completion:
        now = self._clock()
        emitted = [_stored_outbound(e, f"an event emitted by {event.source} {event.event_id}")
                   for e in ctx.emitted]
        return Completion(
            claimed=event, status=status, outcome=outcome, finished_at=now, available_at=now,
            error=None, history=None, state_text=self._state_text(event, ctx), tags=ctx.tags, emitted=emitted,
        )

    def _failed(self, event: Claimed, ctx: EventContext, exc: BaseException, *, retryable: bool) -> Completion:
        now = self._clock()
        evidence = error_evidence(exc)
        exhausted = self._backoff.exhausted(event.attempts)
        entry: dict[str, Any] = {
            "attempt": event.attempts, "at": now, "error": evidence.get("error"),
            "message": evidence.get("message"), "status": evidence.get("status"),
            "provider_code": evidence.get("provider_code"),
        }
        if retryable and not exhausted:
            delay = self._backoff.delay(
                event.attempts, retry_after=getattr(exc, "retry_after", None), rng=self._rng
            )
            entry["retry_in"] = round(delay, 3)
            status, outcome, available_at = PENDING, "retrying", now + delay
            RETRIES.labels(event.source).inc()
            log.warning(
                "event %s %s attempt %d failed (%s); retrying in %.2fs",
                event.source, event.event_id, event.attempts, evidence.get("message"), delay,
            )
        else:
            if retryable:
                evidence["exhausted"] = True
            status, outcome, available_at = DEAD, "dead_lettered", now
            DEAD_LETTERS.labels(event.source).inc()
            log.error(
                "event %s %s dead-lettered after %d attempt(s): %s",
                event.source, event.event_id, event.attempts, evidence.get("message"),
            )
        history = ([*event.history, entry])[-_HISTORY_LIMIT:]
        tags = dict(ctx.tags)  # what the attempt did before failing did happen (its journal is kept too)
        if status == DEAD:
            tags["events.dead_lettered"] = tags.get("events.dead_lettered", 0) + 1
        return Completion(
            claimed=event, status=status, outcome=outcome, finished_at=now, available_at=available_at,
            error=evidence, history=history, state_text=self._state_text(event, ctx), tags=tags,
        )

    def _deferred(self, event: Claimed, ctx: EventContext, exc: Deferred) -> Completion:
        """Back to pending until the endpoint may take it, without counting the attempt: the call that stopped it
        was never sent. Consecutive deferrals share one history entry (it also marks the next run as one that
        may follow partial work, so its steps look their keys up first)."""
        now = self._clock()
        wait = max(exc.retry_after or 0.0, 0.01)
        wait += self._rng.uniform(0, min(1.0, 0.2 * wait))  # waiters come back spread out, not in one herd
        reason = type(exc).reason
        EVENTS_DEFERRED.labels(event.source, reason).inc()
        log.debug("event %s %s deferred %.2fs: %s", event.source, event.event_id, wait, exc)
        history = list(event.history)
        last = history[-1] if history else None
        if last is not None and last.get("deferred") == reason:
            history[-1] = {**last, "times": last.get("times", 1) + 1, "until": round(now + wait, 3)}
        else:
            history = [*history, {"deferred": reason, "at": now, "until": round(now + wait, 3), "times": 1,
                                  "message": str(exc)}][-_HISTORY_LIMIT:]
        return Completion(
            claimed=event, status=PENDING, outcome="deferred", finished_at=now, available_at=now + wait,
            error=error_evidence(exc), history=history, state_text=self._state_text(event, ctx),
            tags=dict(ctx.tags), uncounted=True,
        )

    # -- committing -----------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_wake.wait()
            self._flush_wake.clear()
            try:
                await self._flush_all()
            except Exception:
                log.exception("committing finished events failed; retrying")
                await asyncio.sleep(self._settings.poll_seconds)
                self._flush_wake.set()

    async def _flush_all(self) -> None:
        async with self._flush_lock:
            await self._flush_pending()

    async def _flush_pending(self) -> None:
        while self._completions:
            batch = self._completions[:2000]
            kept = await self._db.write(lambda conn, batch=batch: self._commit(conn, batch))
            del self._completions[: len(batch)]
            for completion in batch:
                event = completion.claimed
                self._in_flight.pop(event.seq, None)
                self._bucket_load[event.bucket] -= 1
                if event.seq not in kept:
                    log.warning("event %s %s: lease lost before commit; the new owner will redo it",
                                event.source, event.event_id)
                    continue
                EVENTS.labels(event.source, completion.outcome).inc()
                if completion.status == DONE:
                    EVENT_LATENCY.observe(max(0.0, completion.finished_at - event.received_at))
            IN_FLIGHT.set(len(self._in_flight))
            self.wake()

    def _commit(self, conn: Connection, batch: list[Completion]) -> set[int]:
        finishing = [c.claimed.partition_key for c in batch if c.status in (DONE, IGNORED, DEAD)]
        lock_partitions(conn, finishing, is_sqlite=self._db.is_sqlite)
        seqs = [c.claimed.seq for c in batch]
        held = {row.seq for row in conn.execute(_HELD, {"seqs": seqs, "owner": self.worker_id})}
        kept = [c for c in batch if c.claimed.seq in held]
        if not kept:
            return held
        conn.execute(
            _FINISH,
            [
                {
                    "b_seq": c.claimed.seq, "b_status": c.status, "b_outcome": c.outcome,
                    "b_finished": c.finished_at if c.status != PENDING else None,
                    "b_available": c.available_at, "b_uncount": 1 if c.uncounted else 0,
                    "b_error": orjson.dumps(c.error).decode() if c.error else None,
                    "b_history": orjson.dumps(c.history).decode() if c.history else
                    (orjson.dumps(c.claimed.history).decode() if c.claimed.history else None),
                }
                for c in kept
            ],
        )
        states = [
            {"partition_key": c.claimed.partition_key, "state": c.state_text, "updated_at": c.finished_at}
            for c in kept if c.state_text is not None
        ]
        if states:
            conn.execute(_SAVE_STATE[self._db.is_sqlite], states)
        promote_next(conn, [c.claimed.partition_key for c in kept if c.status in (DONE, IGNORED, DEAD)],
                     self._clock())
        outbox = [item for c in kept if c.status == DONE for item in c.emitted]
        if outbox:
            store_items(self._db, conn, outbox, buckets=self._settings.buckets, now=self._clock())
        deltas: Counter[str] = Counter()
        for c in kept:
            if c.status in (DONE, IGNORED, DEAD):
                deltas[f"outcome.{c.outcome}"] += 1
            deltas.update(c.tags)
        increment_counters(self._db, conn, deltas)
        return held
