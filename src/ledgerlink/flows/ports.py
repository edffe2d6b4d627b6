"""What flows need from the engine's own storage, as Protocols (the runtime implements them)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import polars as pl

from ledgerlink.flows.context import OutboundEvent
from ledgerlink.model import (
    Case,
    CaseStatus,
    CaseType,
    Money,
    Notification,
    ReviewCase,
    ReviewDecision,
    ReviewStatus,
    RiskScore,
)
from ledgerlink.risk import CustomerHistory


class InboxIndex(Protocol):
    """Which events the engine's inbox holds already, by source and event id."""

    async def known(self, source: str, event_ids: Collection[str]) -> set[str]:
        """The ids among ``event_ids`` stored under ``source`` (finished, pending or dead alike)."""
        ...


class CaseBook(Protocol):
    """Cases a person must look at, keyed so that a re-run updates a case instead of opening another."""

    async def record(self, cases: Sequence[Case]) -> list[Case]:
        """Insert new cases, update open ones with the same key; returns those opened now."""
        ...

    async def resolve(self, keys: Iterable[str], *, note: str) -> int:
        """Resolve the open cases among ``keys``; returns how many."""
        ...

    async def open_keys(self, types: Iterable[CaseType] | None = None) -> set[str]: ...

    async def attach(self, key: str, ref: str) -> None:
        """Remember an external record (e.g. the back-office task) on a case."""
        ...

    async def attach_all(self, refs: Mapping[str, str]) -> None:
        """``attach`` for many cases at once (case key -> external record), in one write."""
        ...

    async def list(self, *, status: CaseStatus | None = None, type: CaseType | None = None,
                   limit: int = 100) -> list[Case]: ...


class ReconciliationLedger(Protocol):
    """Which transactions were settled on which day, and the reports of reconciliation runs."""

    async def settled_before(self, gateway: str, day: date, since: date) -> pl.DataFrame:
        """``txn``, ``kind`` (strings) of what settled on days in [since, day) (a pair may repeat): postings they
        match were reconciled then."""
        ...

    async def record_settled(self, gateway: str, day: date, settled: pl.DataFrame) -> None:
        """Remember ``settled`` (``txn``, ``kind``, ``batch``: a day can be a million rows) as what settled on
        ``day``, replacing what an earlier run of the day recorded."""
        ...

    async def reconciled_days(self, gateway: str, first: date, last: date) -> set[date]:
        """The days in [first, last] that have a succeeded run."""
        ...

    async def save_report(self, run_id: str, gateway: str, day: date, status: str, summary: dict[str, Any],
                          report: dict[str, Any] | None, error: str | None, started_at: float) -> None: ...


class UnknownCase(LookupError):
    """No review case has this key."""


class ReviewQueue(Protocol):
    """Payments held for fraud review, and what was decided; every change audited with it."""

    async def open(self, case: ReviewCase, *, actor: str) -> bool:
        """Store a new case (audited ``review.opened``); False when one with its key exists already."""
        ...

    async def get(self, key: str) -> ReviewCase | None: ...

    async def decide(self, key: str, decision: ReviewDecision, *, actor: str, source: str,
                     comments: str | None = None, then: OutboundEvent | None = None) -> ReviewCase:
        """Close an open case with ``decision``, audit it, and store ``then`` (the event that applies the
        decision) in the same transaction. ``UnknownCase`` or ``CaseClosed``, with nothing written, otherwise."""
        ...

    async def settled(self, key: str, *, follow_on_id: str | None, actor: str) -> None:
        """The decision's capture or reversal and order change are applied (audited once)."""
        ...

    async def list(self, *, status: ReviewStatus | None = ReviewStatus.OPEN, limit: int = 100) -> list[ReviewCase]:
        """Highest risk score first."""
        ...


class RiskLedger(Protocol):
    """The risk score of every payment scored, and each customer's earlier payments."""

    async def recorded(self, gateway: str, payment_id: str) -> RiskScore | None: ...

    async def history(self, customer_key: str, *, before: datetime, currency: str,
                      exclude: str) -> CustomerHistory:
        """What the customer paid before ``before`` (``exclude``: the payment being scored)."""
        ...

    async def record(self, *, gateway: str, payment_id: str, customer_key: str, observed_at: datetime,
                     amount: Money, country: str | None, score: RiskScore) -> RiskScore:
        """Keep the payment's score; a payment scored before keeps its first score, which is returned."""
        ...


class NotificationOutbox(Protocol):
    """Customer notices waiting to be delivered (the engine sends them with retries)."""

    async def enqueue(self, notification: Notification) -> bool:
        """Store the notice once per ``notification.key``; True when it is new."""
        ...


class CardRetryLedger(Protocol):
    """Retries of declined charges per card, shared by every subscription that uses the card."""

    async def reserve(self, card: str, key: str, at: float, *, limit: int, window_seconds: float) -> float | None:
        """Record retry ``key`` on ``card`` at ``at`` if fewer than ``limit`` retries of the card fall within
        ``window_seconds`` before it: None when recorded (or already recorded under ``key``); otherwise the
        earliest time a retry of the card may go."""
        ...
