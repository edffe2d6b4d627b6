"""Injected report trouble: what a processor gets wrong, and what a broken file looks like.

Two kinds, applied when a day's reports are generated, deterministic for a seed
and a day (the same download twice gives the same bytes):

- data anomalies change the day's settled lines (a line dropped, the same
  transaction settled again in another batch, a different amount or currency, a
  transaction the sandbox never had). They feed the CSV *and* the net funding,
  so the day still adds up and it is the reconciliation that must notice;
- malformations break only the CSV text (cut mid-line, a header column
  missing, an amount like ``12.3.4``, a line repeated byte for byte). A reader
  must refuse such a file, naming the line and column.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Container
from datetime import date
from decimal import Decimal

from ledgerlink.connectors.cybersource.sandbox.settings import BATCH_DETAIL_COLUMNS, ReportAnomalies
from ledgerlink.model import currency_exponent

GARBLED_AMOUNT = "12.3.4"
OTHER_CURRENCY = {"USD": "EUR"}  # a changed currency: EUR for USD lines, USD for anything else


@dataclasses.dataclass(slots=True)
class ReportLine:
    """One settled transaction as the day's reports show it. ``amount`` is positive; the type gives the sign."""

    batch_id: str
    merchant_id: str
    batch_date: date
    request_id: str
    merchant_ref_number: str
    trans_ref_no: str
    payment_method: str
    subtype: str  # the net funding's paymentSubType (card brand code)
    currency: str
    amount: Decimal
    transaction_type: str  # ics_bill | ics_credit
    fee: Decimal

    @property
    def kind(self) -> str:
        return "refund" if self.transaction_type == "ics_credit" else "capture"

    def row(self) -> list[str]:
        places = currency_exponent(self.currency)
        signed = -self.amount if self.transaction_type == "ics_credit" else self.amount
        return [self.batch_id, self.merchant_id, self.batch_date.isoformat(), self.request_id,
                self.merchant_ref_number, self.trans_ref_no, self.payment_method, self.currency,
                f"{signed:.{places}f}", self.transaction_type]


Pricer = Callable[[str, Decimal, str], Decimal]  # (kind, amount, currency) → processing fee


def _rng(anomalies: ReportAnomalies, day: date, purpose: str) -> random.Random:
    return random.Random(f"{anomalies.seed}:{day.isoformat()}:{purpose}")


def _batch_for(lines: list[ReportLine], currency: str, day: date, avoid: str | None, fresh: list[int]) -> str:
    """A batch of ``currency`` on the day other than ``avoid``; a made-up one when there is none."""
    for line in lines:
        if line.currency == currency and line.batch_id != avoid:
            return line.batch_id
    fresh[0] += 1
    return f"{day:%y%m%d}{900000 + fresh[0]:06d}"


def apply_data(lines: list[ReportLine], anomalies: ReportAnomalies, day: date, merchant_id: str, price: Pricer,
               known_ids: Container[str]) -> list[ReportLine]:
    """The day's lines as the processor got them wrong; ``price`` gives a changed or made-up line its fee."""
    if not anomalies.applies_to(day) or not anomalies.any_data():
        return lines
    rng = _rng(anomalies, day, "data")
    result = list(lines)
    fresh = [0]
    for _ in range(min(anomalies.drop_lines, len(result))):
        result.pop(rng.randrange(len(result)))
    for _ in range(anomalies.duplicate_lines if result else 0):
        original = result[rng.randrange(len(result))]
        batch = _batch_for(result, original.currency, day, original.batch_id, fresh)
        result.append(dataclasses.replace(original, batch_id=batch))
    for _ in range(anomalies.change_amounts if result else 0):
        index = rng.randrange(len(result))
        line = result[index]
        step = Decimal(rng.randint(1, 500)).scaleb(-currency_exponent(line.currency))
        amount = line.amount + step if line.amount <= step or rng.random() < 0.5 else line.amount - step
        result[index] = dataclasses.replace(line, amount=amount, fee=price(line.kind, amount, line.currency))
    for _ in range(anomalies.change_currencies if result else 0):
        index = rng.randrange(len(result))
        line = result[index]
        currency = OTHER_CURRENCY.get(line.currency, "USD")
        amount = line.amount.quantize(Decimal(1).scaleb(-currency_exponent(currency)))
        if amount == 0:
            amount = Decimal(1)
        batch = _batch_for(result, currency, day, None, fresh)
        result[index] = dataclasses.replace(line, currency=currency, amount=amount, batch_id=batch,
                                            fee=price(line.kind, amount, currency))
    for _ in range(anomalies.phantom_lines):
        currency = result[0].currency if result else "USD"
        request_id = _unknown_id(rng, known_ids)
        amount = Decimal(rng.randint(100, 50_000)).scaleb(-currency_exponent(currency))
        result.append(ReportLine(
            batch_id=_batch_for(result, currency, day, None, fresh), merchant_id=merchant_id,
            batch_date=day, request_id=request_id, merchant_ref_number=f"PHANTOM-{request_id[-6:]}",
            trans_ref_no=f"{rng.randrange(10**15, 10**16)}", payment_method="Visa", subtype="VI", currency=currency,
            amount=amount, transaction_type="ics_bill", fee=price("capture", amount, currency),
        ))
    return result


def _unknown_id(rng: random.Random, known_ids: Container[str]) -> str:
    while True:
        candidate = f"{rng.randrange(10**21, 10**22)}"
        if candidate not in known_ids:
            return candidate


def apply_format(title: str, header: list[str], rows: list[list[str]], anomalies: ReportAnomalies,
                 day: date) -> tuple[str, list[str], list[list[str]], bool]:
    """The CSV's title, header and rows as a broken file has them; the flag says "cut the last line short"."""
    if not anomalies.applies_to(day) or not anomalies.any_format():
        return title, header, rows, False
    rng = _rng(anomalies, day, "format")
    rows = [list(r) for r in rows]
    amount_at = BATCH_DETAIL_COLUMNS.index("amount")
    for _ in range(anomalies.garble_amounts if rows else 0):
        rows[rng.randrange(len(rows))][amount_at] = GARBLED_AMOUNT
    for _ in range(anomalies.repeat_lines if rows else 0):
        index = rng.randrange(len(rows))
        rows.insert(index + 1, list(rows[index]))
    if anomalies.drop_header_column:
        header = [name for name in header if name != anomalies.drop_header_column]
    return title, header, rows, anomalies.truncate
