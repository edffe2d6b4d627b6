"""Subscriptions, the renewal invoices they raise, how a failed renewal is classified, and customer notices.

A subscription bills a customer's stored card token a fixed amount every interval. It is defined in the
back office (a recurring invoice) or in the integration file; either way the flows see this one record.
A declined renewal is ``hard`` (the card cannot be charged again: stolen, closed, expired; ask for a new
payment method) or ``soft`` (it may work later: insufficient funds, issuer unavailable; retry on a schedule).
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledgerlink.model.money import Money
from ledgerlink.model.party import PaymentToken
from ledgerlink.model.refs import ExternalRef


class DeclineCategory(StrEnum):
    HARD = "hard"  # do not retry the same card: a new payment method is needed
    SOFT = "soft"  # the same card may be charged again later


class IntervalUnit(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class SubscriptionStatus(StrEnum):
    """Where a subscription stands at its source (the back office or the integration file)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"  # no renewals until it is resumed
    CANCELLED = "cancelled"  # final
    ENDED = "ended"  # every cycle it was set up for has been billed


def add_interval(day: date, unit: IntervalUnit, count: int) -> date:
    """``day`` moved forward by ``count`` units; months and years end on the month's last day when the
    target month is shorter (31 January + 1 month = 28/29 February)."""
    if unit is IntervalUnit.DAY:
        return day + timedelta(days=count)
    if unit is IntervalUnit.WEEK:
        return day + timedelta(weeks=count)
    months = count * (12 if unit is IntervalUnit.YEAR else 1)
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


class Subscription(BaseModel):
    """What to bill, whom, with which token, how often, and from when.

    ``id`` is stable for the life of the subscription (it keys every side effect of every renewal);
    ``ref`` is the back-office record that defines it, when the back office does. ``token`` is None when
    the definition names no usable token: the flow then asks a person to link one, it never guesses.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    source: str  # "back_office" or "integration"
    customer_id: str
    token: PaymentToken | None
    amount: Money
    interval_unit: IntervalUnit = IntervalUnit.MONTH
    interval_count: int = Field(default=1, ge=1)
    next_date: date  # the next period to bill (back office: its own next date; file: the first period)
    description: str = ""
    email: str | None = None  # where notices go; None: the customer's address in the back office
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    remaining_cycles: int | None = None  # None: no end
    ref: ExternalRef | None = None

    @field_validator("id", "customer_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @model_validator(mode="after")
    def _positive(self) -> Subscription:
        if not self.amount.is_positive():
            raise ValueError("a subscription amount must be positive")
        return self

    def following(self, period: date) -> date:
        return add_interval(period, self.interval_unit, self.interval_count)


class RenewalInvoice(BaseModel):
    """The invoice for one period of a subscription (from the recurring template when the back office has one)."""

    model_config = ConfigDict(frozen=True)

    key: str
    subscription_id: str
    customer_id: str
    amount: Money
    period: date
    invoice_date: datetime
    description: str
    template: ExternalRef | None = None  # the back office's recurring document, when it defines the subscription


class Notification(BaseModel):
    """A message to a customer, idempotent by ``key`` (the outbox stores it once, the sender delivers it)."""

    model_config = ConfigDict(frozen=True)

    key: str
    to: str
    subject: str
    body: str
    category: str = "subscription"
    reference: str | None = None  # what it is about (the subscription id)

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        local, at, domain = value.rpartition("@")[0], "@" in value, value.rpartition("@")[2]
        if not at or not local or "." not in domain:
            raise ValueError(f"{value!r} is not an e-mail address")
        return value
