"""Small tools for driving the runtime in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select

from ledgerlink.flows.context import MessageHandler
from ledgerlink.runtime import Database, Engine, InboxItem, RuntimeSettings
from ledgerlink.runtime.schema import inbox


def fast_settings(**overrides: Any) -> RuntimeSettings:
    values: dict[str, Any] = {
        "buckets": 16, "lease_seconds": 1.0, "poll_seconds": 0.02, "event_timeout_seconds": 5.0,
        "backoff": {"base_seconds": 0.01, "cap_seconds": 0.05, "max_attempts": 4},
    }
    values.update(overrides)
    return RuntimeSettings.model_validate(values)


@asynccontextmanager
async def running_engine(
    db: Database, handlers: Mapping[str, MessageHandler], settings: RuntimeSettings | None = None, **kwargs: Any
) -> AsyncIterator[Engine]:
    engine = Engine(db, handlers=handlers, settings=settings or fast_settings(), **kwargs)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def item(event_id: str, partition: str, body: bytes | None = None, *, source: str = "test",
         ignored: bool = False) -> InboxItem:
    return InboxItem(source=source, event_id=event_id, event_type="test.event", partition_key=partition,
                     body=body if body is not None else event_id.encode(), ignored=ignored)


def statuses(db: Database) -> dict[str, int]:
    return db.read_sync(lambda conn: {
        row.status: row.n for row in conn.execute(select(inbox.c.status, func.count().label("n")).group_by(inbox.c.status))
    })


async def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


def finished(db: Database, total: int) -> Callable[[], bool]:
    def check() -> bool:
        counts = statuses(db)
        return sum(counts.get(s, 0) for s in ("done", "dead", "ignored")) >= total
    return check
