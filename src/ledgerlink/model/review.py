"""Fraud review: a payment the fraud screen held, the case a person decides, and our own risk score.

A gateway's fraud screen (Cybersource Decision Manager) may hold an authorisation for review. The
engine then opens a ``ReviewCase`` carrying the screen's reasons in plain words and our model's
``RiskScore`` with the features that raised it most. A reviewer accepts (capture) or rejects
(reverse) it, here or in the gateway's own case management; either way the decision is a
``ReviewVerdict``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from ledgerlink.model.money import Money


class ReviewDecision(StrEnum):
    ACCEPT = "accept"  # the payment is genuine: release the order and capture
    REJECT = "reject"  # fraud: cancel the order and give the authorisation back


class ReviewStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


DECIDED_STATUS = {ReviewDecision.ACCEPT: ReviewStatus.ACCEPTED, ReviewDecision.REJECT: ReviewStatus.REJECTED}


class ReviewVerdict(BaseModel):
    """A review decision as a gateway reports or records it."""

    model_config = ConfigDict(frozen=True)

    decision: ReviewDecision
    reviewer: str | None = None
    comments: str | None = None
    follow_on_id: str | None = None  # the capture or reversal the gateway made with the decision, if any


class RiskReason(BaseModel):
    """One reason code of the fraud screen and what it means."""

    model_config = ConfigDict(frozen=True)

    code: str
    description: str


class RiskFactor(BaseModel):
    """One feature's share of a score: ``contribution`` is its log-odds above the average payment."""

    model_config = ConfigDict(frozen=True)

    feature: str
    value: float
    contribution: float
    description: str


class RiskScore(BaseModel):
    """Our model's estimate that a payment is fraud (0..1), and the features that pushed it up most."""

    model_config = ConfigDict(frozen=True)

    score: float
    model: str  # the model's version, so a score can be traced to the artifact that gave it
    factors: tuple[RiskFactor, ...] = ()

    @property
    def points(self) -> int:
        """The score as 0..100, as a queue shows it."""
        return round(self.score * 100)


class ReviewCase(BaseModel):
    """A payment held for review, until someone decides it. ``key`` is stable per gateway payment."""

    model_config = ConfigDict(frozen=True)

    key: str
    gateway: str
    payment_id: str
    partition_key: str  # the runtime partition of the payment's order: decisions run in order with its events
    order_reference: str | None = None
    amount: Money
    customer: str | None = None  # name or email as the gateway reported it, for the reviewer
    status: ReviewStatus = ReviewStatus.OPEN
    reasons: tuple[RiskReason, ...] = ()
    rules: tuple[str, ...] = ()
    gateway_score: int | None = None
    risk: RiskScore | None = None
    opened_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    decision_source: str | None = None  # "engine" (admin API or CLI) or the gateway's name
    comments: str | None = None
    settled_at: datetime | None = None  # when the decision's capture/reversal and order change were applied
    follow_on_id: str | None = None

    @property
    def decision(self) -> ReviewDecision | None:
        if self.status is ReviewStatus.ACCEPTED:
            return ReviewDecision.ACCEPT
        if self.status is ReviewStatus.REJECTED:
            return ReviewDecision.REJECT
        return None


class CaseClosed(ValueError):
    """A decision for a review case that is no longer open; says who closed it, when and how."""

    def __init__(self, case: ReviewCase, wanted: ReviewDecision) -> None:
        self.case = case
        self.wanted = wanted
        when = f" at {case.decided_at:%Y-%m-%d %H:%M:%S}Z" if case.decided_at else ""
        who = f" by {case.decided_by}" if case.decided_by else ""
        super().__init__(f"review case {case.key} is already {case.status.value}{who}{when}; "
                         f"a decision to {wanted.value} cannot change it")
