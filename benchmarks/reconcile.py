"""Reconciliation benchmark: 1,000,000 settlement lines against 1,000,000 posted payments.

    .venv/bin/python benchmarks/reconcile.py [--lines 1000000] [--path columns|flow]

Builds a Payment Batch Detail report (the classic Cybersource CSV layout: title line, header, CRLF, refunds
negative) and the back office's postings for the same day, with known discrepancies of every kind injected,
then times what a run does with them, in a process of its own, and checks that every injected discrepancy,
and nothing else, was found; prints the time and the peak resident memory of that process.

``--path columns`` (default) times the matching core: the report read straight into columns (polars),
match (``ledgerlink.flows.matching``), and the balanced settlement journal of every batch.

``--path flow`` times what ``SettlementReconciliation.run`` does with the same data today: the connector's
reader (``read_payment_batch_detail``: one canonical ``SettlementLine`` per line), ``build_settlement``,
the postings as the SL connector makes them (one ``PostedPayment`` per row, through its ``PostedReader``),
both turned into frames (``lines_frame``, ``postings_frame``), match and the journals. No HTTP: the two
systems' answers are already in memory, so this is a lower bound for a real run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta

import polars as pl

from ledgerlink.flows.matching import LINE_SCHEMA, POSTING_SCHEMA, MatchSettings, match
from ledgerlink.flows.settlement import JOURNAL_ACCOUNTS, settlement_journal
from ledgerlink.model import GLAccount, Money, SettlementBatch

DAY = date(2026, 11, 20)
INJECTED = 250  # of each kind


def _draw(ids: pl.Expr, seed: int, below: int) -> pl.Expr:
    """A deterministic pseudo-random integer in [0, below) per id (polars' hash, no other dependency)."""
    return (ids.hash(seed) % below).cast(pl.Int64)


def report_bytes(n: int) -> tuple[bytes, pl.DataFrame]:
    """The CSV report and, for building postings, the same lines as a frame."""
    frame = pl.DataFrame({"id": pl.int_range(n, dtype=pl.Int64, eager=True)}).with_columns(
        (_draw(pl.col("id"), 1, 499_900) + 100).alias("cents"),
        (_draw(pl.col("id"), 2, 100) < 5).alias("refund"),
    )
    frame = frame.with_columns(
        (pl.col("id") % 4).cast(pl.Utf8).str.zfill(12).alias("batch_id"),
        pl.lit("testrest").alias("merchant_id"),
        pl.lit(DAY.isoformat()).alias("batch_date"),
        (pl.col("id") + 7_000_000_000_000_000_000).cast(pl.Utf8).str.zfill(22).alias("request_id"),
        pl.format("WEB-{}", pl.col("id").cast(pl.Utf8).str.zfill(8)).alias("merchant_ref_number"),
        pl.col("id").cast(pl.Utf8).str.zfill(16).alias("trans_ref_no"),
        pl.lit("Visa").alias("payment_method"),
        pl.lit("USD").alias("currency"),
        pl.format("{}{}.{}", pl.when(pl.col("refund")).then(pl.lit("-")).otherwise(pl.lit("")),
                  (pl.col("cents") // 100).cast(pl.Utf8), (pl.col("cents") % 100).cast(pl.Utf8).str.zfill(2))
        .alias("amount"),
        pl.when(pl.col("refund")).then(pl.lit("ics_credit")).otherwise(pl.lit("ics_bill")).alias("transaction_type"),
    )
    columns = ["batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no",
               "payment_method", "currency", "amount", "transaction_type"]
    out = io.BytesIO()
    out.write(f"Payment Batch Detail Report,1.0,{DAY} to {DAY},,,,,,,\r\n".encode())
    frame.select(columns).write_csv(out, line_terminator="\r\n")
    return out.getvalue(), frame


def read_report(data: bytes) -> pl.DataFrame:
    """Columns of the report, as the matcher wants them (amounts as exact integer minor units)."""
    raw = pl.read_csv(io.BytesIO(data), skip_rows=1, infer_schema=False,
                      columns=["batch_id", "request_id", "merchant_ref_number", "currency", "amount"])
    negative = raw["amount"].str.starts_with("-")
    digits = raw["amount"].str.strip_prefix("-").str.split_exact(".", 1)
    cents = digits.struct.field("field_0").cast(pl.Int64) * 100 + digits.struct.field("field_1").cast(pl.Int64)
    return pl.DataFrame({
        "line": pl.int_range(raw.height, eager=True).cast(pl.Int64) + 3,
        "txn": raw["request_id"], "order_ref": raw["merchant_ref_number"],
        "kind": pl.select(pl.when(negative).then(pl.lit("refund")).otherwise(pl.lit("capture"))).to_series(),
        "cents": cents, "currency": raw["currency"], "batch": raw["batch_id"],
    }).cast(LINE_SCHEMA)


def postings_for(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    postings = frame.select(
        pl.col("id").alias("post"), pl.col("request_id").alias("txn"), pl.col("merchant_ref_number").alias("order_ref"),
        pl.when(pl.col("refund")).then(pl.lit("refund")).otherwise(pl.lit("capture")).alias("kind"),
        pl.col("cents"), pl.col("currency"), pl.lit(DAY).alias("posted_on"),
        _draw(pl.col("id"), 3, 24).cast(pl.Int8).alias("hour"),
        pl.format("PA:{}", pl.col("id")).alias("ref"),
    ).cast(POSTING_SCHEMA)
    k = INJECTED
    ids = postings["post"]
    postings = postings.with_columns(
        pl.when(ids < k).then(pl.col("cents") + 1).otherwise(pl.col("cents")).alias("cents"),  # amount mismatch
        pl.when((ids >= k) & (ids < 2 * k)).then(pl.lit("EUR")).otherwise(pl.col("currency")).alias("currency"),
        pl.when((ids >= 2 * k) & (ids < 3 * k)).then(pl.lit(None)).otherwise(pl.col("txn")).alias("txn"),  # by ref
        pl.when((ids >= 3 * k) & (ids < 4 * k)).then(pl.lit(DAY - timedelta(days=5)))
        .otherwise(pl.col("posted_on")).alias("posted_on"),  # will be missing in the settlement
    )
    postings = postings.filter((ids < 4 * k) | (ids >= 5 * k))  # settled, never posted: missing in the ERP
    dupes = postings.filter((pl.col("post") >= 5 * k) & (pl.col("post") < 6 * k)).with_columns(
        (pl.col("post") + 10_000_000).alias("post"), pl.format("PA:dup{}", pl.col("post")).alias("ref"))
    postings = pl.concat([postings, dupes])  # posted twice
    expected = {"amount_mismatch": k, "currency_mismatch": k, "missing_in_settlement": k,
                "missing_in_erp": k, "duplicate": k}
    return postings, expected


def peak_rss_mb() -> int:
    """This process's peak resident set (VmHWM). ``ru_maxrss`` would not do: Linux keeps it across exec,
    so a child started from a big parent would report the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def generate(directory: str, n: int) -> dict[str, int]:
    """Write the report and the postings to ``directory``; returns the injected discrepancies."""
    data, frame = report_bytes(n)
    postings, expected = postings_for(frame)
    # the lines of the postings marked "missing in settlement" must not be in the report
    late = set(postings.filter(pl.col("posted_on") < DAY)["txn"].to_list())
    report_lines = data.split(b"\r\n")
    kept = report_lines[:2] + [line for line in report_lines[2:] if line and line.split(b",")[3].decode() not in late]
    with open(os.path.join(directory, "report.csv"), "wb") as handle:
        handle.write(b"\r\n".join(kept) + b"\r\n")
    postings.write_parquet(os.path.join(directory, "postings.parquet"))
    return expected


def run(directory: str) -> dict[str, object]:
    """The measured part, in a process of its own: read, match, journal."""
    with open(os.path.join(directory, "report.csv"), "rb") as handle:
        data = handle.read()
    postings = pl.read_parquet(os.path.join(directory, "postings.parquet"))
    rss_before = peak_rss_mb()

    started = time.perf_counter()
    lines = read_report(data)
    del data
    read = time.perf_counter()
    result = match(lines, postings, day=DAY, settings=MatchSettings(lag_days=2))
    matched = time.perf_counter()
    totals = lines.group_by("batch", "kind").agg(pl.col("cents").sum())
    accounts = {name: GLAccount(account=str(1000 + i)) for i, name in enumerate(JOURNAL_ACCOUNTS)}
    journals = 0
    for batch_id in sorted(lines["batch"].unique().to_list()):
        sums = dict(totals.filter(pl.col("batch") == batch_id).select("kind", "cents").iter_rows())
        gross, refunds = sums.get("capture", 0), sums.get("refund", 0)
        fees = gross * 29 // 1000
        batch = SettlementBatch(gateway="cybersource", batch_id=batch_id, batch_date=DAY, currency="USD", lines=(),
                                fees=Money.from_minor_units(fees, "USD"), chargebacks=Money.zero("USD"),
                                chargeback_fees=Money.zero("USD"), deposit=Money.from_minor_units(-fees, "USD"))
        # these batches carry totals only (lines=()), so gross/refunds come from the lines above
        del gross, refunds
        if settlement_journal(batch, accounts, f"journal:{batch_id}") is not None:
            journals += 1
    finished = time.perf_counter()
    return {
        "path": "columns", "lines": lines.height, "postings": postings.height, "journals": journals,
        "seconds": {"read_report": round(read - started, 2), "match": round(matched - read, 2),
                    "journals": round(finished - matched, 3), "total": round(finished - started, 2)},
        "rss_before_run_mb": round(rss_before),
        "peak_rss_mb": peak_rss_mb(),
        "counts": result.counts(), "discrepancies_found": dict(result.discrepancies.group_by("type").len().iter_rows()),
    }


def run_flow(directory: str) -> dict[str, object]:
    """The measured part of ``--path flow``: the canonical records a run builds today, then the same match."""
    from ledgerlink.connectors.cybersource.batch_detail import read_payment_batch_detail
    from ledgerlink.connectors.cybersource.settlement import Funding, build_settlement
    from ledgerlink.connectors.dynamics_sl.movement import PostedReader
    from ledgerlink.connectors.dynamics_sl.settings import DynamicsSLSettings
    from ledgerlink.flows.settlement import lines_frame, postings_frame

    with open(os.path.join(directory, "report.csv"), "rb") as handle:
        data = handle.read()
    table = pl.read_parquet(os.path.join(directory, "postings.parquet"))
    rows = table.select(
        pl.when(pl.col("kind") == "refund").then(pl.lit("DM")).otherwise(pl.lit("PA")).alias("DocType"),
        pl.col("post").cast(pl.Utf8).str.zfill(10).alias("RefNbr"),
        pl.format("{}.{}", (pl.col("cents") // 100).cast(pl.Utf8),
                  (pl.col("cents") % 100).cast(pl.Utf8).str.zfill(2)).alias("CuryOrigDocAmt"),
        pl.col("currency").alias("CuryId"),
        pl.col("posted_on").dt.strftime("%m/%d/%Y").alias("DocDate"),
        pl.format("{}T{}:00", pl.col("posted_on").cast(pl.Utf8), pl.col("hour").cast(pl.Utf8).str.zfill(2))
        .alias("Crtd_DateTime"),
        pl.col("txn").fill_null("").alias("User1"), pl.col("order_ref").alias("CustOrdNbr"),
        pl.lit("C0001").alias("CustId"), pl.lit("000001").alias("BatNbr"),
    )
    del table
    rss_before = peak_rss_mb()

    started = time.perf_counter()
    detail = read_payment_batch_detail(data)
    del data
    money: dict[str, list[int]] = {}
    for line in detail.lines:
        sums = money.setdefault(line.amount.currency, [0, 0])
        sums[line.kind.value == "refund"] += line.amount.minor_units
    funding = {}
    for currency, (gross, refunds) in money.items():
        fees = gross * 29 // 1000

        def usd(units: int, currency: str = currency) -> Money:
            return Money.from_minor_units(units, currency)

        funding[currency] = Funding(currency, usd(gross), usd(refunds), usd(fees), usd(0), usd(0),
                                    usd(gross - refunds - fees))
    settlement = build_settlement(gateway="cybersource", merchant_id="testrest", day=DAY, detail=detail,
                                  funding=funding)
    del detail
    read = time.perf_counter()
    reader = PostedReader(DynamicsSLSettings(api_key="x"))
    posted = [reader(row) for row in rows.iter_rows(named=True)]
    del rows
    lines, postings = lines_frame(settlement), postings_frame(posted)
    framed = time.perf_counter()
    result = match(lines, postings, day=DAY, settings=MatchSettings(lag_days=2))
    matched = time.perf_counter()
    accounts = {name: GLAccount(account=str(1000 + i)) for i, name in enumerate(JOURNAL_ACCOUNTS)}
    journals = sum(settlement_journal(batch, accounts, f"journal:{batch.batch_id}") is not None
                   for batch in settlement.batches)
    finished = time.perf_counter()
    return {
        "path": "flow", "lines": lines.height, "postings": postings.height, "journals": journals,
        "seconds": {"read_report_and_build_settlement": round(read - started, 2),
                    "build_postings": round(framed - read, 2), "match": round(matched - framed, 2),
                    "journals": round(finished - matched, 3), "total": round(finished - started, 2)},
        "rss_before_run_mb": round(rss_before),
        "peak_rss_mb": peak_rss_mb(),
        "counts": result.counts(), "discrepancies_found": dict(result.discrepancies.group_by("type").len().iter_rows()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--path", choices=("columns", "flow"), default="columns",
                        help="columns: the matching core; flow: with the canonical records a run builds today")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: the measured child process
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_flow(args.run) if args.path == "flow" else run(args.run)))
        return
    with tempfile.TemporaryDirectory(prefix="ledgerlink-reconcile-") as directory:
        expected = generate(directory, args.lines)
        child = subprocess.run([sys.executable, __file__, "--path", args.path, "--run", directory],
                               capture_output=True, text=True, check=True)
    report = json.loads(child.stdout)
    report.update(cpus=os.cpu_count(), python=sys.version.split()[0], discrepancies_injected=expected,
                  all_found_nothing_else=report["discrepancies_found"] == expected)
    print(json.dumps(report, indent=2))
    if not report["all_found_nothing_else"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
