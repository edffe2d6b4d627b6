"""Finance tasks (xLLTask), GL journals posted in one request, order payment statuses, and the seeded chart
of accounts (also for a sandbox file written by an older version)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState, create_app

from .conftest import NOW
from .test_sl_memo_rules import _paid
from .test_sl_sandbox_rules import _customer, _ok, _order, _refused

TASKS = "/api/v1/tasks"


async def test_tasks_upsert_by_key_and_close(api: httpx.AsyncClient, state: SandboxState) -> None:
    key = {"Idempotency-Key": "recon:2026-03-14:missing:7000000001"}
    created = await api.post(TASKS, json={"Subject": "Missing in SL", "Body": "Settled, never posted",
                                          "Category": "reconciliation", "Reference": "7000000001",
                                          "Amount": "12.50", "CuryId": "USD", "DueDate": "03/16/2026"}, headers=key)
    assert created.status_code == 201
    task = created.json()
    assert (task["TaskNbr"], task["Status"], task["Amount"], task["DueDate"], task["Body"]) == (
        "000001", "O", "12.50", "03/16/2026", "Settled, never posted")
    assert task["User2"] and task["Crtd_Prog"] == "LLTASK"
    holder = await _ok(await api.get("/api/v1/keys/recon%3A2026-03-14%3Amissing%3A7000000001"))
    assert (holder["Table"], holder["Id"]) == ("xLLTask", "000001")
    closed = await _ok(await api.patch(f"{TASKS}/000001", json={"Status": "C"}))
    assert (closed["Status"], closed["DateClosed"]) == ("C", "03/14/2026")
    updated = await api.post(TASKS, json={"Subject": "Missing in SL (still)", "Body": "Second run"}, headers=key)
    assert updated.status_code == 200
    task = updated.json()
    assert (task["TaskNbr"], task["Subject"], task["Body"], task["Status"]) == ("000001", "Missing in SL (still)",
                                                                               "Second run", "C")
    assert state.counts()["tasks"] == 1
    reopened = await _ok(await api.patch(f"{TASKS}/000001", json={"Status": "O"}))
    assert (reopened["Status"], reopened["DateClosed"]) == ("O", "01/01/1900")
    await _ok(await api.post(TASKS, json={"Subject": "Chargeback", "Category": "chargeback"},
                             headers={"Idempotency-Key": "cb:1"}))
    listed = (await _ok(await api.get(f"{TASKS}?Category=chargeback")))["value"]
    assert [t["Subject"] for t in listed] == ["Chargeback"] and listed[0]["Body"] is None
    assert [t["TaskNbr"] for t in (await _ok(await api.get(f"{TASKS}?Status=O")))["value"]] == ["000001", "000002"]


async def test_task_rules(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    await _ok(await api.post("/api/v1/salesorders", headers={"Idempotency-Key": "taken"}, json={
        "CustID": "C1", "Lines": [{"InvtID": "SKU", "QtyOrd": "1", "SlsPrice": "1.00"}]}))
    before = state.counts()
    await _refused(await api.post(TASKS, json={"Body": "no subject"}), 422, "xLLTask", "Subject")
    await _refused(await api.post(TASKS, json={"Subject": "x", "Status": "Z"}), 422, "xLLTask", "Status")
    await _refused(await api.post(TASKS, json={"Subject": "x" * 61}), 422, "xLLTask", "Subject")
    await _refused(await api.post(TASKS, json={"Subject": "x", "Amount": "1.5", "CuryId": "JPY"}), 422, "xLLTask",
                   "Amount")
    await _refused(await api.post(TASKS, json={"Subject": "x", "CuryId": "XXX"}), 422, "xLLTask", "CuryId")
    await _refused(await api.post(TASKS, json={"Subject": "x", "Body": "card 4111 1111 1111 1111"}), 422, "xLLTask",
                   "Body")
    await _refused(await api.post(TASKS, json={"Subject": "x", "NoteId": 1}), 422, "xLLTask", "NoteId")
    conflict = await api.post(TASKS, json={"Subject": "x"}, headers={"Idempotency-Key": "taken"})
    assert conflict.status_code == 409 and conflict.json()["error"]["existing"]["table"] == "SOHeader"
    await _refused(await api.patch(f"{TASKS}/000404", json={"Status": "C"}), 404, "xLLTask", None)
    assert state.counts() == before
    jpy = await _ok(await api.post(TASKS, json={"Subject": "x", "Amount": "-1500", "CuryId": "JPY"}))
    assert jpy["Amount"] == "-1500"


async def test_journal_posted_in_one_request(api: httpx.AsyncClient, state: SandboxState) -> None:
    lines = [{"Acct": "1010", "Sub": "000000", "DrAmt": "865.70"}, {"Acct": "2350", "Sub": "000000", "DrAmt": "30.00"},
             {"Acct": "6500", "Sub": "000000", "DrAmt": "29.30"}, {"Acct": "1060", "Sub": "000000", "DrAmt": "75.00"},
             {"Acct": "1050", "Sub": "000000", "CrAmt": "1000.00"}]
    batch = await _ok(await api.post("/api/v1/gl/batches", json={"Lines": lines, "Post": True, "CtrlTot": "1000.00",
                                                                 "Descr": "Settlement 42", "Note": "batch 42"},
                                     headers={"Idempotency-Key": "settlement:42"}))
    assert (batch["Status"], batch["Rlsed"], batch["CrTot"], batch["PerPost"]) == ("P", 1, "1000.00", "202603")
    assert {t["Posted"] for t in batch["Lines"]} == {"P"}
    history = {r["Acct"].strip(): r["PtdBal02"] for r in state.store.all("SELECT Acct, PtdBal02 FROM AcctHist")}
    assert history == {"1010": 865.7, "2350": -30.0, "6500": 29.3, "1060": 75.0, "1050": -1000.0}
    again = await api.post("/api/v1/gl/batches", json={"Lines": lines, "Post": True},
                           headers={"Idempotency-Key": "settlement:42"})
    assert again.status_code == 409 and again.json()["error"]["existing"]["id"] == f"GL:{batch['BatNbr']}"
    before = state.counts()
    await _refused(await api.post("/api/v1/gl/batches", json={"Lines": lines, "Post": True, "Hold": True}), 422,
                   "Batch", "Post")
    await _refused(await api.post("/api/v1/gl/batches", json={"Lines": lines, "Post": True, "CtrlTot": "999.99"}),
                   422, "Batch", "CtrlTot")
    unbalanced = [*lines[:-1], {**lines[-1], "CrAmt": "999.99"}]
    await _refused(await api.post("/api/v1/gl/batches", json={"Lines": unbalanced, "Post": True}), 422, "Batch",
                   "CrTot")
    error = await _refused(await api.post("/api/v1/gl/batches", json={"Lines": [
        {**lines[0], "Acct": "1999"}, *lines[1:]], "Post": True}), 422, "GLTran", "Lines[0].Acct")
    assert error["code"] == "InactiveAccount"
    error = await _refused(await api.post("/api/v1/gl/batches", json={"Lines": [
        {**lines[0], "Acct": "9999"}, *lines[1:]], "Post": True}), 422, "GLTran", "Lines[0].Acct")
    assert error["code"] == "UnknownAccount"
    state.set_periods(gl="202604")
    error = await _refused(await api.post("/api/v1/gl/batches", json={"Lines": lines, "Post": True,
                                                                      "PerPost": "202603"}), 422, "Batch", "PerPost")
    assert error["code"] == "ClosedPeriod"
    assert state.counts() == before


async def test_order_payment_status(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    ord_nbr, _, _ = await _paid(api)
    url = f"/api/v1/salesorders/{ord_nbr}/payment-status"
    order = await _ok(await api.post(url, json={"Status": "PARTREFUND", "reason": "20.00 refunded"}))
    assert (order["User8"], order["User10"], order["Note"]) == ("PARTREFUND", "03/14/2026",
                                                                "03/14/2026 payment status PARTREFUND: 20.00 refunded")
    again = await _ok(await api.post(url, json={"Status": "PARTREFUND", "reason": "20.00 refunded"}))
    assert again["Note"] == order["Note"]
    order = await _ok(await api.post(url, json={"Status": "REFUNDED"}))
    assert order["Note"].splitlines() == ["03/14/2026 payment status PARTREFUND: 20.00 refunded",
                                          "03/14/2026 payment status REFUNDED"]
    assert (order["Status"], order["AdminHold"]) == ("C", 0)  # invoiced: the flag shows, the order stays closed
    await _refused(await api.post(url, json={"Status": "LOST"}), 422, "SOHeader", "User8")
    await _refused(await api.post("/api/v1/salesorders", json={
        "CustID": "C1", "User8": "REFUNDED", "Lines": [{"InvtID": "S", "QtyOrd": "1", "SlsPrice": "1.00"}]}), 422,
        "SOHeader", "User8")
    open_order = await _order(api)
    disputed = await _ok(await api.post(f"/api/v1/salesorders/{open_order}/payment-status",
                                        json={"Status": "DISPUTED", "reason": "chargeback"}))
    assert (disputed["User8"], disputed["AdminHold"]) == ("DISPUTED", 1)  # open: held so nobody ships it
    error = await _refused(await api.post(f"/api/v1/salesorders/{open_order}/payment-status",
                                          json={"Status": "PAID"}), 422, "SOHeader", "BalDue")
    assert error["code"] == "NotPaid"
    paid = await _ok(await api.post(url, json={"Status": "PAID", "reason": "dispute won"}))
    assert paid["User8"] == "PAID"


async def test_chargeback_accounts_are_seeded(api: httpx.AsyncClient) -> None:
    accounts = {a["Acct"]: (a["Descr"], a["AcctType"], a["Active"])
                for a in (await _ok(await api.get("/api/v1/accounts")))["value"]}
    assert accounts["1060"] == ("Chargeback Clearing", "1A", 1)
    assert accounts["6550"] == ("Chargeback Losses", "8E", 1)
    assert accounts["6560"] == ("Chargeback Fees", "8E", 1)
    for kept in ("1010", "1050", "2350", "4900", "6500", "6900"):
        assert accounts[kept][2] == 1


def test_an_older_sandbox_file_is_upgraded(tmp_path: Path) -> None:
    """A file written before money movement: no xLLTask, no S4Future columns, no chargeback accounts."""
    path = str(tmp_path / "sl.db")
    create_app({"database": path}, clock=lambda: NOW).state.sl.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE xLLTask")
        conn.execute("DROP INDEX ARDoc_gateway")
        conn.execute("ALTER TABLE ARDoc DROP COLUMN S4Future12")
        conn.execute("UPDATE Account SET Descr = 'Kept as it was' WHERE Acct = '1010'")
        conn.execute("DELETE FROM Account WHERE Acct IN ('1060', '6550', '6560')")
    state: SandboxState = create_app({"database": path}, clock=lambda: NOW).state.sl
    try:
        names = {r["name"] for r in state.store.all("SELECT name FROM sqlite_master")}
        assert {"xLLTask", "ARDoc_gateway", "ARDoc_refund"} <= names
        assert "S4Future12" in {r["name"] for r in state.store.all("PRAGMA table_info(ARDoc)")}
        accounts = {r["Acct"].strip(): r["Descr"].strip() for r in state.store.all("SELECT Acct, Descr FROM Account")}
        assert accounts["1060"] == "Chargeback Clearing" and accounts["1010"] == "Kept as it was"
        assert state.counts()["tasks"] == 0
    finally:
        state.close()
