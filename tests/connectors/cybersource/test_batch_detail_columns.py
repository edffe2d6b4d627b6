"""The Payment Batch Detail report read into columns: the same lines, the same refusals (line, column, reason)
as the record reader, for any file; and the column checks, not the record reader, doing the work on a plain one."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerlink.connectors.cybersource.batch_detail import (
    REPORT,
    _read_columns,
    read_batch_detail_columns,
    read_payment_batch_detail,
)
from ledgerlink.connectors.kit.columns import SETTLEMENT_LINE_SCHEMA
from ledgerlink.model import InvalidInput

from .test_batch_detail import HEADER, ROWS, UNREADABLE, report


def outcome(read: object, data: bytes) -> object:
    """What a reader makes of ``data``: its lines as tuples and its batches, or the issues it raises."""
    try:
        result = read(data)  # type: ignore[operator]
    except InvalidInput as exc:
        return [(issue.field, issue.reason) for issue in exc.issues]
    lines = result.lines
    if isinstance(lines, list):
        rows = [(line.source_line, line.batch_id, line.transaction_id, line.order_reference,
                 line.reconciliation_id, line.payment_method, line.kind.value, line.amount.minor_units,
                 line.amount.currency) for line in lines]
    else:
        assert lines.schema == SETTLEMENT_LINE_SCHEMA
        rows = lines.rows()
    return rows, result.batches, (result.start, result.end)


def same_as_records(data: bytes) -> object:
    columns = outcome(read_batch_detail_columns, data)
    assert columns == outcome(read_payment_batch_detail, data)
    return columns


@pytest.mark.parametrize(("data", "field", "reason"), UNREADABLE)
def test_every_refusal_is_the_record_readers(data: bytes, field: str, reason: str) -> None:
    issues = same_as_records(data)
    assert isinstance(issues, list) and issues[0][0] == f"{REPORT} {field}" and reason in issues[0][1]


@pytest.mark.parametrize("data", [
    report(*ROWS),
    report(),
    report(*ROWS, end="\r\n\r\n\r\n"),  # blank lines at the end
    report(ROWS[0], "", ROWS[1]),  # a blank line between records: the record reader counts the lines
    report(*ROWS).replace(b"\r\n", b"\n"),
    b"\xef\xbb\xbf" + report(*ROWS),
    report(ROWS[0].replace("ORD-1", '"ORD-1, with ""quotes"""'), *ROWS[1:]),
    report(ROWS[0].replace("ORD-1", '"ORD-1\r\nsecond line"'), *ROWS[1:]),  # a line break inside a field
    report(ROWS[0], ROWS[0].replace("240301000001", "240301000009", 1)),  # one transaction in two batches
    report(*ROWS, header=HEADER + ",extra").replace(b"ics_bill\r\n", b"ics_bill,x\r\n")
    .replace(b"ics_credit\r\n", b"ics_credit,y\r\n"),
    report(ROWS[0].replace("2024-03-01", "20240301")),  # a date Python reads, the column check does not
    report(ROWS[0].replace("42.00", "00000000000000000042.00")),
])
def test_any_readable_file_gives_the_record_readers_lines(data: bytes) -> None:
    rows, _, _ = same_as_records(data)  # type: ignore[misc]
    assert rows or data == report()


def test_a_plain_file_is_read_by_the_column_checks() -> None:
    assert _read_columns(report(*ROWS), REPORT) is not None
    assert _read_columns(report(ROWS[0], "", ROWS[1]), REPORT) is None  # handed to the record reader


_field = st.sampled_from(["", "x", "42.00", "-10.50", "12.3.4", "0.00", "1.001", "500", "USD", "JPY", "BHD", "usd",
                          "ics_bill", "ics_credit", "2024-03-01", "2024-02-30", '"a,b"', "7000000000000000000001"])


@st.composite
def rows(draw: st.DrawFn) -> str:
    """A record: mostly a good one with a field or two changed, sometimes short or long."""
    fields = draw(st.sampled_from(ROWS)).split(",")
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        fields[draw(st.integers(min_value=0, max_value=len(fields) - 1))] = draw(_field)
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        fields = fields[: draw(st.integers(min_value=1, max_value=len(fields)))]
    elif draw(st.integers(min_value=0, max_value=9)) == 0:
        fields.append("extra")
    return ",".join(fields)


@settings(max_examples=300, deadline=None)
@given(st.lists(rows(), max_size=8), st.sampled_from(["\r\n", "\n", ""]))
def test_any_file_reads_the_same_both_ways(records: list[str], end: str) -> None:
    same_as_records(report(*records, end=end))


def test_a_quarter_million_lines_read_in_a_few_seconds() -> None:
    """A scale check, not a benchmark (a million lines: docs/benchmarks.md); the bound is loose."""
    rows = [f"2403010000{i % 4:02d},testrest,2024-03-01,{7 * 10**21 + i},ORD-{i},R{i},Visa,USD,"
            f"{'-' if i % 10 == 0 else ''}{i % 997 + 1}.{i % 100:02d},{'ics_credit' if i % 10 == 0 else 'ics_bill'}"
            for i in range(250_000)]
    data = report(*rows)
    started = time.perf_counter()
    columns = read_batch_detail_columns(data)
    elapsed = time.perf_counter() - started
    assert columns.lines.height == 250_000 and len(columns.batches) == 4
    assert columns.lines.row(10, named=True) == {
        "line": 13, "batch": "240301000002", "txn": str(7 * 10**21 + 10), "order_ref": "ORD-10", "recon": "R10",
        "method": "Visa", "kind": "refund", "cents": 1110, "currency": "USD"}
    assert elapsed < 10, f"250,000 lines took {elapsed:.1f}s"
