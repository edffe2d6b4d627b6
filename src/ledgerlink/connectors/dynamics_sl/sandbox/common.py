"""What every resource handler shares: the request context, field checks, periods, accounts,
numbering, notes and the idempotency-key claim."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ledgerlink.connectors.dynamics_sl.keys import key_digest
from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid
from ledgerlink.connectors.dynamics_sl.sandbox.settings import SandboxSettings
from ledgerlink.connectors.dynamics_sl.sandbox.store import Codec, Store, db_datetime
from ledgerlink.connectors.dynamics_sl.sandbox.tables import KEY_FIELD, Table

PERIOD = re.compile(r"^\d{4}(0[1-9]|1[0-3])$")
AUDIT_FIELDS = frozenset(c.name for c in T.AUDIT)


@dataclass
class Company:
    """The setup facts every rule needs, read once from GLSetup/ARSetup and refreshed when they change."""

    cpny: str
    base_cury: str
    decpl: int
    nbr_per: int
    gl_period: str
    ar_period: str
    ledger_id: str
    period_ends: tuple[str, ...]
    validate_acct_sub: bool
    currencies: dict[str, int]

    @classmethod
    def load(cls, store: Store, cpny: str) -> Company | None:
        gl = store.one('SELECT * FROM GLSetup WHERE CpnyId = ?', (cpny,))
        ar = store.one('SELECT * FROM ARSetup WHERE CpnyID = ?', (cpny,))
        if gl is None or ar is None:
            return None
        store.load_currencies()
        base = gl["BaseCuryId"].strip()
        ends = tuple(gl[f"FiscalPerEnd{n:02d}"].strip() for n in range(gl["NbrPer"]))
        return cls(cpny=cpny, base_cury=base, decpl=store.decpl[base], nbr_per=gl["NbrPer"],
                   gl_period=gl["PerNbr"].strip(), ar_period=ar["PerNbr"].strip(),
                   ledger_id=gl["LedgerID"].strip(), period_ends=ends,
                   validate_acct_sub=bool(gl["ValidateAcctSub"]), currencies=dict(store.decpl))

    def period_of(self, day: date) -> str:
        """The fiscal period a date falls in, from GLSetup.FiscalPerEndNN (MMDD)."""
        mmdd = f"{day.month:02d}{day.day:02d}"
        for n, end in enumerate(self.period_ends, start=1):
            if end.strip() and mmdd <= end:
                return f"{day.year:04d}{n:02d}"
        return f"{day.year + 1:04d}01"


@dataclass
class Ctx:
    """One request: the store, the company, who is calling, when, and the key it carries."""

    store: Store
    codec: Codec
    company: Company
    settings: SandboxSettings
    user: str
    now: datetime
    idempotency_key: str | None = None
    minimal: bool = False  # Prefer: return=minimal: answer a create with its key columns only

    def audit(self, prog: str) -> dict[str, str]:
        stamp = db_datetime(self.now)
        return {"Crtd_DateTime": stamp, "Crtd_Prog": prog, "Crtd_User": self.user,
                "LUpd_DateTime": stamp, "LUpd_Prog": prog, "LUpd_User": self.user}

    def touched(self, prog: str) -> dict[str, str]:
        return {"LUpd_DateTime": db_datetime(self.now), "LUpd_Prog": prog, "LUpd_User": self.user}

    def out(self, table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
        return self.codec.row_out(table, row)


def fields_in(ctx: Ctx, table: Table, body: Mapping[str, Any], writable: Iterable[str] | None = None,
              *, ignore: Iterable[str] = ()) -> dict[str, Any]:
    """The body's SL columns, checked and converted. Unknown names are 400; names the caller may not
    set (keys the gateway assigns, balances, status flags) are 422."""
    allowed = None if writable is None else set(writable)
    skipped = set(ignore)
    values: dict[str, Any] = {}
    for name, value in body.items():
        if name in skipped:
            continue
        column = table.column(name)
        if column is None:
            raise SLError(400, "UnknownField", f"{table.name}.{name}: no such column", table=table.name,
                          field=name)
        if column.name == KEY_FIELD:
            raise invalid(table.name, column.name, "reserved for the idempotency-key digest; send the key in "
                          "the Idempotency-Key header", code="ReservedField")
        if (allowed is not None and column.name not in allowed) or column.name in AUDIT_FIELDS:
            raise invalid(table.name, column.name, "is set by SL, not by the caller", code="ReadOnlyField")
        if value is None:
            continue
        values[column.name] = ctx.codec.value_in(table, column, value)
    return values


def writable_except(table: Table, *names: str) -> frozenset[str]:
    return frozenset(c.name for c in table.columns) - set(names) - AUDIT_FIELDS - {KEY_FIELD, "NoteId"}


def require(table: Table, values: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if values.get(name, " ") in (" ", None):
            raise invalid(table.name, name, "is required", code="Required")


def check_period(ctx: Ctx, table: str, field: str, period: str, module_period: str, module: str) -> None:
    if not PERIOD.match(period):
        raise invalid(table, field, f"{period!r} is not a period YYYYPP (PP 01-13)", code="InvalidPeriod")
    if int(period[4:]) > ctx.company.nbr_per:
        raise invalid(table, field, f"period {period[4:]} does not exist (GLSetup.NbrPer = "
                      f"{ctx.company.nbr_per})", code="InvalidPeriod")
    if period < module_period:
        raise invalid(table, field, f"period {period} is closed ({module} current period is {module_period})",
                      code="ClosedPeriod")


def check_currency(ctx: Ctx, table: str, field: str, cury: str) -> None:
    if cury not in ctx.company.currencies:
        raise invalid(table, field, f"currency {cury!r} is not in Currncy", code="UnknownCurrency")
    if cury != ctx.company.base_cury:
        raise invalid(table, field, f"currency {cury} differs from the base currency {ctx.company.base_cury}; "
                      "multi-currency is not enabled in this company", code="MultiCurrencyDisabled")


def check_account(ctx: Ctx, table: str, acct_field: str, sub_field: str, acct: str, sub: str) -> None:
    active = ctx.store.reference("SELECT Active FROM Account WHERE Acct = ?", acct)
    if active is None:
        raise invalid(table, acct_field, f"account {acct.strip()!r} is not in the chart of accounts",
                      code="UnknownAccount")
    if not active:
        raise invalid(table, acct_field, f"account {acct.strip()} is inactive", code="InactiveAccount")
    active = ctx.store.reference("SELECT Active FROM SubAcct WHERE Sub = ?", sub)
    if active is None:
        raise invalid(table, sub_field, f"subaccount {sub.strip()!r} does not exist", code="UnknownSubaccount")
    if not active:
        raise invalid(table, sub_field, f"subaccount {sub.strip()} is inactive", code="InactiveSubaccount")


def next_number(last: str, width: int = 6) -> str:
    """SL's autonumbering: the last number used, plus one, zero-padded to its width."""
    last = last.strip()
    digits = last if last.isdigit() else "0"
    return str(int(digits) + 1).zfill(max(width, len(last)))


def add_note(ctx: Ctx, table: str, text: str) -> int:
    return ctx.store.insert(T.SNOTE, {"dtRevisedDate": db_datetime(ctx.now), "sLevelName": "Header",
                                      "sTableName": table, "sNoteText": text})


def note_text(ctx: Ctx, note_id: int) -> str | None:
    if not note_id:
        return None
    row = ctx.store.one('SELECT sNoteText FROM Snote WHERE nID = ?', (note_id,))
    return None if row is None else row["sNoteText"]


def set_note(ctx: Ctx, table: Table, where: Mapping[str, Any], current: int, text: str) -> int:
    if current:
        ctx.store.conn.execute('UPDATE Snote SET sNoteText = ?, dtRevisedDate = ? WHERE nID = ?',
                               (text, db_datetime(ctx.now), current))
        return current
    note_id = add_note(ctx, table.name, text)
    ctx.store.update(table, where, {"NoteId": note_id})
    return note_id


def append_note(ctx: Ctx, table: Table, where: Mapping[str, Any], current: int, line: str) -> int:
    """Add a line to a record's note (a history of what happened to it, newest last)."""
    text = note_text(ctx, current)
    return set_note(ctx, table, where, current, f"{text}\n{line}" if text else line)


# ---- idempotency keys -----------------------------------------------------------------------------

# One statement probes every keyed table's unique key index ("User2 <> ' '" repeats the partial indexes'
# condition so SQLite uses them instead of scanning); a new key, the common case, costs one round trip.
KEY_HOLDER_SQL = (
    "SELECT 'Customer' AS tbl, CustId AS id FROM Customer WHERE User2 = :digest AND User2 <> ' ' "
    "UNION ALL SELECT 'SOHeader', OrdNbr FROM SOHeader WHERE CpnyID = :cpny AND User2 = :digest AND User2 <> ' ' "
    "UNION ALL SELECT 'ARDoc', DocType || ':' || RefNbr FROM ARDoc "
    "WHERE CpnyID = :cpny AND User2 = :digest AND User2 <> ' ' "
    "UNION ALL SELECT 'Batch', Module || ':' || BatNbr FROM Batch "
    "WHERE CpnyID = :cpny AND User2 = :digest AND User2 <> ' ' "
    "UNION ALL SELECT 'xLLTask', TaskNbr FROM xLLTask WHERE CpnyID = :cpny AND User2 = :digest AND User2 <> ' ' "
    "LIMIT 1"
)


def key_holder(ctx: Ctx, digest: str) -> dict[str, str] | None:
    """Which record carries this key digest in ``User2`` (a key belongs to one record per company)."""
    row = ctx.store.conn.execute(KEY_HOLDER_SQL, {"digest": digest, "cpny": ctx.company.cpny}).fetchone()
    return None if row is None else {"table": row["tbl"], "id": row["id"].rstrip()}


def claim_key(ctx: Ctx, table: Table) -> str:
    """The digest to store for this request's key, or 409 naming the record that already holds it."""
    if not ctx.idempotency_key:
        return " "
    digest = key_digest(ctx.idempotency_key)
    holder = key_holder(ctx, digest)
    if holder is not None:
        raise SLError(409, "DuplicateKey",
                      f"idempotency key already used by {holder['table']} {holder['id']}",
                      table=holder["table"], field=KEY_FIELD, existing=holder)
    return digest


def list_query(ctx: Ctx, table: Table, query: Mapping[str, str], scope: Mapping[str, Any]) -> list[Any]:
    """``GET`` a list with equality filters on SL columns plus ``$top``/``$skip``, in key order."""
    where = [f'"{k}" = ?' for k in scope]
    params: list[Any] = list(scope.values())
    top, skip = 100, 0
    for name, raw in query.items():
        if name == "$top":
            top = _int_param(table, name, raw, 1, 1000)
            continue
        if name == "$skip":
            skip = _int_param(table, name, raw, 0, 10**9)
            continue
        column = table.column(name)
        if column is None:
            raise SLError(400, "UnknownField", f"{table.name}.{name}: no such column to filter on",
                          table=table.name, field=name)
        value: Any = raw
        if column.kind in ("S", "I"):
            value = _int_param(table, column.name, raw, -(2**31), 2**31)
        elif column.kind == "C":
            value = raw.rstrip() or " "
        else:
            value = ctx.codec.value_in(table, column, raw)
        where.append(f'"{column.name}" = ?')
        params.append(value)
    order = ", ".join(f'"{k}"' for k in table.key)
    sql = f'SELECT * FROM "{table.name}"' + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY {order} LIMIT ? OFFSET ?"
    return ctx.store.all(sql, (*params, top, skip))


def _int_param(table: Table, name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SLError(400, "InvalidQuery", f"{name} must be an integer", table=table.name, field=name) from None
    if not low <= value <= high:
        raise SLError(400, "InvalidQuery", f"{name} must be between {low} and {high}", table=table.name,
                      field=name)
    return value
