"""The scheduled jobs of the payment flows, as runtime ``Job`` callables."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ledgerlink.flows.context import FlowContext, Job, JobCall, job_request
from ledgerlink.flows.polls import DisputePoll, RefundRequestPoll
from ledgerlink.flows.settlement import SettlementReconciliation

RECONCILE_DAY = "reconcile-settlement-day"


def reconcile_partition(flow: SettlementReconciliation, day: date) -> str:
    """Each day's reconciliation runs in its own partition: its step journal stays small and runs of one
    day never overlap."""
    return f"reconcile:{flow.gateway.name}:{day.isoformat()}"


def reconcile_schedule_job(flow: SettlementReconciliation) -> Job:
    """The daily tick: asks for the previous business day's run (once per day, whatever the retries)."""

    async def job(call: JobCall, ctx: FlowContext) -> None:
        day = flow.day_for_tick(call.tick)
        ctx.emit(job_request(RECONCILE_DAY, event_id=f"{RECONCILE_DAY}@{flow.gateway.name}:{day.isoformat()}",
                             partition_key=reconcile_partition(flow, day), tick=call.tick,
                             args={"day": day.isoformat()}))

    return job


def reconcile_day_job(flow: SettlementReconciliation) -> Job:
    async def job(call: JobCall, ctx: FlowContext) -> None:
        await flow.run(date.fromisoformat(str(call.args["day"])), ctx, run_id=call.args.get("run_id"))

    return job


def poll_job(poll: DisputePoll | RefundRequestPoll) -> Job:
    async def job(call: JobCall, ctx: FlowContext) -> None:
        await poll(datetime.fromtimestamp(ctx.now(), UTC), ctx)

    return job
