"""SL customers as canonical ``CustomerProfile``s, and the requests that change them.

Profile fields: ``Name``, ``EMailAddr``, the phone and the billing address. SL keeps a main address
(``Addr1``..``Country``, ``Phone``) and a bill-to (``BillAddr1``..``BillCountry``, ``BillPhone``) that is
left blank when it is the main one; the profile reads the bill-to when one is entered, else the main
address, and writes back to the group it read. The gateway links and stored cards are the customer's
rows in the gateway's ``xLLCustToken`` table (sandbox/payment_profiles.py says why a table of our own).
``LUpd_DateTime`` (SL's time, to the minute) is when the customer last changed.

Codes that would change meaning if cut (state, ZIP, country, e-mail) are refused with the SL field they
do not fit; free text is cut to its CHAR length.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from ledgerlink.connectors.dynamics_sl.client import SLCall
from ledgerlink.connectors.dynamics_sl.settings import DynamicsSLSettings
from ledgerlink.connectors.dynamics_sl.translate import cut
from ledgerlink.model import (
    PROFILE_FIELDS,
    Address,
    CustomerProfile,
    FieldIssue,
    InvalidInput,
    Party,
    PaymentToken,
    StoredInstrument,
    TokenState,
)

SYSTEM = "dynamics_sl"
SOURCE = "dynamics_sl customer"
STATES = {"A": TokenState.ACTIVE, "E": TokenState.EXPIRED, "D": TokenState.DELETED}
STATE_CODES = {state: code for code, state in STATES.items()}
_ADDRESS = ("Addr1", "Addr2", "City", "State", "Zip", "Country")


def _raw(body: Any) -> Any:
    return body


def _rows(body: Any) -> list[dict[str, Any]]:
    return [row for row in body.get("value", []) if isinstance(row, dict)]


class ProfileCalls:
    @staticmethod
    def get_customer(cust_id: str) -> SLCall:
        return SLCall("get_customer", "GET", f"/customers/{quote(cust_id, safe='')}", _raw)

    @staticmethod
    def update_customer(cust_id: str, body: Mapping[str, Any]) -> SLCall:
        return SLCall("update_customer", "PATCH", f"/customers/{quote(cust_id, safe='')}", _raw, body)

    @staticmethod
    def payment_profile(cust_id: str) -> SLCall:
        return SLCall("get_payment_profile", "GET", f"/customers/{quote(cust_id, safe='')}/payment-profile", _raw)

    @staticmethod
    def set_payment_profile(cust_id: str, body: Mapping[str, Any]) -> SLCall:
        return SLCall("set_payment_profile", "POST", f"/customers/{quote(cust_id, safe='')}/payment-profile",
                      _raw, body)

    @staticmethod
    def changes(since: str | None, after: str | None, top: int) -> SLCall:
        query = {k: v for k, v in (("since", since), ("after", after), ("$top", str(top))) if v is not None}
        return SLCall("customer_changes", "GET", "/customer-changes?" + urlencode(query), _rows)

    @staticmethod
    def tokens(gateway: str, token_id: str, kind: str = "CU") -> SLCall:
        query = urlencode({"Gateway": gateway, "TokenId": token_id, "TokenKind": kind})
        return SLCall("find_payment_token", "GET", f"/payment-tokens?{query}", _rows)


def _text(row: Mapping[str, Any], name: str) -> str | None:
    value = row.get(name)
    return value.strip() or None if isinstance(value, str) else None


def bill_group(row: Mapping[str, Any]) -> str:
    """``Bill`` when the customer has a bill-to address of its own, else ``""`` (the main address)."""
    return "Bill" if any(_text(row, f"Bill{n}") for n in ("Addr1", "City", "Zip")) else ""


def sl_time(value: str | None, settings: DynamicsSLSettings) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(FieldIssue("Customer.LUpd_DateTime", f"{value!r} is not a date and time"),
                           source=SOURCE) from None
    return moment.replace(tzinfo=settings.zone) if moment.tzinfo is None else moment


def _expiry(value: str | None, settings: DynamicsSLSettings, field: str) -> date | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, settings.date_format).date()
    except ValueError:
        raise InvalidInput(FieldIssue(field, f"{value!r} is not a date ({settings.date_format})"),
                           source=SOURCE) from None
    return None if day.year <= 1900 else day


def read_profile(row: Mapping[str, Any], tokens: Sequence[Mapping[str, Any]],
                 settings: DynamicsSLSettings) -> CustomerProfile:
    cust_id = _text(row, "CustId")
    if cust_id is None:
        raise InvalidInput(FieldIssue("Customer.CustId", "missing"), source=SOURCE)
    group = bill_group(row)
    parts = {n: _text(row, f"{group}{n}") for n in _ADDRESS}
    address = Address(line1=parts["Addr1"], line2=parts["Addr2"], city=parts["City"], region=parts["State"],
                      postal_code=parts["Zip"], country=parts["Country"])
    party = Party(id=cust_id, name=_text(row, "Name"), email=_text(row, "EMailAddr"),
                  phone=_text(row, f"{group}Phone") or _text(row, "Phone"),
                  address=address if any(parts.values()) else None)
    links: dict[str, str] = {}
    instruments: list[StoredInstrument] = []
    for index, token in enumerate(tokens):
        gateway, token_id = _text(token, "Gateway"), _text(token, "TokenId")
        if gateway is None or token_id is None:
            continue
        if _text(token, "TokenKind") == "CU":
            links[gateway] = token_id
            continue
        state = STATES.get(_text(token, "Status") or "A")
        if state is None:
            raise InvalidInput(FieldIssue(f"xLLCustToken[{index}].Status", f"{token.get('Status')!r} is not A, E "
                                          "or D"), source=SOURCE)
        last4 = _text(token, "Last4")
        instruments.append(StoredInstrument(
            token=PaymentToken(gateway=gateway, token_id=token_id, kind="payment_instrument",
                               brand=_text(token, "Brand"), last4=last4 if last4 and last4.isdigit() else None,
                               expiry=_expiry(_text(token, "ExpDate"), settings, f"xLLCustToken[{index}].ExpDate")),
            instrument_identifier=_text(token, "IdentToken"), state=state, default=token.get("IsDefault") == 1,
        ))
    return CustomerProfile(system=SYSTEM, customer_id=cust_id, party=party, held=frozenset(PROFILE_FIELDS),
                           linked_profiles=links, instruments=tuple(instruments),
                           changed_at=sl_time(_text(row, "LUpd_DateTime"), settings))


def _code(value: str | None, length: int, field: str, issues: list[FieldIssue]) -> str:
    text = (value or "").strip()
    if len(text) > length:
        issues.append(FieldIssue(field, f"{text!r} is {len(text)} characters; SL allows {length}"))
    return text


def customer_patch(row: Mapping[str, Any], party: Party, fields: Collection[str]) -> dict[str, Any]:
    """The ``PATCH customers/{id}`` body writing ``fields`` of ``party`` (to the address group the customer
    uses). A value that does not fit its SL column is refused, naming the column; nothing is sent then."""
    unknown = set(fields) - set(PROFILE_FIELDS)
    if unknown:
        raise InvalidInput(FieldIssue("fields", f"not profile fields: {', '.join(sorted(unknown))}"), source=SOURCE)
    issues: list[FieldIssue] = []
    group = bill_group(row)
    body: dict[str, Any] = {}
    if "name" in fields:
        name = cut(party.display_name if party.name or party.first_name or party.last_name else "", 60)
        if not name:
            issues.append(FieldIssue("Customer.Name", "SL needs a customer name; a blank one is not written"))
        body["Name"] = name
    if "email" in fields:
        body["EMailAddr"] = _code(party.email, 80, "Customer.EMailAddr", issues)
    if "phone" in fields:
        body[f"{group}Phone" if group and _text(row, "BillPhone") else "Phone"] = _code(party.phone, 30,
                                                                                        "Customer.Phone", issues)
    if "address" in fields:
        address = party.address or Address()
        body.update({
            f"{group}Addr1": cut(address.line1, 60), f"{group}Addr2": cut(address.line2, 60),
            f"{group}City": cut(address.city, 30),
            f"{group}State": _code(address.region, 3, f"Customer.{group}State", issues),
            f"{group}Zip": _code(address.postal_code, 10, f"Customer.{group}Zip", issues),
            f"{group}Country": _code(address.country, 3, f"Customer.{group}Country", issues),
        })
    if issues:
        raise InvalidInput(issues, source=SOURCE)
    return body


def payment_profile_body(gateway: str, customer_token: str, instruments: Sequence[StoredInstrument],
                         settings: DynamicsSLSettings) -> dict[str, Any]:
    issues: list[FieldIssue] = []
    items = []
    for index, instrument in enumerate(instruments):
        token = instrument.token
        if token.gateway != gateway:
            issues.append(FieldIssue(f"instruments[{index}].token.gateway", f"a {token.gateway} token is not a "
                                     f"{gateway} card"))
        if len(token.token_id) > 40:
            issues.append(FieldIssue(f"instruments[{index}].token.token_id", "longer than xLLCustToken.TokenId (40)"))
        items.append({
            "TokenId": token.token_id, "IdentToken": instrument.instrument_identifier or "",
            "Brand": (token.brand or "")[:20], "Last4": token.last4 or "",
            "ExpDate": token.expiry.strftime(settings.date_format) if token.expiry else "",
            "Status": STATE_CODES[instrument.state], "IsDefault": int(instrument.default),
        })
    if len(customer_token) > 40:
        issues.append(FieldIssue("customer_token", "longer than xLLCustToken.TokenId (40)"))
    if issues:
        raise InvalidInput(issues, source=SOURCE)
    return {"Gateway": gateway, "CustomerToken": customer_token, "Instruments": items}


def since_text(moment: datetime | None, settings: DynamicsSLSettings) -> str | None:
    """An instant as SL's local time, for ``customer-changes?since=``."""
    if moment is None:
        return None
    local = moment.astimezone(settings.zone) if moment.tzinfo is not None else moment
    return local.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M")
