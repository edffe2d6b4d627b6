"""Cybersource passes the shared ``PaymentGateway`` contract against its sandbox, in full-detail and id-only modes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest

from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.connectors.kit.contract.payment_gateway import GatewayHarness, PaymentGatewayContract
from ledgerlink.model import Money, PaymentToken

from .conftest import GATEWAY_SETTINGS, VISA_INSTRUMENT, Receiver, drain, sandbox_settings

# The contract's malformation names → the sandbox's anomaly knobs.
MALFORMATIONS = {
    "truncate": {"truncate": True},
    "drop_column": {"drop_header_column": "amount"},
    "garble_amount": {"garble_amounts": 1},
    "repeat_line": {"repeat_lines": 1},
}


def sandbox_hooks(sandbox: Sandbox) -> dict[str, object]:
    """The contract's optional hooks, played by the sandbox's own controls."""

    async def close_day() -> date:
        day = sandbox.store.clock.today()
        sandbox.settlements.close(day)
        return day

    async def open_dispute(transaction_id: str, amount: Money) -> str:
        return sandbox.disputes.open(transaction_id, amount=amount.amount).tracking_number

    async def resolve_dispute(dispute_id: str, won: bool) -> None:
        sandbox.disputes.resolve(dispute_id, "won" if won else "lost")

    async def malform_report(kind: str | None) -> None:
        sandbox.configure_anomalies(None)
        if kind is not None:
            sandbox.configure_anomalies(MALFORMATIONS[kind])

    return {"close_day": close_day, "open_dispute": open_dispute, "resolve_dispute": resolve_dispute,
            "malform_report": malform_report}


@pytest.fixture(params=["full", "id_only"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[GatewayHarness]:
    receiver = Receiver()
    sandbox = Sandbox(sandbox_settings(emitter={"payload_detail": request.param}),
                      webhook_transport=httpx.ASGITransport(app=receiver))
    async with sandbox, build_gateway(GATEWAY_SETTINGS, transport=httpx.ASGITransport(app=sandbox.app)) as gateway:
        yield GatewayHarness(
            gateway=gateway,
            token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT, kind="payment_instrument"),
            approve_amount=Money.of("42.00", "USD"),
            decline_amount=Money.of("42.01", "USD"),
            review_amount=Money.of("42.09", "USD"),
            drain_webhooks=lambda: drain(sandbox, receiver),
            **sandbox_hooks(sandbox),  # type: ignore[arg-type]
        )


class TestCybersourceContract(PaymentGatewayContract):
    pass
