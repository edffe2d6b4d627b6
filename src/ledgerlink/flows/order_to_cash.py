"""Order to cash: a gateway's payment events become back-office sales orders with the payments applied.

Written once against ``PaymentGateway`` and ``BackOffice``; a pair is configuration.

Per payment event (all events of one merchant order arrive here in order):

1. Find the canonical payment (carried whole by the event, or fetched).
2. Move the payment's canonical status forward; an event that would move it
   back arrived late and is skipped (logged, counted, not an error).
3. Declined: nothing is posted; the decline and its reason are logged.
4. Otherwise find or create the customer, create the sales order once (key:
   the merchant's order reference), and harmonise its status (AUTHORIZED ->
   Open, PENDING_REVIEW -> On Hold, per the integration file).
5. Captured money: invoice the order once, then post the receipt once per
   capture (key: the capture's transaction id), applied to the invoice or kept
   as a prepayment on the order.

Every back-office write goes through ``ctx.once`` with a business key, so a
re-delivered, retried or crash-recovered event never posts twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from ledgerlink.connectors.kit.protocols import BackOffice, PaymentGateway
from ledgerlink.flows.context import FlowContext, Ignored
from ledgerlink.flows.order_state import OrderState
from ledgerlink.mappings.spec import MappingSpec
from ledgerlink.model import (
    CashReceipt,
    DocumentKind,
    EventType,
    ExternalRef,
    FieldIssue,
    InvalidInput,
    Invoice,
    Money,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentEvent,
    PaymentKind,
    PaymentStatus,
    ReceiptKind,
    SalesOrder,
    can_move,
)

log = logging.getLogger(__name__)

HANDLED = frozenset({EventType.PAYMENT, EventType.CAPTURE, EventType.REVIEW, EventType.DECLINE})
CAPTURED = frozenset({PaymentStatus.CAPTURED, PaymentStatus.SETTLED})
MONEY_IN = frozenset({PaymentKind.SALE, PaymentKind.CAPTURE})


def _timestamp(payment: Payment, ctx: FlowContext) -> datetime:
    return payment.submitted_at or datetime.fromtimestamp(ctx.now(), UTC)


class OrderToCash:
    name = "order_to_cash"

    def __init__(self, gateway: PaymentGateway, back_office: BackOffice, mapping: MappingSpec) -> None:
        self.gateway = gateway
        self.back_office = back_office
        self.mapping = mapping

    def accepts(self, event: PaymentEvent) -> bool:
        return event.event_type in HANDLED

    async def handle(self, event: PaymentEvent, ctx: FlowContext) -> None:
        if not self.accepts(event):
            raise Ignored(f"order-to-cash does not handle {event.gateway_event_type}")
        payment = event.payment or await self.gateway.get_payment(event.payment_id)
        await self.apply_payment(payment, event.event_id, event.gateway_event_type, ctx)

    async def apply_payment(self, payment: Payment, event_id: str, event_type: str, ctx: FlowContext) -> None:
        """Bring the back office in line with ``payment`` (an authorisation, sale or capture).

        Other flows call this too: a refund that overtakes its capture posts the capture first.
        """
        state = OrderState(ctx.state)
        chain = state.chain(payment.chain_id)
        current = state.chain_status(payment.chain_id)
        target = payment.status

        if not can_move(current, target):
            log.info("payment %s is %s; late %s event %s skipped", payment.chain_id, current, event_type, event_id)
            ctx.count("events.stale")
            ctx.outcome("stale")
            return

        if target is PaymentStatus.DECLINED:
            chain.update(status=target.value, reason=payment.decline_reason)
            log.info("payment %s for order %s declined (%s: %s); nothing posted",
                     payment.id, payment.order_reference, payment.decline_reason, payment.decline_message)
            ctx.count("payments.declined")
            ctx.outcome("declined")
            return

        order_status = self.mapping.statuses.order_status(target)
        if order_status is None:
            chain["status"] = target.value
            ctx.outcome("not_posted")
            return

        basis = await self._order_basis(payment, ctx)
        customer_id = await self._customer(basis, ctx)
        order = await self._sales_order(basis, customer_id, order_status, ctx)
        takes_money = target in CAPTURED and payment.kind in MONEY_IN
        if order_status is OrderStatus.PAID or takes_money:
            if order["status"] == OrderStatus.ON_HOLD.value:  # money is taken: the hold is over
                await self.move_order(order, OrderStatus.OPEN, payment, event_id, ctx)
            if takes_money:
                await self._receipt(payment, customer_id, order, ctx)
            paid = Money.of(order.get("paid", "0"), order["currency"])
            if paid >= Money.of(order["total"], order["currency"]) and order["status"] != OrderStatus.PAID.value:
                await self.move_order(order, OrderStatus.PAID, payment, event_id, ctx)
        elif order["status"] != order_status.value:
            await self.move_order(order, order_status, payment, event_id, ctx)
        chain["status"] = target.value
        ctx.outcome(order["status"])

    async def _order_basis(self, payment: Payment, ctx: FlowContext) -> Payment:
        """The payment an order is built from: a capture that overtakes its authorisation fetches it.

        The order must carry the authorised amount, not the first capture's (a partial capture would
        otherwise invoice too little). Gateways name the authorisation as the parent or as the chain's root.
        """
        if OrderState(ctx.state).order is not None or payment.kind is not PaymentKind.CAPTURE:
            return payment
        authorisation = payment.parent_id or (payment.root_id if payment.root_id != payment.id else None)
        if not authorisation:
            log.warning("capture %s names no authorisation; its order is built from the capture", payment.id)
            return payment
        return await self.gateway.get_payment(authorisation)

    async def _customer(self, payment: Payment, ctx: FlowContext) -> str:
        state = OrderState(ctx.state)
        if state.customer_id:
            return state.customer_id
        party = payment.party
        if party is None or not (party.email or party.refs or party.id):
            fallback = self.mapping.customer.fallback_id
            if not fallback:
                raise InvalidInput(FieldIssue("payment.party", "the payment names no customer and no "
                                                               "mapping.customer.fallback_id is configured"))
            customer_id = fallback
        else:
            found = await self.back_office.find_party(party, self.mapping.customer.match_on)
            if found is None:
                found = await self.back_office.create_party(party)
            if not found.id:
                raise InvalidInput(FieldIssue("customer.id", "the back office returned a customer without an id"))
            customer_id = found.id
        state.customer_id = customer_id
        return customer_id

    def _lines(self, payment: Payment) -> tuple[OrderLine, ...]:
        rules = self.mapping.order
        revenue = self.mapping.accounts.sales
        described = self.mapping.render(rules.line_description, payment, field="mapping.order.line_description")
        single = (OrderLine(sku=rules.line_sku, description=described, unit_price=payment.amount,
                            revenue_account=revenue),)
        if not payment.line_items:
            return single
        lines = tuple(
            OrderLine(sku=item.sku or rules.line_sku,
                      description=item.description or described,
                      quantity=item.quantity, unit_price=item.unit_price, revenue_account=revenue)
            for item in payment.line_items
        )
        total = Money.zero(payment.amount.currency)
        for line in lines:
            total = total + line.total
        if total == payment.amount:
            return lines
        if total < payment.amount:  # tax, shipping and the like: keep the detail, add what is left as a line
            rest = payment.amount - total
            return (*lines, OrderLine(sku=rules.line_sku, description="Other charges", unit_price=rest,
                                      revenue_account=revenue))
        log.warning("line items of %s total %s, more than the %s paid; posting one line",
                    payment.id, total, payment.amount)
        return single

    async def _sales_order(
        self, payment: Payment, customer_id: str, status: OrderStatus, ctx: FlowContext
    ) -> dict[str, Any]:
        """The order's cross-reference state, creating the order (On Hold or Open) the first time."""
        bo = self.back_office
        existing = OrderState(ctx.state).order
        if existing is not None:
            return existing

        key = f"{bo.name}:salesorder:{payment.order_reference or payment.chain_id}"
        on_hold = status is OrderStatus.ON_HOLD
        order = SalesOrder(
            key=key,
            customer_id=customer_id,
            order_reference=payment.order_reference,
            order_date=_timestamp(payment, ctx),
            currency=payment.amount.currency,
            lines=self._lines(payment),
            status=OrderStatus.ON_HOLD if on_hold else OrderStatus.OPEN,
            hold_reason=self._hold_reason(payment) if on_hold else None,
            custom_fields=self.mapping.render_fields(self.mapping.fields.order, payment,
                                                     section="mapping.fields.order"),
            refs=(payment.ref,),
        )

        async def create() -> str:
            return (await bo.create_sales_order(order)).key

        async def find() -> str | None:
            ref = await bo.find_document(DocumentKind.SALES_ORDER, key)
            return ref.key if ref else None

        ref = await ctx.once(key, create, find, tag="sales_orders.created")
        if on_hold:
            ctx.count("orders.on_hold")
        return OrderState(ctx.state).set_order({
            "key": key, "ref": ref, "status": order.status.value, "paid": "0",
            "total": order.total.format(), "currency": order.currency,
        })

    async def move_order(
        self, order: dict[str, Any], status: OrderStatus, payment: Payment | None, event_id: str, ctx: FlowContext,
        *, reason: str | None = None,
    ) -> None:
        """Harmonise the back-office order status (once per event and target status)."""
        ref = ExternalRef.parse(order["ref"])
        if reason is None and status is OrderStatus.ON_HOLD and payment is not None:
            reason = self._hold_reason(payment)

        async def apply() -> str:
            await self.back_office.set_order_status(ref, status, reason=reason)
            return status.value

        await ctx.once(f"{order['key']}:status:{status.value}:{event_id}", apply,
                       tag="orders.on_hold" if status is OrderStatus.ON_HOLD else None)
        order["status"] = status.value

    @staticmethod
    def _hold_reason(payment: Payment) -> str:
        risk = payment.risk
        codes = ", ".join(risk.reason_codes) if risk and risk.reason_codes else payment.gateway_status
        return f"Payment review: {codes}"

    async def _receipt(self, payment: Payment, customer_id: str, order: dict[str, Any], ctx: FlowContext) -> None:
        bo = self.back_office
        rules = self.mapping.order
        order_ref = ExternalRef.parse(order["ref"])
        received_at = _timestamp(payment, ctx)
        apply_to: ExternalRef | None = None
        if rules.apply_payments == "invoice":
            invoice_key = f"{order['key']}:invoice"
            invoice = Invoice(
                key=invoice_key, customer_id=customer_id, order=order_ref,
                amount=Money.of(order["total"], order["currency"]), invoice_date=received_at,
                description=self.mapping.render(rules.invoice_description, payment,
                                                field="mapping.order.invoice_description"),
            )

            async def create_invoice() -> str:
                return (await bo.create_invoice(invoice)).key

            async def find_invoice() -> str | None:
                ref = await bo.find_document(DocumentKind.INVOICE, invoice_key)
                return ref.key if ref else None

            apply_to = ExternalRef.parse(
                await ctx.once(invoice_key, create_invoice, find_invoice, tag="invoices.created")
            )
            order["invoice"] = apply_to.key

        receipt_key = f"{bo.name}:receipt:{payment.id}"
        receipt = CashReceipt(
            key=receipt_key, customer_id=customer_id, amount=payment.amount, received_at=received_at,
            kind=ReceiptKind.APPLIED if apply_to else ReceiptKind.PREPAYMENT,
            order=order_ref, apply_to=apply_to,
            description=self.mapping.render(rules.invoice_description, payment,
                                            field="mapping.order.invoice_description"),
            gateway_ref=payment.ref, deposit_account=self.mapping.accounts.card_clearing,
            custom_fields=self.mapping.render_fields(self.mapping.fields.receipt, payment,
                                                      section="mapping.fields.receipt"),
        )

        async def create_receipt() -> str:
            return (await bo.apply_receipt(receipt)).key

        async def find_receipt() -> str | None:
            ref = await bo.find_document(DocumentKind.RECEIPT, receipt_key)
            return ref.key if ref else None

        state = OrderState(ctx.state)
        if payment.id in state.receipts:
            return  # posted by an earlier attempt: already counted in ``paid``
        ref = await ctx.once(receipt_key, create_receipt, find_receipt, tag="payments.applied")
        state.add_receipt(payment.id, ref, payment.amount, payment.chain_id)
        order["paid"] = (Money.of(order.get("paid", "0"), order["currency"]) + payment.amount).format()
