"""AR documents: entry (08.010 invoices and memos, 08.030 payments, 08.050 prepayments) and release
(08.400), which is where balances, applications and GL transactions come from (spec A.6-A.9).

Entry stages a batch the way the screens do: the ``ARDoc``, its ``ARTran`` lines, and one ``ARTran``
row with ``DrCr = 'U'`` per application (``CostType`` = adjusted DocType, ``SiteId`` = adjusted RefNbr).
Release turns the ``U`` rows into ``ARAdjust`` rows, reduces both documents' balances, updates
``AR_Balances`` and the originating sales order, writes the ``GLTran`` rows and sets the batch to ``U``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.applications import (
    APPLICATION_FIELDS,
    APPLYING_TYPES,
    CREDIT_FIELDS,
    apply_credits,
    check_applications,
    check_credits,
)
from ledgerlink.connectors.dynamics_sl.sandbox.common import (
    Ctx,
    add_note,
    check_account,
    check_currency,
    check_period,
    claim_key,
    fields_in,
    list_query,
    next_number,
    note_text,
    require,
)
from ledgerlink.connectors.dynamics_sl.sandbox.customers import active_customer
from ledgerlink.connectors.dynamics_sl.sandbox.effects import (
    CREDIT_TYPES,
    DEBIT_TYPES,
    RELEASE_PROG,
    GLLines,
    apply,
    balances,
    document,
    insert_batch,
    money,
    new_batch,
    order_refs,
    paid_order,
    paid_order_nbr,
    set_balance,
    write_gl,
)
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid, not_found
from ledgerlink.connectors.dynamics_sl.sandbox.refunds import check_card_role
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date, stored_date, to_db_money

SCREEN = {"PA": "08030", "PP": "08050"}  # everything else is entered on 08.010
DOC_CLASS = {"PA": "P", "PP": "P", "CS": "C"}  # everything else N

HEADER_FIELDS = frozenset({
    "CustId", "DocType", "RefNbr", "DocDate", "DueDate", "DocDesc", "CuryOrigDocAmt", "CuryId", "PerPost",
    "Terms", "SlsperId", "OrdNbr", "CustOrdNbr", "BankAcct", "BankSub", "PmtMethod", "ProjectID", "TaskID",
    "User1", "User3", "User4", "User5", "User6", "User7", "User8",
})
LINE_FIELDS = frozenset({"Acct", "Sub", "CuryTranAmt", "TranDesc", "InvtId", "Qty", "CuryUnitPrice",
                         "ExtRefNbr", "LineRef", "TaxCat"})
PSEUDO = ("Lines", "Applications", "Credits", "Note", "Release", "Hold")


# ---- entry --------------------------------------------------------------------------------------------


def create(ctx: Ctx, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST ar/documents``: enter a document and (by default, like "Release Now") release it."""
    header = fields_in(ctx, T.ARDOC, body, HEADER_FIELDS, ignore=PSEUDO)
    lines = [_sub_fields(ctx, T.ARTRAN, "Lines", i, line, LINE_FIELDS)
             for i, line in enumerate(_list(body, "Lines"))]
    apps = [_sub_fields(ctx, T.ARADJUST, "Applications", i, app, APPLICATION_FIELDS)
            for i, app in enumerate(_list(body, "Applications"))]
    credits = [_sub_fields(ctx, T.ARADJUST, "Credits", i, credit, CREDIT_FIELDS)
               for i, credit in enumerate(_list(body, "Credits"))]
    release = _flag(body, "Release", True)
    hold = _flag(body, "Hold", False)
    note = body.get("Note")
    doc = enter(ctx, header, lines, apps, credits=credits, release=release and not hold, hold=hold,
                note=str(note) if note else None)
    return 201, created(ctx, doc)


def created(ctx: Ctx, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to a create: the whole document, or its keys under ``Prefer: return=minimal``."""
    if ctx.minimal:
        return {name: doc[name].rstrip() for name in ("DocType", "RefNbr", "BatNbr")}
    return read(ctx, doc["DocType"], doc["RefNbr"])


def _list(body: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid("ARDoc", name, "must be a list of objects")
    return value


def _flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise invalid("ARDoc", name, "must be true or false")
    return value


def _sub_fields(ctx: Ctx, table: T.Table, name: str, index: int, body: Mapping[str, Any],
                allowed: frozenset[str]) -> dict[str, Any]:
    try:
        return fields_in(ctx, table, body, allowed)
    except SLError as exc:
        exc.field = f"{name}[{index}].{exc.field}"
        exc.message = f"{table.name}.{exc.field}: {exc.message.split(': ', 1)[-1]}"
        raise


def enter(ctx: Ctx, header: dict[str, Any], lines: list[dict[str, Any]], apps: list[dict[str, Any]], *,
          credits: Sequence[Mapping[str, Any]] = (), release: bool = True, hold: bool = False,
          note: str | None = None, jrnl_type: str = "AR", prog: str | None = None) -> dict[str, Any]:
    """Validate and stage one document in its own batch; release it now unless asked not to. ``credits``
    (existing credits that pay the new debit document) are applied right after the release."""
    key = claim_key(ctx, T.ARDOC)  # first: a retry must find its own record, not trip over its effects
    require(T.ARDOC, header, "CustId", "DocType", "CuryOrigDocAmt")
    doc_type = header["DocType"]
    if doc_type not in DEBIT_TYPES | CREDIT_TYPES:
        hint = " (reverse a payment with POST ar/documents/{DocType}/{RefNbr}/reverse)" if doc_type == "NS" else ""
        raise invalid("ARDoc", "DocType", f"{doc_type!r} is not a DocType this gateway enters "
                      f"({', '.join(sorted(DEBIT_TYPES | CREDIT_TYPES))}){hint}", code="UnsupportedDocType")
    customer = active_customer(ctx, "ARDoc", "CustId", header["CustId"], allow_hold=doc_type in CREDIT_TYPES)
    amount = money(ctx, header["CuryOrigDocAmt"])
    if amount <= 0:
        raise invalid("ARDoc", "CuryOrigDocAmt", "amounts are positive; the DocType gives the direction",
                      code="NonPositiveAmount")
    cury = header.setdefault("CuryId", ctx.company.base_cury)
    check_currency(ctx, "ARDoc", "CuryId", cury)
    doc_date = stored_date(header.get("DocDate", T.NO_DATE)) or ctx.now.date()
    header["DocDate"] = db_date(doc_date)
    period = header.setdefault("PerPost", ctx.company.period_of(doc_date))
    check_period(ctx, "ARDoc", "PerPost", period, ctx.company.ar_period, "AR")
    prog = prog or SCREEN.get(doc_type, "08010")
    check_card_role(header, doc_type, apps, credits)

    if doc_type in ("PA", "PP", "CS"):
        header.setdefault("BankAcct", ctx.settings.card_clearing_account)
        header.setdefault("BankSub", ctx.settings.default_sub)
        check_account(ctx, "ARDoc", "BankAcct", "BankSub", header["BankAcct"], header["BankSub"])
        if lines:
            raise invalid("ARDoc", "Lines", f"{doc_type} documents carry no lines; the cash account is BankAcct")
    else:
        lines = _default_lines(ctx, customer, doc_type, amount, lines)
    if apps and doc_type not in APPLYING_TYPES:
        raise invalid("ARDoc", "Applications", f"{doc_type} documents are not applied at entry "
                      f"(only {', '.join(sorted(APPLYING_TYPES))})")
    check_applications(ctx, header["CustId"], amount, apps)
    if credits:
        if doc_type not in DEBIT_TYPES - {"CS"}:
            raise invalid("ARDoc", "Credits", f"{doc_type} is not a debit document; only IN, DM, FI, NC or SC are "
                          "paid by existing credits", code="InvalidApplication")
        if not release:
            raise invalid("ARDoc", "Credits", "credits are applied when the document is released; enter it "
                          "with Release and without Hold", code="InvalidApplication")
        check_credits(ctx, header["CustId"], amount, credits)
    _order_of(ctx, header, doc_type, amount, apps, credits)

    terms = header.setdefault("Terms", customer["Terms"])
    if doc_type in DEBIT_TYPES and "DueDate" not in header:
        row = ctx.store.one("SELECT DueIntrv FROM Terms WHERE TermsId = ?", (terms,))
        header["DueDate"] = db_date(doc_date + timedelta(days=row["DueIntrv"] if row else 0))

    ar = ctx.store.one("SELECT LastRefNbr, LastBatNbr FROM ARSetup WHERE CpnyID = ?", (ctx.company.cpny,))
    assert ar is not None
    setup_changes: dict[str, Any] = {}
    if header.get("RefNbr", " ") == " ":
        header["RefNbr"] = setup_changes["LastRefNbr"] = next_number(ar["LastRefNbr"])
    elif document(ctx, doc_type, header["RefNbr"]) is not None:
        existing = f"{doc_type}:{header['RefNbr']}"
        raise SLError(409, "DuplicateRecord", f"ARDoc {existing} already exists", table="ARDoc",
                      field="RefNbr", existing={"table": "ARDoc", "id": existing})
    bat_nbr = setup_changes["LastBatNbr"] = next_number(ar["LastBatNbr"])
    ctx.store.update(T.ARSETUP, {"CpnyID": ctx.company.cpny}, setup_changes)

    audit = ctx.audit(prog)
    stored_amount = to_db_money(amount)
    insert_batch(ctx, bat_nbr, total=amount, period=period, screen=prog, descr=header.get("DocDesc", " "),
                 status="H" if hold else "B", cury=cury, jrnl_type=jrnl_type,
                 BankAcct=header.get("BankAcct", " "), BankSub=header.get("BankSub", " "))
    doc = {
        **header, "CpnyID": ctx.company.cpny, "BatNbr": bat_nbr, "BatSeq": 0, "OrigDocAmt": stored_amount,
        "CuryOrigDocAmt": stored_amount, "DocBal": stored_amount, "CuryDocBal": stored_amount,
        "CuryRate": 1.0, "CuryMultDiv": "M", "CuryEffDate": header["DocDate"], "PerEnt": ctx.company.ar_period,
        "Rlsed": 0, "OpenDoc": 1, "Status": "A", "DocClass": DOC_CLASS.get(doc_type, "N"),
        "LineCntr": len(lines) + len(apps), T.KEY_FIELD: key, **audit,
    }
    if note:
        doc["NoteId"] = add_note(ctx, "ARDoc", note)
    ctx.store.insert(T.ARDOC, doc)
    common = {"CpnyID": ctx.company.cpny, "CustId": header["CustId"], "TranType": doc_type,
              "RefNbr": header["RefNbr"], "TranDate": header["DocDate"], "PerPost": period,
              "FiscYr": period[:4], "JrnlType": jrnl_type, "OrdNbr": header.get("OrdNbr", " "),
              "BatNbr": bat_nbr, **audit}
    line_nbr = 0
    for line in lines:
        line_nbr += 1
        line_amount = line["CuryTranAmt"]
        ctx.store.insert(T.ARTRAN, {**common, **line, "LineNbr": line_nbr, "TranAmt": line_amount,
                                    "DrCr": "D" if doc_type in ("CM", "SB") else "C",
                                    "UnitPrice": line.get("CuryUnitPrice", 0.0)})
    for app in apps:
        line_nbr += 1
        ctx.store.insert(T.ARTRAN, {**common, "LineNbr": line_nbr, "DrCr": "U", "CostType": app["AdjdDocType"],
                                    "SiteId": app["AdjdRefNbr"], "TranAmt": app["CuryAdjgAmt"],
                                    "CuryTranAmt": app["CuryAdjgAmt"], "TranDesc": header.get("DocDesc", " ")})
    entered = {"DocType": doc_type, "RefNbr": header["RefNbr"], "BatNbr": bat_nbr}
    if release:
        release_batch(ctx, bat_nbr)
        if credits:
            apply_credits(ctx, entered, credits)
    return entered


def _order_of(ctx: Ctx, header: dict[str, Any], doc_type: str, amount: Decimal,
              apps: Sequence[Mapping[str, Any]], credits: Sequence[Mapping[str, Any]]) -> None:
    """The order a document belongs to: the one it names (which must exist), else the order of the first
    document it is applied to or paid by; ``CustOrdNbr`` follows from the order. A gateway fills these so a
    receipt or memo carries the merchant's order reference the gateway knows it by."""
    if header.get("OrdNbr", " ") != " ":
        if doc_type == "PP":
            _check_prepaid_order(ctx, header["CustId"], header["OrdNbr"], amount)
        elif ctx.store.one("SELECT 1 FROM SOHeader WHERE CpnyID = ? AND OrdNbr = ?",
                           (ctx.company.cpny, header["OrdNbr"])) is None:
            raise invalid("ARDoc", "OrdNbr", f"sales order {header['OrdNbr']} does not exist", code="UnknownOrder")
    else:
        linked = [(a["AdjdDocType"], a["AdjdRefNbr"]) for a in apps]
        linked += [(c["AdjgDocType"], c["AdjgRefNbr"]) for c in credits]
        for linked_type, linked_ref in linked:
            row = document(ctx, linked_type, linked_ref)
            if row is not None and row["OrdNbr"] != " ":
                header["OrdNbr"] = row["OrdNbr"]
                if header.get("CustOrdNbr", " ") == " " and row["CustOrdNbr"] != " ":
                    header["CustOrdNbr"] = row["CustOrdNbr"]
                break
    header.update(order_refs(ctx, header))


def _default_lines(ctx: Ctx, customer: Any, doc_type: str, amount: Decimal,
                   lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if doc_type == "SB":
        ar = ctx.store.one("SELECT DfltSBWOAcct, DfltSBWOSub FROM ARSetup WHERE CpnyID = ?", (ctx.company.cpny,))
        assert ar is not None
        acct, sub = ar["DfltSBWOAcct"], ar["DfltSBWOSub"]
    else:
        acct, sub = customer["SlsAcct"], customer["SlsSub"]
    if not lines:
        lines = [{"CuryTranAmt": to_db_money(amount)}]
    total = Decimal(0)
    for i, line in enumerate(lines):
        line.setdefault("Acct", acct)
        line.setdefault("Sub", sub)
        if "CuryTranAmt" not in line:
            raise invalid("ARTran", f"Lines[{i}].CuryTranAmt", "is required", code="Required")
        line_amount = money(ctx, line["CuryTranAmt"])
        if line_amount <= 0:
            raise invalid("ARTran", f"Lines[{i}].CuryTranAmt", "line amounts are positive",
                          code="NonPositiveAmount")
        total += line_amount
        try:
            check_account(ctx, "ARTran", "Acct", "Sub", line["Acct"], line["Sub"])
        except SLError as exc:
            exc.field = f"Lines[{i}].{exc.field}"
            raise
    if total != amount:
        raise invalid("ARDoc", "CuryOrigDocAmt", f"document amount {amount} differs from its lines' total {total}",
                      code="OutOfBalance")
    return lines


def _check_prepaid_order(ctx: Ctx, cust_id: str, ord_nbr: str, amount: Decimal) -> None:
    order = ctx.store.one("SELECT * FROM SOHeader WHERE CpnyID = ? AND OrdNbr = ?", (ctx.company.cpny, ord_nbr))
    if order is None:
        raise invalid("ARDoc", "OrdNbr", f"sales order {ord_nbr} does not exist", code="UnknownOrder")
    if order["CustID"] != cust_id:
        raise invalid("ARDoc", "OrdNbr", f"sales order {ord_nbr} belongs to customer {order['CustID'].strip()}",
                      code="InvalidApplication")
    if order["Cancelled"]:
        raise invalid("ARDoc", "OrdNbr", f"sales order {ord_nbr} is cancelled", code="OrderCancelled")
    if order["InvcNbr"] != " ":
        raise invalid("ARDoc", "OrdNbr", f"sales order {ord_nbr} is already invoiced ({order['InvcNbr'].strip()});"
                      " apply the payment to the invoice", code="OrderInvoiced")
    due = money(ctx, order["CuryBalDue"])
    if amount > due:
        raise invalid("ARDoc", "CuryOrigDocAmt", f"prepayment {amount} exceeds the order's balance due {due}",
                      code="ApplicationExceedsBalance")


# ---- release (08.400) -----------------------------------------------------------------------------------


def release_batch(ctx: Ctx, bat_nbr: str) -> None:
    batch = ctx.store.one("SELECT * FROM Batch WHERE CpnyID = ? AND Module = 'AR' AND BatNbr = ?",
                          (ctx.company.cpny, bat_nbr))
    if batch is None:
        raise not_found("Batch", f"AR {bat_nbr}")
    if batch["Status"] != "B":
        state = {"H": "on hold", "U": "already released", "P": "already posted",
                 "C": "already released"}.get(batch["Status"], "not balanced")
        raise SLError(422, "InvalidBatchStatus", f"Batch AR {bat_nbr} is {state} (Status {batch['Status']})",
                      table="Batch", field="Status")
    gl = GLLines()
    for doc in ctx.store.all("SELECT * FROM ARDoc WHERE CpnyID = ? AND BatNbr = ? AND Rlsed = 0 ORDER BY BatSeq",
                             (ctx.company.cpny, bat_nbr)):
        _release_document(ctx, doc, gl)
    write_gl(ctx, "AR", bat_nbr, batch["JrnlType"], gl)
    ctx.store.update(T.BATCH, {"CpnyID": ctx.company.cpny, "Module": "AR", "BatNbr": bat_nbr},
                     {"Status": "U", "Rlsed": 1, **ctx.touched(RELEASE_PROG)})


def _release_document(ctx: Ctx, doc: Any, gl: GLLines) -> None:
    cpny, doc_type, ref_nbr, cust_id = ctx.company.cpny, doc["DocType"], doc["RefNbr"], doc["CustId"]
    customer = active_customer(ctx, "ARDoc", "CustId", cust_id, allow_hold=doc_type in CREDIT_TYPES)
    check_period(ctx, "ARDoc", "PerPost", doc["PerPost"], ctx.company.ar_period, "AR")
    amount = money(ctx, doc["CuryOrigDocAmt"])
    trans = ctx.store.all("SELECT * FROM ARTran WHERE CpnyID = ? AND TranType = ? AND RefNbr = ? ORDER BY LineNbr",
                          (cpny, doc_type, ref_nbr))
    meta = {"TranType": doc_type, "RefNbr": ref_nbr, "Id": cust_id, "TranDate": doc["DocDate"],
            "PerPost": doc["PerPost"], "TranDesc": doc["DocDesc"]}
    ar_acct, ar_sub = customer["ArAcct"], customer["ArSub"]
    zero = Decimal(0)
    balance = amount
    if doc_type == "CS":
        gl.add(doc["BankAcct"], doc["BankSub"], amount, zero, **meta)
    elif doc_type in DEBIT_TYPES:
        gl.add(ar_acct, ar_sub, amount, zero, **meta)
    for tran in trans:
        if tran["DrCr"] == "C":
            gl.add(tran["Acct"], tran["Sub"], zero, money(ctx, tran["CuryTranAmt"]), **meta)
        elif tran["DrCr"] == "D":
            gl.add(tran["Acct"], tran["Sub"], money(ctx, tran["CuryTranAmt"]), zero, **meta)
    if doc_type in ("PA", "PP"):
        gl.add(doc["BankAcct"], doc["BankSub"], amount, zero, **meta)
    if doc_type == "PP":
        gl.add(customer["PrePayAcct"], customer["PrePaySub"], zero, amount, **meta)
    elif doc_type in CREDIT_TYPES:
        gl.add(ar_acct, ar_sub, zero, amount, **meta)

    apps = [t for t in trans if t["DrCr"] == "U"]
    check_applications(ctx, cust_id, amount, [
        {"AdjdDocType": t["CostType"], "AdjdRefNbr": t["SiteId"], "CuryAdjgAmt": t["CuryTranAmt"]} for t in apps])
    closed_in = doc["PerPost"]
    for tran in apps:
        applied = money(ctx, tran["CuryTranAmt"])
        closed_in = max(closed_in, apply(ctx, doc, tran["CostType"], tran["SiteId"], applied, doc["BatNbr"]))
        balance -= applied
        if doc_type in APPLYING_TYPES:
            paid_order(ctx, tran["CostType"], tran["SiteId"], applied)
    if doc_type == "CS":
        balance = zero
    more: dict[str, Any] = {"Rlsed": 1}
    if apps:
        more.update(ApplBatNbr=doc["BatNbr"], ApplAmt=to_db_money(amount - balance),
                    CuryApplAmt=to_db_money(amount - balance))
    set_balance(ctx, doc, balance, closed_in, **more)
    ctx.store.conn.execute(
        "UPDATE ARTran SET Rlsed = 1, AcctDist = CASE WHEN DrCr IN ('D', 'C') THEN 1 ELSE 0 END "
        "WHERE CpnyID = ? AND TranType = ? AND RefNbr = ?", (cpny, doc_type, ref_nbr))
    balances(ctx, cust_id, doc_type, amount, doc["DocDate"])
    if doc_type == "PP" and doc["OrdNbr"] != " ":
        paid_order_nbr(ctx, doc["OrdNbr"], amount)


def apply_prepayments(ctx: Ctx, invoice: Mapping[str, Any]) -> None:
    """Invoicing an order consumes the prepayments received against it (SL applies a PP to the invoice
    through a payment-application batch, 08.030): ARAdjust PP -> IN, Dr prepayment / Cr AR."""
    cpny = ctx.company.cpny
    inv = document(ctx, invoice["DocType"], invoice["RefNbr"])
    assert inv is not None
    prepayments = ctx.store.all(
        "SELECT * FROM ARDoc WHERE CpnyID = ? AND DocType = 'PP' AND OrdNbr = ? AND CustId = ? AND Rlsed = 1 "
        "AND OpenDoc = 1 ORDER BY RefNbr", (cpny, inv["OrdNbr"], inv["CustId"]))
    if not prepayments:
        return
    customer = active_customer(ctx, "ARDoc", "CustId", inv["CustId"], allow_hold=True)  # applies credits
    bat_nbr = new_batch(ctx)
    open_balance = money(ctx, inv["CuryDocBal"])
    gl = GLLines()
    total = Decimal(0)
    for pp in prepayments:
        applied = min(money(ctx, pp["CuryDocBal"]), open_balance - total)
        if applied <= 0:
            break
        closed_in = apply(ctx, pp, "IN", inv["RefNbr"], applied, bat_nbr)
        set_balance(ctx, pp, money(ctx, pp["CuryDocBal"]) - applied, closed_in, ApplBatNbr=bat_nbr)
        meta = {"TranType": "PP", "RefNbr": pp["RefNbr"], "Id": pp["CustId"], "TranDate": inv["DocDate"],
                "PerPost": inv["PerPost"], "TranDesc": pp["DocDesc"]}
        gl.add(customer["PrePayAcct"], customer["PrePaySub"], applied, Decimal(0), **meta)
        gl.add(customer["ArAcct"], customer["ArSub"], Decimal(0), applied, **meta)
        total += applied
    row = ctx.store.one("SELECT TotPrePay FROM AR_Balances WHERE CpnyID = ? AND CustID = ?", (cpny, inv["CustId"]))
    if row is not None:
        ctx.store.update(T.AR_BALANCES, {"CpnyID": cpny, "CustID": inv["CustId"]},
                         {"TotPrePay": to_db_money(money(ctx, row["TotPrePay"]) - total)})
    insert_batch(ctx, bat_nbr, total=total, period=inv["PerPost"], screen="08030", status="U",
                 cury=inv["CuryId"], descr="Prepayment application")
    write_gl(ctx, "AR", bat_nbr, "AR", gl)


# ---- reads ----------------------------------------------------------------------------------------------


def read(ctx: Ctx, doc_type: str, ref_nbr: str) -> dict[str, Any]:
    cpny = ctx.company.cpny
    row = ctx.store.one("SELECT * FROM ARDoc WHERE CpnyID = ? AND DocType = ? AND RefNbr = ?",
                        (cpny, doc_type, ref_nbr))
    if row is None:
        raise not_found("ARDoc", f"{doc_type} {ref_nbr}")
    record = ctx.out(T.ARDOC, row)
    record["Note"] = note_text(ctx, row["NoteId"])
    record["Lines"] = [ctx.out(T.ARTRAN, t) for t in ctx.store.all(
        "SELECT * FROM ARTran WHERE CpnyID = ? AND TranType = ? AND RefNbr = ? ORDER BY LineNbr",
        (cpny, doc_type, ref_nbr))]
    record["Adjustments"] = [ctx.out(T.ARADJUST, a) for a in ctx.store.all(
        "SELECT * FROM ARAdjust WHERE CpnyID = ? AND ((AdjgDocType = ? AND AdjgRefNbr = ?) OR "
        "(AdjdDocType = ? AND AdjdRefNbr = ?)) ORDER BY RecordID", (cpny, doc_type, ref_nbr, doc_type, ref_nbr))]
    return record


def get(ctx: Ctx, doc_type: str, ref_nbr: str) -> tuple[int, Any]:
    return 200, read(ctx, doc_type, ref_nbr)


def search(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    rows = list_query(ctx, T.ARDOC, query, {"CpnyID": ctx.company.cpny})
    return 200, {"value": [ctx.out(T.ARDOC, r) for r in rows]}


def adjustments(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    rows = list_query(ctx, T.ARADJUST, query, {"CpnyID": ctx.company.cpny})
    return 200, {"value": [ctx.out(T.ARADJUST, r) for r in rows]}


def release(ctx: Ctx, bat_nbr: str) -> tuple[int, Any]:
    """``POST ar/batches/{BatNbr}/release``: release a batch entered with ``"Release": false``."""
    release_batch(ctx, bat_nbr)
    row = ctx.store.one("SELECT * FROM Batch WHERE CpnyID = ? AND Module = 'AR' AND BatNbr = ?",
                        (ctx.company.cpny, bat_nbr))
    return 200, ctx.out(T.BATCH, row)

