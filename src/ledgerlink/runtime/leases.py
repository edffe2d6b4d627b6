"""Which process works which partitions: leased buckets, rebalanced by heartbeat.

Partition keys hash into a fixed number of buckets. A worker process leases
buckets and only claims events from buckets it holds, so two processes never
apply events of one partition at the same time (which keeps per-partition order
without a lock per key). Every heartbeat a worker renews its leases, counts the
live workers, and moves towards its fair share: it takes free or expired
buckets when it has too few and hands back idle ones when it has too many. A
crashed worker stops renewing; its buckets expire and are taken over, and the
events it had in flight there go back to pending (their next attempt runs in
recovery mode, looking effects up before re-creating them).

On SQLite one engine process holds an exclusive lock on the database, so
every lease not its own belongs to a dead process and is taken at once.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import PENDING, RUNNING, inbox, leases, workers


@dataclass
class LeaseChanges:
    acquired: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    released: set[int] = field(default_factory=set)


class BucketLeases:
    def __init__(
        self,
        db: Database,
        *,
        worker_id: str,
        buckets: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self.worker_id = worker_id
        self.buckets = buckets
        self.ttl = ttl_seconds
        self._clock = clock
        self.owned: set[int] = set()

    @property
    def owns_all(self) -> bool:
        return len(self.owned) == self.buckets

    def _ensure_rows(self, conn: Connection) -> None:
        present = conn.execute(select(func.count()).select_from(leases)).scalar_one()
        if present < self.buckets:
            statement = self._db.insert(leases).on_conflict_do_nothing(index_elements=["bucket"])
            conn.execute(statement, [{"bucket": b, "owner": None, "expires_at": 0.0, "epoch": 0}
                                     for b in range(self.buckets)])

    async def heartbeat(self, *, busy: Callable[[int], bool], in_flight: Collection[int]) -> LeaseChanges:
        """Renew, rebalance and report what changed. ``in_flight``: seqs this process is still running."""
        changes = await self._db.write(lambda conn: self._heartbeat(conn, busy, set(in_flight)))
        self.owned -= changes.lost | changes.released
        self.owned |= changes.acquired
        return changes

    def _heartbeat(self, conn: Connection, busy: Callable[[int], bool], in_flight: set[int]) -> LeaseChanges:
        now = self._clock()
        self._ensure_rows(conn)
        beat = self._db.insert(workers).values(
            worker_id=self.worker_id, host=socket.gethostname(), pid=os.getpid(), started_at=now, heartbeat_at=now
        )
        conn.execute(beat.on_conflict_do_update(index_elements=["worker_id"], set_={"heartbeat_at": now}))
        conn.execute(delete(workers).where(workers.c.heartbeat_at < now - 20 * self.ttl))
        live = conn.execute(
            select(func.count()).select_from(workers).where(workers.c.heartbeat_at >= now - self.ttl)
        ).scalar_one()
        fair = self.buckets if self._db.sole_engine else math.ceil(self.buckets / max(1, live))

        renewed = {
            row.bucket
            for row in conn.execute(
                update(leases).where(leases.c.owner == self.worker_id)
                .values(expires_at=now + self.ttl).returning(leases.c.bucket)
            )
        }
        changes = LeaseChanges(lost=self.owned - renewed)
        held = set(renewed)

        if len(held) < fair:
            takeable = or_(leases.c.owner.is_(None), leases.c.expires_at < now)
            if self._db.sole_engine:
                takeable = or_(takeable, leases.c.owner != self.worker_id)
            query = select(leases.c.bucket).where(takeable).order_by(leases.c.bucket).limit(fair - len(held))
            if not self._db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            wanted = [row.bucket for row in conn.execute(query)]
            if wanted:
                acquired = {
                    row.bucket
                    for row in conn.execute(
                        update(leases).where(and_(leases.c.bucket.in_(wanted), takeable))
                        .values(owner=self.worker_id, expires_at=now + self.ttl, epoch=leases.c.epoch + 1)
                        .returning(leases.c.bucket)
                    )
                }
                if acquired:
                    # Events the previous owner was running there were interrupted: run them again.
                    requeue = update(inbox).where(
                        and_(inbox.c.bucket.in_(acquired), inbox.c.status == RUNNING)
                    ).values(status=PENDING, lease_owner=None)
                    if in_flight:
                        requeue = requeue.where(inbox.c.seq.notin_(in_flight))
                    conn.execute(requeue)
                changes.acquired = acquired
                held |= acquired
        elif len(held) > fair:
            idle = sorted(b for b in held if not busy(b))[: len(held) - fair]
            if idle:
                conn.execute(
                    update(leases).where(and_(leases.c.bucket.in_(idle), leases.c.owner == self.worker_id))
                    .values(owner=None, expires_at=0.0, epoch=leases.c.epoch + 1)
                )
                changes.released = set(idle)
        return changes

    async def release_all(self) -> None:
        """Hand every bucket back at shutdown so another process can take over without waiting."""
        def release(conn: Connection) -> None:
            # The worker row first, then the leases: the order every heartbeat takes its locks in (it may
            # delete this row as stale), so two processes on PostgreSQL can never deadlock on them.
            conn.execute(delete(workers).where(workers.c.worker_id == self.worker_id))
            conn.execute(
                update(leases).where(leases.c.owner == self.worker_id)
                .values(owner=None, expires_at=0.0, epoch=leases.c.epoch + 1)
            )

        await self._db.write(release)
        self.owned.clear()
