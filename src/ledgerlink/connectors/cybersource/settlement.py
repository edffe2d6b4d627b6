"""A day's canonical ``Settlement`` from the Payment Batch Detail lines and the day's net fundings.

The CSV says which transactions settled in which batch; it has no money other
than theirs. The net fundings (spec §7) say, per currency, what was purchased,
refunded, charged in fees and taken back by chargebacks, and the net that
reached the bank. Fees are FEES summaries; those whose ``paymentSubType`` is
``CHARGEBACK_FEE`` (configurable) are chargeback fees, the rest processing fees.

The two must agree: per currency, the CSV's captures and refunds must be the
net funding's purchases and refunds, and ``net = purchases − refunds − fees −
chargebacks`` must hold; a batch whose currency has no net-funding figures is
refused. When a currency has several batches, its fees, chargebacks and
chargeback fees are split over them in proportion to their gross with
``Money.allocate``, so the parts sum exactly and each batch's deposit is its own
net. Chargebacks are the day's net: those taken less those won back, negative
on a day more came back than were taken. A currency with money movements but
no batch that day (a chargeback on a quiet day) gets a batch without lines, id
``<YYYYMMDD>-<currency>``.

``build_settlement_frame`` does this over the report's columns (the lines stay a frame; each batch's captures
and refunds are exact integer sums of minor units); ``build_settlement`` over records, for small days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import polars as pl

from ledgerlink.connectors.cybersource import schemas as wire
from ledgerlink.connectors.cybersource.batch_detail import REPORT, BatchColumns, BatchDetail, BatchInfo
from ledgerlink.connectors.kit.columns import SettlementFrame, money_sum
from ledgerlink.model import (
    FieldIssue,
    InvalidInput,
    Money,
    MoneyError,
    Settlement,
    SettlementBatch,
    SettlementBatchTotals,
    SettlementLine,
    SettlementLineKind,
    currency_exponent,
)

NET_FUNDINGS = "net-fundings"
CHARGEBACK_FEE_SUBTYPE = "CHARGEBACK_FEE"
_TOTALS = (
    ("total_purchases", "totalPurchases", "PURCHASES"),
    ("total_refunds", "totalRefunds", "REFUNDS"),
    ("total_fees", "totalFees", "FEES"),
    ("total_chargebacks", "totalChargebacks", "CHARGEBACKS"),
    ("net_total", "netTotal", None),
)


@dataclass(frozen=True)
class Funding:
    """One currency's figures of a net-funding window."""

    currency: str
    purchases: Money
    refunds: Money
    fees: Money  # processing fees
    chargeback_fees: Money
    chargebacks: Money  # chargebacks less won reversals: negative on a day more were won than opened
    net: Money


def _fail(field: str, reason: str) -> InvalidInput:
    return InvalidInput(FieldIssue(f"{NET_FUNDINGS} {field}", reason), source=f"cybersource {NET_FUNDINGS}")


def _money(value: str | None, currency: str, field: str) -> Money:
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, "missing amount (a decimal string)")
    try:
        return Money.of(value, currency)
    except MoneyError as exc:
        raise _fail(field, str(exc)) from None


def _currency(code: str | None, field: str) -> str:
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not code.isupper():
        raise _fail(field, f"{code!r} is not a three-letter currency code")
    try:
        currency_exponent(code)
    except MoneyError as exc:
        raise _fail(field, str(exc)) from None
    return code


def read_net_fundings(doc: wire.NetFundings, *,
                      chargeback_fee_subtype: str = CHARGEBACK_FEE_SUBTYPE) -> dict[str, Funding]:
    """Per-currency figures, checked: summaries add up to their totals and the net follows from the totals."""
    totals: dict[str, dict[str, Money]] = {}
    for attribute, name, _ in _TOTALS:
        for index, item in enumerate(getattr(doc, attribute)):
            currency = _currency(item.currency, f"{name}[{index}].currency")
            figures = totals.setdefault(currency, {})
            if name in figures:
                raise _fail(f"{name}[{index}].currency", f"{currency} appears twice in {name}")
            figures[name] = _money(item.value, currency, f"{name}[{index}].value")
    sums: dict[tuple[str, str], Money] = {}
    chargeback_fees: dict[str, Money] = {}
    for index, summary in enumerate(doc.net_funding_summaries):
        path = f"netFundingSummaries[{index}]"
        currency = _currency(summary.currency_code, f"{path}.currencyCode")
        if summary.type not in ("PURCHASES", "REFUNDS", "FEES", "CHARGEBACKS"):
            raise _fail(f"{path}.type", f"{summary.type!r} is not PURCHASES, REFUNDS, FEES or CHARGEBACKS")
        amount_field = "fundedAmount" if summary.funded_amount is not None else "conveyedAmount"
        amount = _money(summary.funded_amount if summary.funded_amount is not None else summary.conveyed_amount,
                        currency, f"{path}.{amount_field}")
        key = (currency, summary.type)
        sums[key] = sums[key] + amount if key in sums else amount
        if summary.type == "FEES" and summary.payment_sub_type == chargeback_fee_subtype:
            chargeback_fees[currency] = chargeback_fees.get(currency, Money.zero(currency)) + amount
        totals.setdefault(currency, {})
    result = {}
    for currency, figures in totals.items():
        zero = Money.zero(currency)
        for _, name, kind in _TOTALS:
            if kind is not None and (currency, kind) in sums and sums[currency, kind] != figures.get(name, zero):
                raise _fail(f"{name}[{currency}]", f"is {figures.get(name, zero)} but the {kind} summaries add "
                                                   f"up to {sums[currency, kind]}")
        purchases, refunds = figures.get("totalPurchases", zero), figures.get("totalRefunds", zero)
        all_fees, chargebacks = figures.get("totalFees", zero), figures.get("totalChargebacks", zero)
        net = figures.get("netTotal", zero)
        if net != purchases - refunds - all_fees - chargebacks:
            raise _fail(f"netTotal[{currency}]", f"is {net}, not totalPurchases − totalRefunds − totalFees − "
                                                 f"totalChargebacks ({purchases - refunds - all_fees - chargebacks})")
        cb_fees = chargeback_fees.get(currency, zero)
        if cb_fees > all_fees:
            raise _fail(f"totalFees[{currency}]", f"is {all_fees}, less than the chargeback fees ({cb_fees})")
        result[currency] = Funding(currency, purchases, refunds, all_fees - cb_fees, cb_fees, chargebacks, net)
    return result


def build_settlement_frame(*, gateway: str, merchant_id: str, day: date, columns: BatchColumns,
                           funding: dict[str, Funding], sources: Sequence[str] = (),
                           report: str = REPORT) -> SettlementFrame:
    """The day's batches with their share of its fees, chargebacks and deposit; the lines stay columns."""
    capture = pl.col("kind") == SettlementLineKind.CAPTURE.value
    sums = columns.lines.group_by("batch").agg(
        money_sum(pl.when(capture).then(pl.col("cents")).otherwise(0)).alias("gross"),
        money_sum(pl.when(capture).then(0).otherwise(pl.col("cents"))).alias("refunds"),
        pl.len().alias("count"))
    units = {batch_id: (int(gross), int(refunds), int(count)) for batch_id, gross, refunds, count in sums.iter_rows()}
    batches = _batch_totals(gateway, day, columns.start, columns.end, columns.batches, units, funding, report)
    return SettlementFrame(gateway=gateway, merchant_id=merchant_id, day=day, batches=tuple(batches),
                           lines=columns.lines, sources=tuple(str(s) for s in sources))


def build_settlement(*, gateway: str, merchant_id: str, day: date, detail: BatchDetail,
                     funding: dict[str, Funding], sources: Sequence[str] = (),
                     report: str = REPORT) -> Settlement:
    """Batches with their lines (records) and their share of the day's fees, chargebacks and deposit."""
    lines_by_batch: dict[str, list[SettlementLine]] = {batch_id: [] for batch_id in detail.batches}
    for line in detail.lines:
        lines_by_batch[line.batch_id].append(line)
    units = {}
    for batch_id, lines in lines_by_batch.items():
        exponent = currency_exponent(detail.batches[batch_id].currency)
        units[batch_id] = (int(_total(lines, SettlementLineKind.CAPTURE).scaleb(exponent)),
                           int(_total(lines, SettlementLineKind.REFUND).scaleb(exponent)), len(lines))
    totals = _batch_totals(gateway, day, detail.start, detail.end, detail.batches, units, funding, report)
    batches = tuple(SettlementBatch(
        gateway=t.gateway, batch_id=t.batch_id, batch_date=t.batch_date, currency=t.currency,
        lines=tuple(lines_by_batch.get(t.batch_id, ())), fees=t.fees, chargebacks=t.chargebacks,
        chargeback_fees=t.chargeback_fees, deposit=t.deposit) for t in totals)
    # Every batch is validated (its figures add up) as it is built. Passing them to ``Settlement(...)`` would
    # run their validators again (pydantic re-runs a model's after-validators on instances given as field
    # values), for nothing; the other fields are plain and typed here.
    return Settlement.model_construct(gateway=gateway, merchant_id=merchant_id, day=day, batches=batches,
                                      sources=tuple(str(s) for s in sources))


def _total(lines: list[SettlementLine], kind: SettlementLineKind) -> Decimal:
    return sum((line.amount.amount for line in lines if line.kind is kind), Decimal(0))


def _batch_totals(gateway: str, day: date, start: date, end: date, batches: dict[str, BatchInfo],
                  units: dict[str, tuple[int, int, int]], funding: dict[str, Funding],
                  report: str) -> list[SettlementBatchTotals]:
    """Each batch's figures: its captures and refunds (``units``: minor units and line count per batch id),
    and its share of its currency's fees, chargebacks and chargeback fees, in proportion to its gross."""
    if not start <= day <= end:
        raise InvalidInput(FieldIssue(f"{report} line 1, column date range",
                                      f"the report covers {start} to {end}, not {day}"),
                           source=f"cybersource {report}")
    by_currency: dict[str, list[str]] = {}
    for batch_id, info in batches.items():
        if info.currency not in funding:
            raise InvalidInput(FieldIssue(f"{report} line {info.first_line}, column currency",
                                          f"batch {batch_id} is in {info.currency} but the net funding for {day} "
                                          f"has no {info.currency} figures"), source=f"cybersource {report}")
        by_currency.setdefault(info.currency, []).append(batch_id)
    result: list[SettlementBatchTotals] = []
    for currency in sorted(funding):
        result.extend(_currency_batches(gateway, day, funding[currency], by_currency.get(currency, []), batches,
                                        units, report))
    return result


def _currency_batches(gateway: str, day: date, funding: Funding, batch_ids: list[str],
                      batches: dict[str, BatchInfo], units: dict[str, tuple[int, int, int]],
                      report: str) -> list[SettlementBatchTotals]:
    currency = funding.currency
    gross = [units.get(b, (0, 0, 0))[0] for b in batch_ids]
    refunds = [units.get(b, (0, 0, 0))[1] for b in batch_ids]
    for name, figure, found in (("totalPurchases", funding.purchases, sum(gross)),
                                ("totalRefunds", funding.refunds, sum(refunds))):
        if figure.minor_units != found:
            raise _fail(f"{name}[{currency}]", f"is {figure} but the {report} lines for the day add up to "
                                               f"{Money.from_minor_units(found, currency)}")
    if not batch_ids:
        if all(m.is_zero() for m in (funding.fees, funding.chargebacks, funding.chargeback_fees, funding.net)):
            return []
        batch_ids, gross, refunds = [f"{day:%Y%m%d}-{currency}"], [0], [0]
    weights = gross if sum(gross) else [1] * len(batch_ids)
    fees = funding.fees.allocate(weights)
    chargebacks = funding.chargebacks.allocate(weights)
    chargeback_fees = funding.chargeback_fees.allocate(weights)
    result = []
    for i, batch_id in enumerate(batch_ids):
        info = batches.get(batch_id)
        net = Money.from_minor_units(gross[i] - refunds[i], currency) - fees[i] - chargebacks[i] - chargeback_fees[i]
        result.append(SettlementBatchTotals(
            gateway=gateway, batch_id=batch_id, batch_date=info.batch_date if info else day, currency=currency,
            lines=units.get(batch_id, (0, 0, 0))[2], gross=Money.from_minor_units(gross[i], currency),
            refunds=Money.from_minor_units(refunds[i], currency), fees=fees[i], chargebacks=chargebacks[i],
            chargeback_fees=chargeback_fees[i], deposit=net,
        ))
    return result
