"""``CybersourceGateway`` and its settings: what the seam adds on top of client and translation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from ledgerlink.connectors.cybersource import CybersourceGateway, CybersourceSettings, build_gateway
from ledgerlink.connectors.kit.errors import PermanentError, RetryableError
from ledgerlink.connectors.kit.protocols import PaymentGateway
from ledgerlink.connectors.registry import gateway_factory, sandbox_factory
from ledgerlink.model import (
    Address,
    AuthorizationRequest,
    Money,
    Party,
    PaymentKind,
    PaymentStatus,
    PaymentToken,
)

from .conftest import GATEWAY_SETTINGS, VISA_CUSTOMER

TOKEN = PaymentToken(gateway="cybersource", token_id=VISA_CUSTOMER, kind="customer")
PARTY = Party(first_name="Ada", last_name="Lovelace", email="ada@example.com",
              address=Address(line1="1 Analytical Way", city="London", country="GB"))


async def test_registry_entries_load() -> None:
    async with gateway_factory("cybersource")(GATEWAY_SETTINGS) as gateway:
        assert isinstance(gateway, CybersourceGateway) and isinstance(gateway, PaymentGateway)
    app = sandbox_factory("cybersource")(None)
    assert app.state.sandbox.store.customers


@pytest.mark.parametrize(("change", "message"), [
    ({"shared_secret": "not base64!"}, "shared_secret must be base64"),
    ({"webhook_secret": None}, "go together"),
    ({"webhook_keys": {"k": "%%%"}}, "webhook key 'k'"),
    ({"status_map": {"AUTHORIZED": "approved"}}, "not a canonical status"),
    ({"timeout_seconds": 0}, "greater than 0"),
    ({"merchant": "typo"}, "Extra inputs"),
])
def test_settings_refuse_bad_values(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CybersourceSettings.model_validate({**GATEWAY_SETTINGS, **change})


def test_settings_hide_secrets_and_merge_webhook_keys() -> None:
    settings = CybersourceSettings.model_validate({**GATEWAY_SETTINGS, "webhook_keys": {"old": "AAAA"}})
    assert GATEWAY_SETTINGS["shared_secret"] not in repr(settings)
    assert set(settings.all_webhook_keys()) == {"old", GATEWAY_SETTINGS["webhook_key_id"]}


async def test_authorize_keeps_what_the_response_does_not_echo(gateway: CybersourceGateway) -> None:
    request = AuthorizationRequest(amount=Money.of("75.00", "USD"), order_reference="ORD-9", token=TOKEN, party=PARTY,
                                   merchant_defined={"3": "b2b"})
    payment = await gateway.authorize(request)
    assert (payment.kind, payment.status, payment.amount) == (PaymentKind.AUTHORIZATION, PaymentStatus.AUTHORIZED,
                                                              request.amount)
    assert payment.party == PARTY and payment.merchant_defined == {"3": "b2b"}
    assert payment.token is not None and payment.token.last4 == "1111" and payment.token.brand == "visa"
    fetched = await gateway.get_payment(payment.id)
    assert fetched.party is not None and fetched.party.email == "ada@example.com"
    assert fetched.merchant_defined == {"3": "b2b"} and fetched.root_id == payment.id


async def test_sale_refund_and_declined_sale(gateway: CybersourceGateway) -> None:
    sale = await gateway.authorize(AuthorizationRequest(amount=Money.of("30.00", "USD"), order_reference="ORD-2",
                                                        capture=True, token=TOKEN))
    assert (sale.kind, sale.status) == (PaymentKind.SALE, PaymentStatus.CAPTURED)
    refund = await gateway.refund(sale.id, Money.of("10.00", "USD"), reference="ORD-2:refund:1", order_reference="ORD-2")
    assert (refund.kind, refund.status, refund.amount, refund.parent_id) == (
        PaymentKind.REFUND, PaymentStatus.REFUNDED, Money.of("10.00", "USD"), sale.id)
    declined = await gateway.authorize(AuthorizationRequest(amount=Money.of("30.03", "USD"), order_reference="ORD-3",
                                                            capture=True, token=TOKEN))
    assert declined.status is PaymentStatus.DECLINED and declined.decline_reason == "EXPIRED_CARD"


async def test_status_map_override_applies_to_results(sandbox: Any) -> None:
    settings = {**GATEWAY_SETTINGS, "status_map": {"AUTHORIZED_RISK_DECLINED": "pending_review"}}
    async with build_gateway(settings, transport=httpx.ASGITransport(app=sandbox.app)) as gateway:
        payment = await gateway.authorize(AuthorizationRequest(amount=Money.of("9.08", "USD"), order_reference="R",
                                                               token=TOKEN))
    assert payment.status is PaymentStatus.PENDING_REVIEW and payment.gateway_status == "AUTHORIZED_RISK_DECLINED"


def mocked(status: int, body: Any) -> CybersourceGateway:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return build_gateway(GATEWAY_SETTINGS, transport=httpx.MockTransport(answer))


async def test_an_unreadable_response_is_a_permanent_error_naming_the_field() -> None:
    async with mocked(201, {"id": "1", "status": "AUTHORIZED", "orderInformation": {
            "amountDetails": {"authorizedAmount": "1.234", "currency": "USD"}}}) as gateway:
        with pytest.raises(PermanentError) as caught:
            await gateway.get_payment("1")
    assert caught.value.field == "orderInformation.amountDetails.authorizedAmount"
    async with mocked(201, {"id": 5}) as gateway:
        with pytest.raises(PermanentError, match="unexpected response shape"):
            await gateway.get_payment("1")


async def test_a_502_is_an_unknown_outcome_to_retry() -> None:
    body = {"submitTimeUtc": "2024-01-01T00:00:00Z", "status": "SERVER_ERROR", "reason": "SERVER_TIMEOUT",
            "message": "timeout"}
    async with mocked(502, body) as gateway:
        with pytest.raises(RetryableError) as caught:
            await gateway.capture("1", Money.of("1.00", "USD"))
    assert caught.value.provider_code == "SERVER_TIMEOUT" and caught.value.operation == "capture"


async def test_ids_cannot_escape_their_path_segment() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, json={})

    async with build_gateway(GATEWAY_SETTINGS, transport=httpx.MockTransport(answer)) as gateway:
        with pytest.raises(PermanentError):
            await gateway.get_payment("../../pts/v2/payments")
    assert seen == ["/tss/v2/transactions/..%2F..%2Fpts%2Fv2%2Fpayments"]
