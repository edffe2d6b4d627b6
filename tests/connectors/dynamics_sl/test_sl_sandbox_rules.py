"""SL's rules as the sandbox enforces them: each refusal names its table and field; nothing half-written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


async def _refused(response: httpx.Response, status: int, table: str | None, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["table"], error["field"]) == (table, field), error
    assert error["message"]
    return error  # type: ignore[no-any-return]


async def _customer(api: httpx.AsyncClient, cust_id: str = "C1", **extra: Any) -> Any:
    return await _ok(await api.post("/api/v1/customers", json={"CustId": cust_id, "Name": "Ann", **extra}))


async def _order(api: httpx.AsyncClient, cust_id: str = "C1", price: str = "50.00") -> str:
    order = await _ok(await api.post("/api/v1/salesorders", json={
        "CustID": cust_id, "CustOrdNbr": "WEB-1", "Lines": [{"InvtID": "SKU", "QtyOrd": "1", "SlsPrice": price}]}))
    return str(order["OrdNbr"])


async def _invoice(api: httpx.AsyncClient, ord_nbr: str) -> str:
    return str((await _ok(await api.post(f"/api/v1/salesorders/{ord_nbr}/invoice", json={})))["RefNbr"])


async def test_char_lengths_are_enforced(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _refused(await api.post("/api/v1/customers", json={"CustId": "C" * 16, "Name": "x"}), 422, "Customer",
                   "CustId")
    error = await _refused(await api.post("/api/v1/customers", json={"CustId": "C1", "Name": "x" * 61}), 422,
                           "Customer", "Name")
    assert error["code"] == "FieldTooLong"
    assert state.counts()["customers"] == 0


async def test_required_unknown_and_reserved_fields(api: httpx.AsyncClient) -> None:
    await _refused(await api.post("/api/v1/customers", json={"CustId": "C1"}), 422, "Customer", "Name")
    await _refused(await api.post("/api/v1/customers", json={"CustId": "C1", "Name": "A", "Colour": "red"}), 400,
                   "Customer", "Colour")
    await _refused(await api.post("/api/v1/customers", json={"CustId": "C1", "Name": "A", "User2": "x"}), 422,
                   "Customer", "User2")


async def test_card_numbers_are_refused_anywhere(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _refused(await api.post("/api/v1/customers", json={"CustId": "C1", "Name": "A", "Phone": "4111 1111 1111 1111"}),
                   422, "Customer", "Phone")
    await _refused(await api.post("/api/v1/customers", json={"CustId": "C1", "Name": "A", "CardNbr": "XXXX1111"}),
                   422, "Customer", "CardNbr")
    await _customer(api)
    await _refused(await api.post("/api/v1/salesorders", json={
        "CustID": "C1", "Lines": [{"InvtID": "SKU", "QtyOrd": "1", "SlsPrice": "1.00", "Descr": "5555555555554444"}]}),
        422, "SOHeader", "Lines[0].Descr")
    assert state.counts()["orders"] == 0


async def test_customer_must_exist_and_be_active(api: httpx.AsyncClient) -> None:
    await _refused(await api.post("/api/v1/salesorders", json={"CustID": "NOPE", "Lines": [{"InvtID": "S", "QtyOrd": "1"}]}),
                   422, "SOHeader", "CustID")
    await _customer(api, "C2", Status="I")
    error = await _refused(await api.post("/api/v1/ar/documents", json={"CustId": "C2", "DocType": "IN",
                                                                          "CuryOrigDocAmt": "5.00"}),
                           422, "ARDoc", "CustId")
    assert error["code"] == "InactiveCustomer"


async def test_amounts_are_positive_decimal_strings(api: httpx.AsyncClient) -> None:
    await _customer(api)
    for amount, code in (("-5.00", "NonPositiveAmount"), ("0", "NonPositiveAmount"), (5.5, "InvalidValue"),
                         ("1.005", "InvalidValue")):
        error = await _refused(await api.post("/api/v1/ar/documents", json={
            "CustId": "C1", "DocType": "IN", "CuryOrigDocAmt": amount}), 422, "ARDoc", "CuryOrigDocAmt")
        assert error["code"] == code


async def test_doctype_currency_and_accounts(api: httpx.AsyncClient) -> None:
    await _customer(api)
    doc = {"CustId": "C1", "CuryOrigDocAmt": "5.00"}
    await _refused(await api.post("/api/v1/ar/documents", json={**doc, "DocType": "ZZ"}), 422, "ARDoc", "DocType")
    await _refused(await api.post("/api/v1/ar/documents", json={**doc, "DocType": "IN", "CuryId": "XXX"}), 422,
                   "ARDoc", "CuryId")
    await _refused(await api.post("/api/v1/ar/documents", json={**doc, "DocType": "PA", "BankAcct": "9999"}), 422,
                   "ARDoc", "BankAcct")
    error = await _refused(await api.post("/api/v1/ar/documents", json={**doc, "DocType": "PA", "BankAcct": "1999"}),
                           422, "ARDoc", "BankAcct")
    assert error["code"] == "InactiveAccount"
    await _refused(await api.post("/api/v1/ar/documents", json={**doc, "DocType": "PA", "BankSub": "999999"}), 422,
                   "ARDoc", "BankSub")


async def test_periods_format_and_closed(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    doc = {"CustId": "C1", "DocType": "IN", "CuryOrigDocAmt": "5.00"}
    for bad in ("2026-3", "202600", "202614"):
        error = await _refused(await api.post("/api/v1/ar/documents", json={**doc, "PerPost": bad}), 422, "ARDoc",
                               "PerPost")
        assert error["code"] == "InvalidPeriod"
    await _refused(await api.post("/api/v1/ar/documents", json={**doc, "PerPost": "202613"}), 422, "ARDoc", "PerPost")
    error = await _refused(await api.post("/api/v1/ar/documents", json={**doc, "PerPost": "202602"}), 422, "ARDoc",
                           "PerPost")
    assert error["code"] == "ClosedPeriod"
    state.set_periods(ar="202604")
    error = await _refused(await api.post("/api/v1/ar/documents", json={**doc, "PerPost": "202603"}), 422, "ARDoc",
                           "PerPost")
    assert error["code"] == "ClosedPeriod"


async def test_invoice_release_writes_batch_gl_and_balances(api: httpx.AsyncClient) -> None:
    await _customer(api)
    ord_nbr = await _order(api, price="50.00")
    assert ord_nbr == "SO000001"
    ref = await _invoice(api, ord_nbr)
    doc = await _ok(await api.get(f"/api/v1/ar/documents/IN/{ref}"))
    assert (doc["Rlsed"], doc["OpenDoc"], doc["DocBal"], doc["OrdNbr"], doc["PerClosed"]) == (1, 1, "50.00", ord_nbr, "")
    batch = await _ok(await api.get(f"/api/v1/gl/batches/{doc['BatNbr']}?Module=AR"))
    assert (batch["Status"], batch["JrnlType"], batch["EditScrnNbr"], batch["CrTot"]) == ("U", "OM", "08010", "50.00")
    lines = {(t["Acct"], t["DrAmt"], t["CrAmt"], t["Posted"]) for t in batch["Lines"]}
    assert lines == {("1200", "50.00", "0.00", "U"), ("4000", "0.00", "50.00", "U")}
    order = await _ok(await api.get(f"/api/v1/salesorders/{ord_nbr}"))
    assert (order["InvcNbr"], order["Status"]) == (ref, "C")
    customer = await _ok(await api.get("/api/v1/customers/C1"))
    assert customer["Balances"]["CurrBal"] == "50.00"


async def test_payment_application_invariants(api: httpx.AsyncClient) -> None:
    await _customer(api)
    ord_nbr = await _order(api, price="50.00")
    ref = await _invoice(api, ord_nbr)
    pa = await _ok(await api.post("/api/v1/ar/documents", json={
        "CustId": "C1", "DocType": "PA", "CuryOrigDocAmt": "60.00",
        "Applications": [{"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": "50.00"}]}))
    assert (pa["DocBal"], pa["OpenDoc"]) == ("10.00", 1)  # the unapplied rest stays on the payment
    assert [t["DrCr"] for t in pa["Lines"]] == ["U"] and pa["Lines"][0]["CostType"] == "IN"
    adjustments = (await _ok(await api.get(f"/api/v1/ar/adjustments?AdjgRefNbr={pa['RefNbr']}")))["value"]
    applied = sum(float(a["AdjAmt"]) for a in adjustments)
    assert float(pa["OrigDocAmt"]) - applied == float(pa["DocBal"])  # OrigDocAmt - SUM(AdjAmt) = DocBal
    invoice = await _ok(await api.get(f"/api/v1/ar/documents/IN/{ref}"))
    assert (invoice["DocBal"], invoice["OpenDoc"], invoice["PerClosed"]) == ("0.00", 0, "202603")
    order = await _ok(await api.get(f"/api/v1/salesorders/{ord_nbr}"))
    assert (order["TotPmt"], order["BalDue"]) == ("50.00", "0.00")
    batch = await _ok(await api.get(f"/api/v1/gl/batches/{pa['BatNbr']}?Module=AR"))
    assert batch["EditScrnNbr"] == "08030"
    assert {(t["Acct"], t["DrAmt"], t["CrAmt"]) for t in batch["Lines"]} == {("1050", "60.00", "0.00"),
                                                                               ("1200", "0.00", "60.00")}


async def test_application_larger_than_either_balance_is_refused(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    ref = await _invoice(api, await _order(api, price="50.00"))
    before = state.counts()
    error = await _refused(await api.post("/api/v1/ar/documents", json={
        "CustId": "C1", "DocType": "PA", "CuryOrigDocAmt": "80.00",
        "Applications": [{"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": "50.01"}]}),
        422, "ARAdjust", "Applications[0].CuryAdjgAmt")
    assert error["code"] == "ApplicationExceedsBalance"
    error = await _refused(await api.post("/api/v1/ar/documents", json={
        "CustId": "C1", "DocType": "PA", "CuryOrigDocAmt": "20.00",
        "Applications": [{"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": "30.00"}]}),
        422, "ARAdjust", "Applications")
    assert error["code"] == "ApplicationExceedsPayment"
    assert state.counts() == before  # nothing half-written


async def test_prepayment_then_invoice_applies_it(api: httpx.AsyncClient) -> None:
    await _customer(api)
    ord_nbr = await _order(api, price="30.00")
    await _refused(await api.post("/api/v1/ar/documents", json={
        "CustId": "C1", "DocType": "PP", "CuryOrigDocAmt": "30.01", "OrdNbr": ord_nbr}), 422, "ARDoc", "CuryOrigDocAmt")
    pp = await _ok(await api.post("/api/v1/ar/documents", json={
        "CustId": "C1", "DocType": "PP", "CuryOrigDocAmt": "30.00", "OrdNbr": ord_nbr}))
    batch = await _ok(await api.get(f"/api/v1/gl/batches/{pp['BatNbr']}?Module=AR"))
    assert batch["EditScrnNbr"] == "08050"
    assert {(t["Acct"], t["DrAmt"], t["CrAmt"]) for t in batch["Lines"]} == {("1050", "30.00", "0.00"),
                                                                               ("2300", "0.00", "30.00")}
    assert (await _ok(await api.get(f"/api/v1/salesorders/{ord_nbr}")))["BalDue"] == "0.00"
    ref = await _invoice(api, ord_nbr)
    invoice = await _ok(await api.get(f"/api/v1/ar/documents/IN/{ref}"))
    assert invoice["DocBal"] == "0.00" and invoice["Adjustments"][0]["AdjgDocType"] == "PP"
    prepayment = await _ok(await api.get(f"/api/v1/ar/documents/PP/{pp['RefNbr']}"))
    assert (prepayment["DocBal"], prepayment["OpenDoc"]) == ("0.00", 0)
    customer = await _ok(await api.get("/api/v1/customers/C1"))
    assert (customer["Balances"]["CurrBal"], customer["Balances"]["TotPrePay"]) == ("0.00", "0.00")


async def test_order_hold_release_cancel_status_machine(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    ord_nbr = await _order(api)
    held = await _ok(await api.post(f"/api/v1/salesorders/{ord_nbr}/hold", json={"reason": "fraud review"}))
    assert (held["AdminHold"], held["Note"]) == (1, "fraud review")
    assert state.counts()["orders_on_hold"] == 1
    await _refused(await api.post(f"/api/v1/salesorders/{ord_nbr}/invoice", json={}), 422, "SOHeader", "AdminHold")
    assert (await _ok(await api.post(f"/api/v1/salesorders/{ord_nbr}/release")))["AdminHold"] == 0
    cancelled = await _ok(await api.post(f"/api/v1/salesorders/{ord_nbr}/cancel"))
    assert (cancelled["Status"], cancelled["Cancelled"], cancelled["CancelDate"]) == ("C", 1, "03/14/2026")
    assert {line["Status"] for line in cancelled["Lines"]} == {"C"}
    await _refused(await api.post(f"/api/v1/salesorders/{ord_nbr}/hold", json={}), 422, "SOHeader", "Status")
    invoiced = await _order(api)
    await _invoice(api, invoiced)
    await _refused(await api.post(f"/api/v1/salesorders/{invoiced}/cancel"), 422, "SOHeader", "Status")


async def test_idempotency_key_is_stored_and_refuses_a_second_record(api: httpx.AsyncClient) -> None:
    await _customer(api)
    body = {"CustID": "C1", "Lines": [{"InvtID": "SKU", "QtyOrd": "1", "SlsPrice": "1.00"}]}
    first = await _ok(await api.post("/api/v1/salesorders", json=body, headers={"Idempotency-Key": "shop:o:1"}))
    second = await api.post("/api/v1/salesorders", json=body, headers={"Idempotency-Key": "shop:o:1"})
    assert second.status_code == 409
    assert second.json()["error"]["existing"] == {"table": "SOHeader", "id": first["OrdNbr"]}
    holder = await _ok(await api.get("/api/v1/keys/shop%3Ao%3A1"))
    assert (holder["Table"], holder["Id"], holder["Field"]) == ("SOHeader", first["OrdNbr"], "User2")
    assert first["User2"] == holder["Digest"]
    assert (await api.get("/api/v1/keys/unknown")).status_code == 404


async def test_gl_batch_balance_release_and_post(api: httpx.AsyncClient) -> None:
    lines = [{"Acct": "6500", "Sub": "000000", "DrAmt": "2.90"}, {"Acct": "1050", "Sub": "000000", "CrAmt": "2.90"}]
    error = await _refused(await api.post("/api/v1/gl/batches", json={"Lines": [lines[0], {**lines[1], "CrAmt": "2.89"}]}),
                           422, "Batch", "CrTot")
    assert error["code"] == "OutOfBalance"
    await _refused(await api.post("/api/v1/gl/batches", json={"Lines": [lines[0], {**lines[1], "DrAmt": "1.00"}]}),
                   422, "GLTran", "Lines[1].DrAmt")
    held = await _ok(await api.post("/api/v1/gl/batches", json={"Lines": lines, "Hold": True}))
    assert held["Status"] == "H"
    await _refused(await api.post(f"/api/v1/gl/batches/{held['BatNbr']}/post"), 422, "Batch", "Status")
    kept = await _ok(await api.post("/api/v1/gl/batches", json={"Lines": lines, "Release": False}))
    assert kept["Status"] == "B"
    assert (await _ok(await api.post(f"/api/v1/gl/batches/{kept['BatNbr']}/release")))["Status"] == "U"
    posted = await _ok(await api.post(f"/api/v1/gl/batches/{kept['BatNbr']}/post"))
    assert posted["Status"] == "P" and {t["Posted"] for t in posted["Lines"]} == {"P"}


async def test_posting_refuses_a_batch_whose_lines_do_not_match_crtot(api: httpx.AsyncClient,
                                                                       state: SandboxState) -> None:
    lines = [{"Acct": "6500", "Sub": "000000", "DrAmt": "2.90"}, {"Acct": "1050", "Sub": "000000", "CrAmt": "2.90"}]
    batch = await _ok(await api.post("/api/v1/gl/batches", json={"Lines": lines}))
    state.store.conn.execute("UPDATE GLTran SET DrAmt = 3.0 WHERE BatNbr = ? AND LineNbr = 1", (batch["BatNbr"],))
    result = await _ok(await api.post("/api/v1/gl/post"))
    assert result["Posted"] == [] and result["Failed"][0]["BatNbr"] == batch["BatNbr"]
    assert (await _ok(await api.get(f"/api/v1/gl/batches/{batch['BatNbr']}")))["Status"] == "U"


async def test_release_later_moves_b_to_u(api: httpx.AsyncClient) -> None:
    await _customer(api)
    doc = await _ok(await api.post("/api/v1/ar/documents", json={"CustId": "C1", "DocType": "DM",
                                                                 "CuryOrigDocAmt": "7.00", "Release": False}))
    assert (doc["Rlsed"], doc["DocBal"]) == (0, "7.00")
    batch = await _ok(await api.post(f"/api/v1/ar/batches/{doc['BatNbr']}/release"))
    assert batch["Status"] == "U"
    await _refused(await api.post(f"/api/v1/ar/batches/{doc['BatNbr']}/release"), 422, "Batch", "Status")
    assert (await _ok(await api.get(f"/api/v1/ar/documents/DM/{doc['RefNbr']}")))["Rlsed"] == 1


async def test_char_columns_are_right_trimmed_and_filters_work(api: httpx.AsyncClient) -> None:
    await _customer(api, "C1  ", EMailAddr="ann@example.com")
    found = (await _ok(await api.get("/api/v1/customers?EMailAddr=ann%40example.com")))["value"]
    assert [c["CustId"] for c in found] == ["C1"] and found[0]["Addr1"] == ""
    await _refused(await api.get("/api/v1/customers?Colour=red"), 400, "Customer", "Colour")


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/customers/C1/explode"])
async def test_unknown_routes(api: httpx.AsyncClient, path: str) -> None:
    assert (await api.get(path)).status_code == 404


async def test_the_store_itself_refuses_to_keep_a_card_number_under_the_guard(
    api: httpx.AsyncClient, state: SandboxState
) -> None:
    """The API refuses card numbers (above); the store's guard (on in tests) catches any path around it."""
    from ledgerlink.connectors.dynamics_sl.sandbox.store import GuardedConnection
    from ledgerlink.model import storage_guard

    assert isinstance(state.store.conn, GuardedConnection)
    await _customer(api)
    with pytest.raises(storage_guard.CardNumberStored, match="Customer") as info, state.store.transaction():
        state.store.conn.execute('UPDATE "Customer" SET "Phone" = ? WHERE "CustId" = ?',
                                 ("4111-1111-1111-1111", "C1"))
    assert "4111" not in str(info.value)
    storage_guard.clear_trips()
    assert (await _ok(await api.get("/api/v1/customers/C1")))["Phone"].strip() == ""
