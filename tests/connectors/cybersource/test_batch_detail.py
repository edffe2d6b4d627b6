"""Reading the Payment Batch Detail CSV: what it yields, and every way a file is refused with line and column."""

from __future__ import annotations

from datetime import date

import pytest

from ledgerlink.connectors.cybersource.batch_detail import COLUMNS, REPORT, read_payment_batch_detail
from ledgerlink.model import InvalidInput, Money, SettlementLineKind

TITLE = "Payment Batch Detail Report,1.0,2024-03-01 to 2024-03-01,,,,,,,"
HEADER = ",".join(COLUMNS)
ROWS = [
    "240301000001,testrest,2024-03-01,7000000000000000000001,ORD-1,RECON1,Visa,USD,42.00,ics_bill",
    "240301000001,testrest,2024-03-01,7000000000000000000002,ORD-2,RECON2,MasterCard,USD,-10.50,ics_credit",
    "240301000002,testrest,2024-03-01,7000000000000000000003,,RECON3,Visa,JPY,500,ics_bill",
]


def report(*rows: str, title: str = TITLE, header: str = HEADER, end: str = "\r\n") -> bytes:
    return ("\r\n".join([title, header, *rows]) + end).encode()


def refused(data: bytes) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInput) as exc:
        read_payment_batch_detail(data)
    assert exc.value.source == f"cybersource {REPORT}"
    return [(i.field, i.reason) for i in exc.value.issues]


def test_lines_are_canonical() -> None:
    detail = read_payment_batch_detail(report(*ROWS))
    assert (detail.start, detail.end) == (date(2024, 3, 1), date(2024, 3, 1))
    first, second, third = detail.lines
    assert (first.batch_id, first.transaction_id, first.order_reference, first.reconciliation_id, first.kind,
            first.amount, first.payment_method, first.source_line, first.gateway) == (
        "240301000001", "7000000000000000000001", "ORD-1", "RECON1", SettlementLineKind.CAPTURE,
        Money.of("42.00", "USD"), "Visa", 3, "cybersource")
    assert (second.kind, second.amount, second.signed_amount) == (
        SettlementLineKind.REFUND, Money.of("10.50", "USD"), Money.of("-10.50", "USD"))
    assert third.order_reference is None and third.amount == Money.of(500, "JPY")
    assert {b: (i.currency, i.first_line) for b, i in detail.batches.items()} == {
        "240301000001": ("USD", 3), "240301000002": ("JPY", 5)}


def test_columns_by_name_quotes_bom_lf_and_extra_columns() -> None:
    header = "transaction_type,amount,currency,payment_method,trans_ref_no,merchant_ref_number,request_id," \
             "batch_date,merchant_id,batch_id,payment_processor"
    row = 'ics_bill,1.00,USD,Visa,R1,"ORD, with ""quotes""",7000000000000000000009,2024-03-01,testrest,B1,vdcvantiv'
    data = b"\xef\xbb\xbf" + f"{TITLE}\n{header}\n{row}\n\n".encode()
    (line,) = read_payment_batch_detail(data).lines
    assert (line.order_reference, line.batch_id, line.amount, line.source_line) == (
        'ORD, with "quotes"', "B1", Money.of("1.00", "USD"), 3)


def test_the_same_transaction_in_two_batches_is_data_not_an_error() -> None:
    moved = ROWS[0].replace("240301000001", "240301000009", 1)
    lines = read_payment_batch_detail(report(ROWS[0], moved)).lines
    assert [(line.batch_id, line.transaction_id) for line in lines] == [
        ("240301000001", "7000000000000000000001"), ("240301000009", "7000000000000000000001")]


def test_an_empty_day_has_no_lines() -> None:
    detail = read_payment_batch_detail(report())
    assert detail.lines == [] and detail.batches == {}


UNREADABLE = [
    (b"", "line 1, column report name", "the report is empty"),
    (b"Transaction Request Report,1.0,2024-03-01 to 2024-03-01\r\n", "line 1, column report name",
     'is not "Payment Batch Detail Report"'),
    (b"Payment Batch Detail Report,1.0,yesterday,,,,,,,\r\n", "line 1, column date range",
     'is not "YYYY-MM-DD to YYYY-MM-DD"'),
    (f"{TITLE}\r\n".encode(), "line 2, column batch_id", "ends before its column line"),
    (report(ROWS[0], header=HEADER.replace(",amount", "")), "line 2, column amount", "has no amount column"),
    (report(header=HEADER + ",currency"), "line 2, column currency", "names currency twice"),
    (report(ROWS[0], ROWS[1][:40], end=""), "line 4, column merchant_ref_number",
     "truncated: the file ends after 4 of 10 fields"),
    (report(ROWS[1][:40], ROWS[0]), "line 3, column merchant_ref_number", "4 fields but the column line has 10"),
    (report(ROWS[0] + ",extra"), "line 3, column #11", "11 fields but the column line has 10"),
    (report(ROWS[0].replace("42.00", "12.3.4")), "line 3, column amount", '"12.3.4" is not a decimal amount'),
    (report(ROWS[0].replace("42.00", "1e3")), "line 3, column amount", '"1e3" is not a decimal amount'),
    (report(ROWS[0].replace("42.00", "")), "line 3, column amount", '"" is not a decimal amount'),
    (report(ROWS[0].replace("42.00", "42.001")), "line 3, column amount", "more decimal places than USD's 2"),
    (report(ROWS[0].replace("42.00", "-42.00")), "line 3, column amount", "ics_bill amounts are positive"),
    (report(ROWS[1].replace("-10.50", "10.50")), "line 3, column amount", "ics_credit amounts are negative"),
    (report(ROWS[0].replace("42.00", "0.00")), "line 3, column amount", "an amount of zero settles nothing"),
    (report(ROWS[0].replace("42.00", "1" * 40)), "line 3, column amount", "too large"),
    (report(ROWS[0].replace("USD", "XYZ")), "line 3, column currency", "not an ISO 4217 currency"),
    (report(ROWS[0].replace("USD", "usd")), "line 3, column currency", "not a three-letter currency code"),
    (report(ROWS[0].replace("USD", "US")), "line 3, column currency", "not a three-letter currency code"),
    (report(ROWS[0].replace("ics_bill", "ics_auth")), "line 3, column transaction_type",
     "neither ics_bill nor ics_credit"),
    (report(ROWS[0].replace("2024-03-01", "03/01/2024")), "line 3, column batch_date", "is not a date"),
    (report(ROWS[0].replace("240301000001", "", 1)), "line 3, column batch_id", "missing batch id"),
    (report(ROWS[0].replace("7000000000000000000001", "")), "line 3, column request_id", "missing request id"),
    (report(ROWS[0], ROWS[1], ROWS[0]), "line 5, column batch_id", "repeats line 3 exactly"),
    (report(ROWS[0], ROWS[1].replace("USD", "EUR")), "line 4, column currency",
     "batch 240301000001 is in USD (line 3); this line is in EUR"),
    (report(ROWS[0], ROWS[1].replace("2024-03-01", "2024-03-02")), "line 4, column batch_date",
     "batch 240301000001 is dated 2024-03-01 (line 3)"),
    (report('a,"b') , "line 3, column ?", "not CSV"),
    (report(ROWS[0]).replace(b"Visa", b"Vi\xffa"), "line 3, column #7", "is not UTF-8"),
]


@pytest.mark.parametrize(("data", "field", "reason"), UNREADABLE)
def test_unreadable_reports_name_line_and_column(data: bytes, field: str, reason: str) -> None:
    issues = refused(data)
    assert issues[0][0] == f"{REPORT} {field}" and reason in issues[0][1], issues


def test_the_issue_reads_like_a_person_would_say_it() -> None:
    rows = [ROWS[0].replace("7000000000000000000001", f"70000000000000000001{i:02d}") for i in range(15)]
    rows[14] = rows[14].replace("42.00", "12.3.4")
    assert refused(report(*rows)) == [("PaymentBatchDetailReport line 17, column amount",
                                       '"12.3.4" is not a decimal amount')]


def test_several_bad_lines_are_reported_together_up_to_a_limit() -> None:
    bad = [ROWS[0].replace("7000000000000000000001", f"70000000000000000001{i:02d}").replace("42.00", "x")
           for i in range(30)]
    issues = refused(report(*bad))
    assert len(issues) == 20 and issues[0][0].endswith("line 3, column amount")
    assert issues[-1][0].endswith("line 22, column amount")


def test_a_hundred_thousand_line_report_is_read_whole() -> None:
    """A scale check of correctness only; its speed is measured by ``benchmarks/reconcile.py``."""
    rows = [f"2403010000{i % 4:02d},testrest,2024-03-01,{7 * 10**21 + i},ORD-{i},R{i},Visa,USD,"
            f"{'-' if i % 10 == 0 else ''}{i % 997 + 1}.{i % 100:02d},{'ics_credit' if i % 10 == 0 else 'ics_bill'}"
            for i in range(100_000)]
    data = report(*rows)
    detail = read_payment_batch_detail(data)
    assert len(detail.lines) == 100_000 and len(detail.batches) == 4
