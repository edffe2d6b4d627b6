"""Credit and debit memos, applications of existing credits, and NS reversals as the sandbox enforces them:
each refusal names its table and field and writes nothing; the ARAdjust invariants hold after each."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState

from .test_sl_sandbox_rules import _customer, _invoice, _ok, _order, _refused

DOCS = "/api/v1/ar/documents"


async def _paid(api: httpx.AsyncClient, price: str = "50.00", txn: str = "7000000001") -> tuple[str, str, str]:
    """(OrdNbr, invoice RefNbr, payment RefNbr): an order invoiced and paid in full by a PA."""
    ord_nbr = await _order(api, price=price)
    ref = await _invoice(api, ord_nbr)
    pa = await _ok(await api.post(DOCS, json={
        "CustId": "C1", "DocType": "PA", "CuryOrigDocAmt": price, "User1": txn,
        "Applications": [{"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": price}]}))
    return ord_nbr, ref, pa["RefNbr"]


async def _doc(api: httpx.AsyncClient, doc_type: str, ref: str) -> dict[str, Any]:
    return await _ok(await api.get(f"{DOCS}/{doc_type}/{ref}"))  # type: ignore[no-any-return]


async def _gl(api: httpx.AsyncClient, bat_nbr: str, module: str = "AR") -> set[tuple[str, str, str]]:
    batch = await _ok(await api.get(f"/api/v1/gl/batches/{bat_nbr}?Module={module}"))
    return {(t["Acct"], t["DrAmt"], t["CrAmt"]) for t in batch["Lines"]}


def _cm(amount: str, **extra: Any) -> dict[str, Any]:
    return {"CustId": "C1", "DocType": "CM", "CuryOrigDocAmt": amount,
            "Lines": [{"Acct": "4900", "CuryTranAmt": amount}], **extra}


def _dm(amount: str, acct: str = "2350", **extra: Any) -> dict[str, Any]:
    return {"CustId": "C1", "DocType": "DM", "CuryOrigDocAmt": amount,
            "Lines": [{"Acct": acct, "CuryTranAmt": amount}], **extra}


async def test_credit_memo_applied_to_an_invoice(api: httpx.AsyncClient) -> None:
    await _customer(api)
    ord_nbr = await _order(api, price="50.00")
    ref = await _invoice(api, ord_nbr)
    cm = await _ok(await api.post(DOCS, json=_cm("20.00", Applications=[
        {"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": "20.00"}])))
    assert (cm["DocBal"], cm["OpenDoc"], cm["OrdNbr"], cm["CustOrdNbr"]) == ("0.00", 0, ord_nbr, "WEB-1")
    assert cm["Adjustments"][0]["AdjgDocType"] == "CM" and cm["Adjustments"][0]["AdjdRefNbr"] == ref
    assert await _gl(api, cm["BatNbr"]) == {("4900", "20.00", "0.00"), ("1200", "0.00", "20.00")}
    assert (await _doc(api, "IN", ref))["DocBal"] == "30.00"
    order = await _ok(await api.get(f"/api/v1/salesorders/{ord_nbr}"))
    assert order["BalDue"] == "30.00"  # a credit applied to the order's invoice lowers what is due on it


async def test_credit_memo_application_rules(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    await _customer(api, "C2")
    _, paid_ref, _ = await _paid(api)
    ref = await _invoice(api, await _order(api, price="40.00"))
    before = state.counts()
    error = await _refused(await api.post(DOCS, json=_cm("40.01", Applications=[
        {"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": "40.01"}])), 422, "ARAdjust",
        "Applications[0].CuryAdjgAmt")
    assert error["code"] == "ApplicationExceedsBalance" and "40.00" in error["message"]
    error = await _refused(await api.post(DOCS, json=_cm("10.00", Applications=[
        {"AdjdDocType": "IN", "AdjdRefNbr": paid_ref, "CuryAdjgAmt": "10.00"}])), 422, "ARAdjust",
        "Applications[0].AdjdRefNbr")
    assert error["code"] == "ClosedDocument"
    error = await _refused(await api.post(DOCS, json=_cm("10.00", Applications=[
        {"AdjdDocType": "IN", "AdjdRefNbr": "999999", "CuryAdjgAmt": "10.00"}])), 422, "ARAdjust",
        "Applications[0].AdjdRefNbr")
    assert error["code"] == "UnknownDocument"
    await _refused(await api.post(DOCS, json=_cm("10.00", CustId="C2", Applications=[
        {"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": "10.00"}])), 422, "ARAdjust",
        "Applications[0].AdjdRefNbr")
    error = await _refused(await api.post(DOCS, json=_cm("5.00", Applications=[
        {"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": "6.00"}])), 422, "ARAdjust", "Applications")
    assert error["code"] == "ApplicationExceedsPayment"
    await _refused(await api.post(DOCS, json=_cm("5.00", Applications=[
        {"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": "-5.00"}])), 422, "ARAdjust",
        "Applications[0].CuryAdjgAmt")
    await _refused(await api.post(DOCS, json=_cm("5.00", OrdNbr="SO999999")), 422, "ARDoc", "OrdNbr")
    await _refused(await api.post(DOCS, json=_cm("5.00", Lines=[{"Acct": "1999", "CuryTranAmt": "5.00"}])), 422,
                   "ARTran", "Lines[0].Acct")
    await _refused(await api.post(DOCS, json=_cm("5.00", Lines=[{"Acct": "4900", "CuryTranAmt": "4.00"}])), 422,
                   "ARDoc", "CuryOrigDocAmt")
    assert state.counts() == before


async def test_debit_memo_paid_by_an_existing_credit(api: httpx.AsyncClient) -> None:
    """The payout of a card refund: CM (returns) then DM (refund liability) paid by the CM in an 08.030 batch
    that moves no GL (Status C); the customer is back to zero and the net GL is Dr returns / Cr liability."""
    await _customer(api)
    ord_nbr, _, _ = await _paid(api)
    cm = await _ok(await api.post(DOCS, json=_cm("20.00", OrdNbr=ord_nbr)))
    assert (cm["DocBal"], cm["OpenDoc"]) == ("20.00", 1)
    dm = await _ok(await api.post(DOCS, json=_dm("20.00", User1="8000000001", User5="RFNDPAYOUT", Credits=[
        {"AdjgDocType": "CM", "AdjgRefNbr": cm["RefNbr"], "CuryAdjgAmt": "20.00"}])))
    assert (dm["DocBal"], dm["OpenDoc"], dm["OrdNbr"], dm["CustOrdNbr"]) == ("0.00", 0, ord_nbr, "WEB-1")
    adjust = [a for a in dm["Adjustments"] if a["AdjdDocType"] == "DM"]
    assert len(adjust) == 1 and (adjust[0]["AdjgDocType"], adjust[0]["AdjgRefNbr"]) == ("CM", cm["RefNbr"])
    application = await _ok(await api.get(f"/api/v1/gl/batches/{adjust[0]['AdjBatNbr']}?Module=AR"))
    assert (application["Status"], application["EditScrnNbr"], application["CrTot"]) == ("C", "08030", "20.00")
    assert application["Lines"] == []
    cm_after = await _doc(api, "CM", cm["RefNbr"])
    assert (cm_after["DocBal"], cm_after["OpenDoc"], cm_after["ApplAmt"]) == ("0.00", 0, "20.00")
    assert await _gl(api, cm["BatNbr"]) == {("4900", "20.00", "0.00"), ("1200", "0.00", "20.00")}
    assert await _gl(api, dm["BatNbr"]) == {("1200", "20.00", "0.00"), ("2350", "0.00", "20.00")}
    customer = await _ok(await api.get("/api/v1/customers/C1"))
    assert customer["Balances"]["CurrBal"] == "0.00"
    order = await _ok(await api.get(f"/api/v1/salesorders/{ord_nbr}"))
    assert order["BalDue"] == "0.00"  # a debit memo never touches the order's balance


async def test_credit_rules(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    await _customer(api, "C2")
    cm = await _ok(await api.post(DOCS, json=_cm("20.00")))
    other = await _ok(await api.post(DOCS, json=_cm("5.00", CustId="C2")))
    ref = await _invoice(api, await _order(api, price="40.00"))
    before = state.counts()

    def credit(ref_nbr: str, amount: str, doc_type: str = "CM") -> list[dict[str, str]]:
        return [{"AdjgDocType": doc_type, "AdjgRefNbr": ref_nbr, "CuryAdjgAmt": amount}]

    error = await _refused(await api.post(DOCS, json=_dm("20.01", Credits=credit(cm["RefNbr"], "20.01"))), 422,
                           "ARAdjust", "Credits[0].CuryAdjgAmt")
    assert error["code"] == "ApplicationExceedsBalance"
    error = await _refused(await api.post(DOCS, json=_dm("10.00", Credits=credit(cm["RefNbr"], "10.01"))), 422,
                           "ARAdjust", "Credits")
    assert error["code"] == "ApplicationExceedsPayment"
    await _refused(await api.post(DOCS, json=_dm("5.00", Credits=credit(other["RefNbr"], "5.00"))), 422,
                   "ARAdjust", "Credits[0].AdjgRefNbr")
    await _refused(await api.post(DOCS, json=_dm("5.00", Credits=credit("999999", "5.00"))), 422, "ARAdjust",
                   "Credits[0].AdjgRefNbr")
    await _refused(await api.post(DOCS, json=_dm("5.00", Credits=credit(ref, "5.00", "IN"))), 422, "ARAdjust",
                   "Credits[0].AdjgDocType")
    await _refused(await api.post(DOCS, json=_dm("5.00", Release=False, Credits=credit(cm["RefNbr"], "5.00"))),
                   422, "ARDoc", "Credits")
    await _refused(await api.post(DOCS, json=_cm("5.00", Credits=credit(cm["RefNbr"], "5.00"))), 422, "ARDoc",
                   "Credits")
    assert state.counts() == before
    # a closed credit cannot pay anything
    await _ok(await api.post(DOCS, json=_dm("20.00", Credits=credit(cm["RefNbr"], "20.00"))))
    error = await _refused(await api.post(DOCS, json=_dm("1.00", Credits=credit(cm["RefNbr"], "1.00"))), 422,
                           "ARAdjust", "Credits[0].AdjgRefNbr")
    assert error["code"] == "ClosedDocument"


async def test_card_roles(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    ref = await _invoice(api, await _order(api))
    before = state.counts()
    await _refused(await api.post(DOCS, json=_dm("5.00", User5="CARDRFND")), 422, "ARDoc", "User5")
    await _refused(await api.post(DOCS, json=_cm("5.00", User5="RFNDPAYOUT")), 422, "ARDoc", "User5")
    await _refused(await api.post(DOCS, json=_dm("5.00", User5="RFNDPAYOUT")), 422, "ARDoc", "User1")
    await _refused(await api.post(DOCS, json=_cm("5.00", User5="CARDRFND", User6="REFUNDED")), 422, "ARDoc",
                   "User6")
    await _refused(await api.post(DOCS, json=_cm("5.00", User5="CARDRFND", User1="8000")), 422, "ARDoc", "User1")
    await _refused(await api.post(DOCS, json=_cm("5.00", User5="CARDRFND", Applications=[
        {"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": "5.00"}])), 422, "ARDoc", "Applications")
    assert state.counts() == before


async def test_nsf_reversal_of_an_applied_payment(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    ord_nbr, ref, pa = await _paid(api)
    ns = await _ok(await api.post(f"{DOCS}/PA/{pa}/reverse", json={"DocDesc": "Capture voided", "User1": "V-1",
                                                                    "Note": "voided before settlement"},
                                  headers={"Idempotency-Key": "void:1"}))
    assert (ns["DocType"], ns["RefNbr"], ns["Rlsed"], ns["DocBal"], ns["OpenDoc"]) == ("NS", pa, 1, "0.00", 0)
    assert (ns["S4Future12"], ns["S4Future02"], ns["OrdNbr"], ns["Note"]) == ("PA", pa, ord_nbr,
                                                                             "voided before settlement")
    batch = await _ok(await api.get(f"/api/v1/gl/batches/{ns['BatNbr']}?Module=AR"))
    assert (batch["Status"], batch["EditScrnNbr"], batch["CrTot"]) == ("U", "08240", "50.00")
    assert await _gl(api, ns["BatNbr"]) == {("1200", "50.00", "0.00"), ("1050", "0.00", "50.00")}
    invoice = await _doc(api, "IN", ref)
    assert (invoice["DocBal"], invoice["OpenDoc"], invoice["PerClosed"]) == ("50.00", 1, "")
    payment = await _doc(api, "PA", pa)
    assert (payment["DocBal"], payment["OpenDoc"]) == ("0.00", 0)
    assert (payment["S4Future12"], payment["S4Future02"], payment["S4Future11"]) == ("NS", pa, ns["BatNbr"])
    rows = (await _ok(await api.get(f"/api/v1/ar/adjustments?AdjgRefNbr={pa}&AdjgDocType=PA")))["value"]
    amounts = sorted((r["AdjdDocType"], r["AdjAmt"], r["S4Future12"]) for r in rows)
    assert amounts == [("IN", "-50.00", "NS"), ("IN", "50.00", "NS"), ("NS", "50.00", "")]
    # CuryOrigDocAmt - SUM(CuryAdjgAmt) = CuryDocBal on the payment, and the same on the invoice's side
    assert Decimal(payment["CuryOrigDocAmt"]) - sum(Decimal(r["CuryAdjgAmt"]) for r in rows) == 0
    order = await _ok(await api.get(f"/api/v1/salesorders/{ord_nbr}"))
    assert (order["TotPmt"], order["BalDue"]) == ("0.00", "50.00")
    customer = await _ok(await api.get("/api/v1/customers/C1"))
    assert customer["Balances"]["CurrBal"] == "50.00"
    # the same key again finds the NS; another key is refused: a payment is reversed once
    again = await api.post(f"{DOCS}/PA/{pa}/reverse", json={}, headers={"Idempotency-Key": "void:1"})
    assert again.status_code == 409 and again.json()["error"]["existing"] == {"table": "ARDoc", "id": f"NS:{pa}"}
    before = state.counts()
    error = await _refused(await api.post(f"{DOCS}/PA/{pa}/reverse", json={}), 422, "ARDoc", "S4Future12")
    assert error["code"] == "AlreadyReversed"
    assert state.counts() == before


async def test_nsf_reversal_rules(api: httpx.AsyncClient, state: SandboxState) -> None:
    await _customer(api)
    _, ref, pa = await _paid(api)
    held = await _ok(await api.post(DOCS, json={"CustId": "C1", "DocType": "PA", "CuryOrigDocAmt": "5.00",
                                                "Release": False}))
    before = state.counts()
    await _refused(await api.post(f"{DOCS}/IN/{ref}/reverse", json={}), 422, "ARDoc", "DocType")
    error = await _refused(await api.post(f"{DOCS}/PA/{held['RefNbr']}/reverse", json={}), 422, "ARDoc", "Rlsed")
    assert error["code"] == "NotReleased"
    await _refused(await api.post(f"{DOCS}/PA/999999/reverse", json={}), 404, "ARDoc", None)
    error = await _refused(await api.post(f"{DOCS}/PA/{pa}/reverse", json={"PerPost": "202602"}), 422, "ARDoc",
                           "PerPost")
    assert error["code"] == "ClosedPeriod"
    await _refused(await api.post(f"{DOCS}/PA/{pa}/reverse", json={"CuryOrigDocAmt": "1.00"}), 422, "ARDoc",
                   "CuryOrigDocAmt")
    await _refused(await api.post(DOCS, json={"CustId": "C1", "DocType": "NS", "CuryOrigDocAmt": "1.00"}), 422,
                   "ARDoc", "DocType")
    assert state.counts() == before


async def test_nsf_reversal_of_prepayments(api: httpx.AsyncClient) -> None:
    """An unapplied PP comes back off the prepayment account; one already applied to the invoice re-opens it."""
    await _customer(api)
    open_order = await _order(api, price="30.00")
    pp = await _ok(await api.post(DOCS, json={"CustId": "C1", "DocType": "PP", "CuryOrigDocAmt": "30.00",
                                              "OrdNbr": open_order, "User1": "7000000009"}))
    ns = await _ok(await api.post(f"{DOCS}/PP/{pp['RefNbr']}/reverse", json={}))
    assert await _gl(api, ns["BatNbr"]) == {("2300", "30.00", "0.00"), ("1050", "0.00", "30.00")}
    order = await _ok(await api.get(f"/api/v1/salesorders/{open_order}"))
    assert (order["TotPmt"], order["BalDue"]) == ("0.00", "30.00")
    customer = await _ok(await api.get("/api/v1/customers/C1"))
    assert (customer["Balances"]["CurrBal"], customer["Balances"]["TotPrePay"]) == ("0.00", "0.00")

    invoiced = await _order(api, price="25.00")
    pp = await _ok(await api.post(DOCS, json={"CustId": "C1", "DocType": "PP", "CuryOrigDocAmt": "25.00",
                                              "OrdNbr": invoiced}))
    ref = await _invoice(api, invoiced)
    assert (await _doc(api, "IN", ref))["DocBal"] == "0.00"
    ns = await _ok(await api.post(f"{DOCS}/PP/{pp['RefNbr']}/reverse", json={}))
    assert await _gl(api, ns["BatNbr"]) == {("1200", "25.00", "0.00"), ("1050", "0.00", "25.00")}
    assert (await _doc(api, "IN", ref))["DocBal"] == "25.00"
    customer = await _ok(await api.get("/api/v1/customers/C1"))
    assert (customer["Balances"]["CurrBal"], customer["Balances"]["TotPrePay"]) == ("25.00", "0.00")
