"""Chargeback-details records (spec §7) → canonical ``Dispute``s, one per stage.

Cybersource sends no dispute webhook; an integration polls
``/reporting/v3/chargeback-details``. Each stage of a chargeback is its own
record under one ``trackingNumber`` (the dispute id); ``action`` says which
stage. The real ``action`` vocabulary is not public, so the table below holds
what the sandbox sends, read case-insensitively, and an integration adds or
overrides entries with ``dispute_actions`` (values ``opened``, ``won``,
``lost``, or ``ignore`` for records that move no money, e.g. retrievals). An
action in neither is refused by name rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ledgerlink.connectors.cybersource import schemas as wire
from ledgerlink.connectors.cybersource.translate import GATEWAY, parse_timestamp
from ledgerlink.model import Dispute, DisputeStage, FieldIssue, InvalidInput, Money, MoneyError

SOURCE = "cybersource chargeback-details"
IGNORE = "ignore"
DEFAULT_ACTIONS: dict[str, str] = {
    "CHARGEBACK": DisputeStage.OPENED.value,
    "CHARGEBACK_REVERSAL": DisputeStage.WON.value,
    "CHARGEBACK_LOST": DisputeStage.LOST.value,
}


class DisputeActions:
    """``action`` → stage (or ignore): the defaults with an integration's overrides on top."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        allowed = {s.value for s in DisputeStage} | {IGNORE}
        self._table = {k.upper(): v for k, v in DEFAULT_ACTIONS.items()}
        for action, stage in (overrides or {}).items():
            if stage not in allowed:
                raise ValueError(f"dispute_actions[{action!r}]: {stage!r} is not one of {', '.join(sorted(allowed))}")
            self._table[action.upper()] = stage

    def resolve(self, action: str) -> str | None:
        return self._table.get(action.strip().upper())


def to_disputes(doc: wire.ChargebackDetails, actions: DisputeActions | None = None) -> list[Dispute]:
    """Every record as a ``Dispute``, in the report's order; ``InvalidInput`` naming the field when one is bad."""
    actions = actions or DisputeActions()
    result = []
    issues: list[FieldIssue] = []
    for index, record in enumerate(doc.chargeback_details):
        dispute = _dispute(record, f"chargebackDetails[{index}]", actions, issues)
        if dispute is not None:
            result.append(dispute)
    if issues:
        raise InvalidInput(issues, source=SOURCE)
    return result


def _dispute(record: wire.ChargebackDetail, path: str, actions: DisputeActions,
             issues: list[FieldIssue]) -> Dispute | None:
    before = len(issues)

    def need(value: str | None, name: str) -> str:
        if not value:
            issues.append(FieldIssue(f"{path}.{name}", "missing"))
            return ""
        return value

    action = need(record.action, "action")
    stage = actions.resolve(action) if action else None
    if action and stage is None:
        issues.append(FieldIssue(f"{path}.action", f"{action!r} is not a known chargeback action "
                                                   "(add it to the integration's dispute_actions)"))
    if stage == IGNORE:
        return None
    tracking = need(record.tracking_number, "trackingNumber")
    request_id = need(record.request_id, "requestId")
    amount = _money(record.amount, record.currency_code, path, "amount", "currencyCode", issues)
    fee = None
    if record.fee_amount:
        fee = _money(record.fee_amount, record.fee_currency or record.currency_code, path, "feeAmount",
                     "feeCurrency", issues)
    occurred = _time(record.time, f"{path}.time", issues, required=True)
    respond_by = _time(record.response_due_time, f"{path}.responseDueTime", issues, required=False)
    if len(issues) > before or stage is None or amount is None or occurred is None:
        return None
    return Dispute(
        gateway=GATEWAY, dispute_id=tracking, transaction_id=request_id,
        order_reference=record.merchant_reference_number or None, stage=DisputeStage(stage), amount=amount,
        fee=fee, reason_code=record.reason_code or None,
        reason=record.nature_of_dispute or record.action_description or None,
        occurred_at=occurred, respond_by=respond_by,
    )


def _money(amount: str | None, currency: str | None, path: str, amount_name: str, currency_name: str,
           issues: list[FieldIssue]) -> Money | None:
    if not currency:
        issues.append(FieldIssue(f"{path}.{currency_name}", "missing currency"))
        return None
    if not amount:
        issues.append(FieldIssue(f"{path}.{amount_name}", "missing amount"))
        return None
    try:
        value = Money.of(amount.lstrip("+-"), currency)
    except MoneyError as exc:
        name = currency_name if str(exc).startswith(("unknown currency", "currency must")) else amount_name
        issues.append(FieldIssue(f"{path}.{name}", str(exc)))
        return None
    return value


def _time(value: str | None, path: str, issues: list[FieldIssue], *, required: bool) -> datetime | None:
    if not value:
        if required:
            issues.append(FieldIssue(path, "missing time"))
        return None
    parsed = parse_timestamp(value)
    if parsed is None:
        issues.append(FieldIssue(path, f"{value!r} is not an ISO 8601 time"))
    return parsed
