"""The frames that cross the reconciliation seams (``connectors/kit/columns.py``): built only when they follow their
schema and add up, and the same day as records and as columns."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from ledgerlink.connectors.kit.columns import FrameError, PostedFrame, SettlementFrame
from ledgerlink.model import (
    ExternalRef,
    Money,
    PostedKind,
    PostedPayment,
    Settlement,
    SettlementBatch,
    SettlementLine,
    SettlementLineKind,
)

DAY = date(2026, 11, 20)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def line(txn: str, kind: SettlementLineKind, amount: str, source_line: int, batch: str = "B1") -> SettlementLine:
    return SettlementLine(gateway="g", batch_id=batch, batch_date=DAY, transaction_id=txn, kind=kind,
                          amount=usd(amount), order_reference=f"O-{txn}", source_line=source_line,
                          payment_method="Visa")


SETTLEMENT = Settlement(gateway="g", merchant_id="m", day=DAY, sources=("report",), batches=(
    SettlementBatch(gateway="g", batch_id="B1", batch_date=DAY, currency="USD", lines=(
        line("T1", SettlementLineKind.CAPTURE, "10.00", 3), line("T2", SettlementLineKind.REFUND, "2.50", 4)),
        fees=usd("0.30"), chargebacks=usd("0.00"), chargeback_fees=usd("0.00"), deposit=usd("7.20")),
    SettlementBatch(gateway="g", batch_id="B2", batch_date=DAY, currency="USD", lines=(),
                    fees=usd("0.00"), chargebacks=usd("5.00"), chargeback_fees=usd("0.00"), deposit=usd("-5.00")),
))


def test_a_day_as_columns_and_back() -> None:
    frame = SettlementFrame.from_settlement(SETTLEMENT)
    assert frame.line_count == 2 and [b.lines for b in frame.batches] == [2, 0]
    assert (frame.batches[0].gross, frame.batches[0].refunds, frame.batches[0].net) == (
        usd("10.00"), usd("2.50"), usd("7.20"))
    assert frame.to_settlement() == SETTLEMENT


def test_a_frame_that_does_not_add_up_is_refused() -> None:
    frame = SettlementFrame.from_settlement(SETTLEMENT)
    more = frame.lines.with_columns(pl.when(pl.col("txn") == "T1").then(1001).otherwise(pl.col("cents"))
                                    .alias("cents"))
    with pytest.raises(FrameError, match=r"batch B1 says 2 lines, gross 10\.00 USD"):
        SettlementFrame(gateway="g", merchant_id="m", day=DAY, batches=frame.batches, lines=more)
    elsewhere = frame.lines.with_columns(pl.lit("B9").alias("batch"))
    with pytest.raises(FrameError, match="lines of batch B9 in USD belong to no batch"):
        SettlementFrame(gateway="g", merchant_id="m", day=DAY, batches=frame.batches, lines=elsewhere)
    with pytest.raises(FrameError, match="cents is Float64, not Int64"):
        SettlementFrame(gateway="g", merchant_id="m", day=DAY, batches=frame.batches,
                        lines=frame.lines.with_columns(pl.col("cents").cast(pl.Float64)))
    with pytest.raises(FrameError, match=r"missing \[.currency.\]"):
        SettlementFrame(gateway="g", merchant_id="m", day=DAY, batches=frame.batches,
                        lines=frame.lines.drop("currency"))
    with pytest.raises(FrameError, match="1 rows where kind unknown"):
        SettlementFrame(gateway="g", merchant_id="m", day=DAY, batches=frame.batches,
                        lines=frame.lines.with_columns(pl.when(pl.col("txn") == "T2").then(pl.lit("refnd"))
                                                       .otherwise(pl.col("kind")).alias("kind")))


def test_postings_as_columns() -> None:
    posted = [PostedPayment(ref=ExternalRef(system="sl", kind="ardoc", id="PA:1"), kind=PostedKind.RECEIPT,
                            amount=Money.of("500", "JPY"), posted_on=DAY,
                            posted_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC), transaction_id="T1",
                            customer_id="C1")]
    frame = PostedFrame.from_records(posted)
    assert frame.payments.row(0, named=True) == {
        "ref": "sl:ardoc:PA:1", "kind": "receipt", "cents": 500, "currency": "JPY", "posted_on": DAY,
        "posted_at": datetime(2026, 11, 20, 9, 30, tzinfo=UTC), "txn": "T1", "order_ref": None, "customer": "C1"}
    assert PostedFrame.empty().height == 0
    with pytest.raises(FrameError, match="1 rows where cents out of range"):
        PostedFrame(frame.payments.with_columns(pl.lit(-1, pl.Int64).alias("cents")))
    with pytest.raises(FrameError, match="1 rows with no ref"):
        PostedFrame(frame.payments.with_columns(pl.lit(None, pl.Utf8).alias("ref")))
