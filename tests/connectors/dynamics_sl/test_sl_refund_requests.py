"""Refund requests entered in SL (a CM flagged "refund to card"), their results, and the posted-payments read
reconciliation pages through."""

from __future__ import annotations

from typing import Any

import httpx

from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState
from ledgerlink.connectors.dynamics_sl.sandbox.posted import SQL as POSTED_SQL
from ledgerlink.connectors.dynamics_sl.sandbox.refunds import PENDING_SQL

from .test_sl_memo_rules import DOCS, _cm, _dm, _paid
from .test_sl_sandbox_rules import _customer, _ok, _refused

REQUESTS = "/api/v1/ar/refund-requests"
POSTED = "/api/v1/ar/posted-payments"


async def _request(api: httpx.AsyncClient, amount: str = "25.00", **extra: Any) -> str:
    doc = await _ok(await api.post(DOCS, json=_cm(amount, User5="CARDRFND", **extra)))
    return str(doc["RefNbr"])


async def test_flagged_credit_memos_are_pending_until_a_result(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    ord_nbr, _, _ = await _paid(api)
    asked = await _request(api, OrdNbr=ord_nbr, Note="customer returned the blue one", DocDesc="Return")
    await _ok(await api.post(DOCS, json=_cm("3.00")))  # not flagged: never a request
    held = await _request(api, "4.00", Release=False)  # not released yet: not a request either
    pending = (await _ok(await api.get(REQUESTS)))["value"]
    assert [p["RefNbr"] for p in pending] == [asked]
    request = pending[0]
    assert (request["OrdNbr"], request["CustOrdNbr"], request["CuryOrigDocAmt"]) == (ord_nbr, "WEB-1", "25.00")
    assert (request["Note"], request["Crtd_DateTime"]) == ("customer returned the blue one", "2026-03-14T10:30")
    assert state.counts()["refund_requests_pending"] == 1

    await _ok(await api.post(f"/api/v1/ar/batches/{(await _ok(await api.get(f'{DOCS}/CM/{held}')))['BatNbr']}"
                             "/release"))
    assert len((await _ok(await api.get(REQUESTS)))["value"]) == 2
    memo = await _ok(await api.post(f"{REQUESTS}/{asked}/result", json={
        "Outcome": "refunded", "GatewayRefundId": "8000000042", "Message": "Refund accepted",
        "CuryRefundAmt": "25.00"}))
    assert (memo["User6"], memo["User1"], memo["User3"], memo["User8"]) == ("REFUNDED", "8000000042", 25.0,
                                                                            "03/14/2026")
    assert memo["Note"].endswith("Card refund refunded on 03/14/2026: 25.00 USD, gateway refund 8000000042. "
                                 "Refund accepted")
    assert memo["Note"].startswith("customer returned the blue one\n")
    again = await _ok(await api.post(f"{REQUESTS}/{asked}/result", json={
        "Outcome": "refunded", "GatewayRefundId": "8000000042", "Message": "Refund accepted"}))
    assert again["Note"] == memo["Note"]  # a retry writes nothing
    declined = await _ok(await api.post(f"{REQUESTS}/{held}/result", json={"Outcome": "declined",
                                                                           "Message": "card expired"}))
    assert (declined["User6"], declined["User1"], declined["User3"]) == ("DECLINED", "", 0.0)
    assert (await _ok(await api.get(REQUESTS)))["value"] == []
    memo_after = await _ok(await api.get(f"{DOCS}/CM/{asked}"))
    assert memo_after["DocBal"] == "25.00"  # the credit stays until the debit memo paying the refund uses it


async def test_result_rules(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    asked = await _request(api)
    plain = await _ok(await api.post(DOCS, json=_cm("3.00")))
    held = await _request(api, "4.00", Release=False)
    before = state.counts()
    result = {"Outcome": "refunded", "GatewayRefundId": "8000000001"}
    error = await _refused(await api.post(f"{REQUESTS}/{plain['RefNbr']}/result", json=result), 422, "ARDoc",
                           "User5")
    assert error["code"] == "NotARefundRequest"
    await _refused(await api.post(f"{REQUESTS}/{held}/result", json=result), 422, "ARDoc", "Rlsed")
    await _refused(await api.post(f"{REQUESTS}/999999/result", json=result), 404, "ARDoc", None)
    error = await _refused(await api.post(f"{REQUESTS}/{asked}/result", json={**result, "CuryRefundAmt": "25.01"}),
                           422, "ARDoc", "CuryRefundAmt")
    assert error["code"] == "RefundExceedsCredit"
    await _refused(await api.post(f"{REQUESTS}/{asked}/result", json={**result, "CuryRefundAmt": "0"}), 422,
                   "ARDoc", "CuryRefundAmt")
    await _refused(await api.post(f"{REQUESTS}/{asked}/result", json={**result, "CuryRefundAmt": 5.0}), 422,
                   "ARDoc", "CuryRefundAmt")
    await _refused(await api.post(f"{REQUESTS}/{asked}/result", json={"Outcome": "refunded"}), 422, "ARDoc",
                   "GatewayRefundId")
    await _refused(await api.post(f"{REQUESTS}/{asked}/result", json={"Outcome": "maybe"}), 422, "ARDoc", "Outcome")
    await _refused(await api.post(f"{REQUESTS}/{asked}/result", json={**result, "GatewayRefundId": "9" * 31}), 422,
                   "ARDoc", "GatewayRefundId")
    await _refused(await api.post(f"{REQUESTS}/{asked}/result", json={**result, "Colour": "red"}), 400, "ARDoc",
                   "Colour")
    await _refused(await api.post(f"{REQUESTS}/{asked}/result", json={**result, "Message": "card 4111111111111111"}),
                   422, "ARDoc", "Message")
    assert state.counts() == before
    await _ok(await api.post(f"{REQUESTS}/{asked}/result", json=result))
    error = await _refused(await api.post(f"{REQUESTS}/{asked}/result", json={"Outcome": "declined"}), 422, "ARDoc",
                           "User6")
    assert error["code"] == "RefundResultRecorded"


async def test_refund_requests_page_by_refnbr(api: httpx.AsyncClient) -> None:
    await _customer(api)
    asked = [await _request(api, f"{n}.00") for n in range(1, 6)]
    first = await _ok(await api.get(f"{REQUESTS}?$top=2"))
    assert [r["RefNbr"] for r in first["value"]] == asked[:2] and first["NextAfter"] == asked[1]
    rest = await _ok(await api.get(f"{REQUESTS}?$top=3&After={first['NextAfter']}"))
    assert [r["RefNbr"] for r in rest["value"]] == asked[2:] and rest["NextAfter"] == asked[4]
    assert (await _ok(await api.get(f"{REQUESTS}?$top=3&After={asked[4]}")))["value"] == []


async def test_posted_payments_lists_gateway_money_only(api: httpx.AsyncClient) -> None:
    await _customer(api)
    _, _, kept = await _paid(api, "50.00", "7000000001")
    _, _, voided = await _paid(api, "20.00", "7000000002")
    await _ok(await api.post(f"{DOCS}/PA/{voided}/reverse", json={}))
    await _ok(await api.post(DOCS, json={"CustId": "C1", "DocType": "PA", "CuryOrigDocAmt": "9.00"}))  # no gateway id
    await _ok(await api.post(DOCS, json={"CustId": "C1", "DocType": "PA", "CuryOrigDocAmt": "8.00", "User1": "7003",
                                         "Release": False}))  # not released
    pp = await _ok(await api.post(DOCS, json={"CustId": "C1", "DocType": "PP", "CuryOrigDocAmt": "7.00",
                                              "User1": "7000000004"}))
    cm = await _ok(await api.post(DOCS, json=_cm("6.00")))
    payout = await _ok(await api.post(DOCS, json=_dm("6.00", User1="8000000001", User5="RFNDPAYOUT", Credits=[
        {"AdjgDocType": "CM", "AdjgRefNbr": cm["RefNbr"], "CuryAdjgAmt": "6.00"}])))
    await _ok(await api.post(DOCS, json=_dm("5.00", "1060", User1="CB-1")))  # a chargeback: not a refund
    await _ok(await api.post(DOCS, json={"CustId": "C1", "DocType": "PA", "CuryOrigDocAmt": "4.00",
                                         "User1": "7000000005", "DocDate": "03/15/2026"}))  # the next day
    page = await _ok(await api.get(f"{POSTED}?DocDateFrom=03/14/2026&DocDateTo=03/15/2026"))
    rows = {(r["DocType"], r["RefNbr"]): r for r in page["value"]}
    assert set(rows) == {("PA", kept), ("PP", pp["RefNbr"]), ("DM", payout["RefNbr"])}
    assert page["NextAfter"] is None
    assert rows[("PA", kept)]["User1"] == "7000000001" and rows[("PA", kept)]["CustOrdNbr"] == "WEB-1"
    assert rows[("DM", payout["RefNbr"])]["User1"] == "8000000001"
    assert rows[("DM", payout["RefNbr"])]["CuryOrigDocAmt"] == "6.00"
    next_day = await _ok(await api.get(f"{POSTED}?DocDateFrom=03/15/2026&DocDateTo=03/16/2026"))
    assert [r["User1"] for r in next_day["value"]] == ["7000000005"]


async def test_posted_payments_pages_with_a_cursor(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    requests = [{"id": str(n), "method": "POST", "url": DOCS, "body": {
        "CustId": "C1", "DocType": "PP", "CuryOrigDocAmt": "1.00", "User1": f"70000{n:05d}",
        "DocDate": f"03/{14 + n % 2}/2026"}} for n in range(25)]
    assert {a["status"] for a in (await _ok(await api.post("/api/v1/$batch", json={"requests": requests})))[
        "responses"]} == {201}
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        page = await _ok(await api.get(f"{POSTED}?DocDateFrom=03/14/2026&DocDateTo=03/16/2026&$top=7&After={after}"))
        seen += [r["User1"] for r in page["value"]]
        pages += 1
        if not page["NextAfter"]:
            break
        after = page["NextAfter"]
    assert sorted(seen) == sorted(f"70000{n:05d}" for n in range(25)) and len(set(seen)) == 25
    assert pages == 4
    plan = " ".join(str(r[3]) for r in state.store.all(
        "EXPLAIN QUERY PLAN " + POSTED_SQL, ("0060", "2026-03-14 00:00", "2026-03-16 00:00", "", "", "", 7)))
    assert "ARDoc_gateway" in plan and "TEMP B-TREE" not in plan  # the partial index, already in order
    plan = " ".join(str(r[3]) for r in state.store.all("EXPLAIN QUERY PLAN " + PENDING_SQL, ("0060", "", 10)))
    assert "ARDoc_refund" in plan and "TEMP B-TREE" not in plan


async def test_posted_payments_query_rules(api: httpx.AsyncClient) -> None:
    await _refused(await api.get(POSTED), 400, "ARDoc", "DocDateFrom")
    await _refused(await api.get(f"{POSTED}?DocDateFrom=03/14/2026"), 400, "ARDoc", "DocDateTo")
    await _refused(await api.get(f"{POSTED}?DocDateFrom=2026-03-14&DocDateTo=03/15/2026"), 422, "ARDoc",
                   "DocDateFrom")
    await _refused(await api.get(f"{POSTED}?DocDateFrom=03/14/2026&DocDateTo=03/15/2026&$top=5001"), 400, "ARDoc",
                   "$top")
    await _refused(await api.get(f"{POSTED}?DocDateFrom=03/14/2026&DocDateTo=03/15/2026&After=x"), 400, "ARDoc",
                   "After")
