"""The database under the runtime: SQLite (WAL, one writer) by default, PostgreSQL for many processes.

All database work runs on threads owned by this object, so the event loop never
blocks on I/O. On SQLite every write goes through one dedicated writer thread
and connection, and each write transaction starts with ``BEGIN IMMEDIATE`` (it
takes the write lock up front instead of failing halfway). Durability is
``synchronous=FULL``: an acknowledged webhook survives a power cut, and group
commit is what pays for the fsync. On PostgreSQL writes run on a small thread
pool over a connection pool.

With ``LEDGERLINK_PAN_GUARD`` set (the test suite sets it), every INSERT and
UPDATE is checked before it runs: a card number in a bound parameter raises
``CardNumberStored`` naming the table and column (see ``model.storage_guard``).
Unset, the check is not installed at all, so production pays nothing for it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from ledgerlink.model import storage_guard
from ledgerlink.runtime.schema import metadata

T = TypeVar("T")

DEFAULT_DATABASE_URL = "sqlite:///var/ledgerlink.db"


class DatabaseLocked(RuntimeError):
    """Another engine process already owns this SQLite database."""


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``sqlite:///`` as users write them; pick our drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MB page cache per connection (the default is 2 MB)
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


_WRITES = ("INSERT", "UPDATE", "REPLACE", "MERGE", "WITH")
_TABLE = re.compile(r"^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|REPLACE\s+INTO|MERGE\s+INTO)\s+([\w.\"]+)",
                    re.IGNORECASE)


def _guard_writes(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any,
                  executemany: bool) -> None:
    """``before_cursor_execute``: refuse to write a card number (installed only when the guard is on)."""
    if not statement.lstrip()[:7].upper().startswith(_WRITES):
        return
    found = _TABLE.match(statement)
    table = found.group(1).replace('"', "") if found else "a table"
    names = getattr(getattr(context, "compiled", None), "positiontup", None) or ()
    for row in parameters if executemany else (parameters,):
        if isinstance(row, dict):
            storage_guard.check(row.items(), where=table)
        elif isinstance(row, (list, tuple)):
            labels = names if len(names) == len(row) else [f"parameter {i + 1}" for i in range(len(row))]
            storage_guard.check(zip(labels, row, strict=True), where=table)
    storage_guard.check([("statement text", statement)], where=table)


def install_storage_guard(engine: Engine) -> None:
    if not event.contains(engine, "before_cursor_execute", _guard_writes):
        event.listen(engine, "before_cursor_execute", _guard_writes)


class Database:
    """Engines, threads and the schema of one runtime database."""

    def __init__(self, url: str = DEFAULT_DATABASE_URL, *, schema: str | None = None, create: bool = True) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.schema = schema
        self._lock_file: IO[str] | None = None
        if self.is_sqlite:
            database = parsed.database or ""
            self.sqlite_path = None if database in ("", ":memory:") else Path(database)
            if self.sqlite_path is None:
                raise ValueError("the runtime needs a SQLite file, not an in-memory database")
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = create_engine(self.url, poolclass=StaticPool,
                                         connect_args={"check_same_thread": False})
            event.listen(self._writer, "connect", _sqlite_pragmas)
            event.listen(self._writer, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            self._reader = create_engine(self.url, pool_size=4, max_overflow=4,
                                         connect_args={"check_same_thread": False})
            event.listen(self._reader, "connect", _sqlite_pragmas)
            event.listen(self._reader, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
            self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="ll-db-writer")
        else:
            connect_args: dict[str, Any] = {}
            if schema:
                connect_args["options"] = f"-csearch_path={schema}"
            self._writer = create_engine(self.url, pool_size=8, max_overflow=8, pool_pre_ping=True,
                                         connect_args=connect_args)
            self._reader = self._writer
            self._write_pool = ThreadPoolExecutor(4, thread_name_prefix="ll-db-writer")
        self._read_pool = ThreadPoolExecutor(4, thread_name_prefix="ll-db-reader")
        self.storage_guard = storage_guard.enabled()
        if self.storage_guard:
            install_storage_guard(self._writer)
            install_storage_guard(self._reader)
        if create:
            self.create_schema()

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    def insert(self, table: Any) -> Any:
        """A dialect-specific INSERT (both support ON CONFLICT and RETURNING)."""
        return sqlite.insert(table) if self.is_sqlite else postgresql.insert(table)

    def create_schema(self) -> None:
        with self._writer.begin() as conn:
            if self.schema and not self.is_sqlite:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            metadata.create_all(conn)

    def acquire_engine_lock(self) -> None:
        """On SQLite only one engine process may run workers: take an exclusive lock file or fail fast."""
        if not self.is_sqlite or self._lock_file is not None:
            return
        assert self.sqlite_path is not None
        lock_path = self.sqlite_path.with_name(self.sqlite_path.name + ".lock")
        handle = open(lock_path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DatabaseLocked(
                f"{self.sqlite_path} is in use by another ledgerlink engine; SQLite runs one engine process "
                "(use PostgreSQL, LEDGERLINK_DATABASE_URL=postgresql://..., for several)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    @property
    def sole_engine(self) -> bool:
        """True when this process holds the SQLite engine lock, so no other process can own work."""
        return self._lock_file is not None

    # -- running work -------------------------------------------------------------------------

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        with self._writer.begin() as conn:
            return fn(conn)

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self._reader.connect() as conn:
            return fn(conn)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction on a writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_pool, self.write_sync, fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_pool, self.read_sync, fn)

    def close(self) -> None:
        self._write_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def drop_schema(self) -> None:
        """Remove everything this database created (tests)."""
        with self._writer.begin() as conn:
            if self.schema and not self.is_sqlite:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            else:
                metadata.drop_all(conn)
