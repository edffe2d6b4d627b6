"""Customers, patients and other payers, and the tokens that stand in for their cards."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, field_validator

from ledgerlink.model.refs import ExternalRef


class Address(BaseModel):
    model_config = ConfigDict(frozen=True)

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2


class PaymentToken(BaseModel):
    """A gateway token for a stored card: never the card number itself."""

    model_config = ConfigDict(frozen=True)

    gateway: str
    token_id: str
    kind: str = "payment_instrument"  # customer | payment_instrument | instrument_identifier
    brand: str | None = None
    last4: str | None = None
    expiry: date | None = None

    @field_validator("last4")
    @classmethod
    def _four_digits(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 4 or not value.isdigit()):
            raise ValueError("last4 must be exactly four digits")
        return value


class Party(BaseModel):
    """Someone who pays: a customer in the ERP, a patient in the EHR, a buyer at the gateway."""

    model_config = ConfigDict(frozen=True)

    id: str | None = None  # the back office's own id, once known
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: Address | None = None
    refs: tuple[ExternalRef, ...] = ()
    tokens: tuple[PaymentToken, ...] = ()

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        return value or None

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        joined = " ".join(p for p in (self.first_name, self.last_name) if p)
        return joined or (self.email or "")

    def ref(self, system: str) -> ExternalRef | None:
        return next((r for r in self.refs if r.system == system), None)

