"""Durable intake with group commit.

A verified webhook becomes an inbox row before its HTTP 2xx is sent. Concurrent
requests do not each pay for a transaction and an fsync: they queue here, and a
single committer writes everything queued so far in one transaction, then wakes
every waiting request with its own answer (accepted, or duplicate of a row
already stored). While one commit runs, the next batch gathers, so batches
grow exactly as fast as load does and a lone request is not delayed by a timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import orjson
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError

from ledgerlink.runtime.counters import increment_counters
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.ordering import lock_partitions, partition_view, promote_next
from ledgerlink.runtime.schema import IGNORED, PENDING, WAITING, inbox
from ledgerlink.telemetry import INTAKE_BATCH, INTAKE_COMMIT

log = logging.getLogger(__name__)
# Errors that say a value in the transaction was refused, not that the database is out of reach.
REFUSED_VALUES = (DataError, IntegrityError)


def bucket_for(partition_key: str, buckets: int) -> int:
    """The ownership bucket of a partition: stable across processes and restarts."""
    return zlib.crc32(partition_key.encode("utf-8")) % buckets


@dataclass(frozen=True, slots=True)
class InboxItem:
    source: str
    event_id: str
    event_type: str
    partition_key: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    ignored: bool = False  # stored and acknowledged, never processed


class IntakeResult(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


class Intake:
    def __init__(
        self,
        db: Database,
        *,
        buckets: int,
        clock: Callable[[], float] = time.time,
        on_commit: Callable[[], None] | None = None,
        max_batch: int = 1000,
    ) -> None:
        self._db = db
        self._buckets = buckets
        self._clock = clock
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._queue: list[tuple[InboxItem, asyncio.Future[IntakeResult]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._committer(), name="ledgerlink-intake")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def submit(self, item: InboxItem) -> IntakeResult:
        """Durably store ``item``; returns once its transaction has committed."""
        if self._task is None or self._closing:
            raise RuntimeError("intake is not running")
        future: asyncio.Future[IntakeResult] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wake.set()
        return await future

    async def _committer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                items = [item for item, _ in batch]
                started = time.perf_counter()
                try:
                    results = await self._db.write(lambda conn, items=items: self._store(conn, items))
                except Exception as exc:  # the whole transaction rolled back: nothing was acknowledged
                    log.exception("intake commit failed for %d events", len(items))
                    if len(batch) > 1 and isinstance(exc, REFUSED_VALUES):
                        await self._store_one_by_one(batch)
                        continue
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                INTAKE_COMMIT.observe(time.perf_counter() - started)
                INTAKE_BATCH.observe(len(items))
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                if self._on_commit is not None:
                    self._on_commit()
            if self._closing and not self._queue:
                return

    async def _store_one_by_one(self, batch: list[tuple[InboxItem, asyncio.Future[IntakeResult]]]) -> None:
        """After a group commit the database refused for a value in it (one PostgreSQL will not take): each
        event in a transaction of its own, so that one fails alone instead of taking its neighbours down with
        it. Any other failure (the database unreachable) fails the batch at once: a retry per event would only
        hold the senders longer."""
        for item, future in batch:
            try:
                result = (await self._db.write(lambda conn, item=item: self._store(conn, [item])))[0]
            except Exception as exc:
                log.warning("intake refused event %s of %s: %s", item.event_id, item.source, type(exc).__name__)
                if not future.done():
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(result)
            if self._on_commit is not None:
                self._on_commit()

    def _store(self, conn: Connection, items: Sequence[InboxItem]) -> list[IntakeResult]:
        return store_items(self._db, conn, items, buckets=self._buckets, now=self._clock())


# Built once per dialect (see ``counters``): statement construction is a large share of a small commit.
_STORE = {
    is_sqlite: insert(inbox)
    .on_conflict_do_nothing(index_elements=["source", "event_id"])
    .returning(inbox.c.source, inbox.c.event_id)
    for is_sqlite, insert in ((True, sqlite.insert), (False, postgresql.insert))
}


def store_items(
    db: Database, conn: Connection, items: Sequence[InboxItem], *, buckets: int, now: float
) -> list[IntakeResult]:
    """Write ``items`` to the inbox in the caller's transaction, each as its partition's head or behind it.

    Used by intake (webhooks) and by the worker (events a job emits, committed with the job).
    """
    keys = {item.partition_key for item in items}
    lock_partitions(conn, keys, is_sqlite=db.is_sqlite)
    # A re-delivery carries its original's partition key, so one look at the batch's partitions says
    # both which events are stored already and which partitions are busy.
    stored, busy = partition_view(conn, keys)
    first_index: dict[tuple[str, str], int] = {}
    rows = []
    for index, item in enumerate(items):
        key = (item.source, item.event_id)
        if key in first_index or key in stored:
            continue
        first_index[key] = index
        if item.ignored:
            status = IGNORED
        elif item.partition_key in busy:
            status = WAITING  # behind an unfinished event of the same partition
        else:
            status = PENDING
            busy.add(item.partition_key)
        rows.append({
            "source": item.source,
            "event_id": item.event_id,
            "event_type": item.event_type,
            "partition_key": item.partition_key,
            "bucket": bucket_for(item.partition_key, buckets),
            "status": status,
            "attempts": 0,
            "replays": 0,
            "available_at": now,
            "received_at": now,
            "finished_at": now if item.ignored else None,
            "outcome": "ignored" if item.ignored else None,
            "headers": orjson.dumps(item.headers).decode() if item.headers else None,
            "body": item.body,
        })
    inserted = {(r.source, r.event_id) for r in conn.execute(_STORE[db.is_sqlite], rows)} if rows else set()
    if len(inserted) < len(rows):
        # A re-delivery filed under another partition key than its original (its payload changed shape):
        # it was taken for a partition's head, so events queued behind it must not wait for it.
        lost = {row["partition_key"] for row in rows
                if (row["source"], row["event_id"]) not in inserted and row["status"] == PENDING}
        promote_next(conn, lost, now)
    results: list[IntakeResult] = []
    deltas: dict[str, int] = {}
    for index, item in enumerate(items):
        key = (item.source, item.event_id)
        fresh = key in inserted and first_index[key] == index
        results.append(IntakeResult.ACCEPTED if fresh else IntakeResult.DUPLICATE)
        name = "received" if fresh else "duplicates"
        deltas[f"events.{name}"] = deltas.get(f"events.{name}", 0) + 1
        if fresh and item.ignored:
            deltas["events.ignored"] = deltas.get("events.ignored", 0) + 1
    increment_counters(db, conn, deltas)
    return results
