"""Reversing a released payment with an ``NS`` document (08.240 Reversals, released by 08.400).

Modelled on SL's own release step for NSF reversals (``pp_08400CreateTransRev``):

* the ``NS`` keeps the payment's ``RefNbr`` and names the payment in ``S4Future12`` (DocType) and
  ``S4Future02`` (RefNbr); it is entered in its own batch (``EditScrnNbr 08240``);
* every application of the payment is backed out by an ``ARAdjust`` row with negated amounts (in the
  reversal batch, ``S4Future11`` = the original application batch, ``S4Future12 = 'NS'``), and the original
  rows are marked the same way, so the invoices they paid are open again;
* one new ``ARAdjust`` applies the payment to the ``NS`` for its whole amount, so the payment and the
  ``NS`` both end at zero (``CuryOrigDocAmt - SUM(CuryAdjgAmt) = CuryDocBal`` still holds on each);
* the payment gets ``S4Future02/11/12`` = the NS RefNbr, batch and DocType: that is how a second reversal
  is refused;
* GL: what the payment posted, the other way round (PA: Dr AR / Cr cash; PP: Dr AR for what had been
  applied, Dr prepayments for the rest / Cr cash); the customer owes the amount again (``CurrBal`` up).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.ardocs import created
from ledgerlink.connectors.dynamics_sl.sandbox.common import (
    Ctx,
    add_note,
    check_period,
    claim_key,
    fields_in,
)
from ledgerlink.connectors.dynamics_sl.sandbox.customers import active_customer
from ledgerlink.connectors.dynamics_sl.sandbox.effects import (
    GLLines,
    apply,
    balances,
    document,
    insert_batch,
    money,
    new_batch,
    paid_order,
    paid_order_nbr,
    set_balance,
    write_gl,
)
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid, not_found
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date, stored_date, to_db_money

PROG = "08240"
REVERSIBLE = ("PA", "PP")
REVERSED_BY = ("NS", "RP")  # S4Future12 on a payment a reversal or reclassification took back
FIELDS = frozenset({"DocDate", "PerPost", "DocDesc", "User1", "User3", "User4", "User5", "User6", "User7",
                    "User8"})


def reverse(ctx: Ctx, doc_type: str, ref_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST ar/documents/{DocType}/{RefNbr}/reverse``: an ``NS`` that takes the payment back, released."""
    key = claim_key(ctx, T.ARDOC)
    values = fields_in(ctx, T.ARDOC, body, FIELDS, ignore=("Note",))
    payment = _reversible(ctx, doc_type, ref_nbr)
    customer = active_customer(ctx, "ARDoc", "CustId", payment["CustId"])
    doc_date = stored_date(values.pop("DocDate", T.NO_DATE)) or ctx.now.date()
    period = values.pop("PerPost", None) or ctx.company.period_of(doc_date)
    check_period(ctx, "ARDoc", "PerPost", period, ctx.company.ar_period, "AR")
    if document(ctx, "NS", ref_nbr) is not None:
        raise SLError(409, "DuplicateRecord", f"ARDoc NS:{ref_nbr} already exists", table="ARDoc", field="RefNbr",
                      existing={"table": "ARDoc", "id": f"NS:{ref_nbr}"})
    amount = money(ctx, payment["CuryOrigDocAmt"])
    bat_nbr = new_batch(ctx)
    stored = to_db_money(amount)
    ns = {
        **values, "CpnyID": ctx.company.cpny, "CustId": payment["CustId"], "DocType": "NS", "RefNbr": ref_nbr,
        "BatNbr": bat_nbr, "BatSeq": 0, "DocDate": db_date(doc_date), "CuryEffDate": db_date(doc_date),
        "DocDesc": values.get("DocDesc") or f"Reversal of {doc_type} {ref_nbr}", "OrigDocAmt": stored,
        "CuryOrigDocAmt": stored, "DocBal": stored, "CuryDocBal": stored, "CuryId": payment["CuryId"],
        "CuryRate": 1.0, "CuryMultDiv": "M", "PerPost": period, "PerEnt": ctx.company.ar_period, "Rlsed": 1,
        "OpenDoc": 1, "Status": "A", "DocClass": "N", "OrdNbr": payment["OrdNbr"],
        "CustOrdNbr": payment["CustOrdNbr"], "BankAcct": payment["BankAcct"], "BankSub": payment["BankSub"],
        "S4Future02": ref_nbr, "S4Future12": doc_type, T.KEY_FIELD: key, **ctx.audit(PROG),
    }
    if body.get("Note"):
        ns["NoteId"] = add_note(ctx, "ARDoc", str(body["Note"]))
    ctx.store.insert(T.ARDOC, ns)

    applied = _back_out_applications(ctx, payment, bat_nbr, period)
    if doc_type == "PP" and payment["OrdNbr"] != " ":
        paid_order_nbr(ctx, payment["OrdNbr"], -amount)
    payment = document(ctx, doc_type, ref_nbr)  # its balance changed above
    closed_in = apply(ctx, payment, "NS", ref_nbr, amount, bat_nbr, prog=PROG, period=period)
    set_balance(ctx, payment, Decimal(0), closed_in, S4Future02=ref_nbr, S4Future11=bat_nbr, S4Future12="NS")

    meta = {"TranType": "NS", "RefNbr": ref_nbr, "Id": payment["CustId"], "TranDate": db_date(doc_date),
            "PerPost": period, "TranDesc": ns["DocDesc"][:30]}
    gl = GLLines()
    zero = Decimal(0)
    if doc_type == "PA":
        gl.add(customer["ArAcct"], customer["ArSub"], amount, zero, **meta)
    else:
        if applied:
            gl.add(customer["ArAcct"], customer["ArSub"], applied, zero, **meta)
        if amount - applied:
            gl.add(customer["PrePayAcct"], customer["PrePaySub"], amount - applied, zero, **meta)
    gl.add(payment["BankAcct"], payment["BankSub"], zero, amount, **meta)
    balances(ctx, payment["CustId"], "NS", amount, db_date(doc_date),
             prepaid_change=-(amount - applied) if doc_type == "PP" else None)
    insert_batch(ctx, bat_nbr, total=amount, period=period, screen=PROG, status="U", cury=payment["CuryId"],
                 descr=ns["DocDesc"][:30], BankAcct=payment["BankAcct"], BankSub=payment["BankSub"])
    write_gl(ctx, "AR", bat_nbr, "AR", gl)
    return 201, created(ctx, {"DocType": "NS", "RefNbr": ref_nbr, "BatNbr": bat_nbr})


def _reversible(ctx: Ctx, doc_type: str, ref_nbr: str) -> Any:
    payment = document(ctx, doc_type, ref_nbr)
    if payment is None:
        raise not_found("ARDoc", f"{doc_type} {ref_nbr}")
    if doc_type not in REVERSIBLE:
        raise invalid("ARDoc", "DocType", f"{doc_type} {ref_nbr} is not a payment; an NS reverses a PA or PP",
                      code="InvalidReversal")
    if not payment["Rlsed"]:
        raise invalid("ARDoc", "Rlsed", f"{doc_type} {ref_nbr} is not released; delete or edit its batch instead "
                      "of reversing it", code="NotReleased")
    if payment["S4Future12"] in REVERSED_BY:
        raise invalid("ARDoc", "S4Future12", f"{doc_type} {ref_nbr} was already reversed by "
                      f"{payment['S4Future12'].strip()} {payment['S4Future02'].strip()} (batch "
                      f"{payment['S4Future11'].strip()})", code="AlreadyReversed")
    return payment


def _back_out_applications(ctx: Ctx, payment: Any, bat_nbr: str, period: str) -> Decimal:
    """Negate every live application of the payment and open its invoices again; returns the amount backed out."""
    rows = ctx.store.all(
        "SELECT * FROM ARAdjust WHERE CustId = ? AND AdjgDocType = ? AND AdjgRefNbr = ? AND CpnyID = ? "
        "AND S4Future12 = ' ' ORDER BY RecordID",
        (payment["CustId"], payment["DocType"], payment["RefNbr"], ctx.company.cpny))
    total = Decimal(0)
    audit = ctx.audit(PROG)
    for row in rows:
        amount = money(ctx, row["AdjAmt"])
        negated = dict(row)
        del negated["RecordID"]
        for name in ("AdjAmt", "CuryAdjgAmt", "CuryAdjdAmt"):
            negated[name] = -row[name]
        negated.update(AdjBatNbr=bat_nbr, DateAppl=db_date(ctx.now.date()), PerAppl=period,
                       S4Future11=row["AdjBatNbr"], S4Future12="NS", **audit)
        ctx.store.insert(T.ARADJUST, negated)
        ctx.store.update(T.ARADJUST, {"RecordID": row["RecordID"]},
                         {"S4Future11": bat_nbr, "S4Future12": "NS", **ctx.touched(PROG)})
        adjd = document(ctx, row["AdjdDocType"], row["AdjdRefNbr"])
        assert adjd is not None
        set_balance(ctx, adjd, money(ctx, adjd["CuryDocBal"]) + amount, period)
        if payment["DocType"] == "PA":
            paid_order(ctx, row["AdjdDocType"], row["AdjdRefNbr"], -amount)
        total += amount
    return total
