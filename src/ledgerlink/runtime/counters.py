"""Exact outcome counters, updated in the same transaction as the events they count."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import counters


def _upsert(insert: Any) -> Any:
    statement = insert(counters)
    return statement.on_conflict_do_update(
        index_elements=["name"], set_={"value": counters.c.value + statement.excluded.value}
    )


# Built once per dialect: building the upsert (its ``excluded`` alias) and its cache key on every call
# cost several times what executing it does.
_INCREMENT = {True: _upsert(sqlite.insert), False: _upsert(postgresql.insert)}


def increment_counters(db: Database, conn: Connection, deltas: Mapping[str, int]) -> None:
    rows = [{"name": name, "value": value} for name, value in sorted(deltas.items()) if value]
    if rows:
        conn.execute(_INCREMENT[db.is_sqlite], rows)


def read_counters(conn: Connection) -> dict[str, int]:
    return {row.name: int(row.value) for row in conn.execute(select(counters.c.name, counters.c.value))}
