"""The money-movement flows through the connector, as the lead's flows will run them: the GL each leaves behind,
crashes after SL committed, what the connector refuses before calling SL, and paging."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette

import ledgerlink.connectors.dynamics_sl.back_office as sl_back_office
from ledgerlink.connectors.dynamics_sl import Calls, DynamicsSLBackOffice, build_back_office
from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState
from ledgerlink.connectors.dynamics_sl.sandbox.faults import FaultRule
from ledgerlink.connectors.kit.errors import NotFound, Rejected, RetryableError
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

from .conftest import settings

WHEN = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
DAY = WHEN.date()


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def acct(number: str) -> GLAccount:
    return GLAccount(account=number)


def txn(ident: str) -> ExternalRef:
    return ExternalRef(system="cybersource", kind="transaction", id=ident)


async def paid_order(bo: DynamicsSLBackOffice, tag: str, amount: str = "100.00", *, pay: str | None = None,
                     when: datetime = WHEN) -> tuple[str, ExternalRef, ExternalRef, ExternalRef]:
    party = await bo.create_party(Party(name=f"Buyer {tag}", email=f"{tag}@example.com"))
    customer = party.id or ""
    order = await bo.create_sales_order(SalesOrder(
        key=f"t:so:{tag}", customer_id=customer, order_reference=f"WEB-{tag}", order_date=when, currency="USD",
        lines=(OrderLine(sku="SKU", description="Thing", unit_price=usd(amount)),)))
    invoice = await bo.create_invoice(Invoice(key=f"t:in:{tag}", customer_id=customer, order=order,
                                              amount=usd(amount), invoice_date=when))
    receipt = await bo.apply_receipt(CashReceipt(
        key=f"t:pa:{tag}", customer_id=customer, amount=usd(pay or amount), received_at=when,
        kind=ReceiptKind.APPLIED, order=order, apply_to=invoice, gateway_ref=txn(f"70{tag}")))
    return customer, order, invoice, receipt


def credit(key: str, customer: str, *lines: tuple[str, str], apply_to: ExternalRef | None = None,
           order: ExternalRef | None = None, gateway_ref: ExternalRef | None = None) -> CreditMemo:
    return CreditMemo(key=key, customer_id=customer, memo_date=WHEN, description=key, apply_to=apply_to,
                      order=order, gateway_ref=gateway_ref,
                      lines=tuple(MemoLine(account=acct(a), amount=usd(m)) for a, m in lines))


def debit(key: str, customer: str, *lines: tuple[str, str], apply_credit: ExternalRef | None = None,
          order: ExternalRef | None = None, gateway_ref: ExternalRef | None = None) -> DebitMemo:
    return DebitMemo(key=key, customer_id=customer, memo_date=WHEN, description=key, apply_credit=apply_credit,
                     order=order, gateway_ref=gateway_ref,
                     lines=tuple(MemoLine(account=acct(a), amount=usd(m)) for a, m in lines))


def net_gl(state: SandboxState) -> dict[str, Decimal]:
    """Debits less credits per account over every GL line SL holds (zero accounts left out)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in state.store.all("SELECT Acct, DrAmt, CrAmt FROM GLTran"):
        totals[row["Acct"].strip()] += Decimal(repr(row["DrAmt"])) - Decimal(repr(row["CrAmt"]))
    return {a: v.quantize(Decimal("0.01")) for a, v in totals.items() if v}


def batches_balance(state: SandboxState) -> None:
    for batch in state.store.all("SELECT Module, BatNbr, Status, CrTot FROM Batch"):
        dr, cr, n = state.store.one("SELECT TOTAL(DrAmt), TOTAL(CrAmt), COUNT(*) FROM GLTran WHERE Module = ? AND "
                                    "BatNbr = ?", (batch["Module"], batch["BatNbr"]))  # type: ignore[misc]
        if batch["Status"] == "C":
            assert n == 0  # an application between AR documents posts nothing
        else:
            assert round(dr, 2) == round(cr, 2) == round(batch["CrTot"], 2), dict(batch)


async def test_card_refund_of_a_paid_invoice(back_office: DynamicsSLBackOffice, state: SandboxState) -> None:
    bo = back_office
    assert isinstance(bo, BackOffice)  # every seam method, including the money-movement ones
    customer, order, invoice, _ = await paid_order(bo, "r1")
    before = net_gl(state)
    cm = await bo.issue_credit_memo(credit("t:cm:r1", customer, ("4900", "40.00"), order=order))
    dm = await bo.issue_debit_memo(debit("t:dm:r1", customer, ("2350", "40.00"), apply_credit=cm, order=order,
                                         gateway_ref=txn("8000000001")))
    await bo.set_order_status(order, OrderStatus.PARTIALLY_REFUNDED, reason="40.00 refunded")
    after = net_gl(state)
    change = {a: after.get(a, Decimal(0)) - before.get(a, Decimal(0)) for a in set(after) | set(before)}
    assert {a: v for a, v in change.items() if v} == {"4900": Decimal("40.00"), "2350": Decimal("-40.00")}
    assert await bo.open_balance(cm) == await bo.open_balance(dm) == await bo.open_balance(invoice) == usd("0.00")
    batches_balance(state)
    posted = await bo.posted_payments(DAY, DAY + timedelta(days=1))
    assert {(p.kind, p.transaction_id, p.order_reference) for p in posted} == {
        (PostedKind.RECEIPT, "70r1", "WEB-r1"), (PostedKind.REFUND, "8000000001", "WEB-r1")}


async def test_void_before_settlement(back_office: DynamicsSLBackOffice, state: SandboxState) -> None:
    """reverse_receipt, then a credit memo writing the re-opened invoice off: card clearing nets to zero and the
    sale is written off."""
    bo = back_office
    customer, _, invoice, receipt = await paid_order(bo, "v1")
    ns = await bo.reverse_receipt(ReceiptReversal(key="t:void:v1", receipt=receipt, reversed_at=WHEN,
                                                  reason="capture voided", gateway_ref=txn("70v1void")))
    assert ns.id == f"NS:{receipt.id.split(':')[1]}"
    assert await bo.open_balance(invoice) == usd("100.00")
    await bo.issue_credit_memo(credit("t:cm:v1", customer, ("6900", "100.00"), apply_to=invoice))
    assert await bo.open_balance(invoice) == usd("0.00")
    assert net_gl(state) == {"4000": Decimal("-100.00"), "6900": Decimal("100.00")}
    batches_balance(state)
    assert await bo.posted_payments(DAY, DAY + timedelta(days=1)) == []
    assert await bo.find_document(DocumentKind.RECEIPT_REVERSAL, "t:void:v1") == ns


async def test_partial_capture_remainder_written_off(back_office: DynamicsSLBackOffice) -> None:
    bo = back_office
    customer, order, invoice, _ = await paid_order(bo, "p1", "100.00", pay="60.00")
    assert await bo.open_balance(invoice) == usd("40.00")
    with pytest.raises(Rejected) as refused:
        await bo.issue_credit_memo(credit("t:cm:p1:big", customer, ("6900", "40.01"), apply_to=invoice))
    assert refused.value.field == "Applications[0].CuryAdjgAmt" and "40.00" in str(refused.value)
    await bo.issue_credit_memo(credit("t:cm:p1", customer, ("6900", "40.00"), apply_to=invoice))
    await bo.set_order_status(order, OrderStatus.PAID)  # nothing is due on the order any more


@pytest.mark.parametrize("won", [True, False])
async def test_chargeback(back_office: DynamicsSLBackOffice, state: SandboxState, won: bool) -> None:
    bo = back_office
    customer, order, _, _ = await paid_order(bo, "c1", "60.00")
    before = net_gl(state)
    dm = await bo.issue_debit_memo(debit("t:cb:c1", customer, ("1060", "60.00"), ("1060", "15.00"), order=order,
                                         gateway_ref=ExternalRef(system="cybersource", kind="dispute", id="CB1")))
    await bo.set_order_status(order, OrderStatus.DISPUTED, reason="chargeback 4837")
    await bo.open_task(Task(key="t:task:cb1", subject="Chargeback CB1", body="Respond by 03/28", category="chargeback",
                            reference="WEB-c1", amount=usd("75.00"), due=WHEN + timedelta(days=14)))
    lines = (("1060", "60.00"), ("6560", "15.00")) if won else (("6550", "60.00"), ("6560", "15.00"))
    await bo.issue_credit_memo(credit("t:cb:c1:end", customer, *lines, apply_to=dm))
    if won:
        await bo.set_order_status(order, OrderStatus.PAID, reason="dispute won")
    after = net_gl(state)
    change = {a: after.get(a, Decimal(0)) - before.get(a, Decimal(0)) for a in set(after) | set(before)}
    expected = {"1060": Decimal("-15.00"), "6560": Decimal("15.00")} if won else {
        "1060": Decimal("-75.00"), "6550": Decimal("60.00"), "6560": Decimal("15.00")}
    assert {a: v for a, v in change.items() if v} == expected
    assert await bo.open_balance(dm) == usd("0.00")
    batches_balance(state)
    header = (await bo.client.get_sales_order(order.id))
    assert header.User8 == ("PAID" if won else "DISPUTED")
    assert all(p.kind is PostedKind.RECEIPT for p in await bo.posted_payments(DAY, DAY + timedelta(days=1)))


async def test_settlement_journal(back_office: DynamicsSLBackOffice, state: SandboxState) -> None:
    entry = JournalEntry(key="dynamics_sl:journal:settlement:B42", entry_date=date(2026, 3, 14),
                         description="Cybersource settlement batch B42 of 03/14/2026, 1,234 transactions",
                         refs=(ExternalRef(system="cybersource", kind="batch", id="B42"),),
                         metadata={"merchant": "testrest"}, postings=(
        Posting(account=acct("1050"), side=Side.CREDIT, amount=usd("1000.00"), memo="gross"),
        Posting(account=acct("2350"), side=Side.DEBIT, amount=usd("30.00"), memo="refunds"),
        Posting(account=acct("6500"), side=Side.DEBIT, amount=usd("29.30"), memo="fees"),
        Posting(account=acct("1060"), side=Side.DEBIT, amount=usd("75.00"), memo="chargebacks and fees"),
        Posting(account=GLAccount(account="1010", sub="100000"), side=Side.DEBIT, amount=usd("865.70"), memo="net")))
    ref = await back_office.post_journal(entry)
    assert ref.kind == "batch" and ref.id.startswith("GL:")
    batch = await back_office.client.get_gl_batch(ref.id.split(":")[1])
    assert (batch.Status, batch.PerPost, batch.CrTot) == ("P", "202603", Decimal("1000.00"))
    assert [(t.Acct, t.Sub, t.DrAmt, t.CrAmt) for t in batch.Lines][-1] == ("1010", "100000", Decimal("865.70"),
                                                                           Decimal("0.00"))
    note = state.store.one("SELECT sNoteText FROM Snote WHERE nID = (SELECT NoteId FROM Batch WHERE Module = 'GL')")
    assert note is not None and "ref cybersource:batch:B42" in note[0] and "merchant: testrest" in note[0]
    state.set_periods(gl="202604")
    with pytest.raises(Rejected) as closed:
        await back_office.post_journal(entry.model_copy(update={"key": "late"}))
    assert closed.value.provider_code == "ClosedPeriod" and closed.value.field == "PerPost"


async def test_crash_after_commit_then_retry_posts_once(back_office: DynamicsSLBackOffice,
                                                        state: SandboxState) -> None:
    bo = back_office
    customer, order, _, receipt = await paid_order(bo, "k1")
    cm = credit("t:cm:k1", customer, ("4900", "10.00"), order=order)
    calls = [
        ("/api/v1/ar/documents", lambda: bo.issue_credit_memo(cm)),
        ("/api/v1/ar/documents/PA", lambda: bo.reverse_receipt(ReceiptReversal(
            key="t:void:k1", receipt=receipt, reversed_at=WHEN, reason="void"))),
        ("/api/v1/gl/batches", lambda: bo.post_journal(JournalEntry(
            key="t:j:k1", entry_date=DAY, description="x", postings=(
                Posting(account=acct("6500"), side=Side.DEBIT, amount=usd("1.00")),
                Posting(account=acct("1050"), side=Side.CREDIT, amount=usd("1.00")))))),
        ("/api/v1/tasks", lambda: bo.open_task(Task(key="t:task:k1", subject="s", body="b", category="c"))),
    ]
    for path, call in calls:
        state.faults.add(FaultRule(method="POST", path=path, status=503, after_commit=True))
        before = state.counts()
        with pytest.raises(RetryableError):
            await call()
        committed = state.counts()
        assert committed != before  # SL did the work; the answer was lost
        first = await call()
        assert await call() == first
        assert state.counts() == committed  # the retries found the record instead of making another


async def test_refused_before_calling_sl(back_office: DynamicsSLBackOffice) -> None:
    bo = back_office
    sent = bo.client.requests_sent
    invoice = ExternalRef(system="dynamics_sl", kind="ardoc", id="IN:000001")
    with pytest.raises(InvalidInput, match=r"reversal\.receipt"):
        await bo.reverse_receipt(ReceiptReversal(key="x", receipt=invoice, reversed_at=WHEN, reason="r"))
    with pytest.raises(InvalidInput, match="request"):
        await bo.record_refund_result(invoice, RefundResult(outcome=RefundOutcome.DECLINED, message="m"))
    with pytest.raises(InvalidInput, match="document"):
        await bo.open_balance(ExternalRef(system="dynamics_sl", kind="salesorder", id="SO000001"))
    with pytest.raises(InvalidInput, match=r"entry\.postings"):
        await bo.post_journal(JournalEntry(key="fx", entry_date=DAY, description="two currencies", postings=(
            Posting(account=acct("1010"), side=Side.DEBIT, amount=usd("1.00")),
            Posting(account=acct("1050"), side=Side.CREDIT, amount=usd("1.00")),
            Posting(account=acct("1010"), side=Side.DEBIT, amount=Money.of("1.00", "EUR")),
            Posting(account=acct("1050"), side=Side.CREDIT, amount=Money.of("1.00", "EUR")))))
    with pytest.raises(InvalidInput, match=r"memo\.gateway_ref"):
        await bo.issue_debit_memo(debit("long", "C1", ("2350", "1.00"), gateway_ref=txn("9" * 31)))
    with pytest.raises(InvalidInput, match=r"memo\.apply_to"):
        await bo.issue_credit_memo(credit("bad", "C1", ("4900", "1.00"),
                                          apply_to=ExternalRef(system="cybersource", kind="transaction", id="1")))
    assert bo.client.requests_sent == sent
    with pytest.raises(NotFound):
        await bo.open_balance(invoice)


async def test_card_numbers_never_reach_sl(back_office: DynamicsSLBackOffice, state: SandboxState) -> None:
    bo = back_office
    ref = await bo.open_task(Task(key="t:pan", subject="Refund refused for 4111 1111 1111 1111",
                                  body="The gateway said: card 4111111111111111 is closed", category="refund"))
    task = await bo.client.send(Calls.get_task(ref.id))
    assert "4111" not in task.Subject and "4111" not in (task.Body or "")
    assert task.Body == "The gateway said: card [redacted card number] is closed"  # the step is not refused


async def test_refund_requests_through_the_connector(back_office: DynamicsSLBackOffice, state: SandboxState,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bo = back_office
    customer, order, _, _ = await paid_order(bo, "q1")
    monkeypatch.setattr(sl_back_office, "REFUND_REQUEST_PAGE", 2)
    for n in range(5):
        await bo.client.create_ar_document({
            "CustId": customer, "DocType": "CM", "CuryOrigDocAmt": f"{n + 1}.00", "User5": "CARDRFND",
            "OrdNbr": order.id, "DocDesc": f"Return {n}", "Lines": [{"Acct": "4900", "CuryTranAmt": f"{n + 1}.00"}]})
    requests = await bo.refund_requests()
    assert [r.amount for r in requests] == [usd(f"{n + 1}.00") for n in range(5)]
    first = requests[0]
    assert (first.order, first.order_reference, first.reason) == (order, "WEB-q1", "Return 0")
    assert first.requested_at == datetime(2026, 3, 14, 10, 30, tzinfo=UTC)
    results = [RefundResult(outcome=RefundOutcome.REFUNDED, message="ok", gateway_ref=txn(f"80{n}"))
               for n in range(5)]
    await asyncio.gather(*(bo.record_refund_result(r.ref, res) for r, res in zip(requests, results, strict=True)))
    assert await bo.refund_requests() == []


async def test_posted_payments_page_per_day(app: Starlette) -> None:
    bo = build_back_office(settings(posted_page_size=40), transport=httpx.ASGITransport(app=app))
    party = await bo.create_party(Party(name="Many", email="many@example.com"))
    receipts = [CashReceipt(key=f"t:pp:{n}", customer_id=party.id or "", amount=usd("1.00"),
                            received_at=WHEN + timedelta(days=n % 3), kind=ReceiptKind.PREPAYMENT,
                            gateway_ref=txn(f"7{n:05d}")) for n in range(300)]
    await asyncio.gather(*(bo.apply_receipt(r) for r in receipts))
    sent = bo.client.requests_sent
    posted = await bo.posted_payments(DAY, DAY + timedelta(days=3))
    assert sorted(p.transaction_id or "" for p in posted) == sorted(f"7{n:05d}" for n in range(300))
    assert {p.posted_on for p in posted} == {DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)}
    assert bo.client.requests_sent - sent == 3  # 3 days x 3 pages each, the days' pages sharing one $batch
    await bo.aclose()

