"""The engine: intake, workers and the scheduler over one database, started and stopped together."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from ledgerlink.flows.context import MessageHandler
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.intake import Intake
from ledgerlink.runtime.scheduler import SOURCE as SCHEDULE_SOURCE
from ledgerlink.runtime.scheduler import Job, JobRunner, Scheduler, ScheduleSpec
from ledgerlink.runtime.settings import RuntimeSettings
from ledgerlink.runtime.worker import Worker

log = logging.getLogger(__name__)


class Engine:
    """``run_workers=False`` gives an intake-only process (an extra API node in front of PostgreSQL)."""

    def __init__(
        self,
        db: Database,
        *,
        handlers: Mapping[str, MessageHandler],
        settings: RuntimeSettings | None = None,
        schedules: Sequence[ScheduleSpec] = (),
        jobs: Mapping[str, Job] | None = None,
        run_intake: bool = True,
        run_workers: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings or RuntimeSettings()
        all_handlers = dict(handlers)
        if jobs:
            all_handlers[SCHEDULE_SOURCE] = JobRunner(jobs)
        unknown = {spec.job for spec in schedules} - set(jobs or {})
        if unknown:
            raise ValueError(f"schedules name jobs that do not exist: {', '.join(sorted(unknown))}")
        self.worker = Worker(db, all_handlers, self.settings, clock=clock) if run_workers else None
        self.intake = (
            Intake(db, buckets=self.settings.buckets, clock=clock,
                   on_commit=self.worker.wake if self.worker else None)
            if run_intake else None
        )
        self.scheduler = (
            Scheduler(db, schedules, buckets=self.settings.buckets, clock=clock,
                      on_enqueue=self.worker.wake if self.worker else None)
            if run_workers and schedules else None
        )
        self._running = False

    async def start(self) -> None:
        if self.worker is not None:
            self.db.acquire_engine_lock()
        if self.intake is not None:
            await self.intake.start()
        if self.worker is not None:
            await self.worker.start()
        if self.scheduler is not None:
            await self.scheduler.start()
        self._running = True
        log.info("engine started (intake=%s, workers=%s, database=%s)",
                 self.intake is not None, self.worker is not None, self.db.dialect)

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self.intake is not None:
            await self.intake.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.worker is not None:
            await self.worker.stop()
        log.info("engine stopped")
