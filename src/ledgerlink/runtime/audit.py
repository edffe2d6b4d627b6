"""The audit log: who did what to which record, when, and with what details. Append-only.

One table, ``ll_audit``, for every kind of action. ``append`` writes an entry in the caller's
transaction, so a change and its entry commit together or not at all; ``AuditLog`` does the same
on its own for callers outside a transaction. Nothing here updates or deletes an entry.

- ``actor``: who, as ``<kind>:<identity>``: ``admin:<token name>``, ``cli:<os user>``, a gateway
  name for what its own case management decided, ``ledgerlink`` for the engine itself.
- ``action``: dotted, subject first: ``review.opened``, ``review.accepted``, ``review.settled``,
  ``dlq.replayed``, ``reconciliation.requested``, ``token.created``, ``token.revoked``,
  ``vault.secret_set``, ``vault.key_rotated`` (docs/security.md lists who writes each).
- ``target``: the record acted on, by its stable key.
- ``details``: a JSON object; card numbers are refused, never stored.
- ``key``: optional idempotency key for entries written by work that may run twice (a retried
  flow step); an entry whose key exists is not written again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from ledgerlink.model import FieldIssue, InvalidInput, find_card_numbers
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import audit


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at.isoformat(), "actor": self.actor, "action": self.action,
                "target": self.target, "details": self.details}


def _check(actor: str, action: str, target: str, details: Mapping[str, Any] | None) -> bytes:
    issues = [FieldIssue(name, "must not be empty") for name, value in
              (("actor", actor), ("action", action), ("target", target)) if not value or not value.strip()]
    text = orjson.dumps(dict(details or {}), default=str)
    for name, value in (("actor", actor), ("action", action), ("target", target), ("details", text.decode())):
        if value and find_card_numbers(value):
            issues.append(FieldIssue(name, "contains a card number; the audit log never stores one"))
    if issues:
        raise InvalidInput(issues, source="audit entry")
    return text


def append(db: Database, conn: Connection, *, actor: str, action: str, target: str,
           details: Mapping[str, Any] | None = None, key: str | None = None, at: float | None = None) -> bool:
    """Write one entry in ``conn``'s transaction; False when ``key`` was written before."""
    text = _check(actor, action, target, details)
    row = {"at": time.time() if at is None else at, "actor": actor[:255], "action": action[:128],
           "target": target[:255], "details": text.decode(), "key": key}
    if key is None:
        conn.execute(audit.insert().values(**row))
        return True
    statement = db.insert(audit).values(**row).on_conflict_do_nothing(index_elements=["key"]).returning(audit.c.seq)
    return conn.execute(statement).first() is not None


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(seq=row.seq, at=datetime.fromtimestamp(row.at, UTC), actor=row.actor, action=row.action,
                      target=row.target, details=orjson.loads(row.details) if row.details else {})


def entries(conn: Connection, *, target: str | None = None, action: str | None = None, actor: str | None = None,
            before: int | None = None, limit: int = 100) -> list[AuditEntry]:
    """Newest first; ``action`` ending in ``.`` matches a prefix (``review.``); ``before`` pages by seq."""
    query = select(audit).order_by(audit.c.seq.desc()).limit(max(1, min(limit, 1000)))
    if target is not None:
        query = query.where(audit.c.target == target)
    if action is not None:
        query = query.where(audit.c.action.startswith(action, autoescape=True) if action.endswith(".")
                            else audit.c.action == action)
    if actor is not None:
        query = query.where(audit.c.actor == actor)
    if before is not None:
        query = query.where(audit.c.seq < before)
    return [_entry(row) for row in conn.execute(query)]


class AuditLog:
    """The audit log on its own database connection (for callers not already in a transaction)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, *, actor: str, action: str, target: str, details: Mapping[str, Any] | None = None,
                     key: str | None = None) -> bool:
        return await self._db.write(lambda conn: append(self._db, conn, actor=actor, action=action, target=target,
                                                        details=details, key=key))

    async def entries(self, **filters: Any) -> list[AuditEntry]:
        return await self._db.read(lambda conn: entries(conn, **filters))
