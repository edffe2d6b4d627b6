"""The notification outbox: customer notices stored in the engine's database, then delivered with retries.

A flow enqueues a ``Notification`` (``DatabaseNotificationOutbox.enqueue``): one row per key, so a flow step
that runs again stores nothing new. ``NotificationSender`` runs beside the workers and delivers what is due
through a ``NotificationChannel`` (SMTP): it claims rows (``pending`` -> ``sending``, with a claim that lapses
after ``claim_seconds`` in case the process dies mid-send), then marks each ``sent``, or ``pending`` again
after a capped jittered backoff when the failure is worth retrying, or ``dead`` with the evidence when it is
not or the attempts are spent. Delivery is at least once: a process killed after the mail server accepted a
message but before the row was marked sends it again, with the same ``Message-ID``.

On PostgreSQL several processes may run senders: claims use ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, or_, select, update

from ledgerlink.connectors.kit.errors import ConnectorError
from ledgerlink.connectors.kit.protocols import NotificationChannel
from ledgerlink.connectors.kit.retry import Backoff
from ledgerlink.model import Notification, redact_card_numbers
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import notifications

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, DEAD = "pending", "sending", "sent", "dead"


class SenderSettings(BaseModel):
    """``notifications:`` delivery knobs of an integration file."""

    model_config = ConfigDict(extra="forbid")

    poll_seconds: float = Field(1.0, gt=0)
    batch: int = Field(50, ge=1, le=1000)
    claim_seconds: float = Field(120.0, gt=0)
    base_seconds: float = Field(30.0, gt=0)
    cap_seconds: float = Field(3600.0, gt=0)
    max_attempts: int = Field(10, ge=1)


class DatabaseNotificationOutbox:
    """``flows.ports.NotificationOutbox`` on the runtime database."""

    def __init__(self, db: Database, *, channel: str = "email", clock: Callable[[], float] = time.time,
                 on_enqueue: Callable[[], None] | None = None) -> None:
        self._db = db
        self._channel = channel
        self._clock = clock
        self.on_enqueue = on_enqueue

    async def enqueue(self, notification: Notification) -> bool:
        now = self._clock()
        row = {"key": notification.key, "channel": self._channel, "recipient": notification.to,
               "subject": redact_card_numbers(notification.subject), "body": redact_card_numbers(notification.body),
               "category": notification.category, "reference": notification.reference, "status": PENDING,
               "attempts": 0, "available_at": now, "created_at": now}
        statement = self._db.insert(notifications).values(**row).on_conflict_do_nothing(index_elements=["key"])
        added = bool(await self._db.write(lambda conn: conn.execute(statement).rowcount))
        if added and self.on_enqueue is not None:
            self.on_enqueue()
        return added


def list_notifications(conn: Connection, *, status: str | None = None, reference: str | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
    query = select(notifications).order_by(notifications.c.created_at, notifications.c.key).limit(limit)
    if status is not None:
        query = query.where(notifications.c.status == status)
    if reference is not None:
        query = query.where(notifications.c.reference == reference)
    return [{**row._asdict(), "last_error": orjson.loads(row.last_error) if row.last_error else None}
            for row in conn.execute(query)]


def notification_counts(conn: Connection) -> dict[str, int]:
    query = select(notifications.c.status, func.count()).group_by(notifications.c.status)
    return {status: count for status, count in conn.execute(query)}


@dataclass
class _Claimed:
    key: str
    attempts: int
    notification: Notification


class NotificationSender:
    def __init__(self, db: Database, channel: NotificationChannel, settings: SenderSettings | None = None, *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self._db = db
        self.channel = channel
        self.settings = settings or SenderSettings()
        self._clock = clock
        self._rng = rng or random.Random()
        self._backoff = Backoff(self.settings.base_seconds, self.settings.cap_seconds, self.settings.max_attempts)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ledgerlink-notifications")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.channel.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                log.exception("delivering notifications failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Send every notification due now; returns how many were sent."""
        sent = 0
        async with self._lock:
            while True:
                claimed = await self._db.write(self._claim)
                if not claimed:
                    return sent
                for item in claimed:
                    sent += await self._deliver(item)

    def _claim(self, conn: Connection) -> list[_Claimed]:
        now = self._clock()
        query = (select(notifications)
                 .where(or_(notifications.c.status == PENDING, notifications.c.status == SENDING),
                        notifications.c.available_at <= now)
                 .order_by(notifications.c.available_at).limit(self.settings.batch))
        if not self._db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        conn.execute(update(notifications).where(notifications.c.key.in_([r.key for r in rows]))
                     .values(status=SENDING, available_at=now + self.settings.claim_seconds,
                             attempts=notifications.c.attempts + 1))
        return [_Claimed(row.key, row.attempts + 1, Notification(
            key=row.key, to=row.recipient, subject=row.subject, body=row.body, category=row.category or "",
            reference=row.reference)) for row in rows]

    async def _deliver(self, item: _Claimed) -> int:
        try:
            await self.channel.send(item.notification)
        except ConnectorError as exc:
            await self._failed(item, exc.evidence(), retryable=exc.retryable,
                               retry_after=exc.retry_after)
            return 0
        except Exception as exc:  # a bug or an unexpected failure: keep the evidence, do not retry forever
            await self._failed(item, {"error": type(exc).__name__, "message": redact_card_numbers(str(exc))},
                               retryable=False, retry_after=None)
            return 0
        now = self._clock()
        await self._db.write(lambda conn: conn.execute(
            update(notifications).where(notifications.c.key == item.key)
            .values(status=SENT, sent_at=now, last_error=None)))
        log.info("notification %s sent to %s", item.key, item.notification.to)
        return 1

    async def _failed(self, item: _Claimed, evidence: dict[str, Any], *, retryable: bool,
                      retry_after: float | None) -> None:
        now = self._clock()
        if retryable and not self._backoff.exhausted(item.attempts):
            status = PENDING
            available = now + self._backoff.delay(item.attempts, retry_after=retry_after, rng=self._rng)
            log.warning("notification %s attempt %d failed (%s); retrying", item.key, item.attempts,
                        evidence.get("message"))
        else:
            status, available = DEAD, now
            log.error("notification %s failed for good after %d attempt(s): %s", item.key, item.attempts,
                      evidence.get("message"))
        text = orjson.dumps({**evidence, "attempt": item.attempts, "at": now}, default=str).decode()
        await self._db.write(lambda conn: conn.execute(
            update(notifications).where(notifications.c.key == item.key)
            .values(status=status, available_at=available, last_error=text)))
