"""Properties: for any generated days of captures, refunds, fees and chargebacks, the reports add up and
``settlement()`` gives batches that hold exactly the day's money, each with deposit == net."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerlink.connectors.cybersource import CybersourceGateway, build_gateway
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.model import AuthorizationRequest, Money, PaymentToken, SettlementLineKind, currency_exponent

from .conftest import GATEWAY_SETTINGS, VISA_INSTRUMENT

TOKEN = PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT, kind="payment_instrument")
DAY_ONE, DAY_TWO, DAY_THREE = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)
CHARGEBACK_FEE = Decimal("15.00")

payments = st.fixed_dictionaries({
    "currency": st.sampled_from(["USD", "EUR", "JPY"]),
    "units": st.integers(100, 200_000),
    "separate_capture": st.booleans(),
    "capture_percent": st.integers(1, 100),
    "refund_percents": st.lists(st.integers(1, 100), max_size=2),
})
chargebacks = st.tuples(st.integers(0, 50), st.integers(1, 100),
                        st.sampled_from(["open", "won", "lost", "won_next_day"]))
plans = st.fixed_dictionaries({
    "day_one": st.lists(payments, max_size=6),
    "day_two": st.lists(payments, max_size=4),
    "chargebacks": st.lists(chargebacks, max_size=3),
    "batches": st.integers(1, 3),
    "percent": st.decimals(min_value=0, max_value=5, places=1),
    "fixed_cents": st.integers(0, 50),
    "refund_percent": st.sampled_from([Decimal(0), Decimal("0.5")]),
})


@dataclass
class Expected:
    """What the test itself computes a day must settle: by transaction, and money by currency."""

    lines: dict[str, tuple[SettlementLineKind, Money]] = field(default_factory=dict)
    fees: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    chargebacks: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    chargeback_fees: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


def fee(amount: Decimal, currency: str, percent: Decimal, fixed: Decimal) -> Decimal:
    if percent == 0 and fixed == 0:
        return Decimal(0)
    quantum = Decimal(1).scaleb(-currency_exponent(currency))
    return (amount * percent / 100 + fixed).quantize(quantum, rounding=ROUND_HALF_EVEN)


def share(money: Money, percent: int) -> Money:
    return Money.from_minor_units(max(1, money.minor_units * percent // 100), money.currency)


async def play_day(gateway: CybersourceGateway, plan: list[dict[str, Any]], fees: dict[str, Decimal],
                   expected: Expected) -> list[tuple[str, Money]]:
    """Pay, capture and refund as planned; returns (id, amount) of what settles as money in."""
    settled_in: list[tuple[str, Money]] = []

    def book(kind: SettlementLineKind, transaction_id: str, amount: Money) -> None:
        expected.lines[transaction_id] = (kind, amount)
        percent, fixed = ((fees["refund_percent"], Decimal(0)) if kind is SettlementLineKind.REFUND
                          else (fees["percent"], fees["fixed"]))
        expected.fees[amount.currency] += fee(amount.amount, amount.currency, percent, fixed)

    for index, item in enumerate(plan):
        amount = Money.from_minor_units(item["units"], item["currency"])
        payment = await gateway.authorize(AuthorizationRequest(
            amount=amount, order_reference=f"P-{index}", capture=not item["separate_capture"], token=TOKEN))
        if item["separate_capture"]:
            amount = share(amount, item["capture_percent"])
            payment = await gateway.capture(payment.id, amount)
        book(SettlementLineKind.CAPTURE, payment.id, amount)
        settled_in.append((payment.id, amount))
        remaining = amount
        for number, percent in enumerate(item["refund_percents"]):
            if remaining.is_zero():
                break
            part = min(share(remaining, percent), remaining)
            refund = await gateway.refund(payment.id, part, reference=f"R-{index}-{number}")
            book(SettlementLineKind.REFUND, refund.id, part)
            remaining = remaining - part
    return settled_in


async def check_day(gateway: CybersourceGateway, day: date, expected: Expected) -> None:
    settlement = await gateway.settlement(day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    funding = await gateway.client.net_fundings(start, start + timedelta(days=1))
    net_total = {t.currency: Decimal(t.value or "") for t in funding.net_total}
    for currency in net_total:  # the report adds up by itself
        figures = {name: {t.currency: Decimal(t.value or "") for t in getattr(funding, name)}[currency]
                   for name in ("total_purchases", "total_refunds", "total_fees", "total_chargebacks")}
        assert net_total[currency] == (figures["total_purchases"] - figures["total_refunds"]
                                       - figures["total_fees"] - figures["total_chargebacks"])
    lines = {}
    by_currency: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for batch in settlement.batches:
        assert batch.deposit == batch.net
        totals = by_currency[batch.currency]
        for name in ("fees", "chargebacks", "chargeback_fees", "deposit"):
            totals[name] += getattr(batch, name).amount
        for line in batch.lines:
            assert line.transaction_id not in lines, "a transaction settles once"
            lines[line.transaction_id] = (line.kind, line.amount)
    assert lines == expected.lines
    currencies = set(expected.fees) | set(expected.chargebacks) | set(by_currency)
    for currency in currencies:
        totals = by_currency[currency]
        assert totals["fees"] == expected.fees[currency]
        assert totals["chargebacks"] == expected.chargebacks[currency]
        assert totals["chargeback_fees"] == expected.chargeback_fees[currency]
        assert totals["deposit"] == net_total.get(currency, Decimal(0))


async def scenario(plan: dict[str, Any]) -> None:
    sandbox = Sandbox({"outcome_by_cents": {}, "seed_tokens": True, "settlement": {
        "batches_per_currency": plan["batches"],
        "fees": {"*": {"percent": str(plan["percent"]), "fixed": str(Decimal(plan["fixed_cents"]) / 100),
                       "refund_percent": str(plan["refund_percent"]), "refund_fixed": "0"}},
        "chargeback_fees": {"*": str(CHARGEBACK_FEE)}}})
    fees = {"percent": plan["percent"], "fixed": Decimal(plan["fixed_cents"]) / 100,
            "refund_percent": plan["refund_percent"]}
    async with build_gateway(GATEWAY_SETTINGS, transport=httpx.ASGITransport(app=sandbox.app)) as gateway:
        clock = sandbox.store.clock
        clock.pin(datetime(2024, 3, 1, 10, tzinfo=UTC))
        day_one = Expected()
        settled = await play_day(gateway, plan["day_one"], fees, day_one)
        sandbox.settlements.close(DAY_ONE)
        await check_day(gateway, DAY_ONE, day_one)

        clock.pin(datetime(2024, 3, 2, 10, tzinfo=UTC))
        day_two, day_three = Expected(), Expected()
        won_later = []
        await play_day(gateway, plan["day_two"], fees, day_two)
        for index, percent, outcome in plan["chargebacks"]:
            if not settled:
                break
            transaction_id, amount = settled[index % len(settled)]
            available = Money.of(amount.amount - sandbox.store.transactions[transaction_id].disputed, amount.currency)
            if available.is_zero():
                continue
            disputed = min(share(available, percent), available)
            chargeback = sandbox.disputes.open(transaction_id, amount=disputed.amount)
            day_two.chargebacks[amount.currency] += disputed.amount
            day_two.chargeback_fees[amount.currency] += CHARGEBACK_FEE.quantize(
                Decimal(1).scaleb(-currency_exponent(amount.currency)))
            if outcome == "won_next_day":
                won_later.append(chargeback.tracking_number)
                day_three.chargebacks[amount.currency] -= disputed.amount
            elif outcome != "open":
                clock.advance(60)
                sandbox.disputes.resolve(chargeback.tracking_number, outcome)
                if outcome == "won":
                    day_two.chargebacks[amount.currency] -= disputed.amount
        sandbox.settlements.close(DAY_TWO)
        await check_day(gateway, DAY_TWO, day_two)

        clock.pin(datetime(2024, 3, 3, 10, tzinfo=UTC))
        for tracking_number in won_later:  # money back on a day with nothing else: a negative chargebacks figure
            sandbox.disputes.resolve(tracking_number, "won")
        sandbox.settlements.close(DAY_THREE)
        await check_day(gateway, DAY_THREE, day_three)
        await check_day(gateway, DAY_ONE, day_one)  # later days change nothing in earlier ones


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans)
def test_any_two_days_add_up(plan: dict[str, Any]) -> None:
    asyncio.run(scenario(plan))
