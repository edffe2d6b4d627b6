"""Back-office documents as flows build them, before any system's own field names apply.

Every document carries ``key``: the business idempotency key of the side effect
that creates it (``dynamics_sl:salesorder:ORD-1001``). A back office stores that
key on the record (an external-reference field) so a retried step can find the
record a crashed attempt already made.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledgerlink.model.money import Money
from ledgerlink.model.refs import ExternalRef
from ledgerlink.model.status import OrderStatus


class DocumentKind(StrEnum):
    """The kinds of back-office record a flow creates and may need to find again by key."""

    PARTY = "party"
    SALES_ORDER = "sales_order"
    INVOICE = "invoice"
    RECEIPT = "receipt"
    CREDIT_MEMO = "credit_memo"
    DEBIT_MEMO = "debit_memo"
    RECEIPT_REVERSAL = "receipt_reversal"
    JOURNAL = "journal"
    TASK = "task"


class GLAccount(BaseModel):
    """A general-ledger account (and subaccount, where the back office has them)."""

    model_config = ConfigDict(frozen=True)

    account: str
    sub: str = ""

    def __str__(self) -> str:
        return f"{self.account}-{self.sub}" if self.sub else self.account


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    sku: str
    description: str
    quantity: Decimal = Decimal(1)
    unit_price: Money
    revenue_account: GLAccount | None = None  # None: the back office's default for the item/customer

    @property
    def total(self) -> Money:
        return Money.rounded(self.unit_price.amount * self.quantity, self.unit_price.currency)


class SalesOrder(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str  # idempotency key, stored in the back office's external-reference field
    customer_id: str
    order_reference: str | None  # the merchant's order number as the gateway carried it
    order_date: datetime
    currency: str
    lines: tuple[OrderLine, ...]
    status: OrderStatus = OrderStatus.OPEN
    hold_reason: str | None = None
    custom_fields: dict[str, str] = Field(default_factory=dict)
    refs: tuple[ExternalRef, ...] = ()

    @model_validator(mode="after")
    def _one_currency(self) -> SalesOrder:
        if not self.lines:
            raise ValueError("a sales order needs at least one line")
        for line in self.lines:
            if line.unit_price.currency != self.currency:
                raise ValueError(f"line {line.sku} is in {line.unit_price.currency}, the order in {self.currency}")
        return self

    @property
    def total(self) -> Money:
        total = Money.zero(self.currency)
        for line in self.lines:
            total = total + line.total
        return total


class Invoice(BaseModel):
    """An invoice raised for an order so that payments can be applied against it."""

    model_config = ConfigDict(frozen=True)

    key: str
    customer_id: str
    order: ExternalRef
    amount: Money
    invoice_date: datetime
    description: str | None = None


class ReceiptKind(StrEnum):
    APPLIED = "applied"  # applied to an invoice
    PREPAYMENT = "prepayment"  # received against an order that has no invoice yet


class CashReceipt(BaseModel):
    """Money received from a gateway capture, and where it is applied."""

    model_config = ConfigDict(frozen=True)

    key: str
    customer_id: str
    amount: Money
    received_at: datetime
    kind: ReceiptKind
    order: ExternalRef | None = None
    apply_to: ExternalRef | None = None  # the invoice, when kind is APPLIED
    description: str | None = None
    gateway_ref: ExternalRef
    deposit_account: GLAccount | None = None  # where the cash lands (card clearing); None: back-office default
    custom_fields: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _applied_needs_target(self) -> CashReceipt:
        if self.kind is ReceiptKind.APPLIED and self.apply_to is None:
            raise ValueError("an applied receipt needs the invoice it is applied to")
        if not self.amount.is_positive():
            raise ValueError("a receipt amount must be positive")
        return self


class MemoLine(BaseModel):
    """One line of a credit or debit memo: where the other side of the customer's balance goes."""

    model_config = ConfigDict(frozen=True)

    account: GLAccount
    amount: Money
    description: str = ""

    @model_validator(mode="after")
    def _positive(self) -> MemoLine:
        if not self.amount.is_positive():
            raise ValueError("a memo line amount must be positive")
        return self


class _Memo(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    customer_id: str
    memo_date: datetime
    description: str
    lines: tuple[MemoLine, ...]
    order: ExternalRef | None = None
    gateway_ref: ExternalRef | None = None

    @model_validator(mode="after")
    def _one_currency(self) -> _Memo:
        if not self.lines:
            raise ValueError("a memo needs at least one line")
        currencies = {line.amount.currency for line in self.lines}
        if len(currencies) != 1:
            raise ValueError(f"memo lines mix currencies: {sorted(currencies)}")
        return self

    @property
    def amount(self) -> Money:
        total = Money.zero(self.lines[0].amount.currency)
        for line in self.lines:
            total = total + line.amount
        return total


class CreditMemo(_Memo):
    """Lowers what the customer owes (a refund, a write-off, a won dispute): Dr the lines' accounts, Cr AR.

    ``apply_to``: the open invoice or debit memo this credit settles, if any.
    """

    apply_to: ExternalRef | None = None


class DebitMemo(_Memo):
    """Raises what the customer owes (a chargeback, a refund paid out): Dr AR, Cr the lines' accounts.

    ``apply_credit``: an existing credit (a credit memo) that settles this debit at once, if any.
    """

    apply_credit: ExternalRef | None = None


class ReceiptReversal(BaseModel):
    """Takes back a posted receipt (a capture voided before settlement)."""

    model_config = ConfigDict(frozen=True)

    key: str
    receipt: ExternalRef
    reversed_at: datetime
    reason: str
    gateway_ref: ExternalRef | None = None


class RefundRequest(BaseModel):
    """A refund the back office asks the gateway to make (e.g. an SL credit memo flagged for card refund)."""

    model_config = ConfigDict(frozen=True)

    ref: ExternalRef  # the back-office document that asks (the credit memo)
    customer_id: str
    amount: Money
    requested_at: datetime
    order: ExternalRef | None = None
    order_reference: str | None = None  # the merchant's order reference, as the gateway knows the order
    reason: str = ""


class RefundOutcome(StrEnum):
    REFUNDED = "refunded"  # the gateway accepted it
    DECLINED = "declined"  # the gateway declined it
    REFUSED = "refused"  # ledgerlink refused it before calling the gateway (e.g. more than is refundable)


class RefundResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: RefundOutcome
    message: str
    gateway_ref: ExternalRef | None = None  # the gateway's refund transaction
    amount: Money | None = None  # what the gateway refunded (None: nothing, e.g. declined or refused)
