"""Subscriptions as SL defines them (recurring ``RC`` documents), their renewal invoices, and the AR hold.

An ``RC`` document is one subscription: ``CustId``, ``CuryOrigDocAmt``/``CuryId``, ``DocDate`` (the next
invoice), ``Cycle`` (months between invoices), ``NbrCycle`` (invoices left) and, in its note, the line
``Token: <gateway token id>`` naming the stored card to charge (see ``sandbox/recurring.py`` and
``userfields.py``). Its subscription id is its reference, ``dynamics_sl:ardoc:RC:<RefNbr>``, so every renewal
key is tied to the one SL document. Generating a cycle (08.500) is keyed by the renewal's business key: a retry
finds the invoice it made.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ledgerlink.connectors.dynamics_sl import translate as tr
from ledgerlink.connectors.dynamics_sl.client import SLCall, _seg
from ledgerlink.connectors.dynamics_sl.schemas import ARDoc
from ledgerlink.connectors.dynamics_sl.settings import DynamicsSLSettings
from ledgerlink.model import (
    ExternalRef,
    FieldIssue,
    IntervalUnit,
    InvalidInput,
    Money,
    PaymentToken,
    RenewalInvoice,
    Subscription,
    SubscriptionStatus,
)

PAGE = 500
TOKEN_LINE = re.compile(r"^\s*token\s*:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
SL_STATUSES = {"ACTIVE": SubscriptionStatus.ACTIVE, "SUSPENDED": SubscriptionStatus.SUSPENDED,
               "CANCELLED": SubscriptionStatus.CANCELLED, "ENDED": SubscriptionStatus.ENDED}
STATUS_CODES = {SubscriptionStatus.ACTIVE: "ACTIVE", SubscriptionStatus.SUSPENDED: "SUSPENDED",
                SubscriptionStatus.CANCELLED: "CANCELLED"}


class Calls:
    @staticmethod
    def list_templates(skip: int, top: int = PAGE) -> SLCall:
        return SLCall("list_recurring", "GET", f"/ar/recurring?$top={top}&$skip={skip}",
                      lambda body: list(body.get("value", [])))

    @staticmethod
    def generate(ref_nbr: str, body: dict[str, Any], key: str) -> SLCall:
        return SLCall("generate_recurring", "POST", f"/ar/recurring/{_seg(ref_nbr)}/generate", ARDoc.model_validate,
                      body, key)

    @staticmethod
    def set_status(ref_nbr: str, status: str, reason: str) -> SLCall:
        return SLCall("set_recurring_status", "POST", f"/ar/recurring/{_seg(ref_nbr)}/status",
                      lambda body: body, {"Status": status, "Reason": tr.cut(reason, 200)})

    @staticmethod
    def hold(cust_id: str, reason: str) -> SLCall:
        return SLCall("hold_customer", "POST", f"/customers/{_seg(cust_id)}/hold", lambda body: body,
                      {"Reason": tr.cut(reason, 200)})

    @staticmethod
    def release(cust_id: str, reason: str) -> SLCall:
        return SLCall("release_customer", "POST", f"/customers/{_seg(cust_id)}/release", lambda body: body,
                      {"Reason": tr.cut(reason, 200)})


def subscription_id(ref_nbr: str) -> str:
    return tr.ardoc_ref("RC", ref_nbr).key


def token_in(note: str | None) -> str | None:
    """The token id on the template's ``Token:`` note line (the first, when there are several)."""
    found = TOKEN_LINE.search(note or "")
    return found.group(1) if found else None


def subscription_from_template(row: dict[str, Any], settings: DynamicsSLSettings) -> Subscription:
    """A template as a ``Subscription``; ``InvalidInput`` naming the SL field when it cannot be one."""
    ref_nbr = str(row.get("RefNbr", "")).strip()
    where = f"ARDoc RC {ref_nbr}"
    issues: list[FieldIssue] = []
    try:
        amount = Money.of(str(row.get("CuryOrigDocAmt")), str(row.get("CuryId", "")).strip())
    except ValueError as exc:
        issues.append(FieldIssue(f"{where}.CuryOrigDocAmt", str(exc)))
    try:
        next_date = datetime.strptime(str(row.get("DocDate", "")).strip(), settings.date_format).date()
    except ValueError:
        issues.append(FieldIssue(f"{where}.DocDate", f"{row.get('DocDate')!r} is not a date"))
    cycle = row.get("Cycle") or 1
    if not isinstance(cycle, int) or cycle < 1:
        issues.append(FieldIssue(f"{where}.Cycle", "months between invoices must be a whole number >= 1"))
    if issues:
        raise InvalidInput(issues, source="dynamics_sl")
    token_id = token_in(row.get("Note"))
    token = PaymentToken(gateway="", token_id=token_id) if token_id else None
    return Subscription(
        id=subscription_id(ref_nbr), source="back_office", customer_id=str(row["CustId"]).strip(), token=token,
        amount=amount, interval_unit=IntervalUnit.MONTH, interval_count=int(cycle), next_date=next_date,
        description=str(row.get("DocDesc") or "").strip(), status=SL_STATUSES.get(str(row.get("Status")),
                                                                                   SubscriptionStatus.ACTIVE),
        remaining_cycles=row.get("NbrCycle"), ref=tr.ardoc_ref("RC", ref_nbr),
    )


def template_nbr(ref: ExternalRef, field: str) -> str:
    doc_type, ref_nbr = tr.ardoc_of(ref, field)
    if doc_type != "RC":
        raise InvalidInput(FieldIssue(field, f"{ref.key} is not a recurring document (RC)"), source="dynamics_sl")
    return ref_nbr


def renewal_call(invoice: RenewalInvoice, settings: DynamicsSLSettings) -> SLCall:
    """08.500 for the template's cycle, or a plain ``IN`` (08.010) for a subscription SL does not define."""
    description = tr.cut(invoice.description, 30)
    if invoice.template is not None:
        body: dict[str, Any] = {"DocDate": invoice.period.strftime(settings.date_format)}
        if description:
            body["DocDesc"] = description
        return Calls.generate(template_nbr(invoice.template, "invoice.template"), body, invoice.key).lean()
    body = {
        "CustId": tr.exact(invoice.customer_id, tr.CUSTID_LENGTH, "invoice.customer_id"),
        "DocType": "IN",
        "CuryOrigDocAmt": invoice.amount.format(),
        "CuryId": invoice.amount.currency,
        "DocDate": invoice.period.strftime(settings.date_format),
        "DocDesc": description or f"Subscription {invoice.period:%Y-%m-%d}",
    }
    return SLCall("create_ar_document", "POST", "/ar/documents", ARDoc.model_validate, body, invoice.key).lean()


def status_code(status: SubscriptionStatus) -> str:
    try:
        return STATUS_CODES[status]
    except KeyError:
        raise InvalidInput(FieldIssue("status", f"SL recurring documents are set to {', '.join(STATUS_CODES)}, "
                                                f"not {status.value}"), source="dynamics_sl") from None
