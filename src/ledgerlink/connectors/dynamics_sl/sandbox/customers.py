"""Customer master (screen 08.260): create, change, read and list, with SL's defaults from the class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.common import (
    Ctx,
    add_note,
    check_account,
    claim_key,
    fields_in,
    list_query,
    note_text,
    require,
    set_note,
    writable_except,
)
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid, not_found
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date

PROG = "08260"
STATUSES = ("A", "O", "H", "I", "R")
WRITABLE = writable_except(T.CUSTOMER, "PerNbr", "SetupDate")
CLASS_DEFAULTS = ("ArAcct", "ArSub", "PrePayAcct", "PrePaySub", "SlsAcct", "SlsSub")


def _check(ctx: Ctx, values: dict[str, Any]) -> None:
    if values.get("CardNbr", " ") != " ":
        raise invalid("Customer", "CardNbr", "card numbers may not be stored in SL; keep the gateway token "
                      "elsewhere", code="CardDataRefused")
    status = values.get("Status")
    if status is not None and status not in STATUSES:
        raise invalid("Customer", "Status", f"{status!r} is not one of {', '.join(STATUSES)}")
    email = values.get("EMailAddr", " ")
    if email != " " and "@" not in email:
        raise invalid("Customer", "EMailAddr", f"{email!r} is not an e-mail address")
    if "CuryId" in values and values["CuryId"] not in ctx.company.currencies:
        raise invalid("Customer", "CuryId", f"currency {values['CuryId']!r} is not in Currncy",
                      code="UnknownCurrency")
    if "Terms" in values and ctx.store.one("SELECT 1 FROM Terms WHERE TermsId = ?", (values["Terms"],)) is None:
        raise invalid("Customer", "Terms", f"terms {values['Terms']!r} are not in Terms", code="UnknownTerms")
    for acct, sub in (("ArAcct", "ArSub"), ("PrePayAcct", "PrePaySub"), ("SlsAcct", "SlsSub")):
        if acct in values or sub in values:
            check_account(ctx, "Customer", acct, sub, values.get(acct, " "), values.get(sub, " "))


def create(ctx: Ctx, body: Mapping[str, Any]) -> tuple[int, Any]:
    key = claim_key(ctx, T.CUSTOMER)
    values = fields_in(ctx, T.CUSTOMER, body, WRITABLE, ignore=("Note",))
    require(T.CUSTOMER, values, "CustId", "Name")
    class_id = values.setdefault("ClassId", ctx.settings.customer_class)
    cls = ctx.store.one("SELECT * FROM CustClass WHERE ClassId = ?", (class_id,))
    if cls is None:
        raise invalid("Customer", "ClassId", f"customer class {class_id!r} is not in CustClass",
                      code="UnknownClass")
    for name in CLASS_DEFAULTS:
        values.setdefault(name, cls[name])
    values.setdefault("Terms", cls["Terms"])
    values.setdefault("Status", "A")
    values.setdefault("CuryId", ctx.company.base_cury)
    values.setdefault("DocPublishingFlag", "Y")
    _check(ctx, values)
    cust_id = values["CustId"]
    if ctx.store.one("SELECT 1 FROM Customer WHERE CustId = ?", (cust_id,)) is not None:
        raise SLError(409, "DuplicateRecord", f"Customer {cust_id} already exists", table="Customer",
                      field="CustId", existing={"table": "Customer", "id": cust_id})
    values[T.KEY_FIELD] = key
    if body.get("Note"):
        values["NoteId"] = add_note(ctx, "Customer", str(body["Note"]))
    values.update(PerNbr=ctx.company.ar_period, SetupDate=db_date(ctx.now.date()), **ctx.audit(PROG))
    ctx.store.insert(T.CUSTOMER, values)
    ctx.store.insert(T.AR_BALANCES, {"CpnyID": ctx.company.cpny, "CustID": cust_id,
                                     "PerNbr": ctx.company.ar_period, **ctx.audit(PROG)})
    if ctx.minimal:
        return 201, {"CustId": cust_id, "Status": values["Status"], "ClassId": class_id}
    return 201, read(ctx, cust_id)


def patch(ctx: Ctx, cust_id: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    row = ctx.store.one("SELECT NoteId FROM Customer WHERE CustId = ?", (cust_id,))
    if row is None:
        raise not_found("Customer", cust_id)
    values = fields_in(ctx, T.CUSTOMER, body, WRITABLE - {"CustId"}, ignore=("Note",))
    if "ClassId" in values and ctx.store.one("SELECT 1 FROM CustClass WHERE ClassId = ?",
                                             (values["ClassId"],)) is None:
        raise invalid("Customer", "ClassId", f"customer class {values['ClassId']!r} is not in CustClass",
                      code="UnknownClass")
    if "Name" in values:
        require(T.CUSTOMER, values, "Name")
    _check(ctx, values)
    if values:
        ctx.store.update(T.CUSTOMER, {"CustId": cust_id}, {**values, **ctx.touched(PROG)})
    if body.get("Note"):
        set_note(ctx, T.CUSTOMER, {"CustId": cust_id}, row["NoteId"], str(body["Note"]))
    return 200, read(ctx, cust_id)


def read(ctx: Ctx, cust_id: str) -> dict[str, Any]:
    row = ctx.store.one("SELECT * FROM Customer WHERE CustId = ?", (cust_id,))
    if row is None:
        raise not_found("Customer", cust_id)
    record = ctx.out(T.CUSTOMER, row)
    record["Note"] = note_text(ctx, row["NoteId"])
    balances = ctx.store.one("SELECT * FROM AR_Balances WHERE CpnyID = ? AND CustID = ?",
                             (ctx.company.cpny, cust_id))
    record["Balances"] = None if balances is None else ctx.out(T.AR_BALANCES, balances)
    return record


def get(ctx: Ctx, cust_id: str) -> tuple[int, Any]:
    return 200, read(ctx, cust_id)


def search(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    rows = list_query(ctx, T.CUSTOMER, query, {})
    return 200, {"value": [ctx.out(T.CUSTOMER, r) for r in rows]}


def active_customer(ctx: Ctx, table: str, field: str, cust_id: str, *, allow_hold: bool = False) -> Any:
    """The customer row a document names; it must exist and be active (A/O, as SL's own lookups filter).

    ``allow_hold``: a customer on AR hold (``H``) is accepted too. A hold stops new charges (invoices, debit
    memos, orders), not money coming in: payments, prepayments and credits are entered as usual."""
    row = ctx.store.one("SELECT * FROM Customer WHERE CustId = ?", (cust_id,))
    if row is None:
        raise invalid(table, field, f"customer {cust_id!r} does not exist", code="UnknownCustomer")
    if row["Status"] == "H" and not allow_hold:
        raise invalid(table, field, f"customer {cust_id} is on AR hold (Status 'H'); only payments and credits "
                      "are accepted until the hold is released", code="CustomerOnHold")
    if row["Status"] not in ("A", "O", "H"):
        raise invalid(table, field, f"customer {cust_id} has Status {row['Status']!r}; documents need an "
                      "active customer (A or O)", code="InactiveCustomer")
    return row
