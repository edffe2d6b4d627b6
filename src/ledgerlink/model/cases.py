"""Cases: discrepancies, disputes and refusals a person must look at."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.model.money import Money
from ledgerlink.model.refs import ExternalRef


class CaseType(StrEnum):
    MISSING_IN_ERP = "missing_in_erp"  # settled by the gateway, not posted in the back office
    MISSING_IN_SETTLEMENT = "missing_in_settlement"  # posted, never settled (after the lag window)
    AMOUNT_MISMATCH = "amount_mismatch"
    DUPLICATE = "duplicate"
    CURRENCY_MISMATCH = "currency_mismatch"
    JOURNAL_REFUSED = "journal_refused"  # a settlement batch's journal the back office would not post
    DISPUTE = "dispute"
    REFUND_REFUSED = "refund_refused"
    SUBSCRIPTION = "subscription"  # a subscription a person must fix (no usable payment method, no address)
    DUNNING = "dunning"  # a renewal that failed and is being collected
    TOKEN_UNLINKED = "token_unlinked"  # a gateway token event for a customer the back office cannot match


class CaseStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Case(BaseModel):
    """``key`` identifies the case across runs, so a re-run updates it instead of opening another."""

    model_config = ConfigDict(frozen=True)

    key: str
    type: CaseType
    status: CaseStatus = CaseStatus.OPEN
    summary: str
    amount: Money | None = None
    reference: str | None = None  # the transaction or order it is about
    opened_at: datetime
    updated_at: datetime
    evidence: dict[str, Any] = Field(default_factory=dict)
    refs: tuple[ExternalRef, ...] = ()


class Task(BaseModel):
    """A to-do for a person in the back office (finance team), idempotent by ``key``."""

    model_config = ConfigDict(frozen=True)

    key: str
    subject: str
    body: str
    category: str  # e.g. "reconciliation", "chargeback", "refund"
    reference: str | None = None
    amount: Money | None = None
    due: datetime | None = None
