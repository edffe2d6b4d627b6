"""``flows.ports.InboxIndex`` on the inbox itself: which of some event ids a source has stored already.

The gap sweep asks it before storing what it found at the gateway, so a sweep over a busy hour stores only
the gaps (and counts no duplicates). It reads the unique ``(source, event_id)`` index in chunks.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, select

from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import inbox

CHUNK = 500  # ids per query: well under every driver's bound-parameter limit


class DatabaseInboxIndex:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def known(self, source: str, event_ids: Collection[str]) -> set[str]:
        ids = sorted(set(event_ids))
        if not ids:
            return set()

        def read(conn: Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start:start + CHUNK]
                query = select(inbox.c.event_id).where(inbox.c.source == source, inbox.c.event_id.in_(chunk))
                found.update(row.event_id for row in conn.execute(query))
            return found

        return await self._db.read(read)
