"""The dead-letter list: events that exhausted their retries or failed for good, with their evidence.

A dead event stays in the inbox (status ``dead``) with its raw body, its last
error and the history of every attempt. Replaying moves it back to pending; its
next attempt runs in recovery mode, so effects a failed attempt already made
are found, not made twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, update

from ledgerlink.model.cardnumbers import redact_card_numbers
from ledgerlink.runtime import audit
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.ordering import busy_partitions, lock_partitions
from ledgerlink.runtime.schema import DEAD, PENDING, WAITING, inbox


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    source: str
    event_id: str
    event_type: str
    partition_key: str
    attempts: int
    replays: int
    received_at: float
    finished_at: float | None
    error: dict[str, Any]
    history: list[dict[str, Any]]
    body: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "source": self.source, "event_id": self.event_id, "event_type": self.event_type,
            "attempts": self.attempts, "replays": self.replays, "received_at": self.received_at,
            "dead_at": self.finished_at, "error": self.error.get("error"), "message": self.error.get("message"),
            "status": self.error.get("status"), "provider_code": self.error.get("provider_code"),
        }

    def detail(self) -> dict[str, Any]:
        return {**self.summary(), "partition_key": self.partition_key, "evidence": self.error,
                "history": self.history, "body": self.body}


def _row_to_dead(row: Any, with_body: bool) -> DeadLetter:
    return DeadLetter(
        seq=row.seq, source=row.source, event_id=row.event_id, event_type=row.event_type,
        partition_key=row.partition_key, attempts=row.attempts, replays=row.replays,
        received_at=row.received_at, finished_at=row.finished_at,
        error=orjson.loads(row.last_error) if row.last_error else {},
        history=orjson.loads(row.history) if row.history else [],
        body=redact_card_numbers(row.body.decode("utf-8", "replace")) if with_body else None,
    )


def list_dead(conn: Connection, *, limit: int = 100, source: str | None = None) -> list[DeadLetter]:
    query = select(inbox).where(inbox.c.status == DEAD).order_by(inbox.c.seq).limit(limit)
    if source:
        query = query.where(inbox.c.source == source)
    return [_row_to_dead(row, with_body=False) for row in conn.execute(query)]


def count_dead(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(inbox).where(inbox.c.status == DEAD)).scalar_one())


def get_dead(conn: Connection, seq: int) -> DeadLetter | None:
    row = conn.execute(select(inbox).where(inbox.c.seq == seq, inbox.c.status == DEAD)).first()
    return _row_to_dead(row, with_body=True) if row else None


def replay(
    conn: Connection, seqs: Sequence[int] | None = None, *, is_sqlite: bool, now: float | None = None
) -> list[int]:
    """Send dead events (all, or those in ``seqs``) back to the queue; returns the seqs replayed.

    A replayed event queues behind its partition's unfinished events, if any, so order is kept.
    """
    query = select(inbox.c.seq, inbox.c.partition_key).where(inbox.c.status == DEAD).order_by(inbox.c.seq)
    if seqs is not None:
        if not seqs:
            return []
        query = query.where(inbox.c.seq.in_(list(seqs)))
    rows = conn.execute(query).all()
    if not rows:
        return []
    keys = {row.partition_key for row in rows}
    lock_partitions(conn, keys, is_sqlite=is_sqlite)
    busy = busy_partitions(conn, keys)
    when = now if now is not None else time.time()
    for row in rows:
        status = WAITING if row.partition_key in busy else PENDING
        busy.add(row.partition_key)
        conn.execute(
            update(inbox).where(inbox.c.seq == row.seq, inbox.c.status == DEAD)
            .values(status=status, attempts=0, replays=inbox.c.replays + 1, available_at=when,
                    finished_at=None, outcome=None)
        )
    return [row.seq for row in rows]


def replay_audited(db: Database, conn: Connection, seqs: Sequence[int] | None, *, actor: str,
                   now: float | None = None) -> list[int]:
    """``replay`` plus one ``dlq.replayed`` audit entry per event (target ``event:<seq>``), in one transaction."""
    when = now if now is not None else time.time()
    replayed = replay(conn, seqs, is_sqlite=db.is_sqlite, now=when)
    for seq in replayed:
        audit.append(db, conn, actor=actor, action="dlq.replayed", target=f"event:{seq}", at=when,
                     details={"all": seqs is None})
    return replayed
