"""What a gateway says it settled and paid out, and what a back office says was posted.

A settlement batch carries its lines (captures and refunds, as the processor
batched them) and the money movements around them (fees, chargebacks and their
fees). Its ``net`` is what reaches the merchant's bank; the batch refuses to
exist if its own figures do not add up.

These are records, one object per line: right for a few thousand lines, far too
slow for a large merchant's day (a million lines cost tens of seconds and gigabytes
as objects). Reconciliation reads a day as columns instead
(``connectors.kit.columns``, docs/decisions/0002-settlement-in-columns.md): the
lines in one frame and, per batch, a ``SettlementBatchTotals`` record, which keeps
the same rule (its deposit is its net) with its gross and refunds summed from the
columns.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledgerlink.model.money import Money
from ledgerlink.model.refs import ExternalRef


class SettlementLineKind(StrEnum):
    CAPTURE = "capture"  # a sale or capture, money in
    REFUND = "refund"  # money out


class SettlementLine(BaseModel):
    """One transaction in a settlement batch. ``amount`` is positive; ``kind`` gives the direction."""

    model_config = ConfigDict(frozen=True)

    gateway: str
    batch_id: str
    batch_date: date
    transaction_id: str
    order_reference: str | None = None
    reconciliation_id: str | None = None
    kind: SettlementLineKind
    amount: Money
    payment_method: str | None = None
    source_line: int | None = None  # line in the report file, for error messages

    @property
    def signed_amount(self) -> Money:
        return self.amount if self.kind is SettlementLineKind.CAPTURE else -self.amount


class SettlementBatch(BaseModel):
    """One processor batch in one currency, with the totals the deposit is made of."""

    model_config = ConfigDict(frozen=True)

    gateway: str
    batch_id: str
    batch_date: date
    currency: str
    lines: tuple[SettlementLine, ...]
    fees: Money
    chargebacks: Money  # chargebacks taken less chargebacks won back that day: may be negative
    chargeback_fees: Money
    deposit: Money  # what the gateway says reached the bank

    @property
    def gross(self) -> Money:
        return self._total(SettlementLineKind.CAPTURE)

    @property
    def refunds(self) -> Money:
        return self._total(SettlementLineKind.REFUND)

    def _total(self, kind: SettlementLineKind) -> Money:
        # Decimal sums (exact) rather than one Money per step: a large day's batch has hundreds of thousands of
        # lines, and the validator, the journal and the report each take these totals
        amounts = (line.amount.amount for line in self.lines if line.kind is kind)
        return Money.of(sum(amounts, Decimal(0)), self.currency)

    @property
    def net(self) -> Money:
        return self.gross - self.refunds - self.fees - self.chargebacks - self.chargeback_fees

    @model_validator(mode="after")
    def _adds_up(self) -> SettlementBatch:
        for line in self.lines:
            if line.amount.currency != self.currency:
                raise ValueError(f"batch {self.batch_id} is in {self.currency}; line {line.transaction_id} is in "
                                 f"{line.amount.currency}")
        for name in ("fees", "chargebacks", "chargeback_fees", "deposit"):
            value: Money = getattr(self, name)
            if value.currency != self.currency:
                raise ValueError(f"batch {self.batch_id} {name} is in {value.currency}, not {self.currency}")
            if name in ("fees", "chargeback_fees") and value.amount < 0:
                raise ValueError(f"batch {self.batch_id} {name} must not be negative")
        if self.deposit != self.net:
            raise ValueError(f"batch {self.batch_id}: deposit {self.deposit} is not gross - refunds - fees - "
                             f"chargebacks ({self.net})")
        return self


    def totals(self) -> SettlementBatchTotals:
        """The batch's figures without its lines (what a journal is built from)."""
        return SettlementBatchTotals.model_construct(  # this batch's own validator has checked them
            gateway=self.gateway, batch_id=self.batch_id, batch_date=self.batch_date, currency=self.currency,
            lines=len(self.lines), gross=self.gross, refunds=self.refunds, fees=self.fees,
            chargebacks=self.chargebacks, chargeback_fees=self.chargeback_fees, deposit=self.deposit)


class SettlementBatchTotals(BaseModel):
    """One processor batch's figures, its lines counted and summed rather than held (they travel as columns).

    The same rule as ``SettlementBatch``: every figure is in the batch's currency, fees are not negative, and
    the deposit is ``gross - refunds - fees - chargebacks - chargeback_fees`` exactly.
    """

    model_config = ConfigDict(frozen=True)

    gateway: str
    batch_id: str
    batch_date: date
    currency: str
    lines: int = Field(ge=0)  # how many lines the batch has
    gross: Money  # its captures
    refunds: Money  # its refunds (positive)
    fees: Money
    chargebacks: Money  # taken less won back: may be negative
    chargeback_fees: Money
    deposit: Money

    @property
    def net(self) -> Money:
        return self.gross - self.refunds - self.fees - self.chargebacks - self.chargeback_fees

    @model_validator(mode="after")
    def _adds_up(self) -> SettlementBatchTotals:
        for name in ("gross", "refunds", "fees", "chargebacks", "chargeback_fees", "deposit"):
            value: Money = getattr(self, name)
            if value.currency != self.currency:
                raise ValueError(f"batch {self.batch_id} {name} is in {value.currency}, not {self.currency}")
            if name in ("gross", "refunds", "fees", "chargeback_fees") and value.amount < 0:
                raise ValueError(f"batch {self.batch_id} {name} must not be negative")
        if self.deposit != self.net:
            raise ValueError(f"batch {self.batch_id}: deposit {self.deposit} is not gross - refunds - fees - "
                             f"chargebacks ({self.net})")
        return self


class Settlement(BaseModel):
    """Everything a gateway reported for one merchant and one day."""

    model_config = ConfigDict(frozen=True)

    gateway: str
    merchant_id: str
    day: date
    batches: tuple[SettlementBatch, ...]
    sources: tuple[str, ...] = ()  # which reports it was read from


class PostedKind(StrEnum):
    RECEIPT = "receipt"  # money received (a capture posted as a payment)
    REFUND = "refund"  # money paid back


class PostedPayment(BaseModel):
    """Money the back office holds as received from, or refunded through, the gateway."""

    model_config = ConfigDict(frozen=True)

    ref: ExternalRef
    kind: PostedKind
    amount: Money  # positive; ``kind`` gives the direction
    posted_on: date
    posted_at: datetime | None = None
    transaction_id: str | None = None  # the gateway transaction it came from, when recorded
    order_reference: str | None = None
    customer_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
