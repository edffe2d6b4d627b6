"""The webhook gap sweep: payments whose notification never came are found at the gateway and posted anyway.

A gateway gives up on a webhook after its retries (Cybersource: a few, minutes apart, spec §6.5), and a
notification can be lost outright. On a schedule the sweep lists what the gateway recorded
(``PaymentGateway.transaction_events``) in a window behind its cursor, keeps those with no inbox event, and
stores each as the event its webhook would have been: same source, same event id (the gateway's
transaction id and event type), same partition. They then take the ordinary path (``GatewayEvents`` to
order-to-cash), and a webhook that turns up after all is an inbox duplicate, not a second posting.

The window is [cursor - lookback, now - grace): ``grace`` leaves young transactions to their webhooks
(an event in flight is not a gap), ``lookback`` re-reads behind the cursor because a gateway's search can
show a transaction late. The cursor lives in the sweep's partition state, committed with its run, so a
sweep cut off by a crash runs the same window again and stores nothing twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.connectors.kit.protocols import PaymentGateway
from ledgerlink.flows.context import FlowContext, Job, JobCall, OutboundEvent
from ledgerlink.flows.events import SYNTHETIC_HEADER
from ledgerlink.flows.ports import InboxIndex
from ledgerlink.flows.schedule_fields import CronExpression

log = logging.getLogger(__name__)

SWEEP_JOB = "sweep-webhook-gaps"


class GapSweepSettings(BaseModel):
    """``flows.gap_sweep`` in an integration file."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    cron: CronExpression = "*/5 * * * *"
    lookback_minutes: float = Field(10.0, gt=0, le=7 * 24 * 60,
                                    description="re-read this far behind the cursor (the first run: behind now)")
    # Cybersource's default retry policy gives up about 4 minutes after the first attempt (spec §6.5): a
    # younger transaction's webhook may still come, and storing it now would cost a needless fetch.
    grace_seconds: float = Field(300.0, ge=0, description="younger transactions are left to their webhooks")


class GapSweep:
    def __init__(self, gateway: PaymentGateway, settings: GapSweepSettings, inbox: InboxIndex | None = None) -> None:
        self.gateway = gateway
        self.settings = settings
        self.inbox = inbox  # without one every event in the window is offered and the inbox drops the known

    def window(self, now: datetime, cursor: str | None) -> tuple[datetime, datetime]:
        end = now - timedelta(seconds=self.settings.grace_seconds)
        start = (datetime.fromisoformat(cursor) if cursor else end) - timedelta(minutes=self.settings.lookback_minutes)
        return min(start, end), end

    async def __call__(self, now: datetime, ctx: FlowContext) -> int:
        """Store the gaps of one window; returns how many were found."""
        start, end = self.window(now, ctx.state.get("cursor"))
        source = self.gateway.name
        events = await self.gateway.transaction_events(start, end)
        known = await self.inbox.known(source, [e.event_id for e in events]) if self.inbox is not None else set()
        gaps = [e for e in events if e.event_id not in known]
        for event in gaps:
            ctx.emit(OutboundEvent(
                source=source, event_id=event.event_id, event_type=event.gateway_event_type,
                partition_key=f"{source}:{event.partition_key}", body=event.model_dump_json().encode(),
                headers={SYNTHETIC_HEADER: SWEEP_JOB},
            ))
        if gaps:
            log.warning("gap sweep: %d of %d %s transactions in [%s, %s) had no webhook; posting them now",
                        len(gaps), len(events), source, start.isoformat(), end.isoformat())
        ctx.state["cursor"] = end.astimezone(UTC).isoformat()
        ctx.count("sweeps.transactions_seen", len(events))
        ctx.count("sweeps.gaps_found", len(gaps))
        ctx.outcome(f"{len(gaps)} gaps")
        return len(gaps)


def sweep_job(sweep: GapSweep) -> Job:
    async def job(call: JobCall, ctx: FlowContext) -> None:
        await sweep(datetime.fromtimestamp(ctx.now(), UTC), ctx)

    return job
