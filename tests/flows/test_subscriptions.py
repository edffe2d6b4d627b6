"""Subscriptions and dunning end to end: SL recurring invoices (or the integration file) -> the renewal job on
the engine's scheduler -> Cybersource charges of the stored token -> payments posted against SL invoices;
declines go through dunning with notices delivered to an SMTP sink and the customer on AR hold in SL.

Business time is a fake clock handed to the engine (``ctx.now()`` and the cron schedule): a 60-day dunning
cycle is driven day by day in seconds, while leases, retries and the mail sender keep real time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ledgerlink.connectors.cybersource.sandbox.store import CardInfo
from ledgerlink.connectors.smtp.sandbox import SMTPSink
from ledgerlink.integrations import ConfigError, parse_integration
from ledgerlink.model import CaseStatus, CaseType, IntervalUnit, Money, Subscription, add_interval
from ledgerlink.runtime.context import EventContext
from ledgerlink.runtime.notifications import list_notifications
from ledgerlink.runtime.records import DatabaseCaseBook
from ledgerlink.runtime.schema import card_retries, inbox
from tests.flows.harness import ACCOUNTS, VISA_INSTRUMENT, Pair, integration_document, running_pair

DAY = 86400.0
MASTERCARD_INSTRUMENT = "A0000000000000000000000000005555"
SUB_PREFIX = "SUB-"


def first_of_next_month() -> date:
    today = datetime.now(UTC).date()
    return date(today.year + (today.month == 12), today.month % 12 + 1, 1)


class BusinessClock:
    """The time flows see: 06:30 UTC on the last day of this month, so the first ``days(1)`` lands on the first
    of next month just after the 06:00 renewal tick (SL's current and later periods are open)."""

    def __init__(self) -> None:
        start = first_of_next_month() - timedelta(days=1)
        self.now = datetime(start.year, start.month, start.day, 6, 30, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    @property
    def today(self) -> date:
        return datetime.fromtimestamp(self.now, UTC).date()


class Scenario:
    def __init__(self, pair: Pair, clock: BusinessClock, sink: SMTPSink) -> None:
        self.pair, self.clock, self.sink = pair, clock, sink
        self.cs = httpx.AsyncClient(transport=httpx.ASGITransport(app=pair.cybersource.app), base_url="http://cs")

    # --- what people do in SL and what the card issuer does -------------------------------------------

    async def customer(self, cust_id: str, email: str = "grace@example.com") -> None:
        answer = await self.pair.sl_http.post("/api/v1/customers",
                                              json={"CustId": cust_id, "Name": "Grace Hopper", "EMailAddr": email})
        assert answer.status_code == 201, answer.text

    async def recurring(self, cust_id: str, token: str = VISA_INSTRUMENT, amount: str = "29.90",
                        nbr_cycle: int = 12) -> str:
        answer = await self.pair.sl_http.post("/api/v1/ar/recurring", json={
            "CustId": cust_id, "CuryOrigDocAmt": amount, "CuryId": "USD", "DocDesc": "Pro plan",
            "DocDate": first_of_next_month().strftime("%m/%d/%Y"), "Cycle": 1, "NbrCycle": nbr_cycle,
            "Note": f"Pro plan, billed monthly\nToken: {token}"})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["RefNbr"]).strip()

    async def new_card_on(self, ref_nbr: str, token: str) -> None:
        answer = await self.pair.sl_http.patch(f"/api/v1/ar/recurring/{ref_nbr}",
                                               json={"Note": f"Pro plan, billed monthly\nToken: {token}"})
        assert answer.status_code == 200, answer.text

    async def issuer_declines(self, token: str, reason: str | None) -> None:
        answer = await self.cs.post("/__sandbox/instrument-outcomes",
                                    json={"token": token, "outcome": f"DECLINED:{reason}" if reason else None})
        assert answer.status_code == 200, answer.text

    def card_expiring(self, month: int, year: int) -> str:
        """A stored card (a TMS payment instrument of the seeded customer) with the given expiry."""
        sandbox = self.pair.cybersource
        visa = sandbox.store.payment_instruments[VISA_INSTRUMENT]
        identifier = sandbox.store.instrument_identifiers[visa.instrument_identifier_id]
        customer = sandbox.store.customers[visa.customer_id or ""]
        card = CardInfo(visa.card.type, visa.card.last4, f"{month:02d}", str(year))
        return sandbox.vault.create_instrument(customer, identifier, card, {}, "testrest").id

    # --- time -------------------------------------------------------------------------------------------

    async def days(self, count: int = 1) -> None:
        """Move business time on a day at a time; each day's 06:00 tick runs and everything it causes settles."""
        for _ in range(count):
            self.clock.now += DAY
            await self.tick()

    async def jump(self, days: int) -> None:
        """Move business time on ``days`` at once: the schedule runs its latest missed tick, once."""
        self.clock.now += days * DAY
        await self.tick()

    async def tick(self) -> None:
        assert self.pair.engine.scheduler is not None
        await self.pair.engine.scheduler.run_due()
        await self.pair.settle()
        await self.deliver()

    async def deliver(self) -> None:
        [sender] = self.pair.engine.services
        await sender.deliver_due()  # type: ignore[attr-defined]

    # --- what happened ----------------------------------------------------------------------------------

    async def sl(self, path: str, **params: Any) -> Any:
        return await self.pair.sl_get(path, **params)

    async def invoices(self, cust_id: str) -> list[dict[str, Any]]:
        return list(await self.sl("ar/documents", CustId=cust_id, DocType="IN"))

    async def payments(self, cust_id: str) -> list[dict[str, Any]]:
        found = await self.sl("ar/documents", CustId=cust_id, DocType="PA")
        return [await self.sl(f"ar/documents/PA/{row['RefNbr'].strip()}") for row in found]

    async def customer_status(self, cust_id: str) -> str:
        return str((await self.sl(f"customers/{cust_id}"))["Status"]).strip()

    def charges(self, token: str) -> list[Any]:
        return [t for t in self.pair.cybersource.store.transactions.values()
                if t.kind == "sale" and t.tokens is not None and t.tokens.payment_instrument_id == token]

    def state(self, subscription_id: str) -> dict[str, Any]:
        from ledgerlink.runtime.schema import partition_state

        row = self.pair.db.read_sync(lambda conn: conn.execute(select(partition_state.c.state).where(
            partition_state.c.partition_key == f"subscription:{subscription_id}")).scalar_one_or_none())
        import orjson

        return orjson.loads(row)["subscription"] if row else {}

    async def cases(self, type_: CaseType) -> list[Any]:
        return await DatabaseCaseBook(self.pair.db).list(type=type_)


def flows(**subscriptions: Any) -> dict[str, Any]:
    return {"subscriptions": {"enabled": True, "cron": "0 6 * * *", **subscriptions}}


@pytest.fixture
async def scenario_factory(tmp_path: Path, database_target: tuple[str, str | None]) -> AsyncIterator[Any]:
    url, schema = database_target
    started: list[Any] = []

    async def start(*, schedules: bool = True, emitter: dict[str, Any] | None = None,
                    **subscriptions: Any) -> Scenario:
        clock = BusinessClock()
        sink = SMTPSink({"smtp_port": 0})
        await sink.start()
        notifications = {"type": "smtp", "settings": {"port": sink.port, "from_address": "billing@shop.example"},
                         "delivery": {"poll_seconds": 0.05, "base_seconds": 0.01, "cap_seconds": 0.05,
                                      "max_attempts": 4}}
        context = running_pair(tmp_path, url, schema, flows=flows(**subscriptions), notifications=notifications,
                               business_clock=clock, schedules=schedules, emitter=emitter)
        pair = await context.__aenter__()
        scenario = Scenario(pair, clock, sink)
        started.append((context, scenario))
        return scenario

    yield start
    for context, scenario in reversed(started):
        await scenario.cs.aclose()
        await context.__aexit__(None, None, None)
        await scenario.sink.stop()


# ---- renewals --------------------------------------------------------------------------------------------


async def test_sl_recurring_invoice_renews_on_its_date(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory()
    await s.customer("CUST01")
    ref_nbr = await s.recurring("CUST01")
    await s.days(1)  # first of the month, 06:00: due
    [invoice] = await s.invoices("CUST01")
    [payment] = await s.payments("CUST01")
    assert invoice["OrigDocNbr"].strip() == ref_nbr and invoice["CuryDocBal"] == "0.00"
    assert payment["CuryOrigDocAmt"] == "29.90" and [a["AdjdRefNbr"] for a in payment["Adjustments"]] == \
        [invoice["RefNbr"]]
    [charge] = s.charges(VISA_INSTRUMENT)
    assert charge.status == "AUTHORIZED" and charge.captured == Money.of("29.90", "USD").amount
    assert payment["User1"].strip() == charge.id
    template = await s.sl(f"ar/recurring/{ref_nbr}")
    following = add_interval(first_of_next_month(), IntervalUnit.MONTH, 1)
    assert template["NbrCycle"] == 11 and template["DocDate"] == following.strftime("%m/%d/%Y")
    # the gateway's webhooks about the renewal charge are not turned into sales orders
    assert await s.pair.sl_get("salesorders") == []
    assert s.pair.stats()["counters"].get("subscriptions.renewed") == 1
    # later the same month: nothing more
    await s.days(5)
    assert len(await s.invoices("CUST01")) == 1 and len(s.charges(VISA_INSTRUMENT)) == 1
    assert s.sink.messages == [] and await s.customer_status("CUST01") == "A"


async def test_id_only_webhooks_of_renewals_are_not_posted_again(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory(emitter={"payload_detail": "id_only"})
    await s.customer("CUST14")
    await s.recurring("CUST14")
    await s.issuer_declines(MASTERCARD_INSTRUMENT, None)
    await s.days(1)
    assert len(await s.payments("CUST14")) == 1 and await s.pair.sl_get("salesorders") == []
    await s.pair.pay("ORD-7001", "12.00")  # an ordinary web-shop sale still goes to order-to-cash
    await s.pair.settle()
    assert [o["CustOrdNbr"].strip() for o in await s.pair.sl_get("salesorders")] == ["ORD-7001"]
    assert s.pair.stats()["counters"].get("outcome.ignored", 0) >= 1


async def test_integration_file_subscription_renews_every_interval(scenario_factory: Any) -> None:
    start = first_of_next_month()
    s: Scenario = await scenario_factory(source="integration", items=[{
        "id": "gym-42", "customer_id": "CUST02", "token": MASTERCARD_INSTRUMENT, "amount": "15.00",
        "currency": "USD", "interval": "1 week", "next_date": start.isoformat(), "description": "Gym weekly",
        "cycles": 2}])
    await s.customer("CUST02")
    await s.days(1)
    await s.jump(7)
    await s.jump(7)
    await s.jump(7)
    invoices = await s.invoices("CUST02")
    assert sorted(i["DocDate"] for i in invoices) == [(start + timedelta(days=d)).strftime("%m/%d/%Y")
                                                      for d in (0, 7)]  # two cycles, then it ends
    assert all(i["CuryDocBal"] == "0.00" for i in invoices) and len(await s.payments("CUST02")) == 2
    assert len(s.charges(MASTERCARD_INSTRUMENT)) == 2 and s.state("gym-42")["billed"] == 2


# ---- dunning ---------------------------------------------------------------------------------------------


async def test_soft_decline_is_retried_then_recovered(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory()
    await s.customer("CUST03", email="ada@example.com")
    await s.recurring("CUST03")
    await s.issuer_declines(VISA_INSTRUMENT, "INSUFFICIENT_FUND")
    await s.days(1)
    [invoice] = await s.invoices("CUST03")
    assert invoice["CuryDocBal"] == "29.90" and await s.payments("CUST03") == []
    assert await s.customer_status("CUST03") == "H"
    [notice] = s.sink.to("ada@example.com")
    assert notice["subject"] == "Payment failed: Pro plan" and "We will try again on" in notice["body"]
    assert "ending 1111" in notice["body"] and "4111111111111111" not in notice["body"]
    [case] = await s.cases(CaseType.DUNNING)
    assert case.status is CaseStatus.OPEN and "soft decline: INSUFFICIENT_FUND" in case.summary

    await s.days(1)  # retry 1 (day 1): declined again, a second notice
    assert len(s.charges(VISA_INSTRUMENT)) == 2 and len(s.sink.messages) == 2
    await s.issuer_declines(VISA_INSTRUMENT, None)  # the customer's salary came in
    await s.days(1)  # day 2: no retry due
    assert len(s.charges(VISA_INSTRUMENT)) == 2
    await s.days(1)  # day 3: retry 2 succeeds
    assert len(s.charges(VISA_INSTRUMENT)) == 3
    [invoice] = await s.invoices("CUST03")
    assert invoice["CuryDocBal"] == "0.00" and len(await s.payments("CUST03")) == 1
    assert await s.customer_status("CUST03") == "A"
    assert s.sink.messages[-1]["subject"] == "Payment received: Pro plan"
    [case] = await s.cases(CaseType.DUNNING)
    assert case.status is CaseStatus.RESOLVED
    customer = await s.sl("customers/CUST03")
    assert "AR hold: renewal" in customer["Note"] and "AR hold released" in customer["Note"]
    # every notice went out once, each after its step
    rows = s.pair.db.read_sync(lambda conn: list_notifications(conn))
    assert [r["status"] for r in rows] == ["sent"] * 3
    listed = (await s.pair.engine_http.get("/admin/notifications", params={"status": "sent"})).json()
    assert listed["counts"] == {"sent": 3} and {n["reference"] for n in listed["notifications"]} == \
        {rows[0]["reference"]}


async def test_hard_decline_stops_retries_until_a_new_card(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory()
    await s.customer("CUST04")
    ref_nbr = await s.recurring("CUST04")
    await s.issuer_declines(VISA_INSTRUMENT, "STOLEN_LOST_CARD")
    await s.days(1)
    assert s.sink.messages[0]["subject"].startswith("Action needed: update your payment method")
    await s.days(10)  # no retries of a stolen card
    assert len(s.charges(VISA_INSTRUMENT)) == 1 and len(s.sink.messages) == 1
    assert await s.customer_status("CUST04") == "H"
    await s.new_card_on(ref_nbr, MASTERCARD_INSTRUMENT)  # the customer gave a new card; SL has it
    await s.days(1)
    assert len(s.charges(MASTERCARD_INSTRUMENT)) == 1
    [invoice] = await s.invoices("CUST04")
    assert invoice["CuryDocBal"] == "0.00" and await s.customer_status("CUST04") == "A"
    assert s.sink.messages[-1]["subject"] == "Payment received: Pro plan"


async def test_sixty_day_cycle_ends_in_suspension(scenario_factory: Any) -> None:
    started = time.monotonic()
    s: Scenario = await scenario_factory()
    await s.customer("CUST05")
    ref_nbr = await s.recurring("CUST05")
    await s.issuer_declines(VISA_INSTRUMENT, "ISSUER_UNAVAILABLE")
    await s.days(1)
    failed_on = s.clock.today
    charged_on = [0]
    # day by day for two weeks, then the day before and the day of each later retry, and the day after the end
    for day in [*range(1, 16), 29, 30, 44, 45, 59, 60, 61]:
        before = len(s.charges(VISA_INSTRUMENT))
        await s.jump(day - (s.clock.today - failed_on).days)
        if len(s.charges(VISA_INSTRUMENT)) > before:
            charged_on.append((s.clock.today - failed_on).days)
    assert charged_on == [0, 1, 3, 7, 14, 30, 45, 60]  # the renewal, then the retry schedule
    template = await s.sl(f"ar/recurring/{ref_nbr}")
    assert template["Status"] == "SUSPENDED" and "SUSPENDED: dunning ended" in template["Note"]
    [invoice] = await s.invoices("CUST05")  # kept: still owed; the customer stays on hold
    assert invoice["CuryDocBal"] == "29.90" and await s.customer_status("CUST05") == "H"
    subjects = [m["subject"] for m in s.sink.messages]
    assert subjects.count("Payment failed: Pro plan") == 8
    assert subjects[-1] == "Your subscription has been suspended: Pro plan"
    assert s.state(f"dynamics_sl:ardoc:RC:{ref_nbr}")["status"] == "suspended"
    [case] = await s.cases(CaseType.DUNNING)
    assert case.status is CaseStatus.OPEN and "dunning ended: suspended" in case.summary
    await s.jump(40)  # suspended: no new invoice next month, no more charges
    assert len(await s.invoices("CUST05")) == 1 and len(s.charges(VISA_INSTRUMENT)) == 8
    assert time.monotonic() - started < 60


async def test_end_of_dunning_can_cancel_and_write_off(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory(dunning={"retry_days": [1, 2], "end_after_days": 5,
                                                  "end_action": {"subscription": "cancel", "invoice": "write_off"}})
    await s.customer("CUST06")
    ref_nbr = await s.recurring("CUST06")
    await s.issuer_declines(VISA_INSTRUMENT, "INVALID_ACCOUNT")  # a closed account: hard
    await s.days(7)
    assert len(s.charges(VISA_INSTRUMENT)) == 1
    template = await s.sl(f"ar/recurring/{ref_nbr}")
    assert template["Status"] == "CANCELLED" and template["NbrCycle"] == 0
    [invoice] = await s.invoices("CUST06")
    assert invoice["CuryDocBal"] == "0.00"
    [memo] = await s.sl("ar/documents", CustId="CUST06", DocType="CM")
    detail = await s.sl(f"ar/documents/CM/{memo['RefNbr'].strip()}")
    assert detail["Lines"][0]["Acct"].strip() == ACCOUNTS["write_off"]["account"]
    assert await s.customer_status("CUST06") == "A"  # nothing owed any more
    assert s.sink.messages[-1]["subject"] == "Your subscription has been cancelled: Pro plan"
    assert "written off" in s.sink.messages[-1]["body"]


async def test_retries_per_card_stay_within_the_cap(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory(dunning={"retry_days": [1, 2, 3, 4], "max_retries_per_card": 3,
                                                  "end_after_days": 10})
    for cust in ("CUST07", "CUST08"):
        await s.customer(cust)
        await s.recurring(cust)  # both on the same card
    await s.issuer_declines(VISA_INSTRUMENT, "INSUFFICIENT_FUND")
    await s.days(11)
    charges = s.charges(VISA_INSTRUMENT)
    assert len(charges) == 2 + 3  # two renewals, then only three retries of that card in 30 days
    retries = s.pair.db.read_sync(lambda conn: conn.execute(select(card_retries)).all())
    assert len(retries) == 3 and {r.card for r in retries} == {VISA_INSTRUMENT}
    assert s.pair.stats()["counters"].get("subscriptions.retries_capped", 0) >= 1


async def test_notices_are_retried_until_the_mail_server_takes_them(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory()
    s.sink.fail_next = [451, 421]
    await s.customer("CUST09")
    await s.recurring("CUST09")
    await s.issuer_declines(VISA_INSTRUMENT, "EXCEEDS_CREDIT_LIMIT")
    await s.days(1)
    deadline = time.monotonic() + 5
    while not s.sink.messages and time.monotonic() < deadline:
        await s.deliver()
    [row] = s.pair.db.read_sync(lambda conn: list_notifications(conn))
    assert row["status"] == "sent" and row["attempts"] == 3 and s.sink.refused == 2


# ---- bad input ---------------------------------------------------------------------------------------------


async def test_an_expired_card_asks_for_a_new_one_and_writes_nothing(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory()
    await s.customer("CUST10")
    now = datetime.now(UTC)
    expired = s.card_expiring(now.month, now.year)  # valid at the gateway today, expired on the renewal date
    ref_nbr = await s.recurring("CUST10", token=expired)
    before = s.pair.sl.counts()
    await s.days(3)
    assert s.pair.sl.counts() == before and s.charges(expired) == []  # no invoice, no charge, no hold
    [case] = await s.cases(CaseType.SUBSCRIPTION)
    assert case.status is CaseStatus.OPEN and "expired at the end of" in case.summary
    assert case.evidence["token"] == expired
    [notice] = s.sink.messages  # once per period and card, not every day
    assert notice["subject"].startswith("Action needed")
    await s.new_card_on(ref_nbr, VISA_INSTRUMENT)
    await s.days(1)
    [invoice] = await s.invoices("CUST10")
    assert invoice["CuryDocBal"] == "0.00" and len(s.charges(VISA_INSTRUMENT)) == 1
    [case] = await s.cases(CaseType.SUBSCRIPTION)
    assert case.status is CaseStatus.RESOLVED


async def test_a_token_the_gateway_does_not_know(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory()
    await s.customer("CUST11")
    await s.recurring("CUST11", token="F" * 32)
    await s.days(1)
    [case] = await s.cases(CaseType.SUBSCRIPTION)
    assert "does not know the payment token" in case.summary
    assert await s.invoices("CUST11") == [] and s.pair.stats()["events"].get("dead", 0) == 0


def test_bad_subscription_settings_name_the_field() -> None:
    cases = [
        ({"items": [{"id": "a", "customer_id": "C1", "token": "T", "amount": 9.99, "currency": "USD",
                     "next_date": "2027-01-01"}]}, "flows.subscriptions.items.0.amount"),
        ({"items": [{"id": "a", "customer_id": "C1", "token": "T", "amount": "9.999", "currency": "USD",
                     "next_date": "2027-01-01"}]}, "flows.subscriptions.items.0"),
        ({"items": [{"id": "a", "customer_id": "C1", "token": "T", "amount": "9.99", "currency": "USD",
                     "interval": "fortnightly", "next_date": "2027-01-01"}]}, "flows.subscriptions.items.0.interval"),
        ({"dunning": {"retry_days": [3, 1]}}, "flows.subscriptions.dunning.retry_days"),
        ({"dunning": {"retry_days": [1, 30], "end_after_days": 10}}, "flows.subscriptions.dunning"),
        ({"dunning": {"end_action": {"subscription": "delete"}}},
         "flows.subscriptions.dunning.end_action.subscription"),
        ({"dunning": {"decline_overrides": {"INSUFFICIENT_FUND": "maybe"}}},
         "flows.subscriptions.dunning.decline_overrides.INSUFFICIENT_FUND"),
        ({"cron": "every day"}, "flows.subscriptions.cron"),
    ]
    for settings, field in cases:
        with pytest.raises(ConfigError) as refused:
            parse_integration(integration_document(flows=flows(**settings)))
        assert any(problem.startswith(field) for problem in refused.value.problems), refused.value.problems


def test_write_off_needs_its_account() -> None:
    from ledgerlink.integrations import Records, build_integration

    document = integration_document(flows=flows(dunning={"end_action": {"invoice": "write_off"}}),
                                    mapping={"accounts": {k: v for k, v in ACCOUNTS.items() if k != "write_off"}})
    spec = parse_integration(document)

    class Anything:
        def __getattr__(self, name: str) -> Any:
            return None

    with pytest.raises(ConfigError) as refused:
        build_integration(spec, records=Records(cases=Anything(), ledger=Anything(), outbox=Anything(),  # type: ignore[arg-type]
                                                card_retries=Anything()))
    assert "mapping.accounts.write_off" in str(refused.value)


# ---- nothing twice -----------------------------------------------------------------------------------------


async def test_a_charge_made_before_a_crash_is_found_not_repeated(scenario_factory: Any) -> None:
    """The gateway took the charge but the attempt died before its journal was committed: the retry
    (``recovering``) finds the charge by its key instead of charging the card again."""
    s: Scenario = await scenario_factory(source="back_office", schedules=False)
    await s.customer("CUST12")
    ref_nbr = await s.recurring("CUST12")
    flow = s.pair.integration.subscriptions
    assert flow is not None
    [sub] = await flow.definitions()
    assert isinstance(sub, Subscription)
    key = f"subscription:{sub.id}:{sub.next_date.isoformat()}:charge:1"
    from ledgerlink.model import AuthorizationRequest, PaymentToken

    crashed = await s.pair.storefront.authorize(AuthorizationRequest(
        amount=sub.amount, order_reference=f"{SUB_PREFIX}RC{ref_nbr}", capture=True, recurring=True,
        token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT), reference=key))
    ctx = EventContext(state={}, attempt=2, recovering=True, clock=s.clock)
    s.clock.now += DAY  # the renewal date
    await flow.advance(sub, ctx)
    assert [t.id for t in s.charges(VISA_INSTRUMENT)] == [crashed.id]
    [payment] = await s.payments("CUST12")
    assert payment["User1"].strip() == crashed.id
    assert ctx.tags.get("effects.recovered") == 1
    assert ctx.state["subscription"]["paid_through"] == sub.next_date.isoformat()


async def test_a_tick_run_twice_renews_once(scenario_factory: Any) -> None:
    s: Scenario = await scenario_factory()
    await s.customer("CUST13")
    await s.recurring("CUST13")
    s.clock.now += DAY
    await s.pair.run_job("renew-subscriptions")
    await s.pair.run_job("renew-subscriptions")  # a manual run on top of the schedule's
    await s.tick()
    rows = s.pair.db.read_sync(lambda conn: conn.execute(
        select(inbox.c.event_id).where(inbox.c.source == "subscriptions")).all())
    assert len(rows) >= 2 and len({r.event_id for r in rows}) == len(rows)  # one per subscription and tick
    assert len(await s.invoices("CUST13")) == 1 and len(s.charges(VISA_INSTRUMENT)) == 1
