"""Token Management against the sandbox over HTTP: the client's calls, the TMS rules (ETag/if-match, 410 for a
deleted token, TMS error shapes), the gateway's customer profiles, and the signed tms.token.* webhooks."""

from __future__ import annotations

from datetime import date

import httpx
import orjson
import pytest

from ledgerlink.connectors.cybersource import CybersourceClient, CybersourceGateway
from ledgerlink.connectors.cybersource.profiles import customer_token_for
from ledgerlink.connectors.cybersource.sandbox import Sandbox
from ledgerlink.connectors.cybersource.webhooks import parse_notification
from ledgerlink.connectors.kit.errors import Conflict, NotFound, Rejected, RetryableError
from ledgerlink.model import (
    Address,
    EventType,
    Party,
    TokenEventKind,
    TokenState,
    find_card_numbers,
)
from tests.connectors.cybersource.conftest import VISA_CUSTOMER, VISA_INSTRUMENT, Receiver, drain
from tests.connectors.cybersource.test_sandbox import signed_client

MASTERCARD_INSTRUMENT = "A0000000000000000000000000005555"


async def identifier_of(client: CybersourceClient, instrument_id: str) -> str:
    """An instrument identifier already in the vault (ledgerlink never sends a card number to make one)."""
    doc = await client.get_customer_instrument(instrument_id.replace("A", "C", 1), instrument_id)
    return str(doc.body["instrumentIdentifier"]["id"])


async def new_customer(client: CybersourceClient, email: str = "ada@example.com") -> str:
    created = await client.create_customer({"buyerInformation": {"email": email, "merchantCustomerID": "C100"}})
    return str(created.body["id"])


async def add_card(client: CybersourceClient, customer_id: str, instrument: str = MASTERCARD_INSTRUMENT,
                   **extra: object) -> str:
    body = {"card": {"expirationMonth": "11", "expirationYear": "2030"},
            "instrumentIdentifier": {"id": await identifier_of(client, instrument)},
            "billTo": {"firstName": "Ada", "lastName": "Lovelace", "address1": "12 St James's Sq",
                       "locality": "London", "postalCode": "SW1Y 4JH", "country": "GB"}, **extra}
    created = await client.create_customer_instrument(customer_id, body)
    return str(created.body["id"])


async def test_customer_lifecycle_with_etags(client: CybersourceClient) -> None:
    customer_id = await new_customer(client)
    read = await client.get_customer(customer_id)
    assert read.body["buyerInformation"] == {"email": "ada@example.com", "merchantCustomerID": "C100"}
    assert read.etag
    changed = await client.update_customer(customer_id, {"buyerInformation": {"email": "ada@lovelace.org"}},
                                           if_match=read.etag)
    assert changed.body["buyerInformation"]["email"] == "ada@lovelace.org" and changed.etag != read.etag
    with pytest.raises(RetryableError) as stale:  # someone changed it since it was read
        await client.update_customer(customer_id, {"buyerInformation": {"email": "x@y.z"}}, if_match=read.etag)
    assert stale.value.status == 412 and stale.value.provider_code == "conflict"
    assert (await client.get_customer(customer_id)).body["buyerInformation"]["email"] == "ada@lovelace.org"
    await client.delete_customer(customer_id)
    with pytest.raises(NotFound) as gone:
        await client.get_customer(customer_id)
    assert gone.value.status == 410 and gone.value.provider_code == "notAvailable"
    with pytest.raises(NotFound) as unknown:
        await client.get_customer("F" * 32)
    assert unknown.value.status == 404 and unknown.value.provider_code == "notFound"


async def test_customer_with_our_own_id_is_made_once(client: CybersourceClient) -> None:
    chosen = customer_token_for("testrest", "dynamics_sl:customer:C100")
    created = await client.create_customer({"id": chosen, "buyerInformation": {"email": "a@b.co"}})
    assert created.body["id"] == chosen
    with pytest.raises(Conflict) as again:
        await client.create_customer({"id": chosen})
    assert again.value.status == 409 and again.value.provider_code == "tokenIdConflict"
    with pytest.raises(Rejected) as bad:
        await client.create_customer({"id": "not-hex"})
    assert bad.value.field == "id" and bad.value.provider_code == "invalidFields"


async def test_payment_instruments_change_and_delete(client: CybersourceClient) -> None:
    customer_id = await new_customer(client)
    first = await add_card(client, customer_id)
    second = await add_card(client, customer_id, VISA_INSTRUMENT, default=True)
    listing = (await client.list_customer_instruments(customer_id, limit=1)).body
    assert listing["total"] == 2 and listing["count"] == 1 and "next" in listing["_links"]
    assert {pi["id"] for pi in await client.customer_instruments(customer_id)} == {first, second}
    assert (await client.get_customer(customer_id)).body["defaultPaymentInstrument"] == {"id": second}

    read = await client.get_customer_instrument(customer_id, first)
    patched = await client.update_customer_instrument(
        customer_id, first, {"card": {"expirationMonth": "01", "expirationYear": "2033"},
                             "billTo": {"phoneNumber": "+442079460958", "address2": ""}},
        if_match=read.etag)
    assert patched.body["card"]["expirationYear"] == "2033"
    assert patched.body["billTo"]["phoneNumber"] == "+442079460958" and "address2" not in patched.body["billTo"]
    with pytest.raises(RetryableError):
        await client.update_customer_instrument(customer_id, first, {"default": True}, if_match=read.etag)
    with pytest.raises(Rejected) as swap:
        await client.update_customer_instrument(customer_id, first, {"instrumentIdentifier": {"id": "7010"}})
    assert swap.value.provider_code == "unsupportedPaymentMethodModification"
    with pytest.raises(Rejected) as bad_month:
        await client.update_customer_instrument(customer_id, first,
                                                {"card": {"expirationMonth": "13", "expirationYear": "2030"}})
    assert bad_month.value.field == "card.expirationMonth"

    identifier = patched.body["instrumentIdentifier"]["id"]
    with pytest.raises(Conflict) as in_use:  # still used by payment instruments
        await client.delete_instrument_identifier(identifier)
    assert in_use.value.provider_code == "instrumentIdentifierDeletionError"
    await client.delete_customer_instrument(customer_id, second)
    assert (await client.get_customer(customer_id)).body["defaultPaymentInstrument"] == {"id": first}
    with pytest.raises(NotFound) as gone:
        await client.get_customer_instrument(customer_id, second)
    assert gone.value.status == 410
    with pytest.raises(NotFound):
        await client.update_customer_instrument(customer_id, second, {"default": True})
    users = (await client.identifier_instruments(identifier)).body
    assert first in {pi["id"] for pi in users["_embedded"]["paymentInstruments"]}


async def test_tms_refusals_have_the_tms_shape(client: CybersourceClient, sandbox: Sandbox) -> None:
    customer_id = await new_customer(client)
    with pytest.raises(Rejected) as missing:
        await client.create_customer_instrument(customer_id, {"card": {"expirationMonth": "09"}})
    assert missing.value.provider_code == "missingFields" and missing.value.field == "instrumentIdentifier.id"
    body = orjson.loads(missing.value.body or "{}")
    assert body["errors"][0]["details"][0] == {"name": "instrumentIdentifier.id", "location": "body"}
    with pytest.raises(NotFound):
        await client.list_customer_instruments("0" * 32)
    async with signed_client(sandbox) as raw:
        answer = await raw.get(f"/tms/v2/customers/{customer_id}", headers={"profile-id": "short"})
    assert answer.status_code == 424
    assert answer.json()["errors"][0]["details"] == [{"name": "profile-id", "location": "header"}]


async def test_gateway_profiles(gateway: CybersourceGateway, client: CybersourceClient) -> None:
    seeded = await gateway.customer_profile(VISA_CUSTOMER)
    assert seeded.party.name == "John Doe" and seeded.party.phone == "4158880000"
    assert seeded.party.address == Address(line1="1 Market St", city="San Francisco", region="CA",
                                           postal_code="94105", country="US")
    [card] = seeded.instruments
    assert card.token.token_id == VISA_INSTRUMENT and card.default and card.state is TokenState.ACTIVE
    assert (card.token.brand, card.token.last4, card.token.expiry) == ("visa", "1111", date(2031, 12, 31))

    party = Party(name="Grace Hopper", email="grace@example.com", phone="+12127365000")
    made = await gateway.create_customer_profile(party, reference="dynamics_sl:customer:C200",
                                                 merchant_customer_id="C200")
    assert made.customer_id == gateway.profile_id_for("dynamics_sl:customer:C200")
    assert made.held == frozenset({"email"}) and made.merchant_customer_id == "C200"
    again = await gateway.create_customer_profile(party, reference="dynamics_sl:customer:C200")
    assert again.customer_id == made.customer_id  # found, not made twice
    with pytest.raises(Rejected) as nowhere:  # no stored card to hold a phone yet
        await gateway.update_customer_profile(made.customer_id, party, ["phone"])
    assert nowhere.value.field == "defaultPaymentInstrument.id"

    await add_card(client, made.customer_id)
    moved = party.model_copy(update={"address": Address(line1="1 Navy Yard", city="Arlington", region="VA",
                                                        postal_code="22202", country="US"),
                                     "email": "grace@navy.mil"})
    await gateway.update_customer_profile(made.customer_id, moved, ["name", "email", "phone", "address"])
    profile = await gateway.customer_profile(made.customer_id)
    assert profile.party.name == "Grace Hopper" and profile.party.email == "grace@navy.mil"
    assert profile.party.phone == "+12127365000" and profile.party.address == moved.address
    assert profile.held == frozenset({"name", "email", "phone", "address"})
    with pytest.raises(NotFound):
        await gateway.customer_profile("E" * 32)


async def test_token_webhooks_are_signed_and_parse_to_token_events(
        client: CybersourceClient, gateway: CybersourceGateway, sandbox: Sandbox, receiver: Receiver) -> None:
    customer_id = await new_customer(client)
    instrument = await add_card(client, customer_id)
    await client.update_customer_instrument(customer_id, instrument, {"billTo": {"locality": "Bath"}})
    http = sandbox_control(sandbox)
    expired = await http.post(f"/__sandbox/tms/payment-instruments/{instrument}/expire", json={})
    assert expired.status_code == 200, expired.text
    await client.delete_customer_instrument(customer_id, instrument)
    deliveries = await drain(sandbox, receiver)
    await http.aclose()
    events = []
    for delivery in deliveries:
        gateway.verify_webhook(delivery.headers, delivery.body)
        assert delivery.headers["v-c-product-name"] == "tokenManagement"
        assert find_card_numbers(delivery.body.decode()) == []
        events.append(gateway.parse_webhook(delivery.headers, delivery.body))
    assert [e.gateway_event_type for e in events] == ["tms.token.created", "tms.token.updated",
                                                      "tms.token.expired", "tms.token.deleted"]
    assert [e.token_event.kind for e in events if e.token_event] == [
        TokenEventKind.ADDED, TokenEventKind.UPDATED, TokenEventKind.EXPIRED, TokenEventKind.DELETED]
    for event in events:
        assert event.event_type is EventType.TOKEN and event.partition_key == f"customer:{customer_id}"
        assert event.token_event is not None and event.token_event.customer_token == customer_id
        assert event.token_event.instrument_token == instrument and event.token_event.instrument_identifier
    assert len({e.event_id for e in events}) == 4  # one per change, though all are about one card
    redelivered = parse_notification(deliveries[0].body)
    assert redelivered.event_id == events[0].event_id


async def test_expired_card_reads_as_expired(client: CybersourceClient, gateway: CybersourceGateway,
                                             sandbox: Sandbox) -> None:
    customer_id = await new_customer(client)
    instrument = await add_card(client, customer_id)
    http = sandbox_control(sandbox)
    answer = await http.post(f"/__sandbox/tms/payment-instruments/{instrument}/expire",
                             json={"month": "01", "year": "2020"})
    missing = await http.post("/__sandbox/tms/payment-instruments/NOPE/expire", json={})
    await http.aclose()
    assert answer.status_code == 200 and missing.status_code == 404
    [card] = (await gateway.customer_profile(customer_id)).instruments
    assert card.state is TokenState.EXPIRED and card.token.expiry == date(2020, 1, 31)


def sandbox_control(sandbox: Sandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://sandbox.test")
