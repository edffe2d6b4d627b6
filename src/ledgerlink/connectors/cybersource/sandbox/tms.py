"""A small Token Management Service (spec §5): customers, payment instruments, instrument identifiers.

Enough for payments to use tokens and for a demo to create its own; full TMS
(PATCH, DELETE, shipping addresses, network tokens) is out of scope for now.

A card number reaching the sandbox (the SDK sends them) is turned into an
instrument identifier on arrival: the id is a keyed hash of the number, so the
same card always gets the same id, and only brand, last four and expiry are
kept. The number itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import random
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


class TokenVault:
    def __init__(self, store: Store, vault_key: str, rng: random.Random) -> None:
        self._store = store
        self._key = vault_key.encode("utf-8")
        self._rng = rng

    def _hex_id(self) -> str:
        return f"{self._rng.getrandbits(128):032X}"

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
        """Keep ``identifier``; True when it is new to the vault."""
        if identifier.id in self._store.instrument_identifiers:
            return False
        identifier.creator = creator
        self._store.instrument_identifiers[identifier.id] = identifier
        return True

    def create_customer(self, creator: str, doc: dict[str, Any] | None = None) -> Customer:
        doc = doc or {}
        buyer, reference = doc.get("buyerInformation"), doc.get("clientReferenceInformation")
        fields = doc.get("merchantDefinedInformation")
        customer = Customer(
            id=self._hex_id(),
            creator=creator,
            buyer_information=buyer if isinstance(buyer, dict) else {},
            client_reference_information=reference if isinstance(reference, dict) else {},
            merchant_defined_information=[m for m in fields if isinstance(m, dict)] if isinstance(fields, list) else [],
        )
        self._store.customers[customer.id] = customer
        return customer

    def create_instrument(self, customer: Customer | None, identifier: InstrumentIdentifier, card: CardInfo,
                          bill_to: dict[str, str], creator: str, *, default: bool = False,
                          instrument_id: str | None = None) -> PaymentInstrument:
        instrument = PaymentInstrument(
            id=instrument_id or self._hex_id(), customer_id=customer.id if customer else None,
            instrument_identifier_id=identifier.id, card=card, bill_to=bill_to, creator=creator,
        )
        self._store.payment_instruments[instrument.id] = instrument
        if customer is not None:
            customer.payment_instrument_ids.append(instrument.id)
            if default or customer.default_payment_instrument_id is None:
                customer.default_payment_instrument_id = instrument.id
        return instrument

    def seed(self, creator: str) -> None:
        """The documented test tokens (see docs/connectors/cybersource.md)."""
        for customer_id, instrument_id, number, (month, year), bill_to in SEEDED_CARDS:
            identifier = self.identify(number)
            self.save_identifier(identifier, creator)
            customer = Customer(id=customer_id, creator=creator, buyer_information={"email": bill_to["email"]})
            self._store.customers[customer_id] = customer
            card = CardInfo(type=identifier.card_type, last4=identifier.last4, expiration_month=month,
                            expiration_year=year)
            self.create_instrument(customer, identifier, card, dict(bill_to), creator, default=True,
                                   instrument_id=instrument_id)

    # --- views -------------------------------------------------------------------------------

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
        if instrument.customer_id:
            self_href = f"/tms/v2/customers/{instrument.customer_id}/payment-instruments/{instrument.id}"
            links = {"self": {"href": self_href}, "customer": {"href": f"/tms/v2/customers/{instrument.customer_id}"}}
        else:
            links = {"self": {"href": f"/tms/v1/paymentinstruments/{instrument.id}"}}
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

    # --- endpoints ---------------------------------------------------------------------------

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        customer = self._store.customers.get(customer_id)
        if customer is None:
            raise not_found("tms")
        return self.customer_view(customer)

    def post_customer(self, doc: dict[str, Any], merchant_id: str) -> dict[str, Any]:
        return self.customer_view(self.create_customer(merchant_id, doc))

    def list_instruments(self, customer_id: str, offset_text: str = "0", limit_text: str = "20") -> dict[str, Any]:
        customer = self._store.customers.get(customer_id)
        if customer is None:
            raise not_found("tms")
        if not offset_text.isdigit() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            raise tms_error(400, "invalidParameters", "offset and limit must be whole numbers (limit 1..100)",
                            ["offset", "limit"])
        offset, limit = int(offset_text), int(limit_text)
        ids = customer.payment_instrument_ids
        page = [self.instrument_view(self._store.payment_instruments[i]) for i in ids[offset:offset + limit]]
        base = f"/tms/v2/customers/{customer_id}/payment-instruments"
        return {
            "_links": {"self": {"href": f"{base}?offset={offset}&limit={limit}"},
                       "first": {"href": f"{base}?offset=0&limit={limit}"}},
            "offset": offset, "limit": limit, "count": len(page), "total": len(ids),
            "_embedded": {"paymentInstruments": page},
        }

    def get_instrument(self, instrument_id: str, customer_id: str | None = None) -> dict[str, Any]:
        instrument = self._store.payment_instruments.get(instrument_id)
        if instrument is None or (customer_id is not None and instrument.customer_id != customer_id):
            raise not_found("tms")
        return self.instrument_view(instrument)

    def post_instrument(self, doc: dict[str, Any], merchant_id: str, customer_id: str) -> dict[str, Any]:
        customer = self._store.customers.get(customer_id)
        if customer is None:
            raise not_found("tms")
        reader = Reader(doc, "tms")
        identifier_id = reader.text("instrumentIdentifier.id", required=True)
        month = reader.text("card.expirationMonth", required=True)
        year = reader.text("card.expirationYear", required=True)
        card_type = reader.text("card.type")
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
        identifier = self._store.instrument_identifiers.get(identifier_id)
        if identifier is None:
            raise not_found("tms")
        return self.identifier_view(identifier)


def _invalid_card(path: str, reason: str = "INVALID_CARD") -> Problem:
    return pts_error(reason, "Invalid account number" if reason == "INVALID_CARD" else "Card type not accepted",
                     [{"field": path, "reason": "INVALID_DATA"}])

