"""Refunds the back office asks for (e.g. an SL credit memo flagged "refund to card").

The request's amount is checked against what is still refundable on the order's captures before the
gateway is called (captured, less refunds and less chargebacks not won back, which the card already got):
more than that is refused, written back with the reason, and opened as a case. A
request within it is refunded against the order's captures (newest first, split when one capture does
not cover it), each refund made with our own reference so a crash between the gateway's answer and our
checkpoint finds the refund again instead of refunding twice. The request's own credit memo is then paid
out (a debit memo it settles), and the outcome (refund ids, declined, refused) is written back with the
amount the card got back (a split declined halfway says what its first parts refunded). A request answered
once is not answered again, whatever re-delivers it.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from ledgerlink.connectors.kit.protocols import BackOffice, PaymentGateway
from ledgerlink.flows.context import FlowContext, InboundMessage
from ledgerlink.flows.money_back import MoneyBack
from ledgerlink.flows.order_state import OrderState
from ledgerlink.flows.ports import CaseBook
from ledgerlink.model import (
    Case,
    CaseType,
    ExternalRef,
    Money,
    PaymentStatus,
    RefundOutcome,
    RefundRequest,
    RefundResult,
)

log = logging.getLogger(__name__)


def refund_reference(request: RefundRequest, part: int) -> str:
    """Our id for one gateway refund of a request: short (gateways cap client ids), stable, unique."""
    digest = hashlib.sha256(f"{request.ref.key}#{part}".encode()).hexdigest()[:20]
    return f"LLR{digest}"


class ErpRefunds:
    name = "erp_refunds"

    def __init__(self, gateway: PaymentGateway, back_office: BackOffice, money_back: MoneyBack,
                 cases: CaseBook) -> None:
        self.gateway = gateway
        self.back_office = back_office
        self.money_back = money_back
        self.cases = cases

    async def _record(self, request: RefundRequest, result: RefundResult, ctx: FlowContext) -> None:
        async def write() -> str:
            await self.back_office.record_refund_result(request.ref, result)
            return result.outcome.value

        await ctx.once(f"{self.back_office.name}:refund-request:{request.ref.key}:result", write)

    async def handle(self, request: RefundRequest, event_id: str, ctx: FlowContext) -> None:
        state = OrderState(ctx.state)
        plans = ctx.state.setdefault("refund_requests", {})
        plan = plans.get(request.ref.key)
        if plan is None:
            plan = plans[request.ref.key] = self._plan(request, state)
        if plan.get("answered"):  # the same request again (e.g. re-read after its inbox row was pruned)
            log.info("refund request %s was already answered (%s); nothing to do", request.ref.key, plan["answered"])
            ctx.outcome("already_answered")
            return
        if plan.get("refused"):
            await self._refuse(request, plan["refused"], ctx)
            plan["answered"] = RefundOutcome.REFUSED.value
            return
        made: list[tuple[str, Money]] = []
        for part in plan["parts"]:
            txn, reference = part["of"], part["reference"]
            portion = Money.of(part["amount"], part["currency"])

            async def create(txn: str = txn, portion: Money = portion, reference: str = reference) -> str:
                refund = await self.gateway.refund(txn, portion, reference=reference,
                                                   order_reference=request.order_reference)
                return f"{refund.id}|{refund.status.value}|{refund.decline_reason or ''}"

            async def find(reference: str = reference) -> str | None:
                refund = await self.gateway.find_refund(reference)
                return f"{refund.id}|{refund.status.value}|{refund.decline_reason or ''}" if refund else None

            answer = await ctx.once(f"{self.gateway.name}:refund:{reference}", create, find)
            refund_id, status, decline = answer.split("|", 2)
            if status == PaymentStatus.DECLINED.value:
                message = f"the gateway declined the refund of {portion} ({decline or 'no reason given'})"
                refunded = None  # the result's amount is what the card got back: nothing, or the parts before
                if made:
                    refunded = sum((amount for _, amount in made[1:]), made[0][1])
                    message += f"; {refunded} was refunded before it ({', '.join(i for i, _ in made)})"
                result = RefundResult(outcome=RefundOutcome.DECLINED, message=message,
                                      gateway_ref=ExternalRef(system=self.gateway.name, kind="transaction",
                                                              id=refund_id), amount=refunded)
                await self._record(request, result, ctx)
                plan["answered"] = RefundOutcome.DECLINED.value
                ctx.count("refund_requests.declined")
                ctx.outcome("declined")
                return
            refund = await self.gateway.get_payment(refund_id)
            state.refunds.setdefault(refund.id, {"amount": portion.format(), "currency": portion.currency,
                                                 "of": txn, "request": request.ref.key})
            await self.money_back.post_refund(refund, txn, event_id, ctx, credit_memo=request.ref.key)
            made.append((refund.id, portion))

        await self._record(request, RefundResult(
            outcome=RefundOutcome.REFUNDED,
            message=f"refunded {request.amount} to the card ({', '.join(i for i, _ in made)})",
            gateway_ref=ExternalRef(system=self.gateway.name, kind="transaction", id=made[-1][0]),
            amount=request.amount), ctx)
        plan["answered"] = RefundOutcome.REFUNDED.value
        ctx.count("refund_requests.refunded")
        ctx.outcome("refunded")

    def _plan(self, request: RefundRequest, state: OrderState) -> dict[str, object]:
        """Which captures the request is refunded against, fixed once: a retry must not re-split it."""
        refundable = state.refundable()
        available: Money | None = None
        for amount in refundable.values():
            if amount.currency == request.amount.currency:
                available = amount if available is None else available + amount
        if not request.order_reference or available is None or request.amount > available:
            remainder = available or Money.zero(request.amount.currency)
            return {"refused": f"refund of {request.amount} exceeds the refundable remainder {remainder} of order "
                               f"{request.order_reference or '(none given)'}"}
        parts = []
        left = request.amount
        for index, (txn, remaining) in enumerate(sorted(refundable.items(), reverse=True)):
            if not left.is_positive():
                break
            if remaining.currency != left.currency:
                continue
            portion = min(left, remaining)
            parts.append({"of": txn, "amount": portion.format(), "currency": portion.currency,
                          "reference": refund_reference(request, index)})
            left = left - portion
        return {"parts": parts}

    async def _refuse(self, request: RefundRequest, why: str, ctx: FlowContext) -> None:
        await self._record(request, RefundResult(outcome=RefundOutcome.REFUSED, message=why), ctx)
        now = datetime.now(UTC)
        await self.cases.record([Case(
            key=f"{CaseType.REFUND_REFUSED.value}:{request.ref.key}", type=CaseType.REFUND_REFUSED,
            summary=why, amount=request.amount, reference=request.order_reference or request.ref.key,
            opened_at=now, updated_at=now, evidence=request.model_dump(mode="json"),
        )])
        log.warning("refund request %s refused before calling the gateway: %s", request.ref.key, why)
        ctx.count("refund_requests.refused")
        ctx.outcome("refused")


class RefundRequestEvents:
    """Inbox handler for the refund requests a poll emitted (the body is the canonical ``RefundRequest``)."""

    def __init__(self, flow: ErpRefunds) -> None:
        self.flow = flow

    async def __call__(self, message: InboundMessage, ctx: FlowContext) -> None:
        await self.flow.handle(RefundRequest.model_validate_json(message.body), message.event_id, ctx)
