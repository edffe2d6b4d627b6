"""Scheduled jobs on the same durable log: each cron tick becomes one inbox event.

Every worker process runs this loop; they do not need to agree on who is the
leader. A due tick is taken with a compare-and-set on ``next_run_at`` and turned
into an inbox event whose id is the job name and the tick time, both in one
transaction. Whichever process wins the compare-and-set writes the event; the
unique (source, event id) constraint would stop a second one anyway. From
there the tick is an ordinary event: retried with backoff, dead-lettered with
evidence, replayable. After downtime a job runs once, for the first missed
tick, not once per missed tick; its ``JobCall.args["through"]`` is then the last
missed tick, so a job that must not skip a period (the daily settlement
reconciliation) can catch up on the ones in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from croniter import croniter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, delete, select, update

from ledgerlink.flows.context import JOB_SOURCE, FlowContext, InboundMessage, Job, JobCall, job_body
from ledgerlink.flows.schedule_fields import CronExpression, TimeZoneName
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.intake import bucket_for
from ledgerlink.runtime.schema import DONE, IGNORED, PENDING, inbox, schedules

log = logging.getLogger(__name__)

SOURCE = JOB_SOURCE

__all__ = ["SOURCE", "Job", "JobCall", "JobRunner", "ScheduleSpec", "Scheduler", "job_event", "last_tick",
           "next_tick", "prune_inbox_job"]


class ScheduleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    cron: CronExpression
    job: str
    timezone: TimeZoneName = "UTC"


def next_tick(cron: str, timezone: str, after: float) -> float:
    start = datetime.fromtimestamp(after, ZoneInfo(timezone))
    return float(croniter(cron, start).get_next(datetime).timestamp())


def last_tick(cron: str, timezone: str, at_or_before: float) -> float:
    """The latest tick of ``cron`` at or before ``at_or_before``."""
    previous = float(croniter(cron, datetime.fromtimestamp(at_or_before, ZoneInfo(timezone)))
                     .get_prev(datetime).timestamp())
    following = next_tick(cron, timezone, previous)
    return following if following <= at_or_before else previous


class Scheduler:
    def __init__(
        self,
        db: Database,
        specs: Sequence[ScheduleSpec],
        *,
        buckets: int,
        on_enqueue: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 1.0,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self._db = db
        self._specs = {spec.name: spec for spec in specs}
        self._buckets = buckets
        self._on_enqueue = on_enqueue
        self._clock = clock  # business time: which ticks are due (tests move it)
        self._wall = wall_clock or clock  # real time: when the tick's inbox event may run
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._db.write(self._sync_definitions)
        self._task = asyncio.create_task(self._loop(), name="ledgerlink-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _sync_definitions(self, conn: Connection) -> None:
        now = self._clock()
        existing = {row.name: row for row in conn.execute(select(schedules))}
        for spec in self._specs.values():
            row = existing.get(spec.name)
            if row is None:  # processes starting together all try: the first insert wins, the rest do nothing
                conn.execute(self._db.insert(schedules).values(
                    name=spec.name, cron=spec.cron, job=spec.job, timezone=spec.timezone,
                    next_run_at=next_tick(spec.cron, spec.timezone, now), last_run_at=None,
                ).on_conflict_do_nothing(index_elements=["name"]))
            elif (row.cron, row.job, row.timezone) != (spec.cron, spec.job, spec.timezone):
                conn.execute(update(schedules).where(schedules.c.name == spec.name).values(
                    cron=spec.cron, job=spec.job, timezone=spec.timezone,
                    next_run_at=next_tick(spec.cron, spec.timezone, now),
                ))

    async def run_due(self) -> int:
        """Enqueue every due tick; returns how many this process enqueued."""
        enqueued = await self._db.write(self._enqueue_due)
        if enqueued and self._on_enqueue is not None:
            self._on_enqueue()
        return enqueued

    def _enqueue_due(self, conn: Connection) -> int:
        now = self._clock()
        due = conn.execute(
            select(schedules).where(schedules.c.next_run_at <= now, schedules.c.name.in_(list(self._specs)))
        ).all()
        enqueued = 0
        for row in due:
            tick = row.next_run_at
            following = next_tick(row.cron, row.timezone, max(now, tick))
            won = conn.execute(
                update(schedules)
                .where(and_(schedules.c.name == row.name, schedules.c.next_run_at == tick))
                .values(next_run_at=following, last_run_at=now)
            ).rowcount
            if not won:
                continue
            tick_text = datetime.fromtimestamp(tick, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            partition = f"{SOURCE}:{row.name}"
            through = max(tick, last_tick(row.cron, row.timezone, now))  # ticks missed while nothing ran
            body = job_body(row.job, tick, {"through": through} if through > tick else None)
            result = conn.execute(
                self._db.insert(inbox).values(
                    source=SOURCE, event_id=f"{row.name}@{tick_text}", event_type=row.job,
                    partition_key=partition, bucket=bucket_for(partition, self._buckets), status=PENDING,
                    attempts=0, replays=0, available_at=self._wall(), received_at=self._wall(), body=body,
                ).on_conflict_do_nothing(index_elements=["source", "event_id"]).returning(inbox.c.seq)
            )
            enqueued += len(result.all())
            log.info("scheduled job %s (%s) enqueued for tick %s", row.name, row.job, tick_text)
        return enqueued

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:
                log.exception("scheduler tick failed; retrying")
            await asyncio.sleep(self._poll)


class JobRunner:
    """The inbox handler for scheduled ticks: looks the job up by name and runs it."""

    def __init__(self, jobs: Mapping[str, Job]) -> None:
        self._jobs = dict(jobs)

    async def __call__(self, message: InboundMessage, ctx: FlowContext) -> None:
        payload = orjson.loads(message.body)
        job = self._jobs.get(payload["job"])
        if job is None:
            raise LookupError(f"no job named {payload['job']!r} is registered")
        await job(JobCall(tick=float(payload["tick"]), args=payload.get("args") or {}), ctx)
        ctx.outcome(f"ran {payload['job']}")


def prune_inbox_job(db: Database, *, retention_days: float) -> Job:
    """A housekeeping job: forget finished events older than the retention period.

    Partition state (the step journal and cross-references) is kept, so a very late
    re-delivery of a pruned event still cannot post twice.
    """

    async def prune(call: JobCall, ctx: FlowContext) -> None:
        cutoff = call.tick - retention_days * 86400

        def run(conn: Connection) -> int:
            return conn.execute(
                delete(inbox).where(inbox.c.status.in_((DONE, IGNORED)), inbox.c.finished_at < cutoff)
            ).rowcount or 0

        removed = await db.write(run)
        ctx.count("housekeeping.pruned_events", removed)

    return prune


def job_event(job: str, *, args: Mapping[str, Any], nonce: str, buckets: int, now: float,
              partition: str | None = None) -> dict[str, Any]:
    """An inbox row that asks for one run of ``job`` now (e.g. ``ledgerlink reconcile --date``)."""
    key = partition or f"{SOURCE}:{job}"
    return {
        "source": SOURCE, "event_id": f"{job}@manual:{nonce}", "event_type": job, "partition_key": key,
        "bucket": bucket_for(key, buckets), "status": PENDING, "attempts": 0, "replays": 0,
        "available_at": now, "received_at": now,
        "body": job_body(job, now, args),
    }
