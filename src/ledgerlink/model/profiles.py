"""Customer payment profiles: one customer as the back office and the gateway each hold it, and the token
events a gateway reports about the cards stored on it.

A back office links a customer to a gateway's customer token; the gateway holds the customer's stored
cards (payment instruments). Both sides only ever know a card by its tokens, brand, last four digits and
expiry. ``profile_partition`` is the one partition key for everything that concerns one gateway
customer, so a back-office change and a gateway token event for the same customer apply in order.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.model.party import Party, PaymentToken

# The profile fields the two sides keep in step (the address is one field: lines from two sources are not mixed).
PROFILE_FIELDS = ("name", "email", "phone", "address")


class TokenState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"  # the card's expiry month has passed
    DELETED = "deleted"  # removed at the gateway; kept in the back office as history


class StoredInstrument(BaseModel):
    """A stored card: its gateway token (brand, last four, expiry), never its number."""

    model_config = ConfigDict(frozen=True)

    token: PaymentToken  # kind "payment_instrument"
    instrument_identifier: str | None = None
    state: TokenState = TokenState.ACTIVE
    default: bool = False


class CustomerProfile(BaseModel):
    """One customer as one system holds it.

    ``held`` names the profile fields this system keeps: a gateway customer with no stored card has an
    e-mail but nowhere to keep a billing address (that lives on the card). ``linked_profiles`` (back office)
    maps a gateway name to the customer token the customer is linked to; ``merchant_customer_id``
    (gateway) is the merchant's own id for the customer, when the gateway customer carries one.
    """

    model_config = ConfigDict(frozen=True)

    system: str
    customer_id: str
    party: Party
    held: frozenset[str] = frozenset(PROFILE_FIELDS)
    linked_profiles: dict[str, str] = Field(default_factory=dict)
    merchant_customer_id: str | None = None
    instruments: tuple[StoredInstrument, ...] = ()
    changed_at: datetime | None = None  # when the record last changed, as the system stamps it

    def linked(self, gateway: str) -> str | None:
        return self.linked_profiles.get(gateway)


class TokenEventKind(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    EXPIRED = "expired"
    DELETED = "deleted"


class TokenEvent(BaseModel):
    """A gateway's report that a stored card was added, changed, expired or deleted."""

    model_config = ConfigDict(frozen=True)

    gateway: str
    kind: TokenEventKind
    customer_token: str | None = None
    instrument_token: str | None = None
    instrument_identifier: str | None = None
    occurred_at: datetime | None = None


def profile_partition(gateway: str, customer_token: str) -> str:
    """The partition of every event about one gateway customer (its token events and its ERP changes).

    A gateway's parser gives its token events ``customer:<token>``; the service stores webhooks under
    ``<gateway>:<partition key>``, which is this.
    """
    return f"{gateway}:customer:{customer_token}"
