"""The scheduled jobs of the payment flows, as runtime ``Job`` callables."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ledgerlink.flows.context import FlowContext, Job, JobCall, OutboundEvent, job_request
from ledgerlink.flows.polls import DisputePoll, RefundRequestPoll
from ledgerlink.flows.settlement import SettlementReconciliation

RECONCILE_DAY = "reconcile-settlement-day"


def reconcile_partition(flow: SettlementReconciliation, day: date) -> str:
    """Each day's reconciliation runs in its own partition: its step journal stays small and runs of one
    day never overlap."""
    return f"reconcile:{flow.gateway.name}:{day.isoformat()}"


def reconcile_schedule_job(flow: SettlementReconciliation) -> Job:
    """The daily tick: asks for the previous business day's run. After downtime the scheduler runs one tick
    ``through`` the last one missed, and the missed days (within ``catch_up_days``) are asked for too, as a
    chain: each day's run asks for the next when it has succeeded, because a day's run reads what the days
    before it settled. Every request has its day's own event id, so a day is asked for once, whatever the
    retries and catch-ups; a day whose run is dead-lettered holds the ones after it until it is replayed."""

    async def job(call: JobCall, ctx: FlowContext) -> None:
        through = call.args.get("through")
        days = await flow.days_due(call.tick, float(through) if through is not None else None)
        if days:
            ctx.emit(_day_request(flow, days[0], days[1:], call.tick))

    return job


def reconcile_day_job(flow: SettlementReconciliation) -> Job:
    async def job(call: JobCall, ctx: FlowContext) -> None:
        await flow.run(date.fromisoformat(str(call.args["day"])), ctx, run_id=call.args.get("run_id"))
        following = [date.fromisoformat(str(day)) for day in call.args.get("then") or ()]
        if following:  # catching up: the next missed day, now that this one is reconciled
            ctx.emit(_day_request(flow, following[0], following[1:], call.tick))

    return job


def _day_request(flow: SettlementReconciliation, day: date, then: list[date], tick: float) -> OutboundEvent:
    args: dict[str, object] = {"day": day.isoformat()}
    if then:
        args["then"] = [d.isoformat() for d in then]
    return job_request(RECONCILE_DAY, event_id=f"{RECONCILE_DAY}@{flow.gateway.name}:{day.isoformat()}",
                       partition_key=reconcile_partition(flow, day), tick=tick, args=args)


def poll_job(poll: DisputePoll | RefundRequestPoll) -> Job:
    async def job(call: JobCall, ctx: FlowContext) -> None:
        await poll(datetime.fromtimestamp(ctx.now(), UTC), ctx)

    return job
