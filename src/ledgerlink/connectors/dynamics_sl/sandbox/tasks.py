"""Finance to-dos (``xLLTask``): what a person must look at (a chargeback, a refused refund, a
reconciliation difference).

SL has no task table, so the API gateway keeps its own, shaped like an SL customisation table: an ``x``
prefix, ``CpnyID`` first, CHAR columns, audit and ``User`` columns, the body in ``Snote`` through
``NoteId``, and the idempotency-key digest in ``User2``. ``POST tasks`` is an upsert by key: the first
call creates the task (201), a later call with the same ``Idempotency-Key`` updates that row (200), so
a re-run of reconciliation refreshes its task instead of adding another. ``Status`` is ``O`` (open) or
``C`` (closed, ``DateClosed`` set); an update that does not send ``Status`` leaves it as it is, so a
re-run never re-opens what a person closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledgerlink.connectors.dynamics_sl.keys import key_digest
from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.common import (
    Ctx,
    add_note,
    fields_in,
    key_holder,
    list_query,
    next_number,
    set_note,
)
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid, not_found
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date, from_db_money, parse_decimal

PROG = "LLTASK"
WRITABLE = frozenset({"Subject", "Category", "Reference", "CuryId", "DueDate", "Status", "User1", "User3",
                      "User4", "User5", "User6", "User7", "User8"})
STATUSES = {"O": "open", "C": "closed"}


def upsert(ctx: Ctx, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST tasks``: create the task, or update the one that holds this request's idempotency key."""
    holder = None
    digest = " "
    if ctx.idempotency_key:
        digest = key_digest(ctx.idempotency_key)
        holder = key_holder(ctx, digest)
        if holder is not None and holder["table"] != T.XLLTASK.name:
            raise SLError(409, "DuplicateKey", f"idempotency key already used by {holder['table']} {holder['id']}",
                          table=holder["table"], field=T.KEY_FIELD, existing=holder)
    if holder is not None:
        return 200, _update(ctx, holder["id"], body)
    values = _values(ctx, body)
    if values.get("Subject", " ") == " ":
        raise invalid("xLLTask", "Subject", "is required", code="Required")
    values.setdefault("Status", "O")
    values.setdefault("Category", "general")
    values.setdefault("CuryId", ctx.company.base_cury)
    last = ctx.store.one("SELECT MAX(TaskNbr) AS n FROM xLLTask WHERE CpnyID = ?", (ctx.company.cpny,))
    task_nbr = next_number(last["n"] if last is not None and last["n"] else "000000")
    row = {**values, "CpnyID": ctx.company.cpny, "TaskNbr": task_nbr, T.KEY_FIELD: digest, **ctx.audit(PROG)}
    if values["Status"] == "C":
        row["DateClosed"] = db_date(ctx.now.date())
    if isinstance(body.get("Body"), str) and body["Body"]:
        row["NoteId"] = add_note(ctx, T.XLLTASK.name, body["Body"])
    ctx.store.insert(T.XLLTASK, row)
    return 201, read(ctx, task_nbr)


def patch(ctx: Ctx, task_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``PATCH tasks/{TaskNbr}``: change a task (a person closing it sends ``{"Status": "C"}``)."""
    return 200, _update(ctx, task_nbr, body)


def _update(ctx: Ctx, task_nbr: str, body: Mapping[str, Any]) -> dict[str, Any]:
    row = _task(ctx, task_nbr)
    values = _values(ctx, body)
    if "Subject" in values and values["Subject"] == " ":
        raise invalid("xLLTask", "Subject", "is required", code="Required")
    status = values.get("Status")
    if status is not None and status != row["Status"]:
        values["DateClosed"] = db_date(ctx.now.date()) if status == "C" else T.NO_DATE
    where = {"CpnyID": ctx.company.cpny, "TaskNbr": task_nbr}
    if values:
        ctx.store.update(T.XLLTASK, where, {**values, **ctx.touched(PROG)})
    if isinstance(body.get("Body"), str):
        set_note(ctx, T.XLLTASK, where, row["NoteId"], body["Body"])
    return read(ctx, task_nbr)


def _values(ctx: Ctx, body: Mapping[str, Any]) -> dict[str, Any]:
    if "Body" in body and not isinstance(body["Body"], (str, type(None))):
        raise invalid("xLLTask", "Body", "must be text")
    values = fields_in(ctx, T.XLLTASK, body, WRITABLE, ignore=("Body", "Amount"))
    if "Status" in values and values["Status"] not in STATUSES:
        raise invalid("xLLTask", "Status", f"{values['Status']!r} is not O (open) or C (closed)",
                      code="InvalidStatus")
    cury = values.get("CuryId", ctx.company.base_cury)
    if cury not in ctx.company.currencies:
        raise invalid("xLLTask", "CuryId", f"currency {cury!r} is not in Currncy", code="UnknownCurrency")
    if body.get("Amount") is not None:
        # informational, so any sign; places as the task's own currency has them
        values["Amount"] = float(parse_decimal("xLLTask", "Amount", body["Amount"], ctx.company.currencies[cury]))
    return values


def _task(ctx: Ctx, task_nbr: str) -> Any:
    row = ctx.store.one("SELECT * FROM xLLTask WHERE CpnyID = ? AND TaskNbr = ?", (ctx.company.cpny, task_nbr))
    if row is None:
        raise not_found("xLLTask", task_nbr)
    return row


def _out(ctx: Ctx, row: Any, body: str | None) -> dict[str, Any]:
    record = ctx.out(T.XLLTASK, row)
    cury = row["CuryId"].rstrip()
    places = ctx.company.currencies.get(cury, ctx.company.decpl)
    record["Amount"] = f"{from_db_money(row['Amount'], places):.{places}f}"
    record["Body"] = body
    return record


def read(ctx: Ctx, task_nbr: str) -> dict[str, Any]:
    row = _task(ctx, task_nbr)
    note = ctx.store.one("SELECT sNoteText FROM Snote WHERE nID = ?", (row["NoteId"],)) if row["NoteId"] else None
    return _out(ctx, row, None if note is None else note["sNoteText"])


def get(ctx: Ctx, task_nbr: str) -> tuple[int, Any]:
    return 200, read(ctx, task_nbr)


def search(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    """``GET tasks?Status=O&Category=chargeback&Reference=…&$top=&$skip=``, each with its body."""
    rows = list_query(ctx, T.XLLTASK, query, {"CpnyID": ctx.company.cpny})
    ids = [r["NoteId"] for r in rows if r["NoteId"]]
    notes: dict[int, str] = {}
    if ids:
        marks = ", ".join("?" for _ in ids)
        notes = {n["nID"]: n["sNoteText"] for n in ctx.store.all(
            f"SELECT nID, sNoteText FROM Snote WHERE nID IN ({marks})", tuple(ids))}
    return 200, {"value": [_out(ctx, r, notes.get(r["NoteId"])) for r in rows]}
