"""Exact outcome counters, updated in the same transaction as the events they count."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, select

from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import counters


def increment_counters(db: Database, conn: Connection, deltas: Mapping[str, int]) -> None:
    if not deltas:
        return
    statement = db.insert(counters)
    statement = statement.on_conflict_do_update(
        index_elements=["name"], set_={"value": counters.c.value + statement.excluded.value}
    )
    conn.execute(statement, [{"name": name, "value": value} for name, value in sorted(deltas.items()) if value])


def read_counters(conn: Connection) -> dict[str, int]:
    return {row.name: int(row.value) for row in conn.execute(select(counters.c.name, counters.c.value))}
