"""Daily settlement reconciliation: what the gateway paid out against what the back office holds, posted
to the general ledger.

One run reconciles one settlement day of one merchant:

1. read the day's settlement (an unreadable report fails the run before anything is posted, and the
   scheduler retries it);
2. match its lines against the receipts and refunds the back office holds (``matching``), leaving out
   postings already reconciled with an earlier day's settlement;
3. post one balanced journal per settlement batch (gross to card clearing, refunds, fees, chargebacks,
   net to the bank), each once per batch id;
4. turn every discrepancy into a case (opened, or updated on a re-run), with a task for the finance team,
   and resolve the cases the day's matches clear (a late posting that has now settled);
5. save the report.

Re-running a day is safe: journals are keyed by batch, cases by what they are about.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledgerlink.connectors.kit.errors import NotFound, RetryableError
from ledgerlink.connectors.kit.protocols import BackOffice, PaymentGateway
from ledgerlink.flows.context import FlowContext
from ledgerlink.flows.matching import LINE_SCHEMA, POSTING_SCHEMA, MatchResult, MatchSettings, match
from ledgerlink.flows.ports import CaseBook, ReconciliationLedger
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
    PostedPayment,
    Posting,
    Settlement,
    SettlementBatch,
    Side,
    Task,
    currency_exponent,
)

log = logging.getLogger(__name__)

RECONCILIATION_TYPES = (CaseType.MISSING_IN_ERP, CaseType.MISSING_IN_SETTLEMENT, CaseType.AMOUNT_MISMATCH,
                        CaseType.CURRENCY_MISMATCH, CaseType.DUPLICATE)
JOURNAL_ACCOUNTS = ("card_clearing", "refund_liability", "processing_fees", "chargeback_clearing", "bank")
ITEMS_IN_REPORT = 2000


class SettlementSettings(BaseModel):
    """``flows.settlement`` in an integration file."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    cron: str = "30 6 * * *"  # each morning, for the day before
    timezone: str = "UTC"  # the merchant's business day
    tolerance: Decimal = Field(Decimal("0"), ge=0, description="largest difference still counted as a match")
    lag_days: int = Field(2, ge=0, le=30, description="days a posting may wait for its settlement before a case")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value


def lines_frame(settlement: Settlement) -> pl.DataFrame:
    rows = [
        (line.source_line or index, line.transaction_id, line.order_reference, line.kind.value,
         line.amount.minor_units, line.amount.currency, batch.batch_id)
        for batch in settlement.batches for index, line in enumerate(batch.lines, start=1)
    ]
    frame = pl.DataFrame(rows, schema=LINE_SCHEMA, orient="row")
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("line"))  # unique ids


def postings_frame(posted: Sequence[PostedPayment]) -> pl.DataFrame:
    rows = [
        (index, p.transaction_id, p.order_reference, "capture" if p.kind is PostedKind.RECEIPT else "refund",
         p.amount.minor_units, p.amount.currency, p.posted_on, p.posted_at.hour if p.posted_at else None, p.ref.key)
        for index, p in enumerate(posted)
    ]
    return pl.DataFrame(rows, schema=POSTING_SCHEMA, orient="row")


def settlement_journal(batch: SettlementBatch, accounts: dict[str, GLAccount], key: str) -> JournalEntry | None:
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


def _summary(item: dict[str, Any]) -> str:
    line = _money(item["line_cents"], item["line_currency"])
    posted = _money(item["post_cents"], item["post_currency"])
    what = f"{item['kind']} {item['txn'] or ''} (order {item['order_ref'] or '?'})".strip()
    return {
        CaseType.MISSING_IN_ERP.value: f"Settled but not posted: {what} {line}",
        CaseType.MISSING_IN_SETTLEMENT.value: f"Posted but not settled: {what} {posted} ({item['ref']})",
        CaseType.AMOUNT_MISMATCH.value: f"Amounts differ: {what} settled {line}, posted {posted}",
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

    async def run(self, day: date, ctx: FlowContext, *, run_id: str | None = None) -> dict[str, Any]:
        run_id = run_id or f"{day.isoformat()}-{uuid.uuid4().hex[:10]}"
        started = time.time()
        gateway = self.gateway.name
        try:
            settlement = await self.gateway.settlement(day)
        except (InvalidInput, NotFound) as exc:
            reason = "unreadable" if isinstance(exc, InvalidInput) else "not available yet"
            await self.ledger.save_report(run_id, gateway, day, "failed", {"error": str(exc)}, None, str(exc),
                                          started)
            log.warning("settlement for %s %s: %s; nothing posted, the run will be retried", day, reason, exc)
            raise RetryableError(f"settlement report for {day} {reason}: {exc}", system=gateway,
                                 operation="settlement") from exc

        since = day - timedelta(days=self.settings.lag_days)
        posted = await self.back_office.posted_payments(since, day + timedelta(days=2))
        already = await self.ledger.settled_before(gateway, day, since - timedelta(days=1))
        lines = lines_frame(settlement)
        postings = postings_frame(posted)
        if already:
            done = pl.DataFrame(list(already), schema={"txn": pl.Utf8, "kind": pl.Utf8}, orient="row")
            postings = postings.join(done, on=["txn", "kind"], how="anti")
        tolerances = self._tolerance_cents(lines)
        result = await asyncio.to_thread(
            match, lines, postings, day=day,
            settings=MatchSettings(tolerance_cents=tolerances, lag_days=self.settings.lag_days),
        )

        journals = await self._post_journals(settlement, ctx)
        case_counts = await self._record_cases(result, postings, ctx)
        await self.ledger.record_settled(
            gateway, day, lines.select("txn", "kind", "batch").unique(subset=["txn", "kind"]).iter_rows())
        report = self._report(run_id, day, settlement, posted, postings, result, journals, case_counts, started)
        await self.ledger.save_report(run_id, gateway, day, "succeeded", report["counts"], report, None, started)
        ctx.count("reconciliation.runs")
        ctx.outcome("reconciled")
        return report

    def _tolerance_cents(self, lines: pl.DataFrame) -> int:
        if not self.settings.tolerance:
            return 0
        currencies = lines.get_column("currency").unique().to_list() or ["USD"]
        exponent = max(currency_exponent(c) for c in currencies if c)
        return int(self.settings.tolerance.scaleb(exponent))

    async def _post_journals(self, settlement: Settlement, ctx: FlowContext) -> list[dict[str, Any]]:
        posted: list[dict[str, Any]] = []
        for batch in settlement.batches:
            key = f"{self.back_office.name}:journal:settlement:{batch.gateway}:{batch.batch_id}:{batch.currency}"
            entry = settlement_journal(batch, self.accounts, key)
            if entry is None:
                continue

            async def create(entry: JournalEntry = entry) -> str:
                return (await self.back_office.post_journal(entry)).key

            async def find(key: str = key) -> str | None:
                ref = await self.back_office.find_document(DocumentKind.JOURNAL, key)
                return ref.key if ref else None

            ref = await ctx.once(key, create, find, tag="journals.posted")
            debits, credits = entry.totals()[batch.currency]
            posted.append({"batch_id": batch.batch_id, "currency": batch.currency, "ref": ref,
                           "debits": debits.format(), "credits": credits.format(),
                           "deposit": batch.deposit.format()})
        return posted

    async def _record_cases(self, result: MatchResult, postings: pl.DataFrame, ctx: FlowContext) -> dict[str, int]:
        gateway = self.gateway.name
        now = datetime.now(UTC)
        items = result.discrepancies.to_dicts()
        found = []
        for item in items:
            amount = _money(item["line_cents"], item["line_currency"]) or _money(item["post_cents"],
                                                                                   item["post_currency"])
            found.append(Case(
                key=_case_key(gateway, item), type=CaseType(item["type"]), summary=_summary(item), amount=amount,
                reference=item["txn"] or item["order_ref"] or item["ref"], opened_at=now, updated_at=now,
                evidence={k: v for k, v in item.items() if v is not None},
            ))
        opened = await self.cases.record(found)
        for case in opened:
            task = Task(key=f"task:{case.key}", subject=case.summary[:60], body=case.summary, category="reconciliation",
                        reference=case.reference, amount=case.amount)

            async def open_task(task: Task = task) -> str:
                return (await self.back_office.open_task(task)).key

            ref = await ctx.once(task.key, open_task)
            await self.cases.attach(case.key, ref)

        # a posting that has now settled clears the case opened when it had not
        open_keys = await self.cases.open_keys([CaseType.MISSING_IN_SETTLEMENT, CaseType.MISSING_IN_ERP])
        cleared: list[str] = []
        if open_keys:
            matched_posts = postings.join(result.matched_posts, on="post", how="semi").get_column("ref").to_list()
            prefix = f"{CaseType.MISSING_IN_SETTLEMENT.value}:"
            cleared = [key for key in (f"{prefix}{ref}" for ref in matched_posts) if key in open_keys]
        resolved = await self.cases.resolve(cleared, note="settled later") if cleared else 0
        return {"opened": len(opened), "recorded": len(found), "resolved": resolved}

    def _report(self, run_id: str, day: date, settlement: Settlement, posted: Sequence[PostedPayment],
                postings: pl.DataFrame, result: MatchResult, journals: list[dict[str, Any]],
                case_counts: dict[str, int], started: float) -> dict[str, Any]:
        totals: dict[str, dict[str, Money]] = {}

        def bucket(currency: str) -> dict[str, Money]:
            zero = Money.zero(currency)
            return totals.setdefault(currency, {name: zero for name in (
                "settled_gross", "settled_refunds", "fees", "chargebacks", "chargeback_fees", "deposit",
                "posted_receipts", "posted_refunds")})

        for batch in settlement.batches:
            entry = bucket(batch.currency)
            for name, value in (("settled_gross", batch.gross), ("settled_refunds", batch.refunds),
                                ("fees", batch.fees), ("chargebacks", batch.chargebacks),
                                ("chargeback_fees", batch.chargeback_fees), ("deposit", batch.deposit)):
                entry[name] = entry[name] + value
        for payment in posted:
            if payment.posted_on != day:
                continue
            entry = bucket(payment.amount.currency)
            name = "posted_receipts" if payment.kind is PostedKind.RECEIPT else "posted_refunds"
            entry[name] = entry[name] + payment.amount

        by_type: dict[str, dict[str, Any]] = {}
        if result.discrepancies.height:
            grouped = (result.discrepancies
                       .with_columns(pl.coalesce("line_cents", "post_cents").alias("cents"))
                       .group_by("type", "currency").agg(pl.len().alias("count"), pl.col("cents").sum()))
            for row in grouped.iter_rows(named=True):
                entry = by_type.setdefault(row["type"], {"count": 0, "amount": {}})
                entry["count"] += row["count"]
                money = _money(row["cents"], row["currency"])
                if money is not None:
                    entry["amount"][row["currency"]] = money.format()

        hourly = self._hourly(day, postings, result)
        counts = {"lines": sum(len(b.lines) for b in settlement.batches), "postings": postings.height,
                  "batches": len(settlement.batches), **result.counts(), **{f"cases_{k}": v
                                                                           for k, v in case_counts.items()}}
        return {
            "run_id": run_id, "gateway": self.gateway.name, "merchant_id": self.merchant_id or settlement.merchant_id,
            "day": day.isoformat(), "status": "succeeded", "started_at": started, "finished_at": time.time(),
            "counts": counts,
            "totals": {cur: {k: v.format() for k, v in values.items()} for cur, values in totals.items()},
            "batches": [{"batch_id": b.batch_id, "currency": b.currency, "lines": len(b.lines),
                         "gross": b.gross.format(), "refunds": b.refunds.format(), "fees": b.fees.format(),
                         "chargebacks": b.chargebacks.format(), "chargeback_fees": b.chargeback_fees.format(),
                         "deposit": b.deposit.format()} for b in settlement.batches],
            "journals": journals,
            "discrepancies": {"by_type": by_type,
                              "items": result.discrepancies.head(ITEMS_IN_REPORT).to_dicts(),
                              "total": result.discrepancies.height},
            "hourly": hourly,
        }

    @staticmethod
    def _hourly(day: date, postings: pl.DataFrame, result: MatchResult) -> list[dict[str, Any]]:
        """Per currency and hour of posting: what was posted that day, and how much of it has settled."""
        todays = postings.filter((pl.col("posted_on") == day) & pl.col("hour").is_not_null())
        if not todays.height:
            return []
        settled_posts = result.matched_posts.select("post").with_columns(pl.lit(True).alias("settled"))
        frame = (todays.join(settled_posts, on="post", how="left")
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
