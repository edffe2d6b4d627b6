"""What releasing an AR document does to other rows: applications (``ARAdjust``) and the balances they move,
the customer's ``AR_Balances``, the originating sales order's payment totals, and the GL lines of the batch.

Entry (``ardocs``), payment application of existing credits (``applications``) and reversals
(``reversals``) all go through these, so every path keeps the same invariants:
``CuryOrigDocAmt - SUM(CuryAdjgAmt) = CuryDocBal`` for an adjusting document, the adjusted document's
balance falls by what is applied to it, ``OpenDoc``/``PerClosed`` follow the balance, and a GL batch's
debits equal its credits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.common import Ctx, next_number
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date, from_db_money, to_db_money

DEBIT_TYPES = frozenset({"IN", "DM", "FI", "CS", "NC", "SC"})  # raise what the customer owes (CS nets to 0)
CREDIT_TYPES = frozenset({"PA", "PP", "CM", "SB"})  # lower it
REVERSAL_TYPES = frozenset({"NS"})  # take a payment back: raise it again
RELEASE_PROG = "08400"


@dataclass
class GLLines:
    """The GL transactions one release writes into its batch."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, acct: str, sub: str, debit: Decimal, credit: Decimal, **extra: Any) -> None:
        self.rows.append({"Acct": acct, "Sub": sub, "DrAmt": debit, "CrAmt": credit, **extra})

    def totals(self) -> tuple[Decimal, Decimal]:
        return (sum((r["DrAmt"] for r in self.rows), Decimal(0)), sum((r["CrAmt"] for r in self.rows), Decimal(0)))


def money(ctx: Ctx, value: float) -> Decimal:
    return from_db_money(value, ctx.company.decpl)


def doc_key(doc: Any) -> dict[str, Any]:
    return {"CustId": doc["CustId"], "DocType": doc["DocType"], "RefNbr": doc["RefNbr"], "BatNbr": doc["BatNbr"],
            "BatSeq": doc["BatSeq"]}


def document(ctx: Ctx, doc_type: str, ref_nbr: str) -> Any | None:
    return ctx.store.one("SELECT * FROM ARDoc WHERE CpnyID = ? AND DocType = ? AND RefNbr = ?",
                         (ctx.company.cpny, doc_type, ref_nbr))


def apply(ctx: Ctx, adjg: Any, adjd_type: str, adjd_ref: str, applied: Decimal, bat_nbr: str, *,
          prog: str = RELEASE_PROG, period: str | None = None) -> str:
    """One application (pp_08400InsertARAdjust): an ARAdjust row and the adjusted document's lower balance.
    Returns the period the adjusted document closed in (or the application period)."""
    adjd = document(ctx, adjd_type, adjd_ref)
    assert adjd is not None  # the caller checked it
    applied_in = period or adjg["PerPost"]
    stored = to_db_money(applied)
    ctx.store.insert(T.ARADJUST, {
        "CpnyID": ctx.company.cpny, "CustId": adjg["CustId"], "AdjgDocType": adjg["DocType"],
        "AdjgRefNbr": adjg["RefNbr"], "AdjdDocType": adjd_type, "AdjdRefNbr": adjd_ref, "AdjAmt": stored,
        "CuryAdjgAmt": stored, "CuryAdjdAmt": stored, "CuryAdjdCuryId": adjd["CuryId"], "CuryAdjdRate": 1.0,
        "CuryAdjdMultDiv": "M", "AdjBatNbr": bat_nbr, "AdjgDocDate": adjg["DocDate"],
        "AdjgPerPost": adjg["PerPost"], "DateAppl": db_date(ctx.now.date()), "PerAppl": applied_in,
        **ctx.audit(prog),
    })
    closed_in = max(adjd["PerPost"], applied_in)
    set_balance(ctx, adjd, money(ctx, adjd["CuryDocBal"]) - applied, closed_in)
    return closed_in


def set_balance(ctx: Ctx, doc: Any, balance: Decimal, closed_in: str, **more: Any) -> None:
    """A document's open balance; at zero it is closed (``OpenDoc 0``, ``PerClosed``), above zero open again."""
    values: dict[str, Any] = {"DocBal": to_db_money(balance), "CuryDocBal": to_db_money(balance),
                              **more, **ctx.touched(RELEASE_PROG)}
    if balance == 0:
        values.update(OpenDoc=0, PerClosed=closed_in)
    else:
        values.update(OpenDoc=1, PerClosed=" ")
    ctx.store.update(T.ARDOC, doc_key(doc), values)


def paid_order(ctx: Ctx, adjd_type: str, adjd_ref: str, applied: Decimal) -> None:
    """A payment or credit applied to an order's invoice shows on the order (a negative amount takes it back).
    Only invoices count: a debit memo (a chargeback, a refund paid out) never raised the order's balance."""
    if adjd_type != "IN":
        return
    row = ctx.store.one("SELECT OrdNbr FROM ARDoc WHERE CpnyID = ? AND DocType = ? AND RefNbr = ?",
                        (ctx.company.cpny, adjd_type, adjd_ref))
    if row is not None and row["OrdNbr"] != " ":
        paid_order_nbr(ctx, row["OrdNbr"], applied)


def paid_order_nbr(ctx: Ctx, ord_nbr: str, applied: Decimal) -> None:
    """Money received against an order shows on it: TotPmt up, BalDue down ("Paid" is BalDue = 0)."""
    order = ctx.store.one("SELECT TotOrd, TotPmt, PmtCntr FROM SOHeader WHERE CpnyID = ? AND OrdNbr = ?",
                          (ctx.company.cpny, ord_nbr))
    if order is None:
        return
    paid = money(ctx, order["TotPmt"]) + applied
    due = money(ctx, order["TotOrd"]) - paid
    ctx.store.update(T.SOHEADER, {"CpnyID": ctx.company.cpny, "OrdNbr": ord_nbr}, {
        "TotPmt": to_db_money(paid), "CuryTotPmt": to_db_money(paid), "BalDue": to_db_money(due),
        "CuryBalDue": to_db_money(due), "PmtCntr": order["PmtCntr"] + 1, **ctx.touched(RELEASE_PROG)})


def balances(ctx: Ctx, cust_id: str, doc_type: str, amount: Decimal, doc_date: str,
             prepaid_change: Decimal | None = None) -> None:
    """``AR_Balances``: credits lower ``CurrBal``, debits and reversals raise it; prepayments move ``TotPrePay``."""
    row = ctx.store.one("SELECT CurrBal, TotPrePay FROM AR_Balances WHERE CpnyID = ? AND CustID = ?",
                        (ctx.company.cpny, cust_id))
    if row is None:
        ctx.store.insert(T.AR_BALANCES, {"CpnyID": ctx.company.cpny, "CustID": cust_id,
                                         "PerNbr": ctx.company.ar_period, **ctx.audit(RELEASE_PROG)})
        current, prepaid = Decimal(0), Decimal(0)
    else:
        current, prepaid = money(ctx, row["CurrBal"]), money(ctx, row["TotPrePay"])
    values: dict[str, Any] = {"LastActDate": doc_date, **ctx.touched(RELEASE_PROG)}
    if doc_type in CREDIT_TYPES:
        current -= amount
    elif doc_type != "CS":
        current += amount
    if prepaid_change is None and doc_type == "PP":
        prepaid_change = amount
    if prepaid_change:
        values["TotPrePay"] = to_db_money(prepaid + prepaid_change)
    if doc_type == "IN":
        values["LastInvcDate"] = doc_date
    values["CurrBal"] = to_db_money(current)
    ctx.store.update(T.AR_BALANCES, {"CpnyID": ctx.company.cpny, "CustID": cust_id}, values)


def new_batch(ctx: Ctx) -> str:
    """The next AR batch number (``ARSetup.LastBatNbr``)."""
    ar = ctx.store.one("SELECT LastBatNbr FROM ARSetup WHERE CpnyID = ?", (ctx.company.cpny,))
    assert ar is not None
    bat_nbr = next_number(ar["LastBatNbr"])
    ctx.store.update(T.ARSETUP, {"CpnyID": ctx.company.cpny}, {"LastBatNbr": bat_nbr})
    return bat_nbr


def insert_batch(ctx: Ctx, bat_nbr: str, *, total: Decimal, period: str, screen: str, descr: str,
                 status: str, cury: str, jrnl_type: str = "AR", **more: Any) -> None:
    """An AR ``Batch`` row; ``CrTot = DrTot = CtrlTot`` = the documents' (or applications') total."""
    stored = to_db_money(total)
    ctx.store.insert(T.BATCH, {
        "CpnyID": ctx.company.cpny, "Module": "AR", "BatNbr": bat_nbr, "Status": status,
        "Rlsed": int(status in ("U", "P", "C")), "PerPost": period, "PerEnt": ctx.company.ar_period,
        "JrnlType": jrnl_type, "BatType": "N", "EditScrnNbr": screen, "OrigScrnNbr": screen, "CrTot": stored,
        "DrTot": stored, "CtrlTot": stored, "CuryCrTot": stored, "CuryDrTot": stored, "CuryCtrlTot": stored,
        "CuryId": cury, "CuryRate": 1.0, "CuryMultDiv": "M", "BaseCuryID": ctx.company.base_cury,
        "LedgerID": ctx.company.ledger_id, "BalanceType": "A", "Descr": descr or " ",
        "DateEnt": db_date(ctx.now.date()), **more, **ctx.audit(screen),
    })


def write_gl(ctx: Ctx, module: str, bat_nbr: str, jrnl_type: str, gl: GLLines) -> None:
    audit = ctx.audit(RELEASE_PROG if module == "AR" else "01010")
    for number, line in enumerate(gl.rows, start=1):
        debit, credit = to_db_money(line.pop("DrAmt")), to_db_money(line.pop("CrAmt"))
        period = line["PerPost"]
        ctx.store.insert(T.GLTRAN, {
            **line, "CpnyID": ctx.company.cpny, "Module": module, "BatNbr": bat_nbr, "LineNbr": number,
            "LineId": number, "DrAmt": debit, "CrAmt": credit, "CuryDrAmt": debit, "CuryCrAmt": credit,
            "CuryId": ctx.company.base_cury, "CuryRate": 1.0, "CuryMultDiv": "M", "JrnlType": jrnl_type,
            "PerEnt": ctx.company.gl_period, "FiscYr": period[:4], "LedgerID": ctx.company.ledger_id,
            "BalanceType": "A", "BaseCuryID": ctx.company.base_cury, "Posted": "U", "Rlsed": 1, **audit,
        })


def order_refs(ctx: Ctx, header: Mapping[str, Any]) -> dict[str, str]:
    """``CustOrdNbr`` for a document that names its order: the merchant's order reference, copied from
    ``SOHeader`` so that a payment or memo can be matched to the gateway's order without a join."""
    ord_nbr = header.get("OrdNbr", " ")
    if ord_nbr == " " or header.get("CustOrdNbr", " ") != " ":
        return {}
    row = ctx.store.one("SELECT CustOrdNbr FROM SOHeader WHERE CpnyID = ? AND OrdNbr = ?",
                        (ctx.company.cpny, ord_nbr))
    return {} if row is None or row["CustOrdNbr"] == " " else {"CustOrdNbr": row["CustOrdNbr"]}
