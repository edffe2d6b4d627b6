"""Card refunds asked for in SL: a credit memo flagged "refund to card", listed until a result is recorded.

A person enters a ``CM`` with ``User5 = 'CARDRFND'`` (through the API, or on 08.010 with the site's
customisation) and, usually, the sales order it refunds in ``OrdNbr``. The engine lists the flagged,
released credit memos that have no outcome yet (``GET ar/refund-requests``), asks the gateway for the
refund, and writes the outcome back (``POST ar/refund-requests/{RefNbr}/result``): ``User6`` the outcome,
``User1`` the gateway's refund id, ``User3`` the amount refunded, ``User8`` the day, and a line in the
memo's note. The memo then leaves the pending list. The credit itself stays on the memo until the
debit memo that pays the refund out (``User5 = 'RFNDPAYOUT'``) consumes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.common import Ctx, append_note, note_text
from ledgerlink.connectors.dynamics_sl.sandbox.effects import doc_key, document, money
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid, not_found
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date, quantum, to_db_money
from ledgerlink.connectors.dynamics_sl.userfields import (
    CARD_ROLE_FIELD,
    GATEWAY_ID_FIELD,
    REFUND_AMOUNT_FIELD,
    REFUND_DATE_FIELD,
    REFUND_OUTCOME_FIELD,
    REFUND_OUTCOMES,
    REFUND_PAYOUT,
    REFUND_TO_CARD,
)

PROG = "08010"  # the result is an edit of the credit memo's user fields
RESULT_FIELDS = frozenset({"Outcome", "GatewayRefundId", "Message", "CuryRefundAmt"})
PENDING_SQL = (
    "SELECT d.CustId, d.RefNbr, d.BatNbr, d.DocDate, d.DocDesc, d.CuryOrigDocAmt, d.CuryDocBal, d.CuryId, "
    "d.OrdNbr, CASE WHEN d.CustOrdNbr <> ' ' THEN d.CustOrdNbr ELSE COALESCE(s.CustOrdNbr, ' ') END AS CustOrdNbr, "
    "d.NoteId, d.Crtd_DateTime, d.Crtd_User FROM ARDoc d "
    "LEFT JOIN SOHeader s ON s.CpnyID = d.CpnyID AND s.OrdNbr = d.OrdNbr AND d.OrdNbr <> ' ' "
    # the first two terms repeat the partial index's condition so SQLite walks that index
    "WHERE d.DocType = 'CM' AND d.User5 = 'CARDRFND' AND d.CpnyID = ? AND d.User6 = ' ' AND d.Rlsed = 1 "
    "AND d.RefNbr > ? ORDER BY d.RefNbr LIMIT ?"
)


def check_card_role(header: Mapping[str, Any], doc_type: str, apps: Sequence[Any], credits: Sequence[Any]) -> None:
    """The card-role flag in ``User5`` at entry: ``CARDRFND`` only on an unapplied ``CM`` whose result columns
    are still empty; ``RFNDPAYOUT`` only on a ``DM`` that names the gateway refund in ``User1``."""
    role = header.get(CARD_ROLE_FIELD, " ")
    if role == REFUND_TO_CARD:
        if doc_type != "CM":
            raise invalid("ARDoc", CARD_ROLE_FIELD, f"{REFUND_TO_CARD} (refund to card) is only valid on a credit "
                          f"memo (CM), not on {doc_type}", code="InvalidCardRole")
        if apps:
            raise invalid("ARDoc", "Applications", "a credit memo to be refunded to the card keeps its credit for "
                          "the refund; do not apply it", code="InvalidCardRole")
        for name in (GATEWAY_ID_FIELD, REFUND_OUTCOME_FIELD, REFUND_AMOUNT_FIELD, REFUND_DATE_FIELD):
            if header.get(name, " ") not in (" ", 0, 0.0, T.NO_DATE):
                raise invalid("ARDoc", name, "is written by the refund result (POST ar/refund-requests/{RefNbr}/"
                              "result), not when the credit memo is entered", code="ReadOnlyField")
    elif role == REFUND_PAYOUT:
        if doc_type != "DM":
            raise invalid("ARDoc", CARD_ROLE_FIELD, f"{REFUND_PAYOUT} (card refund paid out) is only valid on a "
                          f"debit memo (DM), not on {doc_type}", code="InvalidCardRole")
        if header.get(GATEWAY_ID_FIELD, " ") == " ":
            raise invalid("ARDoc", GATEWAY_ID_FIELD, "a debit memo that pays a card refund out carries the "
                          "gateway's refund id", code="Required")


def pending(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    """``GET ar/refund-requests?$top=&After=``: flagged, released credit memos with no outcome, by RefNbr."""
    top = _int(query.get("$top", "500"), "$top", 1, 1000)
    after = query.get("After", "")
    rows = ctx.store.all(PENDING_SQL, (ctx.company.cpny, after, top))
    notes = _notes(ctx, [r["NoteId"] for r in rows if r["NoteId"]])
    value = []
    for row in rows:
        value.append({
            "DocType": "CM", "RefNbr": row["RefNbr"].rstrip(), "CustId": row["CustId"].rstrip(),
            "BatNbr": row["BatNbr"].rstrip(), "DocDate": ctx.codec.date_out(row["DocDate"]),
            "DocDesc": row["DocDesc"].rstrip(), "CuryOrigDocAmt": _out(ctx, row["CuryOrigDocAmt"]),
            "CuryDocBal": _out(ctx, row["CuryDocBal"]), "CuryId": row["CuryId"].rstrip(),
            "OrdNbr": row["OrdNbr"].rstrip(), "CustOrdNbr": row["CustOrdNbr"].rstrip(),
            "Crtd_DateTime": row["Crtd_DateTime"].replace(" ", "T"), "Crtd_User": row["Crtd_User"].rstrip(),
            "Note": notes.get(row["NoteId"]),
        })
    next_after = value[-1]["RefNbr"] if len(value) == top else None
    return 200, {"value": value, "NextAfter": next_after}


def record_result(ctx: Ctx, ref_nbr: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST ar/refund-requests/{RefNbr}/result``: the gateway's answer, written onto the credit memo."""
    unknown = sorted(set(body) - RESULT_FIELDS)
    if unknown:
        raise SLError(400, "UnknownField", f"ARDoc.{unknown[0]}: not a refund-result field "
                      f"({', '.join(sorted(RESULT_FIELDS))})", table="ARDoc", field=unknown[0])
    memo = document(ctx, "CM", ref_nbr)
    if memo is None:
        raise not_found("ARDoc", f"CM {ref_nbr}")
    if memo[CARD_ROLE_FIELD] != REFUND_TO_CARD:
        raise invalid("ARDoc", CARD_ROLE_FIELD, f"CM {ref_nbr} is not a refund-to-card request ({CARD_ROLE_FIELD} "
                      f"is not {REFUND_TO_CARD})", code="NotARefundRequest")
    if not memo["Rlsed"]:
        raise invalid("ARDoc", "Rlsed", f"CM {ref_nbr} is not released; only released credit memos are refund "
                      "requests", code="NotARefundRequest")
    outcome = _outcome(body.get("Outcome"))
    refund_id = _text(body, "GatewayRefundId", 30)
    message = _text(body, "Message", 2000)
    credit = money(ctx, memo["CuryOrigDocAmt"])
    amount = _refund_amount(ctx, body.get("CuryRefundAmt"), credit, outcome)
    if outcome == REFUND_OUTCOMES["refunded"] and not refund_id:
        raise invalid("ARDoc", "GatewayRefundId", "a refunded outcome names the gateway's refund", code="Required")
    recorded = memo[REFUND_OUTCOME_FIELD]
    if recorded != " ":
        if recorded == outcome and memo[GATEWAY_ID_FIELD].rstrip() == refund_id:
            return 200, _result(ctx, ref_nbr)  # the same answer again: a retry
        raise invalid("ARDoc", REFUND_OUTCOME_FIELD, f"CM {ref_nbr} already has the outcome {recorded.strip()} "
                      f"(refund {memo[GATEWAY_ID_FIELD].strip() or 'none'}); it is no longer a pending request",
                      code="RefundResultRecorded")
    today = db_date(ctx.now.date())
    ctx.store.update(T.ARDOC, doc_key(memo), {
        REFUND_OUTCOME_FIELD: outcome, GATEWAY_ID_FIELD: refund_id or " ",
        REFUND_AMOUNT_FIELD: to_db_money(amount) if amount else 0.0, REFUND_DATE_FIELD: today, **ctx.touched(PROG)})
    line = f"Card refund {outcome.lower()} on {ctx.codec.date_out(today)}"
    if amount:
        line += f": {amount} {memo['CuryId'].strip()}"
    if refund_id:
        line += f", gateway refund {refund_id}"
    if message:
        line += f". {message}"
    append_note(ctx, T.ARDOC, doc_key(memo), memo["NoteId"], line)
    return 200, _result(ctx, ref_nbr)


def _result(ctx: Ctx, ref_nbr: str) -> dict[str, Any]:
    row = document(ctx, "CM", ref_nbr)
    assert row is not None
    record = ctx.out(T.ARDOC, row)
    record["Note"] = note_text(ctx, row["NoteId"])
    return record


def _outcome(value: Any) -> str:
    codes = set(REFUND_OUTCOMES.values())
    text = value.strip() if isinstance(value, str) else ""
    code = REFUND_OUTCOMES.get(text.lower(), text.upper())
    if code not in codes:
        raise invalid("ARDoc", "Outcome", f"{value!r} is not an outcome ({', '.join(sorted(REFUND_OUTCOMES))})",
                      code="InvalidValue")
    return code


def _text(body: Mapping[str, Any], name: str, length: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid("ARDoc", name, "must be text")
    if len(value.strip()) > length:
        raise invalid("ARDoc", name, f"{len(value.strip())} characters; at most {length}", code="FieldTooLong")
    return value.strip()


def _refund_amount(ctx: Ctx, value: Any, credit: Decimal, outcome: str) -> Decimal:
    """What the gateway refunded: positive, at most the memo's credit; the whole credit when not given."""
    if value is None:
        return credit if outcome == REFUND_OUTCOMES["refunded"] else Decimal(0)
    if isinstance(value, (bool, float)) or not isinstance(value, (str, int)):
        raise invalid("ARDoc", "CuryRefundAmt", "amounts are decimal strings")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise invalid("ARDoc", "CuryRefundAmt", f"{value!r} is not a decimal amount") from None
    if not amount.is_finite() or amount != amount.quantize(quantum(ctx.company.decpl), rounding=ROUND_HALF_UP):
        raise invalid("ARDoc", "CuryRefundAmt", f"{value} is not an amount with at most {ctx.company.decpl} places")
    if amount <= 0:
        raise invalid("ARDoc", "CuryRefundAmt", "amounts are positive", code="NonPositiveAmount")
    if amount > credit:
        raise invalid("ARDoc", "CuryRefundAmt", f"{amount} is more than the credit memo's {credit}",
                      code="RefundExceedsCredit")
    return amount


def _int(raw: str, name: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SLError(400, "InvalidQuery", f"{name} must be an integer", table="ARDoc", field=name) from None
    if not low <= value <= high:
        raise SLError(400, "InvalidQuery", f"{name} must be between {low} and {high}", table="ARDoc", field=name)
    return value


def _out(ctx: Ctx, value: float) -> str:
    return f"{money(ctx, value):.{ctx.company.decpl}f}"


def _notes(ctx: Ctx, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    return {r["nID"]: r["sNoteText"] for r in ctx.store.all(f"SELECT nID, sNoteText FROM Snote WHERE nID IN ({marks})",
                                                             tuple(ids))}
