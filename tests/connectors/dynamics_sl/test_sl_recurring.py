"""Recurring (RC) documents, 08.500 generation and the customer AR hold, through the connector and raw HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
import pytest

from ledgerlink.connectors.dynamics_sl import DynamicsSLBackOffice
from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState
from ledgerlink.connectors.kit.errors import Conflict, Rejected
from ledgerlink.model import (
    CashReceipt,
    CreditMemo,
    GLAccount,
    MemoLine,
    Money,
    Party,
    ReceiptKind,
    RenewalInvoice,
    SubscriptionStatus,
)
from ledgerlink.model.refs import ExternalRef

TOKEN = "A0000000000000000000000000004111"


async def customer(bo: DynamicsSLBackOffice, cust_id: str = "SUB001") -> str:
    party = await bo.create_party(Party(id=cust_id, name="Grace Hopper", email="grace@example.com"))
    assert party.id is not None
    return party.id


async def template(api: httpx.AsyncClient, cust_id: str, **fields: object) -> dict[str, object]:
    body = {"CustId": cust_id, "CuryOrigDocAmt": "29.90", "CuryId": "USD", "DocDate": "04/01/2026",
            "DocDesc": "Pro plan", "Cycle": 1, "NbrCycle": 12, "Note": f"Monthly plan\nToken: {TOKEN}", **fields}
    response = await api.post("/api/v1/ar/recurring", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def renewal(sub_ref: ExternalRef, cust_id: str, period: date, key: str = "k1") -> RenewalInvoice:
    return RenewalInvoice(key=f"test:renewal:{key}", subscription_id=sub_ref.key, customer_id=cust_id,
                          amount=Money.of("29.90", "USD"), period=period,
                          invoice_date=datetime(2026, 4, 1, tzinfo=UTC), description="Pro plan", template=sub_ref)


async def test_recurring_template_reads_as_a_subscription(back_office: DynamicsSLBackOffice,
                                                          api: httpx.AsyncClient) -> None:
    cust = await customer(back_office)
    rc = await template(api, cust)
    assert rc["DocType"] == "RC" and rc["DocClass"] == "R" and rc["Rlsed"] == 0 and rc["Status"] == "ACTIVE"
    [sub] = await back_office.recurring_invoices()
    assert sub.id == f"dynamics_sl:ardoc:RC:{rc['RefNbr']}" and sub.customer_id == cust
    assert sub.amount == Money.of("29.90", "USD") and sub.next_date == date(2026, 4, 1)
    assert sub.token is not None and sub.token.token_id == TOKEN and sub.remaining_cycles == 12
    assert sub.status is SubscriptionStatus.ACTIVE and sub.ref is not None


async def test_generate_makes_one_invoice_and_moves_the_template(back_office: DynamicsSLBackOffice,
                                                                 api: httpx.AsyncClient, state: SandboxState) -> None:
    cust = await customer(back_office)
    await template(api, cust)
    [sub] = await back_office.recurring_invoices()
    assert sub.ref is not None
    invoice = await back_office.create_renewal_invoice(renewal(sub.ref, cust, date(2026, 4, 1)))
    again = await back_office.create_renewal_invoice(renewal(sub.ref, cust, date(2026, 4, 1)))
    assert invoice == again and invoice.id.startswith("IN:")
    assert await back_office.open_balance(invoice) == Money.of("29.90", "USD")
    doc = (await api.get(f"/api/v1/ar/documents/IN/{invoice.id[3:]}")).json()
    assert doc["OrigDocNbr"] == sub.ref.id[3:] and doc["Rlsed"] == 1
    [moved] = await back_office.recurring_invoices()
    assert moved.next_date == date(2026, 5, 1) and moved.remaining_cycles == 11
    # the same cycle under another key: SL says it was generated already, naming the field
    with pytest.raises(Conflict) as refused:
        await back_office.create_renewal_invoice(renewal(sub.ref, cust, date(2026, 4, 1), key="other"))
    assert refused.value.field == "DocDate"
    assert state.counts()["ardocs"] == {"RC": 1, "IN": 1}


async def test_suspended_and_cancelled_templates_generate_nothing(back_office: DynamicsSLBackOffice,
                                                                  api: httpx.AsyncClient) -> None:
    cust = await customer(back_office)
    await template(api, cust)
    [sub] = await back_office.recurring_invoices()
    assert sub.ref is not None
    await back_office.set_subscription_status(sub.ref, SubscriptionStatus.SUSPENDED, reason="dunning ended")
    [suspended] = await back_office.recurring_invoices()
    assert suspended.status is SubscriptionStatus.SUSPENDED
    with pytest.raises(Rejected) as refused:
        await back_office.create_renewal_invoice(renewal(sub.ref, cust, date(2026, 4, 1)))
    assert refused.value.provider_code == "RecurringSuspended"
    await back_office.set_subscription_status(sub.ref, SubscriptionStatus.CANCELLED, reason="cancelled")
    [cancelled] = await back_office.recurring_invoices()
    assert cancelled.status is SubscriptionStatus.CANCELLED and cancelled.remaining_cycles == 0
    note = (await api.get(f"/api/v1/ar/recurring/{sub.ref.id[3:]}")).json()["Note"]
    assert "SUSPENDED: dunning ended" in note and "CANCELLED" in note


async def test_ar_hold_stops_invoices_not_payments(back_office: DynamicsSLBackOffice, api: httpx.AsyncClient) -> None:
    cust = await customer(back_office)
    await template(api, cust)
    [sub] = await back_office.recurring_invoices()
    assert sub.ref is not None
    invoice = await back_office.create_renewal_invoice(renewal(sub.ref, cust, date(2026, 4, 1)))
    await back_office.set_ar_hold(cust, reason="renewal declined: INSUFFICIENT_FUND")
    await back_office.set_ar_hold(cust, reason="again")  # idempotent
    held = (await api.get(f"/api/v1/customers/{cust}")).json()
    assert held["Status"] == "H" and held["Note"].count("AR hold") == 1
    with pytest.raises(Rejected) as refused:
        await back_office.create_renewal_invoice(renewal(sub.ref, cust, date(2026, 5, 1), key="k2"))
    assert refused.value.provider_code == "CustomerOnHold"
    receipt = await back_office.apply_receipt(CashReceipt(
        key="test:receipt:1", customer_id=cust, amount=Money.of("10.00", "USD"), kind=ReceiptKind.APPLIED,
        received_at=datetime(2026, 4, 2, tzinfo=UTC), apply_to=invoice,
        gateway_ref=ExternalRef(system="cybersource", kind="transaction", id="7000000000000000000001")))
    assert receipt.id.startswith("PA:")
    await back_office.issue_credit_memo(CreditMemo(
        key="test:cm:1", customer_id=cust, memo_date=datetime(2026, 4, 2, tzinfo=UTC), description="write-off",
        lines=(MemoLine(account=GLAccount(account="6900", sub="000000"), amount=Money.of("19.90", "USD")),),
        apply_to=invoice))
    assert await back_office.open_balance(invoice) == Money.of("0.00", "USD")
    await back_office.clear_ar_hold(cust, reason="paid")
    await back_office.clear_ar_hold(cust, reason="paid")
    released = (await api.get(f"/api/v1/customers/{cust}")).json()
    assert released["Status"] == "A" and "AR hold released: paid" in released["Note"]


async def test_bad_template_is_refused_naming_the_field(back_office: DynamicsSLBackOffice,
                                                        api: httpx.AsyncClient) -> None:
    cust = await customer(back_office)
    for field, value in (("Cycle", 0), ("NbrCycle", 0), ("CuryOrigDocAmt", "-1.00")):
        response = await api.post("/api/v1/ar/recurring", json={
            "CustId": cust, "CuryOrigDocAmt": "29.90", "DocDate": "04/01/2026", field: value})
        assert response.status_code == 422 and response.json()["error"]["field"] == field
    assert await back_office.recurring_invoices() == []
