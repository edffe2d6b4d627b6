"""Reconciliation matching and settlement journals: every injected discrepancy found, nothing else;
journals always balance and post exactly the gateway's deposit."""

from __future__ import annotations

import random
from datetime import date, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerlink.flows.matching import LINE_SCHEMA, POSTING_SCHEMA, MatchSettings, match
from ledgerlink.flows.settlement import JOURNAL_ACCOUNTS, settlement_journal
from ledgerlink.model import GLAccount, Money, SettlementBatch, SettlementLine, SettlementLineKind, Side

DAY = date(2026, 11, 20)
ACCOUNTS = {name: GLAccount(account=str(1000 + i)) for i, name in enumerate(JOURNAL_ACCOUNTS)}


def frames(count: int, seed: int) -> tuple[list[tuple], list[tuple]]:
    rng = random.Random(seed)
    lines, postings = [], []
    for i in range(count):
        kind = "refund" if rng.random() < 0.1 else "capture"
        cents = rng.randint(100, 99_999)
        lines.append([i, f"T{i:08d}", f"O{i:06d}", kind, cents, "USD", f"B{i % 3}"])
        postings.append([i, f"T{i:08d}", f"O{i:06d}", kind, cents, "USD", DAY, rng.randint(0, 23), f"PA:{i}"])
    return lines, postings


def run(lines: list, postings: list, lag: int = 2) -> dict[str, set[str]]:
    result = match(pl.DataFrame(lines, schema=LINE_SCHEMA, orient="row"),
                   pl.DataFrame(postings, schema=POSTING_SCHEMA, orient="row"), day=DAY,
                   settings=MatchSettings(lag_days=lag))
    found: dict[str, set[str]] = {}
    for item in result.discrepancies.iter_rows(named=True):
        found.setdefault(item["type"], set()).add(item["txn"] or item["ref"])
    return found


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=30, max_value=200), st.integers(min_value=0, max_value=10_000))
def test_every_injected_discrepancy_is_found_and_nothing_else(count: int, seed: int) -> None:
    rng = random.Random(seed)
    lines, postings = frames(count, seed)
    picks = rng.sample(range(count), 12)
    expected: dict[str, set[str]] = {}
    # settled, never posted
    missing_in_erp = picks[0:2]
    postings = [p for p in postings if p[0] not in missing_in_erp]
    expected["missing_in_erp"] = {f"T{i:08d}" for i in missing_in_erp}
    # posted days ago, never settled (beyond the lag) and posted today (awaiting: no case)
    gone = picks[2:4]
    for i in gone:
        postings[[p[0] for p in postings].index(i)][6] = DAY - timedelta(days=5)
    awaiting = picks[4]
    lines = [line for line in lines if line[0] not in gone and line[0] != awaiting]
    expected["missing_in_settlement"] = {f"T{i:08d}" for i in gone}
    # amounts and currencies that disagree
    for i in picks[5:7]:
        postings[[p[0] for p in postings].index(i)][4] += 1
    expected["amount_mismatch"] = {f"T{i:08d}" for i in picks[5:7]}
    postings[[p[0] for p in postings].index(picks[7])][5] = "EUR"
    expected["currency_mismatch"] = {f"T{picks[7]:08d}"}
    # settled twice, posted twice
    twice = next(line for line in lines if line[0] == picks[8])
    lines.append([count + 1, *twice[1:6], "B9"])
    posted_twice = next(p for p in postings if p[0] == picks[9])
    postings.append([count + 1, *posted_twice[1:8], f"PA:dup{picks[9]}"])
    expected["duplicate"] = {f"T{picks[8]:08d}", f"T{picks[9]:08d}"}
    # a posting without its transaction id still matches by order reference and amount
    postings[[p[0] for p in postings].index(picks[10])][1] = None
    # a capture settled in two parts against one posting (split capture) matches as a group
    split = next(line for line in lines if line[0] == picks[11])
    if split[4] > 1:
        first = split[4] // 2
        lines.remove(split)
        lines.append([split[0], f"{split[1]}a", split[2], split[3], first, "USD", split[6]])
        lines.append([count + 2, f"{split[1]}b", split[2], split[3], split[4] - first, "USD", split[6]])
        postings[[p[0] for p in postings].index(picks[11])][1] = None
    found = run(lines, postings)
    assert found == expected


def test_a_posting_is_only_late_once_the_lag_window_has_passed() -> None:
    lines, postings = frames(5, 1)
    postings[0][6] = DAY - timedelta(days=1)
    lines = lines[1:]
    assert run(lines, postings, lag=2) == {}
    assert run(lines, postings, lag=0) == {"missing_in_settlement": {"T00000000"}}


money_cents = st.integers(min_value=0, max_value=10_000_000)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=5_000_000)), max_size=40),
       money_cents, st.integers(min_value=-2_000_000, max_value=2_000_000), money_cents,
       st.sampled_from(["USD", "JPY", "BHD", "EUR"]))
def test_journals_balance_and_post_exactly_the_deposit(lines: list[tuple[bool, int]], fees: int, chargebacks: int,
                                                       chargeback_fees: int, currency: str) -> None:
    def money(units: int) -> Money:
        return Money.from_minor_units(units, currency)

    settlement_lines = tuple(
        SettlementLine(gateway="g", batch_id="B1", batch_date=DAY, transaction_id=f"T{i}",
                       kind=SettlementLineKind.CAPTURE if capture else SettlementLineKind.REFUND, amount=money(units))
        for i, (capture, units) in enumerate(lines))
    gross = sum((units for capture, units in lines if capture), 0)
    refunds = sum((units for capture, units in lines if not capture), 0)
    deposit = money(gross - refunds - fees - chargebacks - chargeback_fees)
    batch = SettlementBatch(gateway="g", batch_id="B1", batch_date=DAY, currency=currency, lines=settlement_lines,
                            fees=money(fees), chargebacks=money(chargebacks), chargeback_fees=money(chargeback_fees),
                            deposit=deposit)
    entry = settlement_journal(batch, ACCOUNTS, "k")
    if entry is None:
        assert gross == refunds == fees == chargebacks == chargeback_fees == 0
        return
    debits, credits = entry.totals()[currency]
    assert debits == credits
    bank = [p for p in entry.postings if p.account == ACCOUNTS["bank"]]
    if deposit.is_zero():
        assert bank == []
    else:
        [posting] = bank
        assert (posting.amount if posting.side is Side.DEBIT else -posting.amount) == deposit
