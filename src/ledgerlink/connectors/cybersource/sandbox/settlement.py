"""Closing a day: captured money and refunds go to the processor in batches, and each costs a fee.

A close for day D takes every capture and captured sale not yet settled, and
every accepted refund, submitted up to the end of D (a straggler from an
earlier, never-closed day settles with D, as it would at a real processor), and
puts them into batches: one per currency (and merchant) by default, or N per
currency (round robin in submission order). Settled transactions cannot be voided any more
(spec §4.1); they can still be refunded. Each gets its processing fee from the
schedule, computed once, exactly, and kept: a later change of the schedule does
not rewrite history.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from ledgerlink.connectors.cybersource.sandbox.clock import day_start
from ledgerlink.connectors.cybersource.sandbox.settings import SettlementSettings
from ledgerlink.connectors.cybersource.sandbox.store import Batch, Store, Txn
from ledgerlink.model import currency_exponent

SETTLED_KINDS = frozenset({"capture", "sale", "refund"})


def round_money(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-currency_exponent(currency)), rounding=ROUND_HALF_EVEN)


def processing_fee(settings: SettlementSettings, kind: str, amount: Decimal, currency: str) -> Decimal:
    """``percent`` of the amount plus ``fixed`` (captures and sales) or the refund pair, rounded half-even."""
    rule = settings.fee_rule(currency)
    if rule is None:
        return round_money(Decimal(0), currency)
    percent, fixed = (rule.refund_percent, rule.refund_fixed) if kind == "refund" else (rule.percent, rule.fixed)
    if amount == 0 or (percent == 0 and fixed == 0):
        return round_money(Decimal(0), currency)
    return round_money(amount * percent / 100 + fixed, currency)


def settleable(txn: Txn) -> bool:
    """Money that still has to reach the processor: captures, captured sales, accepted refunds."""
    if txn.settled or txn.kind not in SETTLED_KINDS or txn.status in ("VOIDED", "DECLINED"):
        return False
    return txn.settled_amount > 0


class Settlements:
    def __init__(self, store: Store, settings: SettlementSettings) -> None:
        self._store = store
        self.settings = settings

    def close(self, day: date | None = None, batches_per_currency: int | None = None) -> list[Batch]:
        """Close ``day`` (default: the business clock's today); returns the batches made (maybe none).

        Closing a day again later (more captures came in) adds batches to it; a closed day always has reports,
        even an empty one.
        """
        store = self._store
        day = day or store.clock.today()
        per_currency = batches_per_currency or self.settings.batches_per_currency
        cutoff = day_start(day + timedelta(days=1))
        pending: dict[tuple[str, str], list[Txn]] = {}
        for txn in store.transactions.values():
            if settleable(txn) and txn.submitted_at < cutoff:
                pending.setdefault((txn.merchant_id, txn.currency), []).append(txn)
        closed_at = store.clock.text()
        made: list[Batch] = []
        for merchant_id, currency in sorted(pending):
            txns = sorted(pending[merchant_id, currency], key=lambda t: (t.submitted, t.id))
            count = min(per_currency, len(txns))
            batches = [Batch(store.new_batch_id(day), day, currency, [], closed_at, merchant_id)
                       for _ in range(count)]
            for index, txn in enumerate(txns):
                batch = batches[index % count]
                batch.transaction_ids.append(txn.id)
                self._settle(txn, batch, closed_at)
            made.extend(batches)
        ids = store.settled_days.setdefault(day, [])
        for batch in made:
            store.batches[batch.id] = batch
            ids.append(batch.id)
        return made

    def _settle(self, txn: Txn, batch: Batch, closed_at: str) -> None:
        txn.settled = True
        txn.batch_id = batch.id
        txn.settled_at = closed_at
        txn.fee = processing_fee(self.settings, txn.kind, txn.settled_amount, txn.currency)
        if txn.status == "PENDING":
            txn.status = "TRANSMITTED"

    def ensure_closed(self, day: date) -> None:
        """With ``auto_close``: a day that is over (by the business clock) and was never closed closes now."""
        if not self.settings.auto_close or day in self._store.settled_days:
            return
        if self._store.clock.now() >= day_start(day + timedelta(days=1)):
            self.close(day)
