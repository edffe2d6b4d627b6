"""Sales orders (Order Management, 40.100): entry with autonumbering from ``SOType``, administrative
hold and release, cancellation, and invoicing into AR (the Sales Journal's ``OM`` batch, spec A.10)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import ardocs
from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.common import (
    Ctx,
    add_note,
    append_note,
    check_account,
    check_currency,
    claim_key,
    fields_in,
    list_query,
    next_number,
    note_text,
    set_note,
)
from ledgerlink.connectors.dynamics_sl.sandbox.customers import active_customer
from ledgerlink.connectors.dynamics_sl.sandbox.effects import money
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid, not_found
from ledgerlink.connectors.dynamics_sl.sandbox.store import (
    QTY_DECPL,
    db_date,
    round_money,
    stored_date,
    to_db_money,
)
from ledgerlink.connectors.dynamics_sl.userfields import (
    ORDER_PAYMENT_STATUS_DATE_FIELD,
    ORDER_PAYMENT_STATUS_FIELD,
    ORDER_PAYMENT_STATUSES,
    PAID_AGAIN,
)

PROG = "40100"
HEADER_FIELDS = frozenset({
    "CustID", "SOTypeID", "OrdDate", "CustOrdNbr", "ShiptoID", "ShipName", "ShipAddr1", "ShipAddr2", "ShipCity",
    "ShipState", "ShipZip", "ShipCountry", "BillName", "BillAddr1", "BillAddr2", "BillCity", "BillState",
    "BillZip", "BillCountry", "TermsID", "SlsperID", "CuryID", "AuthNbr", "AdminHold", "User1", "User3",
    "User4", "User5", "User6", "User7", "User9",
})  # User8/User10 hold the payment status (userfields.py), set through POST salesorders/{OrdNbr}/payment-status
LINE_FIELDS = frozenset({"InvtID", "Descr", "QtyOrd", "SlsPrice", "CurySlsPrice", "UnitDesc", "SiteID", "TaxCat",
                         "Taxable", "SlsAcct", "SlsSub", "ReqDate", "PromDate", "User1", "User2", "User3",
                         "User4", "User5", "User6", "User7", "User8", "User9", "User10"})
INVOICE_FIELDS = frozenset({"DocDate", "PerPost", "DocDesc", "RefNbr", "CuryOrigDocAmt"})


def create(ctx: Ctx, body: Mapping[str, Any]) -> tuple[int, Any]:
    key = claim_key(ctx, T.SOHEADER)
    header = fields_in(ctx, T.SOHEADER, body, HEADER_FIELDS, ignore=("Lines", "Note"))
    if header.get("CustID", " ") == " ":
        raise invalid("SOHeader", "CustID", "is required", code="Required")
    customer = active_customer(ctx, "SOHeader", "CustID", header["CustID"])
    type_id = header.setdefault("SOTypeID", ctx.settings.order_type)
    so_type = ctx.store.one("SELECT * FROM SOType WHERE CpnyID = ? AND SOTypeID = ?", (ctx.company.cpny, type_id))
    if so_type is None or not so_type["Active"]:
        raise invalid("SOHeader", "SOTypeID", f"order type {type_id!r} is not an active SOType", code="UnknownType")
    if header.get("AdminHold", 0) not in (0, 1):
        raise invalid("SOHeader", "AdminHold", "is 0 or 1")
    cury = header.setdefault("CuryID", ctx.company.base_cury)
    check_currency(ctx, "SOHeader", "CuryID", cury)
    raw_lines = body.get("Lines")
    if not isinstance(raw_lines, list) or not raw_lines or not all(isinstance(x, dict) for x in raw_lines):
        raise invalid("SOLine", "Lines", "an order needs at least one line", code="Required")
    lines = [_line(ctx, customer, i, raw) for i, raw in enumerate(raw_lines)]
    total = sum((money(ctx, line["TotOrd"]) for line in lines), Decimal(0))

    ord_nbr = so_type["OrdNbrPrefix"].strip() + next_number(so_type["LastOrdNbr"])
    if len(ord_nbr) > 15:
        raise SLError(500, "NumberingExhausted", f"SOType {type_id} numbering overflows OrdNbr CHAR(15)",
                      table="SOType", field="LastOrdNbr")
    ctx.store.update(T.SOTYPE, {"CpnyID": ctx.company.cpny, "SOTypeID": type_id},
                     {"LastOrdNbr": ord_nbr[len(so_type["OrdNbrPrefix"].strip()):]})
    order_date = header.get("OrdDate") or db_date(ctx.now.date())
    stored_total = to_db_money(total)
    audit = ctx.audit(PROG)
    values = {
        **header, "CpnyID": ctx.company.cpny, "OrdNbr": ord_nbr, "Status": "O", "OrdDate": order_date,
        "TermsID": header.get("TermsID", customer["Terms"]), "CuryRate": 1.0, "ARAcct": customer["ArAcct"],
        "ARSub": customer["ArSub"], "TotMerch": stored_total, "CuryTotMerch": stored_total, "TotOrd": stored_total,
        "CuryTotOrd": stored_total, "BalDue": stored_total, "CuryBalDue": stored_total,
        "UnshippedBalance": stored_total, "LineCntr": len(lines),
        "PerPost": ctx.company.period_of(stored_date(order_date) or ctx.now.date()),
        "NextFunctionID": "4010000", "NextFunctionClass": "0100", T.KEY_FIELD: key, **audit,
    }
    if body.get("Note"):
        values["NoteId"] = add_note(ctx, "SOHeader", str(body["Note"]))
    ctx.store.insert(T.SOHEADER, values)
    for number, line in enumerate(lines, start=1):
        ctx.store.insert(T.SOLINE, {**line, "CpnyID": ctx.company.cpny, "OrdNbr": ord_nbr,
                                    "LineRef": f"{number:05d}", "LineNbr": number, "Status": "O", **audit})
    _open_orders(ctx, header["CustID"], total)
    if ctx.minimal:
        return 201, {"OrdNbr": ord_nbr, "CustID": header["CustID"], "Status": "O", "TotOrd": f"{total}"}
    return 201, read(ctx, ord_nbr)


def _line(ctx: Ctx, customer: Any, index: int, raw: Mapping[str, Any]) -> dict[str, Any]:
    where = f"Lines[{index}]"
    try:
        line = fields_in(ctx, T.SOLINE, raw, LINE_FIELDS)
        if line.get("InvtID", " ") == " ":
            raise invalid("SOLine", "InvtID", "is required", code="Required")
        line.setdefault("SlsAcct", customer["SlsAcct"])
        line.setdefault("SlsSub", customer["SlsSub"])
        check_account(ctx, "SOLine", "SlsAcct", "SlsSub", line["SlsAcct"], line["SlsSub"])
    except SLError as exc:
        exc.field = f"{where}.{exc.field}"
        raise
    quantity = round_money(Decimal(repr(line.get("QtyOrd", 0.0))), QTY_DECPL)
    if quantity <= 0:
        raise invalid("SOLine", f"{where}.QtyOrd", "must be positive", code="InvalidQuantity")
    price = money(ctx, line.get("SlsPrice", line.get("CurySlsPrice", 0.0)))
    if price < 0:
        raise invalid("SOLine", f"{where}.SlsPrice", "must not be negative", code="InvalidAmount")
    line_total = to_db_money(round_money(quantity * price, ctx.company.decpl))
    stored_price = to_db_money(price)
    line.update(SlsPrice=stored_price, CurySlsPrice=stored_price, TotOrd=line_total, CuryTotOrd=line_total,
                QtyOpenShip=line["QtyOrd"], QtyToInvc=line["QtyOrd"])
    return line


def _open_orders(ctx: Ctx, cust_id: str, change: Decimal) -> None:
    row = ctx.store.one("SELECT TotOpenOrd FROM AR_Balances WHERE CpnyID = ? AND CustID = ?",
                        (ctx.company.cpny, cust_id))
    if row is not None:
        ctx.store.update(T.AR_BALANCES, {"CpnyID": ctx.company.cpny, "CustID": cust_id},
                         {"TotOpenOrd": to_db_money(money(ctx, row["TotOpenOrd"]) + change)})


def _order(ctx: Ctx, ord_nbr: str) -> Any:
    row = ctx.store.one("SELECT * FROM SOHeader WHERE CpnyID = ? AND OrdNbr = ?", (ctx.company.cpny, ord_nbr))
    if row is None:
        raise not_found("SOHeader", ord_nbr)
    return row


def _open(order: Any, action: str) -> None:
    if order["Cancelled"]:
        raise SLError(422, "OrderCancelled", f"sales order {order['OrdNbr'].strip()} is cancelled; cannot {action}",
                      table="SOHeader", field="Status")
    if order["Status"] != "O":
        raise SLError(422, "OrderClosed", f"sales order {order['OrdNbr'].strip()} is closed (invoiced); cannot "
                      f"{action}", table="SOHeader", field="Status")


def hold(ctx: Ctx, ord_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """Administrative hold ("On Hold"); the reason goes in the order's note. Holding twice is harmless."""
    order = _order(ctx, ord_nbr)
    _open(order, "hold it")
    reason = body.get("reason") or body.get("Reason") or "On hold"
    if not isinstance(reason, str):
        raise invalid("SOHeader", "reason", "must be text")
    where = {"CpnyID": ctx.company.cpny, "OrdNbr": ord_nbr}
    ctx.store.update(T.SOHEADER, where, {"AdminHold": 1, **ctx.touched(PROG)})
    set_note(ctx, T.SOHEADER, where, order["NoteId"], reason)
    return 200, read(ctx, ord_nbr)


def release(ctx: Ctx, ord_nbr: str) -> tuple[int, Any]:
    order = _order(ctx, ord_nbr)
    _open(order, "release its hold")
    ctx.store.update(T.SOHEADER, {"CpnyID": ctx.company.cpny, "OrdNbr": ord_nbr},
                     {"AdminHold": 0, **ctx.touched(PROG)})
    return 200, read(ctx, ord_nbr)


def cancel(ctx: Ctx, ord_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """WS_CANCELSALESORDER: header Status C, Cancelled 1, CancelDate; lines C. Cancelling twice is harmless."""
    order = _order(ctx, ord_nbr)
    if order["Cancelled"]:
        return 200, read(ctx, ord_nbr)
    _open(order, "cancel it")
    today = db_date(ctx.now.date())
    where = {"CpnyID": ctx.company.cpny, "OrdNbr": ord_nbr}
    ctx.store.update(T.SOHEADER, where, {"Status": "C", "Cancelled": 1, "CancelDate": today,
                                         "DateCancelled": today, "UnshippedBalance": 0.0, **ctx.touched(PROG)})
    ctx.store.conn.execute("UPDATE SOLine SET Status = 'C' WHERE CpnyID = ? AND OrdNbr = ?",
                           (ctx.company.cpny, ord_nbr))
    reason = body.get("reason") or body.get("Reason")
    if isinstance(reason, str) and reason:
        set_note(ctx, T.SOHEADER, where, order["NoteId"], reason)
    _open_orders(ctx, order["CustID"], -money(ctx, order["TotOrd"]))
    return 200, read(ctx, ord_nbr)


def payment_status(ctx: Ctx, ord_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST salesorders/{OrdNbr}/payment-status`` ``{"Status": "PARTREFUND"|"REFUNDED"|"DISPUTED"|"PAID", "reason"}``.

    What happened to the order's money after it was paid, in ``SOHeader.User8`` (the day in ``User10``) and
    as a line of the order's note. Setting the status it already has changes nothing (a retry). A disputed
    order that is still open is also put on administrative hold, so nobody ships it while the issuer has
    the money back; invoiced or cancelled orders keep their status and only show the flag.
    """
    order = _order(ctx, ord_nbr)
    status = body.get("Status")
    codes = sorted({*ORDER_PAYMENT_STATUSES.values(), PAID_AGAIN})
    if not isinstance(status, str) or status.strip() not in codes:
        raise invalid("SOHeader", ORDER_PAYMENT_STATUS_FIELD, f"{status!r} is not a payment status "
                      f"({', '.join(codes)})", code="InvalidStatus")
    status = status.strip()
    reason = body.get("reason") or body.get("Reason") or ""
    if not isinstance(reason, str):
        raise invalid("SOHeader", "reason", "must be text")
    if order[ORDER_PAYMENT_STATUS_FIELD] == status:
        return 200, read(ctx, ord_nbr)
    where = {"CpnyID": ctx.company.cpny, "OrdNbr": ord_nbr}
    today = db_date(ctx.now.date())
    values: dict[str, Any] = {ORDER_PAYMENT_STATUS_FIELD: status, ORDER_PAYMENT_STATUS_DATE_FIELD: today}
    if status == ORDER_PAYMENT_STATUSES["disputed"] and order["Status"] == "O" and not order["Cancelled"]:
        values["AdminHold"] = 1
    if status == PAID_AGAIN and (order["Cancelled"] or money(ctx, order["BalDue"]) != 0):
        raise invalid("SOHeader", "BalDue", f"sales order {ord_nbr} is not paid (BalDue "
                      f"{money(ctx, order['BalDue'])}); apply the receipt first", code="NotPaid")
    ctx.store.update(T.SOHEADER, where, {**values, **ctx.touched(PROG)})
    line = f"{ctx.codec.date_out(today)} payment status {status}" + (f": {reason.strip()}" if reason.strip() else "")
    append_note(ctx, T.SOHEADER, where, order["NoteId"], line)
    return 200, read(ctx, ord_nbr)


def invoice(ctx: Ctx, ord_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """Invoice the whole order: an ``IN`` with ``OrdNbr`` set, released in an ``OM`` batch; prepayments
    received against the order are applied to it."""
    claim_key(ctx, T.ARDOC)
    order = _order(ctx, ord_nbr)
    if order["InvcNbr"] != " ":
        existing = f"IN:{order['InvcNbr'].strip()}"
        raise SLError(409, "AlreadyInvoiced", f"sales order {ord_nbr} is already invoiced as {existing}",
                      table="SOHeader", field="InvcNbr", existing={"table": "ARDoc", "id": existing})
    _open(order, "invoice it")
    if order["AdminHold"]:
        raise SLError(422, "OrderOnHold", f"sales order {ord_nbr} is on hold; release it before invoicing",
                      table="SOHeader", field="AdminHold")
    values = fields_in(ctx, T.ARDOC, body, INVOICE_FIELDS)
    total = money(ctx, order["TotOrd"])
    if "CuryOrigDocAmt" in values and money(ctx, values["CuryOrigDocAmt"]) != total:
        raise invalid("ARDoc", "CuryOrigDocAmt", f"{money(ctx, values['CuryOrigDocAmt'])} differs from the "
                      f"order total {total}", code="AmountMismatch")
    if total <= 0:
        raise invalid("SOHeader", "TotOrd", "a zero-value order has nothing to invoice", code="NonPositiveAmount")
    lines = [{"Acct": line["SlsAcct"], "Sub": line["SlsSub"], "CuryTranAmt": line["TotOrd"],
              "TranDesc": line["Descr"][:30].rstrip() or " ", "InvtId": line["InvtID"], "Qty": line["QtyOrd"],
              "CuryUnitPrice": line["SlsPrice"], "LineRef": line["LineRef"]}
             for line in ctx.store.all("SELECT * FROM SOLine WHERE CpnyID = ? AND OrdNbr = ? ORDER BY LineNbr",
                                       (ctx.company.cpny, ord_nbr)) if line["TotOrd"] > 0]
    header = {"DocDesc": f"Order {ord_nbr}", **values, "CustId": order["CustID"], "DocType": "IN",
              "CuryOrigDocAmt": order["TotOrd"], "OrdNbr": ord_nbr, "CustOrdNbr": order["CustOrdNbr"],
              "Terms": order["TermsID"], "SlsperId": order["SlsperID"]}
    doc = ardocs.enter(ctx, header, lines, [], jrnl_type="OM")
    ardocs.apply_prepayments(ctx, doc)
    inv = ctx.store.one("SELECT DocDate FROM ARDoc WHERE CpnyID = ? AND DocType = 'IN' AND RefNbr = ?",
                        (ctx.company.cpny, doc["RefNbr"]))
    assert inv is not None
    ctx.store.update(T.SOHEADER, {"CpnyID": ctx.company.cpny, "OrdNbr": ord_nbr}, {
        "InvcNbr": doc["RefNbr"], "InvcDate": inv["DocDate"], "Status": "C", "UnshippedBalance": 0.0,
        **ctx.touched(PROG)})
    ctx.store.conn.execute("UPDATE SOLine SET Status = 'C', QtyShip = QtyOrd, QtyOpenShip = 0, QtyToInvc = 0 "
                           "WHERE CpnyID = ? AND OrdNbr = ?", (ctx.company.cpny, ord_nbr))
    _open_orders(ctx, order["CustID"], -total)
    return 201, ardocs.created(ctx, doc)


def read(ctx: Ctx, ord_nbr: str) -> dict[str, Any]:
    order = _order(ctx, ord_nbr)
    record = ctx.out(T.SOHEADER, order)
    record["Note"] = note_text(ctx, order["NoteId"])
    record["Lines"] = [ctx.out(T.SOLINE, line) for line in ctx.store.all(
        "SELECT * FROM SOLine WHERE CpnyID = ? AND OrdNbr = ? ORDER BY LineNbr", (ctx.company.cpny, ord_nbr))]
    return record


def get(ctx: Ctx, ord_nbr: str) -> tuple[int, Any]:
    return 200, read(ctx, ord_nbr)


def search(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    rows = list_query(ctx, T.SOHEADER, query, {"CpnyID": ctx.company.cpny})
    return 200, {"value": [ctx.out(T.SOHEADER, r) for r in rows]}
