"""Back-pressure alerts: the backlog or the dead-letter list grew past its threshold.

Intake never refuses because of them: a webhook is still stored durably and acknowledged (refusing would
only make the gateway retry and pile up more). Instead, every ``backpressure.check_seconds`` each engine
process counts unfinished and dead-lettered events and, while a threshold is passed, raises the alert:
``ledgerlink_backpressure_alert{reason}`` is 1 (with ``ledgerlink_backlog_events`` and
``ledgerlink_dead_letter_events`` beside it), a warning is logged when it starts (and every five minutes
while it lasts), ``/readyz`` lists it (still 200: the node keeps taking traffic) and so does
``ledgerlink stats``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from ledgerlink.runtime.db import Database
from ledgerlink.runtime.flow_settings import BackpressureSettings
from ledgerlink.runtime.schema import DEAD, UNFINISHED, inbox
from ledgerlink.telemetry import BACKLOG, BACKPRESSURE, BACKPRESSURE_ALERTS, DEAD_LETTER_SIZE

log = logging.getLogger(__name__)

BACKLOG_ALERT = "backlog"
DEAD_LETTER_ALERT = "dead_letters"
_REPEAT_SECONDS = 300.0


@dataclass(frozen=True)
class Pressure:
    backlog: int
    dead_letters: int
    alerts: tuple[str, ...] = ()
    checked_at: float = 0.0
    limits: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"backlog": self.backlog, "dead_letters": self.dead_letters, "alerts": list(self.alerts),
                "max_backlog": self.limits.get(BACKLOG_ALERT), "max_dead_letters": self.limits.get(DEAD_LETTER_ALERT),
                "checked_at": self.checked_at}


def measure(conn: Connection, settings: BackpressureSettings, now: float | None = None) -> Pressure:
    """Count now (two index range counts on ``(status, seq)``) and compare with the thresholds."""
    backlog = conn.execute(select(func.count()).select_from(inbox).where(inbox.c.status.in_(UNFINISHED))).scalar_one()
    dead = conn.execute(select(func.count()).select_from(inbox).where(inbox.c.status == DEAD)).scalar_one()
    alerts = []
    if settings.max_backlog and backlog > settings.max_backlog:
        alerts.append(BACKLOG_ALERT)
    if settings.max_dead_letters and dead > settings.max_dead_letters:
        alerts.append(DEAD_LETTER_ALERT)
    return Pressure(int(backlog), int(dead), tuple(alerts), time.time() if now is None else now,
                    {BACKLOG_ALERT: settings.max_backlog, DEAD_LETTER_ALERT: settings.max_dead_letters})


class Backpressure:
    """Checks the thresholds on an interval; ``pressure`` is the last reading."""

    def __init__(self, db: Database, settings: BackpressureSettings, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.settings = settings
        self._clock = clock
        self.pressure: Pressure | None = None
        self._warned_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> Pressure:
        now = self._clock()
        pressure = await self._db.read(lambda conn: measure(conn, self.settings, now))
        BACKLOG.set(pressure.backlog)
        DEAD_LETTER_SIZE.set(pressure.dead_letters)
        for reason, count, limit in ((BACKLOG_ALERT, pressure.backlog, self.settings.max_backlog),
                                     (DEAD_LETTER_ALERT, pressure.dead_letters, self.settings.max_dead_letters)):
            alerting = reason in pressure.alerts
            BACKPRESSURE.labels(reason).set(1 if alerting else 0)
            if alerting:
                if reason not in self._warned_at:
                    BACKPRESSURE_ALERTS.labels(reason).inc()
                if now - self._warned_at.get(reason, -_REPEAT_SECONDS) >= _REPEAT_SECONDS:
                    self._warned_at[reason] = now
                    log.warning("back-pressure: %s is %d, past its threshold of %d; intake keeps acknowledging "
                                "(durably), the work waits", reason.replace("_", " "), count, limit)
            elif self._warned_at.pop(reason, None) is not None:
                log.warning("back-pressure: %s is %d, back under its threshold of %d", reason.replace("_", " "),
                            count, limit)
        self.pressure = pressure
        return pressure

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:
                log.warning("back-pressure check failed (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(self.settings.check_seconds)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ledgerlink-backpressure")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
