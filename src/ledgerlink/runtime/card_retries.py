"""How often each card was retried after a decline, so dunning stays within the card networks' cap.

``reserve`` counts and records in one write transaction (on PostgreSQL under a transaction-scoped advisory
lock on the card), so two subscriptions on the same card, retried at the same moment by two workers, cannot
both take the last slot. A retry is recorded under its business key: asking again for the same key (a step
that runs again) is granted without counting twice. Times are the flows' business time.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, func, select, text

from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import card_retries


def _lock_id(card: str) -> int:
    return int.from_bytes(hashlib.sha256(card.encode()).digest()[:8], "big", signed=True)


class DatabaseCardRetryLedger:
    """``flows.ports.CardRetryLedger`` on the runtime database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, card: str, key: str, at: float, *, limit: int, window_seconds: float) -> float | None:
        def run(conn: Connection) -> float | None:
            if not self._db.is_sqlite:  # SQLite: BEGIN IMMEDIATE already serialises writers
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _lock_id(card)})
            if conn.execute(select(card_retries.c.key).where(card_retries.c.key == key)).first() is not None:
                return None
            since = at - window_seconds
            recent = [row.attempted_at for row in conn.execute(
                select(card_retries.c.attempted_at)
                .where(card_retries.c.card == card, card_retries.c.attempted_at > since)
                .order_by(card_retries.c.attempted_at))]
            if len(recent) >= limit:
                return recent[len(recent) - limit] + window_seconds  # when enough of them have left the window
            conn.execute(card_retries.insert().values(key=key, card=card, attempted_at=at))
            return None

        return await self._db.write(run)

    async def count(self, card: str, since: float) -> int:
        query = select(func.count()).select_from(card_retries).where(
            card_retries.c.card == card, card_retries.c.attempted_at > since)
        return int(await self._db.read(lambda conn: conn.execute(query).scalar_one()))
