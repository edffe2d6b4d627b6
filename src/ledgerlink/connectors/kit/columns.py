"""A settlement day and the back office's postings as columns: how reconciliation's volume crosses the seams.

A large merchant's day is a million settlement lines against as many postings. As records (``SettlementLine``,
``PostedPayment``: one validated pydantic object each) that costs 20-25 µs and several hundred bytes a line,
minutes and gigabytes for the day; as columns it is well under a microsecond and about 150 bytes a line. So
``PaymentGateway.settlement_frame`` and ``BackOffice.posted_frame`` hand over polars frames with a fixed
schema, and the record forms stay for small reads (``settlement``, ``posted_payments``).

Money in a frame is exact: ``cents`` is the amount in the currency's minor units (``Int64``) and ``currency``
its ISO 4217 code, never a float; totals are summed as ``Int128`` and become ``Money`` again per batch.
``kind`` holds the canonical enum values (``SettlementLineKind``, ``PostedKind``). A frame whose columns or
types differ from the schema is refused where it is built, so a connector cannot hand a flow something else.

The frames live here, beside the seams that carry them, rather than in ``model/``: the canonical model stays
plain records with no data-frame library (docs/decisions/0002-settlement-in-columns.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import groupby

import polars as pl

from ledgerlink.model import (
    Money,
    PostedKind,
    PostedPayment,
    Settlement,
    SettlementBatch,
    SettlementBatchTotals,
    SettlementLine,
    SettlementLineKind,
)

SETTLEMENT_LINE_SCHEMA = pl.Schema({
    "line": pl.Int64,  # where the line is in its source report; unique within a settlement
    "batch": pl.Utf8,  # the processor's batch id
    "txn": pl.Utf8,  # the gateway's transaction id
    "order_ref": pl.Utf8,  # the merchant's order reference, or null
    "recon": pl.Utf8,  # the processor's reconciliation id, or null
    "method": pl.Utf8,  # payment method (card brand), or null
    "kind": pl.Utf8,  # SettlementLineKind: capture | refund
    "cents": pl.Int64,  # the amount in minor units, positive (kind gives the direction)
    "currency": pl.Utf8,  # ISO 4217, the batch's
})
POSTED_PAYMENT_SCHEMA = pl.Schema({
    "ref": pl.Utf8,  # the back-office document, as an ExternalRef key
    "kind": pl.Utf8,  # PostedKind: receipt | refund
    "cents": pl.Int64,  # the amount in minor units, not negative (kind gives the direction)
    "currency": pl.Utf8,
    "posted_on": pl.Date,  # the back office's day of the document
    "posted_at": pl.Datetime("us", "UTC"),  # when it was entered, or null
    "txn": pl.Utf8,  # the gateway transaction (or refund) it came from, or null
    "order_ref": pl.Utf8,  # the order reference, or null
    "customer": pl.Utf8,  # the back office's customer id, or null
})
_LINE_REQUIRED = ("line", "batch", "txn", "kind", "cents", "currency")
_POSTED_REQUIRED = ("ref", "kind", "cents", "currency", "posted_on")


class FrameError(ValueError):
    """A frame that does not follow its schema or its rules (a connector bug, not bad input)."""


def _conform(frame: pl.DataFrame, schema: pl.Schema, what: str) -> pl.DataFrame:
    if set(frame.columns) != set(schema.names()):
        missing, extra = set(schema.names()) - set(frame.columns), set(frame.columns) - set(schema.names())
        raise FrameError(f"{what}: columns differ from the schema (missing {sorted(missing)}, extra {sorted(extra)})")
    wrong = [f"{name} is {frame.schema[name]}, not {dtype}" for name, dtype in schema.items()
             if frame.schema[name] != dtype]
    if wrong:
        raise FrameError(f"{what}: " + "; ".join(wrong))
    return frame.select(schema.names())


def _check_rows(frame: pl.DataFrame, required: Sequence[str], kinds: Sequence[str], what: str, *,
                zero: bool) -> None:
    checks = frame.select(
        *(pl.col(name).null_count().alias(name) for name in required),
        (~pl.col("kind").is_in(list(kinds))).sum().alias("kind_unknown"),
        ((pl.col("cents") < 0) if zero else (pl.col("cents") <= 0)).sum().alias("cents_out_of_range"),
    ).row(0, named=True)
    problems = [f"{n} rows with no {name}" if name in required else f"{n} rows where {name.replace('_', ' ')}"
                for name, n in checks.items() if n]
    if problems:
        raise FrameError(f"{what}: " + "; ".join(problems))


def money_sum(cents: pl.Expr) -> pl.Expr:
    """An exact total of minor units (``Int128``: a million Int64 amounts cannot overflow it)."""
    return cents.cast(pl.Int128).sum()


def empty_lines() -> pl.DataFrame:
    return pl.DataFrame(schema=SETTLEMENT_LINE_SCHEMA)


@dataclass(frozen=True, eq=False)
class SettlementFrame:
    """Everything a gateway reported for one merchant and one day, its lines as columns.

    ``batches`` hold each batch's figures; ``lines`` (``SETTLEMENT_LINE_SCHEMA``) every line of every batch.
    Built only if they agree: each line's batch is one of ``batches``, in its currency, and each batch's
    captures, refunds and line count are exactly what its lines add up to.
    """

    gateway: str
    merchant_id: str
    day: date
    batches: tuple[SettlementBatchTotals, ...]
    lines: pl.DataFrame
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        what = f"{self.gateway} settlement {self.day}"
        lines = _conform(self.lines, SETTLEMENT_LINE_SCHEMA, what)
        _check_rows(lines, _LINE_REQUIRED, [k.value for k in SettlementLineKind], what, zero=False)
        object.__setattr__(self, "lines", lines)
        by_id = {batch.batch_id: batch for batch in self.batches}
        if len(by_id) != len(self.batches):
            raise FrameError(f"{what}: a batch id appears twice")
        capture = pl.col("kind") == SettlementLineKind.CAPTURE.value
        sums = lines.group_by("batch", "currency").agg(
            pl.len().alias("count"),
            money_sum(pl.when(capture).then(pl.col("cents")).otherwise(0)).alias("gross"),
            money_sum(pl.when(capture).then(0).otherwise(pl.col("cents"))).alias("refunds"),
        )
        seen: set[str] = set()
        for batch_id, currency, count, gross, refunds in sums.iter_rows():
            batch = by_id.get(batch_id)
            if batch is None or batch.currency != currency or batch_id in seen:
                raise FrameError(f"{what}: lines of batch {batch_id} in {currency} belong to no batch of "
                                 f"that currency")
            seen.add(batch_id)
            if (count, gross, refunds) != (batch.lines, batch.gross.minor_units, batch.refunds.minor_units):
                raise FrameError(f"{what}: batch {batch_id} says {batch.lines} lines, gross {batch.gross}, "
                                 f"refunds {batch.refunds}; its lines are {count}, "
                                 f"{Money.from_minor_units(gross, currency)}, "
                                 f"{Money.from_minor_units(refunds, currency)}")
        for batch in self.batches:
            if batch.batch_id not in seen and batch.lines:
                raise FrameError(f"{what}: batch {batch.batch_id} says {batch.lines} lines and has none")

    @property
    def line_count(self) -> int:
        return self.lines.height

    def to_settlement(self) -> Settlement:
        """The same day as records, one ``SettlementLine`` each: for small days and for reading one closely."""
        by_batch: dict[str, list[SettlementLine]] = {batch.batch_id: [] for batch in self.batches}
        dates = {batch.batch_id: batch.batch_date for batch in self.batches}
        ordered = self.lines.sort("batch", "line", maintain_order=True)
        for batch_id, rows in groupby(ordered.iter_rows(named=True), key=lambda row: row["batch"]):
            by_batch[batch_id].extend(SettlementLine(
                gateway=self.gateway, batch_id=batch_id, batch_date=dates[batch_id], transaction_id=row["txn"],
                order_reference=row["order_ref"], reconciliation_id=row["recon"], kind=SettlementLineKind(row["kind"]),
                amount=Money.from_minor_units(row["cents"], row["currency"]), payment_method=row["method"],
                source_line=row["line"]) for row in rows)
        batches = tuple(SettlementBatch(
            gateway=b.gateway, batch_id=b.batch_id, batch_date=b.batch_date, currency=b.currency,
            lines=tuple(by_batch[b.batch_id]), fees=b.fees, chargebacks=b.chargebacks,
            chargeback_fees=b.chargeback_fees, deposit=b.deposit) for b in self.batches)
        return Settlement(gateway=self.gateway, merchant_id=self.merchant_id, day=self.day, batches=batches,
                          sources=self.sources)

    @classmethod
    def from_settlement(cls, settlement: Settlement) -> SettlementFrame:
        """Records as columns (a small day, or a connector that reads its report line by line)."""
        rows = [(line.source_line if line.source_line is not None else index, batch.batch_id, line.transaction_id,
                 line.order_reference, line.reconciliation_id, line.payment_method, line.kind.value,
                 line.amount.minor_units, line.amount.currency)
                for batch in settlement.batches for index, line in enumerate(batch.lines, start=1)]
        lines = pl.DataFrame(rows, schema=SETTLEMENT_LINE_SCHEMA, orient="row")
        return cls(gateway=settlement.gateway, merchant_id=settlement.merchant_id, day=settlement.day,
                   batches=tuple(batch.totals() for batch in settlement.batches), lines=lines,
                   sources=settlement.sources)


@dataclass(frozen=True, eq=False)
class PostedFrame:
    """Receipts and refunds a back office holds from a gateway, as columns (``POSTED_PAYMENT_SCHEMA``)."""

    payments: pl.DataFrame

    def __post_init__(self) -> None:
        payments = _conform(self.payments, POSTED_PAYMENT_SCHEMA, "posted payments")
        _check_rows(payments, _POSTED_REQUIRED, [k.value for k in PostedKind], "posted payments", zero=True)
        object.__setattr__(self, "payments", payments)

    @property
    def height(self) -> int:
        return self.payments.height

    @classmethod
    def empty(cls) -> PostedFrame:
        return cls(pl.DataFrame(schema=POSTED_PAYMENT_SCHEMA))

    @classmethod
    def from_records(cls, posted: Sequence[PostedPayment]) -> PostedFrame:
        rows = [(p.ref.key, p.kind.value, p.amount.minor_units, p.amount.currency, p.posted_on, p.posted_at,
                 p.transaction_id, p.order_reference, p.customer_id) for p in posted]
        return cls(pl.DataFrame(rows, schema=POSTED_PAYMENT_SCHEMA, orient="row"))
