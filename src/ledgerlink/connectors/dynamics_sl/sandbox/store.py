"""The sandbox's SQLite file, kept the way SL keeps SQL Server rows.

One connection, used only from the event loop's thread, is the one writer.
Requests run inside ``BEGIN IMMEDIATE`` ... ``COMMIT``; each request of a
``$batch`` inside its own ``SAVEPOINT`` so it is atomic on its own while the
whole batch commits (and fsyncs) once.

Money is FLOAT here because it is FLOAT in SL; it goes in already rounded to
the currency's ``DecPl`` and is read back through ``Decimal(repr(x))``, which
is exact for a value rounded to at most a few decimal places. All arithmetic
on amounts happens in ``Decimal``.

SL must never hold a card number: the API refuses them (``CardDataRefused``),
and with ``LEDGERLINK_PAN_GUARD`` set (tests) the connection itself checks
every INSERT and UPDATE and raises ``CardNumberStored`` before one is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox.errors import invalid
from ledgerlink.connectors.dynamics_sl.sandbox.tables import ALL_TABLES, NO_DATE, Column, Table
from ledgerlink.model import storage_guard

QTY_DECPL = 2  # INSetup.DecPlQty
Clock = Callable[[], datetime]


def quantum(decpl: int) -> Decimal:
    return Decimal(1).scaleb(-decpl)


def _check_write(sql: str, rows: list[Any]) -> None:
    head = sql.lstrip()[:7].upper()
    if not head.startswith(("INSERT", "UPDATE", "REPLACE")):
        return
    table = sql.split('"')[1] if '"' in sql else "a table"
    for row in rows:
        if isinstance(row, Mapping):
            storage_guard.check(row.items(), where=f"the SL sandbox's {table}")
        else:
            storage_guard.check(((f"parameter {i + 1}", v) for i, v in enumerate(row)),
                                where=f"the SL sandbox's {table}")
    storage_guard.check([("statement text", sql)], where=f"the SL sandbox's {table}")


class GuardedConnection(sqlite3.Connection):
    """The store's connection while the storage guard is on: writes holding a card number raise."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        _check_write(sql, [parameters])
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        rows = list(parameters)
        _check_write(sql, rows)
        return super().executemany(sql, rows)


class Store:
    def __init__(self, database: str, *, synchronous: str = "FULL") -> None:
        factory = GuardedConnection if storage_guard.enabled() else sqlite3.Connection
        self.conn = sqlite3.connect(database, isolation_level=None, check_same_thread=False, factory=factory)
        self.conn.row_factory = sqlite3.Row
        if database != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        # a page cache sized for a busy company (SQLite's default is 2 MB) and no temp files on disk
        self.conn.execute("PRAGMA cache_size=-65536")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self._insert_sql: dict[str, str] = {}
        self._reference: dict[tuple[str, str], Any] = {}
        self.decpl: dict[str, int] = {}
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='GLSetup'").fetchone() is None:
            self.create_schema()
        else:
            self.upgrade_schema()

    def create_schema(self) -> None:
        with self.transaction():
            for table in ALL_TABLES:
                for statement in table.ddl():
                    self.conn.execute(statement)

    def upgrade_schema(self) -> None:
        """Bring a sandbox file written by an older version up to date: missing tables, columns and indexes
        are added (with SL's defaults), nothing is dropped, so a laptop's demo data survives an upgrade."""
        with self.transaction():
            for table in ALL_TABLES:
                present = {row["name"] for row in self.conn.execute(f'PRAGMA table_info("{table.name}")')}
                if not present:
                    for statement in table.ddl():
                        self.conn.execute(statement)
                    continue
                for column in table.columns:
                    if column.name not in present:
                        self.conn.execute(table.column_ddl(column))
                for statement in table.ddl()[1:]:
                    self.conn.execute(statement)

    def reference(self, sql: str, value: str) -> Any | None:
        """A single value from reference data (accounts, subaccounts), memoised.

        The API has no route that changes the chart of accounts, so these rows only change when the
        store is reset, which clears the memo.
        """
        key = (sql, value)
        if key not in self._reference:
            row = self.conn.execute(sql, (value,)).fetchone()
            self._reference[key] = None if row is None else row[0]
        return self._reference[key]

    def drop_all(self) -> None:
        self._reference.clear()
        with self.transaction():
            for table in ALL_TABLES:
                self.conn.execute(f'DROP TABLE IF EXISTS "{table.name}"')
            self.conn.execute("DELETE FROM sqlite_sequence") if self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'").fetchone() else None
        self.create_schema()

    def load_currencies(self) -> None:
        self.decpl = {r["CuryId"].strip(): r["DecPl"] for r in self.all('SELECT CuryId, DecPl FROM Currncy')}

    def close(self) -> None:
        self.conn.close()

    # ---- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """One request inside a batch: everything it wrote, or nothing."""
        self.conn.execute("SAVEPOINT request")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO request")
            self.conn.execute("RELEASE request")
            raise
        self.conn.execute("RELEASE request")

    # ---- rows ----------------------------------------------------------------------------------

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()  # type: ignore[no-any-return]

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def insert(self, table: Table, values: Mapping[str, Any]) -> int:
        """Insert a full row (defaults for every column not given); returns the rowid."""
        row = {**table.defaults, **values}
        sql = self._insert_sql.get(table.name)
        if sql is None:
            names = list(table.defaults)
            sql = (f'INSERT INTO "{table.name}" (' + ", ".join(f'"{n}"' for n in names) + ") VALUES ("
                   + ", ".join(f":{n}" for n in names) + ")")
            self._insert_sql[table.name] = sql
        return self.conn.execute(sql, row).lastrowid or 0

    def update(self, table: Table, where: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        sets = ", ".join(f'"{k}" = ?' for k in values)
        cond = " AND ".join(f'"{k}" = ?' for k in where)
        self.conn.execute(f'UPDATE "{table.name}" SET {sets} WHERE {cond}', (*values.values(), *where.values()))


# ---- value conversion: JSON <-> SL columns ------------------------------------------------------


def char(value: str) -> str:
    """A CHAR value as stored: right-trimmed, empty is one space."""
    value = value.rstrip()
    return value or " "


def to_db_money(amount: Decimal) -> float:
    return float(amount)


def from_db_money(value: float, decpl: int) -> Decimal:
    return Decimal(repr(value)).quantize(quantum(decpl), rounding=ROUND_HALF_UP)


def round_money(amount: Decimal, decpl: int) -> Decimal:
    return amount.quantize(quantum(decpl), rounding=ROUND_HALF_UP)


def db_date(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d} 00:00"


def db_datetime(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def parse_decimal(table: str, field: str, value: Any, decpl: int) -> Decimal:
    """An amount from the wire: a decimal string or integer with at most ``decpl`` places."""
    if isinstance(value, (bool, float)) or not isinstance(value, (str, int)):
        raise invalid(table, field, f"amounts are decimal strings (got {type(value).__name__})")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise invalid(table, field, f"{value!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise invalid(table, field, f"{value!r} is not a finite amount")
    if amount != amount.quantize(quantum(decpl), rounding=ROUND_HALF_UP):
        raise invalid(table, field, f"{value} has more than {decpl} decimal places (Currncy.DecPl)")
    return round_money(amount, decpl)


class Codec:
    """Converts between JSON values and stored column values for one company's settings."""

    def __init__(self, date_format: str, base_decpl: int) -> None:
        self.date_format = date_format
        self.base_decpl = base_decpl
        self._out_plans: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {}
        self._dates: dict[str, str] = {}

    def parse_date(self, table: str, field: str, value: Any) -> date:
        if not isinstance(value, str):
            raise invalid(table, field, f"dates are strings in the format {self.date_format}")
        try:
            return datetime.strptime(value.strip(), self.date_format).date()
        except ValueError:
            raise invalid(table, field, f"{value!r} is not a date in the format {self.date_format}") from None

    def value_in(self, table: Table, column: Column, value: Any) -> Any:
        """A JSON value checked against the column's SL type and converted for storage."""
        t, f = table.name, column.name
        kind = column.kind
        if kind == "C":
            if not isinstance(value, str):
                raise invalid(t, f, f"must be a string (CHAR({column.length}))")
            text = value.rstrip()
            if len(text) > column.length:
                raise invalid(t, f, f"{len(text)} characters; the column is CHAR({column.length})",
                              code="FieldTooLong")
            return text or " "
        if kind == "M":
            return to_db_money(parse_decimal(t, f, value, self.base_decpl))
        if kind == "Q":
            return float(parse_decimal(t, f, value, QTY_DECPL))
        if kind == "F":
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise invalid(t, f, "must be a number")
            try:
                return float(value)
            except ValueError:
                raise invalid(t, f, f"{value!r} is not a number") from None
        if kind in ("S", "I"):
            if isinstance(value, bool):
                return int(value)
            if not isinstance(value, int):
                raise invalid(t, f, "must be an integer")
            if kind == "S" and not -32768 <= value <= 32767:
                raise invalid(t, f, "out of SMALLINT range")
            return value
        if kind == "D":
            return db_date(self.parse_date(t, f, value))
        if not isinstance(value, str):
            raise invalid(t, f, "must be text")
        return value

    def row_out(self, table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
        plan = self._out_plans.get(table.name)
        if plan is None:
            plan = [(c.name, self._converter(c)) for c in table.columns]
            self._out_plans[table.name] = plan
        return {name: convert(row[name]) for name, convert in plan}

    def _converter(self, column: Column) -> Callable[[Any], Any]:
        if column.kind == "C":
            return str.rstrip
        if column.kind == "M":
            decpl = self.base_decpl
            return lambda v: f"{round(v, decpl) + 0.0:.{decpl}f}"
        if column.kind == "Q":
            return lambda v: f"{round(v, QTY_DECPL) + 0.0:.{QTY_DECPL}f}"
        if column.kind == "D":
            if column.name.endswith("_DateTime"):
                return lambda v: v.replace(" ", "T")
            return self.date_out
        return lambda v: v

    def date_out(self, stored: str) -> str:
        text = self._dates.get(stored)
        if text is None:  # few distinct dates occur; formatting each once keeps reads cheap
            text = self._dates[stored] = date(int(stored[:4]), int(stored[5:7]), int(stored[8:10])).strftime(
                self.date_format)
        return text


def stored_date(stored: str) -> date | None:
    return None if stored == NO_DATE else date(int(stored[:4]), int(stored[5:7]), int(stored[8:10]))
