"""Match what a gateway settled against what the back office posted, in columns.

Pure and columnar (polars), because a large merchant's day is millions of lines: amounts are
integer minor units (exact), identifiers are strings, and every stage is a join, not a Python loop.

Stages, each taking only what earlier ones left:

0. duplicates: the same transaction settled twice, or posted twice, is a discrepancy; the first
   copy goes on to matching, the others do not.
1. by transaction id (and direction): same currency and amount within tolerance is a match;
   otherwise the pair is an amount or a currency mismatch.
2. by order reference, currency, direction and exact amount (several equal amounts pair in order).
3. groups: per order reference, currency and direction, lines and postings whose sums agree within
   tolerance match together (split captures: N lines to 1 posting; multi-invoice payments: 1 to N).
4. leftovers: a line is missing in the ERP; a posting is missing in the settlement once it is older
   than the lag window, and only awaiting settlement before that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from ledgerlink.model import CaseType

LINE_SCHEMA = {
    "line": pl.Int64, "txn": pl.Utf8, "order_ref": pl.Utf8, "kind": pl.Utf8, "cents": pl.Int64,
    "currency": pl.Utf8, "batch": pl.Utf8,
}
POSTING_SCHEMA = {
    "post": pl.Int64, "txn": pl.Utf8, "order_ref": pl.Utf8, "kind": pl.Utf8, "cents": pl.Int64,
    "currency": pl.Utf8, "posted_on": pl.Date, "hour": pl.Int8, "ref": pl.Utf8,
}


@dataclass(frozen=True)
class MatchSettings:
    tolerance_cents: int = 0  # in the currency's minor units
    lag_days: int = 2  # a posting may settle up to this many days after it was posted


@dataclass
class MatchResult:
    matched_lines: pl.DataFrame  # line, stage (id | reference | group)
    matched_posts: pl.DataFrame  # post, stage
    discrepancies: pl.DataFrame  # type, line, post, txn, order_ref, kind, currency, line_cents, post_cents, ...
    awaiting: pl.DataFrame  # postings still inside the lag window

    def counts(self) -> dict[str, int]:
        by_stage = dict(self.matched_lines.group_by("stage").len().iter_rows())
        return {
            "lines_matched_by_id": int(by_stage.get("id", 0)),
            "lines_matched_by_reference": int(by_stage.get("reference", 0)),
            "lines_matched_in_groups": int(by_stage.get("group", 0)),
            "postings_matched": self.matched_posts.height,
            "postings_awaiting_settlement": self.awaiting.height,
            "discrepancies": self.discrepancies.height,
        }


_DISCREPANCY_COLUMNS = ["type", "line", "post", "txn", "order_ref", "kind", "currency", "line_cents",
                        "post_cents", "line_currency", "post_currency", "batch", "ref"]


def _discrepancy(frame: pl.DataFrame, case_type: CaseType) -> pl.DataFrame:
    """Project a frame of unmatched or mismatched rows onto the one discrepancy shape."""
    columns = []
    for name in _DISCREPANCY_COLUMNS[1:]:
        if name in frame.columns:
            columns.append(pl.col(name))
        else:
            dtype = pl.Int64 if name in ("line", "post", "line_cents", "post_cents") else pl.Utf8
            columns.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(pl.lit(case_type.value).alias("type"), *columns)


def _with_occurrence(frame: pl.DataFrame, keys: list[str], order: str) -> pl.DataFrame:
    return frame.sort(order).with_columns(pl.int_range(pl.len()).over(keys).alias("occ"))


def _split_duplicates(frame: pl.DataFrame, keys: list[str], order: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(frame with only the first copy of each key, the later copies). Duplicates are rare: the keys' hashes
    pick the few rows that may repeat, only those are compared exactly and ranked, and the rest pass through."""
    maybe = frame.select(pl.struct(keys).hash().is_duplicated()).to_series()
    if not maybe.any():
        return frame, frame.clear()
    suspects = frame.filter(maybe)
    exact = suspects.select(pl.struct(keys).is_duplicated()).to_series()
    repeated = suspects.filter(exact)
    if not repeated.height:
        return frame, frame.clear()
    ranked = _with_occurrence(repeated, keys, order)
    firsts = ranked.filter(pl.col("occ") == 0).drop("occ")
    kept = pl.concat([frame.filter(~maybe), suspects.filter(~exact), firsts], how="vertical_relaxed")
    return kept, ranked.filter(pl.col("occ") > 0)


def match(lines: pl.DataFrame, postings: pl.DataFrame, *, day: date, settings: MatchSettings) -> MatchResult:
    """Match one settlement day's ``lines`` against candidate ``postings`` (see ``LINE_SCHEMA`` and
    ``POSTING_SCHEMA``; ``kind`` is ``capture`` or ``refund`` on both sides)."""
    tolerance = settings.tolerance_cents
    problems: list[pl.DataFrame] = []
    matched: list[pl.DataFrame] = []  # one-to-one pairs (line, post, stage)

    # 0. duplicates
    lines, repeated = _split_duplicates(lines, ["txn", "kind"], "line")
    problems.append(_discrepancy(
        repeated.rename({"cents": "line_cents", "currency": "line_currency"})
        .with_columns(pl.col("line_currency").alias("currency")), CaseType.DUPLICATE))
    without_txn = postings.get_column("txn").null_count()  # usually none: then no copy is made to set them aside
    with_txn, repeated = _split_duplicates(postings.filter(pl.col("txn").is_not_null()) if without_txn else postings,
                                           ["txn", "kind"], "post")
    problems.append(_discrepancy(
        repeated.rename({"cents": "post_cents", "currency": "post_currency"})
        .with_columns(pl.col("post_currency").alias("currency")), CaseType.DUPLICATE))
    if without_txn:
        with_txn = pl.concat([with_txn, postings.filter(pl.col("txn").is_null())], how="vertical_relaxed")
    postings = with_txn
    del with_txn, repeated

    # 1. by transaction id (only keys and amounts travel through the big join; the few mismatched rows
    #    fetch their other columns afterwards, which keeps memory near the size of the inputs). The join is on
    #    one integer, a hash of (txn, kind), then the keys are compared: half the work of joining on two strings
    key = pl.struct("txn", "kind").hash().alias("key")
    pairs = lines.select("line", "txn", "kind", "cents", "currency", key).join(
        postings.select("post", "txn", "kind", "cents", "currency", key),  # a null txn joins nothing below
        on="key", how="inner", suffix="_p",
    ).filter((pl.col("txn") == pl.col("txn_p")) & (pl.col("kind") == pl.col("kind_p"))).drop(
        "key", "txn_p", "kind_p",
    ).rename({"cents": "line_cents", "currency": "line_currency", "cents_p": "post_cents",
              "currency_p": "post_currency"})
    same_currency = pl.col("line_currency") == pl.col("post_currency")
    within = (pl.col("line_cents") - pl.col("post_cents")).abs() <= tolerance
    matched.append(pairs.filter(same_currency & within).select("line", "post", pl.lit("id").alias("stage")))
    off = pairs.filter(~(same_currency & within))
    if off.height:  # few rows: their lines and postings are picked out first, not joined against the millions
        off_lines = lines.filter(pl.col("line").is_in(off.get_column("line").implode()))
        off_posts = postings.filter(pl.col("post").is_in(off.get_column("post").implode()))
        off = (off.join(off_lines.select("line", "order_ref", "batch"), on="line", how="left")
               .join(off_posts.select("post", "ref"), on="post", how="left")
               .with_columns(pl.col("line_currency").alias("currency")))
        problems.append(_discrepancy(off.filter(pl.col("line_currency") != pl.col("post_currency")),
                                     CaseType.CURRENCY_MISMATCH))
        problems.append(_discrepancy(off.filter(pl.col("line_currency") == pl.col("post_currency")),
                                     CaseType.AMOUNT_MISMATCH))
    lines = lines.join(pairs.select("line"), on="line", how="anti")
    postings = postings.join(pairs.select("post"), on="post", how="anti")
    del pairs

    # 2. by order reference and exact amount
    keys = ["order_ref", "kind", "currency", "cents"]
    left = _with_occurrence(lines.filter(pl.col("order_ref").is_not_null()), keys, "line")
    right = _with_occurrence(postings.filter(pl.col("order_ref").is_not_null()), keys, "post")
    by_reference = left.join(right.select([*keys, "occ", "post"]), on=[*keys, "occ"], how="inner")
    matched.append(by_reference.select("line", "post", pl.lit("reference").alias("stage")))
    lines = lines.join(by_reference.select("line"), on="line", how="anti")
    postings = postings.join(by_reference.select("post"), on="post", how="anti")

    # 3. groups whose sums agree
    group_keys = ["order_ref", "kind", "currency"]
    line_sums = (lines.filter(pl.col("order_ref").is_not_null()).group_by(group_keys)
                 .agg(pl.col("cents").sum().alias("line_sum")))
    post_sums = (postings.filter(pl.col("order_ref").is_not_null()).group_by(group_keys)
                 .agg(pl.col("cents").sum().alias("post_sum")))
    agreeing = (line_sums.join(post_sums, on=group_keys, how="inner")
                .filter((pl.col("line_sum") - pl.col("post_sum")).abs() <= tolerance)
                .select(group_keys))
    group_lines = lines.join(agreeing, on=group_keys, how="semi")
    group_posts = postings.join(agreeing, on=group_keys, how="semi")
    grouped_lines = group_lines.select("line", pl.lit("group").alias("stage"))
    grouped_posts = group_posts.select("post", pl.lit("group").alias("stage"))
    lines = lines.join(group_lines.select("line"), on="line", how="anti")
    postings = postings.join(group_posts.select("post"), on="post", how="anti")

    # 4. leftovers
    problems.append(_discrepancy(
        lines.rename({"cents": "line_cents", "currency": "line_currency"})
        .with_columns(pl.col("line_currency").alias("currency")), CaseType.MISSING_IN_ERP))
    overdue = day - timedelta(days=settings.lag_days)
    late = postings.filter(pl.col("posted_on") <= overdue)
    awaiting = postings.filter((pl.col("posted_on") > overdue) & (pl.col("posted_on") <= day))
    problems.append(_discrepancy(
        late.rename({"cents": "post_cents", "currency": "post_currency"})
        .with_columns(pl.col("post_currency").alias("currency")), CaseType.MISSING_IN_SETTLEMENT))

    pairs_found = pl.concat(matched, how="vertical_relaxed")
    return MatchResult(
        matched_lines=pl.concat([pairs_found.select("line", "stage"), grouped_lines], how="vertical_relaxed"),
        matched_posts=pl.concat([pairs_found.select("post", "stage"), grouped_posts], how="vertical_relaxed"),
        discrepancies=pl.concat(problems, how="vertical_relaxed"),
        awaiting=awaiting,
    )
