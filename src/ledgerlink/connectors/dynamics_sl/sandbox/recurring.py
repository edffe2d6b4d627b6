"""Recurring AR documents and the customer AR hold.

SL keeps a recurring invoice as an ``ARDoc`` with ``DocType = 'RC'`` and ``DocClass = 'R'`` (SL's own quick
query ``QQ_ardoc_recur`` reads exactly these), with ``Cycle`` and ``NbrCycle``; "Generate Recurring" (08.500)
turns the template into a real invoice. In this sandbox:

- ``DocDate`` of the ``RC`` document is the date of the next invoice to generate; ``Cycle`` is the number of
  months between invoices (SMALLINT, >= 1); ``NbrCycle`` the number of invoices still to generate (0: ended).
  The template is never released and owes nothing (``DocBal`` 0); its ``ARTran`` lines (``TranType 'RC'``)
  are copied onto each invoice.
- ``POST ar/recurring/{RefNbr}/generate`` with ``{"DocDate": <the template's DocDate>}`` enters and releases the
  ``IN`` for that cycle (``OrigDocNbr`` = the template's RefNbr, the request's idempotency key on it), then moves
  the template on by ``Cycle`` months and counts ``NbrCycle`` down, all in one transaction. A ``DocDate`` that is
  no longer the template's (someone generated it already) is a 409 ``RecurringAdvanced``; a retry with the same
  key is the usual 409 naming the invoice it made.
- ``User5`` (CHAR(10)) holds the subscription status a gateway set: blank (active), ``SUSPENDED`` or
  ``CANCELLED`` (``POST ar/recurring/{RefNbr}/status``); a suspended or cancelled template generates nothing.
- The template's note (``Snote``) carries the card token to charge on a line ``Token: <gateway token id>``: no
  SL column is wide enough for a gateway token, and a card number is refused anywhere.

``POST customers/{CustId}/hold`` and ``/release`` move ``Customer.Status`` to ``H`` (hold) and back to ``A``,
each with a line on the customer's note. On hold, SL takes payments and credits but no new invoices, debit
memos or orders (``CustomerOnHold``).
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Mapping
from datetime import date
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.ardocs import _default_lines, enter, read
from ledgerlink.connectors.dynamics_sl.sandbox.common import (
    Ctx,
    add_note,
    append_note,
    check_currency,
    claim_key,
    fields_in,
    list_query,
    next_number,
    require,
    set_note,
)
from ledgerlink.connectors.dynamics_sl.sandbox.customers import active_customer
from ledgerlink.connectors.dynamics_sl.sandbox.customers import read as read_customer
from ledgerlink.connectors.dynamics_sl.sandbox.effects import document, money
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid, not_found
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date, stored_date, to_db_money

PROG = "08500"
ENTRY_PROG = "08010"
CUSTOMER_PROG = "08260"
STATUS_FIELD = "User5"
STATUSES = {"ACTIVE": " ", "SUSPENDED": "SUSPENDED", "CANCELLED": "CANCELLED"}
HEADER_FIELDS = frozenset({"CustId", "RefNbr", "DocDate", "DocDesc", "CuryOrigDocAmt", "CuryId", "Terms", "SlsperId",
                           "Cycle", "NbrCycle", "CustOrdNbr", "User1", "User3", "User4", "User6", "User7", "User8"})
LINE_FIELDS = frozenset({"Acct", "Sub", "CuryTranAmt", "TranDesc", "InvtId", "Qty", "CuryUnitPrice", "LineRef"})


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def _template(ctx: Ctx, ref_nbr: str) -> Any:
    row = document(ctx, "RC", ref_nbr)
    if row is None:
        raise not_found("ARDoc", f"RC {ref_nbr}")
    return row


def create(ctx: Ctx, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST ar/recurring``: enter a recurring invoice template (08.010 with a recurring batch)."""
    key = claim_key(ctx, T.ARDOC)
    header = fields_in(ctx, T.ARDOC, body, HEADER_FIELDS, ignore=("Lines", "Note"))
    raw_lines = body.get("Lines") or []
    if not isinstance(raw_lines, list) or not all(isinstance(line, dict) for line in raw_lines):
        raise invalid("ARDoc", "Lines", "must be a list of objects")
    lines = [fields_in(ctx, T.ARTRAN, line, LINE_FIELDS) for line in raw_lines]
    require(T.ARDOC, header, "CustId", "CuryOrigDocAmt", "DocDate")
    customer = active_customer(ctx, "ARDoc", "CustId", header["CustId"])
    amount = money(ctx, header["CuryOrigDocAmt"])
    if amount <= 0:
        raise invalid("ARDoc", "CuryOrigDocAmt", "amounts are positive", code="NonPositiveAmount")
    cury = header.setdefault("CuryId", ctx.company.base_cury)
    check_currency(ctx, "ARDoc", "CuryId", cury)
    cycle = header.setdefault("Cycle", 1)
    if not 1 <= cycle <= 120:
        raise invalid("ARDoc", "Cycle", "months between invoices: 1 to 120", code="InvalidCycle")
    cycles = header.setdefault("NbrCycle", 1)
    if not 0 < cycles <= 32767:
        raise invalid("ARDoc", "NbrCycle", "invoices to generate: 1 to 32767", code="InvalidCycle")
    lines = _default_lines(ctx, customer, "IN", amount, lines)
    header.setdefault("Terms", customer["Terms"])
    ar = ctx.store.one("SELECT LastRefNbr FROM ARSetup WHERE CpnyID = ?", (ctx.company.cpny,))
    assert ar is not None
    if header.get("RefNbr", " ") == " ":
        header["RefNbr"] = next_number(ar["LastRefNbr"])
        ctx.store.update(T.ARSETUP, {"CpnyID": ctx.company.cpny}, {"LastRefNbr": header["RefNbr"]})
    elif document(ctx, "RC", header["RefNbr"]) is not None:
        raise SLError(409, "DuplicateRecord", f"ARDoc RC:{header['RefNbr']} already exists", table="ARDoc",
                      field="RefNbr", existing={"table": "ARDoc", "id": f"RC:{header['RefNbr']}"})
    audit = ctx.audit(ENTRY_PROG)
    stored = to_db_money(amount)
    doc = {**header, "CpnyID": ctx.company.cpny, "DocType": "RC", "BatNbr": " ", "BatSeq": 0,
           "OrigDocAmt": stored, "CuryOrigDocAmt": stored, "DocBal": 0.0, "CuryDocBal": 0.0, "CuryRate": 1.0,
           "CuryMultDiv": "M", "CuryEffDate": header["DocDate"], "PerEnt": ctx.company.ar_period,
           "PerPost": ctx.company.ar_period, "Rlsed": 0, "OpenDoc": 0, "Status": "A", "DocClass": "R",
           "LineCntr": len(lines), T.KEY_FIELD: key, **audit}
    if body.get("Note"):
        doc["NoteId"] = add_note(ctx, "ARDoc", str(body["Note"]))
    ctx.store.insert(T.ARDOC, doc)
    for number, line in enumerate(lines, start=1):
        ctx.store.insert(T.ARTRAN, {
            "CpnyID": ctx.company.cpny, "CustId": header["CustId"], "TranType": "RC", "RefNbr": header["RefNbr"],
            "LineNbr": number, **line, "TranAmt": line["CuryTranAmt"], "DrCr": "C",
            "UnitPrice": line.get("CuryUnitPrice", 0.0), "TranDate": header["DocDate"], "JrnlType": "AR", **audit})
    return 201, read_template(ctx, header["RefNbr"])


def read_template(ctx: Ctx, ref_nbr: str) -> dict[str, Any]:
    record = read(ctx, "RC", ref_nbr)
    record["Status"] = "ACTIVE"
    for name, code in STATUSES.items():
        if (record.get(STATUS_FIELD) or " ").strip() == code.strip():
            record["Status"] = name
    if record.get("NbrCycle") == 0 and record["Status"] == "ACTIVE":
        record["Status"] = "ENDED"
    return record


def get(ctx: Ctx, ref_nbr: str) -> tuple[int, Any]:
    _template(ctx, ref_nbr)
    return 200, read_template(ctx, ref_nbr)


def search(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    """``GET ar/recurring``: every template (filters and ``$top``/``$skip`` like any list), with note and status."""
    rows = list_query(ctx, T.ARDOC, query, {"CpnyID": ctx.company.cpny, "DocType": "RC"})
    return 200, {"value": [read_template(ctx, row["RefNbr"]) for row in rows]}


def generate(ctx: Ctx, ref_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST ar/recurring/{RefNbr}/generate``: 08.500 for one template and one cycle."""
    claim_key(ctx, T.ARDOC)  # first: a retry finds the invoice it made, whatever the template says now
    rc = _template(ctx, ref_nbr)
    values = fields_in(ctx, T.ARDOC, {k: v for k, v in body.items() if k in ("DocDate", "DocDesc")},
                       {"DocDate", "DocDesc"})
    require(T.ARDOC, values, "DocDate")
    status = (rc[STATUS_FIELD] or " ").strip()
    if status:
        raise invalid("ARDoc", STATUS_FIELD, f"recurring document RC {ref_nbr} is {status.lower()}",
                      code="RecurringSuspended")
    if rc["NbrCycle"] <= 0:
        raise invalid("ARDoc", "NbrCycle", f"recurring document RC {ref_nbr} has no cycles left",
                      code="RecurringEnded")
    if values["DocDate"] != rc["DocDate"]:
        raise SLError(409, "RecurringAdvanced", f"ARDoc.DocDate: RC {ref_nbr} is at {rc['DocDate'][:10]}, not "
                      f"{values['DocDate'][:10]} (that cycle was generated already)", table="ARDoc",
                      field="DocDate")
    lines = [{"Acct": t["Acct"], "Sub": t["Sub"], "CuryTranAmt": t["CuryTranAmt"], "TranDesc": t["TranDesc"],
              "InvtId": t["InvtId"], "Qty": t["Qty"], "CuryUnitPrice": t["CuryUnitPrice"], "LineRef": t["LineRef"]}
             for t in ctx.store.all("SELECT * FROM ARTran WHERE CpnyID = ? AND TranType = 'RC' AND RefNbr = ? "
                                    "ORDER BY LineNbr", (ctx.company.cpny, ref_nbr))]
    header = {"CustId": rc["CustId"], "DocType": "IN", "DocDate": rc["DocDate"], "CuryOrigDocAmt": rc["CuryOrigDocAmt"],
              "CuryId": rc["CuryId"], "DocDesc": values.get("DocDesc", rc["DocDesc"]), "Terms": rc["Terms"],
              "SlsperId": rc["SlsperId"], "CustOrdNbr": rc["CustOrdNbr"], "OrigDocNbr": ref_nbr}
    entered = enter(ctx, header, lines, [], prog=PROG)
    following = add_months(stored_date(rc["DocDate"]) or ctx.now.date(), rc["Cycle"] or 1)
    ctx.store.update(T.ARDOC, {"CustId": rc["CustId"], "DocType": "RC", "RefNbr": ref_nbr, "BatNbr": rc["BatNbr"],
                               "BatSeq": rc["BatSeq"]},
                     {"DocDate": db_date(following), "NbrCycle": rc["NbrCycle"] - 1, **ctx.touched(PROG)})
    if ctx.minimal:
        return 201, entered
    return 201, read(ctx, "IN", entered["RefNbr"])


def patch(ctx: Ctx, ref_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``PATCH ar/recurring/{RefNbr}``: what a person changes on a template: its description, its note (the
    ``Token:`` line, when the customer gives a new card) and the cycles left."""
    rc = _template(ctx, ref_nbr)
    values = fields_in(ctx, T.ARDOC, body, {"DocDesc", "NbrCycle"}, ignore=("Note",))
    if "NbrCycle" in values and not 0 <= values["NbrCycle"] <= 32767:
        raise invalid("ARDoc", "NbrCycle", "invoices to generate: 0 to 32767", code="InvalidCycle")
    where = {"CustId": rc["CustId"], "DocType": "RC", "RefNbr": ref_nbr, "BatNbr": rc["BatNbr"], "BatSeq": rc["BatSeq"]}
    if values:
        ctx.store.update(T.ARDOC, where, {**values, **ctx.touched(ENTRY_PROG)})
    if body.get("Note") is not None:
        set_note(ctx, T.ARDOC, where, rc["NoteId"], str(body["Note"]))
    return 200, read_template(ctx, ref_nbr)


def set_status(ctx: Ctx, ref_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST ar/recurring/{RefNbr}/status``: ``{"Status": "ACTIVE"|"SUSPENDED"|"CANCELLED", "Reason": ...}``."""
    rc = _template(ctx, ref_nbr)
    status = body.get("Status")
    if status not in STATUSES:
        raise invalid("ARDoc", "Status", f"{status!r} is not one of {', '.join(STATUSES)}")
    if (rc[STATUS_FIELD] or " ").strip() == "CANCELLED" and status != "CANCELLED":
        raise invalid("ARDoc", "Status", f"recurring document RC {ref_nbr} is cancelled; enter a new one",
                      code="RecurringCancelled")
    values: dict[str, Any] = {STATUS_FIELD: STATUSES[status], **ctx.touched(PROG)}
    if status == "CANCELLED":
        values["NbrCycle"] = 0
    where = {"CustId": rc["CustId"], "DocType": "RC", "RefNbr": ref_nbr, "BatNbr": rc["BatNbr"], "BatSeq": rc["BatSeq"]}
    ctx.store.update(T.ARDOC, where, values)
    reason = str(body.get("Reason") or "").strip()
    append_note(ctx, T.ARDOC, where, rc["NoteId"], f"{ctx.now:%Y-%m-%d} {status}" + (f": {reason}" if reason else ""))
    return 200, read_template(ctx, ref_nbr)


# ---- customer AR hold ------------------------------------------------------------------------------------


def _customer(ctx: Ctx, cust_id: str) -> Any:
    row = ctx.store.one("SELECT * FROM Customer WHERE CustId = ?", (cust_id,))
    if row is None:
        raise not_found("Customer", cust_id)
    return row


def hold(ctx: Ctx, cust_id: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST customers/{CustId}/hold``: ``Status`` H; a customer already on hold stays as it is."""
    row = _customer(ctx, cust_id)
    if row["Status"] not in ("A", "O", "H"):
        raise invalid("Customer", "Status", f"customer {cust_id} has Status {row['Status']!r}; only an active "
                      "customer can be put on hold", code="InactiveCustomer")
    if row["Status"] != "H":
        ctx.store.update(T.CUSTOMER, {"CustId": cust_id}, {"Status": "H", **ctx.touched(CUSTOMER_PROG)})
        reason = str(body.get("Reason") or "").strip()
        append_note(ctx, T.CUSTOMER, {"CustId": cust_id}, row["NoteId"],
                    f"{ctx.now:%Y-%m-%d} AR hold" + (f": {reason}" if reason else ""))
    return 200, read_customer(ctx, cust_id)


def release(ctx: Ctx, cust_id: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST customers/{CustId}/release``: ``Status`` back to A; a customer not on hold stays as it is."""
    row = _customer(ctx, cust_id)
    if row["Status"] == "H":
        ctx.store.update(T.CUSTOMER, {"CustId": cust_id}, {"Status": "A", **ctx.touched(CUSTOMER_PROG)})
        reason = str(body.get("Reason") or "").strip()
        append_note(ctx, T.CUSTOMER, {"CustId": cust_id}, row["NoteId"],
                    f"{ctx.now:%Y-%m-%d} AR hold released" + (f": {reason}" if reason else ""))
    return 200, read_customer(ctx, cust_id)
