"""Daily settlement reconciliation end to end: storefront payments posted to SL by the engine, the Cybersource
sandbox's settlement day with injected anomalies, the scheduled run through the inbox, and what SL, the case
book and the admin API hold afterwards.

The expected discrepancies are derived from the sandbox's own truth (what it really settled) against what its
report says, never from the matcher: every injected anomaly must be found with its type and amount, nothing
else may be, and the journals must post exactly the processor's net deposit.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.connectors.cybersource.batch_detail import BatchDetail, BatchInfo
from ledgerlink.connectors.cybersource.settlement import Funding, build_settlement
from ledgerlink.connectors.dynamics_sl.sandbox.faults import FaultRule
from ledgerlink.flows.settlement import JOURNAL_ACCOUNTS, settlement_journal
from ledgerlink.integrations import load_integration_file, parse_integration
from ledgerlink.model import (
    AuthorizationRequest,
    Money,
    Payment,
    PaymentToken,
    Settlement,
    SettlementLine,
    SettlementLineKind,
    Side,
)
from ledgerlink.processes import ChildProcess, free_port, wait_http
from ledgerlink.runtime.scheduler import Scheduler
from ledgerlink.runtime.schema import reconciliations, schedules, settled_days
from tests.flows.harness import (
    ACCOUNTS,
    ALL_FLOWS,
    CS_CREDENTIALS,
    SL_API_KEY,
    VISA_INSTRUMENT,
    WEBHOOK_KEY,
    Pair,
    integration_document,
    running_pair,
)

DAY = date(2026, 11, 10)
MERCHANT = "testrest"
SL_SETTINGS = {"current_period": "202611"}  # DAY's month is SL's open period
EVERY_ANOMALY = {"drop_lines": 1, "duplicate_lines": 1, "change_amounts": 1, "change_currencies": 1,
                 "phantom_lines": 1}
TYPES = ("missing_in_erp", "missing_in_settlement", "amount_mismatch", "currency_mismatch", "duplicate")
CENTS = ("10", "25", "40", "55", "70", "85", "15", "30", "45", "60")  # none an outcome trigger (01-03, 08, 09)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def acct(name: str) -> str:
    return str(ACCOUNTS[name]["account"])


@asynccontextmanager
async def business_days(tmp_path: Path, url: str, schema: str | None = None,
                        runtime: dict[str, Any] | None = None) -> AsyncIterator[Pair]:
    """The pair with SL's server clock following the gateway's business clock, so a payment made at 10:00 on
    a day is posted in SL at 10:00 that day (SL's ``Crtd_DateTime`` is the hour the report charts)."""
    async with running_pair(tmp_path, url, schema, flows=ALL_FLOWS, sl_settings=SL_SETTINGS,
                            runtime=runtime) as running:
        business = running.cybersource.store.clock
        running.sl.clock = lambda: business.now().replace(tzinfo=None)
        yield running


@pytest.fixture
async def pair(tmp_path: Path, database_target: tuple[str, str | None]) -> AsyncIterator[Pair]:
    url, schema = database_target
    async with business_days(tmp_path, url, schema) as running:
        yield running


# --- driving the pair ------------------------------------------------------------------------


class Cron:
    """The engine's own scheduler for the reconciliation schedule, on a clock the test moves: each ``tick``
    is the daily cron firing the morning after ``day``, exactly as a running engine would enqueue it."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.now = 0.0
        [spec] = [s for s in pair.integration.schedules() if s.name == "reconcile-settlement"]
        assert pair.engine.worker is not None
        self.scheduler = Scheduler(pair.db, [spec], buckets=pair.engine.settings.buckets,
                                   on_enqueue=pair.engine.worker.wake, clock=lambda: self.now)

    async def tick(self, day: date) -> None:
        fires = at(day + timedelta(days=1), 6, 30).timestamp()  # the cron: "30 6 * * *", UTC
        if not self.now:  # first use: the schedule's next run is this day's
            self.now = fires - 60
            await self.pair.db.write(lambda conn: conn.execute(delete(schedules)))
            await self.scheduler.start()
            await self.scheduler.stop()
        self.now = fires + 1
        assert await self.scheduler.run_due() == 1
        await self.pair.settle()


async def sell(pair: Pair, day: date, count: int, *, prefix: str, first_hour: int = 8) -> list[Payment]:
    """``count`` captured sales on ``day``, an hour apart, each posted to SL by the engine."""
    pair.cybersource.store.clock.pin(at(day, first_hour))
    sales = []
    for i in range(count):
        sales.append(await pair.pay(f"{prefix}-{i}", f"{20 + 3 * i}.{CENTS[i % len(CENTS)]}"))
        await pair.settle()  # posted in SL within its hour
        pair.cybersource.store.clock.advance(3600)
    return sales


async def rerun(pair: Pair, day: date) -> str:
    """A manual re-run through the admin API (the scheduler's own run for a day is once per day)."""
    queued = await pair.engine_http.post("/admin/reconciliations", json={"date": day.isoformat()})
    assert queued.status_code == 202, queued.text
    await pair.settle()
    return str(queued.json()["run_id"])


async def runs(pair: Pair, day: date) -> list[dict[str, Any]]:
    listed = await pair.engine_http.get("/admin/reconciliations", params={"day": day.isoformat()})
    assert listed.status_code == 200
    return list(listed.json()["items"])


async def latest_report(pair: Pair, day: date) -> dict[str, Any]:
    [latest, *_] = await runs(pair, day)
    found = await pair.engine_http.get(f"/admin/reconciliations/{latest['run_id']}")
    assert found.status_code == 200
    return dict(found.json())


async def open_cases(pair: Pair, **params: str) -> list[dict[str, Any]]:
    listed = await pair.engine_http.get("/admin/cases", params={"limit": "1000", **params})
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


def by_type(cases: list[dict[str, Any]]) -> dict[str, dict[str, Money]]:
    """type -> reference -> amount."""
    found: dict[str, dict[str, Money]] = {}
    for case in cases:
        amount = Money.of(case["amount"]["amount"], case["amount"]["currency"])
        found.setdefault(case["type"], {})[case["reference"]] = amount
    return found


def gl_batches(pair: Pair) -> dict[str, list[Any]]:
    """SL's GL journal batches (module GL: only the settlement posts those here) -> their GLTran lines."""
    store = pair.sl.store
    return {row["BatNbr"].strip(): store.all("SELECT * FROM GLTran WHERE Module = 'GL' AND BatNbr = ?",
                                             (row["BatNbr"],))
            for row in store.all("SELECT BatNbr FROM Batch WHERE Module = 'GL' ORDER BY BatNbr")}


def gl_sum(lines: list[Any], account: str, column: str) -> Decimal:
    return sum((Decimal(str(t[column])) for t in lines if t["Acct"].strip() == account), Decimal(0)).quantize(
        Decimal("0.01"))


def settled_rows(pair: Pair) -> int:
    """Lines remembered as settled: one blob per gateway and day (``ll_settled_days``)."""
    return int(pair.db.read_sync(lambda conn: conn.execute(
        select(func.coalesce(func.sum(settled_days.c.lines), 0))).scalar_one()))


# --- the oracle: what the sandbox really settled against what its report says ------------------


@dataclass
class Truth:
    settled: dict[str, Money]  # transaction id -> what the processor really settled on the day
    expected: dict[str, dict[str, Money]]  # type -> transaction id -> the case's amount
    dropped: set[str]  # settled, yet missing from the report: the posting waits for its settlement
    report_batches: dict[str, dict[str, Money]]  # batch id -> {"gross", "refunds"} as the report has them


def truth(pair: Pair, day: date) -> Truth:
    store = pair.cybersource.store
    real = {}
    for batch_id in store.settled_days.get(day, []):
        for txn_id in store.batches[batch_id].transaction_ids:
            txn = store.transactions[txn_id]
            real[txn_id] = Money.of(txn.settled_amount, txn.currency)
    expected: dict[str, dict[str, Money]] = {}
    seen: set[str] = set()
    batches: dict[str, dict[str, Money]] = {}
    for line in pair.cybersource.reports.lines(MERCHANT, day):
        amount = Money.of(line.amount, line.currency)
        sums = batches.setdefault(line.batch_id, {"gross": Money.zero(line.currency),
                                                  "refunds": Money.zero(line.currency)})
        sums["refunds" if line.kind == "refund" else "gross"] += amount
        txn = line.request_id
        if txn in seen:
            expected.setdefault("duplicate", {})[txn] = amount
            continue
        seen.add(txn)
        if txn not in real:
            expected.setdefault("missing_in_erp", {})[txn] = amount
        elif amount.currency != real[txn].currency:
            expected.setdefault("currency_mismatch", {})[txn] = amount
        elif amount != real[txn]:
            expected.setdefault("amount_mismatch", {})[txn] = amount - real[txn]
    return Truth(real, expected, set(real) - seen, batches)


def net_funding(pair: Pair, day: date, currency: str, name: str) -> Money:
    doc = pair.cybersource.reports.net_fundings(MERCHANT, at(day, 0), at(day + timedelta(days=1), 0))
    return next((Money.of(t["value"], currency) for t in doc[name] if t["currency"] == currency),
                Money.zero(currency))


# --- the tests -----------------------------------------------------------------------------------


async def anomalous_day(pair: Pair) -> tuple[Cron, Truth, list[Payment]]:
    """DAY - 1: two sales, settled and reconciled clean. DAY: sales across the day, a split capture, a refund
    of yesterday's sale and a chargeback against it, closed into two batches, with every data anomaly."""
    cs = pair.cybersource
    cron = Cron(pair)
    yesterday = await sell(pair, DAY - timedelta(days=1), 2, prefix="WEB-Y")
    cs.settlements.close(DAY - timedelta(days=1))
    await cron.tick(DAY - timedelta(days=1))
    assert await open_cases(pair) == []
    assert len(gl_batches(pair)) == 1

    sales = await sell(pair, DAY, 8, prefix="WEB-D")
    auth = await pair.pay("WEB-D-SPLIT", "90.00", capture=False)
    await pair.storefront.capture(auth.id, usd("50.00"), order_reference="WEB-D-SPLIT")
    await pair.storefront.capture(auth.id, usd("40.00"), order_reference="WEB-D-SPLIT")
    await pair.storefront.refund(yesterday[0].id, usd("5.00"), reference="r-y0", order_reference="WEB-Y-0")
    await pair.settle()
    cs.disputes.open(yesterday[1].id, amount=Decimal("10.00"))
    cs.settlements.close(DAY, batches_per_currency=2)
    cs.configure_anomalies({"seed": 7, "days": [DAY.isoformat()], **EVERY_ANOMALY})
    found = truth(pair, DAY)
    # the seed puts each anomaly on a transaction of its own, so each is one case
    assert {k: len(v) for k, v in found.expected.items()} == {t: 1 for t in TYPES if t != "missing_in_settlement"}
    assert len({txn for cases in found.expected.values() for txn in cases} | found.dropped) == 5
    await cron.tick(DAY)
    return cron, found, sales


async def test_every_injected_discrepancy_is_found_and_nothing_else(pair: Pair) -> None:
    _, found, _ = await anomalous_day(pair)
    report = await latest_report(pair, DAY)
    assert report["status"] == "succeeded"
    counts = report["summary"]
    assert counts["discrepancies"] == 4 and counts["postings_awaiting_settlement"] == 1  # the dropped line waits

    cases = await open_cases(pair)
    refused = [c for c in cases if c["type"] == "journal_refused"]
    assert by_type([c for c in cases if c["type"] != "journal_refused"]) == found.expected
    assert all(c["status"] == "open" and c["age_days"] >= 0 for c in cases)
    # SL is single-currency: the batch the processor settled in EUR cannot be journaled; a person must
    [eur] = [b for b in report["report"]["batches"] if b["currency"] == "EUR"]
    assert [(c["reference"], c["amount"]) for c in refused] == [
        (eur["batch_id"], {"amount": eur["deposit"], "currency": "EUR"})]
    assert "MultiCurrencyDisabled" in refused[0]["summary"]

    # one SL task per case, for the finance team, linked from the case
    tasks = await pair.sl_get("tasks", Category="reconciliation")
    assert sorted(t["Reference"].strip() for t in tasks) == sorted(c["reference"] for c in cases)
    assert all(len(c["refs"]) == 1 and c["refs"][0]["kind"] == "task" for c in cases)
    only_amounts = await open_cases(pair, type="amount_mismatch")
    assert [c["reference"] for c in only_amounts] == list(found.expected["amount_mismatch"])


async def test_one_balanced_journal_per_batch_posts_the_deposit(pair: Pair) -> None:
    _, found, _ = await anomalous_day(pair)
    report = (await latest_report(pair, DAY))["report"]
    day_journals = {j["ref"].rsplit(":", 1)[1]: j for j in report["journals"]}
    usd_batches = {b["batch_id"]: b for b in report["batches"] if b["currency"] == "USD"}
    assert {j["batch_id"] for j in day_journals.values()} == set(usd_batches)
    assert len(usd_batches) == 2  # the day closed into two; the EUR one is the changed currency's
    all_gl = gl_batches(pair)
    assert set(day_journals) < set(all_gl) and len(all_gl) == 1 + len(day_journals)  # and yesterday's

    for bat_nbr, journal in day_journals.items():
        lines = all_gl[bat_nbr]
        sums = found.report_batches[journal["batch_id"]]
        assert sum((Decimal(str(t["DrAmt"])) for t in lines), Decimal(0)) == \
            sum((Decimal(str(t["CrAmt"])) for t in lines), Decimal(0)) > 0
        assert {t["Acct"].strip() for t in lines} <= {acct(n) for n in ("card_clearing", "refund_liability",
                                                                        "processing_fees", "chargeback_clearing",
                                                                        "bank")}
        assert gl_sum(lines, acct("card_clearing"), "CrAmt") == sums["gross"].amount
        assert gl_sum(lines, acct("refund_liability"), "DrAmt") == sums["refunds"].amount
        assert gl_sum(lines, acct("bank"), "DrAmt") - gl_sum(lines, acct("bank"), "CrAmt") == \
            Money.of(journal["deposit"], "USD").amount

    day_lines = [t for bat_nbr in day_journals for t in all_gl[bat_nbr]]
    # the day's net deposit, fees and chargebacks, as the processor's net funding states them
    deposit = gl_sum(day_lines, acct("bank"), "DrAmt") - gl_sum(day_lines, acct("bank"), "CrAmt")
    assert deposit == net_funding(pair, DAY, "USD", "netTotal").amount
    fees = net_funding(pair, DAY, "USD", "totalFees").amount
    assert gl_sum(day_lines, acct("processing_fees"), "DrAmt") == fees - Decimal("15.00")  # less the cb fee
    assert gl_sum(day_lines, acct("chargeback_clearing"), "DrAmt") == Decimal("10.00") + Decimal("15.00")

    # card clearing: every capture posted in SL, less what the settlement cleared, is what the anomalies moved
    clearing = gl_sum(day_lines, acct("card_clearing"), "CrAmt")
    captured = sum((m.amount for txn, m in found.settled.items() if m.currency == "USD"
                    and pair.cybersource.store.transactions[txn].kind != "refund"), Decimal(0))
    moved = (found.expected["amount_mismatch"], found.expected["duplicate"], found.expected["missing_in_erp"])
    eur_line = next(iter(found.expected["currency_mismatch"]))
    dropped = next(iter(found.dropped))
    assert clearing == captured + sum((m.amount for group in moved for m in group.values()), Decimal(0)) \
        - found.settled[eur_line].amount - found.settled[dropped].amount


async def test_rerunning_a_day_posts_nothing_again_and_updates_its_cases(pair: Pair) -> None:
    _, found, _ = await anomalous_day(pair)
    journals_before = gl_batches(pair)
    cases_before = {c["key"]: c for c in await open_cases(pair)}
    tasks_before = await pair.sl_get("tasks")
    settled_before = settled_rows(pair)

    await rerun(pair, DAY)
    await rerun(pair, DAY)
    assert [r["status"] for r in await runs(pair, DAY)] == ["succeeded"] * 3
    assert gl_batches(pair) == journals_before
    report = await latest_report(pair, DAY)
    assert report["summary"]["journals_posted"] == 2 and report["summary"]["cases_opened"] == 0
    after = {c["key"]: c for c in await open_cases(pair)}
    assert after.keys() == cases_before.keys()
    assert all(after[k]["updated_at"] > cases_before[k]["updated_at"] for k in after)  # updated, not added
    assert all(after[k]["refs"] == cases_before[k]["refs"] for k in after)
    assert await pair.sl_get("tasks") == tasks_before
    assert settled_rows(pair) == settled_before
    assert by_type([c for c in after.values() if c["type"] != "journal_refused"]) == found.expected


async def test_late_postings_wait_for_their_settlement_until_the_lag_window_closes(pair: Pair) -> None:
    cs = pair.cybersource
    cron = Cron(pair)
    sales = await sell(pair, DAY, 4, prefix="WEB-L")
    cs.settlements.close(DAY)  # the evening cut-off, then one more sale: it settles tomorrow
    cs.store.clock.pin(at(DAY, 23, 30))
    late = await pair.pay("WEB-L-LATE", "33.30")
    await pair.settle()
    cs.configure_anomalies({"seed": 3, "days": [DAY.isoformat()], "drop_lines": 1})
    [dropped] = truth(pair, DAY).dropped  # the processor settled it but its report leaves it out
    assert dropped in {s.id for s in sales}

    await cron.tick(DAY)
    report = await latest_report(pair, DAY)
    assert report["summary"]["postings_awaiting_settlement"] == 2  # posted today, not settled today: no case
    assert await open_cases(pair) == []

    cs.store.clock.pin(at(DAY + timedelta(days=1), 12))
    cs.settlements.close(DAY + timedelta(days=1))
    await cron.tick(DAY + timedelta(days=1))  # the late sale settles and matches; the dropped one still waits
    report = await latest_report(pair, DAY + timedelta(days=1))
    assert (report["summary"]["postings_matched"], report["summary"]["postings_awaiting_settlement"]) == (1, 1)
    assert late.id in pair.cybersource.store.batches[report["report"]["batches"][0]["batch_id"]].transaction_ids
    assert await open_cases(pair) == []

    cs.settlements.close(DAY + timedelta(days=2))
    await cron.tick(DAY + timedelta(days=2))  # lag_days = 2 have passed
    [case] = await open_cases(pair)
    assert (case["type"], case["reference"]) == ("missing_in_settlement", dropped)
    assert Money.of(case["amount"]["amount"], case["amount"]["currency"]) == truth(pair, DAY).settled[dropped]
    assert len(await pair.sl_get("tasks", Category="reconciliation")) == 1


@pytest.mark.parametrize(("knobs", "where", "why"), [
    ({"truncate": True}, "PaymentBatchDetailReport line 7, column ", "truncated"),
    ({"garble_amounts": 1}, ", column amount", '"12.3.4" is not a decimal amount'),
    ({"drop_header_column": "currency"}, "PaymentBatchDetailReport line 2, column currency", "no currency column"),
    ({"repeat_lines": 1}, ", column batch_id", "exactly"),
])
async def test_a_malformed_report_posts_nothing_and_the_retry_succeeds(
    tmp_path: Path, sqlite_url: str, knobs: dict[str, Any], where: str, why: str
) -> None:
    runtime = {"backoff": {"base_seconds": 0.2, "cap_seconds": 0.3, "max_attempts": 50}}  # full jitter
    async with business_days(tmp_path, sqlite_url, runtime=runtime) as pair:
        cs = pair.cybersource
        await sell(pair, DAY, 5, prefix="WEB-M")
        cs.settlements.close(DAY)
        cs.configure_anomalies({"seed": 5, "days": [DAY.isoformat()], **knobs})
        tick = asyncio.create_task(Cron(pair).tick(DAY))
        failed = await first_failed_run(pair, DAY)
        assert where in failed["error"] and why in failed["error"], failed["error"]
        assert failed["report"] is None
        # nothing half-posted: no journal, no case, no task, nothing remembered as settled
        assert gl_batches(pair) == {}
        assert await open_cases(pair) == [] and await pair.sl_get("tasks") == []
        assert settled_rows(pair) == 0
        cs.configure_anomalies(None)  # the processor publishes a good file; the scheduled retry reads it
        await tick
        statuses = [r["status"] for r in await runs(pair, DAY)]
        assert statuses[0] == "succeeded" and set(statuses[1:]) == {"failed"}
        assert len(gl_batches(pair)) == 1 and await open_cases(pair) == []
        assert pair.stats()["events"].get("dead", 0) == 0


async def first_failed_run(pair: Pair, day: date, timeout: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        rows = pair.db.read_sync(lambda conn: conn.execute(
            select(reconciliations.c.status, reconciliations.c.error, reconciliations.c.report)
            .where(reconciliations.c.day == day.isoformat())).all())
        if rows:  # the file stays broken until the test fixes it: every attempt so far failed
            assert {row.status for row in rows} == {"failed"}
            return dict(rows[0]._mapping)
        await asyncio.sleep(0.01)
    raise AssertionError("no failed run recorded")


async def test_a_report_that_stays_broken_is_dead_lettered_naming_the_line_and_a_replay_succeeds(
    tmp_path: Path, sqlite_url: str
) -> None:
    runtime = {"backoff": {"base_seconds": 0.02, "cap_seconds": 0.05, "max_attempts": 3}}
    async with business_days(tmp_path, sqlite_url, runtime=runtime) as pair:
        cs = pair.cybersource
        await sell(pair, DAY, 3, prefix="WEB-X")
        cs.settlements.close(DAY)
        cs.configure_anomalies({"seed": 1, "days": [DAY.isoformat()], "garble_amounts": 1})
        await Cron(pair).tick(DAY)
        dead = (await pair.engine_http.get("/admin/dlq")).json()["items"]
        [entry] = dead
        assert entry["event_type"] == "reconcile-settlement-day" and entry["error"] == "RetryableError"
        assert "PaymentBatchDetailReport line " in entry["message"] and ", column amount" in entry["message"]
        assert [r["status"] for r in await runs(pair, DAY)] == ["failed"] * 3
        assert gl_batches(pair) == {} and settled_rows(pair) == 0

        cs.configure_anomalies(None)
        replayed = await pair.engine_http.post(f"/admin/dlq/{entry['seq']}/replay")
        assert replayed.status_code == 200
        await pair.settle()
        assert (await runs(pair, DAY))[0]["status"] == "succeeded"
        assert len(gl_batches(pair)) == 1


async def test_the_report_as_json_csv_and_html(pair: Pair) -> None:
    _, found, _ = await anomalous_day(pair)
    report = await latest_report(pair, DAY)
    run_id = report["run_id"]
    body = report["report"]
    assert body["day"] == DAY.isoformat() and body["discrepancies"]["total"] == 4
    assert {t: v["count"] for t, v in body["discrepancies"]["by_type"].items()} == {
        t: len(v) for t, v in found.expected.items()}
    [difference] = found.expected["amount_mismatch"].values()
    assert body["discrepancies"]["by_type"]["amount_mismatch"]["amount"] == {"USD": difference.format()}
    hours = {point["hour"] for point in body["hourly"]}
    assert hours >= set(range(8, 16))  # one sale an hour from 08:00
    posted = sum((Decimal(p["posted"]) for p in body["hourly"]), Decimal(0))
    totals = body["totals"]["USD"]
    assert posted == Decimal(totals["posted_receipts"]) - Decimal(totals["posted_refunds"]) > 0

    as_csv = await pair.engine_http.get(f"/admin/reconciliations/{run_id}/report.csv")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert sorted((r["type"], r["txn"]) for r in rows) == sorted(
        (t, txn) for t, cases in found.expected.items() for txn in cases)

    page = await pair.engine_http.get(f"/admin/reconciliations/{run_id}/report.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count("<svg") == 3  # settled vs posted by hour, discrepancies by type, and by amount
    assert "Settled vs posted by hour (USD)" in page.text and "Discrepancies by type" in page.text
    assert "Journals refused" in page.text

    assert (await pair.engine_http.get("/admin/reconciliations/nope/report.html")).status_code == 404
    assert (await pair.engine_http.get("/admin/cases", params={"type": "nonsense"})).status_code == 400
    assert (await pair.engine_http.get("/admin/cases", headers={"Authorization": "Bearer x"})).status_code == 401


async def test_a_journal_the_erp_refuses_is_a_case_until_a_rerun_posts_it(pair: Pair) -> None:
    cron = Cron(pair)
    await sell(pair, DAY, 3, prefix="WEB-J")
    pair.cybersource.settlements.close(DAY, batches_per_currency=2)
    pair.sl.faults.add(FaultRule(method="POST", path="/api/v1/gl/batches", status=422, times=1))
    await cron.tick(DAY)
    [refused] = (await latest_report(pair, DAY))["report"]["journals_refused"]
    [case] = await open_cases(pair)
    assert (case["type"], case["reference"]) == ("journal_refused", refused["batch_id"])
    assert case["amount"] == {"amount": refused["deposit"], "currency": "USD"}
    assert len(gl_batches(pair)) == 1  # the other batch of the day still posted
    assert len(await pair.sl_get("tasks", Category="reconciliation")) == 1

    await rerun(pair, DAY)  # SL takes it now
    assert len(gl_batches(pair)) == 2 and await open_cases(pair) == []
    [resolved] = await open_cases(pair, status="resolved")
    assert resolved["key"] == case["key"]
    assert (await latest_report(pair, DAY))["summary"]["cases_resolved"] == 1


async def test_a_posting_that_reaches_sl_after_its_settlement_resolves_its_case(pair: Pair) -> None:
    cron = Cron(pair)
    pair.sl.faults.add(FaultRule(method="POST", path="/api/v1/salesorders", status=400, times=1))
    [refused, *_] = await sell(pair, DAY, 3, prefix="WEB-P")  # SL refuses the first order: dead-lettered
    [dead] = (await pair.engine_http.get("/admin/dlq")).json()["items"]
    pair.cybersource.settlements.close(DAY)
    await cron.tick(DAY)
    [case] = await open_cases(pair)
    assert (case["type"], case["reference"], case["amount"]) == (
        "missing_in_erp", refused.id, {"amount": refused.amount.format(), "currency": "USD"})

    assert (await pair.engine_http.post(f"/admin/dlq/{dead['seq']}/replay")).status_code == 200
    await pair.settle()  # now posted in SL, dated the day it was paid
    pair.cybersource.store.clock.pin(at(DAY + timedelta(days=1), 12))
    pair.cybersource.settlements.close(DAY + timedelta(days=1))
    await cron.tick(DAY + timedelta(days=1))
    assert await open_cases(pair) == []
    [resolved] = await open_cases(pair, status="resolved")
    assert resolved["key"] == case["key"]
    await rerun(pair, DAY)  # and the day itself, re-run, now matches it: nothing opens again
    assert await open_cases(pair) == []
    assert (await latest_report(pair, DAY))["summary"]["discrepancies"] == 0


async def test_days_missed_while_the_engine_was_down_are_each_reconciled_once(pair: Pair) -> None:
    cs = pair.cybersource
    cron = Cron(pair)
    for offset in range(4):
        day = DAY + timedelta(days=offset)
        await sell(pair, day, 2, prefix=f"WEB-O{offset}")
        cs.settlements.close(day)
    await cron.tick(DAY)
    await rerun(pair, DAY + timedelta(days=2))  # someone reconciles a day by hand while the engine is down
    # the engine comes back the morning after DAY + 3: one scheduler pass, through every tick it missed
    await cron.tick(DAY + timedelta(days=3))
    for offset in range(4):
        day = DAY + timedelta(days=offset)
        assert [r["status"] for r in await runs(pair, day)] == ["succeeded"], day
        assert (await latest_report(pair, day))["summary"]["lines"] == 2
    assert await open_cases(pair) == [] and len(gl_batches(pair)) == 4
    # the missed days were asked for under each day's own event id: the next tick asks for its day only
    await cron.tick(DAY + timedelta(days=4))
    for offset in range(4):
        assert len(await runs(pair, DAY + timedelta(days=offset))) == 1
    assert pair.stats()["events"].get("dead", 0) == 1  # DAY + 4 never closed: its run waits in the DLQ


class _Ledger:
    def __init__(self, reconciled: set[date]) -> None:
        self.reconciled = reconciled

    async def reconciled_days(self, gateway: str, first: date, last: date) -> set[date]:
        return {day for day in self.reconciled if first <= day <= last}


@pytest.mark.parametrize(("catch_up_days", "done", "expected"), [
    (7, set(), [DAY - timedelta(days=n) for n in (4, 3, 2, 1, 0)]),
    (3, set(), [DAY - timedelta(days=n) for n in (2, 1, 0)]),
    (7, {DAY - timedelta(days=3)}, [DAY - timedelta(days=n) for n in (4, 2, 1, 0)]),
])
async def test_the_days_a_late_tick_stands_for(catch_up_days: int, done: set[date], expected: list[date]) -> None:
    from ledgerlink.flows.settlement import SettlementReconciliation, SettlementSettings

    class Gateway:
        name = "cybersource"

    flow = SettlementReconciliation(
        Gateway(), None, parse_integration(integration_document()).mapping,  # type: ignore[arg-type]
        SettlementSettings(enabled=True, catch_up_days=catch_up_days), cases=None,  # type: ignore[arg-type]
        ledger=_Ledger(done))  # type: ignore[arg-type]
    fires = at(DAY + timedelta(days=1), 6, 30).timestamp()  # the tick for DAY
    assert await flow.days_due(fires) == [DAY]
    assert await flow.days_due(fires - 4 * 86400, fires) == expected
    assert await flow.days_due(fires - 4 * 86400, fires + 600) == expected  # any time after the last tick


# --- any settlement: journals balance and post the net deposit -----------------------------------

_line = st.tuples(st.booleans(), st.integers(min_value=1, max_value=10_000_000))


@st.composite
def settlements(draw: st.DrawFn) -> tuple[Settlement, dict[str, Funding]]:
    """A day as the connector builds it from its two reports: batches of lines per currency, and per currency the
    net funding's fees, chargebacks (net of those won back: maybe negative) and chargeback fees."""
    detail = BatchDetail(start=DAY, end=DAY)
    funding: dict[str, Funding] = {}
    for currency in draw(st.lists(st.sampled_from(["USD", "EUR", "JPY", "BHD"]), min_size=1, max_size=3,
                                  unique=True)):
        def money(units: int, currency: str = currency) -> Money:
            return Money.from_minor_units(units, currency)

        purchases = refunds = 0
        for b in range(draw(st.integers(min_value=0, max_value=3))):
            batch_id = f"{currency}{b}"
            detail.batches[batch_id] = BatchInfo(currency, DAY, len(detail.lines) + 3)
            for i, (capture, units) in enumerate(draw(st.lists(_line, min_size=1, max_size=6))):
                detail.lines.append(SettlementLine(
                    gateway="cybersource", batch_id=batch_id, batch_date=DAY, transaction_id=f"{batch_id}-{i}",
                    kind=SettlementLineKind.CAPTURE if capture else SettlementLineKind.REFUND, amount=money(units)))
                purchases += units if capture else 0
                refunds += 0 if capture else units
        fees = draw(st.integers(min_value=0, max_value=1_000_000))
        chargebacks = draw(st.integers(min_value=-2_000_000, max_value=2_000_000))
        chargeback_fees = draw(st.integers(min_value=0, max_value=100_000))
        net = purchases - refunds - fees - chargebacks - chargeback_fees
        funding[currency] = Funding(currency, money(purchases), money(refunds), money(fees), money(chargeback_fees),
                                    money(chargebacks), money(net))
    settlement = build_settlement(gateway="cybersource", merchant_id=MERCHANT, day=DAY, detail=detail,
                                  funding=funding)
    return settlement, funding


@settings(max_examples=150, deadline=None)
@given(settlements())
def test_any_settlements_journals_balance_and_post_exactly_the_net_deposit(
        day: tuple[Settlement, dict[str, Funding]]) -> None:
    settlement, funding = day
    accounts = parse_integration(integration_document()).mapping.accounts.require(
        *JOURNAL_ACCOUNTS, purpose="test")
    net: dict[str, dict[str, Money]] = {}  # currency -> account -> debits less credits
    for batch in settlement.batches:
        entry = settlement_journal(batch, accounts, f"journal:{batch.batch_id}")
        if entry is None:
            assert batch.gross.is_zero() and batch.refunds.is_zero() and batch.deposit.is_zero()
            continue
        assert entry.currencies == [batch.currency]
        debits, credits = entry.totals()[batch.currency]
        assert debits == credits and debits.is_positive()
        sums = net.setdefault(batch.currency, {})
        for posting in entry.postings:
            signed = posting.amount if posting.side is Side.DEBIT else -posting.amount
            name = next(n for n, a in accounts.items() if a == posting.account)
            sums[name] = sums.get(name, Money.zero(batch.currency)) + signed
    for currency, figures in funding.items():
        posted = net.get(currency, {})
        zero = Money.zero(currency)
        assert posted.get("bank", zero) == figures.net  # the deposit, to the minor unit
        assert posted.get("card_clearing", zero) == -figures.purchases
        assert posted.get("refund_liability", zero) == figures.refunds
        assert posted.get("processing_fees", zero) == figures.fees
        assert posted.get("chargeback_clearing", zero) == figures.chargebacks + figures.chargeback_fees


# --- the shipped integration file and the CLI ---------------------------------------------------

SHIPPED = Path(__file__).resolve().parents[2] / "integrations" / "sl-cybersource.yaml"


def test_the_shipped_integration_file_runs_every_money_flow_with_a_complete_gl_mapping() -> None:
    """(That the file builds and runs, every flow assembled, is the CLI test's: it reconciles with it.)"""
    spec = load_integration_file(SHIPPED)
    flows = spec.flows
    assert flows.refunds.enabled and flows.disputes.enabled and flows.erp_refunds.enabled
    assert flows.settlement.enabled and croniter.is_valid(flows.settlement.cron)
    assert all(getattr(spec.mapping.accounts, name) is not None for name in type(spec.mapping.accounts).model_fields)
    checked = _cli("config", "check", str(SHIPPED))
    assert checked.returncode == 0 and "settlement" in checked.stdout, checked.stdout + checked.stderr


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledgerlink.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "250", **(env or {})})


@pytest.mark.slow
async def test_the_cli_reconciles_a_day_and_lists_its_cases(tmp_path: Path) -> None:
    """``ledgerlink reconcile --date`` and ``ledgerlink cases`` as an operator runs them: real sandboxes on real
    ports, the shipped integration file pointed at them, the engine run by the command itself."""
    cs_port, sl_port = free_port(), free_port()
    cs_url, sl_url = f"http://127.0.0.1:{cs_port}", f"http://127.0.0.1:{sl_port}"
    children = [
        ChildProcess("cybersource", ["sandbox", "cybersource", "--port", str(cs_port)], tmp_path),
        ChildProcess("dynamics_sl", ["sandbox", "dynamics_sl", "--port", str(sl_port), "--set",
                                     f"database={tmp_path / 'sl.db'}", "--set", "current_period='202611'"], tmp_path),
    ]
    try:
        await wait_http(f"{cs_url}/__sandbox/stats", process=children[0])
        await wait_http(f"{sl_url}/api/v1/setup", process=children[1])
        storefront = build_gateway({"base_url": cs_url, **CS_CREDENTIALS})
        async with httpx.AsyncClient(base_url=cs_url) as controls:
            assert (await controls.post("/__sandbox/clock", json={"now": "2026-11-10T15:00:00Z"})).status_code == 200
            sales = [await storefront.authorize(AuthorizationRequest(
                amount=usd(f"{12 + i}.50"), order_reference=f"WEB-C{i}", capture=True,
                token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT))) for i in range(3)]
            await storefront.aclose()
            assert (await controls.post("/__sandbox/settle", json={"day": DAY.isoformat()})).json()["settled"] == 3

            document = yaml.safe_load(SHIPPED.read_text())
            gateway = document["gateway"]["settings"]
            gateway.update(base_url=cs_url, shared_secret=CS_CREDENTIALS["shared_secret"],
                           webhook_keys={"sandbox-webhook-key": WEBHOOK_KEY})
            document["back_office"]["settings"].update(base_url=sl_url, api_key=SL_API_KEY)
            document["runtime"].update(poll_seconds=0.05, backoff={"base_seconds": 0.05, "cap_seconds": 0.1,
                                                                   "max_attempts": 2})
            config = tmp_path / "sl-cybersource.yaml"
            config.write_text(yaml.safe_dump(document))
            common = ["--config", str(config), "--database-url", f"sqlite:///{tmp_path / 'ledgerlink.db'}"]

            done = await asyncio.to_thread(_cli, "reconcile", "--date", DAY.isoformat(), *common)
            assert done.returncode == 0, done.stdout + done.stderr
            summary = json.loads(done.stdout)
            assert summary["status"] == "succeeded" and summary["day"] == DAY.isoformat()
            assert summary["summary"]["lines"] == 3 and summary["summary"]["journals_posted"] == 1
            assert summary["summary"]["discrepancies"] == 3  # nothing of the day reached SL: the engine never ran

            listed = await asyncio.to_thread(_cli, "cases", *common)
            assert listed.returncode == 0, listed.stderr
            assert listed.stdout.count("missing_in_erp") == 3 and "3 case(s)" in listed.stdout
            assert all(sale.id in listed.stdout for sale in sales)
            assert "0d 0h" in listed.stdout

            await controls.post("/__sandbox/anomalies", json={"days": [DAY.isoformat()], "truncate": True})
            broken = await asyncio.to_thread(_cli, "reconcile", "--date", DAY.isoformat(), *common)
            assert broken.returncode == 1
            failed = json.loads(broken.stdout)
            assert failed["status"] == "failed"
            assert "PaymentBatchDetailReport line 5, column " in failed["error"] and "truncated" in failed["error"]
    finally:
        for child in children:
            child.stop()
