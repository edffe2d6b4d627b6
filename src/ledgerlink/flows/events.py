"""From a stored webhook to the flows: the inbox handler for a gateway source.

Most events are webhooks, re-parsed from their raw bytes. An event the engine made itself for the same
source (the gap sweep's, for a notification that never came) carries ``SYNTHETIC_HEADER`` and the canonical
event as JSON; webhook intake keeps only the gateway's own headers, so no sender can pass one off as that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ledgerlink.connectors.kit.protocols import WebhookSource
from ledgerlink.flows.context import FlowContext, Ignored, InboundMessage
from ledgerlink.model import EventType, PaymentEvent

SYNTHETIC_HEADER = "x-ledgerlink-synthetic"  # value: what made the event (e.g. the gap sweep's job name)


class EventFlow(Protocol):
    name: str

    def accepts(self, event: PaymentEvent) -> bool: ...

    async def handle(self, event: PaymentEvent, ctx: FlowContext) -> None: ...


class GatewayEvents:
    """Re-parses the raw webhook (the same parser intake validated it with) and runs the first flow that takes it."""

    def __init__(self, source: WebhookSource, flows: Sequence[EventFlow]) -> None:
        self.source = source
        self.flows = tuple(flows)

    async def __call__(self, message: InboundMessage, ctx: FlowContext) -> None:
        if message.headers.get(SYNTHETIC_HEADER):
            event = PaymentEvent.model_validate_json(message.body)
        else:
            event = self.source.parse_webhook(message.headers, message.body)
        if event.event_type is EventType.UNKNOWN:
            raise Ignored(f"{event.gateway_event_type} is not an event ledgerlink acts on")
        for flow in self.flows:
            if flow.accepts(event):
                await flow.handle(event, ctx)
                return
        raise Ignored(f"no enabled flow handles {event.gateway_event_type}")
