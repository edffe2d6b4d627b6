"""Double-entry journal entries: built balanced or not at all.

A posting is an account, a side and a positive amount. An entry refuses to exist
unless, for every currency, its debits equal its credits to the cent: an
unbalanced entry is a bug to catch here, not a batch for the back office to reject.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledgerlink.model.documents import GLAccount
from ledgerlink.model.money import Money
from ledgerlink.model.refs import ExternalRef


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class Posting(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: GLAccount
    side: Side
    amount: Money
    memo: str = ""

    @model_validator(mode="after")
    def _positive(self) -> Posting:
        if not self.amount.is_positive():
            raise ValueError(f"posting to {self.account} must be a positive amount, got {self.amount}")
        return self


class UnbalancedEntry(ValueError):
    """Debits and credits of a journal entry differ in some currency."""


class JournalEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str  # idempotency key, e.g. "dynamics_sl:journal:settlement:<batch id>"
    entry_date: date
    description: str
    postings: tuple[Posting, ...]
    refs: tuple[ExternalRef, ...] = ()
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _balanced(self) -> JournalEntry:
        if len(self.postings) < 2:
            raise UnbalancedEntry("a journal entry needs at least two postings")
        for currency, (debits, credits) in self.totals().items():
            if debits != credits:
                raise UnbalancedEntry(f"{currency}: debits {debits.format()} != credits {credits.format()}")
        return self

    def totals(self) -> dict[str, tuple[Money, Money]]:
        """Per currency: (sum of debits, sum of credits)."""
        sums: dict[str, tuple[Money, Money]] = {}
        for posting in self.postings:
            currency = posting.amount.currency
            debits, credits = sums.get(currency, (Money.zero(currency), Money.zero(currency)))
            if posting.side is Side.DEBIT:
                debits = debits + posting.amount
            else:
                credits = credits + posting.amount
            sums[currency] = (debits, credits)
        return sums

    @property
    def currencies(self) -> list[str]:
        return sorted(self.totals())
