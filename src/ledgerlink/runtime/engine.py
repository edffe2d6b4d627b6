"""The engine: intake, workers and the scheduler over one database, started and stopped together."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from ledgerlink.flows.context import MessageHandler
from ledgerlink.runtime.backpressure import Backpressure
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.flow_control import FlowControl
from ledgerlink.runtime.intake import Intake
from ledgerlink.runtime.scheduler import SOURCE as SCHEDULE_SOURCE
from ledgerlink.runtime.scheduler import Job, JobRunner, Scheduler, ScheduleSpec
from ledgerlink.runtime.settings import RuntimeSettings
from ledgerlink.runtime.worker import Worker

log = logging.getLogger(__name__)


class Service(Protocol):
    """Something that runs beside the workers (the notification sender), started and stopped with them."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Engine:
    """``run_workers=False`` gives an intake-only process (an extra API node in front of PostgreSQL).

    ``clock`` is the wall clock of the machinery (leases, retries, claims). ``business_clock``, when given, is
    the time flows see (``ctx.now()``) and cron schedules tick by: a test moves it to run a 60-day dunning
    cycle in seconds while the machinery keeps real time. ``services`` run with the workers.
    ``flow_control`` (the guard in front of the integration's connectors) shares its breakers and rate-limit
    pauses with the fleet while the workers run; every engine watches the back-pressure thresholds.
    """

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
        business_clock: Callable[[], float] | None = None,
        services: Sequence[Service] = (),
        flow_control: FlowControl | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or RuntimeSettings()
        all_handlers = dict(handlers)
        if jobs:
            all_handlers[SCHEDULE_SOURCE] = JobRunner(jobs)
        unknown = {spec.job for spec in schedules} - set(jobs or {})
        if unknown:
            raise ValueError(f"schedules name jobs that do not exist: {', '.join(sorted(unknown))}")
        self.worker = Worker(db, all_handlers, self.settings, clock=clock,
                             flow_clock=business_clock) if run_workers else None
        self.intake = (
            Intake(db, buckets=self.settings.buckets, clock=clock,
                   on_commit=self.worker.wake if self.worker else None)
            if run_intake else None
        )
        self.scheduler = (
            Scheduler(db, schedules, buckets=self.settings.buckets, clock=business_clock or clock,
                      on_enqueue=self.worker.wake if self.worker else None, wall_clock=clock)
            if run_workers and schedules else None
        )
        self.services = list(services) if run_workers else []
        self.flow_control = flow_control if run_workers else None
        self.backpressure = Backpressure(db, self.settings.backpressure, clock=clock)
        self._running = False

    async def start(self) -> None:
        if self.worker is not None:
            self.db.acquire_engine_lock()
        if self.intake is not None:
            await self.intake.start()
        if self.flow_control is not None:
            await self.flow_control.start()  # before the workers: they start from the fleet's breaker states
        await self.backpressure.start()
        if self.worker is not None:
            await self.worker.start()
        if self.scheduler is not None:
            await self.scheduler.start()
        for service in self.services:
            await service.start()
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
        for service in self.services:
            await service.stop()
        if self.worker is not None:
            await self.worker.stop()
        await self.backpressure.stop()
        if self.flow_control is not None:
            await self.flow_control.stop()
        log.info("engine stopped")
