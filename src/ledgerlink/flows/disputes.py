"""Chargebacks: a dispute opened, won or lost becomes back-office memos, an order hold, a case and a task.

- Opened: a debit memo for the disputed amount and the chargeback fee (Cr chargeback clearing: the
  processor deducts both from a deposit, and the settlement journal clears them), the order disputed
  (on hold), a case, and a task for the finance team.
- Won: a credit memo settling that debit memo (the amount back to chargeback clearing, the fee to the
  chargeback-fees expense); the order leaves the hold; the case is resolved.
- Lost: a credit memo writing the debit memo off (the amount to chargeback losses, the fee to fees).

Stages only move forward (a late "opened" after "won" is skipped); each document is keyed by the
gateway's dispute id and stage.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from ledgerlink.connectors.kit.protocols import BackOffice, PaymentGateway
from ledgerlink.flows.context import FlowContext, InboundMessage
from ledgerlink.flows.order_state import OrderState
from ledgerlink.flows.order_to_cash import OrderToCash
from ledgerlink.flows.ports import CaseBook
from ledgerlink.mappings.spec import MappingSpec
from ledgerlink.model import (
    Case,
    CaseType,
    CreditMemo,
    DebitMemo,
    Dispute,
    DisputeStage,
    DocumentKind,
    ExternalRef,
    FieldIssue,
    InvalidInput,
    MemoLine,
    Money,
    OrderStatus,
    PaymentStatus,
    Task,
    can_move,
)

log = logging.getLogger(__name__)

_RANK = {DisputeStage.OPENED: 1, DisputeStage.WON: 2, DisputeStage.LOST: 2}


class Disputes:
    name = "disputes"

    def __init__(self, gateway: PaymentGateway, back_office: BackOffice, mapping: MappingSpec,
                 order_to_cash: OrderToCash, cases: CaseBook) -> None:
        self.gateway = gateway
        self.back_office = back_office
        self.orders = order_to_cash
        self.cases = cases
        self.accounts = mapping.accounts.require("chargeback_clearing", "chargeback_losses", "chargeback_fees",
                                                 purpose="chargebacks")

    def case_key(self, dispute: Dispute) -> str:
        return f"{CaseType.DISPUTE.value}:{dispute.gateway}:{dispute.dispute_id}"

    async def handle(self, dispute: Dispute, event_id: str, ctx: FlowContext) -> None:
        state = OrderState(ctx.state)
        record: dict[str, Any] = state.disputes.setdefault(dispute.dispute_id, {})
        if record.get("stage") and _RANK[DisputeStage(record["stage"])] >= _RANK[dispute.stage]:
            log.info("dispute %s is %s; a late %s record is skipped", dispute.dispute_id, record["stage"],
                     dispute.stage.value)
            ctx.count("events.stale")
            ctx.outcome("stale")
            return
        if state.order is None:  # the disputed payment never reached the back office: post it first
            disputed = await self.gateway.get_payment(dispute.transaction_id)
            await self.orders.apply_payment(disputed, f"{event_id}:precondition", "fetched", ctx)
        order = state.order
        if order is None or not state.customer_id:
            raise InvalidInput(FieldIssue("dispute.transaction_id",
                                          f"disputed transaction {dispute.transaction_id} has no posted order"))
        if dispute.stage is DisputeStage.OPENED:
            await self._opened(dispute, record, state, order, event_id, ctx)
        elif record.get("debit_memo"):
            await self._closed(dispute, record, state, order, event_id, ctx)
        else:
            log.warning("dispute %s %s without an opened record; nothing to settle", dispute.dispute_id,
                        dispute.stage.value)
            await self.cases.resolve([self.case_key(dispute)], note=dispute.stage.value)
        record["stage"] = dispute.stage.value
        ctx.outcome(f"dispute_{dispute.stage.value}")

    async def _opened(self, dispute: Dispute, record: dict[str, Any], state: OrderState, order: dict[str, Any],
                      event_id: str, ctx: FlowContext) -> None:
        bo = self.back_office.name
        lines = [MemoLine(account=self.accounts["chargeback_clearing"], amount=dispute.amount,
                          description=f"Chargeback {dispute.reason_code or ''}".strip())]
        if dispute.fee is not None and dispute.fee.is_positive():
            lines.append(MemoLine(account=self.accounts["chargeback_clearing"], amount=dispute.fee,
                                  description="Chargeback fee"))
        memo = DebitMemo(
            key=f"{bo}:dispute:{dispute.dispute_id}:opened", customer_id=state.customer_id or "",
            memo_date=dispute.occurred_at, description=f"Chargeback {dispute.order_reference or ''}".strip()[:30],
            lines=tuple(lines), order=ExternalRef.parse(order["ref"]),
            gateway_ref=ExternalRef(system=dispute.gateway, kind="dispute", id=dispute.dispute_id),
        )

        async def create() -> str:
            return (await self.back_office.issue_debit_memo(memo)).key

        async def find() -> str | None:
            ref = await self.back_office.find_document(DocumentKind.DEBIT_MEMO, memo.key)
            return ref.key if ref else None

        record.update(debit_memo=await ctx.once(memo.key, create, find, tag="chargebacks.opened"),
                      amount=dispute.amount.format(), currency=dispute.amount.currency,
                      fee=dispute.fee.format() if dispute.fee else None, of=dispute.transaction_id)
        reason = f"Chargeback {dispute.reason_code or ''} {dispute.reason or ''}".strip()
        await self.orders.move_order(order, OrderStatus.DISPUTED, None, event_id, ctx, reason=reason)
        for chain_id in {r["chain"] for r in state.receipts.values() if r.get("chain")}:
            if can_move(state.chain_status(chain_id), PaymentStatus.DISPUTED):
                state.chain(chain_id)["status"] = PaymentStatus.DISPUTED.value
        respond = f" Respond by {dispute.respond_by:%Y-%m-%d}." if dispute.respond_by else ""
        summary = (f"Chargeback of {dispute.amount} on order {dispute.order_reference or '?'} "
                   f"(transaction {dispute.transaction_id}, reason {dispute.reason_code or '?'}).{respond}")
        now = datetime.now(UTC)
        case = Case(key=self.case_key(dispute), type=CaseType.DISPUTE, summary=summary, amount=dispute.amount,
                    reference=dispute.transaction_id, opened_at=now, updated_at=now,
                    evidence=dispute.model_dump(mode="json"))
        await self.cases.record([case])
        task = Task(key=f"task:{case.key}", subject=f"Chargeback {dispute.order_reference or dispute.dispute_id}"[:60],
                    body=summary, category="chargeback", reference=dispute.transaction_id, amount=dispute.amount,
                    due=dispute.respond_by)

        async def open_task() -> str:
            return (await self.back_office.open_task(task)).key

        task_ref = await ctx.once(task.key, open_task)
        await self.cases.attach(case.key, task_ref)

    async def _closed(self, dispute: Dispute, record: dict[str, Any], state: OrderState, order: dict[str, Any],
                      event_id: str, ctx: FlowContext) -> None:
        bo = self.back_office.name
        won = dispute.stage is DisputeStage.WON
        amount_account = self.accounts["chargeback_clearing" if won else "chargeback_losses"]
        amount = Money.of(record["amount"], record["currency"])
        lines = [MemoLine(account=amount_account, amount=amount,
                          description="Chargeback won back" if won else "Chargeback lost")]
        if record.get("fee"):
            fee = Money.of(record["fee"], record["currency"])
            if fee.is_positive():
                lines.append(MemoLine(account=self.accounts["chargeback_fees"], amount=fee,
                                      description="Chargeback fee"))
        memo = CreditMemo(
            key=f"{bo}:dispute:{dispute.dispute_id}:{dispute.stage.value}", customer_id=state.customer_id or "",
            memo_date=dispute.occurred_at,
            description=(f"Chargeback {'won' if won else 'lost'} {dispute.order_reference or ''}").strip()[:30],
            lines=tuple(lines), apply_to=ExternalRef.parse(record["debit_memo"]),
            order=ExternalRef.parse(order["ref"]),
            gateway_ref=ExternalRef(system=dispute.gateway, kind="dispute", id=dispute.dispute_id),
        )

        async def create() -> str:
            return (await self.back_office.issue_credit_memo(memo)).key

        async def find() -> str | None:
            ref = await self.back_office.find_document(DocumentKind.CREDIT_MEMO, memo.key)
            return ref.key if ref else None

        await ctx.once(memo.key, create, find, tag="chargebacks.won" if won else "chargebacks.lost")
        await self.cases.resolve([self.case_key(dispute)], note=dispute.stage.value)
        target = PaymentStatus.SETTLED if won else PaymentStatus.CHARGEBACK_LOST
        for chain_id in {r["chain"] for r in state.receipts.values() if r.get("chain")}:
            if can_move(state.chain_status(chain_id), target):
                state.chain(chain_id)["status"] = target.value
        if won:
            await self.orders.move_order(order, OrderStatus.PAID, None, event_id, ctx)


class DisputeEvents:
    """Inbox handler for the dispute records a poll emitted (the body is the canonical ``Dispute``)."""

    def __init__(self, flow: Disputes) -> None:
        self.flow = flow

    async def __call__(self, message: InboundMessage, ctx: FlowContext) -> None:
        dispute = Dispute.model_validate_json(message.body)
        await self.flow.handle(dispute, message.event_id, ctx)
