"""Reading the Payment Batch Detail report (classic CSV, spec §7) into canonical settlement lines.

The file is a title line (``Payment Batch Detail Report,1.0,<from> to <to>,,,,,,,``),
a column line, then one CRLF record per transaction the processor settled:
``ics_bill`` (a capture or sale) with a positive amount, ``ics_credit`` (a
refund) with a negative one. Columns are found by name, so their order may vary
and unknown extra columns are ignored.

A file that cannot be read is refused, never half-read: ``InvalidInput`` whose
field names the report, the line and the column (``PaymentBatchDetailReport line
17, column amount``), for a missing column, a record with too few or too many
fields (a truncated last line says so), an amount that is not a decimal with the
currency's places and the type's sign, an unknown or malformed currency, a batch
whose lines disagree on currency or date, and a record repeated exactly.
The same transaction in two different batches is *not* an error: that is
something the processor did, and the reconciliation reports it.

Two readers, one set of rules:

* ``read_batch_detail_columns`` (what ``settlement_frame`` uses) reads the file
  with polars straight into ``SETTLEMENT_LINE_SCHEMA`` columns and checks every
  rule as a column expression: about a second for a million lines and no object
  per line. Whenever anything is off, or the file is shaped in a way the column
  checks do not cover (a quoted field holding a line break, a blank line, a
  lone CR, a date Python reads but the column check does not), it hands the
  file to the record reader, whose refusal (line, column, reason) is the one
  raised; what the record reader accepts becomes columns. The column checks are
  therefore only ever stricter, never looser, than the record reader's.
* ``read_payment_batch_detail``: one pass of the ``csv`` module with plain
  Python checks, one canonical ``SettlementLine`` per line (amounts repeat a
  lot, so their ``Money`` values are shared, and the cyclic garbage collector is
  paused while the lines are built). It is the reference for every message,
  and the way to read a small file as records.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import NoReturn

import polars as pl
from pydantic import ValidationError

from ledgerlink.connectors.kit.columns import SETTLEMENT_LINE_SCHEMA
from ledgerlink.model import FieldIssue, InvalidInput, Money, MoneyError, SettlementLine, SettlementLineKind
from ledgerlink.model.money import CURRENCY_EXPONENTS

REPORT = "PaymentBatchDetailReport"
TITLE = "Payment Batch Detail Report"
COLUMNS = (
    "batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no", "payment_method",
    "currency", "amount", "transaction_type",
)
TITLE_COLUMNS = ("report name", "version", "date range")
KINDS = {"ics_bill": SettlementLineKind.CAPTURE, "ics_credit": SettlementLineKind.REFUND}
MAX_ISSUES = 20
MAX_DIGITS = 15  # whole-number digits of an amount: minor units of a line, and a day's sums, stay exact integers
_AMOUNT = re.compile(r"(-?)(\d+)(?:\.(\d+))?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2}) to (\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class BatchInfo:
    """What every line of one batch must agree on, and where the batch first appeared."""

    currency: str
    batch_date: date
    first_line: int


@dataclass
class BatchDetail:
    start: date
    end: date
    lines: list[SettlementLine] = field(default_factory=list)
    batches: dict[str, BatchInfo] = field(default_factory=dict)  # in order of first appearance


@dataclass
class BatchColumns:
    """The report read into columns: ``lines`` follow ``SETTLEMENT_LINE_SCHEMA``."""

    start: date
    end: date
    lines: pl.DataFrame
    batches: dict[str, BatchInfo] = field(default_factory=dict)  # in order of first appearance


def _quoted(text: str) -> str:
    """A field's text as the file has it, in double quotes, as a reader of the file would quote it."""
    return f'"{text}"'


class _Issues:
    def __init__(self, report: str) -> None:
        self.report = report
        self.items: list[FieldIssue] = []

    def add(self, line: int, column: str, reason: str) -> None:
        self.items.append(FieldIssue(f"{self.report} line {line}, column {column}", reason))
        if len(self.items) >= MAX_ISSUES:
            self.fail()

    def fail(self) -> NoReturn:
        raise InvalidInput(self.items, source=f"cybersource {self.report}")

    def fail_if_any(self) -> None:
        if self.items:
            self.fail()


def _decode(data: bytes, issues: _Issues) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = before[before.rfind(b"\n") + 1:].count(b",") + 1
        issues.add(line, f"#{column}", f"byte {data[exc.start]:#04x} is not UTF-8")
        issues.fail()


def _records(text: str, issues: _Issues) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of each CSV record; blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous = 0
    try:
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if row:
                yield start, row
    except csv.Error as exc:
        issues.add(reader.line_num, "?", f"not CSV: {exc}")
        issues.fail()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_payment_batch_detail(data: bytes, *, gateway: str = "cybersource", report: str = REPORT) -> BatchDetail:
    """The report's lines as canonical ``SettlementLine``s, or ``InvalidInput`` naming line and column."""
    with _collector_paused():
        return _read(data, gateway, report)


def _read(data: bytes, gateway: str, report: str) -> BatchDetail:
    issues = _Issues(report)
    text = _decode(data, issues)
    records = _records(text, issues)
    title = next(records, None)
    if title is None:
        issues.add(1, TITLE_COLUMNS[0], "the report is empty")
        issues.fail()
    start, end = _title(title, issues)
    header_record = next(records, None)
    if header_record is None:
        issues.add(title[0] + 1, "batch_id", "the report ends before its column line")
        issues.fail()
    index = _header(header_record, issues)
    result = BatchDetail(start=start, end=end)
    _rows(records, index, len(header_record[1]), text, result, gateway, issues)
    issues.fail_if_any()
    return result


def _title(record: tuple[int, list[str]], issues: _Issues) -> tuple[date, date]:
    line, row = record
    if not row or row[0].strip() != TITLE:
        issues.add(line, TITLE_COLUMNS[0], f"{_quoted(row[0] if row else '')} is not {_quoted(TITLE)}")
        issues.fail()
    text = row[2].strip() if len(row) > 2 else ""
    match = _RANGE.fullmatch(text)
    try:
        if match is not None:
            return date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2))
    except ValueError:
        pass
    issues.add(line, TITLE_COLUMNS[2], f"{_quoted(text)} is not \"YYYY-MM-DD to YYYY-MM-DD\"")
    issues.fail()


def _header(record: tuple[int, list[str]], issues: _Issues) -> dict[str, int]:
    line, row = record
    names = [name.strip() for name in row]
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in index:
            issues.add(line, name, f"the column line names {name} twice")
        index.setdefault(name, position)
    for name in COLUMNS:
        if name not in index:
            issues.add(line, name, f"the column line has no {name} column")
    issues.fail_if_any()
    return index


def _rows(records: Iterator[tuple[int, list[str]]], index: dict[str, int], width: int, text: str,
          result: BatchDetail, gateway: str, issues: _Issues) -> None:
    """Check and convert every record; the hot loop, so lookups are bound to locals."""
    i_batch, i_date, i_request = index["batch_id"], index["batch_date"], index["request_id"]
    i_ref, i_recon, i_method = index["merchant_ref_number"], index["trans_ref_no"], index["payment_method"]
    i_currency, i_amount, i_type = index["currency"], index["amount"], index["transaction_type"]
    names = sorted(index, key=index.__getitem__)
    ends_cleanly = text.endswith(("\n", "\r"))
    batches = result.batches
    lines = result.lines
    seen: set[int] = set()
    dates: dict[str, date] = {}
    money: dict[tuple[str, str], Money] = {}
    amount_match = _AMOUNT.fullmatch
    exponents = CURRENCY_EXPONENTS
    add = issues.add
    append = lines.append
    pending: tuple[int, list[str]] | None = None

    for line, row in records:
        if pending is not None:  # the previous record was short but not the last: not a truncation
            _short(pending, width, names, False, add)
        pending = None
        if len(row) != width:
            if len(row) > width:
                add(line, f"#{width + 1}", f"{len(row)} fields but the column line has {width}")
            else:
                pending = (line, row)
            continue
        key = hash(tuple(row))
        if key in seen:
            earlier = _earlier_copy(text, row, line, issues)
            if earlier is not None:
                add(line, names[0], f"repeats line {earlier} exactly")
                continue
        seen.add(key)

        batch_id, currency, amount_text, kind_text = row[i_batch], row[i_currency], row[i_amount], row[i_type]
        kind = KINDS.get(kind_text)
        if kind is None:
            add(line, "transaction_type", f"{_quoted(kind_text)} is neither ics_bill nor ics_credit")
        exponent = exponents.get(currency)
        if exponent is None:
            reason = "is not an ISO 4217 currency this engine knows" if _CURRENCY.fullmatch(currency) \
                else "is not a three-letter currency code"
            add(line, "currency", f"{_quoted(currency)} {reason}")
        match = amount_match(amount_text)
        if match is None:
            add(line, "amount", f"{_quoted(amount_text)} is not a decimal amount")
        elif exponent is not None and len(match.group(3) or "") > exponent:
            add(line, "amount", f"{_quoted(amount_text)} has more decimal places than {currency}'s {exponent}")
        elif kind is not None and (match.group(1) == "-") != (kind is SettlementLineKind.REFUND):
            add(line, "amount", f"{_quoted(amount_text)}: {kind_text} amounts are "
                                f"{'negative' if kind is SettlementLineKind.REFUND else 'positive'}")
        elif match.group(2).strip("0") == "" and (match.group(3) or "").strip("0") == "":
            add(line, "amount", "an amount of zero settles nothing")
        elif len(match.group(2).lstrip("0")) > MAX_DIGITS:
            add(line, "amount", f"{_quoted(amount_text)} is too large to be an amount of {currency}")
        batch_date = dates.get(row[i_date])
        if batch_date is None:
            try:
                batch_date = dates[row[i_date]] = date.fromisoformat(row[i_date])
            except ValueError:
                add(line, "batch_date", f"{_quoted(row[i_date])} is not a date (YYYY-MM-DD)")
        if not batch_id:
            add(line, "batch_id", "missing batch id")
        if not row[i_request]:
            add(line, "request_id", "missing request id (the transaction id)")
        if issues.items or batch_date is None or kind is None or exponent is None or match is None:
            continue  # nothing more to learn from a bad line; keep looking for other problems
        info = batches.get(batch_id)
        if info is None:
            batches[batch_id] = BatchInfo(currency, batch_date, line)
        elif info.currency != currency:
            add(line, "currency", f"batch {batch_id} is in {info.currency} (line {info.first_line}); "
                                  f"this line is in {currency}")
            continue
        elif info.batch_date != batch_date:
            add(line, "batch_date", f"batch {batch_id} is dated {info.batch_date} (line {info.first_line}); "
                                    f"this line says {batch_date}")
            continue
        magnitude = amount_text.lstrip("-")
        amount = money.get((magnitude, currency))
        if amount is None:
            if len(money) > 100_000:
                money.clear()
            try:
                amount = money[magnitude, currency] = Money(amount=Decimal(magnitude), currency=currency)
            except (ValidationError, MoneyError):
                add(line, "amount", f"{_quoted(amount_text)} is too large to be an amount of {currency}")
                continue
        append(SettlementLine(
            gateway=gateway, batch_id=batch_id, batch_date=batch_date, transaction_id=row[i_request],
            order_reference=row[i_ref] or None, reconciliation_id=row[i_recon] or None, kind=kind, amount=amount,
            payment_method=row[i_method] or None, source_line=line,
        ))
    if pending is not None:
        _short(pending, width, names, not ends_cleanly, add)


def _short(record: tuple[int, list[str]], width: int, names: list[str], last: bool,
           add: Callable[[int, str, str], None]) -> None:
    line, row = record
    missing = names[len(row): width]
    reason = (f"truncated: the file ends after {len(row)} of {width} fields" if last
              else f"{len(row)} fields but the column line has {width} (missing {', '.join(missing)})")
    add(line, missing[0] if missing else f"#{len(row)}", reason)


def _earlier_copy(text: str, row: list[str], line: int, issues: _Issues) -> int | None:
    """The line of an earlier record identical to ``row`` (a second pass, taken only on a hash match)."""
    for earlier, candidate in _records(text, issues):
        if earlier >= line:
            return None
        if candidate == row:
            return earlier
    return None


# --- the column reader ---------------------------------------------------------------------------

_FAST_AMOUNT = rf"^(-?)([0-9]{{1,{MAX_DIGITS}}})(?:\.([0-9]+))?$"
_FAST_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_KIND_VALUES = {text: kind.value for text, kind in KINDS.items()}


def read_batch_detail_columns(data: bytes, *, report: str = REPORT) -> BatchColumns:
    """The report's lines as columns (``SETTLEMENT_LINE_SCHEMA``), or ``InvalidInput`` naming line and column.

    Accepts and refuses exactly what ``read_payment_batch_detail`` does: a file the column checks are not
    sure of goes to that reader, and its answer (its issues, or its lines as columns) is the result.
    """
    fast = _read_columns(data, report)
    if fast is not None:
        return fast
    detail = read_payment_batch_detail(data, report=report)  # raises the issues, naming line and column
    rows = [(line.source_line, line.batch_id, line.transaction_id, line.order_reference, line.reconciliation_id,
             line.payment_method, line.kind.value, line.amount.minor_units, line.amount.currency)
            for line in detail.lines]
    return BatchColumns(start=detail.start, end=detail.end, batches=detail.batches,
                        lines=pl.DataFrame(rows, schema=SETTLEMENT_LINE_SCHEMA, orient="row"))


def _read_columns(data: bytes, report: str) -> BatchColumns | None:
    """The whole file checked and converted as columns; None when the record reader must decide."""
    offset = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    first = data.find(b"\n", offset)
    second = data.find(b"\n", first + 1) if first >= 0 else -1
    if second < 0 or b'"' in data[offset:second] or data.count(b"\r") != data.count(b"\r\n"):
        return None  # no column line, quotes around the title or a column name, or a lone CR as a line end
    try:
        title_text = data[offset:first].decode("utf-8").rstrip("\r")
        header_text = data[first + 1:second].decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        return None
    if not title_text.strip() or not header_text.strip():
        return None  # a blank line before the column line: lines are counted as the record reader counts them
    try:
        start, end = _title((1, title_text.split(",")), _Issues(report))
        names = header_text.split(",")
        index = _header((2, names), _Issues(report))
    except InvalidInput:
        return None  # the record reader names the problem (after any it finds first, such as bad UTF-8)
    names = [name.strip() for name in names]
    body = second + 1
    if len(data) - body <= 16 and not data[body:].strip():  # a day without lines
        return BatchColumns(start=start, end=end, lines=pl.DataFrame(schema=SETTLEMENT_LINE_SCHEMA))
    # One lazy pass (streamed, so the raw text columns are never all in memory at once) reads, checks and
    # converts; polars refuses every malformation Python's csv module refuses (and a few it accepts, such as
    # a quote inside an unquoted field): all of those go to the record reader.
    def scan() -> pl.LazyFrame:
        return pl.scan_csv(io.BytesIO(data), skip_lines=2, has_header=False, infer_schema=False, quote_char='"',
                           encoding="utf8", new_columns=[f"c{position}" for position in range(len(names))])

    try:
        lines = _checked(scan().rename({f"c{index[name]}": name for name in COLUMNS}))
    except Exception:  # malformed CSV, bad UTF-8, too many fields: the record reader says which and where
        return None
    # blank lines are rows of nulls to polars; the record reader skips them, and so may this one at the end
    trailing = _trailing_true(lines.get_column("blank"))
    lines = lines.head(lines.height - trailing)
    if lines.select(pl.col("blank").any()).item():
        return None  # a blank line between records moves the line numbers: let the record reader count
    # every record must have exactly the column line's fields; fewer are nulls to polars, so count the commas
    quoted = data.find(b'"', body) >= 0
    expected_commas = lines.height * (len(names) - 1)
    commas = data.count(b",", body)
    if quoted:
        inside, broken = scan().select(
            pl.sum_horizontal(pl.all().str.count_matches(",", literal=True).sum()).alias("commas"),
            pl.any_horizontal(pl.all().str.contains(r"[\r\n]").any()).alias("breaks"),
        ).collect(engine="streaming").row(0)
        if broken:
            return None  # a line break inside a quoted field: physical lines and records no longer line up
        commas -= inside
    if commas != expected_commas:
        return None  # a short record somewhere
    return _batches(lines, start, end)


def _trailing_true(flags: pl.Series) -> int:
    """How many values at the end of ``flags`` are true."""
    if not flags.len() or not flags[-1]:
        return 0
    falses = (~flags).arg_true()
    return flags.len() - (int(falses[-1]) + 1 if falses.len() else 0)


def _checked(raw: pl.LazyFrame) -> pl.DataFrame:
    """The canonical columns of every record, with ``bad`` (some rule of ``_rows`` fails), ``blank`` (a row of
    nulls: a blank line) and ``day`` (the batch date) beside them."""
    parts = pl.col("amount").str.extract_groups(_FAST_AMOUNT)
    places = pl.col("fraction").str.len_bytes().fill_null(0)
    exponent = pl.col("exponent")
    ten = pl.lit(10, pl.Int64)
    cents = (pl.col("whole").cast(pl.Int64, strict=False) * ten.pow(exponent)
             + pl.col("fraction").fill_null("0").cast(pl.Int64, strict=False) * ten.pow((exponent - places).clip(0)))
    is_date = pl.col("batch_date").str.contains(_FAST_DATE)
    bad = (pl.col("whole").is_null() | exponent.is_null() | (places > exponent) | pl.col("kind").is_null()
           | pl.col("day").is_null() | ((pl.col("sign") == "-") != (pl.col("kind") == SettlementLineKind.REFUND.value))
           | pl.col("batch_id").is_null() | pl.col("request_id").is_null() | cents.is_null() | (cents <= 0))
    return (
        raw.with_row_index("row")
        .with_columns(pl.all_horizontal(pl.all().exclude("row").is_null()).alias("blank"))
        .select("row", "blank", *COLUMNS)  # an unknown extra column named like a helper below cannot get in the way
        .with_columns(
            parts.struct.rename_fields(["sign", "whole", "fraction"]).alias("parts"),
            pl.col("currency").replace_strict(CURRENCY_EXPONENTS, default=None, return_dtype=pl.Int64)
            .alias("exponent"),
            pl.col("transaction_type").replace_strict(_KIND_VALUES, default=None, return_dtype=pl.Utf8).alias("kind"),
            pl.when(is_date).then(pl.col("batch_date").str.to_date("%Y-%m-%d", strict=False)).alias("day"),
        )
        .unnest("parts")
        .select(
            (pl.col("row").cast(pl.Int64) + 3).alias("line"),
            pl.col("batch_id").alias("batch"),
            pl.col("request_id").alias("txn"),
            pl.col("merchant_ref_number").alias("order_ref"),
            pl.col("trans_ref_no").alias("recon"),
            pl.col("payment_method").alias("method"),
            pl.col("kind"),
            cents.alias("cents"),
            pl.col("currency"),
            pl.col("day"),
            bad.fill_null(True).alias("bad"),
            pl.col("blank"),
        )
        .collect(engine="streaming")
    )


def _batches(lines: pl.DataFrame, start: date, end: date) -> BatchColumns | None:
    """The checked lines and their batches; None if a line breaks a rule, a batch's lines disagree on currency
    or date, or two lines are alike enough to be one record repeated."""
    if lines.select(pl.col("bad").any()).item():
        return None
    batches = lines.group_by("batch", maintain_order=True).agg(
        pl.col("currency").n_unique().alias("currencies"), pl.col("day").n_unique().alias("dates"),
        pl.col("currency").first(), pl.col("day").first(), pl.col("line").first())
    if batches.select(((pl.col("currencies") != 1) | (pl.col("dates") != 1)).any()).item():
        return None
    # the same transaction and direction in one batch with the same figures: maybe an exact repeat (the
    # record reader compares whole records; the same transaction in two batches is data, not an error)
    alike = ["batch", "txn", "kind", "cents", "currency", "order_ref", "recon", "method"]
    if lines.select(pl.col("txn").hash().n_unique()).item() < lines.height:  # cheap; equal hashes are rare
        candidates = lines.filter(pl.col("txn").is_duplicated())
        if candidates.height and candidates.select(alike).is_duplicated().any():
            return None
    info = {batch_id: BatchInfo(currency, day, line)
            for batch_id, currency, day, line in batches.select("batch", "currency", "day", "line").iter_rows()}
    return BatchColumns(start=start, end=end, batches=info, lines=lines.select(SETTLEMENT_LINE_SCHEMA.names()))
