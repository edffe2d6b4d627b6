"""TMS customers and their stored cards as canonical ``CustomerProfile``s, and token webhooks as ``TokenEvent``s.

Where the profile fields live in TMS (spec §5): the customer holds ``buyerInformation.email`` and
``merchantCustomerID`` (the merchant's own id, here the back office's customer id); the name, phone and
billing address live on each stored card's ``billTo``. The profile reads them from the customer's
default payment instrument and writes them there, so a customer with no stored card holds an e-mail
only. A name is ``firstName lastName``; a name written back is split at its last space.

Token notifications (``tokenManagement``, spec §6.2/§6.3) carry a list payload whose ``data._links``
point at the tokens concerned: ``tms.token.created`` → added, ``tms.token.updated`` and
``tms.token.pan_updated`` → updated, and this sandbox's ``tms.token.expired``/``tms.token.deleted``.
The event id is the notification id (the same across retries and subscriptions), else a digest of the
payload; the partition is the customer's (``customer:<token>``, stored as ``profile_partition``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Any

import orjson

from ledgerlink.connectors.cybersource.instruments import read_instrument
from ledgerlink.model import (
    PROFILE_FIELDS,
    Address,
    CustomerProfile,
    EventType,
    FieldIssue,
    InvalidInput,
    Party,
    PaymentEvent,
    StoredInstrument,
    TokenEvent,
    TokenEventKind,
)

GATEWAY = "cybersource"
SOURCE = "cybersource customer"
TOKEN_EVENTS: dict[str, TokenEventKind] = {
    "tms.token.created": TokenEventKind.ADDED,
    "tms.token.updated": TokenEventKind.UPDATED,
    "tms.token.pan_updated": TokenEventKind.UPDATED,
    "tms.token.expired": TokenEventKind.EXPIRED,
    "tms.token.deleted": TokenEventKind.DELETED,
}
CARD_FIELDS = frozenset({"name", "phone", "address"})  # held on the default card's billTo


def customer_token_for(merchant_id: str, reference: str) -> str:
    """The customer id ledgerlink asks TMS for when it creates the customer for ``reference``: 32 upper-case
    hex characters, the same every time, so a create cut off by a crash is found again instead of repeated."""
    return hashlib.sha256(f"{merchant_id}:{reference}".encode()).hexdigest()[:32].upper()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def read_profile(customer: Any, instruments: list[Any], *, today: date | None = None) -> CustomerProfile:
    """A TMS customer (GET /tms/v2/customers/{id}) and its payment instruments as one profile."""
    if not isinstance(customer, dict) or not _text(customer.get("id")):
        raise InvalidInput(FieldIssue("id", "missing customer id"), source=SOURCE)
    buyer = customer.get("buyerInformation") if isinstance(customer.get("buyerInformation"), dict) else {}
    default_ref = customer.get("defaultPaymentInstrument")
    default_id = default_ref.get("id") if isinstance(default_ref, dict) else None
    stored: list[StoredInstrument] = []
    default_doc: dict[str, Any] | None = None
    for index, doc in enumerate(instruments):
        try:
            instrument = read_instrument(doc, today=today)
        except InvalidInput as exc:
            raise InvalidInput([FieldIssue(f"_embedded.paymentInstruments[{index}].{i.field}", i.reason)
                                for i in exc.issues], source=SOURCE) from None
        is_default = instrument.token.token_id == default_id
        if is_default != instrument.default:
            instrument = instrument.model_copy(update={"default": is_default})
        if is_default:
            default_doc = doc
        stored.append(instrument)
    bill = default_doc.get("billTo") if default_doc and isinstance(default_doc.get("billTo"), dict) else {}
    first, last = _text(bill.get("firstName")), _text(bill.get("lastName"))
    address = Address(line1=_text(bill.get("address1")), line2=_text(bill.get("address2")),
                      city=_text(bill.get("locality")), region=_text(bill.get("administrativeArea")),
                      postal_code=_text(bill.get("postalCode")), country=_text(bill.get("country")))
    party = Party(
        id=customer["id"],
        name=" ".join(p for p in (first, last) if p) or _text(bill.get("company")),
        first_name=first, last_name=last,
        email=_text(buyer.get("email")) or _text(bill.get("email")),
        phone=_text(bill.get("phoneNumber")),
        address=address if any(address.model_dump().values()) else None,
    )
    held = frozenset(PROFILE_FIELDS) if default_doc is not None else frozenset({"email"})
    return CustomerProfile(system=GATEWAY, customer_id=customer["id"], party=party, held=held,
                           merchant_customer_id=_text(buyer.get("merchantCustomerID")), instruments=tuple(stored))


def split_name(party: Party) -> tuple[str | None, str | None]:
    if party.first_name or party.last_name:
        return party.first_name, party.last_name
    if not party.name:
        return None, None
    first, _, last = party.name.rpartition(" ")
    return (first, last) if first else (None, last)


def customer_body(party: Party, *, customer_id: str, reference: str,
                  merchant_customer_id: str | None) -> dict[str, Any]:
    """POST /tms/v2/customers with our own id; ``reference`` travels as ``clientReferenceInformation.code``."""
    buyer = {k: v for k, v in (("merchantCustomerID", merchant_customer_id), ("email", party.email)) if v}
    return {"id": customer_id, "buyerInformation": buyer, "clientReferenceInformation": {"code": reference[:50]}}


def buyer_patch(party: Party, fields: Collection[str]) -> dict[str, Any] | None:
    if "email" not in fields:
        return None
    return {"buyerInformation": {"email": party.email or ""}}


def bill_to_patch(party: Party, fields: Collection[str]) -> dict[str, Any] | None:
    """A PATCH of the default card's ``billTo`` for the given profile fields (``""`` clears a part)."""
    bill: dict[str, str] = {}
    if "name" in fields:
        first, last = split_name(party)
        bill.update(firstName=first or "", lastName=last or "")
    if "phone" in fields:
        bill["phoneNumber"] = party.phone or ""
    if "address" in fields:
        address = party.address or Address()
        bill.update(address1=address.line1 or "", address2=address.line2 or "", locality=address.city or "",
                    administrativeArea=address.region or "", postalCode=address.postal_code or "",
                    country=address.country or "")
    if "email" in fields:
        bill["email"] = party.email or ""
    return {"billTo": bill} if bill else None


# --- token notifications --------------------------------------------------------------------------


def _href_ids(links: Mapping[str, Any], name: str) -> list[str]:
    """The path segments after each collection name in ``_links[name][*].href``."""
    found = links.get(name)
    items = found if isinstance(found, list) else [found] if isinstance(found, dict) else []
    return [str(item["href"]) for item in items if isinstance(item, dict) and isinstance(item.get("href"), str)]


def _after(href: str, collection: str) -> str | None:
    parts = href.split("?")[0].strip("/").split("/")
    for index, part in enumerate(parts[:-1]):
        if part == collection:
            return parts[index + 1] or None
    return None


def token_event(gateway_type: str, payload: Any, *, notification_id: str | None, occurred_at: datetime | None,
                digest: str, source: str) -> PaymentEvent:
    """A verified ``tms.token.*`` notification as a canonical event carrying a ``TokenEvent``."""
    kind = TOKEN_EVENTS[gateway_type]
    item = payload[0] if isinstance(payload, list) and payload else payload
    data = item.get("data") if isinstance(item, dict) else None
    if not isinstance(data, dict):
        raise InvalidInput(FieldIssue("payload[0].data", "missing"), source=source)
    links = data.get("_links") if isinstance(data.get("_links"), dict) else {}
    customer = next((c for h in _href_ids(links, "customers") if (c := _after(h, "customers"))), None)
    instrument = None
    for href in _href_ids(links, "paymentInstruments"):
        instrument = _after(href, "payment-instruments") or _after(href, "paymentinstruments")
        customer = customer or _after(href, "customers")
        if instrument:
            break
    identifier = next((i for h in _href_ids(links, "instrumentIdentifiers")
                       if (i := _after(h, "instrumentidentifiers"))), None)
    if instrument is None and data.get("object") == "paymentInstrument" and _text(data.get("id")):
        instrument = data["id"]
    if customer is None and data.get("object") == "customer" and _text(data.get("id")):
        customer = data["id"]
    if customer is None and instrument is None:
        raise InvalidInput(FieldIssue("payload[0].data._links", "names neither a customer nor a payment instrument"),
                           source=source)
    subject = instrument or customer
    assert subject is not None
    ident = notification_id or hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    event = TokenEvent(gateway=GATEWAY, kind=kind, customer_token=customer, instrument_token=instrument,
                       instrument_identifier=identifier, occurred_at=occurred_at)
    return PaymentEvent(
        source=GATEWAY, event_id=f"{gateway_type}:{subject}:{ident}", event_type=EventType.TOKEN,
        gateway_event_type=gateway_type, occurred_at=occurred_at,
        # the service prefixes the gateway's name: profile_partition(GATEWAY, customer) is where it lands
        partition_key=f"customer:{customer}" if customer else f"instrument:{instrument}",
        payment_id="", token_event=event, payload_sha256=digest,
    )
