"""Fixtures: a fresh in-memory sandbox per test, reached over httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from ledgerlink.connectors.dynamics_sl import (
    Calls,
    DynamicsSLBackOffice,
    DynamicsSLClient,
    build_back_office,
    build_client,
)
from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState, create_app
from ledgerlink.connectors.dynamics_sl.settings import DynamicsSLSettings
from ledgerlink.connectors.dynamics_sl.userfields import ORDER_PAYMENT_STATUSES, REFUND_TO_CARD
from ledgerlink.connectors.kit.contract.back_office import ContractEnv
from ledgerlink.model import ExternalRef, Money, OrderStatus

PAYMENT_STATUS_OF = {code: OrderStatus(status) for status, code in ORDER_PAYMENT_STATUSES.items()}

API_KEY = "sl-sandbox-key"
BASE = "http://sl.test"
NOW = datetime(2026, 3, 14, 10, 30)


@pytest.fixture
def app() -> Starlette:
    return create_app({}, clock=lambda: NOW)


@pytest.fixture
def state(app: Starlette) -> SandboxState:
    return app.state.sl  # type: ignore[no-any-return]


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP to the sandbox, authenticated with the API key."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE,
                                 headers={"X-API-Key": API_KEY}) as client:
        yield client


def settings(**overrides: Any) -> DynamicsSLSettings:
    return DynamicsSLSettings.model_validate({"base_url": BASE, "api_key": API_KEY, **overrides})


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[DynamicsSLClient]:
    sl = build_client(settings(), transport=httpx.ASGITransport(app=app))
    yield sl
    await sl.aclose()


@pytest.fixture
async def back_office(app: Starlette) -> AsyncIterator[DynamicsSLBackOffice]:
    bo = build_back_office(settings(), transport=httpx.ASGITransport(app=app))
    yield bo
    await bo.aclose()


class SLProbe:
    """Reads SL's own columns: BalDue on orders, CuryDocBal on AR documents, AR_Balances, GL batches, tasks;
    and does what a person in SL does (a credit memo flagged "refund to card")."""

    def __init__(self, client: DynamicsSLClient, state: SandboxState) -> None:
        self.client = client
        self.state = state

    async def open_balance(self, ref: ExternalRef) -> Money:
        if ref.kind == "salesorder":
            order = await self.client.get_sales_order(ref.id)
            return Money.of(order.BalDue, order.CuryID)
        doc_type, _, ref_nbr = ref.id.partition(":")
        doc = await self.client.get_ar_document(doc_type, ref_nbr)
        return Money.of(doc.CuryDocBal, doc.CuryId)

    async def order_status(self, ref: ExternalRef) -> OrderStatus:
        order = await self.client.get_sales_order(ref.id)
        if order.Cancelled:
            return OrderStatus.CANCELLED
        if order.User8 in PAYMENT_STATUS_OF:
            return PAYMENT_STATUS_OF[order.User8]
        if order.AdminHold:
            return OrderStatus.ON_HOLD
        if order.BalDue == 0 and order.TotPmt > 0:
            return OrderStatus.PAID
        return OrderStatus.OPEN

    async def record_count(self) -> int:
        counts = self.state.counts()
        return (counts["customers"] + counts["orders"] + sum(counts["ardocs"].values()) + counts["aradjust"]
                + counts["gltran"] + sum(sum(s.values()) for s in counts["batches"].values()) + counts["tasks"]
                + counts["notes"])

    async def party_count(self) -> int:
        return int(self.state.counts()["customers"])

    async def customer_balance(self, customer_id: str) -> Money:
        customer = await self.client.get_customer(customer_id)
        assert customer.Balances is not None
        return Money.of(customer.Balances.CurrBal, customer.CuryId or "USD")

    async def request_refund(self, customer_id: str, amount: Money, order: ExternalRef | None,
                             reason: str) -> ExternalRef:
        body = {"CustId": customer_id, "DocType": "CM", "CuryOrigDocAmt": amount.format(), "User5": REFUND_TO_CARD,
                "DocDesc": reason[:30], "Note": reason, "Lines": [{"Acct": "4900", "CuryTranAmt": amount.format()}]}
        if order is not None:
            body["OrdNbr"] = order.id
        doc = await self.client.create_ar_document(body)
        return ExternalRef(system="dynamics_sl", kind="ardoc", id=f"CM:{doc.RefNbr}")

    async def journal(self, ref: ExternalRef) -> tuple[bool, Money, Money]:
        module, _, bat_nbr = ref.id.partition(":")
        batch = await self.client.get_gl_batch(bat_nbr, module)
        debits = sum((line.DrAmt for line in batch.Lines), Decimal(0))
        credits = sum((line.CrAmt for line in batch.Lines), Decimal(0))
        posted = batch.Status == "P" and all(line.Posted == "P" for line in batch.Lines)
        cury = str(getattr(batch, "CuryId", "USD"))
        return posted, Money.of(debits, cury), Money.of(credits, cury)

    async def task(self, ref: ExternalRef) -> dict[str, str]:
        task = await self.client.send(Calls.get_task(ref.id))
        return {"subject": task.Subject, "body": task.Body or "", "category": task.Category,
                "status": {"O": "open", "C": "closed"}[task.Status]}

    async def task_count(self) -> int:
        return int(self.state.counts()["tasks"])


@pytest.fixture
def contract_env(back_office: DynamicsSLBackOffice, client: DynamicsSLClient, state: SandboxState) -> ContractEnv:
    return ContractEnv(back_office=back_office, probe=SLProbe(client, state))
