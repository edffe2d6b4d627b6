"""Posted payments as columns: pages of ``GET ar/posted-payments`` asked for as CSV (the bulk form: values as
SL stores them, see the sandbox's ``posted.py``) read straight into ``POSTED_PAYMENT_SCHEMA``
(``connectors.kit.columns``).

The same documents and the same values ``movement.PostedReader`` turns into ``PostedPayment`` records, without
an object per row: ``ref`` is the ``ardoc`` reference (``dynamics_sl:ardoc:PA:000123``), ``kind`` ``receipt``
for ``PA``/``PP`` and ``refund`` for the ``DM`` of a refund paid out, ``cents`` ``CuryOrigDocAmt`` in the minor
units of ``CuryId``, ``posted_on`` ``DocDate``, ``posted_at`` ``Crtd_DateTime`` (SL's server time, in the
configured zone) as UTC, ``txn`` ``User1``, ``order_ref`` ``CustOrdNbr``, ``customer`` ``CustId``; an empty
value (SL's one space) is null. A page that cannot be read raises ``InvalidInput`` naming
the document and the field.
"""

from __future__ import annotations

import io

import polars as pl

from ledgerlink.connectors.dynamics_sl.movement import RECEIPT_TYPES, SOURCE
from ledgerlink.connectors.dynamics_sl.settings import DynamicsSLSettings
from ledgerlink.connectors.dynamics_sl.translate import ardoc_ref
from ledgerlink.connectors.kit.columns import POSTED_PAYMENT_SCHEMA
from ledgerlink.model import FieldIssue, InvalidInput, PostedKind
from ledgerlink.model.money import CURRENCY_EXPONENTS

WHERE = "ar/posted-payments"
COLUMNS = ("DocType", "RefNbr", "CustId", "DocDate", "CuryOrigDocAmt", "CuryId", "User1", "CustOrdNbr",
           "Crtd_DateTime")
_AMOUNT = r"^([0-9]{1,15})(?:\.([0-9]{1,9}))?$"
_NANO = 9  # fraction digits an amount may have on the wire; those past the currency's places must be zeros
_REF_PREFIX = ardoc_ref("PA", "0").key.removesuffix("PA:0")  # "dynamics_sl:ardoc:"


def _issue(field: str, reason: str) -> InvalidInput:
    return InvalidInput(FieldIssue(field, reason), source=SOURCE)


def page_frame(data: bytes, settings: DynamicsSLSettings) -> pl.DataFrame:
    """One CSV page as ``POSTED_PAYMENT_SCHEMA`` columns."""
    return to_columns(read_page(data), settings)


class Pages:
    """Pages as they arrive, turned into canonical columns a few hundred thousand rows at a time (each polars
    pass over a frame has a fixed cost, so converting page by page would cost more than the conversion)."""

    def __init__(self, settings: DynamicsSLSettings, batch_rows: int = 250_000) -> None:
        self.settings = settings
        self.batch_rows = batch_rows
        self.frames: list[pl.DataFrame] = []
        self._raw: list[pl.DataFrame] = []
        self._rows = 0

    def add(self, data: bytes) -> None:
        raw = read_page(data)
        self._raw.append(raw)
        self._rows += raw.height
        if self._rows >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self._raw:
            self.frames.append(to_columns(pl.concat(self._raw), self.settings))
        self._raw, self._rows = [], 0


def read_page(data: bytes) -> pl.DataFrame:
    """A CSV page's columns as text (only those read here), or ``InvalidInput`` if it is not the page."""
    if not data.strip():
        return pl.DataFrame(schema=dict.fromkeys(COLUMNS, pl.Utf8))
    try:
        raw = pl.read_csv(io.BytesIO(data), infer_schema=False, encoding="utf8")
    except Exception as exc:  # a malformed answer: the gateway's bug, named as such
        raise _issue(WHERE, f"the page is not CSV: {str(exc).splitlines()[0]}") from None
    missing = [name for name in COLUMNS if name not in raw.columns]
    if missing:
        raise _issue(f"{WHERE} {missing[0]}", f"the page has no {', '.join(missing)} column")
    return raw.select(COLUMNS)


def to_columns(raw: pl.DataFrame, settings: DynamicsSLSettings) -> pl.DataFrame:
    """Text columns of one or more pages as ``POSTED_PAYMENT_SCHEMA`` columns, every row checked."""
    if not raw.height:
        return pl.DataFrame(schema=POSTED_PAYMENT_SCHEMA)
    blank = ("CustId", "User1", "CustOrdNbr")  # text SL may leave empty (one space); the rest never is
    parts = pl.col("CuryOrigDocAmt").str.extract_groups(_AMOUNT)
    whole = parts.struct.field("1").cast(pl.Int64, strict=False)
    nano = parts.struct.field("2").fill_null("").str.pad_end(_NANO, "0").cast(pl.Int64, strict=False)
    exponent = pl.col("CuryId").replace_strict(CURRENCY_EXPONENTS, default=None, return_dtype=pl.Int64)
    below = pl.lit(10, pl.Int64).pow(_NANO - exponent)  # nano-units per minor unit
    local = (pl.col("Crtd_DateTime").str.slice(0, 16).str.replace("T", " ", literal=True)
             .str.to_datetime("%Y-%m-%d %H:%M", time_unit="us", strict=False))
    frame = raw.lazy().with_columns(pl.when(pl.col(*blank).str.strip_chars() != "").then(pl.col(*blank))).select(
        pl.col("DocType"), pl.col("RefNbr"),
        pl.concat_str(pl.lit(_REF_PREFIX), pl.col("DocType"), pl.lit(":"), pl.col("RefNbr")).alias("ref"),
        pl.when(pl.col("DocType").is_in(sorted(RECEIPT_TYPES))).then(pl.lit(PostedKind.RECEIPT.value))
        .otherwise(pl.lit(PostedKind.REFUND.value)).alias("kind"),
        (whole * pl.lit(10, pl.Int64).pow(exponent) + nano // below).alias("cents"),
        ((nano % below) != 0).alias("too_precise"),
        pl.col("CuryId").alias("currency"),
        exponent.alias("exponent"),
        pl.col("CuryOrigDocAmt").alias("amount_text"),
        pl.col("DocDate").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias("posted_on"),
        pl.col("DocDate").alias("date_text"),
        local.dt.replace_time_zone(settings.timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC").alias("posted_at"),
        pl.col("Crtd_DateTime").alias("moment_text"),
        pl.col("User1").alias("txn"),
        pl.col("CustOrdNbr").alias("order_ref"),
        pl.col("CustId").alias("customer"),
    ).collect()
    _check(frame)
    return frame.select(POSTED_PAYMENT_SCHEMA.names())


def _check(frame: pl.DataFrame) -> None:
    """The first row that cannot be a canonical posting, named by its document and field."""
    problems = frame.filter(
        pl.col("DocType").is_null() | pl.col("RefNbr").is_null() | pl.col("exponent").is_null()
        | pl.col("cents").is_null() | (pl.col("cents") < 0) | pl.col("too_precise").fill_null(True)
        | pl.col("posted_on").is_null() | (pl.col("moment_text").is_not_null() & pl.col("posted_at").is_null()))
    if not problems.height:
        return
    row = problems.row(0, named=True)
    document = f"{WHERE} {row['DocType'] or '?'} {row['RefNbr'] or '?'}"
    if row["DocType"] is None or row["RefNbr"] is None:
        raise _issue(f"{document} {'DocType' if row['DocType'] is None else 'RefNbr'}", "missing")
    if row["exponent"] is None:
        raise _issue(f"{document} CuryId", f"{row['currency']!r} is not an ISO 4217 currency this engine knows")
    if row["cents"] is None or row["cents"] < 0 or row["too_precise"] is not False:
        raise _issue(f"{document} CuryOrigDocAmt", f"{row['amount_text']!r} is not an amount of {row['currency']}")
    if row["posted_on"] is None:
        raise _issue(f"{document} DocDate", f"{row['date_text']!r} is not a date (YYYY-MM-DD HH:MM)")
    raise _issue(f"{document} Crtd_DateTime", f"{row['moment_text']!r} is not a time (YYYY-MM-DD HH:MM)")
