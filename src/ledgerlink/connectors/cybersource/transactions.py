"""Transactions by submit time, as the notifications that announced them (spec §4.8, §6.2).

A webhook that never arrives leaves a transaction the engine knows nothing of. The gap sweep lists what
Cybersource recorded in a time window through Transaction Search and asks, for each transaction, which
notification announced it: the same ``<eventType>:<id>`` event id and partition key the webhook parser
gives, so the event the sweep stores and the webhook that may still arrive are one inbox row.

A transaction's event type follows from its kind and status: an authorisation or sale was accepted,
partially approved, sent to review or rejected; a follow-on (capture, refund, void, reversal) was accepted
(a refund can be rejected). Statuses that change later (an authorisation reversed or voided since) were
announced while it was approved.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from ledgerlink.connectors.cybersource import schemas as wire
from ledgerlink.connectors.cybersource.translate import infer_kind
from ledgerlink.connectors.cybersource.webhooks import parse_notification
from ledgerlink.model import PaymentEvent, PaymentKind

_ACCEPT = "payments.payments.accept"
AUTHORIZATION_EVENTS = {
    "AUTHORIZED": _ACCEPT,
    "PARTIAL_AUTHORIZED": "payments.payments.partial.approval",
    "AUTHORIZED_PENDING_REVIEW": "payments.payments.review",
    "PENDING_REVIEW": "payments.payments.review",
    "DECLINED": "payments.payments.reject",
    "AUTHORIZED_RISK_DECLINED": "payments.payments.reject",
    "REVERSED": _ACCEPT,
    "VOIDED": _ACCEPT,
}
FOLLOW_ON_EVENTS = {
    PaymentKind.CAPTURE: "payments.captures.accept",
    PaymentKind.REFUND: "payments.refunds.accept",
    PaymentKind.VOID: "payments.voids.accept",
    PaymentKind.REVERSAL: "payments.reversals.accept",
}


def search_time(value: datetime) -> str:
    """A ``submitTimeUtc`` bound: UTC, whole seconds (what TSS stores)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_query(start: datetime, end: datetime) -> str:
    """Transactions submitted in [start, end), widened to whole seconds (TSS times have no fraction)."""
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return f"submitTimeUtc:[{search_time(start)} TO {search_time(end)}}}"


def notification_type(summary: wire.Transaction) -> str | None:
    """The event type of the notification that announced this transaction, if it had one."""
    status = summary.status or (summary.application_information.status if summary.application_information else None)
    if not status:
        return None
    kind = infer_kind(summary)
    if kind in (PaymentKind.AUTHORIZATION, PaymentKind.SALE):
        return AUTHORIZATION_EVENTS.get(status)
    if kind is PaymentKind.REFUND and status == "DECLINED":
        return "payments.refunds.reject"
    return FOLLOW_ON_EVENTS.get(kind)


def summary_event(summary: wire.Transaction) -> PaymentEvent | None:
    """The canonical event of this transaction's notification, built by the webhook parser itself from an
    id-only payload (so event id and partition key cannot drift from a real delivery's)."""
    event_type = notification_type(summary)
    if event_type is None or not summary.id:
        return None
    data: dict[str, object] = {"id": summary.id}
    if summary.root_id:
        data["rootId"] = summary.root_id
    code = summary.client_reference_information.code if summary.client_reference_information else None
    if code:
        data["clientReferenceInformation"] = {"code": code}
    envelope = {"eventType": event_type, "eventDate": summary.submit_time_utc, "payload": {"data": data}}
    return parse_notification(orjson.dumps({k: v for k, v in envelope.items() if v is not None}))
