"""Gateway transactions and the events that report them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.model.money import Money
from ledgerlink.model.party import Party, PaymentToken
from ledgerlink.model.profiles import TokenEvent
from ledgerlink.model.refs import ExternalRef
from ledgerlink.model.review import ReviewVerdict, RiskReason
from ledgerlink.model.status import PaymentStatus
from ledgerlink.model.subscriptions import DeclineCategory


class PaymentKind(StrEnum):
    AUTHORIZATION = "authorization"  # funds held, not yet captured
    SALE = "sale"  # authorised and captured in one call
    CAPTURE = "capture"
    REFUND = "refund"
    VOID = "void"
    REVERSAL = "reversal"
    CREDIT = "credit"


class RiskAssessment(BaseModel):
    """The fraud screen's verdict as the gateway reported it."""

    model_config = ConfigDict(frozen=True)

    decision: str  # accept | review | reject
    reason_codes: tuple[str, ...] = ()
    score: int | None = None
    rules: tuple[str, ...] = ()
    reasons: tuple[RiskReason, ...] = ()  # the reason codes in plain words, as the connector knows them


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    sku: str | None = None
    description: str | None = None
    quantity: Decimal = Decimal(1)
    unit_price: Money


class Payment(BaseModel):
    """One gateway transaction, in canonical terms."""

    model_config = ConfigDict(frozen=True)

    gateway: str
    id: str
    kind: PaymentKind
    status: PaymentStatus
    gateway_status: str
    amount: Money
    order_reference: str | None = None
    root_id: str | None = None  # first transaction of the chain (the authorisation)
    parent_id: str | None = None  # the transaction this one acts on (capture -> auth)
    party: Party | None = None
    token: PaymentToken | None = None
    merchant_defined: dict[str, str] = Field(default_factory=dict)
    line_items: tuple[LineItem, ...] = ()
    risk: RiskAssessment | None = None
    decline_reason: str | None = None
    decline_message: str | None = None
    decline_category: DeclineCategory | None = None  # hard: do not retry the card; soft: may work later
    reconciliation_id: str | None = None
    submitted_at: datetime | None = None

    @property
    def chain_id(self) -> str:
        return self.root_id or self.parent_id or self.id

    @property
    def ref(self) -> ExternalRef:
        return ExternalRef(system=self.gateway, kind="transaction", id=self.id)


class EventType(StrEnum):
    """What an inbound event means, whatever the gateway called it."""

    PAYMENT = "payment"  # an authorisation or sale outcome (accepted, in review or declined)
    CAPTURE = "capture"
    REVIEW = "review"  # a fraud screen put the payment in review
    DECLINE = "decline"
    REFUND = "refund"
    VOID = "void"
    REVERSAL = "reversal"
    DISPUTE = "dispute"  # a chargeback opened, won or lost
    REVIEW_DECISION = "review_decision"  # a reviewer accepted or rejected a payment held for review
    TOKEN = "token"  # a stored card (gateway token) was added, updated, expired or deleted
    UNKNOWN = "unknown"


class DisputeStage(StrEnum):
    OPENED = "opened"  # the issuer took the money back (a chargeback)
    WON = "won"  # the merchant's representment succeeded: the money comes back
    LOST = "lost"  # final: the money stays with the cardholder


class Dispute(BaseModel):
    """A chargeback and where it stands, as the gateway reports it."""

    model_config = ConfigDict(frozen=True)

    gateway: str
    dispute_id: str  # stable across stages (the gateway's case or tracking number)
    transaction_id: str  # the disputed transaction
    order_reference: str | None = None
    stage: DisputeStage
    amount: Money
    fee: Money | None = None  # the chargeback fee the gateway charges the merchant
    reason_code: str | None = None
    reason: str | None = None
    occurred_at: datetime
    respond_by: datetime | None = None


class PaymentEvent(BaseModel):
    """What arrived from a gateway: the event, and the payment if the event carried it whole."""

    model_config = ConfigDict(frozen=True)

    source: str
    event_id: str  # stable across re-deliveries: the dedupe key of the inbox
    event_type: EventType
    gateway_event_type: str
    occurred_at: datetime | None = None
    partition_key: str  # events with the same key are applied strictly in order
    payment_id: str  # the transaction to fetch when ``payment`` is None
    payment: Payment | None = None
    dispute: Dispute | None = None
    token_event: TokenEvent | None = None  # for EventType.TOKEN
    review: ReviewVerdict | None = None  # for EventType.REVIEW_DECISION: what the reviewer decided
    payload_sha256: str


class AuthorizationRequest(BaseModel):
    """Ask a gateway to authorise (and optionally capture) against a stored token; never a card number."""

    model_config = ConfigDict(frozen=True)

    amount: Money
    order_reference: str
    capture: bool = False
    token: PaymentToken
    party: Party | None = None
    merchant_defined: dict[str, str] = Field(default_factory=dict)
    line_items: tuple[LineItem, ...] = ()
    reference: str | None = None  # our idempotency key, kept by the gateway so ``find_payment`` finds it again
    recurring: bool = False  # merchant-initiated charge of a stored credential (a subscription renewal)
