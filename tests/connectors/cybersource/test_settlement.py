"""Closing days into batches, the Reporting API's files, injected anomalies, and ``settlement(day)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from ledgerlink.connectors.cybersource import CybersourceGateway, schemas
from ledgerlink.connectors.cybersource.batch_detail import read_payment_batch_detail
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.connectors.cybersource.settlement import build_settlement, read_net_fundings
from ledgerlink.connectors.kit.errors import NotFound, PermanentError, Rejected
from ledgerlink.model import (
    AuthorizationRequest,
    InvalidInput,
    Money,
    Payment,
    PaymentToken,
    Settlement,
    SettlementLineKind,
)

from .conftest import VISA_INSTRUMENT

TOKEN = PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT, kind="payment_instrument")
DAY = date(2024, 3, 1)
NOON = datetime(2024, 3, 1, 12, tzinfo=UTC)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture
def day_sandbox(sandbox: Sandbox) -> Sandbox:
    sandbox.store.clock.pin(NOON)
    return sandbox


@pytest.fixture
async def controls(day_sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url="http://sandbox", transport=httpx.ASGITransport(app=day_sandbox.app)) as http:
        yield http


async def pay(gateway: CybersourceGateway, amount: Money | str, *, capture: bool = True, order: str = "ORD") -> Payment:
    money = amount if isinstance(amount, Money) else usd(amount)
    return await gateway.authorize(AuthorizationRequest(amount=money, order_reference=order, capture=capture,
                                                        token=TOKEN))


def all_lines(settlement: Settlement) -> dict[str, tuple[str, SettlementLineKind, Money]]:
    return {line.transaction_id: (batch.batch_id, line.kind, line.amount)
            for batch in settlement.batches for line in batch.lines}


# --- closing a day ---------------------------------------------------------------------------


async def test_close_takes_the_days_captures_and_refunds(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    sale = await pay(gateway, "20.00")
    auth = await pay(gateway, "30.00", capture=False)
    capture = await gateway.capture(auth.id, usd("25.00"))
    refund = await gateway.refund(sale.id, usd("5.00"), reference="r1")
    voided = await pay(gateway, "7.00")
    await gateway.void(voided.id)
    declined = await pay(gateway, "7.01")
    uncaptured = await pay(gateway, "8.00", capture=False)
    day_sandbox.store.clock.pin(NOON + timedelta(days=1))
    tomorrow = await pay(gateway, "9.00")

    (batch,) = day_sandbox.settlements.close(DAY)
    assert batch.transaction_ids == [sale.id, capture.id, refund.id]
    assert len(batch.id) == 12 and batch.id.startswith("240301") and batch.currency == "USD"
    txns = day_sandbox.store.transactions
    assert [txns[i].status for i in batch.transaction_ids] == ["AUTHORIZED", "TRANSMITTED", "TRANSMITTED"]
    assert not any(txns[p.id].settled for p in (voided, declined, uncaptured, tomorrow))
    with pytest.raises(Rejected) as settled:
        await gateway.void(capture.id)
    assert settled.value.provider_code == "NOT_VOIDABLE"
    late_refund = await gateway.refund(capture.id, usd("25.00"), reference="r2")  # refunds stay allowed
    (next_batch,) = day_sandbox.settlements.close(DAY + timedelta(days=1))
    assert next_batch.transaction_ids == [tomorrow.id, late_refund.id]
    assert day_sandbox.settlements.close(DAY + timedelta(days=2)) == []  # an empty day still has reports
    assert DAY + timedelta(days=2) in day_sandbox.store.settled_days


async def test_a_straggler_settles_with_the_next_closed_day(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    early = await pay(gateway, "10.00")
    day_sandbox.store.clock.pin(NOON + timedelta(days=2))
    (batch,) = day_sandbox.settlements.close(DAY + timedelta(days=2))
    assert batch.transaction_ids == [early.id] and batch.day == DAY + timedelta(days=2)


async def test_batches_split_per_currency_round_robin(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    usd_sales = [await pay(gateway, f"{10 + i}.00") for i in range(5)]
    eur_sale = await pay(gateway, Money.of("15.00", "EUR"))
    batches = day_sandbox.settlements.close(DAY, batches_per_currency=2)
    assert [(b.currency, len(b.transaction_ids)) for b in batches] == [("EUR", 1), ("USD", 3), ("USD", 2)]
    assert batches[1].transaction_ids == [usd_sales[0].id, usd_sales[2].id, usd_sales[4].id]
    assert batches[0].transaction_ids == [eur_sale.id]
    assert len({b.id for b in batches}) == 3


@pytest.mark.parametrize(("rule", "amount", "fee"), [
    ({}, "42.00", "1.52"),  # default 2.9% + 0.30: 1.218 + 0.30
    ({"USD": {"percent": "10", "fixed": "0"}}, "0.25", "0.02"),  # 0.025: half-even goes down to the even cent
    ({"USD": {"percent": "10", "fixed": "0"}}, "0.35", "0.04"),  # 0.035: up to the even cent
    ({"USD": {"percent": "0", "fixed": "0"}}, "42.00", "0.00"),
    ({"*": {"percent": "1", "fixed": "1"}}, "42.00", "1.42"),
])
async def test_processing_fees_are_exact(day_sandbox: Sandbox, gateway: CybersourceGateway, rule: dict[str, Any],
                                         amount: str, fee: str) -> None:
    if rule:
        day_sandbox.configure_settlement({"fees": rule})
    sale = await pay(gateway, amount)
    day_sandbox.settlements.close(DAY)
    assert f"{day_sandbox.store.transactions[sale.id].fee}" == fee


async def test_fees_by_currency_and_for_refunds(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    day_sandbox.configure_settlement({"fees": {"*": {"percent": "2.9", "fixed": "0.30", "refund_percent": "1"}}})
    yen = await pay(gateway, Money.of(500, "JPY"))
    sale = await pay(gateway, "10.00")
    refund = await gateway.refund(sale.id, usd("10.00"), reference="r")
    day_sandbox.settlements.close(DAY)
    fees = {p.id: day_sandbox.store.transactions[p.id].fee for p in (yen, sale, refund)}
    assert [f"{fees[p.id]}" for p in (yen, sale, refund)] == ["15", "0.59", "0.10"]  # 14.8 JPY → 15


async def test_a_schedule_change_does_not_rewrite_a_closed_day(day_sandbox: Sandbox,
                                                               gateway: CybersourceGateway) -> None:
    await pay(gateway, "100.00")
    day_sandbox.settlements.close(DAY)
    before = await gateway.settlement(DAY)
    day_sandbox.configure_settlement({"fees": {"*": {"percent": "50"}}})
    assert (await gateway.settlement(DAY)).batches[0].fees == before.batches[0].fees == usd("3.20")


# --- the reports over HTTP -------------------------------------------------------------------


async def test_payment_batch_detail_is_the_classic_csv(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    sale = await pay(gateway, "42.00", order="ORD-7")
    refund = await gateway.refund(sale.id, usd("2.50"), reference="r")
    (batch,) = day_sandbox.settlements.close(DAY)
    data = await gateway.client.download_report("PaymentBatchDetailReport", DAY + timedelta(days=1))
    txns = day_sandbox.store.transactions
    assert data.decode() == (
        "Payment Batch Detail Report,1.0,2024-03-01 to 2024-03-01,,,,,,,\r\n"
        "batch_id,merchant_id,batch_date,request_id,merchant_ref_number,trans_ref_no,payment_method,currency,amount,"
        "transaction_type\r\n"
        f"{batch.id},testrest,2024-03-01,{sale.id},ORD-7,{txns[sale.id].reconciliation_id},Visa,USD,42.00,ics_bill\r\n"
        f"{batch.id},testrest,2024-03-01,{refund.id},ORD-7,{txns[refund.id].reconciliation_id},Visa,USD,-2.50,"
        "ics_credit\r\n"
    )


async def test_report_download_rules(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    client = gateway.client
    await pay(gateway, "5.00")
    day_sandbox.settlements.close(DAY)
    with pytest.raises(NotFound):  # reportDate is the day after: D itself is D - 1's report
        await client.download_report("PaymentBatchDetailReport", DAY)
    with pytest.raises(NotFound):
        await client.download_report("TransactionRequestReport", DAY + timedelta(days=1))
    sdk_accept = await client.download_report("PaymentBatchDetailReport", DAY + timedelta(days=1),
                                              accept="application/xml, text/csv")
    assert sdk_accept.startswith(b"Payment Batch Detail Report")
    with pytest.raises(PermanentError) as xml:
        await client.download_report("PaymentBatchDetailReport", DAY + timedelta(days=1), accept="application/xml")
    assert xml.value.status == 406
    with pytest.raises(Rejected) as missing:
        await client._send("GET", "/reporting/v3/report-downloads", "download", params={"reportName": "x"})
    assert missing.value.field == "reportDate"
    with pytest.raises(Rejected) as window:
        await client._call("GET", "/reporting/v3/net-fundings", "nf",
                           params={"startTime": "2024-03-02T00:00:00Z", "endTime": "2024-03-01T00:00:00Z"})
    assert window.value.field == "endTime"


async def test_net_fundings_add_up(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    sales = [await pay(gateway, amount) for amount in ("100.00", "50.00")]
    await gateway.refund(sales[0].id, usd("20.00"), reference="r")
    await pay(gateway, Money.of("30.00", "EUR"))
    day_sandbox.settlements.close(DAY)
    day_sandbox.disputes.open(sales[1].id, amount=Money.of("50.00", "USD").amount)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    doc = await gateway.client.net_fundings(start, start + timedelta(days=1))
    totals = {name: {t.currency: t.value for t in getattr(doc, name)} for name in (
        "total_purchases", "total_refunds", "total_fees", "total_chargebacks", "net_total")}
    # fees: 3.20 + 1.75 processing, 15.00 chargeback fee; EUR 0.87 + 0.30 = 1.17
    assert totals == {"total_purchases": {"EUR": "30.00", "USD": "150.00"},
                      "total_refunds": {"EUR": "0.00", "USD": "20.00"},
                      "total_fees": {"EUR": "1.17", "USD": "19.95"},
                      "total_chargebacks": {"EUR": "0.00", "USD": "50.00"},
                      "net_total": {"EUR": "28.83", "USD": "60.05"}}
    kinds = {(s.currency_code, s.type, s.payment_sub_type): s.funded_amount for s in doc.net_funding_summaries}
    assert kinds[("USD", "FEES", "CHARGEBACK_FEE")] == "15.00" and kinds[("USD", "FEES", "VI")] == "4.95"
    assert kinds[("USD", "CHARGEBACKS", "VI")] == "50.00" and kinds[("USD", "PURCHASES", "VI")] == "150.00"
    other_offset = await gateway.client.net_fundings(datetime.fromisoformat("2024-02-29T14:00:00-05:00"),
                                                     datetime(2024, 3, 2, tzinfo=UTC))
    assert {t.currency: t.value for t in other_offset.net_total} == totals["net_total"]


# --- settlement(day) -------------------------------------------------------------------------


async def test_settlement_allocates_fees_and_chargebacks_over_batches(day_sandbox: Sandbox,
                                                                      gateway: CybersourceGateway) -> None:
    sales = [await pay(gateway, amount) for amount in ("100.00", "60.00", "40.00")]
    refund = await gateway.refund(sales[1].id, usd("10.00"), reference="r")
    day_sandbox.settlements.close(DAY, batches_per_currency=2)
    day_sandbox.disputes.open(sales[0].id, amount=Money.of("33.33", "USD").amount)
    settlement = await gateway.settlement(DAY)
    assert (settlement.gateway, settlement.merchant_id, settlement.day) == ("cybersource", "testrest", DAY)
    assert settlement.sources == ("PaymentBatchDetailReport reportDate=2024-03-02", "net-fundings 2024-03-01")
    first, second = settlement.batches
    assert (first.gross, first.refunds, second.gross, second.refunds) == (
        usd("140.00"), usd("0.00"), usd("60.00"), usd("10.00"))
    # 6.70 processing fees (3.20 + 2.04 + 1.46), 33.33 chargeback, 15.00 chargeback fee: split 140:60, exactly
    assert (first.fees + second.fees, first.fees) == (usd("6.70"), usd("4.69"))
    assert (first.chargebacks + second.chargebacks, first.chargebacks) == (usd("33.33"), usd("23.33"))
    assert (first.chargeback_fees, second.chargeback_fees) == (usd("10.50"), usd("4.50"))
    assert first.deposit + second.deposit == usd("200.00") - usd("10.00") - usd("6.70") - usd("33.33") - usd("15.00")
    assert all(b.deposit == b.net for b in settlement.batches)
    assert all_lines(settlement)[refund.id][1:] == (SettlementLineKind.REFUND, usd("10.00"))
    assert [line.source_line for line in first.lines] == [3, 4]


async def test_a_day_not_closed_yet_is_not_found(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    with pytest.raises(NotFound) as later:
        await gateway.settlement(DAY)
    assert later.value.status == 404 and "no PaymentBatchDetailReport for 2024-03-01 yet" in str(later.value)


async def test_auto_close_settles_a_past_day_when_its_report_is_asked_for(day_sandbox: Sandbox,
                                                                         gateway: CybersourceGateway) -> None:
    day_sandbox.configure_settlement({"auto_close": True})
    sale = await pay(gateway, "10.00")
    with pytest.raises(NotFound):
        await gateway.settlement(DAY)  # the day is not over yet
    day_sandbox.store.clock.advance(86_400)
    assert sale.id in all_lines(await gateway.settlement(DAY))


async def test_a_quiet_day_with_a_chargeback_has_a_batch_without_lines(day_sandbox: Sandbox,
                                                                        gateway: CybersourceGateway) -> None:
    sale = await pay(gateway, "80.00")
    day_sandbox.settlements.close(DAY)
    day_sandbox.store.clock.pin(NOON + timedelta(days=1))
    day_sandbox.disputes.open(sale.id, amount=Money.of("80.00", "USD").amount, fee=Money.of("0", "USD").amount)
    day_sandbox.settlements.close(DAY + timedelta(days=1))
    (batch,) = (await gateway.settlement(DAY + timedelta(days=1))).batches
    assert (batch.batch_id, batch.lines, batch.chargebacks, batch.deposit) == (
        "20240302-USD", (), usd("80.00"), usd("-80.00"))


async def test_a_won_chargeback_comes_back_on_the_day_it_is_won(day_sandbox: Sandbox,
                                                                 gateway: CybersourceGateway) -> None:
    sale = await pay(gateway, "80.00")
    day_sandbox.settlements.close(DAY)
    chargeback = day_sandbox.disputes.open(sale.id)
    day_sandbox.store.clock.pin(NOON + timedelta(days=1))
    other = await pay(gateway, "10.00")
    day_sandbox.disputes.resolve(chargeback.tracking_number, "won")
    day_sandbox.settlements.close(DAY + timedelta(days=1), batches_per_currency=1)
    opened_day = (await gateway.settlement(DAY)).batches[0]
    assert (opened_day.chargebacks, opened_day.chargeback_fees) == (usd("80.00"), usd("15.00"))
    (won_day,) = (await gateway.settlement(DAY + timedelta(days=1))).batches
    assert all_lines(Settlement(gateway="cybersource", merchant_id="testrest", day=DAY,
                                batches=(won_day,))) == {other.id: (won_day.batch_id, SettlementLineKind.CAPTURE,
                                                                    usd("10.00"))}
    # the amount comes back, the fee does not: 10.00 - 0.59 fee + 80.00
    assert (won_day.chargebacks, won_day.chargeback_fees, won_day.deposit) == (usd("-80.00"), usd("0.00"),
                                                                               usd("89.41"))


# --- anomalies -------------------------------------------------------------------------------


async def anomalous_day(sandbox: Sandbox, gateway: CybersourceGateway, **knobs: Any) -> tuple[Settlement, list[Payment]]:
    sales = [await pay(gateway, f"{10 + i}.00", order=f"ORD-{i}") for i in range(4)]
    sandbox.settlements.close(DAY, batches_per_currency=2)
    sandbox.configure_anomalies({"seed": 3, **knobs})
    settlement = await gateway.settlement(DAY)
    assert all(b.deposit == b.net for b in settlement.batches)  # still a valid, self-consistent day
    return settlement, sales


async def test_anomaly_drop_a_line(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    settlement, sales = await anomalous_day(day_sandbox, gateway, drop_lines=1)
    assert len(set(all_lines(settlement)) & {s.id for s in sales}) == 3


async def test_anomaly_duplicate_a_line_in_another_batch(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    settlement, _ = await anomalous_day(day_sandbox, gateway, duplicate_lines=1)
    placed: dict[str, list[str]] = {}
    for batch in settlement.batches:
        for line in batch.lines:
            placed.setdefault(line.transaction_id, []).append(batch.batch_id)
    (twice,) = [batches for batches in placed.values() if len(batches) == 2]
    assert twice[0] != twice[1]


async def test_anomaly_change_an_amount(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    settlement, sales = await anomalous_day(day_sandbox, gateway, change_amounts=1)
    lines = all_lines(settlement)
    assert sum(lines[s.id][2] != s.amount for s in sales) == 1


async def test_anomaly_change_a_currency(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    settlement, sales = await anomalous_day(day_sandbox, gateway, change_currencies=1)
    eur = [b for b in settlement.batches if b.currency == "EUR"]
    assert len(eur) == 1 and len(eur[0].lines) == 1 and eur[0].lines[0].transaction_id in {s.id for s in sales}


async def test_anomaly_a_transaction_the_sandbox_never_had(day_sandbox: Sandbox, gateway: CybersourceGateway) -> None:
    settlement, sales = await anomalous_day(day_sandbox, gateway, phantom_lines=2)
    strangers = set(all_lines(settlement)) - {s.id for s in sales}
    assert len(strangers) == 2 and not strangers & set(day_sandbox.store.transactions)


@pytest.mark.parametrize(("knobs", "field", "reason"), [
    ({"truncate": True}, "line 6, column", "truncated"),
    ({"drop_header_column": "amount"}, "line 2, column amount", "has no amount column"),
    ({"drop_header_column": "batch_id"}, "line 2, column batch_id", "has no batch_id column"),
    ({"garble_amounts": 1}, ", column amount", '"12.3.4" is not a decimal amount'),
    ({"repeat_lines": 1}, ", column batch_id", "exactly"),
])
async def test_malformations_are_refused_naming_line_and_column(day_sandbox: Sandbox, gateway: CybersourceGateway,
                                                                knobs: dict[str, Any], field: str,
                                                                reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await anomalous_day(day_sandbox, gateway, **knobs)
    issue = refused.value.issues[0]
    assert issue.field.startswith("PaymentBatchDetailReport line ") and field in issue.field, issue
    assert reason in issue.reason, issue


async def test_anomalies_are_deterministic_and_limited_to_their_days(day_sandbox: Sandbox,
                                                                     gateway: CybersourceGateway) -> None:
    for i in range(6):
        await pay(gateway, f"{20 + i}.00")
    day_sandbox.settlements.close(DAY)
    day_sandbox.configure_anomalies({"seed": 1, "drop_lines": 2, "change_amounts": 1, "phantom_lines": 1})
    download = gateway.client.download_report
    first = await download("PaymentBatchDetailReport", DAY + timedelta(days=1))
    assert first == await download("PaymentBatchDetailReport", DAY + timedelta(days=1))
    day_sandbox.configure_anomalies({"seed": 2})
    assert first != await download("PaymentBatchDetailReport", DAY + timedelta(days=1))
    day_sandbox.configure_anomalies({"days": ["2024-03-02"]})
    clean = read_payment_batch_detail(await download("PaymentBatchDetailReport", DAY + timedelta(days=1)))
    assert len(clean.lines) == 6


# --- reports that disagree with each other ---------------------------------------------------


def funding(**totals: dict[str, str]) -> schemas.NetFundings:
    return schemas.NetFundings.model_validate({
        name: [{"currency": c, "value": v} for c, v in values.items()] for name, values in totals.items()})


DETAIL = read_payment_batch_detail(
    b"Payment Batch Detail Report,1.0,2024-03-01 to 2024-03-01,,,,,,,\r\n"
    b"batch_id,merchant_id,batch_date,request_id,merchant_ref_number,trans_ref_no,payment_method,currency,amount,"
    b"transaction_type\r\n"
    b"B1,testrest,2024-03-01,7000000000000000000001,ORD-1,R1,Visa,USD,42.00,ics_bill\r\n")


@pytest.mark.parametrize(("doc", "day", "field", "reason"), [
    (funding(totalPurchases={"EUR": "42.00"}, netTotal={"EUR": "42.00"}), DAY,
     "PaymentBatchDetailReport line 3, column currency", "batch B1 is in USD but the net funding"),
    (funding(totalPurchases={"USD": "40.00"}, netTotal={"USD": "40.00"}), DAY,
     "net-fundings totalPurchases[USD]", "is 40.00 USD but the PaymentBatchDetailReport lines"),
    (funding(totalPurchases={"USD": "42.00"}, totalRefunds={"USD": "1.00"}, netTotal={"USD": "41.00"}), DAY,
     "net-fundings totalRefunds[USD]", "is 1.00 USD"),
    (funding(totalPurchases={"USD": "42.00"}, netTotal={"USD": "42.00"}), date(2024, 3, 2),
     "PaymentBatchDetailReport line 1, column date range", "covers 2024-03-01 to 2024-03-01, not 2024-03-02"),
])
def test_reports_that_disagree_are_refused(doc: schemas.NetFundings, day: date, field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        build_settlement(gateway="cybersource", merchant_id="testrest", day=day, detail=DETAIL,
                         funding=read_net_fundings(doc))
    assert refused.value.issues[0].field == field and reason in refused.value.issues[0].reason


@pytest.mark.parametrize(("doc", "field", "reason"), [
    (funding(totalPurchases={"USD": "42.00"}, netTotal={"USD": "41.00"}), "net-fundings netTotal[USD]",
     "not totalPurchases − totalRefunds − totalFees − totalChargebacks"),
    (funding(totalPurchases={"US": "1.00"}), "net-fundings totalPurchases[0].currency", "three-letter"),
    (funding(totalPurchases={"XYZ": "1.00"}), "net-fundings totalPurchases[0].currency", "unknown currency"),
    (funding(totalPurchases={"USD": "1.001"}), "net-fundings totalPurchases[0].value", "more decimal places"),
    (funding(totalPurchases={"USD": "12.3.4"}), "net-fundings totalPurchases[0].value", "not a decimal amount"),
    (schemas.NetFundings.model_validate({"totalFees": [{"currency": "USD", "value": "1.00"}],
                                         "netTotal": [{"currency": "USD", "value": "-1.00"}],
                                         "netFundingSummaries": [{"type": "FEES", "currencyCode": "USD",
                                                                  "paymentSubType": "VI", "fundedAmount": "2.00"}]}),
     "net-fundings totalFees[USD]", "the FEES summaries add up to 2.00 USD"),
    (schemas.NetFundings.model_validate({"netFundingSummaries": [{"type": "BONUS", "currencyCode": "USD",
                                                                  "fundedAmount": "2.00"}]}),
     "net-fundings netFundingSummaries[0].type", "'BONUS'"),
])
def test_unreadable_net_fundings_name_the_field(doc: schemas.NetFundings, field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        read_net_fundings(doc)
    assert refused.value.issues[0].field == field and reason in refused.value.issues[0].reason


def test_chargeback_fees_are_the_fees_of_their_subtype() -> None:
    doc = schemas.NetFundings.model_validate({
        "totalFees": [{"currency": "USD", "value": "20.00"}], "netTotal": [{"currency": "USD", "value": "-20.00"}],
        "netFundingSummaries": [
            {"type": "FEES", "currencyCode": "USD", "paymentSubType": "VI", "fundedAmount": "5.00"},
            {"type": "FEES", "currencyCode": "USD", "paymentSubType": "CB_FEE", "conveyedAmount": "15.00"}]})
    usd_figures = read_net_fundings(doc, chargeback_fee_subtype="CB_FEE")["USD"]
    assert (usd_figures.fees, usd_figures.chargeback_fees) == (usd("5.00"), usd("15.00"))


# --- control endpoints -----------------------------------------------------------------------


async def test_control_endpoints(day_sandbox: Sandbox, controls: httpx.AsyncClient,
                                 gateway: CybersourceGateway) -> None:
    assert (await controls.post("/__sandbox/clock", json={"now": "2024-03-01T08:00:00Z"})).json()["now"] == \
        "2024-03-01T08:00:00Z"
    assert (await controls.post("/__sandbox/clock", json={"advance_seconds": 3600})).json()["now"] == \
        "2024-03-01T09:00:00Z"
    assert (await controls.post("/__sandbox/clock", json={"now": "soon"})).status_code == 400
    sale = await pay(gateway, "10.00")
    assert day_sandbox.store.transactions[sale.id].submitted == "2024-03-01T09:00:00Z"
    settings = await controls.post("/__sandbox/settlement", json={"batches_per_currency": 2,
                                                                  "fees": {"*": {"percent": "3", "fixed": "0"}}})
    assert settings.json()["batches_per_currency"] == 2 and settings.json()["fees"]["*"]["percent"] == "3"
    assert (await controls.post("/__sandbox/settlement", json={"fees": {"*": {"percent": 2.9}}})).status_code == 400
    closed = (await controls.post("/__sandbox/settle", json={"day": "2024-03-01"})).json()
    assert closed["day"] == "2024-03-01" and closed["settled"] == 1 and closed["batches"][0]["transactions"] == 1
    assert (await controls.post("/__sandbox/settle", json={"day": "March"})).status_code == 400
    assert (await controls.post("/__sandbox/settle", json={"batches": 0})).status_code == 400
    assert (await controls.post("/__sandbox/settle", content=b"[]")).status_code == 400
    listed = (await controls.get("/__sandbox/batches", params={"day": "2024-03-01"})).json()
    assert [b["batchId"] for b in listed] == [closed["batches"][0]["batchId"]]
    anomalies = await controls.post("/__sandbox/anomalies", json={"drop_lines": 1, "seed": 9})
    assert anomalies.json()["drop_lines"] == 1
    assert (await controls.post("/__sandbox/anomalies", json={"truncate": True})).json()["drop_lines"] == 1
    assert (await controls.post("/__sandbox/anomalies", json={"drop_lines": -1})).status_code == 400
    assert (await controls.delete("/__sandbox/anomalies")).json()["drop_lines"] == 0
    stats = (await controls.get("/__sandbox/stats")).json()
    assert (stats["batches"], stats["settled_days"]) == (1, 1)
