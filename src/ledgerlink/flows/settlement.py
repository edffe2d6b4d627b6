"""Daily settlement reconciliation: what the gateway paid out against what the back office holds, posted
to the general ledger.

One run reconciles one settlement day of one merchant:

1. read the day's settlement and, at the same time, what the back office posted around it, both as
   columns (``settlement_frame``, ``posted_frame``: a large day is a million lines on each side, far too
   many for one object each). An unreadable report fails the run before anything is posted, and the
   scheduler retries it;
2. match its lines against the receipts and refunds the back office holds (``matching``), leaving out
   postings already reconciled with an earlier day's settlement;
3. post one balanced journal per settlement batch (gross to card clearing, refunds, fees, chargebacks,
   net to the bank), each once per batch id. Every journal is built, and so checked to balance per
   currency, before the first is posted. A journal the back office refuses (its currency, a closed
   period) does not stop the others: it becomes a case for a person to post by hand;
4. turn every discrepancy into a case (opened, or updated on a re-run), with a task for the finance team,
   and resolve the cases the day's matches clear (a late posting that has now settled, a transaction
   posted after its settlement, a mismatch corrected before a re-run, a refused journal now posted);
5. save the report.

Re-running a day is safe: journals are keyed by batch, cases by what they are about.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import polars as pl
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.connectors.kit.columns import PostedFrame, SettlementFrame, money_sum
from ledgerlink.connectors.kit.errors import NotFound, Rejected, RetryableError
from ledgerlink.connectors.kit.protocols import BackOffice, PaymentGateway
from ledgerlink.flows.context import FlowContext
from ledgerlink.flows.matching import LINE_SCHEMA, MatchResult, MatchSettings, match
from ledgerlink.flows.ports import CaseBook, ReconciliationLedger
from ledgerlink.flows.schedule_fields import CronExpression, TimeZoneName
from ledgerlink.mappings.spec import MappingSpec
from ledgerlink.model import (
    Case,
    CaseType,
    DocumentKind,
    GLAccount,
    InvalidInput,
    JournalEntry,
    Money,
    PostedKind,
    Posting,
    SettlementBatch,
    SettlementBatchTotals,
    Side,
    Task,
    currency_exponent,
)

log = logging.getLogger(__name__)

RECONCILIATION_TYPES = (CaseType.MISSING_IN_ERP, CaseType.MISSING_IN_SETTLEMENT, CaseType.AMOUNT_MISMATCH,
                        CaseType.CURRENCY_MISMATCH, CaseType.DUPLICATE)
# cases about one transaction and direction, keyed ``<type>:<gateway>:<transaction id>:<kind>``
_ABOUT_A_LINE = (CaseType.MISSING_IN_ERP, CaseType.AMOUNT_MISMATCH, CaseType.CURRENCY_MISMATCH)
JOURNAL_ACCOUNTS = ("card_clearing", "refund_liability", "processing_fees", "chargeback_clearing", "bank")
ITEMS_IN_REPORT = 2000
TASKS_IN_FLIGHT = 256  # back-office tasks opened at once (a connector that batches packs them into few requests)
T = TypeVar("T")


class SettlementSettings(BaseModel):
    """``flows.settlement`` in an integration file."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    cron: CronExpression = "30 6 * * *"  # each morning, for the day before
    timezone: TimeZoneName = "UTC"  # the merchant's business day
    tolerance: Decimal = Field(Decimal("0"), ge=0, description="largest difference still counted as a match")
    lag_days: int = Field(2, ge=0, le=30, description="days a posting may wait for its settlement before a case")
    catch_up_days: int = Field(7, ge=1, le=31, description="after downtime, how many of the most recent missed "
                                                           "days are reconciled; older ones are left to "
                                                           "`ledgerlink reconcile`")


def lines_frame(settlement: SettlementFrame) -> pl.DataFrame:
    """The settlement's lines as the matcher takes them (``LINE_SCHEMA``); ``line`` numbers them from 0."""
    return settlement.lines.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("line"), *(name for name in LINE_SCHEMA if name != "line"))


def postings_frame(posted: PostedFrame, timezone: str = "UTC") -> pl.DataFrame:
    """The postings as the matcher takes them (``POSTING_SCHEMA``): receipts are ``capture``, ``post`` numbers
    them from 0, ``hour`` is the hour of ``posted_at`` in ``timezone`` (the merchant's business day)."""
    return posted.payments.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("post"), "txn", "order_ref",
        pl.when(pl.col("kind") == PostedKind.RECEIPT.value).then(pl.lit("capture")).otherwise(pl.lit("refund"))
        .alias("kind"),
        "cents", "currency", "posted_on",
        pl.col("posted_at").dt.convert_time_zone(timezone).dt.hour().cast(pl.Int8).alias("hour"),
        "ref",
    )


def settlement_journal(batch: SettlementBatchTotals | SettlementBatch, accounts: dict[str, GLAccount],
                       key: str) -> JournalEntry | None:
    """The batch's deposit, balanced: Cr card clearing gross; Dr refunds, fees, chargebacks; Dr bank net."""
    postings: list[Posting] = []

    def add(account: str, amount: Money, memo: str, *, debit: bool) -> None:
        if amount.is_zero():
            return
        side = Side.DEBIT if debit else Side.CREDIT
        if amount.amount < 0:  # e.g. chargebacks won back exceed those taken: the other side
            side, amount = (Side.CREDIT if debit else Side.DEBIT), -amount
        postings.append(Posting(account=accounts[account], side=side, amount=amount, memo=memo))

    add("card_clearing", batch.gross, "card sales settled", debit=False)
    add("refund_liability", batch.refunds, "card refunds settled", debit=True)
    add("processing_fees", batch.fees, "processing fees", debit=True)
    add("chargeback_clearing", batch.chargebacks + batch.chargeback_fees, "chargebacks and their fees", debit=True)
    add("bank", batch.deposit, "net deposit", debit=True)
    if not postings:
        return None
    return JournalEntry(
        key=key, entry_date=batch.batch_date,
        description=f"Card settlement {batch.gateway} batch {batch.batch_id}"[:60], postings=tuple(postings),
        metadata={"batch_id": batch.batch_id, "currency": batch.currency},
    )


def _money(cents: int | None, currency: str | None) -> Money | None:
    if cents is None or currency is None:
        return None
    try:
        return Money.from_minor_units(int(cents), currency)
    except ValueError:
        return None


def _case_key(gateway: str, item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind == CaseType.MISSING_IN_SETTLEMENT.value or (kind == CaseType.DUPLICATE.value and item["line"] is None):
        return f"{kind}:{item['ref']}"
    if kind == CaseType.DUPLICATE.value:
        return f"{kind}:{gateway}:{item['txn']}:{item['kind']}:{item['batch']}:{item['line']}"
    return f"{kind}:{gateway}:{item['txn']}:{item['kind']}"


def _case_amount(item: dict[str, Any]) -> Money | None:
    """What a case is about: the difference for an amount mismatch (settled − posted), else the amount
    settled, or posted when nothing settled."""
    line = _money(item["line_cents"], item["line_currency"])
    posted = _money(item["post_cents"], item["post_currency"])
    if item["type"] == CaseType.AMOUNT_MISMATCH.value and line is not None and posted is not None:
        return line - posted
    return line or posted


def _journal_case_key(gateway: str, batch: SettlementBatchTotals) -> str:
    return f"{CaseType.JOURNAL_REFUSED.value}:{gateway}:{batch.batch_id}:{batch.currency}"


def _keys_about_lines(open_keys: set[str], gateway: str, types: Sequence[CaseType]) -> pl.DataFrame:
    """(key, txn, kind) of the open cases among ``types`` that are about one transaction and direction."""
    rows = []
    for case_type in types:
        prefix = f"{case_type.value}:{gateway}:"
        for key in open_keys:
            if key.startswith(prefix):
                txn, _, kind = key[len(prefix):].rpartition(":")
                rows.append((key, txn, kind))
    return pl.DataFrame(rows, schema={"key": pl.Utf8, "txn": pl.Utf8, "kind": pl.Utf8}, orient="row")


def _summary(item: dict[str, Any]) -> str:
    line = _money(item["line_cents"], item["line_currency"])
    posted = _money(item["post_cents"], item["post_currency"])
    what = f"{item['kind']} {item['txn'] or ''} (order {item['order_ref'] or '?'})".strip()
    return {
        CaseType.MISSING_IN_ERP.value: f"Settled but not posted: {what} {line}",
        CaseType.MISSING_IN_SETTLEMENT.value: f"Posted but not settled: {what} {posted} ({item['ref']})",
        CaseType.AMOUNT_MISMATCH.value: f"Amounts differ: {what} settled {line}, posted {posted}, "
                                        f"difference {_case_amount(item)}",
        CaseType.CURRENCY_MISMATCH.value: f"Currencies differ: {what} settled {line}, posted {posted}",
        CaseType.DUPLICATE.value: (f"Settled twice: {what} {line} in batch {item['batch']}" if item["line"] is not None
                                   else f"Posted twice: {what} {posted} ({item['ref']})"),
    }[item["type"]]


class SettlementReconciliation:
    name = "settlement"

    def __init__(
        self,
        gateway: PaymentGateway,
        back_office: BackOffice,
        mapping: MappingSpec,
        settings: SettlementSettings,
        *,
        cases: CaseBook,
        ledger: ReconciliationLedger,
        merchant_id: str = "",
    ) -> None:
        self.gateway = gateway
        self.back_office = back_office
        self.settings = settings
        self.accounts = mapping.accounts.require(*JOURNAL_ACCOUNTS, purpose="settlement reconciliation")
        self.cases = cases
        self.ledger = ledger
        self.merchant_id = merchant_id
        self._match_settings = MatchSettings(lag_days=settings.lag_days)

    def day_for_tick(self, tick: float) -> date:
        """A scheduled run reconciles the merchant's previous business day."""
        return datetime.fromtimestamp(tick, ZoneInfo(self.settings.timezone)).date() - timedelta(days=1)

    async def days_due(self, first_tick: float, last_tick: float | None = None) -> list[date]:
        """The days the schedule's ticks in [first_tick, last_tick] stand for (one tick, or every tick missed
        while the engine was down), oldest first: at most ``catch_up_days`` of them, the newest, and none that
        already has a succeeded run (one made by hand during the outage)."""
        last_tick = max(first_tick, last_tick or first_tick)
        zone = ZoneInfo(self.settings.timezone)
        newest = self.day_for_tick(last_tick)
        oldest = newest - timedelta(days=self.settings.catch_up_days - 1)
        first = self.day_for_tick(first_tick)
        if first < oldest:
            log.warning("settlement reconciliation: the days %s to %s were missed while the engine was down and "
                        "are older than %d days; not run automatically (`ledgerlink reconcile --date` runs one)",
                        first, oldest - timedelta(days=1), self.settings.catch_up_days)
        days = {first, newest}
        ticks = croniter(self.settings.cron, datetime.fromtimestamp(
            max(first_tick, last_tick - (self.settings.catch_up_days + 1) * 86400), zone))
        while (tick := ticks.get_next(datetime).timestamp()) < last_tick:
            days.add(self.day_for_tick(tick))
        wanted = sorted(day for day in days if day >= oldest)
        if len(wanted) > 1:  # catching up: skip what was reconciled meanwhile
            done = await self.ledger.reconciled_days(self.gateway.name, wanted[0], wanted[-1])
            wanted = [day for day in wanted if day not in done]
        return wanted

    async def run(self, day: date, ctx: FlowContext, *, run_id: str | None = None) -> dict[str, Any]:
        run_id = run_id or f"{day.isoformat()}-{uuid.uuid4().hex[:10]}"
        started = time.time()
        marks = [(time.perf_counter(), time.process_time())]  # when each stage ended: the report's "seconds"
        gateway = self.gateway.name
        since = day - timedelta(days=self.settings.lag_days)
        # the back office's side is read while the report downloads and parses: both are a million rows
        reading = asyncio.ensure_future(self.back_office.posted_frame(since, day + timedelta(days=2)))
        try:
            settlement = await self.gateway.settlement_frame(day)
        except (InvalidInput, NotFound) as exc:
            await _abandon(reading)
            reason = "unreadable" if isinstance(exc, InvalidInput) else "not available yet"
            await self.ledger.save_report(run_id, gateway, day, "failed", {"error": str(exc)}, None, str(exc),
                                          started)
            log.warning("settlement for %s %s: %s; nothing posted, the run will be retried", day, reason, exc)
            raise RetryableError(f"settlement report for {day} {reason}: {exc}", system=gateway,
                                 operation="settlement") from exc
        except BaseException:
            await _abandon(reading)
            raise
        posted = await reading
        marks.append((time.perf_counter(), time.process_time()))
        already = await self.ledger.settled_before(gateway, day, since - timedelta(days=1))
        # keep what the rest of the run reads, and let the columns it does not go (a day is a million rows)
        batches, line_count, merchant = settlement.batches, settlement.line_count, settlement.merchant_id
        lines = lines_frame(settlement)
        posted_today = _posted_on(posted, day)
        postings = postings_frame(posted, self.settings.timezone)
        del settlement, posted
        settled_earlier = pl.DataFrame(schema={"txn": pl.Utf8, "kind": pl.Utf8})
        if already.height:
            settled_earlier = postings.join(already, on=["txn", "kind"], how="semi").select("txn", "kind")
            postings = postings.join(settled_earlier, on=["txn", "kind"], how="anti")
        del already
        tolerances = self._tolerance_cents(lines)
        result = await asyncio.to_thread(
            match, lines, postings, day=day,
            settings=MatchSettings(tolerance_cents=tolerances, lag_days=self.settings.lag_days),
        )
        marks.append((time.perf_counter(), time.process_time()))

        entries = self._journals(batches)  # all of them balanced, or nothing is posted
        journals, refused = await self._post_journals(entries, ctx)
        marks.append((time.perf_counter(), time.process_time()))
        case_counts = await self._record_cases(result, lines, postings, settled_earlier, entries, refused, ctx)
        await self.ledger.record_settled(gateway, day, lines.select("txn", "kind", "batch"))
        marks.append((time.perf_counter(), time.process_time()))
        report = self._report(run_id, day, merchant, batches, line_count, posted_today, postings, result, journals,
                              refused, case_counts, started)
        marks.append((time.perf_counter(), time.process_time()))
        stages = ("read", "match", "journals", "cases", "report")
        report["seconds"] = {stage: round(end[0] - begin[0], 3)
                             for stage, begin, end in zip(stages, marks[:-1], marks[1:], strict=True)}
        report["cpu_seconds"] = {stage: round(end[1] - begin[1], 3)  # this process's, every thread's
                                 for stage, begin, end in zip(stages, marks[:-1], marks[1:], strict=True)}
        await self.ledger.save_report(run_id, gateway, day, "succeeded", report["counts"], report, None, started)
        ctx.count("reconciliation.runs")
        ctx.outcome("reconciled, journals refused" if refused else "reconciled")
        return report

    def _tolerance_cents(self, lines: pl.DataFrame) -> int:
        if not self.settings.tolerance:
            return 0
        currencies = lines.get_column("currency").unique().to_list() or ["USD"]
        exponent = max(currency_exponent(c) for c in currencies if c)
        return int(self.settings.tolerance.scaleb(exponent))

    def _journals(self, batches: Sequence[SettlementBatchTotals]) -> list[tuple[SettlementBatchTotals, JournalEntry]]:
        """Every batch's journal, built before any is posted: one that does not balance stops the run here."""
        entries = []
        for batch in batches:
            key = f"{self.back_office.name}:journal:settlement:{batch.gateway}:{batch.batch_id}:{batch.currency}"
            entry = settlement_journal(batch, self.accounts, key)
            if entry is not None:
                entries.append((batch, entry))
        return entries

    async def _post_journals(self, entries: list[tuple[SettlementBatchTotals, JournalEntry]], ctx: FlowContext,
                             ) -> tuple[list[dict[str, Any]], list[tuple[SettlementBatchTotals, str]]]:
        """(journals posted, batches whose journal the back office refused with the reason)."""
        posted: list[dict[str, Any]] = []
        refused: list[tuple[SettlementBatchTotals, str]] = []
        for batch, entry in entries:

            async def create(entry: JournalEntry = entry) -> str:
                return (await self.back_office.post_journal(entry)).key

            async def find(key: str = entry.key) -> str | None:
                ref = await self.back_office.find_document(DocumentKind.JOURNAL, key)
                return ref.key if ref else None

            debits, credits = entry.totals()[batch.currency]
            row = {"batch_id": batch.batch_id, "currency": batch.currency, "debits": debits.format(),
                   "credits": credits.format(), "deposit": batch.deposit.format()}
            try:
                ref = await ctx.once(entry.key, create, find, tag="journals.posted")
            except Rejected as exc:  # this batch only; the others still post
                log.warning("settlement journal for batch %s (%s) refused by %s: %s", batch.batch_id,
                            batch.currency, self.back_office.name, exc)
                ctx.count("journals.refused")
                refused.append((batch, str(exc)))
                continue
            posted.append({**row, "ref": ref})
        return posted, refused

    async def _record_cases(self, result: MatchResult, lines: pl.DataFrame, postings: pl.DataFrame,
                            settled_earlier: pl.DataFrame, entries: list[tuple[SettlementBatchTotals, JournalEntry]],
                            refused: list[tuple[SettlementBatchTotals, str]], ctx: FlowContext) -> dict[str, int]:
        gateway = self.gateway.name
        now = datetime.now(UTC)
        found = []
        for item in result.discrepancies.to_dicts():
            found.append(Case(
                key=_case_key(gateway, item), type=CaseType(item["type"]), summary=_summary(item),
                amount=_case_amount(item), reference=item["txn"] or item["order_ref"] or item["ref"], opened_at=now,
                updated_at=now, evidence={k: v for k, v in item.items() if v is not None},
            ))
        for batch, reason in refused:
            found.append(Case(
                key=_journal_case_key(gateway, batch), type=CaseType.JOURNAL_REFUSED,
                summary=f"Journal not posted: batch {batch.batch_id} {batch.currency}, deposit {batch.deposit}, "
                        f"refused by {self.back_office.name}: {reason}",
                amount=batch.deposit, reference=batch.batch_id, opened_at=now, updated_at=now,
                evidence={"batch": batch.batch_id, "currency": batch.currency, "day": batch.batch_date.isoformat(),
                          "deposit": batch.deposit.format(), "reason": reason},
            ))
        opened = await self.cases.record(found)
        # one task per new case, all asked for at once (a day can open a thousand), attached in one write
        limit = asyncio.Semaphore(TASKS_IN_FLIGHT)

        async def open_task(case: Case) -> str:
            task = Task(key=f"task:{case.key}", subject=case.summary[:60], body=case.summary,
                        category="reconciliation", reference=case.reference, amount=case.amount)

            async def create() -> str:
                return (await self.back_office.open_task(task)).key

            async with limit:
                return await ctx.once(task.key, create)

        outcomes = await asyncio.gather(*(open_task(case) for case in opened), return_exceptions=True)
        await self.cases.attach_all({case.key: ref for case, ref in zip(opened, outcomes, strict=True)
                                     if isinstance(ref, str)})
        failed = next((ref for ref in outcomes if isinstance(ref, BaseException)), None)
        if failed is not None:
            raise failed
        resolved = await self._resolve_cleared(result, lines, postings, settled_earlier, entries, refused,
                                               {case.key for case in found})
        return {"opened": len(opened), "recorded": len(found), "resolved": resolved}

    async def _resolve_cleared(self, result: MatchResult, lines: pl.DataFrame, postings: pl.DataFrame,
                               settled_earlier: pl.DataFrame,
                               entries: list[tuple[SettlementBatchTotals, JournalEntry]],
                               refused: list[tuple[SettlementBatchTotals, str]], found: set[str]) -> int:
        """Resolve the open cases this run shows are settled: a posting that has now settled, a transaction
        now matched (posted late, or corrected before a re-run), one posted after the day it settled, and a
        refused journal that has now been posted."""
        gateway = self.gateway.name
        open_keys = await self.cases.open_keys([CaseType.MISSING_IN_SETTLEMENT, *_ABOUT_A_LINE,
                                                CaseType.JOURNAL_REFUSED])
        if not open_keys - found:
            return 0
        cleared: list[tuple[str, str]] = []  # (key, note)
        prefix = f"{CaseType.MISSING_IN_SETTLEMENT.value}:"
        if any(key.startswith(prefix) for key in open_keys):
            refs = postings.join(result.matched_posts, on="post", how="semi").get_column("ref").to_list()
            cleared += [(f"{prefix}{ref}", "settled later") for ref in refs if f"{prefix}{ref}" in open_keys]
        about_lines = _keys_about_lines(open_keys, gateway, _ABOUT_A_LINE)
        if about_lines.height:
            matched = lines.join(result.matched_lines, on="line", how="semi").select("txn", "kind")
            keys = about_lines.join(matched, on=["txn", "kind"], how="semi").get_column("key").to_list()
            cleared += [(key, "matched") for key in keys]
            missing = about_lines.filter(pl.col("key").str.starts_with(f"{CaseType.MISSING_IN_ERP.value}:"))
            keys = missing.join(settled_earlier, on=["txn", "kind"], how="semi").get_column("key").to_list()
            cleared += [(key, "posted after its settlement") for key in keys]
        refused_batches = {batch.batch_id for batch, _ in refused}
        cleared += [(key, "journal posted") for key in (_journal_case_key(gateway, batch) for batch, _ in entries
                                                        if batch.batch_id not in refused_batches)
                    if key in open_keys]
        resolved = 0
        by_note: dict[str, list[str]] = {}
        for key, note in cleared:
            if key not in found:
                by_note.setdefault(note, []).append(key)
        for note, keys in by_note.items():
            resolved += await self.cases.resolve(keys, note=note)
        return resolved

    def _report(self, run_id: str, day: date, merchant: str, batches: Sequence[SettlementBatchTotals],
                line_count: int, posted_today: list[tuple[str, str, int]], postings: pl.DataFrame,
                result: MatchResult, journals: list[dict[str, Any]], refused: list[tuple[SettlementBatchTotals, str]],
                case_counts: dict[str, int], started: float) -> dict[str, Any]:
        totals: dict[str, dict[str, Money]] = {}

        def bucket(currency: str) -> dict[str, Money]:
            zero = Money.zero(currency)
            return totals.setdefault(currency, {name: zero for name in (
                "settled_gross", "settled_refunds", "fees", "chargebacks", "chargeback_fees", "deposit",
                "posted_receipts", "posted_refunds")})

        for batch in batches:
            entry = bucket(batch.currency)
            for name, value in (("settled_gross", batch.gross), ("settled_refunds", batch.refunds),
                                ("fees", batch.fees), ("chargebacks", batch.chargebacks),
                                ("chargeback_fees", batch.chargeback_fees), ("deposit", batch.deposit)):
                entry[name] = entry[name] + value
        for currency, kind, cents in posted_today:
            entry = bucket(currency)
            name = "posted_receipts" if kind == PostedKind.RECEIPT.value else "posted_refunds"
            entry[name] = entry[name] + Money.from_minor_units(int(cents), currency)

        by_type: dict[str, dict[str, Any]] = {}
        if result.discrepancies.height:
            amount = (pl.when(pl.col("type") == CaseType.AMOUNT_MISMATCH.value)
                      .then(pl.col("line_cents") - pl.col("post_cents"))
                      .otherwise(pl.coalesce("line_cents", "post_cents")))
            grouped = (result.discrepancies.with_columns(amount.alias("cents"))
                       .group_by("type", "currency").agg(pl.len().alias("count"), pl.col("cents").sum()))
            for row in grouped.iter_rows(named=True):
                entry = by_type.setdefault(row["type"], {"count": 0, "amount": {}})
                entry["count"] += row["count"]
                money = _money(row["cents"], row["currency"])
                if money is not None:
                    entry["amount"][row["currency"]] = money.format()

        hourly = self._hourly(day, postings, result)
        counts = {"lines": line_count, "postings": postings.height,
                  "batches": len(batches), "journals_posted": len(journals),
                  "journals_refused": len(refused), **result.counts(),
                  **{f"cases_{k}": v for k, v in case_counts.items()}}
        return {
            "run_id": run_id, "gateway": self.gateway.name, "merchant_id": self.merchant_id or merchant,
            "day": day.isoformat(), "status": "succeeded", "started_at": started, "finished_at": time.time(),
            "counts": counts,
            "totals": {cur: {k: v.format() for k, v in values.items()} for cur, values in totals.items()},
            "batches": [{"batch_id": b.batch_id, "currency": b.currency, "lines": b.lines,
                         "gross": b.gross.format(), "refunds": b.refunds.format(), "fees": b.fees.format(),
                         "chargebacks": b.chargebacks.format(), "chargeback_fees": b.chargeback_fees.format(),
                         "deposit": b.deposit.format()} for b in batches],
            "journals": journals,
            "journals_refused": [{"batch_id": b.batch_id, "currency": b.currency, "deposit": b.deposit.format(),
                                  "reason": reason} for b, reason in refused],
            "discrepancies": {"by_type": by_type,
                              "items": result.discrepancies.head(ITEMS_IN_REPORT).to_dicts(),
                              "total": result.discrepancies.height},
            "hourly": hourly,
        }

    @staticmethod
    def _hourly(day: date, postings: pl.DataFrame, result: MatchResult) -> list[dict[str, Any]]:
        """Per currency and hour of posting: what was posted that day, and how much of it has settled; net of
        refunds (money in is positive, money paid back negative), like the deposit."""
        todays = postings.filter((pl.col("posted_on") == day) & pl.col("hour").is_not_null())
        if not todays.height:
            return []
        settled_posts = result.matched_posts.select("post").with_columns(pl.lit(True).alias("settled"))
        signed = pl.when(pl.col("kind") == "refund").then(-pl.col("cents")).otherwise(pl.col("cents"))
        frame = (todays.with_columns(signed.alias("cents")).join(settled_posts, on="post", how="left")
                 .with_columns(pl.when(pl.col("settled")).then(pl.col("cents")).otherwise(0).alias("settled_cents"))
                 .group_by("currency", "hour")
                 .agg(pl.col("cents").sum().alias("posted"), pl.col("settled_cents").sum().alias("settled"))
                 .sort("currency", "hour"))
        points = []
        for row in frame.iter_rows(named=True):
            posted, settled = _money(row["posted"], row["currency"]), _money(row["settled"], row["currency"])
            points.append({"currency": row["currency"], "hour": row["hour"],
                           "posted": posted.format() if posted else "0", "settled": settled.format() if settled else "0"})
        return points


def _posted_on(posted: PostedFrame, day: date) -> list[tuple[str, str, int]]:
    """(currency, kind, minor units) of what the back office posted on ``day``."""
    totals = (posted.payments.filter(pl.col("posted_on") == day).group_by("currency", "kind")
              .agg(money_sum(pl.col("cents")).alias("cents")).sort("currency", "kind"))
    return [(currency, kind, int(cents)) for currency, kind, cents in totals.iter_rows()]


async def _abandon(task: Awaitable[T]) -> None:
    """Cancel a read the run no longer needs, and wait until it has stopped (its own failure included)."""
    future = asyncio.ensure_future(task)
    future.cancel()
    await asyncio.gather(future, return_exceptions=True)
