"""The state every payment flow keeps for one merchant order (one partition), in one place.

It is a view over ``ctx.state`` (a JSON document the runtime commits with each event), so all flows
of an order read and write the same cross-references: the customer, the sales order and its invoice,
each payment chain's canonical status, every receipt posted, every refund and dispute.
"""

from __future__ import annotations

from typing import Any

from ledgerlink.model import DisputeStage, ExternalRef, Money, PaymentStatus


class OrderState:
    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    # customer and order ---------------------------------------------------------------------------

    @property
    def customer_id(self) -> str | None:
        return self._state.get("customer")

    @customer_id.setter
    def customer_id(self, value: str) -> None:
        self._state["customer"] = value

    @property
    def order(self) -> dict[str, Any] | None:
        """{key, ref, status, total, paid, currency[, invoice]} once the back office has the order."""
        return self._state.get("order")

    def set_order(self, order: dict[str, Any]) -> dict[str, Any]:
        self._state["order"] = order
        return order

    def order_ref(self) -> ExternalRef | None:
        order = self.order
        return ExternalRef.parse(order["ref"]) if order else None

    def invoice_ref(self) -> ExternalRef | None:
        order = self.order
        return ExternalRef.parse(order["invoice"]) if order and order.get("invoice") else None

    # payment chains -------------------------------------------------------------------------------

    def chain(self, chain_id: str) -> dict[str, Any]:
        return self._state.setdefault("payments", {}).setdefault(chain_id, {})

    def chain_status(self, chain_id: str) -> PaymentStatus | None:
        status = self.chain(chain_id).get("status")
        return PaymentStatus(status) if status else None

    # receipts -------------------------------------------------------------------------------------

    @property
    def receipts(self) -> dict[str, dict[str, Any]]:
        """gateway transaction id of the capture or sale -> {ref, amount, currency, chain[, reversed]}."""
        return self._state.setdefault("receipts", {})

    def add_receipt(self, transaction_id: str, ref: str, amount: Money, chain_id: str) -> None:
        self.receipts[transaction_id] = {"ref": ref, "amount": amount.format(), "currency": amount.currency,
                                         "chain": chain_id}

    def received(self, transaction_id: str) -> Money | None:
        receipt = self.receipts.get(transaction_id)
        return Money.of(receipt["amount"], receipt["currency"]) if receipt else None

    # refunds --------------------------------------------------------------------------------------

    @property
    def refunds(self) -> dict[str, dict[str, Any]]:
        """gateway refund id -> {amount, currency, of (refunded transaction), credit_memo, payout[, request]}."""
        return self._state.setdefault("refunds", {})

    def refunded(self, transaction_id: str | None = None) -> Money | None:
        """Refunded so far, in total or of one capture/sale; None when nothing was."""
        total: Money | None = None
        for refund in self.refunds.values():
            if transaction_id is not None and refund.get("of") != transaction_id:
                continue
            amount = Money.of(refund["amount"], refund["currency"])
            total = amount if total is None else total + amount
        return total

    def refundable(self) -> dict[str, Money]:
        """Per captured transaction still in the books: what can still be refunded (captured, less refunds,
        less chargebacks not won back: the issuer already gave that money back to the card)."""
        left: dict[str, Money] = {}
        for txn, receipt in self.receipts.items():
            if receipt.get("reversed"):
                continue
            remaining = Money.of(receipt["amount"], receipt["currency"])
            for taken in (self.refunded(txn), self.charged_back(txn)):
                if taken is not None:
                    remaining = remaining - taken
            if remaining.is_positive():
                left[txn] = remaining
        return left

    # disputes -------------------------------------------------------------------------------------

    @property
    def disputes(self) -> dict[str, dict[str, Any]]:
        """gateway dispute id -> {stage, debit_memo, amount, fee, currency, of (disputed transaction)}."""
        return self._state.setdefault("disputes", {})

    def charged_back(self, transaction_id: str) -> Money | None:
        """Taken back from one capture/sale by chargebacks that are open or lost; None when nothing is."""
        total: Money | None = None
        for dispute in self.disputes.values():
            if dispute.get("of") != transaction_id or not dispute.get("amount") or \
                    dispute.get("stage") == DisputeStage.WON.value:
                continue
            amount = Money.of(dispute["amount"], dispute["currency"])
            total = amount if total is None else total + amount
        return total
