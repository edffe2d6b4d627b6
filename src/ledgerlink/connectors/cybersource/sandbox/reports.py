"""The Reporting API's answers (spec §7), generated from the sandbox's own batches and chargebacks.

- ``Payment Batch Detail`` CSV, classic layout: a title line
  ``Payment Batch Detail Report,1.0,<day> to <day>,,,,,,,``, the column line, then
  one CRLF record per settled transaction, ``ics_bill`` positive, ``ics_credit``
  negative. A daily report for day D is fetched with ``reportDate`` = D + 1.
- net fundings: per currency, PURCHASES, REFUNDS, FEES and CHARGEBACKS summaries
  (per card brand in ``paymentSubType``) and the totals, with
  ``netTotal = totalPurchases − totalRefunds − totalFees − totalChargebacks``.
  Processing fees and chargeback fees are both FEES; a chargeback fee's summary
  has ``paymentSubType`` ``CHARGEBACK_FEE``. A chargeback counts on the day it
  opens, a won chargeback's reversal counts (negatively) on the day it is won, so
  ``totalChargebacks`` is a day's net and can be negative. Fees are never refunded.

Batches of day D count in a net-funding window when D's midnight (UTC) lies in
it; chargeback stages when their time does. Both reports read the same lines
(with any injected data anomaly), so they always agree with each other.

A day can also be *recorded* (``record``, the ``/__sandbox/reports`` control):
its Payment Batch Detail file is served as given, and its purchases, refunds
and fees per currency go into the net fundings. That is how a million-line day
is replayed (``benchmarks/reconcile.py``) without a million sandbox payments.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledgerlink.connectors.cybersource.cards import PAYMENT_METHOD_NAMES, PAYMENT_SUBTYPES
from ledgerlink.connectors.cybersource.sandbox import anomalies as trouble
from ledgerlink.connectors.cybersource.sandbox.anomalies import ReportLine
from ledgerlink.connectors.cybersource.sandbox.clock import day_start, format_time
from ledgerlink.connectors.cybersource.sandbox.disputes import OPENED, WON, Disputes
from ledgerlink.connectors.cybersource.sandbox.settings import BATCH_DETAIL_COLUMNS, ReportAnomalies
from ledgerlink.connectors.cybersource.sandbox.settlement import Settlements, processing_fee
from ledgerlink.connectors.cybersource.sandbox.store import Store
from ledgerlink.connectors.cybersource.sandbox.wire import format_amount

BATCH_DETAIL = "PaymentBatchDetailReport"
TITLE = "Payment Batch Detail Report"
CHARGEBACK_FEE_SUBTYPE = "CHARGEBACK_FEE"
TYPES = ("PURCHASES", "REFUNDS", "FEES", "CHARGEBACKS")


@dataclass
class _Figure:
    count: int = 0
    amount: Decimal = Decimal(0)

    def add(self, amount: Decimal, count: int = 1) -> None:
        self.count += count
        self.amount += amount


@dataclass(frozen=True)
class RecordedDay:
    """A day's files as given: the CSV, and per currency its PURCHASES, REFUNDS and FEES."""

    csv: bytes
    figures: dict[str, dict[str, Decimal]]


@dataclass
class _Currency:
    summaries: dict[tuple[str, str], _Figure] = field(default_factory=lambda: defaultdict(_Figure))

    def total(self, kind: str) -> Decimal:
        return sum((f.amount for (t, _), f in self.summaries.items() if t == kind), Decimal(0))


class Reports:
    def __init__(self, store: Store, settlements: Settlements, disputes: Disputes,
                 anomalies: ReportAnomalies) -> None:
        self._store = store
        self._settlements = settlements
        self._disputes = disputes
        self.anomalies = anomalies
        self.recorded: dict[tuple[str, date], RecordedDay] = {}

    def record(self, merchant_id: str, day: date, csv_bytes: bytes, figures: dict[str, dict[str, Decimal]]) -> None:
        """Serve ``csv_bytes`` as the merchant's Payment Batch Detail for ``day``, with ``figures`` (currency ->
        ``purchases``, ``refunds``, ``fees``) in its net fundings."""
        self.recorded[merchant_id, day] = RecordedDay(csv_bytes, figures)

    # --- the day's lines ----------------------------------------------------------------------

    def lines(self, merchant_id: str, day: date) -> list[ReportLine]:
        """Every transaction settled on ``day`` for the merchant, as the reports show it (anomalies included)."""
        store = self._store
        result = []
        for batch_id in store.settled_days.get(day, ()):
            batch = store.batches[batch_id]
            if batch.merchant_id != merchant_id:
                continue
            for txn_id in batch.transaction_ids:
                txn = store.transactions[txn_id]
                card = txn.card.type if txn.card else ""
                result.append(ReportLine(
                    batch_id=batch.id, merchant_id=txn.merchant_id, batch_date=day, request_id=txn.id,
                    merchant_ref_number=txn.code or "", trans_ref_no=txn.reconciliation_id,
                    payment_method=PAYMENT_METHOD_NAMES.get(card, "Unknown"), subtype=PAYMENT_SUBTYPES.get(card, "OT"),
                    currency=txn.currency, amount=txn.settled_amount,
                    transaction_type="ics_credit" if txn.kind == "refund" else "ics_bill",
                    fee=txn.fee if txn.fee is not None else Decimal(0),
                ))
        return trouble.apply_data(result, self.anomalies, day, merchant_id, self._price, store.transactions)

    def _price(self, kind: str, amount: Decimal, currency: str) -> Decimal:
        return processing_fee(self._settlements.settings, kind, amount, currency)

    def is_settled(self, day: date) -> bool:
        if any(recorded_day == day for _, recorded_day in self.recorded):
            return True
        self._settlements.ensure_closed(day)
        return day in self._store.settled_days

    # --- Payment Batch Detail -------------------------------------------------------------------

    def batch_detail_csv(self, merchant_id: str, day: date) -> bytes:
        """The classic CSV for ``day`` (caller checks ``is_settled`` first), with any malformation injected."""
        recorded = self.recorded.get((merchant_id, day))
        if recorded is not None:
            return recorded.csv
        rows = [line.row() for line in self.lines(merchant_id, day)]
        title = f"{TITLE},1.0,{day.isoformat()} to {day.isoformat()},,,,,,,"
        title, header, rows, cut = trouble.apply_format(title, list(BATCH_DETAIL_COLUMNS), rows, self.anomalies, day)
        out = io.StringIO(newline="")
        out.write(title + "\r\n")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
        text = out.getvalue()
        if cut:
            body = text[:-2]  # the last record without its CRLF
            last = body.rfind("\r\n")
            text = body[: last + 2 + max(1, (len(body) - last - 2) // 2)]
        return text.encode("utf-8")

    # --- net fundings ---------------------------------------------------------------------------

    def net_fundings(self, merchant_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        currencies: dict[str, _Currency] = defaultdict(_Currency)
        for day in self._days_between(start, end):
            recorded = self.recorded.get((merchant_id, day))
            for currency, figures in (recorded.figures if recorded else {}).items():
                for kind, name in (("PURCHASES", "purchases"), ("REFUNDS", "refunds"), ("FEES", "fees")):
                    if figures.get(name):
                        currencies[currency].summaries[kind, "OT"].add(figures[name])
            for line in () if recorded else self.lines(merchant_id, day):
                figures = currencies[line.currency].summaries
                figures["REFUNDS" if line.kind == "refund" else "PURCHASES", line.subtype].add(line.amount)
                if line.fee:
                    figures["FEES", line.subtype].add(line.fee)
        for chargeback, event in self._disputes.events_between(merchant_id, start, end):
            figures = currencies[chargeback.currency].summaries
            txn = self._store.transactions[chargeback.transaction_id]
            subtype = PAYMENT_SUBTYPES.get(txn.card.type, "OT") if txn.card else "OT"
            if event.action == OPENED:
                figures["CHARGEBACKS", subtype].add(event.amount)
                if chargeback.fee:
                    figures["FEES", CHARGEBACK_FEE_SUBTYPE].add(chargeback.fee)
            elif event.action == WON:
                figures["CHARGEBACKS", subtype].add(-event.amount)
        return self._funding_document(currencies, start, end)

    def _days_between(self, start: datetime, end: datetime) -> Iterable[date]:
        first = start.astimezone(UTC).date()
        day = first if day_start(first) >= start else first + timedelta(days=1)
        while day_start(day) < end:
            if self.is_settled(day):
                yield day
            day += timedelta(days=1)

    @staticmethod
    def _funding_document(currencies: dict[str, _Currency], start: datetime, end: datetime) -> dict[str, Any]:
        summaries: list[dict[str, Any]] = []
        totals: dict[str, list[dict[str, str]]] = {name: [] for name in (
            "totalPurchases", "totalRefunds", "totalFees", "totalChargebacks", "netTotal")}
        for currency in sorted(currencies):
            data = currencies[currency]
            for kind in TYPES:
                for (t, subtype), figure in sorted(data.summaries.items()):
                    if t != kind:
                        continue
                    amount = format_amount(figure.amount, currency)
                    summaries.append({"type": kind, "paymentSubType": subtype, "conveyedCount": figure.count,
                                      "conveyedAmount": amount, "settledCount": figure.count,
                                      "fundedCount": figure.count, "fundedAmount": amount, "currencyCode": currency})
            purchases, refunds = data.total("PURCHASES"), data.total("REFUNDS")
            fees, chargebacks = data.total("FEES"), data.total("CHARGEBACKS")
            for name, value in (("totalPurchases", purchases), ("totalRefunds", refunds), ("totalFees", fees),
                                ("totalChargebacks", chargebacks),
                                ("netTotal", purchases - refunds - fees - chargebacks)):
                totals[name].append({"currency": currency, "value": format_amount(value, currency)})
        return {"startTime": format_time(start), "endTime": format_time(end), "netFundingSummaries": summaries,
                **totals}
