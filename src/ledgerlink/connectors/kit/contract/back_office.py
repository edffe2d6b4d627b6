"""The behaviour every ``BackOffice`` must show, as plain async checks run against its sandbox.

A connector's test builds a ``ContractEnv`` (its back office plus a ``BackOfficeProbe`` that can look
inside the system) and runs every check in ``CHECKS``, for example::

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    async def test_contract(check, contract_env):
        await check(contract_env)

The checks need no framework: each raises ``AssertionError`` (or the connector's error) when the
behaviour is wrong. They cover idempotent creates (sequential and concurrent), lookups by key,
order status changes, invoice + applied receipt down to a zero balance, prepayment, an over-payment
refused without writing anything, and many concurrent calls each getting their own answer; and money
movement: credit and debit memos (a card refund paid out, a chargeback won and lost), a receipt
reversed, GL journals balanced and posted, tasks upserted by key, refund requests from the back office
round-tripped, and the posted payments reconciliation reads. Every new document is idempotent by key and
every refusal says why and writes nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from ledgerlink.connectors.kit.columns import PostedFrame
from ledgerlink.connectors.kit.errors import PermanentError
from ledgerlink.connectors.kit.protocols import BackOffice
from ledgerlink.model import (
    CashReceipt,
    CreditMemo,
    DebitMemo,
    DocumentKind,
    ExternalRef,
    GLAccount,
    InvalidInput,
    Invoice,
    JournalEntry,
    MemoLine,
    Money,
    OrderLine,
    OrderStatus,
    Party,
    PostedKind,
    Posting,
    ReceiptKind,
    ReceiptReversal,
    RefundOutcome,
    RefundResult,
    SalesOrder,
    Side,
    Task,
)


class BackOfficeProbe(Protocol):
    """Looks inside the back office where the ``BackOffice`` seam has no read method."""

    async def open_balance(self, ref: ExternalRef) -> Money:
        """What is still owed on an order or invoice, or unapplied on a receipt."""
        ...

    async def order_status(self, ref: ExternalRef) -> OrderStatus: ...

    async def record_count(self) -> int:
        """Every business record the back office holds (to prove a refused call wrote nothing)."""
        ...

    async def party_count(self) -> int: ...

    async def customer_balance(self, customer_id: str) -> Money:
        """What the customer owes in total (open debits less open credits)."""
        ...

    async def request_refund(self, customer_id: str, amount: Money, order: ExternalRef | None,
                             reason: str) -> ExternalRef:
        """Do what a person in the back office does to ask for a card refund (in SL: a credit memo flagged
        "refund to card"); returns the document that asks."""
        ...

    async def journal(self, ref: ExternalRef) -> tuple[bool, Money, Money]:
        """A journal's (posted, total debits, total credits) as the general ledger holds it."""
        ...

    async def task(self, ref: ExternalRef) -> dict[str, str]:
        """A task's ``subject``, ``body``, ``category`` and ``status`` (``open``/``closed``)."""
        ...

    async def task_count(self) -> int: ...


class ContractAccounts(BaseModel):
    """The chart of accounts the money-movement checks post to (each back office's sandbox seeds them)."""

    model_config = ConfigDict(frozen=True)

    bank: GLAccount = GLAccount(account="1010")
    card_clearing: GLAccount = GLAccount(account="1050")
    chargeback_clearing: GLAccount = GLAccount(account="1060")
    refund_liability: GLAccount = GLAccount(account="2350")
    returns: GLAccount = GLAccount(account="4900")
    processing_fees: GLAccount = GLAccount(account="6500")
    chargeback_losses: GLAccount = GLAccount(account="6550")
    chargeback_fees: GLAccount = GLAccount(account="6560")
    write_off: GLAccount = GLAccount(account="6900")
    unknown: GLAccount = GLAccount(account="9999")  # not in the chart: posting to it must be refused


@dataclass
class ContractEnv:
    back_office: BackOffice
    probe: BackOfficeProbe
    currency: str = "USD"
    gateway: str = "contract"
    accounts: ContractAccounts = field(default_factory=ContractAccounts)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))  # every money-movement document's date
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _serial: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def today(self) -> date:
        return self.now.date()

    def unique(self, what: str) -> str:
        return f"{what}-{self.run}-{next(self._serial)}"

    def money(self, amount: str) -> Money:
        return Money.of(amount, self.currency)

    def party(self) -> Party:
        tag = self.unique("p")
        return Party(name=f"Contract Buyer {tag}", email=f"{tag}@example.com", phone="+15555550100",
                     refs=(ExternalRef(system=self.gateway, kind="customer", id=tag),))

    def order(self, customer_id: str, *prices: str, status: OrderStatus = OrderStatus.OPEN,
              key: str | None = None) -> SalesOrder:
        reference = self.unique("ORD")
        lines = tuple(OrderLine(sku=f"SKU-{n}", description=f"Item {n}", quantity=Decimal(1),
                                unit_price=self.money(p)) for n, p in enumerate(prices or ("10.00",)))
        return SalesOrder(key=key or f"contract:salesorder:{reference}", customer_id=customer_id,
                          order_reference=reference, order_date=datetime.now(UTC), currency=self.currency,
                          lines=lines, status=status, hold_reason="fraud review" if status is OrderStatus.ON_HOLD
                          else None)

    def invoice(self, customer_id: str, order: ExternalRef, amount: str) -> Invoice:
        return Invoice(key=f"contract:invoice:{order.id}:{self.unique('i')}", customer_id=customer_id, order=order,
                       amount=self.money(amount), invoice_date=datetime.now(UTC))

    def receipt(self, customer_id: str, amount: str, *, invoice: ExternalRef | None = None,
                order: ExternalRef | None = None) -> CashReceipt:
        txn = self.unique("txn")
        return CashReceipt(key=f"contract:receipt:{txn}", customer_id=customer_id, amount=self.money(amount),
                           received_at=datetime.now(UTC),
                           kind=ReceiptKind.APPLIED if invoice is not None else ReceiptKind.PREPAYMENT,
                           order=order, apply_to=invoice,
                           gateway_ref=ExternalRef(system=self.gateway, kind="transaction", id=txn))

    def gateway_ref(self, what: str = "txn") -> ExternalRef:
        return ExternalRef(system=self.gateway, kind="transaction", id=self.unique(what).replace("-", ""))

    def credit_memo(self, customer_id: str, *lines: tuple[GLAccount, str], apply_to: ExternalRef | None = None,
                    order: ExternalRef | None = None, description: str = "Contract credit") -> CreditMemo:
        return CreditMemo(key=f"contract:cm:{self.unique('cm')}", customer_id=customer_id, memo_date=self.now,
                          description=description, order=order, apply_to=apply_to,
                          lines=tuple(MemoLine(account=a, amount=self.money(m)) for a, m in lines))

    def debit_memo(self, customer_id: str, *lines: tuple[GLAccount, str], apply_credit: ExternalRef | None = None,
                   gateway_ref: ExternalRef | None = None, order: ExternalRef | None = None,
                   description: str = "Contract debit") -> DebitMemo:
        return DebitMemo(key=f"contract:dm:{self.unique('dm')}", customer_id=customer_id, memo_date=self.now,
                         description=description, order=order, apply_credit=apply_credit, gateway_ref=gateway_ref,
                         lines=tuple(MemoLine(account=a, amount=self.money(m)) for a, m in lines))

    def journal(self, *postings: tuple[GLAccount, Side, str], key: str | None = None) -> JournalEntry:
        return JournalEntry(key=key or f"contract:journal:{self.unique('j')}", entry_date=self.today,
                            description="Contract settlement batch",
                            postings=tuple(Posting(account=a, side=side, amount=self.money(m))
                                           for a, side, m in postings))


Check = Callable[[ContractEnv], Awaitable[None]]


async def _customer(env: ContractEnv) -> str:
    created = await env.back_office.create_party(env.party())
    assert created.id, "create_party must return the party with its back-office id"
    return created.id


async def party_find_and_create_are_idempotent(env: ContractEnv) -> None:
    bo, party = env.back_office, env.party()
    assert await bo.find_party(party, ["email", "external_id"]) is None
    before = await env.probe.party_count()
    first = await bo.create_party(party)
    second = await bo.create_party(party)
    assert first.id and first.id == second.id
    assert await env.probe.party_count() == before + 1
    for rule in ("email", "external_id", "id"):
        probe_party = party.model_copy(update={"id": first.id}) if rule == "id" else party
        found = await bo.find_party(probe_party, [rule])
        assert found is not None and found.id == first.id, f"find_party by {rule} missed the created party"


async def concurrent_party_creators_make_one(env: ContractEnv) -> None:
    party = env.party()
    before = await env.probe.party_count()
    created = await asyncio.gather(*(env.back_office.create_party(party) for _ in range(8)))
    assert len({p.id for p in created}) == 1
    assert await env.probe.party_count() == before + 1


async def sales_order_key_makes_one_record(env: ContractEnv) -> None:
    bo = env.back_office
    order = env.order(await _customer(env), "12.50", "7.25")
    assert await bo.find_document(DocumentKind.SALES_ORDER, order.key) is None
    before = await env.probe.record_count()
    first = await bo.create_sales_order(order)
    again = await bo.create_sales_order(order)
    concurrent = await asyncio.gather(*(bo.create_sales_order(order) for _ in range(5)))
    assert {first, again, *concurrent} == {first}
    assert await bo.find_document(DocumentKind.SALES_ORDER, order.key) == first
    assert await env.probe.record_count() == before + 1
    assert await env.probe.open_balance(first) == env.money("19.75")


async def order_hold_release_cancel(env: ContractEnv) -> None:
    bo = env.back_office
    ref = await bo.create_sales_order(env.order(await _customer(env)))
    assert await env.probe.order_status(ref) is OrderStatus.OPEN
    await bo.set_order_status(ref, OrderStatus.ON_HOLD, reason="fraud review")
    assert await env.probe.order_status(ref) is OrderStatus.ON_HOLD
    await bo.set_order_status(ref, OrderStatus.ON_HOLD, reason="fraud review")  # twice is harmless
    await bo.set_order_status(ref, OrderStatus.OPEN)
    assert await env.probe.order_status(ref) is OrderStatus.OPEN
    await bo.set_order_status(ref, OrderStatus.CANCELLED, reason="customer asked")
    assert await env.probe.order_status(ref) is OrderStatus.CANCELLED
    await bo.set_order_status(ref, OrderStatus.CANCELLED)  # twice is harmless


async def order_created_on_hold(env: ContractEnv) -> None:
    ref = await env.back_office.create_sales_order(env.order(await _customer(env), status=OrderStatus.ON_HOLD))
    assert await env.probe.order_status(ref) is OrderStatus.ON_HOLD


async def invoice_and_applied_receipt_pay_the_order(env: ContractEnv) -> None:
    bo = env.back_office
    customer = await _customer(env)
    order = await bo.create_sales_order(env.order(customer, "40.00", "2.21"))
    invoice = env.invoice(customer, order, "42.21")
    assert await bo.find_document(DocumentKind.INVOICE, invoice.key) is None
    inv_ref = await bo.create_invoice(invoice)
    assert await bo.create_invoice(invoice) == inv_ref
    assert await bo.find_document(DocumentKind.INVOICE, invoice.key) == inv_ref
    assert await env.probe.open_balance(inv_ref) == env.money("42.21")
    receipt = env.receipt(customer, "42.21", invoice=inv_ref, order=order)
    rcpt_ref = await bo.apply_receipt(receipt)
    assert await bo.apply_receipt(receipt) == rcpt_ref
    assert await bo.find_document(DocumentKind.RECEIPT, receipt.key) == rcpt_ref
    assert await env.probe.open_balance(inv_ref) == env.money("0.00")
    assert await env.probe.open_balance(rcpt_ref) == env.money("0.00")
    assert await env.probe.open_balance(order) == env.money("0.00")
    assert await env.probe.order_status(order) is OrderStatus.PAID
    await bo.set_order_status(order, OrderStatus.PAID)


async def partial_receipts_reach_zero(env: ContractEnv) -> None:
    bo = env.back_office
    customer = await _customer(env)
    order = await bo.create_sales_order(env.order(customer, "100.00"))
    inv_ref = await bo.create_invoice(env.invoice(customer, order, "100.00"))
    for amount, left in (("33.33", "66.67"), ("33.33", "33.34"), ("33.34", "0.00")):
        await bo.apply_receipt(env.receipt(customer, amount, invoice=inv_ref, order=order))
        assert await env.probe.open_balance(inv_ref) == env.money(left)
    assert await env.probe.open_balance(order) == env.money("0.00")


async def prepayment_against_an_order(env: ContractEnv) -> None:
    bo = env.back_office
    customer = await _customer(env)
    order = await bo.create_sales_order(env.order(customer, "25.00"))
    receipt = env.receipt(customer, "25.00", order=order)
    ref = await bo.apply_receipt(receipt)
    assert await bo.apply_receipt(receipt) == ref
    assert await bo.find_document(DocumentKind.RECEIPT, receipt.key) == ref
    assert await env.probe.open_balance(order) == env.money("0.00")
    assert await env.probe.order_status(order) is OrderStatus.PAID


async def overpayment_is_refused_and_writes_nothing(env: ContractEnv) -> None:
    bo = env.back_office
    customer = await _customer(env)
    order = await bo.create_sales_order(env.order(customer, "10.00"))
    inv_ref = await bo.create_invoice(env.invoice(customer, order, "10.00"))
    before = await env.probe.record_count()
    receipt = env.receipt(customer, "10.01", invoice=inv_ref, order=order)
    try:
        await bo.apply_receipt(receipt)
    except (PermanentError, InvalidInput) as exc:
        assert str(exc), "the refusal must say why"
    else:
        raise AssertionError("a receipt larger than the open balance was accepted")
    assert await env.probe.record_count() == before
    assert await env.probe.open_balance(inv_ref) == env.money("10.00")
    assert await bo.find_document(DocumentKind.RECEIPT, receipt.key) is None


async def concurrent_calls_each_get_their_own_result(env: ContractEnv) -> None:
    bo = env.back_office
    parties = [env.party() for _ in range(40)]
    created = await asyncio.gather(*(bo.create_party(p) for p in parties))
    assert len({p.id for p in created}) == len(parties)
    orders = [env.order(p.id or "", f"{n + 1}.00") for n, p in enumerate(created)]
    bad = env.order("NO-SUCH-CUST", "1.00")
    results = await asyncio.gather(*(bo.create_sales_order(o) for o in [*orders, bad]), return_exceptions=True)
    assert isinstance(results[-1], (PermanentError, InvalidInput)), "an order for an unknown customer must fail alone"
    refs = results[:-1]
    assert all(isinstance(r, ExternalRef) for r in refs)
    assert len(set(refs)) == len(orders)
    for order, ref in zip(orders, refs, strict=True):
        assert await bo.find_document(DocumentKind.SALES_ORDER, order.key) == ref
        assert await env.probe.open_balance(ref) == order.total  # type: ignore[arg-type]


# ---- money movement -------------------------------------------------------------------------------------


async def _paid_invoice(env: ContractEnv, customer: str, amount: str, *, pay: str | None = None
                        ) -> tuple[ExternalRef, ExternalRef, ExternalRef, ExternalRef]:
    """(order, invoice, receipt, the capture's gateway ref): an order invoiced and paid by one receipt."""
    bo = env.back_office
    order = await bo.create_sales_order(env.order(customer, amount))
    invoice = await bo.create_invoice(env.invoice(customer, order, amount))
    capture = env.gateway_ref("cap")
    receipt = env.receipt(customer, pay or amount, invoice=invoice, order=order).model_copy(
        update={"gateway_ref": capture, "received_at": env.now})
    return order, invoice, await bo.apply_receipt(receipt), capture


async def _refused(call: Awaitable[object], what: str) -> None:
    try:
        await call
    except (PermanentError, InvalidInput) as exc:
        assert str(exc), f"the refusal of {what} must say why"
    else:
        raise AssertionError(f"{what} was accepted")


async def credit_memo_applied_to_an_invoice_is_idempotent(env: ContractEnv) -> None:
    bo, accounts = env.back_office, env.accounts
    customer = await _customer(env)
    order = await bo.create_sales_order(env.order(customer, "50.00"))
    invoice = await bo.create_invoice(env.invoice(customer, order, "50.00"))
    memo = env.credit_memo(customer, (accounts.returns, "15.00"), (accounts.write_off, "5.00"), apply_to=invoice)
    assert await bo.find_document(DocumentKind.CREDIT_MEMO, memo.key) is None
    first = await bo.issue_credit_memo(memo)
    before = await env.probe.record_count()
    again = await asyncio.gather(*(bo.issue_credit_memo(memo) for _ in range(4)))
    assert set(again) == {first}
    assert await env.probe.record_count() == before
    assert await bo.find_document(DocumentKind.CREDIT_MEMO, memo.key) == first
    assert await bo.open_balance(invoice) == env.money("30.00")
    assert await bo.open_balance(first) == env.money("0.00")
    assert await env.probe.customer_balance(customer) == env.money("30.00")


async def credit_memo_larger_than_the_open_balance_is_refused(env: ContractEnv) -> None:
    bo = env.back_office
    customer = await _customer(env)
    order = await bo.create_sales_order(env.order(customer, "40.00"))
    invoice = await bo.create_invoice(env.invoice(customer, order, "40.00"))
    await bo.issue_credit_memo(env.credit_memo(customer, (env.accounts.returns, "10.00"), apply_to=invoice))
    before = await env.probe.record_count()
    memo = env.credit_memo(customer, (env.accounts.returns, "30.01"), apply_to=invoice)
    await _refused(bo.issue_credit_memo(memo), "a credit memo larger than the invoice's open balance")
    assert await env.probe.record_count() == before
    assert await bo.find_document(DocumentKind.CREDIT_MEMO, memo.key) is None
    assert await bo.open_balance(invoice) == env.money("30.00")


async def card_refund_of_a_paid_invoice_is_paid_out(env: ContractEnv) -> None:
    """A refund of a paid invoice: a credit memo (returns) and a debit memo paying it out (refund liability),
    the credit settling the debit at once; the customer owes nothing either way."""
    bo, accounts = env.back_office, env.accounts
    customer = await _customer(env)
    order, invoice, _, _ = await _paid_invoice(env, customer, "80.00")
    assert await env.probe.customer_balance(customer) == env.money("0.00")
    credit = await bo.issue_credit_memo(env.credit_memo(customer, (accounts.returns, "30.00"), order=order))
    assert await bo.open_balance(credit) == env.money("30.00")
    assert await env.probe.customer_balance(customer) == env.money("-30.00")
    refund = env.gateway_ref("rfnd")
    payout = env.debit_memo(customer, (accounts.refund_liability, "30.00"), apply_credit=credit, gateway_ref=refund,
                            order=order)
    first = await bo.issue_debit_memo(payout)
    assert await bo.issue_debit_memo(payout) == first
    assert await bo.find_document(DocumentKind.DEBIT_MEMO, payout.key) == first
    assert await bo.open_balance(first) == env.money("0.00")
    assert await bo.open_balance(credit) == env.money("0.00")
    assert await bo.open_balance(invoice) == env.money("0.00")
    assert await env.probe.customer_balance(customer) == env.money("0.00")
    await bo.set_order_status(order, OrderStatus.PARTIALLY_REFUNDED, reason="30.00 refunded")
    refunds = [p for p in await bo.posted_payments(env.today, env.today + timedelta(days=1)) if p.ref == first]
    assert len(refunds) == 1 and refunds[0].kind is PostedKind.REFUND
    assert refunds[0].transaction_id == refund.id and refunds[0].amount == env.money("30.00")


async def receipt_reversal_reopens_the_invoice(env: ContractEnv) -> None:
    bo = env.back_office
    customer = await _customer(env)
    _, invoice, receipt, capture = await _paid_invoice(env, customer, "42.21")
    assert await bo.open_balance(invoice) == env.money("0.00")
    reversal = ReceiptReversal(key=f"contract:void:{capture.id}", receipt=receipt, reversed_at=env.now,
                               reason="capture voided before settlement")
    assert await bo.find_document(DocumentKind.RECEIPT_REVERSAL, reversal.key) is None
    first = await bo.reverse_receipt(reversal)
    again = await asyncio.gather(*(bo.reverse_receipt(reversal) for _ in range(3)))
    assert set(again) == {first}
    assert await bo.find_document(DocumentKind.RECEIPT_REVERSAL, reversal.key) == first
    assert await bo.open_balance(invoice) == env.money("42.21")
    assert await env.probe.customer_balance(customer) == env.money("42.21")
    before = await env.probe.record_count()
    second = reversal.model_copy(update={"key": reversal.key + ":again"})
    await _refused(bo.reverse_receipt(second), "reversing a receipt twice")
    assert await env.probe.record_count() == before
    posted = await bo.posted_payments(env.today, env.today + timedelta(days=1))
    assert all(p.ref != receipt for p in posted), "a reversed receipt is not money the back office holds"
    await bo.issue_credit_memo(env.credit_memo(customer, (env.accounts.write_off, "42.21"), apply_to=invoice,
                                               description="write off the voided capture"))
    assert await bo.open_balance(invoice) == env.money("0.00")
    assert await env.probe.customer_balance(customer) == env.money("0.00")


async def chargeback_opened_then_won_or_lost(env: ContractEnv) -> None:
    bo, accounts = env.back_office, env.accounts
    for outcome in ("won", "lost"):
        customer = await _customer(env)
        order, _, _, _ = await _paid_invoice(env, customer, "60.00")
        debit = await bo.issue_debit_memo(env.debit_memo(
            customer, (accounts.chargeback_clearing, "60.00"), (accounts.chargeback_clearing, "15.00"), order=order,
            description="Chargeback opened"))
        assert await bo.open_balance(debit) == env.money("75.00")
        await bo.set_order_status(order, OrderStatus.DISPUTED, reason="chargeback opened")
        await bo.set_order_status(order, OrderStatus.DISPUTED, reason="chargeback opened")  # twice is harmless
        assert await env.probe.order_status(order) is OrderStatus.DISPUTED
        if outcome == "won":
            lines = ((accounts.chargeback_clearing, "60.00"), (accounts.chargeback_fees, "15.00"))
        else:
            lines = ((accounts.chargeback_losses, "60.00"), (accounts.chargeback_fees, "15.00"))
        memo = env.credit_memo(customer, *lines, apply_to=debit, description=f"Chargeback {outcome}")
        ref = await bo.issue_credit_memo(memo)
        assert await bo.issue_credit_memo(memo) == ref
        assert await bo.open_balance(debit) == env.money("0.00")
        assert await env.probe.customer_balance(customer) == env.money("0.00")


async def journal_is_posted_balanced_and_idempotent(env: ContractEnv) -> None:
    bo, a = env.back_office, env.accounts
    entry = env.journal((a.card_clearing, Side.CREDIT, "1000.00"), (a.refund_liability, Side.DEBIT, "30.00"),
                        (a.processing_fees, Side.DEBIT, "29.30"), (a.chargeback_clearing, Side.DEBIT, "75.00"),
                        (a.bank, Side.DEBIT, "865.70"))
    assert await bo.find_document(DocumentKind.JOURNAL, entry.key) is None
    first = await bo.post_journal(entry)
    before = await env.probe.record_count()
    again = await asyncio.gather(*(bo.post_journal(entry) for _ in range(5)))
    assert set(again) == {first}
    assert await env.probe.record_count() == before
    assert await bo.find_document(DocumentKind.JOURNAL, entry.key) == first
    posted, debits, credits = await env.probe.journal(first)
    assert posted, "a journal is released and posted"
    assert debits == credits == env.money("1000.00")


async def journal_to_an_unknown_account_is_refused(env: ContractEnv) -> None:
    bo, a = env.back_office, env.accounts
    before = await env.probe.record_count()
    entry = env.journal((a.bank, Side.DEBIT, "10.00"), (a.unknown, Side.CREDIT, "10.00"))
    await _refused(bo.post_journal(entry), "a journal to an account not in the chart")
    assert await env.probe.record_count() == before
    assert await bo.find_document(DocumentKind.JOURNAL, entry.key) is None


async def task_upserts_by_key(env: ContractEnv) -> None:
    bo = env.back_office
    key = f"contract:task:{env.unique('t')}"
    task = Task(key=key, subject="Chargeback opened", body="Respond by Friday", category="chargeback",
                reference=env.unique("ORD"), amount=env.money("75.00"), due=env.now + timedelta(days=7))
    assert await bo.find_document(DocumentKind.TASK, key) is None
    before = await env.probe.task_count()
    first = await bo.open_task(task)
    changed = task.model_copy(update={"body": "Evidence sent; wait for the issuer"})
    updated = await bo.open_task(changed)
    concurrent = await asyncio.gather(*(bo.open_task(changed.model_copy(update={"subject": "Chargeback (update)"}))
                                        for _ in range(3)))
    assert {updated, *concurrent} == {first}
    assert await env.probe.task_count() == before + 1
    assert await bo.find_document(DocumentKind.TASK, key) == first
    seen = await env.probe.task(first)
    assert seen["subject"] == "Chargeback (update)" and seen["body"] == "Evidence sent; wait for the issuer"
    assert seen["category"] == "chargeback" and seen["status"] == "open"


async def refund_requests_round_trip(env: ContractEnv) -> None:
    bo = env.back_office
    customer = await _customer(env)
    order, invoice, _, _ = await _paid_invoice(env, customer, "90.00")
    other, _, _, _ = await _paid_invoice(env, customer, "20.00")
    asked = await env.probe.request_refund(customer, env.money("25.00"), order, "item returned")
    declined = await env.probe.request_refund(customer, env.money("5.00"), other, "goodwill")
    pending = {r.ref: r for r in await bo.refund_requests()}
    assert {asked, declined} <= set(pending)
    request = pending[asked]
    assert request.amount == env.money("25.00") and request.customer_id == customer
    assert request.order == order and request.order_reference
    before = await env.probe.record_count()
    await _refused(bo.record_refund_result(asked, RefundResult(outcome=RefundOutcome.REFUNDED, message="too much",
                                                               gateway_ref=env.gateway_ref("rfnd"),
                                                               amount=env.money("25.01"))),
                   "a refund result larger than the request")
    assert await env.probe.record_count() == before
    refund = env.gateway_ref("rfnd")
    result = RefundResult(outcome=RefundOutcome.REFUNDED, message="refunded", gateway_ref=refund)
    await bo.record_refund_result(asked, result)
    await bo.record_refund_result(asked, result)  # a retry of the same result is harmless
    await bo.record_refund_result(declined, RefundResult(outcome=RefundOutcome.DECLINED, message="card expired"))
    left = {r.ref for r in await bo.refund_requests()}
    assert asked not in left and declined not in left
    await _refused(bo.record_refund_result(asked, RefundResult(outcome=RefundOutcome.DECLINED, message="changed")),
                   "a second, different result for one request")
    await _refused(bo.record_refund_result(invoice, result), "a result for a document that asked for nothing")


async def posted_payments_report_receipts_and_refunds(env: ContractEnv) -> None:
    bo, accounts = env.back_office, env.accounts
    customer = await _customer(env)
    captures = {}
    for amount in ("10.00", "20.00", "30.00"):
        _, _, receipt, capture = await _paid_invoice(env, customer, amount)
        captures[receipt] = (capture.id, amount)
    credit = await bo.issue_credit_memo(env.credit_memo(customer, (accounts.returns, "7.50")))
    refund = env.gateway_ref("rfnd")
    payout = await bo.issue_debit_memo(env.debit_memo(customer, (accounts.refund_liability, "7.50"),
                                                      apply_credit=credit, gateway_ref=refund))
    posted = {p.ref: p for p in await bo.posted_payments(env.today, env.today + timedelta(days=1))}
    for ref, (txn, amount) in captures.items():
        assert posted[ref].kind is PostedKind.RECEIPT and posted[ref].transaction_id == txn
        assert posted[ref].amount == env.money(amount) and posted[ref].posted_on == env.today
        assert posted[ref].customer_id == customer and posted[ref].order_reference
    assert posted[payout].kind is PostedKind.REFUND and posted[payout].transaction_id == refund.id
    assert credit not in posted, "the credit memo asks for the refund; the debit memo pays it out"
    later = await bo.posted_payments(env.today + timedelta(days=1), env.today + timedelta(days=2))
    assert not set(captures) & {p.ref for p in later}
    assert await bo.posted_payments(env.today, env.today) == []
    # the same read as columns (what reconciliation uses): the same documents and values
    columns = await bo.posted_frame(env.today, env.today + timedelta(days=1))
    expected = PostedFrame.from_records(list(posted.values())).payments.sort("ref")
    assert columns.payments.sort("ref").equals(expected), columns.payments


async def order_payment_statuses_are_idempotent(env: ContractEnv) -> None:
    bo = env.back_office
    customer = await _customer(env)
    order, _, _, _ = await _paid_invoice(env, customer, "15.00")
    for status in (OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED, OrderStatus.DISPUTED, OrderStatus.PAID):
        await bo.set_order_status(order, status, reason=f"now {status.value}")
        await bo.set_order_status(order, status, reason=f"now {status.value}")
        assert await env.probe.order_status(order) is status  # PAID last: a dispute won, the order paid again


CHECKS: tuple[Check, ...] = (
    party_find_and_create_are_idempotent,
    concurrent_party_creators_make_one,
    sales_order_key_makes_one_record,
    order_hold_release_cancel,
    order_created_on_hold,
    invoice_and_applied_receipt_pay_the_order,
    partial_receipts_reach_zero,
    prepayment_against_an_order,
    overpayment_is_refused_and_writes_nothing,
    concurrent_calls_each_get_their_own_result,
    credit_memo_applied_to_an_invoice_is_idempotent,
    credit_memo_larger_than_the_open_balance_is_refused,
    card_refund_of_a_paid_invoice_is_paid_out,
    receipt_reversal_reopens_the_invoice,
    chargeback_opened_then_won_or_lost,
    journal_is_posted_balanced_and_idempotent,
    journal_to_an_unknown_account_is_refused,
    task_upserts_by_key,
    refund_requests_round_trip,
    posted_payments_report_receipts_and_refunds,
    order_payment_statuses_are_idempotent,
)
