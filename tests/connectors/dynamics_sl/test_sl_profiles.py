"""Customer payment profiles in SL: the xLLCustToken rows, the customer-changes list, and the back office's
profile calls, over HTTP against the sandbox."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from ledgerlink.connectors.dynamics_sl import DynamicsSLBackOffice
from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState
from ledgerlink.connectors.kit.errors import Conflict, NotFound, Rejected
from ledgerlink.model import Address, InvalidInput, Party, PaymentToken, StoredInstrument, TokenState

TOKEN = "F67E19FBC55DF3AAE053AF598E0A2EA6"
CARD = "A0000000000000000000000000005555"


def card(token_id: str = CARD, *, state: TokenState = TokenState.ACTIVE, default: bool = True,
         last4: str = "4444") -> StoredInstrument:
    return StoredInstrument(token=PaymentToken(gateway="cybersource", token_id=token_id, brand="mastercard",
                                               last4=last4, expiry=date(2031, 12, 31)),
                            instrument_identifier="7010000000012344444", state=state, default=default)


async def make_customer(api: httpx.AsyncClient, cust_id: str, **fields: str) -> None:
    body = {"CustId": cust_id, "Name": "Ada Lovelace", "EMailAddr": "ada@example.com", "Addr1": "1 Main St",
            "City": "Springfield", "State": "IL", "Zip": "62701", "Country": "US", "Phone": "+12175550100", **fields}
    answer = await api.post("/api/v1/customers", json=body)
    assert answer.status_code == 201, answer.text


async def test_profile_reads_customer_and_links(api: httpx.AsyncClient, back_office: DynamicsSLBackOffice) -> None:
    await make_customer(api, "C100")
    profile = await back_office.customer_profile("C100")
    assert profile.party.name == "Ada Lovelace" and profile.party.phone == "+12175550100"
    assert profile.party.address == Address(line1="1 Main St", city="Springfield", region="IL", postal_code="62701",
                                            country="US")
    assert profile.linked_profiles == {} and profile.instruments == ()
    assert profile.changed_at == datetime(2026, 3, 14, 10, 30, tzinfo=UTC)

    await back_office.set_payment_profile("C100", "cybersource", TOKEN, [card()])
    linked = await back_office.customer_profile("C100")
    assert linked.linked("cybersource") == TOKEN and linked.instruments == (card(),)
    assert await back_office.find_customer_by_profile("cybersource", TOKEN) == "C100"
    assert await back_office.find_customer_by_profile("cybersource", "0" * 32) is None

    expired = card(state=TokenState.EXPIRED)
    await back_office.set_payment_profile("C100", "cybersource", TOKEN, [expired])
    assert (await back_office.customer_profile("C100")).instruments == (expired,)
    await back_office.set_payment_profile("C100", "cybersource", TOKEN, [])
    assert (await back_office.customer_profile("C100")).instruments == ()
    with pytest.raises(NotFound):
        await back_office.customer_profile("NOPE")


async def test_bill_to_is_used_when_entered(api: httpx.AsyncClient, back_office: DynamicsSLBackOffice) -> None:
    await make_customer(api, "C101", BillAddr1="9 Bill Rd", BillCity="Peoria", BillState="IL", BillZip="61602",
                        BillCountry="US", BillPhone="+13095550100")
    profile = await back_office.customer_profile("C101")
    assert profile.party.address == Address(line1="9 Bill Rd", city="Peoria", region="IL", postal_code="61602",
                                            country="US")
    assert profile.party.phone == "+13095550100"
    moved = Party(name="Ada King", phone="+13095550199",
                  address=Address(line1="10 Bill Rd", city="Peoria", region="IL", postal_code="61603", country="US"))
    await back_office.update_customer_profile("C101", moved, ["name", "phone", "address"])
    row = (await api.get("/api/v1/customers/C101")).json()
    assert (row["Name"], row["BillAddr1"], row["BillZip"], row["BillPhone"]) == ("Ada King", "10 Bill Rd", "61603",
                                                                                  "+13095550199")
    assert (row["Addr1"], row["Phone"]) == ("1 Main St", "+12175550100")  # the main address is left alone


async def test_bad_values_are_refused_before_writing(api: httpx.AsyncClient,
                                                     back_office: DynamicsSLBackOffice) -> None:
    await make_customer(api, "C102")
    with pytest.raises(InvalidInput) as refused:
        await back_office.update_customer_profile(
            "C102", Party(name=None, address=Address(line1="x", region="Bavaria", postal_code="12345678901")),
            ["name", "address"])
    assert {i.field for i in refused.value.issues} == {"Customer.Name", "Customer.State", "Customer.Zip"}
    assert (await api.get("/api/v1/customers/C102")).json()["Name"] == "Ada Lovelace"


async def test_a_token_belongs_to_one_customer(api: httpx.AsyncClient, back_office: DynamicsSLBackOffice) -> None:
    await make_customer(api, "C103")
    await make_customer(api, "C104")
    await back_office.set_payment_profile("C103", "cybersource", TOKEN, [card()])
    with pytest.raises(Conflict) as taken:
        await back_office.set_payment_profile("C104", "cybersource", TOKEN, [])
    assert taken.value.provider_code == "TokenLinkedElsewhere" and taken.value.existing == "C103"
    bad = await api.post("/api/v1/customers/C104/payment-profile", json={
        "Gateway": "cybersource", "CustomerToken": "T2",
        "Instruments": [{"TokenId": "P1", "Last4": "12", "IsDefault": 1}]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Instruments[0].Last4"
    two_defaults = await api.post("/api/v1/customers/C104/payment-profile", json={
        "Gateway": "cybersource", "CustomerToken": "T2",
        "Instruments": [{"TokenId": "P1", "IsDefault": 1}, {"TokenId": "P2", "IsDefault": 1}]})
    assert two_defaults.status_code == 422
    with pytest.raises(Rejected) as pan:  # a card number never reaches SL
        await back_office.set_payment_profile("C104", "cybersource", "T2", [card("4111111111111111")])
    assert pan.value.status == 422
    assert (await api.get("/api/v1/payment-tokens", params={"CustId": "C104"})).json()["value"] == []


async def test_changed_customers_page_by_minute_then_id(api: httpx.AsyncClient, state: SandboxState,
                                                        back_office: DynamicsSLBackOffice) -> None:
    start = datetime(2026, 3, 14, 10, 30)
    for minute, cust_id in ((0, "C3"), (0, "C1"), (1, "C2")):
        state.clock = lambda m=minute: start + timedelta(minutes=m)  # type: ignore[misc]
        await make_customer(api, cust_id)
    since = datetime(2026, 3, 14, 10, 30, tzinfo=UTC)
    everything = await back_office.changed_customers(since)
    assert [c.customer_id for c in everything] == ["C1", "C3", "C2"]
    first = await back_office.changed_customers(since, limit=2)
    rest = await back_office.changed_customers(first[-1].changed_at, after=first[-1].customer_id, limit=2)
    assert [c.customer_id for c in first + rest] == ["C1", "C3", "C2"]
    later = await back_office.changed_customers(datetime(2026, 3, 14, 10, 31, tzinfo=UTC))
    assert [c.customer_id for c in later] == ["C2"]
    state.clock = lambda: start + timedelta(minutes=5)  # type: ignore[misc]
    await back_office.set_payment_profile("C1", "cybersource", TOKEN, [card()])  # a new link is a change
    linked = await back_office.changed_customers(datetime(2026, 3, 14, 10, 35, tzinfo=UTC))
    assert [(c.customer_id, c.linked("cybersource")) for c in linked] == [("C1", TOKEN)]
    await back_office.set_payment_profile("C1", "cybersource", TOKEN, [card()])  # the same again: no change
    state.clock = lambda: start + timedelta(minutes=9)  # type: ignore[misc]
    assert await back_office.changed_customers(datetime(2026, 3, 14, 10, 36, tzinfo=UTC)) == []
    bad = await api.get("/api/v1/customer-changes", params={"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "LUpd_DateTime"
