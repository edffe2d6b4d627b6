"""Money going back: refunds, voids of captures, reversals of authorisations, as the gateway reports them.

- A refund (full or partial, several per payment) becomes a credit memo (Dr sales returns, Cr AR) and a
  debit memo paying it out (Dr AR, Cr refund liability) that the credit settles, so the customer's balance
  is whole and the money owed to the card sits in refund liability until the settlement takes it.
  When the back office asked for the refund itself, its own credit memo is used (no second one).
- A void of a capture or sale (before settlement) reverses the posted receipt and writes the re-opened
  invoice amount off; with nothing left captured, the order is cancelled.
- A reversal of an authorisation cancels the order when nothing was captured, or writes the never
  captured remainder of the invoice off.

Everything is keyed by the gateway's transaction ids, so a re-delivered or retried event posts nothing
twice. An event that overtakes the capture it acts on posts that capture first.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from ledgerlink.connectors.kit.protocols import BackOffice, PaymentGateway
from ledgerlink.flows.context import FlowContext, Ignored
from ledgerlink.flows.order_state import OrderState
from ledgerlink.flows.order_to_cash import OrderToCash
from ledgerlink.mappings.spec import MappingSpec
from ledgerlink.model import (
    CreditMemo,
    DebitMemo,
    DocumentKind,
    EventType,
    ExternalRef,
    FieldIssue,
    GLAccount,
    InvalidInput,
    MemoLine,
    Money,
    OrderStatus,
    Payment,
    PaymentEvent,
    PaymentStatus,
    ReceiptReversal,
    can_move,
)

log = logging.getLogger(__name__)

HANDLED = frozenset({EventType.REFUND, EventType.VOID, EventType.REVERSAL})


def _when(payment: Payment) -> datetime:
    return payment.submitted_at or datetime.now(UTC)


class MoneyBack:
    name = "refunds"

    def __init__(self, gateway: PaymentGateway, back_office: BackOffice, mapping: MappingSpec,
                 order_to_cash: OrderToCash) -> None:
        self.gateway = gateway
        self.back_office = back_office
        self.orders = order_to_cash
        self.accounts: dict[str, GLAccount] = mapping.accounts.require(
            "returns", "refund_liability", "write_off", purpose="refunds, voids and reversals")

    def accepts(self, event: PaymentEvent) -> bool:
        return event.event_type in HANDLED

    async def handle(self, event: PaymentEvent, ctx: FlowContext) -> None:
        if not self.accepts(event):
            raise Ignored(f"refunds do not handle {event.gateway_event_type}")
        payment = event.payment or await self.gateway.get_payment(event.payment_id)
        if payment.status is PaymentStatus.DECLINED:
            log.info("%s %s for order %s was declined (%s); nothing moves",
                     event.event_type.value, payment.id, payment.order_reference, payment.decline_reason)
            ctx.outcome("declined")
            return
        if event.event_type is EventType.REFUND:
            await self.refund(payment, event.event_id, ctx)
        elif event.event_type is EventType.VOID:
            await self.void(payment, event.event_id, ctx)
        else:
            await self.reversal(payment, event.event_id, ctx)

    # -- helpers ------------------------------------------------------------------------------------

    async def _ensure_posted(self, transaction_id: str | None, event_id: str, ctx: FlowContext) -> None:
        """Post the capture or sale an event acts on, if it overtook it (or it was never delivered)."""
        if not transaction_id or transaction_id in OrderState(ctx.state).receipts:
            return
        captured = await self.gateway.get_payment(transaction_id)
        await self.orders.apply_payment(captured, f"{event_id}:precondition", "fetched", ctx)

    def _target(self, payment: Payment, state: OrderState) -> str | None:
        """The capture or sale a refund or void acts on: named by the gateway, or the only candidate."""
        if payment.parent_id:
            return payment.parent_id
        in_chain = [txn for txn, r in state.receipts.items() if r["chain"] == payment.chain_id]
        if len(in_chain) == 1:
            return in_chain[0]
        if payment.root_id and payment.root_id != payment.id:
            return payment.root_id
        return None

    async def _credit(self, memo: CreditMemo, ctx: FlowContext, *, tag: str | None = None) -> str:
        async def create() -> str:
            return (await self.back_office.issue_credit_memo(memo)).key

        async def find() -> str | None:
            ref = await self.back_office.find_document(DocumentKind.CREDIT_MEMO, memo.key)
            return ref.key if ref else None

        return await ctx.once(memo.key, create, find, tag=tag)

    async def _debit(self, memo: DebitMemo, ctx: FlowContext, *, tag: str | None = None) -> str:
        async def create() -> str:
            return (await self.back_office.issue_debit_memo(memo)).key

        async def find() -> str | None:
            ref = await self.back_office.find_document(DocumentKind.DEBIT_MEMO, memo.key)
            return ref.key if ref else None

        return await ctx.once(memo.key, create, find, tag=tag)

    def _advance_chain(self, state: OrderState, chain_id: str, status: PaymentStatus) -> None:
        chain = state.chain(chain_id)
        current = state.chain_status(chain_id)
        if can_move(current, status):
            chain["status"] = status.value

    def _order(self, state: OrderState, payment: Payment) -> dict[str, Any]:
        order = state.order
        if order is None or not state.customer_id:
            raise InvalidInput(FieldIssue("payment.order_reference",
                                          f"order {payment.order_reference or payment.chain_id} was never posted"))
        return order

    # -- refunds ------------------------------------------------------------------------------------

    async def post_refund(self, refund: Payment, of: str, event_id: str, ctx: FlowContext, *,
                          credit_memo: str | None = None) -> dict[str, Any]:
        """Post one gateway refund of capture/sale ``of`` (``credit_memo``: the back office's own request)."""
        state = OrderState(ctx.state)
        record = state.refunds.setdefault(refund.id, {
            "amount": refund.amount.format(), "currency": refund.amount.currency, "of": of})
        if record.get("payout"):
            return record
        order = self._order(state, refund)
        bo = self.back_office.name
        customer = state.customer_id or ""
        order_ref = ExternalRef.parse(order["ref"])
        if credit_memo is None:
            credit_memo = record.get("credit_memo") or await self._credit(CreditMemo(
                key=f"{bo}:refund:{refund.id}:credit", customer_id=customer, memo_date=_when(refund),
                description=f"Card refund {refund.order_reference or ''}".strip()[:30],
                lines=(MemoLine(account=self.accounts["returns"], amount=refund.amount,
                                description="Card refund"),),
                order=order_ref, gateway_ref=refund.ref,
            ), ctx)
        record["credit_memo"] = credit_memo
        record["payout"] = await self._debit(DebitMemo(
            key=f"{bo}:refund:{refund.id}:payout", customer_id=customer, memo_date=_when(refund),
            description=f"Refund to card {refund.order_reference or ''}".strip()[:30],
            lines=(MemoLine(account=self.accounts["refund_liability"], amount=refund.amount,
                            description="Paid back to the card"),),
            apply_credit=ExternalRef.parse(credit_memo), order=order_ref, gateway_ref=refund.ref,
        ), ctx, tag="refunds.posted")
        await self._after_refund(state, refund, of, event_id, ctx)
        return record

    async def _after_refund(self, state: OrderState, refund: Payment, of: str, event_id: str,
                            ctx: FlowContext) -> None:
        order = state.order
        assert order is not None
        receipt = state.receipts.get(of, {})
        chain_id = receipt.get("chain", refund.chain_id)
        captured = [Money.of(r["amount"], r["currency"]) for t, r in state.receipts.items()
                    if r.get("chain") == chain_id and not r.get("reversed")]
        refunded_in_chain = [state.refunded(t) for t, r in state.receipts.items() if r.get("chain") == chain_id]
        total_captured = sum(captured[1:], captured[0]) if captured else refund.amount
        total_refunded = Money.zero(refund.amount.currency)
        for amount in refunded_in_chain:
            if amount is not None:
                total_refunded = total_refunded + amount
        full = total_refunded >= total_captured
        self._advance_chain(state, chain_id,
                            PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED)
        everything = state.refunded()
        paid = Money.of(order.get("paid", "0"), order["currency"])
        status = OrderStatus.REFUNDED if everything is not None and everything >= paid else \
            OrderStatus.PARTIALLY_REFUNDED
        if order["status"] != status.value:
            await self.orders.move_order(order, status, None, event_id, ctx,
                                         reason=f"Refunded {everything} to the card")
        ctx.outcome(status.value)

    async def refund(self, refund: Payment, event_id: str, ctx: FlowContext) -> None:
        state = OrderState(ctx.state)
        if state.refunds.get(refund.id, {}).get("payout"):
            ctx.outcome("already_posted")  # e.g. the back office asked for it and it is posted
            return
        of = self._target(refund, state)
        await self._ensure_posted(of, event_id, ctx)
        if not of or of not in state.receipts:
            raise InvalidInput(FieldIssue("payment.parent_id",
                                          f"refund {refund.id} names no capture or sale that was posted"))
        left = state.refundable().get(of)
        if left is None or refund.amount > left:
            log.warning("refund %s of %s exceeds what is left to refund (%s); posted as the gateway reports it",
                        refund.id, refund.amount, left)
        await self.post_refund(refund, of, event_id, ctx)

    # -- voids and reversals ------------------------------------------------------------------------

    async def void(self, void: Payment, event_id: str, ctx: FlowContext) -> None:
        state = OrderState(ctx.state)
        target = self._target(void, state)
        receipt = state.receipts.get(target) if target else None
        if receipt is None:
            # voided before we posted it: the capture's own event, if it comes, is late and skipped
            self._advance_chain(state, void.chain_id, PaymentStatus.VOIDED)
            ctx.outcome("voided_before_posting")
            return
        if receipt.get("reversed"):
            ctx.outcome("already_reversed")
            return
        order = self._order(state, void)
        bo = self.back_office.name
        amount = Money.of(receipt["amount"], receipt["currency"])

        async def reverse() -> str:
            return (await self.back_office.reverse_receipt(ReceiptReversal(
                key=f"{bo}:void:{void.id}:reversal", receipt=ExternalRef.parse(receipt["ref"]),
                reversed_at=_when(void), reason=f"Card capture {target} voided", gateway_ref=void.ref,
            ))).key

        async def find() -> str | None:
            ref = await self.back_office.find_document(DocumentKind.RECEIPT_REVERSAL, f"{bo}:void:{void.id}:reversal")
            return ref.key if ref else None

        await ctx.once(f"{bo}:void:{void.id}:reversal", reverse, find, tag="receipts.reversed")
        receipt["reversed"] = True
        order["paid"] = (Money.of(order.get("paid", "0"), order["currency"]) - amount).format()
        await self._write_off(state, void, amount, "Voided capture", ctx)
        self._advance_chain(state, receipt["chain"], PaymentStatus.VOIDED)
        if all(r.get("reversed") for r in state.receipts.values()):
            # an invoiced order cannot be cancelled (SL closes it at invoicing): its money is all given back
            final = OrderStatus.REFUNDED if state.invoice_ref() else OrderStatus.CANCELLED
            await self.orders.move_order(order, final, None, event_id, ctx,
                                         reason=f"Card payment voided ({void.id})")
        ctx.outcome("voided")

    async def reversal(self, reversal: Payment, event_id: str, ctx: FlowContext) -> None:
        state = OrderState(ctx.state)
        order = state.order
        chain_id = reversal.chain_id
        captured = [r for r in state.receipts.values() if r.get("chain") == chain_id and not r.get("reversed")]
        self._advance_chain(state, chain_id, PaymentStatus.VOIDED)
        if order is None:
            ctx.outcome("reversed_before_posting")
            return
        if not captured:
            await self.orders.move_order(order, OrderStatus.CANCELLED, None, event_id, ctx,
                                         reason=f"Authorisation reversed ({reversal.id})")
            ctx.outcome("cancelled")
            return
        # part was captured: the rest of the invoice will never be paid
        total = Money.of(order["total"], order["currency"])
        paid = Money.of(order.get("paid", "0"), order["currency"])
        written = Money.of(order.get("written_off", "0"), order["currency"])
        open_amount = total - paid - written
        amount = min(reversal.amount, open_amount) if open_amount.is_positive() else None
        if amount is not None and amount.is_positive():
            await self._write_off(state, reversal, amount, "Authorisation not captured", ctx)
        if order["status"] != OrderStatus.PAID.value and paid + Money.of(order.get("written_off", "0"),
                                                                         order["currency"]) >= total:
            await self.orders.move_order(order, OrderStatus.PAID, None, event_id, ctx)
        ctx.outcome("written_off")

    async def _write_off(self, state: OrderState, payment: Payment, amount: Money, why: str,
                         ctx: FlowContext) -> None:
        invoice = state.invoice_ref()
        order = state.order
        if invoice is None or order is None or not amount.is_positive():
            return
        await self._credit(CreditMemo(
            key=f"{self.back_office.name}:writeoff:{payment.id}", customer_id=state.customer_id or "",
            memo_date=_when(payment), description=why[:30],
            lines=(MemoLine(account=self.accounts["write_off"], amount=amount, description=why),),
            apply_to=invoice, order=ExternalRef.parse(order["ref"]), gateway_ref=payment.ref,
        ), ctx, tag="invoices.written_off")
        order["written_off"] = (Money.of(order.get("written_off", "0"), order["currency"]) + amount).format()
