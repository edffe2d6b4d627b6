"""Customer payment profiles end to end: SL customers and their changes (read by the engine's poll) become
Cybersource TMS customers, and the gateway's signed tms.token.* webhooks update the SL payment-method
reference, with normalised phones and addresses, a conflict policy, and a case for a card nobody can link."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerlink.integrations import ConfigError, parse_integration
from ledgerlink.model import find_card_numbers
from tests.flows.harness import VISA_INSTRUMENT, Pair, integration_document, running_pair

MASTERCARD_INSTRUMENT = "A0000000000000000000000000005555"
POLL = "poll-customer-changes"


@pytest.fixture
async def pair(tmp_path: Path, database_target: tuple[str, str | None]) -> AsyncIterator[Pair]:
    url, schema = database_target
    async with running_pair(tmp_path, url, schema, flows={"profile_sync": {"enabled": True}}) as running:
        yield running


class Shop:
    """The merchant's web shop and the customer at it: TMS calls through the storefront's signed client."""

    def __init__(self, pair: Pair) -> None:
        self.client = pair.storefront.client
        self.controls = httpx.AsyncClient(transport=httpx.ASGITransport(app=pair.cybersource.app),
                                          base_url="http://cybersource.sandbox")

    async def identifier(self, instrument: str = MASTERCARD_INSTRUMENT) -> str:
        doc = await self.client.get_customer_instrument(instrument.replace("A", "C", 1), instrument)
        return str(doc.body["instrumentIdentifier"]["id"])

    async def customer(self, **buyer: str) -> str:
        created = await self.client.create_customer({"buyerInformation": buyer})
        return str(created.body["id"])

    async def add_card(self, customer: str, instrument: str = MASTERCARD_INSTRUMENT, **bill_to: str) -> str:
        body = {"card": {"expirationMonth": "11", "expirationYear": "2030"},
                "instrumentIdentifier": {"id": await self.identifier(instrument)},
                "billTo": bill_to or {"firstName": "Card", "lastName": "Holder", "address1": "5 Shop Lane",
                                      "locality": "Austin", "administrativeArea": "TX", "postalCode": "73301",
                                      "country": "US", "phoneNumber": "5125550100"}}
        created = await self.client.create_customer_instrument(customer, body)
        return str(created.body["id"])

    async def profile(self, customer: str) -> dict[str, Any]:
        doc = (await self.client.get_customer(customer)).body
        default = (doc.get("_embedded") or {}).get("defaultPaymentInstrument") or {}
        return {"email": doc["buyerInformation"].get("email"),
                "merchantCustomerID": doc["buyerInformation"].get("merchantCustomerID"),
                "billTo": default.get("billTo")}

    async def expire(self, instrument: str) -> None:
        answer = await self.controls.post(f"/__sandbox/tms/payment-instruments/{instrument}/expire", json={})
        assert answer.status_code == 200, answer.text


@pytest.fixture
async def shop(pair: Pair) -> AsyncIterator[Shop]:
    running = Shop(pair)
    yield running
    await running.controls.aclose()


async def sl_customer(pair: Pair, cust_id: str, **fields: Any) -> None:
    body = {"CustId": cust_id, "Name": "Ada Lovelace", "EMailAddr": "Ada@Example.com", "Addr1": "1  main st",
            "City": "Springfield", "State": "il ", "Zip": "627011234", "Country": "USA",
            "Phone": "(217) 555-0123", **fields}
    answer = await pair.sl_http.post("/api/v1/customers", json=body)
    assert answer.status_code == 201, answer.text


async def sl_change(pair: Pair, cust_id: str, **fields: Any) -> None:
    answer = await pair.sl_http.patch(f"/api/v1/customers/{cust_id}", json=fields)
    assert answer.status_code == 200, answer.text


async def sl_tokens(pair: Pair, cust_id: str) -> dict[str, dict[str, Any]]:
    profile = await pair.sl_get(f"customers/{cust_id}/payment-profile")
    return {row["TokenId"]: row for row in profile["Tokens"]}


async def poll(pair: Pair) -> None:
    await pair.run_job(POLL)


def counters(pair: Pair) -> dict[str, int]:
    return pair.stats()["counters"]  # type: ignore[no-any-return]


async def linked_customer(pair: Pair, shop: Shop, cust_id: str) -> tuple[str, str]:
    """An SL customer synced to a TMS customer the engine made, with one card added at the shop."""
    await sl_customer(pair, cust_id)
    await poll(pair)
    [token] = [t for t, row in (await sl_tokens(pair, cust_id)).items() if row["TokenKind"] == "CU"]
    instrument = await shop.add_card(token)
    await pair.settle()
    await poll(pair)  # the engine's own writes come back as changes: nothing to do
    return token, instrument


async def test_new_sl_customer_gets_a_gateway_profile_and_its_cards(pair: Pair, shop: Shop) -> None:
    await sl_customer(pair, "C100")
    await poll(pair)
    tokens = await sl_tokens(pair, "C100")
    [(token, link)] = [(t, row) for t, row in tokens.items() if row["TokenKind"] == "CU"]
    assert link["Gateway"] == "cybersource"
    assert token == pair.integration.gateway.profile_id_for("dynamics_sl:customer:C100")
    assert await shop.profile(token) == {"email": "ada@example.com", "merchantCustomerID": "C100", "billTo": None}

    instrument = await shop.add_card(token)  # the customer stores a card at the shop
    await pair.settle()
    row = (await sl_tokens(pair, "C100"))[instrument]
    assert (row["TokenKind"], row["Brand"], row["Last4"], row["ExpDate"], row["Status"], row["IsDefault"]) == (
        "PI", "mastercard", "4444", "11/30/2030", "A", 1)
    # nothing agreed yet and SL is the customer master (erp_wins): SL's details, normalised, go onto the card
    assert (await shop.profile(token))["billTo"] == {
        "firstName": "Ada", "lastName": "Lovelace", "address1": "1 main st", "locality": "Springfield",
        "administrativeArea": "IL", "postalCode": "62701-1234", "country": "US", "phoneNumber": "+12175550123"}
    got = counters(pair)
    assert got["profile.gateway_customers_created"] == 1 and got["profile.first_sync_conflicts"] == 3
    assert "profile.conflicts" not in got
    await poll(pair)  # the link and the card are SL changes too; syncing them again changes nothing
    await poll(pair)
    assert counters(pair)["profile.gateway_customers_created"] == 1
    stats = pair.stats()["events"]
    assert stats.get("dead", 0) == 0


async def test_sl_changes_reach_the_gateway_normalised(pair: Pair, shop: Shop) -> None:
    token, _ = await linked_customer(pair, shop, "C101")
    await sl_change(pair, "C101", Phone="+44 20 7946 0958", Addr1="12 St James's  Sq", City="London", State=" ",
                    Zip="sw1y4jh", Country="gbr", EMailAddr="ada@lovelace.org")
    await poll(pair)
    profile = await shop.profile(token)
    assert profile["email"] == "ada@lovelace.org"
    bill = profile["billTo"]
    assert (bill["address1"], bill["locality"], bill["postalCode"], bill["country"], bill["phoneNumber"]) == (
        "12 St James's Sq", "London", "SW1Y 4JH", "GB", "+442079460958")
    assert "administrativeArea" not in bill
    assert find_card_numbers(str(pair.cybersource.store.snapshot())) == []


async def test_token_events_update_the_sl_payment_method_reference(pair: Pair, shop: Shop) -> None:
    token, first = await linked_customer(pair, shop, "C102")
    second = await shop.add_card(token, VISA_INSTRUMENT, firstName="Ada", lastName="Lovelace")
    await pair.settle()
    rows = await sl_tokens(pair, "C102")
    assert (rows[second]["Brand"], rows[second]["Last4"], rows[second]["IsDefault"]) == ("visa", "1111", 0)

    await shop.client.update_customer_instrument(token, second, {"card": {"expirationMonth": "02",
                                                                          "expirationYear": "2034"},
                                                                 "default": True})
    await pair.settle()
    rows = await sl_tokens(pair, "C102")
    assert (rows[second]["ExpDate"], rows[second]["IsDefault"], rows[first]["IsDefault"]) == ("02/28/2034", 1, 0)

    await shop.expire(first)
    await pair.settle()
    assert (await sl_tokens(pair, "C102"))[first]["Status"] == "E"

    await shop.client.delete_customer_instrument(token, first)
    await pair.settle()
    rows = await sl_tokens(pair, "C102")
    assert rows[first]["Status"] == "D" and rows[second]["Status"] == "A"
    got = counters(pair)
    assert got["profile.token_events.added"] >= 2 and got["profile.token_events.expired"] == 1
    assert got["profile.token_events.deleted"] == 1


async def test_a_gateway_change_reaches_sl(pair: Pair, shop: Shop) -> None:
    token, instrument = await linked_customer(pair, shop, "C103")
    await shop.client.update_customer_instrument(token, instrument, {"billTo": {
        "address1": "9 Elm St", "locality": "Chicago", "administrativeArea": "Illinois", "postalCode": "60601",
        "phoneNumber": "312 555 0188"}})
    await pair.settle()
    row = await pair.sl_get("customers/C103")
    assert (row["Addr1"], row["City"], row["State"], row["Zip"], row["Country"], row["Phone"]) == (
        "9 Elm St", "Chicago", "IL", "60601", "US", "+13125550188")
    assert counters(pair).get("profile.conflicts", 0) == 0


async def test_unknown_customer_opens_a_case_until_linked(pair: Pair, shop: Shop) -> None:
    stranger = await shop.customer(email="stranger@example.com")
    instrument = await shop.add_card(stranger)
    await pair.settle()
    cases = (await pair.engine_http.get("/admin/cases", params={"type": "token_unlinked"})).json()["items"]
    [case] = cases
    assert case["reference"] == stranger and case["evidence"]["cards"][0]["last4"] == "4444"
    assert case["evidence"]["instrument_token"] == instrument
    assert pair.stats()["events"].get("dead", 0) == 0  # a case, not an error that retries
    assert counters(pair)["profile.unlinked_tokens"] == 1

    await sl_customer(pair, "C104", EMailAddr="stranger@example.com")
    answer = await pair.sl_http.post("/api/v1/customers/C104/payment-profile", json={
        "Gateway": "cybersource", "CustomerToken": stranger, "Instruments": []})  # a person links them in SL
    assert answer.status_code == 200, answer.text
    await poll(pair)
    assert (await sl_tokens(pair, "C104"))[instrument]["Last4"] == "4444"
    still_open = (await pair.engine_http.get("/admin/cases", params={"type": "token_unlinked"})).json()["items"]
    assert still_open == []


async def test_merchant_customer_id_links_a_shop_profile(pair: Pair, shop: Shop) -> None:
    await sl_customer(pair, "C105")
    await poll(pair)
    shop_customer = await shop.customer(email="ada@example.com", merchantCustomerID="C106")
    await sl_customer(pair, "C106", EMailAddr="grace@example.com", Name="Grace Hopper")
    answer = await pair.sl_http.get("/api/v1/payment-tokens", params={"CustId": "C106"})
    assert answer.json()["value"] == []  # C106 was created after the poll: not linked yet
    await shop.add_card(shop_customer)
    await pair.settle()
    assert await pair.integration.back_office.find_customer_by_profile("cybersource", shop_customer) == "C106"
    assert counters(pair)["profile.matched_by.merchant_customer_id"] == 1


async def test_bad_sl_input_is_refused_naming_the_field_and_nothing_is_written(pair: Pair, shop: Shop) -> None:
    await sl_customer(pair, "C107", Phone="call after 5pm")
    await poll(pair)
    dead = (await pair.engine_http.get("/admin/dlq")).json()
    [item] = dead["items"]
    detail = (await pair.engine_http.get(f"/admin/dlq/{item['seq']}")).json()
    assert "phone" in str(detail) and "call after 5pm" in str(detail)
    token = pair.integration.gateway.profile_id_for("dynamics_sl:customer:C107")
    with pytest.raises(Exception):  # noqa: B017 - the gateway never saw the customer
        await shop.client.get_customer(token)
    assert await sl_tokens(pair, "C107") == {}


async def conflict(pair: Pair, shop: Shop, cust_id: str, *, sl_minutes_ago: int = 0) -> tuple[str, str]:
    """SL's phone and the card's phone both changed since they last agreed."""
    token, instrument = await linked_customer(pair, shop, cust_id)
    if sl_minutes_ago:
        pair.sl.clock = lambda: datetime.now() - timedelta(minutes=sl_minutes_ago)
    await sl_change(pair, cust_id, Phone="217-555-0199")  # not polled yet
    pair.sl.clock = datetime.now
    await shop.client.update_customer_instrument(token, instrument, {"billTo": {"phoneNumber": "217 555 0177"}})
    await pair.settle()
    return token, instrument


async def test_conflict_erp_wins_by_default(pair: Pair, shop: Shop) -> None:
    token, _ = await conflict(pair, shop, "C108")
    assert (await shop.profile(token))["billTo"]["phoneNumber"] == "+12175550199"
    assert (await pair.sl_get("customers/C108"))["Phone"] == "217-555-0199"
    got = counters(pair)
    assert got["profile.conflicts"] == 1 and got["profile.conflicts.phone"] == 1


@pytest.mark.parametrize(("policy", "sl_minutes_ago", "gateway_wins"), [
    ("gateway_wins", 0, True),
    ("newest_wins", 5, True),  # the gateway changed after SL did
    ("newest_wins", 0, False),  # the same minute: a tie goes to SL
])
async def test_conflict_policies(tmp_path: Path, sqlite_url: str, policy: str, sl_minutes_ago: int,
                                 gateway_wins: bool) -> None:
    flows = {"profile_sync": {"enabled": True, "conflict_policy": policy}}
    async with running_pair(tmp_path, sqlite_url, flows=flows) as pair:
        shop = Shop(pair)
        try:
            token, _ = await conflict(pair, shop, "C109", sl_minutes_ago=sl_minutes_ago)
            await poll(pair)  # whatever was written to SL comes back as a change and settles nothing new
            sl_phone = (await pair.sl_get("customers/C109"))["Phone"]
            gateway_phone = (await shop.profile(token))["billTo"]["phoneNumber"]
            if gateway_wins:  # written into SL normalised; the card keeps it as the shop typed it
                assert (sl_phone, gateway_phone) == ("+12175550177", "217 555 0177")
            else:
                assert (sl_phone, gateway_phone) == ("217-555-0199", "+12175550199")
            got = counters(pair)
            assert got["profile.conflicts"] == 1 and got["profile.conflicts.phone"] == 1
        finally:
            await shop.controls.aclose()


def test_policy_and_region_are_validated_naming_the_field() -> None:
    with pytest.raises(ConfigError) as bad_policy:
        parse_integration(integration_document(flows={"profile_sync": {"conflict_policy": "last_one"}}))
    assert "flows.profile_sync.conflict_policy" in str(bad_policy.value)
    assert "erp_wins" in str(bad_policy.value)
    with pytest.raises(ConfigError) as bad_region:
        parse_integration(integration_document(flows={"profile_sync": {"default_region": "XX"}}))
    assert "flows.profile_sync.default_region" in str(bad_region.value)


async def test_duplicate_and_repeated_deliveries_change_nothing_twice(tmp_path: Path, sqlite_url: str) -> None:
    flows = {"profile_sync": {"enabled": True}}
    async with running_pair(tmp_path, sqlite_url, flows=flows, emitter={"duplicate_rate": 1.0}) as pair:
        shop = Shop(pair)
        try:
            token, instrument = await linked_customer(pair, shop, "C110")
            started = time.monotonic()
            await shop.client.update_customer_instrument(token, instrument, {"billTo": {"locality": "Peoria"}})
            await pair.settle()
            assert time.monotonic() - started < 10
            assert (await pair.sl_get("customers/C110"))["City"] == "Peoria"
            got = counters(pair)
            assert got["profile.erp_updates"] == 1 and got["events.duplicates"] >= 1
        finally:
            await shop.controls.aclose()
