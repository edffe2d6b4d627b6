"""Refunds, voids and reversals end to end: the gateway's events become credit and debit memos, reversed
receipts and write-offs in SL, each exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from ledgerlink.model import Money
from tests.flows.harness import ALL_FLOWS, Pair, running_pair


@pytest.fixture
async def pair(tmp_path: Path, database_target: tuple[str, str | None]) -> AsyncIterator[Pair]:
    url, schema = database_target
    async with running_pair(tmp_path, url, schema, flows=ALL_FLOWS) as running:
        yield running


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


async def gl_net(pair: Pair, account: str) -> Decimal:
    """Debits minus credits on an account, over every GL line the SL sandbox holds (read from its store:
    the API has no trial-balance route)."""
    rows = pair.sl.store.all("SELECT DrAmt, CrAmt FROM GLTran WHERE Acct = ?", (account,))
    return sum((Decimal(str(r["DrAmt"])) - Decimal(str(r["CrAmt"])) for r in rows), Decimal(0)).quantize(
        Decimal("0.01"))


async def test_a_partial_then_full_refund_each_become_a_credit_memo_paid_out_once(pair: Pair) -> None:
    sale = await pair.pay("WEB-R1", "100.00", capture=True)
    await pair.settle()
    first = await pair.storefront.refund(sale.id, usd("30.00"), reference="r1", order_reference="WEB-R1")
    await pair.settle()
    order = await pair.order("WEB-R1")
    assert order["User8"].strip() == "PARTREFUND"
    second = await pair.storefront.refund(sale.id, usd("70.00"), reference="r2", order_reference="WEB-R1")
    await pair.settle()
    credit_memos = await pair.sl_get("ar/documents", DocType="CM")
    payouts = await pair.sl_get("ar/documents", DocType="DM")
    assert sorted(Decimal(d["CuryOrigDocAmt"]) for d in credit_memos) == [Decimal("30.00"), Decimal("70.00")]
    assert {d["User1"].strip() for d in payouts} == {first.id, second.id}
    assert all(Decimal(d["CuryDocBal"]) == 0 for d in credit_memos + payouts)
    assert (await pair.order("WEB-R1"))["User8"].strip() == "REFUNDED"
    assert await gl_net(pair, "4900") == Decimal("100.00")  # returns debited
    assert await gl_net(pair, "2350") == Decimal("-100.00")  # owed to the card until the settlement pays it
    assert pair.stats()["counters"]["refunds.posted"] == 2


async def test_a_voided_capture_reverses_the_receipt_and_writes_the_invoice_off(pair: Pair) -> None:
    sale = await pair.pay("WEB-V1", "55.00", capture=True)
    await pair.settle()
    await pair.storefront.void(sale.id, order_reference="WEB-V1")
    await pair.settle()
    reversals = await pair.sl_get("ar/documents", DocType="NS")
    assert len(reversals) == 1
    [invoice] = await pair.sl_get("ar/documents", DocType="IN")
    assert Decimal(invoice["CuryDocBal"]) == 0  # written off after the reversal re-opened it
    assert await gl_net(pair, "1050") == 0  # card clearing: captured, then given back
    assert (await pair.order("WEB-V1"))["User8"].strip() == "REFUNDED"


async def test_reversing_an_uncaptured_authorisation_cancels_the_order(pair: Pair) -> None:
    auth = await pair.pay("WEB-A1", "40.00", capture=False)
    await pair.settle()
    await pair.storefront.reverse(auth.id, auth.amount, reason="customer cancelled", order_reference="WEB-A1")
    await pair.settle()
    order = await pair.order("WEB-A1")
    assert order["Status"] == "C" and order["Cancelled"] == 1


async def test_reversing_the_uncaptured_rest_writes_it_off_and_pays_the_order(pair: Pair) -> None:
    auth = await pair.pay("WEB-A2", "100.00", capture=False)
    await pair.storefront.capture(auth.id, usd("60.00"), order_reference="WEB-A2")
    await pair.settle()
    assert Decimal((await pair.order("WEB-A2"))["BalDue"]) == Decimal("40.00")
    await pair.storefront.reverse(auth.id, usd("40.00"), reason="rest not shipped", order_reference="WEB-A2")
    await pair.settle()
    [invoice] = await pair.sl_get("ar/documents", DocType="IN")
    assert Decimal(invoice["CuryDocBal"]) == 0


async def test_a_refund_that_overtakes_its_capture_still_posts_both_once(
    tmp_path: Path, database_target: tuple[str, str | None]
) -> None:
    url, schema = database_target
    emitter = {"reorder_window": 2, "reorder_flush_ms": 500, "seed": 1}  # the second goes out first
    async with running_pair(tmp_path, url, schema, flows=ALL_FLOWS, emitter=emitter) as pair:
        sale = await pair.pay("WEB-R9", "80.00", capture=True)
        await pair.storefront.refund(sale.id, usd("80.00"), reference="r9", order_reference="WEB-R9")
        await pair.settle()
        assert len(await pair.sl_get("ar/documents", DocType="PA")) == 1
        assert len(await pair.sl_get("ar/documents", DocType="CM")) == 1
        assert (await pair.order("WEB-R9"))["User8"].strip() == "REFUNDED"
