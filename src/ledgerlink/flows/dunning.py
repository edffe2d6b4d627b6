"""Dunning: what happens after a renewal is declined, as settings and pure decisions (no I/O here).

A *soft* decline is retried on ``retry_days`` (days after the failed renewal), each retry within the card
networks' cap (``max_retries_per_card`` per ``card_window_days``, counted per card across subscriptions).
A *hard* decline stops retries: the customer is asked for a new payment method, and a new token on the
subscription is tried at once. When the schedule is spent, or ``end_after_days`` pass without a payment, the
configured end action runs: the subscription is suspended or cancelled, the invoice kept (still owed) or
written off. Every step sends the customer a notice and puts (keeps) the customer on AR hold; a payment clears
the hold. The notices' texts are here too, so they are tested like any other decision.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledgerlink.model import DeclineCategory, Money

DAY = 86400.0


class EndAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscription: Literal["suspend", "cancel"] = "suspend"
    invoice: Literal["keep", "write_off"] = "keep"  # write_off needs mapping.accounts.write_off


class DunningSettings(BaseModel):
    """``flows.subscriptions.dunning`` in an integration file."""

    model_config = ConfigDict(extra="forbid")

    retry_days: list[int] = Field(default_factory=lambda: [1, 3, 7, 14, 30, 45, 60])
    end_after_days: int | None = Field(None, ge=1, le=365, description="default: the last retry day")
    max_retries_per_card: int = Field(15, ge=1, le=100, description="retries of one card per card_window_days")
    card_window_days: int = Field(30, ge=1, le=365)
    end_action: EndAction = Field(default_factory=EndAction)
    decline_overrides: dict[str, DeclineCategory] = Field(
        default_factory=dict, description="gateway decline reason -> hard|soft, over the connector's table")

    @field_validator("retry_days")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        for index, day in enumerate(value):
            if not 1 <= day <= 365:
                raise ValueError(f"[{index}]: {day} is not a day between 1 and 365")
            if index and day <= value[index - 1]:
                raise ValueError(f"[{index}]: {day} does not come after {value[index - 1]}; list days in order")
        return value

    @field_validator("decline_overrides")
    @classmethod
    def _upper(cls, value: dict[str, DeclineCategory]) -> dict[str, DeclineCategory]:
        return {reason.strip().upper(): category for reason, category in value.items()}

    @model_validator(mode="after")
    def _ends_after_retries(self) -> DunningSettings:
        if self.end_after_days is not None and self.retry_days and self.end_after_days < self.retry_days[-1]:
            raise ValueError(f"end_after_days ({self.end_after_days}) comes before the last retry "
                             f"(retry_days ends at {self.retry_days[-1]})")
        return self

    @property
    def end_days(self) -> int:
        return self.end_after_days or (self.retry_days[-1] if self.retry_days else 30)

    def category(self, reason: str | None, reported: DeclineCategory | None) -> DeclineCategory:
        """The integration's override for ``reason``, else what the gateway connector said, else soft."""
        if reason and reason.strip().upper() in self.decline_overrides:
            return self.decline_overrides[reason.strip().upper()]
        return reported or DeclineCategory.SOFT

    def retry_at(self, failed_at: float, retries_done: int) -> float | None:
        """When retry number ``retries_done + 1`` is due, or None when the schedule is spent."""
        if retries_done >= len(self.retry_days):
            return None
        return failed_at + self.retry_days[retries_done] * DAY

    def end_at(self, failed_at: float) -> float:
        return failed_at + self.end_days * DAY


# ---- notices ----------------------------------------------------------------------------------------------

NoticeKind = Literal["soft", "hard", "recovered", "suspended", "cancelled", "payment_method"]


def _card(card: dict[str, str | None] | None) -> str:
    if not card:
        return "your card on file"
    brand = (card.get("brand") or "card").replace("_", " ").title()
    return f"your {brand} ending {card['last4']}" if card.get("last4") else f"your {brand}"


def notice(kind: NoticeKind, *, description: str, amount: Money, period: date, card: dict[str, str | None] | None,
           reason: str | None = None, next_try: date | None = None, problem: str | None = None,
           written_off: bool = False) -> tuple[str, str]:
    """(subject, body) of a notice to the customer. No card number can appear: cards are brand and last four."""
    what = description or "your subscription"
    owed = f"{amount.format()} {amount.currency}"
    when = f"{period:%d %B %Y}"
    if kind == "soft":
        retry = f" We will try again on {next_try:%d %B %Y}." if next_try else ""
        return (f"Payment failed: {what}",
                f"We could not charge {_card(card)} {owed} for {what} (period starting {when})."
                f"{retry} Please make sure the card can be charged, or give us another payment method."
                + (f"\n\nReason given by the card issuer: {reason}." if reason else ""))
    if kind == "hard":
        return (f"Action needed: update your payment method for {what}",
                f"{_card(card).capitalize()} can no longer be charged for {what}"
                + (f" ({reason})" if reason else "") + f". {owed} for the period starting {when} is unpaid, and "
                "your account is on hold. Please give us a new payment method; we will charge it right away.")
    if kind == "payment_method":
        return (f"Action needed: update your payment method for {what}",
                f"We cannot charge {what} for the period starting {when}: {problem or 'no usable payment method'}. "
                "Please give us a new payment method.")
    if kind == "recovered":
        return (f"Payment received: {what}",
                f"Thank you: {owed} for {what} (period starting {when}) has been paid with {_card(card)}. "
                "Your account is no longer on hold.")
    ended = "suspended" if kind == "suspended" else "cancelled"
    settled = ("The unpaid invoice has been written off." if written_off
               else f"{owed} for the period starting {when} remains due.")
    return (f"Your subscription has been {ended}: {what}",
            f"We could not collect the payment for {what}, so it has been {ended}. {settled}"
            + (" Give us a new payment method to resume it." if kind == "suspended" else ""))
