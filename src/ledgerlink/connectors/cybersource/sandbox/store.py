"""The sandbox's memory: transactions, tokens, webhook keys, subscriptions, batches and chargebacks.

Records are plain dataclasses in dicts: the sandbox is single-process and the
API is its only writer. No record has a field a card number could be kept in:
a card is remembered as brand, last four digits and expiry, and an instrument
identifier id derived from a keyed hash (``tms.instrument_identifier_id``).
With ``LEDGERLINK_PAN_GUARD`` set (tests), every table checks each record as it
is stored and raises ``CardNumberStored`` if one holds a card number.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from ledgerlink.connectors.cybersource.sandbox.clock import Clock
from ledgerlink.model import storage_guard


def utc_now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class CardInfo:
    type: str  # wire card type code, e.g. "001"
    last4: str
    expiration_month: str | None = None
    expiration_year: str | None = None


@dataclass(slots=True)
class InstrumentIdentifier:
    id: str
    card_type: str
    last4: str
    creator: str


@dataclass(slots=True)
class PaymentInstrument:
    id: str
    customer_id: str | None
    instrument_identifier_id: str
    card: CardInfo
    bill_to: dict[str, str]
    creator: str
    state: str = "ACTIVE"


@dataclass(slots=True)
class Customer:
    id: str
    creator: str
    buyer_information: dict[str, Any] = field(default_factory=dict)
    client_reference_information: dict[str, Any] = field(default_factory=dict)
    merchant_defined_information: list[dict[str, Any]] = field(default_factory=list)
    default_payment_instrument_id: str | None = None
    payment_instrument_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Tokens:
    customer_id: str | None = None
    payment_instrument_id: str | None = None
    instrument_identifier_id: str | None = None


@dataclass(slots=True)
class Txn:
    """One transaction. Follow-ons (captures, refunds, ...) are their own records, linked by root and parent."""

    id: str
    kind: str  # auth | sale | capture | refund | reversal | void
    status: str
    amount: Decimal  # requested (auth/sale) or acted-on amount (follow-ons)
    currency: str
    merchant_id: str
    submitted: str
    reconciliation_id: str
    root_id: str
    parent_id: str | None = None
    code: str | None = None
    client_transaction_id: str | None = None  # clientReferenceInformation.transactionId: the client's own id
    bill_to: dict[str, str] | None = None
    card: CardInfo | None = None
    tokens: Tokens | None = None
    merchant_defined: list[dict[str, Any]] = field(default_factory=list)
    line_items: list[dict[str, Any]] = field(default_factory=list)
    error: tuple[str, str] | None = None  # (reason, message)
    risk: dict[str, Any] | None = None
    reason_code: str = "100"
    authorized: Decimal = Decimal(0)  # what the issuer approved and is still held (auth/sale)
    captured: Decimal = Decimal(0)  # captured against this transaction (sale: itself; auth: its captures)
    refunded: Decimal = Decimal(0)
    settled: bool = False
    batch_id: str | None = None  # the processor batch it settled in
    settled_at: str | None = None
    fee: Decimal | None = None  # processing fee charged when it settled
    disputed: Decimal = Decimal(0)  # held by chargebacks that are open or lost
    children: list[str] = field(default_factory=list)

    @property
    def submitted_at(self) -> datetime:
        return datetime.strptime(self.submitted, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    @property
    def settled_amount(self) -> Decimal:
        """What this transaction moves in a batch: a capture's amount, a sale's captured part, a refund's amount."""
        return self.captured if self.kind == "sale" else self.amount


@dataclass(slots=True)
class Batch:
    """One processor batch: one merchant, one day, one currency, the transactions closed into it."""

    id: str
    day: date
    currency: str
    transaction_ids: list[str]
    closed_at: str
    merchant_id: str


@dataclass(slots=True)
class ChargebackEvent:
    """One stage of a chargeback as the chargeback-details report lists it."""

    action: str
    time: datetime
    amount: Decimal
    sign: str  # "-" money taken from the merchant, "+" money given back, "" no movement


@dataclass(slots=True)
class Chargeback:
    tracking_number: str
    transaction_id: str
    merchant_id: str
    amount: Decimal
    currency: str
    reason_code: str
    fee: Decimal
    respond_by: datetime
    events: list[ChargebackEvent] = field(default_factory=list)

    @property
    def outcome(self) -> str | None:
        return {"CHARGEBACK_REVERSAL": "won", "CHARGEBACK_LOST": "lost"}.get(self.events[-1].action)


@dataclass(slots=True)
class WebhookKey:
    key_id: str
    organization_id: str
    key: str  # base64, as KMS hands it out
    created: str
    expiration_date: str


@dataclass(slots=True)
class Subscription:
    webhook_id: str
    organization_id: str
    url: str
    products: dict[str, list[str]]  # productId → event types (empty list: all of the product's)
    key_id: str | None
    document: dict[str, Any]  # the subscription as created, echoed back by GET
    status: str = "ACTIVE"

    def wants(self, organization_id: str, product_id: str, event_type: str) -> bool:
        if self.status != "ACTIVE" or organization_id != self.organization_id:
            return False
        events = self.products.get(product_id)
        return events is not None and (not events or event_type in events)


class GuardedTable(dict):  # type: ignore[type-arg]
    """A table of the store while the storage guard is on: a record (or key) holding a card number raises."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def _check(self, key: Any, value: Any) -> None:
        record = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        storage_guard.check([("key", key), ("record", record)], where=f"the Cybersource sandbox's {self.name}")

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check(key, value)
        super().__setitem__(key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self._check(key, default)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


def _table(name: str) -> Any:
    return GuardedTable(name) if storage_guard.enabled() else {}


class Store:
    def __init__(self) -> None:
        self.transactions: dict[str, Txn] = _table("transactions")
        self.customers: dict[str, Customer] = _table("customers")
        self.payment_instruments: dict[str, PaymentInstrument] = _table("payment_instruments")
        self.instrument_identifiers: dict[str, InstrumentIdentifier] = _table("instrument_identifiers")
        self.webhook_keys: dict[str, WebhookKey] = _table("webhook_keys")
        self.current_key: dict[str, str] = _table("current_key")  # organization → its newest key id
        self.subscriptions: dict[str, Subscription] = _table("subscriptions")
        self.batches: dict[str, Batch] = _table("batches")
        # day → its batch ids; a day present here has reports
        self.settled_days: dict[date, list[str]] = _table("settled_days")
        self.chargebacks: dict[str, Chargeback] = _table("chargebacks")
        self.searches: dict[str, dict[str, Any]] = _table("searches")
        self.by_client_transaction_id: dict[str, list[str]] = _table("by_client_transaction_id")  # for searches
        self.clock = Clock()
        self._sequence = itertools.count(1)
        self._batch_sequence = itertools.count(1)

    def new_transaction_id(self) -> str:
        """A 22-digit numeric id like Cybersource's: microsecond clock then a sequence, unique per process."""
        return f"{int(time.time() * 1_000_000) % 10**16:016d}{next(self._sequence) % 10**6:06d}"

    def add_transaction(self, txn: Txn) -> None:
        self.transactions[txn.id] = txn
        if txn.client_transaction_id:
            self.by_client_transaction_id.setdefault(txn.client_transaction_id, []).append(txn.id)

    def new_batch_id(self, day: date) -> str:
        """A 12-digit processor batch id: the day (yymmdd) then a sequence."""
        return f"{day:%y%m%d}{next(self._batch_sequence) % 10**6:06d}"

    def snapshot(self) -> dict[str, Any]:
        """Everything stored, as JSON-ready data (what a PAN scan of the store reads)."""
        tables: dict[str, dict[str, Any]] = {
            "transactions": self.transactions,
            "customers": self.customers,
            "payment_instruments": self.payment_instruments,
            "instrument_identifiers": self.instrument_identifiers,
            "webhook_keys": self.webhook_keys,
            "subscriptions": self.subscriptions,
            "batches": self.batches,
            "chargebacks": self.chargebacks,
        }
        raw = {name: {k: dataclasses.asdict(v) for k, v in table.items()} for name, table in tables.items()}
        plain: dict[str, Any] = orjson.loads(orjson.dumps(raw, default=str))  # Decimal amounts as text
        return plain

    def counts_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for txn in self.transactions.values():
            key = f"{txn.kind}:{txn.status}"
            counts[key] = counts.get(key, 0) + 1
        return counts
