"""Refunds asked for in SL end to end: a credit memo flagged "refund to card" is read by the engine's poll,
refunded through the Cybersource sandbox's refund API, paid out in SL and its outcome written back onto the
memo, each exactly once; what cannot be refunded is refused before the gateway is called."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerlink.flows.polls import refund_request_source
from ledgerlink.model import Money, PaymentKind, PaymentStatus, RefundRequest
from ledgerlink.runtime.intake import InboxItem, store_items
from tests.flows.harness import ACCOUNTS, ALL_FLOWS, Pair, running_pair

AR = "1200"  # the SL company's AR account (the sandbox's seed)
RETURNS = ACCOUNTS["returns"]["account"]
LIABILITY = ACCOUNTS["refund_liability"]["account"]
DECLINING_CENTS = "13"  # the gateway declines refunds ending in .13 (below)


@pytest.fixture
async def pair(tmp_path: Path, database_target: tuple[str, str | None]) -> AsyncIterator[Pair]:
    url, schema = database_target
    async with running_pair(tmp_path, url, schema, flows=ALL_FLOWS, cybersource_settings={
        "refund_outcome_by_cents": {DECLINING_CENTS: "DECLINED:PROCESSOR_DECLINED"}}) as running:
        yield running


def d(value: str) -> Decimal:
    return Decimal(value)


def usd(value: str) -> Money:
    return Money.of(value, "USD")


async def ask_for_refund(pair: Pair, order_reference: str, amount: str, *, name_the_order: bool = True) -> str:
    """What a person does in SL: a released credit memo on the customer, flagged CARDRFND, naming the order."""
    order = await pair.order(order_reference)
    body: dict[str, Any] = {"CustId": order["CustID"].strip(), "DocType": "CM", "CuryOrigDocAmt": amount,
                            "User5": "CARDRFND", "DocDesc": "Customer return",
                            "Lines": [{"Acct": RETURNS, "CuryTranAmt": amount}]}
    if name_the_order:
        body["OrdNbr"] = order["OrdNbr"].strip()
    answer = await pair.sl_http.post("/api/v1/ar/documents", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["RefNbr"]).strip()


async def poll(pair: Pair) -> None:
    await pair.run_job("poll-refund-requests")


async def memo(pair: Pair, ref_nbr: str) -> dict[str, Any]:
    return await pair.sl_get(f"ar/documents/CM/{ref_nbr}")  # type: ignore[no-any-return]


async def payouts(pair: Pair) -> list[dict[str, Any]]:
    return [doc for doc in await pair.sl_get("ar/documents", DocType="DM") if doc["User5"].strip() == "RFNDPAYOUT"]


async def gl_lines(pair: Pair, doc: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
    batch = await pair.sl_get(f"gl/batches/{doc['BatNbr'].strip()}", Module="AR")
    return sorted((line["Acct"].strip(), Decimal(str(line["DrAmt"])).quantize(Decimal("0.01")),
                   Decimal(str(line["CrAmt"])).quantize(Decimal("0.01"))) for line in batch["Lines"])


def posted(*lines: tuple[str, str, str]) -> list[tuple[str, Decimal, Decimal]]:
    """Expected GL lines, (account, debit, credit), in ``gl_lines``'s order."""
    return sorted((account, Decimal(debit), Decimal(credit)) for account, debit, credit in lines)


def gateway_refunds(pair: Pair) -> list[tuple[str, Decimal, str]]:
    """Every refund the Cybersource sandbox holds: (refunded transaction, amount, status)."""
    return sorted((t.parent_id or "", t.amount, t.status) for t in pair.cybersource.store.transactions.values()
                  if t.kind == "refund")


async def refused_cases(pair: Pair) -> list[dict[str, Any]]:
    answer = await pair.engine_http.get("/admin/cases", params={"status": "", "type": "refund_refused"})
    answer.raise_for_status()
    return answer.json()["items"]  # type: ignore[no-any-return]


async def redeliver(pair: Pair, request: RefundRequest, event_id: str) -> None:
    """The same request again under an id the inbox has not seen (e.g. re-read after its inbox row was pruned)."""
    source = refund_request_source(pair.integration.back_office)
    item = InboxItem(source=source, event_id=event_id, event_type="refund.requested",
                     partition_key=f"{pair.integration.gateway.name}:{request.order_reference}",
                     body=request.model_dump_json().encode())
    buckets = pair.engine.settings.buckets
    await pair.db.write(lambda conn: store_items(pair.db, conn, [item], buckets=buckets, now=time.time()))
    assert pair.engine.worker is not None
    pair.engine.worker.wake()
    await pair.settle()


async def test_a_flagged_credit_memo_is_refunded_on_the_sale_and_the_outcome_written_back(pair: Pair) -> None:
    sale = await pair.pay("WEB-E1", "100.00", capture=True)
    await pair.settle()
    ref_nbr = await ask_for_refund(pair, "WEB-E1", "35.00")
    await poll(pair)

    assert gateway_refunds(pair) == [(sale.id, d("35.00"), "PENDING")]
    asked = await memo(pair, ref_nbr)
    refund = await pair.storefront.get_payment(asked["User1"].strip())  # read back through the gateway's API
    assert (refund.kind, refund.status, refund.amount, refund.parent_id, refund.order_reference) == (
        PaymentKind.REFUND, PaymentStatus.REFUNDED, usd("35.00"), sale.id, "WEB-E1")
    assert (asked["User6"].strip(), Decimal(str(asked["User3"])), d(asked["CuryDocBal"])) == (
        "REFUNDED", d("35"), d("0.00"))  # the credit was used by the payout
    assert f"gateway refund {refund.id}" in asked["Note"] and "refunded 35.00 USD to the card" in asked["Note"]
    assert await gl_lines(pair, asked) == posted((RETURNS, "35.00", "0"), (AR, "0", "35.00"))

    [payout] = await payouts(pair)
    assert (d(payout["CuryOrigDocAmt"]), d(payout["CuryDocBal"]), payout["User1"].strip()) == (
        d("35.00"), d("0.00"), refund.id)
    assert await gl_lines(pair, payout) == posted((AR, "35.00", "0"), (LIABILITY, "0", "35.00"))
    assert len(await pair.sl_get("ar/documents", DocType="CM")) == 1  # the request's own memo: no second one
    assert (await pair.order("WEB-E1"))["User8"].strip() == "PARTREFUND"
    counters = pair.stats()["counters"]
    assert (counters["refund_requests.refunded"], counters["refunds.posted"]) == (1, 1)
    assert counters["outcome.already_posted"] == 1  # the gateway's refund webhook, after the request posted it

    await poll(pair)  # answered: no longer pending
    assert gateway_refunds(pair) == [(sale.id, d("35.00"), "PENDING")]
    assert len(await payouts(pair)) == 1
    assert pair.stats()["counters"]["refunds.posted"] == 1


async def test_a_request_larger_than_one_capture_is_split_over_two_captures(pair: Pair) -> None:
    auth = await pair.pay("WEB-E2", "100.00", capture=False)
    first = await pair.storefront.capture(auth.id, usd("60.00"), order_reference="WEB-E2")
    second = await pair.storefront.capture(auth.id, usd("40.00"), order_reference="WEB-E2")
    await pair.settle()
    ref_nbr = await ask_for_refund(pair, "WEB-E2", "70.00")
    await poll(pair)

    # the newest capture first, the rest from the older one
    assert gateway_refunds(pair) == sorted([(second.id, d("40.00"), "PENDING"), (first.id, d("30.00"), "PENDING")])
    asked = await memo(pair, ref_nbr)
    assert (asked["User6"].strip(), Decimal(str(asked["User3"])), d(asked["CuryDocBal"])) == (
        "REFUNDED", d("70"), d("0.00"))
    paid_out = {p["User1"].strip(): d(p["CuryOrigDocAmt"]) for p in await payouts(pair)}
    refunded = {t.id: t.amount for t in pair.cybersource.store.transactions.values() if t.kind == "refund"}
    assert paid_out == refunded and sorted(paid_out.values()) == [d("30.00"), d("40.00")]
    assert all(d(p["CuryDocBal"]) == 0 for p in await payouts(pair))
    assert (await pair.order("WEB-E2"))["User8"].strip() == "PARTREFUND"

    rest = await ask_for_refund(pair, "WEB-E2", "30.00")
    await poll(pair)
    assert gateway_refunds(pair) == sorted([(second.id, d("40.00"), "PENDING"), (first.id, d("30.00"), "PENDING"),
                                            (first.id, d("30.00"), "PENDING")])
    assert (await memo(pair, rest))["User6"].strip() == "REFUNDED"
    assert sum((d(p["CuryOrigDocAmt"]) for p in await payouts(pair)), d("0")) == d("100.00")
    assert (await pair.order("WEB-E2"))["User8"].strip() == "REFUNDED"


async def test_a_refund_beyond_the_refundable_remainder_is_refused_before_the_gateway(pair: Pair) -> None:
    sale = await pair.pay("WEB-E3", "50.00", capture=True)
    await pair.settle()
    await pair.storefront.refund(sale.id, usd("20.00"), reference="shop-refund", order_reference="WEB-E3")
    await pair.settle()
    too_much = await ask_for_refund(pair, "WEB-E3", "30.01")
    no_order = await ask_for_refund(pair, "WEB-E3", "5.00", name_the_order=False)
    await poll(pair)

    assert gateway_refunds(pair) == [(sale.id, d("20.00"), "PENDING")]  # only the shop's own
    refused = await memo(pair, too_much)
    assert (refused["User6"].strip(), refused["User1"].strip(), Decimal(str(refused["User3"])),
            d(refused["CuryDocBal"])) == ("REFUSED", "", d("0"), d("30.01"))
    assert "refund of 30.01 USD exceeds the refundable remainder 30.00 USD of order WEB-E3" in refused["Note"]
    orphan = await memo(pair, no_order)
    assert orphan["User6"].strip() == "REFUSED" and "of order (none given)" in orphan["Note"]
    assert [p["User1"].strip() for p in await payouts(pair)] == [  # the shop's refund, paid out by its webhook
        next(t.id for t in pair.cybersource.store.transactions.values() if t.kind == "refund")]
    cases = {c["reference"]: c for c in await refused_cases(pair)}
    assert cases["WEB-E3"]["status"] == "open"
    assert cases["WEB-E3"]["amount"] == {"amount": "30.01", "currency": "USD"}
    assert "exceeds the refundable remainder 30.00 USD" in cases["WEB-E3"]["summary"]
    assert len(cases) == 2
    assert pair.stats()["counters"]["refund_requests.refused"] == 2

    await poll(pair)
    assert len(await refused_cases(pair)) == 2
    assert gateway_refunds(pair) == [(sale.id, d("20.00"), "PENDING")]


async def test_a_gateway_decline_is_written_back_and_nothing_is_paid_out(pair: Pair) -> None:
    sale = await pair.pay("WEB-E4", "100.00", capture=True)
    await pair.settle()
    ref_nbr = await ask_for_refund(pair, "WEB-E4", f"25.{DECLINING_CENTS}")
    await poll(pair)

    [(of, refund_amount, status)] = gateway_refunds(pair)
    assert (of, refund_amount, status) == (sale.id, d("25.13"), "DECLINED")
    declined = await memo(pair, ref_nbr)
    assert declined["User6"].strip() == "DECLINED"
    assert Decimal(str(declined["User3"])) == 0  # nothing was refunded
    assert d(declined["CuryDocBal"]) == d("25.13")  # the credit stays on the customer's account
    assert "PROCESSOR_DECLINED" in declined["Note"]
    assert await payouts(pair) == []
    assert (await pair.order("WEB-E4"))["User8"].strip() == ""
    counters = pair.stats()["counters"]
    assert counters["refund_requests.declined"] == 1 and "refunds.posted" not in counters

    await poll(pair)
    assert len(gateway_refunds(pair)) == 1


async def test_a_split_declined_halfway_says_what_was_refunded(pair: Pair) -> None:
    auth = await pair.pay("WEB-E5", "100.00", capture=False)
    first = await pair.storefront.capture(auth.id, usd("60.00"), order_reference="WEB-E5")
    second = await pair.storefront.capture(auth.id, usd("40.00"), order_reference="WEB-E5")
    await pair.settle()
    ref_nbr = await ask_for_refund(pair, "WEB-E5", f"80.{DECLINING_CENTS}")  # 40.00 of the newer, then 40.13
    await poll(pair)

    assert gateway_refunds(pair) == sorted([(second.id, d("40.00"), "PENDING"), (first.id, d("40.13"), "DECLINED")])
    asked = await memo(pair, ref_nbr)
    [payout] = await payouts(pair)
    assert (d(payout["CuryOrigDocAmt"]), d(payout["CuryDocBal"])) == (d("40.00"), d("0.00"))
    assert (asked["User6"].strip(), asked["User1"].strip()) == ("DECLINED", next(
        t.id for t in pair.cybersource.store.transactions.values() if t.kind == "refund" and t.status == "DECLINED"))
    assert Decimal(str(asked["User3"])) == d("40")  # what the card got back
    assert d(asked["CuryDocBal"]) == d("40.13")  # the rest of the credit stays with the customer
    assert f"40.00 USD was refunded before it ({payout['User1'].strip()})" in asked["Note"]
    assert (await pair.order("WEB-E5"))["User8"].strip() == "PARTREFUND"


async def test_retries_and_repeated_requests_refund_once(pair: Pair) -> None:
    await pair.pay("WEB-E6", "90.00", capture=True)
    await pair.settle()
    ref_nbr = await ask_for_refund(pair, "WEB-E6", "90.00")
    [request] = await pair.integration.back_office.refund_requests()
    # SL records the result, then the answer is lost: the engine asks again
    fault = await pair.sl_http.post("/__sandbox/faults", json={
        "method": "POST", "path": f"/api/v1/ar/refund-requests/{ref_nbr}/result", "status": 503, "times": 1,
        "after_commit": True})
    assert fault.status_code == 200, fault.text
    await poll(pair)
    await poll(pair)
    await redeliver(pair, request, "refund-request:again")

    assert [(amount, status) for _, amount, status in gateway_refunds(pair)] == [(d("90.00"), "PENDING")]
    asked = await memo(pair, ref_nbr)
    assert asked["User6"].strip() == "REFUNDED" and d(asked["CuryDocBal"]) == 0
    assert asked["Note"].count("Card refund refunded") == 1
    [payout] = await payouts(pair)
    assert d(payout["CuryOrigDocAmt"]) == d("90.00")
    assert (await pair.order("WEB-E6"))["User8"].strip() == "REFUNDED"
    counters = pair.stats()["counters"]
    assert (counters["refund_requests.refunded"], counters["refunds.posted"]) == (1, 1)


async def test_money_a_chargeback_took_back_is_not_refundable_until_the_chargeback_is_won(pair: Pair) -> None:
    sale = await pair.pay("WEB-E7", "100.00", capture=True)
    await pair.settle()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=pair.cybersource.app),
                                 base_url="http://cybersource.sandbox") as issuer:
        assert (await issuer.post("/__sandbox/settle", json={})).status_code == 200
        opened = await issuer.post("/__sandbox/disputes", json={"transactionId": sale.id, "amount": "60.00"})
        assert opened.status_code == 201, opened.text
        await pair.run_job("poll-disputes")
        too_much = await ask_for_refund(pair, "WEB-E7", "50.00")  # the card already got 60.00 from the issuer
        await poll(pair)
        assert gateway_refunds(pair) == []
        refused = await memo(pair, too_much)
        assert refused["User6"].strip() == "REFUSED"
        assert "exceeds the refundable remainder 40.00 USD" in refused["Note"]
        within = await ask_for_refund(pair, "WEB-E7", "40.00")
        await poll(pair)
        assert (await memo(pair, within))["User6"].strip() == "REFUNDED"

        won = await issuer.post(f"/__sandbox/disputes/{opened.json()['trackingNumber']}", json={"outcome": "won"})
        assert won.status_code == 200, won.text
        await pair.run_job("poll-disputes")
        rest = await ask_for_refund(pair, "WEB-E7", "60.00")  # won back: the merchant's to refund again
        await poll(pair)
    assert (await memo(pair, rest))["User6"].strip() == "REFUNDED"
    assert gateway_refunds(pair) == [(sale.id, d("40.00"), "PENDING"), (sale.id, d("60.00"), "PENDING")]
    assert sorted(d(p["CuryOrigDocAmt"]) for p in await payouts(pair)) == [d("40.00"), d("60.00")]
