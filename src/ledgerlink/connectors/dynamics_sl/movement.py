"""Money movement, canonical <-> SL rows: credit and debit memos, payment reversals, GL journals, finance
tasks, card-refund requests and their results, and posted payments for reconciliation.

Pure functions, like ``translate``. Free text that may have come from outside (a gateway's message, a
dispute reason) is cleaned of card numbers before it is sent, because the gateway refuses any request
that holds one and a refused note must not stop a refund from being recorded. Identifiers that
reconciliation matches on (a gateway transaction or refund id) are refused when too long rather than cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from ledgerlink.connectors.dynamics_sl import translate as tr
from ledgerlink.connectors.dynamics_sl.settings import DynamicsSLSettings
from ledgerlink.connectors.dynamics_sl.userfields import (
    CARD_ROLE_FIELD,
    GATEWAY_ID_FIELD,
    ORDER_PAYMENT_STATUSES,
    REFUND_PAYOUT,
)
from ledgerlink.model import (
    CreditMemo,
    DebitMemo,
    ExternalRef,
    FieldIssue,
    InvalidInput,
    JournalEntry,
    MemoLine,
    Money,
    OrderStatus,
    PostedKind,
    PostedPayment,
    ReceiptReversal,
    RefundRequest,
    RefundResult,
    Side,
    Task,
    redact_card_numbers,
)

SOURCE = "dynamics_sl"
RECEIPT_TYPES = frozenset({"PA", "PP"})


def _invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput(FieldIssue(field, reason), source=SOURCE)


def clean(text: str | None) -> str:
    """Free text safe to send: card numbers masked."""
    return redact_card_numbers(text or "")


def sl_day(day: date, settings: DynamicsSLSettings) -> str:
    return day.strftime(settings.date_format)


def payment_status_code(status: OrderStatus) -> str | None:
    """``SOHeader.User8`` code for a payment status after invoicing, or None for the other statuses."""
    return ORDER_PAYMENT_STATUSES.get(status.value)


# ---- memos ---------------------------------------------------------------------------------------------


def _lines(lines: tuple[MemoLine, ...], where: str, description: str) -> list[dict[str, str]]:
    rows = []
    for i, line in enumerate(lines):
        row = {"Acct": tr.exact(line.account.account, 10, f"{where}.lines[{i}].account"),
               "CuryTranAmt": line.amount.format(), "TranDesc": tr.cut(clean(line.description or description), 30)}
        if line.account.sub:
            row["Sub"] = tr.exact(line.account.sub, 24, f"{where}.lines[{i}].account.sub")
        rows.append({k: v for k, v in row.items() if v != ""})
    return rows


def _memo(memo: CreditMemo | DebitMemo, doc_type: str, where: str, settings: DynamicsSLSettings) -> dict[str, Any]:
    description = clean(memo.description)
    body: dict[str, Any] = {
        "CustId": tr.exact(memo.customer_id, tr.CUSTID_LENGTH, f"{where}.customer_id"),
        "DocType": doc_type,
        "CuryOrigDocAmt": memo.amount.format(),
        "CuryId": memo.amount.currency,
        "DocDate": tr.sl_date(memo.memo_date, settings),
        "PerPost": tr.sl_period(memo.memo_date, settings),
        "DocDesc": tr.cut(description, 30),
        "Lines": _lines(memo.lines, where, description),
    }
    if len(description.strip()) > 30:
        body["Note"] = description.strip()
    if memo.order is not None:
        body["OrdNbr"] = tr.ord_nbr_of(memo.order, f"{where}.order")
    if memo.gateway_ref is not None:
        body[GATEWAY_ID_FIELD] = tr.exact(memo.gateway_ref.id, 30, f"{where}.gateway_ref")
    return body


def credit_memo_body(memo: CreditMemo, settings: DynamicsSLSettings) -> dict[str, Any]:
    """A released ``CM``: Dr each line's account / Cr AR; applied to ``apply_to`` for its whole amount."""
    body = _memo(memo, "CM", "memo", settings)
    if memo.apply_to is not None:
        doc_type, ref_nbr = tr.ardoc_of(memo.apply_to, "memo.apply_to")
        body["Applications"] = [{"AdjdDocType": doc_type, "AdjdRefNbr": ref_nbr,
                                 "CuryAdjgAmt": memo.amount.format()}]
    return body


def debit_memo_body(memo: DebitMemo, settings: DynamicsSLSettings) -> dict[str, Any]:
    """A released ``DM``: Dr AR / Cr each line's account; ``apply_credit`` pays it at once (08.030).

    A debit memo with both a gateway reference and a credit to apply is the payout of a card refund (the
    credit memo asked for the refund, the gateway made it): it is flagged ``RFNDPAYOUT`` so that
    ``posted_payments`` reports it as money refunded, with the gateway's refund id from ``User1``.
    """
    body = _memo(memo, "DM", "memo", settings)
    if memo.apply_credit is not None:
        doc_type, ref_nbr = tr.ardoc_of(memo.apply_credit, "memo.apply_credit")
        body["Credits"] = [{"AdjgDocType": doc_type, "AdjgRefNbr": ref_nbr, "CuryAdjgAmt": memo.amount.format()}]
        if memo.gateway_ref is not None:
            body[CARD_ROLE_FIELD] = REFUND_PAYOUT
    return body


def reversal_call(reversal: ReceiptReversal, settings: DynamicsSLSettings) -> tuple[str, str, dict[str, Any]]:
    """The payment to reverse and the ``NS`` request (the reason as description and note)."""
    doc_type, ref_nbr = tr.ardoc_of(reversal.receipt, "reversal.receipt")
    if doc_type not in RECEIPT_TYPES:
        raise _invalid("reversal.receipt", f"{reversal.receipt.key} is not a receipt (PA or PP)")
    reason = clean(reversal.reason).strip()
    body: dict[str, Any] = {
        "DocDate": tr.sl_date(reversal.reversed_at, settings),
        "PerPost": tr.sl_period(reversal.reversed_at, settings),
        "DocDesc": tr.cut(reason or f"Reversal of {doc_type} {ref_nbr}", 30),
    }
    if reason:
        body["Note"] = reason
    if reversal.gateway_ref is not None:
        body[GATEWAY_ID_FIELD] = tr.exact(reversal.gateway_ref.id, 30, "reversal.gateway_ref")
    return doc_type, ref_nbr, body


# ---- journals ------------------------------------------------------------------------------------------


def journal_body(entry: JournalEntry, settings: DynamicsSLSettings) -> dict[str, Any]:
    """A GL batch (01.010) released and posted in one request; ``PerPost`` from the entry date."""
    currencies = entry.currencies
    if len(currencies) != 1:
        raise _invalid("entry.postings", f"an SL batch is in one currency; this entry has {', '.join(currencies)}")
    description = clean(entry.description).strip()
    lines = []
    for i, posting in enumerate(entry.postings):
        amount = posting.amount.format()
        lines.append({
            "Acct": tr.exact(posting.account.account, 10, f"entry.postings[{i}].account"),
            "Sub": tr.exact(posting.account.sub or settings.default_sub, 24, f"entry.postings[{i}].account.sub"),
            "DrAmt" if posting.side is Side.DEBIT else "CrAmt": amount,
            "TranDesc": tr.cut(clean(posting.memo) or description, 30) or " ",
            "TranDate": sl_day(entry.entry_date, settings),
        })
    debits, _ = entry.totals()[currencies[0]]
    note = [description] if description else []
    note += [f"ref {ref.key}" for ref in entry.refs]
    note += [f"{name}: {clean(value)}" for name, value in sorted(entry.metadata.items())]
    body: dict[str, Any] = {
        "JrnlType": "GJ",
        "PerPost": f"{entry.entry_date.year:04d}{entry.entry_date.month:02d}",
        "Descr": tr.cut(description, 30) or " ",
        "CuryId": currencies[0],
        "CtrlTot": debits.format(),
        "Lines": lines,
        "Post": True,
    }
    if note:
        body["Note"] = "\n".join(note)
    return body


# ---- tasks ---------------------------------------------------------------------------------------------


def task_body(task: Task, settings: DynamicsSLSettings) -> dict[str, Any]:
    body_text = clean(task.body)
    reference = clean(task.reference).strip()
    if len(reference) > 60:
        body_text = f"{body_text}\n\nReference: {reference}"
    body: dict[str, Any] = {
        "Subject": tr.cut(clean(task.subject), 60) or "(no subject)",
        "Category": tr.cut(task.category, 20) or "general",
        "Body": body_text,
    }
    if reference:
        body["Reference"] = tr.cut(reference, 60)
    if task.amount is not None:
        body["Amount"] = task.amount.format()
        body["CuryId"] = task.amount.currency
    if task.due is not None:
        body["DueDate"] = tr.sl_date(task.due, settings)
    return body


# ---- card refunds asked for in SL ----------------------------------------------------------------------


def sl_moment(text: str, settings: DynamicsSLSettings) -> datetime:
    """An SL audit timestamp (``YYYY-MM-DDTHH:MM``, server time) as an aware instant."""
    return datetime.fromisoformat(text).replace(tzinfo=settings.zone)


def refund_request(row: Mapping[str, Any], settings: DynamicsSLSettings) -> RefundRequest:
    ord_nbr = row.get("OrdNbr") or ""
    return RefundRequest(
        ref=tr.ardoc_ref("CM", row["RefNbr"]),
        customer_id=row["CustId"],
        amount=Money.of(row["CuryOrigDocAmt"], row["CuryId"]),
        requested_at=sl_moment(row["Crtd_DateTime"], settings),
        order=tr.order_ref(ord_nbr) if ord_nbr else None,
        order_reference=row.get("CustOrdNbr") or None,
        reason=(row.get("Note") or row.get("DocDesc") or "").strip(),
    )


def refund_request_nbr(ref: ExternalRef) -> str:
    doc_type, ref_nbr = tr.ardoc_of(ref, "request")
    if doc_type != "CM":
        raise _invalid("request", f"{ref.key} is not a credit memo; refund requests are CM documents")
    return ref_nbr


def refund_result_body(result: RefundResult) -> dict[str, Any]:
    body: dict[str, Any] = {"Outcome": result.outcome.value, "Message": clean(result.message).strip()[:2000]}
    if result.gateway_ref is not None:
        body["GatewayRefundId"] = tr.exact(result.gateway_ref.id, 30, "result.gateway_ref")
    if result.amount is not None:
        body["CuryRefundAmt"] = result.amount.format()
    return body


# ---- posted payments -----------------------------------------------------------------------------------


class PostedReader:
    """Turns posted-payment rows into ``PostedPayment`` records. Tens of thousands of rows share a few dates,
    minutes and amounts, so each of those is parsed once and its (immutable) value shared: fewer objects
    made is most of what reading a large day costs on our side."""

    def __init__(self, settings: DynamicsSLSettings) -> None:
        self.settings = settings
        self._days: dict[str, date] = {}
        self._moments: dict[str, datetime] = {}
        self._amounts: dict[tuple[str, str], Money] = {}

    def day(self, text: str) -> date:
        day = self._days.get(text)
        if day is None:
            day = self._days[text] = datetime.strptime(text, self.settings.date_format).date()
        return day

    def moment(self, text: str) -> datetime:
        moment = self._moments.get(text)
        if moment is None:
            moment = self._moments[text] = sl_moment(text, self.settings)
        return moment

    def amount(self, text: str, currency: str) -> Money:
        amount = self._amounts.get((text, currency))
        if amount is None:
            amount = self._amounts[(text, currency)] = Money.of(text, currency)
        return amount

    def __call__(self, row: Mapping[str, Any]) -> PostedPayment:
        doc_type = row["DocType"]
        return PostedPayment(
            ref=tr.ardoc_ref(doc_type, row["RefNbr"]),
            kind=PostedKind.RECEIPT if doc_type in RECEIPT_TYPES else PostedKind.REFUND,
            amount=self.amount(row["CuryOrigDocAmt"], row["CuryId"]),
            posted_on=self.day(row["DocDate"]),
            posted_at=self.moment(row["Crtd_DateTime"]),
            transaction_id=row.get("User1") or None,
            order_reference=row.get("CustOrdNbr") or None,
            customer_id=row.get("CustId") or None,
            metadata={k: row[k] for k in ("DocType", "BatNbr", "OrdNbr", "PerPost") if row.get(k)},
        )
