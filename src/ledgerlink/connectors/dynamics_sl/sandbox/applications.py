"""Applications: which checks an ``ARAdjust`` must pass, and applying credits that already exist.

Two directions, both ending in ``ARAdjust`` rows (spec A.7):

* ``Applications`` on a new ``PA``/``CM``: the new document pays released, open debit documents
  (staged as ``ARTran`` rows with ``DrCr = 'U'`` and turned into ``ARAdjust`` at release).
* ``Credits`` on a new debit document: released, open credits that already exist (a ``CM``, or the
  unapplied rest of a ``PA``) pay the new document at once. SL does this on Payment Application
  (08.030) in a batch of its own; an application between two AR documents moves no GL amount, so that
  batch is completed (``C``), never posted, with ``CrTot`` = the amount applied.

Every amount is positive, no application takes more than the open balance of either document, and a
closed, unknown, unreleased or other customer's document is refused naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox.common import Ctx
from ledgerlink.connectors.dynamics_sl.sandbox.effects import (
    DEBIT_TYPES,
    apply,
    document,
    insert_batch,
    money,
    new_batch,
    set_balance,
)
from ledgerlink.connectors.dynamics_sl.sandbox.errors import invalid
from ledgerlink.connectors.dynamics_sl.sandbox.store import to_db_money

APPLYING_TYPES = frozenset({"PA", "CM"})  # may carry applications at entry, and may pay a later debit
PAYABLE_TYPES = DEBIT_TYPES - {"CS"}
APPLICATION_FIELDS = frozenset({"AdjdDocType", "AdjdRefNbr", "CuryAdjgAmt"})
CREDIT_FIELDS = frozenset({"AdjgDocType", "AdjgRefNbr", "CuryAdjgAmt"})
SCREEN = "08030"


def check_applications(ctx: Ctx, cust_id: str, amount: Decimal, apps: Sequence[Mapping[str, Any]]) -> None:
    """Each application names a released, open debit document of the same customer and takes no more than
    its balance; together they take no more than the payment."""
    total = Decimal(0)
    taken: dict[tuple[str, str], Decimal] = {}
    for i, app in enumerate(apps):
        where = f"Applications[{i}]"
        applied = _amount(ctx, where, app, ("AdjdDocType", "AdjdRefNbr", "CuryAdjgAmt"))
        if app["AdjdDocType"] not in PAYABLE_TYPES:
            raise invalid("ARAdjust", f"{where}.AdjdDocType", f"{app['AdjdDocType']!r} cannot be paid (apply to "
                          "IN, DM, FI, NC or SC)", code="InvalidApplication")
        doc = _open_document(ctx, f"{where}.AdjdRefNbr", cust_id, app["AdjdDocType"], app["AdjdRefNbr"])
        key = (app["AdjdDocType"], app["AdjdRefNbr"])
        taken[key] = taken.get(key, Decimal(0)) + applied
        balance = money(ctx, doc["CuryDocBal"])
        if taken[key] > balance:
            raise invalid("ARAdjust", f"{where}.CuryAdjgAmt", f"{taken[key]} exceeds the open balance {balance} "
                          f"of {key[0]} {key[1]}", code="ApplicationExceedsBalance")
        total += applied
    if total > amount:
        raise invalid("ARAdjust", "Applications", f"applications total {total} exceeds the payment amount {amount}",
                      code="ApplicationExceedsPayment")


def check_credits(ctx: Ctx, cust_id: str, amount: Decimal, credits: Sequence[Mapping[str, Any]]) -> None:
    """Each credit is a released, open ``CM``/``PA`` of the same customer with at least the amount applied
    left; together they pay no more than the new debit document."""
    total = Decimal(0)
    taken: dict[tuple[str, str], Decimal] = {}
    for i, credit in enumerate(credits):
        where = f"Credits[{i}]"
        applied = _amount(ctx, where, credit, ("AdjgDocType", "AdjgRefNbr", "CuryAdjgAmt"))
        if credit["AdjgDocType"] not in APPLYING_TYPES:
            raise invalid("ARAdjust", f"{where}.AdjgDocType", f"{credit['AdjgDocType']!r} cannot pay a debit "
                          "(use a CM or the unapplied rest of a PA)", code="InvalidApplication")
        doc = _open_document(ctx, f"{where}.AdjgRefNbr", cust_id, credit["AdjgDocType"], credit["AdjgRefNbr"])
        key = (credit["AdjgDocType"], credit["AdjgRefNbr"])
        taken[key] = taken.get(key, Decimal(0)) + applied
        balance = money(ctx, doc["CuryDocBal"])
        if taken[key] > balance:
            raise invalid("ARAdjust", f"{where}.CuryAdjgAmt", f"{taken[key]} exceeds the unapplied balance "
                          f"{balance} of {key[0]} {key[1]}", code="ApplicationExceedsBalance")
        total += applied
    if total > amount:
        raise invalid("ARAdjust", "Credits", f"credits total {total} exceeds the document amount {amount}",
                      code="ApplicationExceedsPayment")


def _amount(ctx: Ctx, where: str, row: Mapping[str, Any], names: tuple[str, ...]) -> Decimal:
    for name in names:
        if row.get(name, " ") == " ":
            raise invalid("ARAdjust", f"{where}.{name}", "is required", code="Required")
    applied = money(ctx, row["CuryAdjgAmt"])
    if applied <= 0:
        raise invalid("ARAdjust", f"{where}.CuryAdjgAmt", "application amounts are positive",
                      code="NonPositiveAmount")
    return applied


def _open_document(ctx: Ctx, field: str, cust_id: str, doc_type: str, ref_nbr: str) -> Any:
    doc = document(ctx, doc_type, ref_nbr)
    if doc is None:
        raise invalid("ARAdjust", field, f"{doc_type} {ref_nbr} does not exist", code="UnknownDocument")
    if doc["CustId"] != cust_id:
        raise invalid("ARAdjust", field, f"{doc_type} {ref_nbr} belongs to customer {doc['CustId'].strip()}, not "
                      f"{cust_id.strip()}", code="InvalidApplication")
    if not doc["Rlsed"]:
        raise invalid("ARAdjust", field, f"{doc_type} {ref_nbr} is not released", code="InvalidApplication")
    if not doc["OpenDoc"]:
        raise invalid("ARAdjust", field, f"{doc_type} {ref_nbr} is closed (its balance reached zero in "
                      f"{doc['PerClosed'].strip()})", code="ClosedDocument")
    return doc


def apply_credits(ctx: Ctx, debit: Mapping[str, Any], credits: Sequence[Mapping[str, Any]]) -> str:
    """Apply existing credits to a released debit document in one 08.030 batch (Status ``C``: no GL moves
    between two AR documents). Returns the batch number."""
    adjd = document(ctx, debit["DocType"], debit["RefNbr"])
    assert adjd is not None and adjd["Rlsed"]
    check_credits(ctx, adjd["CustId"], money(ctx, adjd["CuryDocBal"]), credits)
    bat_nbr = new_batch(ctx)
    total = Decimal(0)
    for credit in credits:
        adjg = document(ctx, credit["AdjgDocType"], credit["AdjgRefNbr"])
        assert adjg is not None
        applied = money(ctx, credit["CuryAdjgAmt"])
        closed_in = apply(ctx, adjg, debit["DocType"], debit["RefNbr"], applied, bat_nbr, prog=SCREEN,
                          period=adjd["PerPost"])
        left = money(ctx, adjg["CuryDocBal"]) - applied
        applied_total = to_db_money(money(ctx, adjg["ApplAmt"]) + applied)
        set_balance(ctx, adjg, left, closed_in, ApplBatNbr=bat_nbr, ApplAmt=applied_total, CuryApplAmt=applied_total)
        total += applied
    insert_batch(ctx, bat_nbr, total=total, period=adjd["PerPost"], screen=SCREEN, status="C",
                 cury=adjd["CuryId"], descr=f"Credits to {debit['DocType']} {debit['RefNbr'].strip()}")
    return bat_nbr

