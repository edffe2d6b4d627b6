"""Benchmark (not a test): money-movement documents per ``$batch`` and reading posted payments for reconciliation.

Run: ``.venv/bin/python benchmarks/sl_money.py [receipts]``. In-process over the ASGI
transport, in-memory database, best and median of five rounds:

* one ``$batch`` of 250 creates of each new kind, minimal answers: credit memos applied to an invoice, debit
  memos paid by an existing credit (a card refund paid out), NS reversals, GL journals released and posted,
  tasks;
* ``DynamicsSLBackOffice.posted_payments`` for one day holding ``receipts`` receipts (default 50,000) and a
  refund payout per 20 receipts: every page, translated to ``PostedPayment`` records, and the HTTP requests
  it took.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson

from ledgerlink.connectors.dynamics_sl import build_back_office
from ledgerlink.connectors.dynamics_sl.sandbox import create_app

SIZE = 250
NOW = datetime(2026, 3, 14, 10, 30)
HEADERS = {"X-API-Key": "sl-sandbox-key", "content-type": "application/json"}


def _item(i: int, url: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    return {"id": str(i), "method": "POST", "url": url, "body": body,
            "headers": {"Idempotency-Key": key, "Prefer": "return=minimal"}}


async def _batch(sl: httpx.AsyncClient, requests: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    body = orjson.dumps({"requests": requests})
    start = time.perf_counter()
    response = await sl.post("/api/v1/$batch", content=body)
    elapsed = time.perf_counter() - start
    answers = response.json()["responses"]
    assert {a["status"] for a in answers} == {201}, [a for a in answers if a["status"] != 201][:1]
    return elapsed, answers


async def _setup_round(sl: httpx.AsyncClient, round_: int) -> tuple[list[str], list[str], list[str]]:
    """Per round: SIZE invoices, SIZE paid invoices (their PA numbers) and SIZE unapplied credit memos."""
    docs = "/api/v1/ar/documents"
    _, invoices = await _batch(sl, [_item(i, docs, {"CustId": "B1", "DocType": "IN", "CuryOrigDocAmt": "10.00"},
                                          f"in-{round_}-{i}") for i in range(SIZE)])
    _, paid = await _batch(sl, [_item(i, docs, {"CustId": "B1", "DocType": "IN", "CuryOrigDocAmt": "10.00"},
                                      f"in2-{round_}-{i}") for i in range(SIZE)])
    _, payments = await _batch(sl, [_item(i, docs, {
        "CustId": "B1", "DocType": "PA", "CuryOrigDocAmt": "10.00", "User1": f"7{round_}{i:05d}",
        "Applications": [{"AdjdDocType": "IN", "AdjdRefNbr": a["body"]["RefNbr"], "CuryAdjgAmt": "10.00"}]},
        f"pa-{round_}-{i}") for i, a in enumerate(paid)])
    _, credits = await _batch(sl, [_item(i, docs, {
        "CustId": "B1", "DocType": "CM", "CuryOrigDocAmt": "4.00", "Lines": [{"Acct": "4900", "CuryTranAmt": "4.00"}]},
        f"cm0-{round_}-{i}") for i in range(SIZE)])
    return ([a["body"]["RefNbr"] for a in invoices], [a["body"]["RefNbr"] for a in payments],
            [a["body"]["RefNbr"] for a in credits])


KINDS: dict[str, Callable[[int, int, str, str, str], tuple[str, dict[str, Any]]]] = {
    "credit memos applied": lambda r, i, inv, pa, cm: ("/api/v1/ar/documents", {
        "CustId": "B1", "DocType": "CM", "CuryOrigDocAmt": "3.00", "Lines": [{"Acct": "6900", "CuryTranAmt": "3.00"}],
        "Applications": [{"AdjdDocType": "IN", "AdjdRefNbr": inv, "CuryAdjgAmt": "3.00"}]}),
    "refund payouts (DM+credit)": lambda r, i, inv, pa, cm: ("/api/v1/ar/documents", {
        "CustId": "B1", "DocType": "DM", "CuryOrigDocAmt": "4.00", "User1": f"8{r}{i:05d}", "User5": "RFNDPAYOUT",
        "Lines": [{"Acct": "2350", "CuryTranAmt": "4.00"}],
        "Credits": [{"AdjgDocType": "CM", "AdjgRefNbr": cm, "CuryAdjgAmt": "4.00"}]}),
    "NS reversals": lambda r, i, inv, pa, cm: (f"/api/v1/ar/documents/PA/{pa}/reverse", {"DocDesc": "void"}),
    "GL journals posted": lambda r, i, inv, pa, cm: ("/api/v1/gl/batches", {"Post": True, "Lines": [
        {"Acct": "1010", "Sub": "000000", "DrAmt": "97.10"}, {"Acct": "6500", "Sub": "000000", "DrAmt": "2.90"},
        {"Acct": "1050", "Sub": "000000", "CrAmt": "100.00"}]}),
    "tasks": lambda r, i, inv, pa, cm: ("/api/v1/tasks", {"Subject": f"Check {i}", "Body": "details",
                                                          "Category": "reconciliation"}),
}


async def documents() -> None:
    app = create_app({}, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sl",
                                 headers=HEADERS) as sl:
        await sl.post("/api/v1/customers", json={"CustId": "B1", "Name": "Bench"})
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for round_ in range(5):
            invoices, payments, credits = await _setup_round(sl, round_)
            for kind, make in KINDS.items():
                requests = []
                for i in range(SIZE):
                    url, body = make(round_, i, invoices[i], payments[i], credits[i])
                    requests.append(_item(i, url, body, f"{kind}-{round_}-{i}"))
                elapsed, _ = await _batch(sl, requests)
                times[kind].append(elapsed)
        for kind, spent in times.items():
            print(f"{kind:28} best {min(spent) * 1000:6.1f} ms  median {statistics.median(spent) * 1000:6.1f} ms  "
                  f"{SIZE / min(spent):6.0f} docs/s")


async def posted(receipts: int) -> None:
    app = create_app({}, clock=lambda: NOW)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sl", headers=HEADERS) as sl:
        await sl.post("/api/v1/customers", json={"CustId": "B1", "Name": "Bench"})
        start = time.perf_counter()
        for chunk in range(0, receipts, 1000):
            await _batch(sl, [_item(i, "/api/v1/ar/documents", {
                "CustId": "B1", "DocType": "PP", "CuryOrigDocAmt": "1.00", "User1": f"7{chunk + i:09d}"},
                f"pp-{chunk + i}") for i in range(min(1000, receipts - chunk))])
        for chunk in range(0, receipts // 20, 500):  # refunds paid out: CM then DM paid by it
            count = min(500, receipts // 20 - chunk)
            _, credits = await _batch(sl, [_item(i, "/api/v1/ar/documents", {
                "CustId": "B1", "DocType": "CM", "CuryOrigDocAmt": "1.00",
                "Lines": [{"Acct": "4900", "CuryTranAmt": "1.00"}]}, f"cm-{chunk + i}") for i in range(count)])
            await _batch(sl, [_item(i, "/api/v1/ar/documents", {
                "CustId": "B1", "DocType": "DM", "CuryOrigDocAmt": "1.00", "User1": f"8{chunk + i:09d}",
                "User5": "RFNDPAYOUT", "Lines": [{"Acct": "2350", "CuryTranAmt": "1.00"}],
                "Credits": [{"AdjgDocType": "CM", "AdjgRefNbr": a["body"]["RefNbr"], "CuryAdjgAmt": "1.00"}]},
                f"dm-{chunk + i}") for i, a in enumerate(credits)])
        print(f"seeded {receipts} receipts and {receipts // 20} refund payouts in {time.perf_counter() - start:.1f} s")
    bo = build_back_office({"base_url": "http://sl", "api_key": "sl-sandbox-key"}, transport=transport)
    day = date(2026, 3, 14)
    spent = []
    for _ in range(5):
        sent = bo.client.requests_sent
        start = time.perf_counter()
        found = await bo.posted_payments(day, day + timedelta(days=1))
        spent.append(time.perf_counter() - start)
        requests = bo.client.requests_sent - sent
    assert len(found) == receipts + receipts // 20
    assert found[0].posted_at == datetime(2026, 3, 14, 10, 30, tzinfo=UTC)
    print(f"posted_payments({len(found)} rows, {requests} HTTP requests): best {min(spent) * 1000:.0f} ms  median "
          f"{statistics.median(spent) * 1000:.0f} ms  {len(found) / min(spent):.0f} rows/s")
    await bo.aclose()


def main() -> None:
    receipts = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    asyncio.run(documents())
    asyncio.run(posted(receipts))


if __name__ == "__main__":
    main()
