"""What flows need from the engine's own storage, as Protocols (the runtime implements them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, Protocol

from ledgerlink.model import Case, CaseStatus, CaseType


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

    async def list(self, *, status: CaseStatus | None = None, type: CaseType | None = None,
                   limit: int = 100) -> list[Case]: ...


class ReconciliationLedger(Protocol):
    """Which transactions were settled on which day, and the reports of reconciliation runs."""

    async def settled_before(self, gateway: str, day: date, since: date) -> set[tuple[str, str]]:
        """(transaction id, kind) settled on days in [since, day): postings they match were reconciled then."""
        ...

    async def record_settled(self, gateway: str, day: date, rows: Iterable[tuple[str, str, str]]) -> None:
        """Remember (transaction id, kind, batch id) as settled on ``day`` (idempotent)."""
        ...

    async def save_report(self, run_id: str, gateway: str, day: date, status: str, summary: dict[str, Any],
                          report: dict[str, Any] | None, error: str | None, started_at: float) -> None: ...
