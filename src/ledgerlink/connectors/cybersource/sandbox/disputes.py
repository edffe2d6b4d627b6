"""Chargebacks: opened against a settled transaction, then won or lost, each stage its own report record.

Cybersource documents no dispute webhook, so a dispute reaches an integration
through the chargeback-details report (spec §7), which lists one record per
stage under one ``trackingNumber``. The ``action`` values are the sandbox's own
(the real vocabulary is not public):

- ``CHARGEBACK`` (sign ``-``): the issuer took the amount back; the chargeback
  fee is charged the same day (``feeAmount``/``feeCurrency`` on this record,
  named after the Business Center report's FeeAmount field);
- ``CHARGEBACK_REVERSAL`` (sign ``+``): the merchant's representment won; the
  amount comes back that day; the fee does not;
- ``CHARGEBACK_LOST`` (no sign): final; no money moves.

Opening and resolving go through ``/__sandbox/`` controls, never the signed API.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ledgerlink.connectors.cybersource.cards import PAYMENT_METHOD_NAMES
from ledgerlink.connectors.cybersource.sandbox.clock import format_time
from ledgerlink.connectors.cybersource.sandbox.settings import SettlementSettings
from ledgerlink.connectors.cybersource.sandbox.settlement import round_money
from ledgerlink.connectors.cybersource.sandbox.store import Chargeback, ChargebackEvent, Store
from ledgerlink.connectors.cybersource.sandbox.wire import control_error, format_amount

OPENED, WON, LOST = "CHARGEBACK", "CHARGEBACK_REVERSAL", "CHARGEBACK_LOST"
DESCRIPTIONS = {
    OPENED: "Chargeback received from the issuer",
    WON: "Representment accepted: chargeback reversed",
    LOST: "Representment declined: chargeback final",
}
SIGNS = {OPENED: "-", WON: "+", LOST: ""}
# Visa Claims Resolution reason codes → nature of dispute (anything else: "Consumer Dispute").
NATURE = {
    "10.4": "Fraud", "10.5": "Fraud", "11.3": "Authorization", "12.6.1": "Processing Error",
    "13.1": "Consumer Dispute", "13.3": "Consumer Dispute", "13.6": "Consumer Dispute",
}
DEFAULT_REASON = "10.4"


class Disputes:
    def __init__(self, store: Store, settings: SettlementSettings, rng: random.Random) -> None:
        self._store = store
        self.settings = settings
        self._rng = rng

    def open(self, transaction_id: str, *, amount: Decimal | None = None, reason_code: str | None = None,
             fee: Decimal | None = None) -> Chargeback:
        """A chargeback on a settled capture or sale, for at most what it settled less other live chargebacks."""
        txn = self._store.transactions.get(transaction_id)
        if txn is None:
            raise control_error("transactionId", "no such transaction", 404)
        if txn.kind not in ("capture", "sale") or not txn.settled:
            raise control_error("transactionId", "only a settled capture or sale can be charged back")
        available = txn.settled_amount - txn.disputed
        amount = available if amount is None else amount
        if amount <= 0 or amount != round_money(amount, txn.currency) or amount > available:
            raise control_error("amount", f"must be a positive amount of {txn.currency} up to {available} "
                                          "(settled, less other open or lost chargebacks)")
        fee = self.settings.chargeback_fee(txn.currency) if fee is None else fee
        if fee < 0:
            raise control_error("fee", "must not be negative")
        now = self._now()
        chargeback = Chargeback(
            tracking_number=self._tracking_number(), transaction_id=txn.id, merchant_id=txn.merchant_id,
            amount=amount, currency=txn.currency, reason_code=reason_code or DEFAULT_REASON,
            fee=round_money(fee, txn.currency), respond_by=now + timedelta(days=self.settings.response_days),
        )
        chargeback.events.append(ChargebackEvent(OPENED, now, amount, SIGNS[OPENED]))
        txn.disputed += amount
        self._store.chargebacks[chargeback.tracking_number] = chargeback
        return chargeback

    def resolve(self, tracking_number: str, outcome: str) -> Chargeback:
        chargeback = self._store.chargebacks.get(tracking_number)
        if chargeback is None:
            raise control_error("trackingNumber", "no such chargeback", 404)
        if outcome not in ("won", "lost"):
            raise control_error("outcome", "must be 'won' or 'lost'")
        if chargeback.outcome is not None:
            raise control_error("outcome", f"the chargeback was already {chargeback.outcome}", 409)
        action = WON if outcome == "won" else LOST
        chargeback.events.append(ChargebackEvent(action, self._now(), chargeback.amount, SIGNS[action]))
        if outcome == "won":
            self._store.transactions[chargeback.transaction_id].disputed -= chargeback.amount
        return chargeback

    def _now(self) -> datetime:
        """Whole seconds: the report shows no more, and a window must select what the report shows."""
        return self._store.clock.now().replace(microsecond=0)

    def _tracking_number(self) -> str:
        """15 digits starting with 1, a prefix no card network issues: a random 15-digit number would look
        like an American Express or Diners card number about one time in a hundred (prefix and Luhn), and
        every system downstream (Dynamics SL's gateway, the engine's logs) refuses or redacts those."""
        while True:
            number = f"{self._rng.randrange(10**14, 2 * 10**14)}"
            if number not in self._store.chargebacks:
                return number

    # --- the report ---------------------------------------------------------------------------

    def events_between(self, merchant_id: str, start: datetime, end: datetime) -> list[tuple[Chargeback, ChargebackEvent]]:
        found = [(cb, event) for cb in self._store.chargebacks.values() if cb.merchant_id == merchant_id
                 for event in cb.events if start <= event.time < end]
        return sorted(found, key=lambda pair: (pair[1].time, pair[0].tracking_number))

    def details(self, merchant_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        """GET /reporting/v3/chargeback-details: every stage that happened in [start, end)."""
        records = [self._record(cb, event) for cb, event in self.events_between(merchant_id, start, end)]
        return {"organizationId": merchant_id, "startTime": format_time(start), "endTime": format_time(end),
                "chargebackDetails": records}

    def _record(self, cb: Chargeback, event: ChargebackEvent) -> dict[str, Any]:
        txn = self._store.transactions[cb.transaction_id]
        batch = self._store.batches.get(txn.batch_id or "")
        record: dict[str, Any] = {
            "processorMerchantId": cb.merchant_id,
            "merchantName": cb.merchant_id,
            "transactionReferenceNumber": txn.reconciliation_id,
            "merchantReferenceNumber": txn.code,
            "natureOfDispute": NATURE.get(cb.reason_code, "Consumer Dispute"),
            "alertType": "CB",
            "amount": format_amount(event.amount, cb.currency),
            "sign": event.sign,
            "action": event.action,
            "cardType": PAYMENT_METHOD_NAMES.get(txn.card.type, "") if txn.card else "",
            "originalSettlementTime": batch.closed_at if batch else txn.settled_at,
            "trackingNumber": cb.tracking_number,
            "currencyCode": cb.currency,
            "requestId": txn.id,
            "responseDueTime": format_time(cb.respond_by),
            "time": format_time(event.time),
            "actionDescription": DESCRIPTIONS[event.action],
            "customerId": txn.tokens.customer_id if txn.tokens and txn.tokens.customer_id else None,
            "reasonCode": cb.reason_code,
            "representmentCPTime": format_time(event.time) if event.action != OPENED else None,
            "applications": "ics_bill",
            "eventRequestedTime": format_time(event.time),
            "preDisputeFlag": "N",
        }
        if event.action == OPENED:
            record["feeAmount"] = format_amount(cb.fee, cb.currency)
            record["feeCurrency"] = cb.currency
        return {k: v for k, v in record.items() if v is not None}

    def summary(self, cb: Chargeback) -> dict[str, Any]:
        """How the control endpoints show a chargeback."""
        return {"trackingNumber": cb.tracking_number, "transactionId": cb.transaction_id,
                "amount": format_amount(cb.amount, cb.currency), "currency": cb.currency,
                "reasonCode": cb.reason_code, "fee": format_amount(cb.fee, cb.currency),
                "outcome": cb.outcome, "respondBy": format_time(cb.respond_by),
                "events": [{"action": e.action, "time": format_time(e.time), "sign": e.sign} for e in cb.events]}
