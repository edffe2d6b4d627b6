"""Scheduled polls that turn what a system reports into durable events for the flows.

Neither Cybersource nor Dynamics SL pushes everything: chargebacks reach us through the gateway's
chargeback report, and refunds an SL user asks for through a list of flagged credit memos. A poll reads
those on a schedule and emits one inbox event per item (the outbox: stored with the poll's completion),
keyed so that reading an item twice stores it once, and partitioned by the merchant's order so it is
applied in order with that order's webhooks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledgerlink.connectors.kit.protocols import BackOffice, PaymentGateway
from ledgerlink.flows.context import FlowContext, OutboundEvent

OVERLAP = timedelta(minutes=10)  # re-read a little of the last window: records can appear late


def dispute_source(gateway: PaymentGateway) -> str:
    return f"{gateway.name}.disputes"


def refund_request_source(back_office: BackOffice) -> str:
    return f"{back_office.name}.refund_requests"


class DisputePoll:
    """Reads chargebacks opened, won or lost since the last poll."""

    def __init__(self, gateway: PaymentGateway, *, first_window: timedelta = timedelta(days=1)) -> None:
        self.gateway = gateway
        self.first_window = first_window

    async def __call__(self, now: datetime, ctx: FlowContext) -> int:
        cursor = ctx.state.get("cursor")
        start = datetime.fromisoformat(cursor) - OVERLAP if cursor else now - self.first_window
        disputes = await self.gateway.disputes(start, now)
        for dispute in disputes:
            ctx.emit(OutboundEvent(
                source=dispute_source(self.gateway),
                event_id=f"dispute:{dispute.dispute_id}:{dispute.stage.value}",
                event_type=f"dispute.{dispute.stage.value}",
                partition_key=f"{self.gateway.name}:{dispute.order_reference or dispute.transaction_id}",
                body=dispute.model_dump_json().encode(),
            ))
        ctx.state["cursor"] = now.astimezone(UTC).isoformat()
        ctx.count("polls.disputes_found", len(disputes))
        return len(disputes)


class RefundRequestPoll:
    """Reads the refunds the back office asks for and has no result for yet."""

    def __init__(self, gateway: PaymentGateway, back_office: BackOffice) -> None:
        self.gateway = gateway
        self.back_office = back_office

    async def __call__(self, now: datetime, ctx: FlowContext) -> int:
        requests = await self.back_office.refund_requests()
        for request in requests:
            ctx.emit(OutboundEvent(
                source=refund_request_source(self.back_office),
                event_id=f"refund-request:{request.ref.key}",
                event_type="refund.requested",
                partition_key=f"{self.gateway.name}:{request.order_reference or request.ref.key}",
                body=request.model_dump_json().encode(),
            ))
        ctx.count("polls.refund_requests_found", len(requests))
        return len(requests)
