"""Chargebacks end to end: the Cybersource sandbox's chargeback-details report, read by the engine's poll,
becomes SL debit and credit memos, an order flag, a case and an SL task, each exactly once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerlink.flows.polls import dispute_source
from ledgerlink.model import Dispute, DisputeStage
from ledgerlink.runtime.intake import InboxItem, store_items
from tests.flows.harness import ACCOUNTS, ALL_FLOWS, Pair, running_pair

AR = "1200"  # the SL company's AR account (the sandbox's seed), the other side of every memo
CLEARING = ACCOUNTS["chargeback_clearing"]["account"]
LOSSES = ACCOUNTS["chargeback_losses"]["account"]
FEES = ACCOUNTS["chargeback_fees"]["account"]


@pytest.fixture
async def pair(tmp_path: Path, database_target: tuple[str, str | None]) -> AsyncIterator[Pair]:
    url, schema = database_target
    async with running_pair(tmp_path, url, schema, flows=ALL_FLOWS) as running:
        yield running


def d(value: str) -> Decimal:
    return Decimal(value)


class Issuer:
    """The card network's side, through the Cybersource sandbox's unsigned test controls."""

    def __init__(self, pair: Pair) -> None:
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=pair.cybersource.app),
                                      base_url="http://cybersource.sandbox")

    async def settle_today(self) -> None:
        answer = await self.http.post("/__sandbox/settle", json={})
        assert answer.status_code == 200, answer.text

    async def charge_back(self, transaction_id: str, amount: str | None = None, *, fee: str | None = None,
                          reason_code: str = "13.1") -> str:
        body: dict[str, Any] = {"transactionId": transaction_id, "reasonCode": reason_code}
        if amount is not None:
            body["amount"] = amount
        if fee is not None:
            body["fee"] = fee
        answer = await self.http.post("/__sandbox/disputes", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["trackingNumber"])

    async def resolve(self, tracking: str, outcome: str) -> None:
        answer = await self.http.post(f"/__sandbox/disputes/{tracking}", json={"outcome": outcome})
        assert answer.status_code == 200, answer.text


@pytest.fixture
async def issuer(pair: Pair) -> AsyncIterator[Issuer]:
    running = Issuer(pair)
    yield running
    await running.http.aclose()


async def settled_sale(pair: Pair, issuer: Issuer, order: str, amount: str) -> str:
    sale = await pair.pay(order, amount, capture=True)
    await pair.settle()
    await issuer.settle_today()
    return sale.id


async def poll(pair: Pair) -> None:
    await pair.run_job("poll-disputes")


async def documents(pair: Pair, doc_type: str) -> list[dict[str, Any]]:
    return await pair.sl_get("ar/documents", DocType=doc_type)  # type: ignore[no-any-return]


async def gl_lines(pair: Pair, doc: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
    """The GL lines a document posted: (account, debit, credit), sorted."""
    batch = await pair.sl_get(f"gl/batches/{doc['BatNbr'].strip()}", Module="AR")
    return sorted((line["Acct"].strip(), Decimal(str(line["DrAmt"])).quantize(Decimal("0.01")),
                   Decimal(str(line["CrAmt"])).quantize(Decimal("0.01"))) for line in batch["Lines"])


def posted(*lines: tuple[str, str, str]) -> list[tuple[str, Decimal, Decimal]]:
    """Expected GL lines, (account, debit, credit), in ``gl_lines``'s order."""
    return sorted((account, Decimal(debit), Decimal(credit)) for account, debit, credit in lines)


async def cases(pair: Pair, status: str = "") -> list[dict[str, Any]]:
    answer = await pair.engine_http.get("/admin/cases", params={"status": status, "type": "dispute"})
    answer.raise_for_status()
    return answer.json()["items"]  # type: ignore[no-any-return]


async def redeliver(pair: Pair, dispute: Dispute, event_id: str) -> None:
    """The same chargeback record again under an id the inbox has not seen (a second notification, or the
    poll's window re-read after the inbox row was pruned): only the flow's own keys can stop it."""
    gateway = pair.integration.gateway
    item = InboxItem(source=dispute_source(gateway), event_id=event_id, event_type=f"dispute.{dispute.stage.value}",
                     partition_key=f"{gateway.name}:{dispute.order_reference}", body=dispute.model_dump_json().encode())
    buckets = pair.engine.settings.buckets
    await pair.db.write(lambda conn: store_items(pair.db, conn, [item], buckets=buckets, now=time.time()))
    assert pair.engine.worker is not None
    pair.engine.worker.wake()
    await pair.settle()


async def reported(pair: Pair, tracking: str) -> list[Dispute]:
    now = datetime.now(UTC)
    found = await pair.storefront.disputes(now - timedelta(days=1), now + timedelta(seconds=1))
    return [dispute for dispute in found if dispute.dispute_id == tracking]


async def test_an_opened_chargeback_debits_amount_and_fee_flags_the_order_and_opens_a_case_and_a_task(
    pair: Pair, issuer: Issuer
) -> None:
    sale = await settled_sale(pair, issuer, "WEB-D1", "120.00")
    tracking = await issuer.charge_back(sale, reason_code="13.1")  # the whole sale; the default 15.00 fee
    await poll(pair)

    [memo] = await documents(pair, "DM")
    assert (d(memo["CuryOrigDocAmt"]), d(memo["CuryDocBal"]), memo["User1"].strip(), memo["CustOrdNbr"].strip()) == (
        d("135.00"), d("135.00"), tracking, "WEB-D1")
    assert await gl_lines(pair, memo) == posted((AR, "135.00", "0"), (CLEARING, "0", "120.00"),
                                                (CLEARING, "0", "15.00"))
    order = await pair.order("WEB-D1")
    assert order["User8"].strip() == "DISPUTED"
    assert memo["OrdNbr"].strip() == order["OrdNbr"].strip()

    [case] = await cases(pair, "open")
    assert (case["key"], case["amount"], case["reference"]) == (
        f"dispute:cybersource:{tracking}", {"amount": "120.00", "currency": "USD"}, sale)
    [task] = await pair.sl_get("tasks", Category="chargeback")
    assert (task["Status"], d(task["Amount"]), task["Reference"].strip(), task["Subject"].strip()) == (
        "O", d("120.00"), sale, "Chargeback WEB-D1")
    assert "reason 13.1" in task["Body"] and "Respond by" in task["Body"]
    assert [ref["id"] for ref in case["refs"]] == [task["TaskNbr"]]
    assert pair.stats()["counters"]["chargebacks.opened"] == 1

    await poll(pair)  # the next window overlaps this one: the record is read again
    await poll(pair)
    assert len(await documents(pair, "DM")) == 1
    assert len(await pair.sl_get("tasks")) == 1
    assert len(await cases(pair)) == 1
    counters = pair.stats()["counters"]
    assert counters["chargebacks.opened"] == 1 and counters["events.duplicates"] == 2


async def test_a_won_chargeback_credits_the_debit_memo_back_and_releases_the_hold(
    pair: Pair, issuer: Issuer
) -> None:
    sale = await settled_sale(pair, issuer, "WEB-D2", "80.00")
    tracking = await issuer.charge_back(sale, "30.00", fee="20.00")  # a part of the sale
    await poll(pair)
    [debit] = await documents(pair, "DM")
    assert d(debit["CuryOrigDocAmt"]) == d("50.00")
    assert (await pair.order("WEB-D2"))["User8"].strip() == "DISPUTED"

    await issuer.resolve(tracking, "won")
    await poll(pair)
    [credit] = await documents(pair, "CM")
    assert (d(credit["CuryOrigDocAmt"]), d(credit["CuryDocBal"]), credit["User1"].strip()) == (
        d("50.00"), d("0.00"), tracking)
    # the amount back to clearing (the processor returns it), the fee it keeps to the fee expense
    assert await gl_lines(pair, credit) == posted((CLEARING, "30.00", "0"), (FEES, "20.00", "0"), (AR, "0", "50.00"))
    [debit] = await documents(pair, "DM")
    assert d(debit["CuryDocBal"]) == d("0.00")  # the customer owes nothing
    order = await pair.order("WEB-D2")
    assert (order["User8"].strip(), d(order["BalDue"])) == ("PAID", d("0.00"))
    [case] = await cases(pair)
    assert case["status"] == "resolved"
    assert await cases(pair, "open") == []
    counters = pair.stats()["counters"]
    assert (counters["chargebacks.opened"], counters["chargebacks.won"]) == (1, 1)
    assert "chargebacks.lost" not in counters


async def test_a_lost_chargeback_writes_the_amount_and_fee_off_to_the_mapped_accounts(
    pair: Pair, issuer: Issuer
) -> None:
    sale = await settled_sale(pair, issuer, "WEB-D3", "99.99")
    tracking = await issuer.charge_back(sale, "45.50", fee="12.25")
    await poll(pair)
    await issuer.resolve(tracking, "lost")
    await poll(pair)

    [debit] = await documents(pair, "DM")
    [credit] = await documents(pair, "CM")
    assert (d(debit["CuryOrigDocAmt"]), d(debit["CuryDocBal"])) == (d("57.75"), d("0.00"))
    assert (d(credit["CuryOrigDocAmt"]), d(credit["CuryDocBal"])) == (d("57.75"), d("0.00"))
    assert await gl_lines(pair, credit) == posted((LOSSES, "45.50", "0"), (FEES, "12.25", "0"), (AR, "0", "57.75"))
    [case] = await cases(pair)
    assert case["status"] == "resolved"
    assert (await pair.order("WEB-D3"))["User8"].strip() == "DISPUTED"  # never paid again
    counters = pair.stats()["counters"]
    assert (counters["chargebacks.opened"], counters["chargebacks.lost"]) == (1, 1)
    assert "chargebacks.won" not in counters


async def test_opened_and_lost_between_two_polls_apply_in_order(pair: Pair, issuer: Issuer) -> None:
    sale = await settled_sale(pair, issuer, "WEB-D4", "60.00")
    tracking = await issuer.charge_back(sale, fee="0")
    await issuer.resolve(tracking, "lost")
    await poll(pair)
    [debit] = await documents(pair, "DM")
    [credit] = await documents(pair, "CM")
    assert (d(debit["CuryOrigDocAmt"]), d(credit["CuryOrigDocAmt"]), d(debit["CuryDocBal"])) == (
        d("60.00"), d("60.00"), d("0.00"))
    assert await gl_lines(pair, debit) == posted((AR, "60.00", "0"), (CLEARING, "0", "60.00"))
    assert await gl_lines(pair, credit) == posted((LOSSES, "60.00", "0"), (AR, "0", "60.00"))
    assert [c["status"] for c in await cases(pair)] == ["resolved"]
    assert len(await pair.sl_get("tasks", Category="chargeback")) == 1


async def test_a_duplicated_or_late_chargeback_record_posts_nothing_twice(pair: Pair, issuer: Issuer) -> None:
    sale = await settled_sale(pair, issuer, "WEB-D5", "70.00")
    tracking = await issuer.charge_back(sale, "70.00", fee="15.00")
    await poll(pair)
    [opened] = await reported(pair, tracking)
    await redeliver(pair, opened, "second-notice:opened")
    assert len(await documents(pair, "DM")) == 1
    assert len(await pair.sl_get("tasks")) == 1

    await issuer.resolve(tracking, "won")
    await poll(pair)
    opened_again, won = await reported(pair, tracking)
    assert (opened_again.stage, won.stage) == (DisputeStage.OPENED, DisputeStage.WON)
    await redeliver(pair, won, "second-notice:won")
    await redeliver(pair, opened, "late-notice:opened")  # after the outcome: skipped, the hold stays released
    await poll(pair)

    assert len(await documents(pair, "DM")) == 1
    [credit] = await documents(pair, "CM")
    assert d(credit["CuryOrigDocAmt"]) == d("85.00")
    assert (await pair.order("WEB-D5"))["User8"].strip() == "PAID"
    assert [c["status"] for c in await cases(pair)] == ["resolved"]
    assert len(await pair.sl_get("tasks")) == 1
    counters = pair.stats()["counters"]
    assert (counters["chargebacks.opened"], counters["chargebacks.won"]) == (1, 1)
    assert counters["events.stale"] == 3  # the second "opened", the second "won" and the late "opened"


async def test_two_chargebacks_on_one_order_are_kept_apart(pair: Pair, issuer: Issuer) -> None:
    sale = await settled_sale(pair, issuer, "WEB-D6", "100.00")
    first = await issuer.charge_back(sale, "40.00", fee="10.00")
    second = await issuer.charge_back(sale, "60.00", fee="10.00")
    await poll(pair)
    await issuer.resolve(first, "won")
    await issuer.resolve(second, "lost")
    await poll(pair)
    debits = {m["User1"].strip(): d(m["CuryOrigDocAmt"]) for m in await documents(pair, "DM")}
    credits = {m["User1"].strip(): m for m in await documents(pair, "CM")}
    assert debits == {first: d("50.00"), second: d("70.00")}
    assert {k: d(v["CuryOrigDocAmt"]) for k, v in credits.items()} == {first: d("50.00"), second: d("70.00")}
    assert await gl_lines(pair, credits[first]) == posted((CLEARING, "40.00", "0"), (FEES, "10.00", "0"),
                                                          (AR, "0", "50.00"))
    assert await gl_lines(pair, credits[second]) == posted((LOSSES, "60.00", "0"), (FEES, "10.00", "0"),
                                                           (AR, "0", "70.00"))
    assert sorted(c["key"] for c in await cases(pair, "resolved")) == sorted(
        [f"dispute:cybersource:{first}", f"dispute:cybersource:{second}"])
    assert len(await pair.sl_get("tasks", Category="chargeback")) == 2
