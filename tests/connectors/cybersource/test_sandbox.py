"""The sandbox speaks Cybersource: signatures, SDK quirks, error families, the payment state machine, TMS, setup APIs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from ledgerlink.connectors.cybersource.auth import HttpSignatureAuth
from ledgerlink.connectors.cybersource.client import CybersourceClient
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.connectors.cybersource.sandbox.settings import (
    DEMO_KEY_ID,
    DEMO_MERCHANT_ID,
    DEMO_SHARED_SECRET,
)
from ledgerlink.connectors.kit.errors import AuthenticationFailed, NotFound, Rejected, RetryableError
from ledgerlink.model.cardnumbers import find_card_numbers

from .conftest import VISA_CUSTOMER, VISA_INSTRUMENT, sandbox_settings

HOST = "apitest.cybersource.com"


def signed_client(sandbox: Sandbox, *, secret: str = DEMO_SHARED_SECRET, merchant: str = DEMO_MERCHANT_ID,
                  key_id: str = DEMO_KEY_ID, **kwargs: Any) -> httpx.AsyncClient:
    """A client that signs like the official SDK (Host = run environment, connection elsewhere)."""
    auth = HttpSignatureAuth(host=HOST, merchant_id=merchant, key_id=key_id, shared_secret=secret, **kwargs)
    return httpx.AsyncClient(base_url="http://127.0.0.1:8081", transport=httpx.ASGITransport(app=sandbox.app),
                             auth=auth)


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[CybersourceClient]:
    client = CybersourceClient(base_url="http://127.0.0.1:8081", host=HOST, merchant_id=DEMO_MERCHANT_ID,
                               key_id=DEMO_KEY_ID, shared_secret=DEMO_SHARED_SECRET,
                               transport=httpx.ASGITransport(app=sandbox.app))
    yield client
    await client.aclose()


def auth_body(amount: str = "102.21", *, capture: bool = False, code: str = "ORD-1", **payment: Any) -> dict[str, Any]:
    return {
        "clientReferenceInformation": {"code": code},
        "processingInformation": {"capture": capture},
        "paymentInformation": payment or {"customer": {"id": VISA_CUSTOMER}},
        "orderInformation": {"amountDetails": {"totalAmount": amount, "currency": "USD"}},
    }


def amount_body(amount: str) -> dict[str, Any]:
    return {"orderInformation": {"amountDetails": {"totalAmount": amount, "currency": "USD"}}}


# --- authentication --------------------------------------------------------------------------


async def test_unsigned_and_badly_signed_calls_get_the_real_401(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url="http://x", transport=httpx.ASGITransport(app=sandbox.app)) as anonymous:
        response = await anonymous.get("/tss/v2/transactions/1")
    assert response.status_code == 401 and response.json() == {"response": {"rmsg": "Authentication Failed"}}
    async with signed_client(sandbox, secret="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") as forger:
        response = await forger.post("/pts/v2/payments", json=auth_body())
    assert response.status_code == 401 and response.json() == {"response": {"rmsg": "Authentication Failed"}}


async def test_a_body_changed_after_signing_is_refused(sandbox: Sandbox) -> None:
    async with signed_client(sandbox) as client:
        request = client.build_request("POST", "/pts/v2/payments", content=orjson.dumps(auth_body()))
        signed = next(client.auth.auth_flow(request))  # type: ignore[union-attr]
        tampered = httpx.Request("POST", signed.url, headers=signed.headers,
                                 content=orjson.dumps(auth_body("1.00")))
        response = await client.send(tampered, auth=None)
    assert response.status_code == 401
    assert sandbox.store.transactions == {}


async def test_sdk_style_pan_request_is_accepted_and_the_pan_is_never_stored(sandbox: Sandbox) -> None:
    body = {
        "clientReferenceInformation": {"code": "TC50171_3", "partner": {"developerId": "J0TV2I9S"}},
        "processingInformation": {"capture": False},
        "paymentInformation": {"card": {"number": "4111111111111111", "expirationMonth": "12",
                                        "expirationYear": "2031", "securityCode": "123"}},
        "orderInformation": {"amountDetails": {"totalAmount": "102.21", "currency": "USD"},
                             "billTo": {"firstName": "John", "lastName": "Doe", "email": "test@cybs.com"}},
    }
    sdk_headers = {"Accept": "application/hal+json", "Content-Type": "application/json",
                   "v-c-client-id": "cybs-rest-sdk-python-0.0.80", "v-c-sdk-telemetry-merchant-id": "testrest",
                   "User-Agent": "Mozilla/5.0", "Accept-Encoding": "*"}
    async with signed_client(sandbox) as client:
        response = await client.post("/pts/v2/payments", content=json.dumps(body).encode(), headers=sdk_headers)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/hal+json")
    assert response.headers["v-c-correlation-id"]
    reply = response.json()
    assert reply["status"] == "AUTHORIZED" and reply["clientReferenceInformation"]["code"] == "TC50171_3"
    assert reply["paymentInformation"]["card"] == {"type": "001", "suffix": "1111"}
    assert len(reply["id"]) == 22 and reply["id"].isdigit()
    assert set(reply["_links"]) == {"self", "authReversal", "capture"}
    assert find_card_numbers(response.text) == []
    stored = orjson.dumps(sandbox.store.snapshot()).decode()
    assert find_card_numbers(stored) == []
    assert "4111111111111111" not in stored and "securityCode" not in stored
    await sandbox.emitter.wait_idle(5)
    assert all(find_card_numbers(orjson.dumps(entry).decode()) == [] for entry in sandbox.emitter.log)


def test_the_store_refuses_to_keep_a_card_number_under_the_guard(sandbox: Sandbox) -> None:
    """Card numbers become instrument identifiers on arrival; the guard (on in tests) proves none is kept."""
    from ledgerlink.connectors.cybersource.sandbox.store import Customer, GuardedTable
    from ledgerlink.model import storage_guard

    assert isinstance(sandbox.store.customers, GuardedTable)
    with pytest.raises(storage_guard.CardNumberStored, match="customers") as info:
        sandbox.store.customers["C1"] = Customer(id="C1", creator="testrest",
                                                 buyer_information={"note": "4111 1111 1111 1111"})
    assert "4111" not in str(info.value) and "C1" not in sandbox.store.customers
    with pytest.raises(storage_guard.CardNumberStored):
        sandbox.store.by_client_transaction_id.setdefault("4111111111111111", [])
    storage_guard.clear_trips()


async def test_same_card_same_instrument_identifier(sandbox: Sandbox) -> None:
    card = {"card": {"number": "5555555555554444", "expirationMonth": "01", "expirationYear": "2030"}}
    async with signed_client(sandbox) as client:
        first = (await client.post("/pts/v2/payments", json=auth_body(**card))).json()
        second = (await client.post("/pts/v2/payments", json=auth_body(**card))).json()
    ids = {sandbox.store.transactions[r["id"]].tokens.instrument_identifier_id for r in (first, second)}  # type: ignore[union-attr]
    seeded = sandbox.store.payment_instruments["A0000000000000000000000000005555"].instrument_identifier_id
    assert ids == {seeded}


# --- request validation ----------------------------------------------------------------------


@pytest.mark.parametrize(("body", "reason", "details"), [
    ({"clientReferenceInformation": {"code": "R"}, "paymentInformation": {"customer": {"id": VISA_CUSTOMER}}},
     "MISSING_FIELD", [{"field": "orderInformation.amountDetails.currency", "reason": "MISSING_FIELD"},
                       {"field": "orderInformation.amountDetails.totalAmount", "reason": "MISSING_FIELD"}]),
    (auth_body("10.001"), "INVALID_DATA",
     [{"field": "orderInformation.amountDetails.totalAmount", "reason": "INVALID_DATA"}]),
    ({**auth_body(), "orderInformation": {"amountDetails": {"totalAmount": 10.5, "currency": "USD"}}},
     "INVALID_DATA", [{"field": "orderInformation.amountDetails.totalAmount", "reason": "INVALID_DATA"}]),
    (auth_body(customer={"id": "F" * 32}), "INVALID_DATA",
     [{"field": "paymentInformation.customer.id", "reason": "INVALID_DATA"}]),
    ({**auth_body(), "paymentInformation": {}}, "MISSING_FIELD",
     [{"field": "paymentInformation.card.number", "reason": "MISSING_FIELD"}]),
    (auth_body(card={"number": "4111111111111112", "expirationMonth": "12", "expirationYear": "2031"}),
     "INVALID_CARD", [{"field": "paymentInformation.card.number", "reason": "INVALID_DATA"}]),
    ({**auth_body(), "merchantDefinedInformation": [{"key": "channel", "value": "web"}]}, "INVALID_DATA",
     [{"field": "merchantDefinedInformation[0].key", "reason": "INVALID_DATA"}]),
])
async def test_bad_requests_get_pts_400s_and_leave_nothing(sandbox: Sandbox, body: dict[str, Any], reason: str,
                                                           details: list[dict[str, str]]) -> None:
    before = orjson.dumps(sandbox.store.snapshot())
    async with signed_client(sandbox) as client:
        response = await client.post("/pts/v2/payments", json=body)
    assert response.status_code == 400
    reply = response.json()
    assert reply["status"] == "INVALID_REQUEST" and reply["reason"] == reason and reply["details"] == details
    assert reply["message"] and reply["submitTimeUtc"]
    assert orjson.dumps(sandbox.store.snapshot()) == before


async def test_client_maps_errors_to_the_kit_tree(client: CybersourceClient, sandbox: Sandbox) -> None:
    with pytest.raises(Rejected) as rejected:
        await client.create_payment(auth_body("1.001"))
    assert rejected.value.provider_code == "INVALID_DATA"
    assert rejected.value.field == "orderInformation.amountDetails.totalAmount"
    assert rejected.value.status == 400 and rejected.value.request_id
    with pytest.raises(NotFound):
        await client.get_transaction("1234567890123456789012")
    with pytest.raises(NotFound):
        await client.capture("1234567890123456789012", amount_body("1.00"))
    bad = CybersourceClient(base_url="http://x", host=HOST, merchant_id=DEMO_MERCHANT_ID, key_id=DEMO_KEY_ID,
                            shared_secret="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                            transport=httpx.ASGITransport(app=sandbox.app))
    with pytest.raises(AuthenticationFailed):
        await bad.get_transaction("1")
    await bad.aclose()
    down = CybersourceClient(base_url="http://127.0.0.1:9", host=HOST, merchant_id=DEMO_MERCHANT_ID,
                             key_id=DEMO_KEY_ID, shared_secret=DEMO_SHARED_SECRET, timeout_seconds=2)
    with pytest.raises(RetryableError):
        await down.get_transaction("1")
    await down.aclose()


async def test_injected_502_is_retryable_and_after_commit_the_work_is_done(sandbox: Sandbox,
                                                                          client: CybersourceClient) -> None:
    sandbox.faults = sandbox.faults.model_copy(update={"error_rate": 1.0, "error_status": 502, "after_commit": True})
    with pytest.raises(RetryableError) as caught:
        await client.create_payment(auth_body())
    assert caught.value.status == 502 and caught.value.provider_code == "SYSTEM_ERROR"
    assert len(sandbox.store.transactions) == 1  # the outcome the caller could not see
    sandbox.faults = sandbox.faults.model_copy(update={"error_status": 429, "retry_after_seconds": 3,
                                                       "after_commit": False})
    with pytest.raises(RetryableError) as limited:
        await client.create_payment(auth_body())
    assert limited.value.retry_after == 3.0
    assert len(sandbox.store.transactions) == 1


# --- outcomes and the state machine ----------------------------------------------------------


@pytest.mark.parametrize(("amount", "status", "reason"), [
    ("10.00", "AUTHORIZED", None),
    ("10.01", "DECLINED", "INSUFFICIENT_FUND"),
    ("10.02", "DECLINED", "STOLEN_LOST_CARD"),
    ("10.03", "DECLINED", "EXPIRED_CARD"),
    ("10.08", "AUTHORIZED_RISK_DECLINED", "DECISION_PROFILE_REJECT"),
    ("10.09", "AUTHORIZED_PENDING_REVIEW", "DECISION_PROFILE_REVIEW"),
])
async def test_amount_triggers(client: CybersourceClient, amount: str, status: str, reason: str | None) -> None:
    response = await client.create_payment(auth_body(amount))
    assert response.status == status
    assert (response.error_information.reason if response.error_information else None) == reason
    if status == "AUTHORIZED_PENDING_REVIEW":
        risk = response.risk_information
        assert risk is not None and risk.score is not None and risk.score.result == "87"
        assert risk.rules and risk.info_codes
        details = await client.get_transaction(response.id or "")
        assert details.application_information is not None
        assert details.application_information.reason_code == "480"


async def test_outcomes_are_configurable(receiver: Any) -> None:
    sandbox = Sandbox(sandbox_settings(outcome_by_cents={".55": "PARTIAL_AUTHORIZED"}))
    async with signed_client(sandbox) as client:
        partial = (await client.post("/pts/v2/payments", json=auth_body("10.55"))).json()
        plain = (await client.post("/pts/v2/payments", json=auth_body("10.01"))).json()
    assert partial["status"] == "PARTIAL_AUTHORIZED"
    assert partial["orderInformation"]["amountDetails"] == {"currency": "USD", "authorizedAmount": "5.27",
                                                            "totalAmount": "10.55"}
    assert plain["status"] == "AUTHORIZED"


async def test_capture_rules(client: CybersourceClient) -> None:
    auth = await client.create_payment(auth_body("100.00"))
    first = await client.capture(auth.id or "", amount_body("60.00"))
    assert first.status == "PENDING" and set(first.links or {}) == {"self", "void", "refund", "parentTransaction"}
    with pytest.raises(Rejected) as exceeded:
        await client.capture(auth.id or "", amount_body("40.01"))
    assert exceeded.value.provider_code == "EXCEEDS_AUTH_AMOUNT"
    await client.capture(auth.id or "", amount_body("40.00"))
    with pytest.raises(Rejected) as wrong_currency:
        await client.capture(auth.id or "", {"orderInformation": {"amountDetails": {"totalAmount": "1",
                                                                                     "currency": "EUR"}}})
    assert wrong_currency.value.field == "orderInformation.amountDetails.currency"
    declined = await client.create_payment(auth_body("5.01"))
    with pytest.raises(Rejected) as missing:
        await client.capture(declined.id or "", amount_body("5.01"))
    assert missing.value.provider_code == "MISSING_AUTH"
    details = await client.get_transaction(first.id or "")
    assert details.root_id == auth.id and details.status == "PENDING"
    assert [a.name for a in details.application_information.applications or []] == ["ics_bill"]  # type: ignore[union-attr]


async def test_reversal_rules(client: CybersourceClient) -> None:
    auth = await client.create_payment(auth_body("30.00"))
    body = {"reversalInformation": {"amountDetails": {"totalAmount": "30.00"}, "reason": "cancelled"}}
    reversal = await client.reverse(auth.id or "", body)
    assert reversal.status == "REVERSED" and reversal.reversal_amount_details is not None
    assert reversal.reversal_amount_details.reversed_amount == "30.00"
    with pytest.raises(Rejected) as again:
        await client.reverse(auth.id or "", body)
    assert again.value.provider_code == "AUTH_ALREADY_REVERSED"
    with pytest.raises(Rejected) as after_reversal:
        await client.capture(auth.id or "", amount_body("1.00"))
    assert after_reversal.value.provider_code == "AUTH_ALREADY_REVERSED"
    captured = await client.create_payment(auth_body("30.00"))
    await client.capture(captured.id or "", amount_body("10.00"))
    with pytest.raises(Rejected) as settled:
        await client.reverse(captured.id or "", body)
    assert settled.value.provider_code == "TRANSACTION_ALREADY_SETTLED"
    rest = {"reversalInformation": {"amountDetails": {"totalAmount": "20.00"}, "reason": "rest not shipped"}}
    partial = await client.reverse(captured.id or "", rest)  # a partial reversal of the uncaptured rest
    assert partial.status == "REVERSED" and (await client.get_transaction(captured.id or "")).status == "AUTHORIZED"
    with pytest.raises(Rejected) as nothing_left:
        await client.capture(captured.id or "", amount_body("0.01"))
    assert nothing_left.value.provider_code == "EXCEEDS_AUTH_AMOUNT"


async def test_void_rules(client: CybersourceClient, sandbox: Sandbox) -> None:
    sale = await client.create_payment(auth_body("20.00", capture=True))
    void = await client.void_payment(sale.id or "")
    assert void.status == "VOIDED" and void.void_amount_details is not None
    assert void.void_amount_details.void_amount == "20.00"
    assert (await client.get_transaction(sale.id or "")).status == "VOIDED"
    with pytest.raises(Rejected) as twice:
        await client.void_payment(sale.id or "")
    assert twice.value.provider_code == "NOT_VOIDABLE"
    auth = await client.create_payment(auth_body("20.00"))
    with pytest.raises(Rejected) as auth_void:
        await client.void_payment(auth.id or "")
    assert auth_void.value.provider_code == "NOT_VOIDABLE"
    capture = await client.capture(auth.id or "", amount_body("20.00"))
    assert sum(len(b.transaction_ids) for b in sandbox.settlements.close()) == 1
    with pytest.raises(Rejected) as settled:
        await client.void_capture(capture.id or "")
    assert settled.value.provider_code == "NOT_VOIDABLE"
    assert (await client.get_transaction(capture.id or "")).status == "TRANSMITTED"


async def test_refund_rules(client: CybersourceClient) -> None:
    sale = await client.create_payment(auth_body("50.00", capture=True))
    refund = await client.refund_payment(sale.id or "", amount_body("20.00"))
    assert refund.status == "PENDING" and refund.refund_amount_details is not None
    with pytest.raises(Rejected) as too_much:
        await client.refund_payment(sale.id or "", amount_body("30.01"))
    assert too_much.value.provider_code == "INVALID_AMOUNT"
    await client.refund_payment(sale.id or "", amount_body("30.00"))
    auth = await client.create_payment(auth_body("50.00"))
    capture = await client.capture(auth.id or "", amount_body("50.00"))
    with pytest.raises(Rejected) as via_auth:
        await client.refund_payment(auth.id or "", amount_body("1.00"))
    assert via_auth.value.provider_code == "NOT_SUPPORTED"
    await client.void_capture(capture.id or "")
    with pytest.raises(Rejected) as voided:
        await client.refund_capture(capture.id or "", amount_body("1.00"))
    assert voided.value.provider_code == "CAPTURE_ALREADY_VOIDED"
    uncaptured = await client.create_payment(auth_body("5.00"))
    with pytest.raises(Rejected):
        await client.refund_payment(uncaptured.id or "", amount_body("1.00"))


async def test_transactions_belong_to_their_merchant(receiver: Any) -> None:
    other = {"merchant_id": "othermerchant", "key_id": "k2", "shared_secret": DEMO_SHARED_SECRET}
    default = {"merchant_id": DEMO_MERCHANT_ID, "key_id": DEMO_KEY_ID, "shared_secret": DEMO_SHARED_SECRET}
    sandbox = Sandbox(sandbox_settings(credentials=[default, other]))
    async with signed_client(sandbox) as mine, signed_client(sandbox, merchant="othermerchant", key_id="k2") as theirs:
        created = (await mine.post("/pts/v2/payments", json=auth_body())).json()
        assert (await theirs.get(f"/tss/v2/transactions/{created['id']}")).status_code == 404
        assert (await mine.get(f"/tss/v2/transactions/{created['id']}")).status_code == 200


# --- TMS -------------------------------------------------------------------------------------


async def test_seeded_tokens_and_tms_reads(sandbox: Sandbox) -> None:
    async with signed_client(sandbox) as client:
        customer = (await client.get(f"/tms/v2/customers/{VISA_CUSTOMER}")).json()
        assert customer["defaultPaymentInstrument"] == {"id": VISA_INSTRUMENT}
        listing = (await client.get(f"/tms/v2/customers/{VISA_CUSTOMER}/payment-instruments")).json()
        assert listing["total"] == 1 and listing["_embedded"]["paymentInstruments"][0]["id"] == VISA_INSTRUMENT
        nested = await client.get(f"/tms/v2/customers/{VISA_CUSTOMER}/payment-instruments/{VISA_INSTRUMENT}")
        flat = await client.get(f"/tms/v1/paymentinstruments/{VISA_INSTRUMENT}")
        assert nested.headers["content-type"] == "application/json;charset=utf-8"
        assert nested.json() == flat.json()
        instrument = flat.json()
        assert instrument["card"] == {"type": "001", "expirationMonth": "12", "expirationYear": "2031"}
        assert instrument["_embedded"]["instrumentIdentifier"]["card"]["number"] == "XXXXXXXXXXXX1111"
        missing = await client.get("/tms/v2/customers/NOPE")
        assert missing.status_code == 404 and missing.json()["errors"][0]["type"] == "notFound"


async def test_create_tokens_then_pay_with_them(sandbox: Sandbox) -> None:
    async with signed_client(sandbox) as client:
        customer = (await client.post("/tms/v2/customers", json={"buyerInformation": {"email": "a@b.c"}})).json()
        identifier = await client.post("/tms/v1/instrumentidentifiers", json={"card": {"number": "4000056655665556"}})
        assert identifier.status_code == 201
        again = await client.post("/tms/v1/instrumentidentifiers", json={"card": {"number": "4000056655665556"}})
        assert again.status_code == 200 and again.json()["id"] == identifier.json()["id"]
        incomplete = await client.post(f"/tms/v2/customers/{customer['id']}/payment-instruments",
                                       json={"card": {"expirationMonth": "09"}})
        assert incomplete.status_code == 400
        assert incomplete.json()["errors"][0]["type"] == "missingFields"
        created = await client.post(f"/tms/v2/customers/{customer['id']}/payment-instruments", json={
            "card": {"expirationMonth": "09", "expirationYear": "2032"},
            "instrumentIdentifier": {"id": identifier.json()["id"]},
            "billTo": {"firstName": "Ada", "lastName": "Lovelace"},
        })
        assert created.status_code == 201 and created.json()["default"] is True
        payment = (await client.post("/pts/v2/payments", json=auth_body(customer={"id": customer["id"]}))).json()
    assert payment["status"] == "AUTHORIZED"
    assert payment["paymentInformation"]["paymentInstrument"] == {"id": created.json()["id"]}
    assert find_card_numbers(orjson.dumps(sandbox.store.snapshot()).decode()) == []


async def test_token_create_during_authorization(sandbox: Sandbox) -> None:
    body = auth_body(card={"number": "4111111111111111", "expirationMonth": "12", "expirationYear": "2031"})
    body["processingInformation"] = {"actionList": ["TOKEN_CREATE"],
                                     "actionTokenTypes": ["customer", "paymentInstrument", "instrumentIdentifier"]}
    async with signed_client(sandbox) as client:
        reply = (await client.post("/pts/v2/payments", json=body)).json()
        info = reply["tokenInformation"]
        assert info["instrumentidentifierNew"] is False  # the seeded Visa card is already in the vault
        customer = (await client.get(f"/tms/v2/customers/{info['customer']['id']}")).json()
    assert customer["defaultPaymentInstrument"] == info["paymentInstrument"]


# --- webhook setup APIs ----------------------------------------------------------------------


async def test_webhook_setup_apis(client: CybersourceClient, sandbox: Sandbox) -> None:
    key = await client.create_webhook_key("testrest")
    assert key.status == "ACCEPTED" and key.key_information.key and key.key_information.key_id
    subscription = await client.create_webhook_subscription({
        "name": "engine", "organizationId": "testrest", "webhookUrl": "https://engine.example/webhooks",
        "products": [{"productId": "cardProcessing", "eventTypes": ["payments.captures.accept"]}],
        "securityPolicy": {"securityType": "key", "config": {"additionalConfig": {"keyId": key.key_information.key_id}}},
    })
    assert subscription.webhook_id and subscription.status == "ACTIVE"
    listed = await client.list_webhook_subscriptions("testrest")
    assert subscription.webhook_id in {s.webhook_id for s in listed}
    fetched = await client.get_webhook_subscription(subscription.webhook_id)
    assert fetched.webhook_url == "https://engine.example/webhooks"
    assert sandbox.store.subscriptions[subscription.webhook_id].key_id == key.key_information.key_id
    await client.delete_webhook_subscription(subscription.webhook_id)
    with pytest.raises(NotFound):
        await client.get_webhook_subscription(subscription.webhook_id)
    with pytest.raises(Rejected) as no_url:
        await client.create_webhook_subscription({"products": [{"productId": "cardProcessing"}]})
    assert no_url.value.field == "webhookUrl"
