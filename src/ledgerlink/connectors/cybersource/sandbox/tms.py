"""The Token Management Service (spec §5): customers, payment instruments, instrument identifiers.

Create, read, change (PATCH with ``if-match`` → 412 when the ETag is stale) and delete each of them,
with TMS's own error family (``{errors: [{type, message, details}]}``) and ``410 notAvailable`` for a
token that was deleted. A customer may be created with an id of the client's choosing (32 hex
characters; ``409 tokenIdConflict`` when taken), which lets a client create one customer per record of
its own and find it again after a crash. Shipping addresses and network tokens are not simulated.

Every change to a stored card is reported as a ``tokenManagement`` webhook (``notify``):
``tms.token.created`` when an instrument is added (also by ``TOKEN_CREATE`` in a payment),
``tms.token.updated`` when an instrument or customer changes, ``tms.token.expired`` when a card's expiry
month passes (``expire``, a sandbox control) and ``tms.token.deleted`` when one is deleted. The payload
follows the TMS notifications' list shape with links to the tokens concerned (spec §6.3).

A card number reaching the sandbox (the SDK sends them) is turned into an
instrument identifier on arrival: the id is a keyed hash of the number, so the
same card always gets the same id, and only brand, last four and expiry are
kept. The number itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from ledgerlink.connectors.cybersource.cards import type_for_number
from ledgerlink.connectors.cybersource.sandbox.store import (
    CardInfo,
    Customer,
    InstrumentIdentifier,
    PaymentInstrument,
    Store,
)
from ledgerlink.connectors.cybersource.sandbox.wire import Problem, Reader, not_found, pts_error, tms_error
from ledgerlink.model.cardnumbers import luhn_valid

BILL_TO_FIELDS = ("firstName", "lastName", "company", "address1", "address2", "locality", "administrativeArea",
                  "postalCode", "country", "email", "phoneNumber")
CUSTOMER_ID = re.compile(r"^[0-9A-F]{32}$")
# (event type, organization, notification data, id of the token it is about)
Notify = Callable[[str, str, dict[str, Any], str], None]

# Seeded test tokens: (customer id, payment instrument id, card number, expiry, bill-to). The numbers are the
# networks' public test cards; only their instrument identifier ids, brand and last four are stored.
_JOHN = {"firstName": "John", "lastName": "Doe", "address1": "1 Market St", "locality": "San Francisco",
         "administrativeArea": "CA", "postalCode": "94105", "country": "US", "email": "test@cybs.com",
         "phoneNumber": "4158880000"}
SEEDED_CARDS = (
    ("C0000000000000000000000000004111", "A0000000000000000000000000004111", "4111111111111111", ("12", "2031"),
     _JOHN),
    ("C0000000000000000000000000005555", "A0000000000000000000000000005555", "5555555555554444", ("12", "2031"),
     {**_JOHN, "firstName": "Jane", "lastName": "Roe", "email": "jane.roe@example.com"}),
    ("C0000000000000000000000000003782", "A0000000000000000000000000003782", "378282246310005", ("12", "2031"),
     {**_JOHN, "firstName": "Alex", "lastName": "Poe", "email": "alex.poe@example.com"}),
)


def bill_to_of(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: value[k] for k in BILL_TO_FIELDS if isinstance(value.get(k), str) and value[k]}


def _gone() -> Problem:
    return tms_error(410, "notAvailable", "The requested resource is no longer available (deleted)")


def _stale() -> Problem:
    return tms_error(412, "conflict", "The resource was changed since it was read (if-match does not match "
                     "its ETag)", ["if-match"])


def _same_tag(given: str, current: str) -> bool:
    def bare(tag: str) -> str:
        tag = tag.strip()
        return (tag[2:] if tag.startswith("W/") else tag).strip('"')

    return bare(given) == bare(current)


class TokenVault:
    def __init__(self, store: Store, vault_key: str, rng: random.Random) -> None:
        self._store = store
        self._key = vault_key.encode("utf-8")
        self._rng = rng
        self._versions: dict[str, int] = {}  # token id → how often it changed (its ETag)
        self._deleted: set[str] = set()  # ids of deleted tokens: 410 from now on, never reused
        self.notify: Notify | None = None  # set by the sandbox to send tokenManagement webhooks

    def _hex_id(self) -> str:
        return f"{self._rng.getrandbits(128):032X}"

    def _touch(self, token_id: str) -> None:
        self._versions[token_id] = self._versions.get(token_id, 0) + 1

    def etag(self, token_id: str) -> str:
        digest = hashlib.sha256(f"{token_id}:{self._versions.get(token_id, 0)}".encode()).hexdigest()
        return f'"{digest[:24]}"'

    def _check_tag(self, token_id: str, if_match: str | None) -> None:
        if if_match and not _same_tag(if_match, self.etag(token_id)):
            raise _stale()

    def instrument_identifier_id(self, number: str) -> str:
        """19 digits starting ``701`` (like real ids), from a keyed hash of the number, ending in its last four."""
        digest = hmac.new(self._key, number.encode("ascii"), hashlib.sha256).digest()
        return f"701{int.from_bytes(digest[:8], 'big') % 10**12:012d}{number[-4:]}"

    def identify(self, number: str, *, path: str = "paymentInformation.card.number",
                 card_type: str | None = None) -> InstrumentIdentifier:
        """The instrument identifier a card number maps to, not yet saved; the number goes no further.

        Saving is separate (``save_identifier``) so a request refused later leaves no token behind.
        """
        digits = number.replace(" ", "")
        if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_valid(digits):
            raise _invalid_card(path)
        code = card_type or type_for_number(digits)
        if code is None:
            raise _invalid_card(path, "CARD_TYPE_NOT_ACCEPTED")
        ident = self.instrument_identifier_id(digits)
        existing = self._store.instrument_identifiers.get(ident)
        return existing or InstrumentIdentifier(id=ident, card_type=code, last4=digits[-4:], creator="")

    def save_identifier(self, identifier: InstrumentIdentifier, creator: str) -> bool:
        """Keep ``identifier``; True when it is new to the vault (a deleted one comes back as new)."""
        if identifier.id in self._store.instrument_identifiers:
            return False
        identifier.creator = creator
        self._store.instrument_identifiers[identifier.id] = identifier
        self._deleted.discard(identifier.id)
        self._touch(identifier.id)
        return True

    def create_customer(self, creator: str, doc: dict[str, Any] | None = None, *,
                        customer_id: str | None = None) -> Customer:
        doc = doc or {}
        buyer, reference = doc.get("buyerInformation"), doc.get("clientReferenceInformation")
        fields = doc.get("merchantDefinedInformation")
        customer = Customer(
            id=customer_id or self._hex_id(),
            creator=creator,
            buyer_information=dict(buyer) if isinstance(buyer, dict) else {},
            client_reference_information=reference if isinstance(reference, dict) else {},
            merchant_defined_information=[m for m in fields if isinstance(m, dict)] if isinstance(fields, list) else [],
        )
        self._store.customers[customer.id] = customer
        self._touch(customer.id)
        return customer

    def create_instrument(self, customer: Customer | None, identifier: InstrumentIdentifier, card: CardInfo,
                          bill_to: dict[str, str], creator: str, *, default: bool = False,
                          instrument_id: str | None = None, notify: bool = True) -> PaymentInstrument:
        instrument = PaymentInstrument(
            id=instrument_id or self._hex_id(), customer_id=customer.id if customer else None,
            instrument_identifier_id=identifier.id, card=card, bill_to=bill_to, creator=creator,
        )
        self._store.payment_instruments[instrument.id] = instrument
        self._touch(instrument.id)
        if customer is not None:
            customer.payment_instrument_ids.append(instrument.id)
            if default or customer.default_payment_instrument_id is None:
                customer.default_payment_instrument_id = instrument.id
            self._touch(customer.id)
        if notify:
            self._instrument_event("tms.token.created", instrument)
        return instrument

    def seed(self, creator: str) -> None:
        """The documented test tokens (see docs/connectors/cybersource.md)."""
        for customer_id, instrument_id, number, (month, year), bill_to in SEEDED_CARDS:
            identifier = self.identify(number)
            self.save_identifier(identifier, creator)
            customer = Customer(id=customer_id, creator=creator, buyer_information={"email": bill_to["email"]})
            self._store.customers[customer_id] = customer
            self._touch(customer_id)
            card = CardInfo(type=identifier.card_type, last4=identifier.last4, expiration_month=month,
                            expiration_year=year)
            self.create_instrument(customer, identifier, card, dict(bill_to), creator, default=True,
                                   instrument_id=instrument_id, notify=False)

    # --- notifications -----------------------------------------------------------------------

    def _instrument_event(self, event_type: str, instrument: PaymentInstrument) -> None:
        if self.notify is None:
            return
        links: dict[str, Any] = {
            "paymentInstruments": [{"href": self._instrument_href(instrument)}],
            "instrumentIdentifiers": [{"href": f"/tms/v1/instrumentidentifiers/{instrument.instrument_identifier_id}"}],
        }
        if instrument.customer_id:
            links["customers"] = [{"href": f"/tms/v2/customers/{instrument.customer_id}"}]
        data = {"_links": links, "id": instrument.id, "object": "paymentInstrument", "state": instrument.state}
        self.notify(event_type, instrument.creator, data, instrument.id)

    def _customer_event(self, event_type: str, customer: Customer) -> None:
        if self.notify is None:
            return
        data = {"_links": {"customers": [{"href": f"/tms/v2/customers/{customer.id}"}]}, "id": customer.id,
                "object": "customer"}
        self.notify(event_type, customer.creator, data, customer.id)

    # --- views -------------------------------------------------------------------------------

    @staticmethod
    def _instrument_href(instrument: PaymentInstrument) -> str:
        if instrument.customer_id:
            return f"/tms/v2/customers/{instrument.customer_id}/payment-instruments/{instrument.id}"
        return f"/tms/v1/paymentinstruments/{instrument.id}"

    def customer_view(self, customer: Customer) -> dict[str, Any]:
        base = f"/tms/v2/customers/{customer.id}"
        view: dict[str, Any] = {
            "_links": {"self": {"href": base}, "paymentInstruments": {"href": f"{base}/payment-instruments"},
                       "shippingAddresses": {"href": f"{base}/shipping-addresses"}},
            "id": customer.id,
            "buyerInformation": customer.buyer_information,
            "clientReferenceInformation": customer.client_reference_information,
            "merchantDefinedInformation": customer.merchant_defined_information,
            "metadata": {"creator": customer.creator},
        }
        default = self._store.payment_instruments.get(customer.default_payment_instrument_id or "")
        if default is not None:
            view["defaultPaymentInstrument"] = {"id": default.id}
            view["_embedded"] = {"defaultPaymentInstrument": self.instrument_view(default)}
        return view

    def instrument_view(self, instrument: PaymentInstrument) -> dict[str, Any]:
        links: dict[str, Any] = {"self": {"href": self._instrument_href(instrument)}}
        if instrument.customer_id:
            links["customer"] = {"href": f"/tms/v2/customers/{instrument.customer_id}"}
        customer = self._store.customers.get(instrument.customer_id or "")
        card = {"type": instrument.card.type}
        if instrument.card.expiration_month:
            card["expirationMonth"] = instrument.card.expiration_month
            card["expirationYear"] = instrument.card.expiration_year or ""
        identifier = self._store.instrument_identifiers[instrument.instrument_identifier_id]
        return {
            "_links": links,
            "id": instrument.id,
            "object": "paymentInstrument",
            "default": customer is not None and customer.default_payment_instrument_id == instrument.id,
            "state": instrument.state,
            "card": card,
            "billTo": instrument.bill_to,
            "instrumentIdentifier": {"id": identifier.id},
            "metadata": {"creator": instrument.creator},
            "_embedded": {"instrumentIdentifier": self.identifier_view(identifier)},
        }

    def identifier_view(self, identifier: InstrumentIdentifier) -> dict[str, Any]:
        base = f"/tms/v1/instrumentidentifiers/{identifier.id}"
        return {
            "_links": {"self": {"href": base}, "paymentInstruments": {"href": f"{base}/paymentinstruments"}},
            "id": identifier.id,
            "object": "instrumentIdentifier",
            "state": "ACTIVE",
            "card": {"number": "XXXXXXXXXXXX" + identifier.last4},
            "metadata": {"creator": identifier.creator},
        }

    # --- lookups -----------------------------------------------------------------------------

    def _customer(self, customer_id: str) -> Customer:
        customer = self._store.customers.get(customer_id)
        if customer is None:
            raise _gone() if customer_id in self._deleted else not_found("tms")
        return customer

    def _instrument(self, instrument_id: str, customer_id: str | None = None) -> PaymentInstrument:
        if customer_id is not None:
            self._customer(customer_id)
        instrument = self._store.payment_instruments.get(instrument_id)
        if instrument is None:
            raise _gone() if instrument_id in self._deleted else not_found("tms")
        if customer_id is not None and instrument.customer_id != customer_id:
            raise not_found("tms")
        return instrument

    def _identifier(self, identifier_id: str) -> InstrumentIdentifier:
        identifier = self._store.instrument_identifiers.get(identifier_id)
        if identifier is None:
            raise _gone() if identifier_id in self._deleted else not_found("tms")
        return identifier

    # --- customers -----------------------------------------------------------------------------

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        return self.customer_view(self._customer(customer_id))

    def post_customer(self, doc: dict[str, Any], merchant_id: str) -> dict[str, Any]:
        chosen = doc.get("id")
        if chosen is not None:
            if not isinstance(chosen, str) or not CUSTOMER_ID.match(chosen.upper()):
                raise tms_error(400, "invalidFields", "id must be 32 hexadecimal characters", ["id"])
            chosen = chosen.upper()
            if chosen in self._store.customers or chosen in self._deleted:
                raise tms_error(409, "tokenIdConflict", "A token with this id already exists", ["id"])
        for name in ("buyerInformation", "clientReferenceInformation"):
            if name in doc and not isinstance(doc[name], dict):
                raise tms_error(400, "invalidFields", f"{name} must be an object", [name])
        return self.customer_view(self.create_customer(merchant_id, doc, customer_id=chosen))

    def patch_customer(self, customer_id: str, doc: dict[str, Any], if_match: str | None) -> dict[str, Any]:
        customer = self._customer(customer_id)
        self._check_tag(customer_id, if_match)
        reader = Reader(doc, "tms")
        buyer = doc.get("buyerInformation")
        if buyer is not None and not isinstance(buyer, dict):
            reader.invalid.append("buyerInformation")
        for name in ("merchantCustomerID", "email"):
            value = buyer.get(name) if isinstance(buyer, dict) else None
            if value is not None and not isinstance(value, str):
                reader.invalid.append(f"buyerInformation.{name}")
        default_id = reader.text("defaultPaymentInstrument.id")
        if default_id is not None and default_id not in customer.payment_instrument_ids:
            reader.invalid.append("defaultPaymentInstrument.id")
        reference = doc.get("clientReferenceInformation")
        if reference is not None and not isinstance(reference, dict):
            reader.invalid.append("clientReferenceInformation")
        fields = doc.get("merchantDefinedInformation")
        if fields is not None and not isinstance(fields, list):
            reader.invalid.append("merchantDefinedInformation")
        reader.refuse_if_any()
        if isinstance(buyer, dict):
            for name, value in buyer.items():
                if value in (None, ""):
                    customer.buyer_information.pop(name, None)
                else:
                    customer.buyer_information[name] = value
        if isinstance(reference, dict):
            customer.client_reference_information = reference
        if isinstance(fields, list):
            customer.merchant_defined_information = [m for m in fields if isinstance(m, dict)]
        if default_id is not None:
            customer.default_payment_instrument_id = default_id
        self._touch(customer_id)
        self._customer_event("tms.token.updated", customer)
        return self.customer_view(customer)

    def delete_customer(self, customer_id: str, if_match: str | None = None) -> None:
        """The customer and its payment instruments (each reported deleted); its identifiers stay."""
        customer = self._customer(customer_id)
        self._check_tag(customer_id, if_match)
        for instrument_id in list(customer.payment_instrument_ids):
            self._remove_instrument(self._store.payment_instruments[instrument_id])
        del self._store.customers[customer_id]
        self._deleted.add(customer_id)
        self._customer_event("tms.token.deleted", customer)

    # --- payment instruments -------------------------------------------------------------------

    def list_instruments(self, customer_id: str, offset_text: str = "0", limit_text: str = "20") -> dict[str, Any]:
        customer = self._customer(customer_id)
        if not offset_text.isdigit() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            raise tms_error(400, "invalidParameters", "offset and limit must be whole numbers (limit 1..100)",
                            ["offset", "limit"])
        offset, limit = int(offset_text), int(limit_text)
        ids = customer.payment_instrument_ids
        page = [self.instrument_view(self._store.payment_instruments[i]) for i in ids[offset:offset + limit]]
        base = f"/tms/v2/customers/{customer_id}/payment-instruments"
        links: dict[str, Any] = {"self": {"href": f"{base}?offset={offset}&limit={limit}"},
                                 "first": {"href": f"{base}?offset=0&limit={limit}"}}
        if offset > 0:
            links["prev"] = {"href": f"{base}?offset={max(0, offset - limit)}&limit={limit}"}
        if offset + limit < len(ids):
            links["next"] = {"href": f"{base}?offset={offset + limit}&limit={limit}"}
        last = max(0, (len(ids) - 1) // limit * limit)
        links["last"] = {"href": f"{base}?offset={last}&limit={limit}"}
        return {"_links": links, "offset": offset, "limit": limit, "count": len(page), "total": len(ids),
                "_embedded": {"paymentInstruments": page}}

    def get_instrument(self, instrument_id: str, customer_id: str | None = None) -> dict[str, Any]:
        return self.instrument_view(self._instrument(instrument_id, customer_id))

    def post_instrument(self, doc: dict[str, Any], merchant_id: str, customer_id: str | None) -> dict[str, Any]:
        customer = self._customer(customer_id) if customer_id is not None else None
        reader = Reader(doc, "tms")
        identifier_id = reader.text("instrumentIdentifier.id", required=True)
        month = reader.text("card.expirationMonth", required=True)
        year = reader.text("card.expirationYear", required=True)
        card_type = reader.text("card.type")
        _check_expiry(reader, month, year)
        reader.refuse_if_any()
        assert identifier_id is not None
        identifier = self._store.instrument_identifiers.get(identifier_id)
        if identifier is None:
            raise tms_error(400, "invalidFields", "Instrument identifier not found", ["instrumentIdentifier.id"])
        card = CardInfo(type=card_type or identifier.card_type, last4=identifier.last4, expiration_month=month,
                        expiration_year=year)
        instrument = self.create_instrument(customer, identifier, card, bill_to_of(doc.get("billTo")), merchant_id,
                                            default=doc.get("default") is True)
        return self.instrument_view(instrument)

    def patch_instrument(self, instrument_id: str, doc: dict[str, Any], if_match: str | None,
                         customer_id: str | None = None) -> dict[str, Any]:
        """Change the expiry, card type, bill-to (given fields replace, ``""`` or null clears) or default flag.
        The card itself cannot change: that is a new instrument identifier, so a new instrument."""
        instrument = self._instrument(instrument_id, customer_id)
        self._check_tag(instrument_id, if_match)
        reader = Reader(doc, "tms")
        if reader.get("instrumentIdentifier.id") not in (None, instrument.instrument_identifier_id) \
                or reader.get("card.number") is not None:
            raise tms_error(400, "unsupportedPaymentMethodModification",
                            "The card of a payment instrument cannot be changed; create a new instrument",
                            ["instrumentIdentifier.id"])
        month = reader.text("card.expirationMonth")
        year = reader.text("card.expirationYear")
        card_type = reader.text("card.type")
        if (month is None) != (year is None):
            reader.missing.append("card.expirationYear" if year is None else "card.expirationMonth")
        _check_expiry(reader, month, year)
        bill_to = doc.get("billTo")
        if bill_to is not None and not isinstance(bill_to, dict):
            reader.invalid.append("billTo")
        elif isinstance(bill_to, dict):
            for name, value in bill_to.items():
                if name not in BILL_TO_FIELDS or (value is not None and not isinstance(value, str)):
                    reader.invalid.append(f"billTo.{name}")
        default = doc.get("default")
        if default is not None and not isinstance(default, bool):
            reader.invalid.append("default")
        reader.refuse_if_any()
        if month is not None and year is not None:
            instrument.card.expiration_month, instrument.card.expiration_year = month, year
        if card_type is not None:
            instrument.card.type = card_type
        if isinstance(bill_to, dict):
            for name, value in bill_to.items():
                if value in (None, ""):
                    instrument.bill_to.pop(name, None)
                else:
                    instrument.bill_to[name] = value
        customer = self._store.customers.get(instrument.customer_id or "")
        if default is True and customer is not None:
            customer.default_payment_instrument_id = instrument.id
            self._touch(customer.id)
        self._touch(instrument.id)
        self._instrument_event("tms.token.updated", instrument)
        return self.instrument_view(instrument)

    def delete_instrument(self, instrument_id: str, if_match: str | None = None,
                          customer_id: str | None = None) -> None:
        instrument = self._instrument(instrument_id, customer_id)
        self._check_tag(instrument_id, if_match)
        self._remove_instrument(instrument)

    def _remove_instrument(self, instrument: PaymentInstrument) -> None:
        del self._store.payment_instruments[instrument.id]
        self._deleted.add(instrument.id)
        customer = self._store.customers.get(instrument.customer_id or "")
        if customer is not None:
            customer.payment_instrument_ids.remove(instrument.id)
            if customer.default_payment_instrument_id == instrument.id:
                rest = customer.payment_instrument_ids
                customer.default_payment_instrument_id = rest[0] if rest else None
            self._touch(customer.id)
        instrument.state = "CLOSED"
        self._instrument_event("tms.token.deleted", instrument)

    def expire(self, instrument_id: str, today: date, month: str | None = None, year: str | None = None) -> dict[str, Any]:
        """Sandbox control: the card's expiry month is over (by default, the month before ``today``)."""
        instrument = self._instrument(instrument_id)
        if month is None or year is None:
            last = date(today.year - (today.month == 1), today.month - 1 or 12, 1)
            month, year = f"{last.month:02d}", f"{last.year:04d}"
        instrument.card.expiration_month, instrument.card.expiration_year = month, year
        self._touch(instrument.id)
        self._instrument_event("tms.token.expired", instrument)
        return self.instrument_view(instrument)

    # --- instrument identifiers ------------------------------------------------------------------

    def post_identifier(self, doc: dict[str, Any], merchant_id: str) -> tuple[int, dict[str, Any]]:
        reader = Reader(doc, "tms")
        number = reader.text("card.number", required=True)
        reader.refuse_if_any()
        assert number is not None
        try:
            identifier = self.identify(number, path="card.number")
        except Problem:
            raise tms_error(400, "invalidFields", "Invalid card number", ["card.number"]) from None
        new = self.save_identifier(identifier, merchant_id)
        return (201 if new else 200), self.identifier_view(identifier)

    def get_identifier(self, identifier_id: str) -> dict[str, Any]:
        return self.identifier_view(self._identifier(identifier_id))

    def patch_identifier(self, identifier_id: str, doc: dict[str, Any], if_match: str | None) -> dict[str, Any]:
        """Only the merchant-initiated-transaction reference can change; the card is what the id is."""
        identifier = self._identifier(identifier_id)
        self._check_tag(identifier_id, if_match)
        if Reader(doc, "tms").get("card.number") is not None:
            raise tms_error(400, "unsupportedPaymentMethodModification",
                            "The card of an instrument identifier cannot be changed", ["card.number"])
        self._touch(identifier_id)
        return self.identifier_view(identifier)

    def delete_identifier(self, identifier_id: str, if_match: str | None = None) -> None:
        self._identifier(identifier_id)
        self._check_tag(identifier_id, if_match)
        if any(pi.instrument_identifier_id == identifier_id for pi in self._store.payment_instruments.values()):
            raise tms_error(409, "instrumentIdentifierDeletionError",
                            "The instrument identifier is still used by a payment instrument")
        del self._store.instrument_identifiers[identifier_id]
        self._deleted.add(identifier_id)

    def identifier_instruments(self, identifier_id: str, offset_text: str = "0",
                               limit_text: str = "20") -> dict[str, Any]:
        self._identifier(identifier_id)
        if not offset_text.isdigit() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            raise tms_error(400, "invalidParameters", "offset and limit must be whole numbers (limit 1..100)",
                            ["offset", "limit"])
        offset, limit = int(offset_text), int(limit_text)
        found = [pi for pi in self._store.payment_instruments.values() if pi.instrument_identifier_id == identifier_id]
        page = [self.instrument_view(pi) for pi in found[offset:offset + limit]]
        base = f"/tms/v1/instrumentidentifiers/{identifier_id}/paymentinstruments"
        return {"_links": {"self": {"href": f"{base}?offset={offset}&limit={limit}"}}, "offset": offset,
                "limit": limit, "count": len(page), "total": len(found),
                "_embedded": {"paymentInstruments": page}}


def _check_expiry(reader: Reader, month: str | None, year: str | None) -> None:
    if month is not None and (not month.isdigit() or not 1 <= int(month) <= 12):
        reader.invalid.append("card.expirationMonth")
    if year is not None and (not year.isdigit() or len(year) != 4):
        reader.invalid.append("card.expirationYear")


def _invalid_card(path: str, reason: str = "INVALID_CARD") -> Problem:
    return pts_error(reason, "Invalid account number" if reason == "INVALID_CARD" else "Card type not accepted",
                     [{"field": path, "reason": "INVALID_DATA"}])
