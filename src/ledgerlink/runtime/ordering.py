"""Per-partition order: one head (pending or running) per partition, the rest waiting behind it.

Intake decides whether a new event is its partition's head or waits; finishing a
head promotes the partition's next waiting event. On PostgreSQL, intake and
completion for the same partition may run in different processes at the same
moment, so both take transaction-scoped advisory locks on the partition keys
(in sorted order, so two transactions can never deadlock on them) before they
look. ``heal`` is a safety net run on the heartbeat: it promotes the head of any
partition that has waiting events and nothing in front of them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, exists, func, select, text, update
from sqlalchemy.orm import aliased

from ledgerlink.runtime.schema import PENDING, RUNNING, UNFINISHED, WAITING, inbox

_LOCK = text(
    "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT unnest(CAST(:hashes AS bigint[])) AS h ORDER BY 1) AS s"
)


def _key_hash(key: str) -> int:
    data = key.encode("utf-8")
    return ((zlib.adler32(data) << 32) | zlib.crc32(data)) & 0x7FFF_FFFF_FFFF_FFFF


def lock_partitions(conn: Connection, keys: Iterable[str], *, is_sqlite: bool) -> None:
    if is_sqlite:
        return  # one writer: transactions on SQLite are already serial
    hashes = sorted({_key_hash(k) for k in keys})
    if hashes:
        conn.execute(_LOCK, {"hashes": hashes})


# Built once: constructing a statement and computing its cache key costs more CPU than running it on
# SQLite, and this runs in every intake and completion transaction.
_PARTITION_ROWS = (
    select(inbox.c.partition_key, inbox.c.seq, inbox.c.status, inbox.c.source, inbox.c.event_id)
    .where(inbox.c.partition_key.in_(bindparam("keys", expanding=True)))
)


def _partition_rows(conn: Connection, keys: Iterable[str]) -> list[Row[Any]]:
    """(partition_key, seq, status, source, event_id) of every event of the given partitions.

    The query is keyed on the partition alone, on purpose: a partition holds a handful of rows, while a
    status can hold the whole backlog, and a planner without statistics (SQLite) may otherwise pick the
    status index and scan every pending row. Statuses are filtered here instead.
    """
    wanted = sorted(set(keys))
    rows: list[Row[Any]] = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows.extend(conn.execute(_PARTITION_ROWS, {"keys": chunk}))
    return rows


def partition_view(conn: Connection, keys: Iterable[str]) -> tuple[set[tuple[str, str]], set[str]]:
    """For the given partitions: the (source, event id) of every stored event, and the busy partitions."""
    rows = _partition_rows(conn, keys)
    return ({(row.source, row.event_id) for row in rows},
            {row.partition_key for row in rows if row.status in UNFINISHED})


def busy_partitions(conn: Connection, keys: Iterable[str]) -> set[str]:
    """Partitions among ``keys`` that already have an unfinished event."""
    return {row.partition_key for row in _partition_rows(conn, keys) if row.status in UNFINISHED}


def promote_next(conn: Connection, keys: Iterable[str], now: float) -> int:
    """Make the earliest waiting event of each partition in ``keys`` its new head."""
    heads: dict[str, int] = {}
    for row in _partition_rows(conn, keys):
        if row.status == WAITING and (row.partition_key not in heads or row.seq < heads[row.partition_key]):
            heads[row.partition_key] = row.seq
    if not heads:
        return 0
    return conn.execute(
        update(inbox).where(inbox.c.seq.in_(sorted(heads.values()))).values(status=PENDING, available_at=now)
    ).rowcount or 0


def heal(conn: Connection, now: float) -> int:
    """Promote heads of partitions whose events all wait (nothing pending or running in front)."""
    ahead = aliased(inbox)
    stranded = (
        select(func.min(inbox.c.seq))
        .where(
            inbox.c.status == WAITING,
            ~exists().where(and_(ahead.c.partition_key == inbox.c.partition_key,
                                 ahead.c.status.in_((PENDING, RUNNING)))),
        )
        .group_by(inbox.c.partition_key)
    )
    seqs = list(conn.execute(stranded).scalars())
    if not seqs:
        return 0
    return conn.execute(
        update(inbox).where(inbox.c.seq.in_(seqs)).values(status=PENDING, available_at=now)
    ).rowcount or 0
