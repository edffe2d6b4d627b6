"""``DynamicsSLBackOffice``: the ``BackOffice`` seam over the SL API gateway.

Every call goes through a ``MicroBatcher`` over ``$batch`` (one for reads, one for writes), so hundreds
of concurrent flows cost a few HTTP requests while each caller still gets its own result or its own
typed error. Creates carry the document's business key in ``Idempotency-Key``; when SL already holds
a record with that key (or the same ``CustId``), the gateway answers 409 naming it and this class
returns that record's reference instead of failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from ledgerlink.connectors.dynamics_sl import movement as mv
from ledgerlink.connectors.dynamics_sl import posted
from ledgerlink.connectors.dynamics_sl import profiles as pf
from ledgerlink.connectors.dynamics_sl import recurring as rc
from ledgerlink.connectors.dynamics_sl import schemas as S
from ledgerlink.connectors.dynamics_sl import translate as tr
from ledgerlink.connectors.dynamics_sl.client import Calls, DynamicsSLClient, ExistingRecord, SLCall
from ledgerlink.connectors.dynamics_sl.settings import DynamicsSLSettings
from ledgerlink.connectors.dynamics_sl.userfields import PAID_AGAIN
from ledgerlink.connectors.kit.batching import MicroBatcher
from ledgerlink.connectors.kit.columns import PostedFrame
from ledgerlink.connectors.kit.errors import Conflict, NotFound, Rejected
from ledgerlink.model import (
    CashReceipt,
    CreditMemo,
    CustomerProfile,
    DebitMemo,
    DocumentKind,
    ExternalRef,
    FieldIssue,
    InvalidInput,
    Invoice,
    JournalEntry,
    Money,
    OrderStatus,
    Party,
    PostedPayment,
    ReceiptReversal,
    RefundRequest,
    RefundResult,
    RenewalInvoice,
    SalesOrder,
    StoredInstrument,
    Subscription,
    SubscriptionStatus,
    Task,
)

TABLE_FOR_KIND = {DocumentKind.PARTY: "Customer", DocumentKind.SALES_ORDER: "SOHeader",
                  DocumentKind.INVOICE: "ARDoc", DocumentKind.RECEIPT: "ARDoc", DocumentKind.CREDIT_MEMO: "ARDoc",
                  DocumentKind.DEBIT_MEMO: "ARDoc", DocumentKind.RECEIPT_REVERSAL: "ARDoc",
                  DocumentKind.JOURNAL: "Batch", DocumentKind.TASK: "xLLTask"}
REFUND_REQUEST_PAGE = 500


class DynamicsSLBackOffice:
    name = "dynamics_sl"

    def __init__(self, client: DynamicsSLClient, settings: DynamicsSLSettings) -> None:
        self.client = client
        self.settings = settings
        knobs = {"max_batch": settings.max_batch, "max_delay": settings.max_delay_seconds,
                 "max_in_flight": settings.max_in_flight}
        self._reads: MicroBatcher[SLCall, Any] = MicroBatcher(client.send_batch, **knobs)
        self._writes: MicroBatcher[SLCall, Any] = MicroBatcher(client.send_batch, **knobs)

    async def _call(self, call: SLCall) -> Any:
        return await (self._reads if call.method == "GET" else self._writes).submit(call)

    async def _maybe(self, call: SLCall) -> Any | None:
        try:
            return await self._call(call)
        except NotFound:
            return None

    async def _create(self, call: SLCall, table: str) -> tuple[Any | None, str | None]:
        """(created record, None), or (None, id of the record that already holds the key)."""
        try:
            return await self._call(call), None
        except Conflict as conflict:
            if not isinstance(conflict, ExistingRecord) or conflict.existing is None or conflict.table != table:
                raise
            return None, conflict.existing

    # ---- parties ----------------------------------------------------------------------------------------

    async def find_party(self, party: Party, match_on: Sequence[str]) -> Party | None:
        for rule in match_on:
            found = await self._find_party_by(party, rule)
            if found is not None:
                return found
        return None

    async def _find_party_by(self, party: Party, rule: str) -> Party | None:
        if rule == "email":
            if not party.email:
                return None
            rows = await self._call(Calls.list_customers(EMailAddr=party.email, **{"$top": 1}))
            return tr.party_from_customer(rows[0], party.refs) if rows else None
        if rule == "external_id":
            for ref in party.refs:
                if ref.system == tr.SYSTEM:
                    continue
                holder = await self._maybe(Calls.find_key(ref.key))
                if holder is not None and holder.Table == "Customer":
                    customer = await self._maybe(Calls.get_customer(holder.Id))
                    if customer is not None:
                        return tr.party_from_customer(customer, party.refs)
            return None
        if rule == "id":
            cust_id = party.id or (party.ref(tr.SYSTEM).id if party.ref(tr.SYSTEM) else None)
            if not cust_id:
                return None
            customer = await self._maybe(Calls.get_customer(cust_id))
            return None if customer is None else tr.party_from_customer(customer, party.refs)
        raise InvalidInput(FieldIssue("match_on", f"unknown rule {rule!r} (email, external_id, id)"),
                           source="dynamics_sl")

    async def create_party(self, party: Party) -> Party:
        body = tr.customer_body(party, self.settings)
        call = Calls.create_customer(body, tr.external_key(party)).lean()
        created, existing = await self._create(call, "Customer")
        if created is not None:  # what we sent is what SL stored, plus the defaults we do not read back
            return tr.party_from_customer(S.Customer.model_validate({**body, **created.model_dump()}), party.refs)
        customer = await self._call(Calls.get_customer(existing or body["CustId"]))
        return tr.party_from_customer(customer, party.refs)

    # ---- documents ------------------------------------------------------------------------------------------

    async def find_document(self, kind: DocumentKind, key: str) -> ExternalRef | None:
        holder: S.KeyHolder | None = await self._maybe(Calls.find_key(key))
        if holder is None:
            return None
        if holder.Table != TABLE_FOR_KIND[kind]:
            raise Conflict(f"key {key!r} belongs to {holder.Table} {holder.Id}, not to a {kind.value}",
                           system=tr.SYSTEM, operation="find_document", existing=holder.Id)
        return tr.ref_for_key_holder(holder)

    async def create_sales_order(self, order: SalesOrder) -> ExternalRef:
        body = tr.sales_order_body(order, self.settings)
        created, existing = await self._create(Calls.create_sales_order(body, order.key).lean(), "SOHeader")
        return tr.order_ref(created.OrdNbr if created is not None else existing)

    async def set_order_status(self, order: ExternalRef, status: OrderStatus, *, reason: str | None = None) -> None:
        ord_nbr = tr.ord_nbr_of(order)
        if status is OrderStatus.ON_HOLD:
            await self._call(Calls.hold_sales_order(ord_nbr, reason))
        elif status is OrderStatus.OPEN:
            await self._call(Calls.release_sales_order(ord_nbr))
        elif status is OrderStatus.CANCELLED:
            await self._call(Calls.cancel_sales_order(ord_nbr, reason))
        elif (code := mv.payment_status_code(status)) is not None:  # after invoicing: SOHeader.User8 and a note
            await self._call(Calls.set_payment_status(ord_nbr, code, mv.clean(reason) or None))
        else:  # PAID is what applying receipts does; here it is only checked
            header: S.SOHeader = await self._call(Calls.get_sales_order(ord_nbr))
            if header.BalDue != 0 or header.Cancelled:
                raise Rejected(f"dynamics_sl: sales order {ord_nbr} is not paid (BalDue {header.BalDue}, "
                               f"TotPmt {header.TotPmt}); apply the receipt first", system=tr.SYSTEM,
                               operation="set_order_status", field="SOHeader.BalDue")
            if header.User8 and header.User8 != PAID_AGAIN:  # e.g. a dispute won: the flag says paid again
                await self._call(Calls.set_payment_status(ord_nbr, PAID_AGAIN, mv.clean(reason) or None))

    async def create_invoice(self, invoice: Invoice) -> ExternalRef:
        ord_nbr, body = tr.invoice_body(invoice, self.settings)
        created, existing = await self._create(Calls.invoice_sales_order(ord_nbr, body, invoice.key).lean(), "ARDoc")
        return tr.ref_for_document(created) if created is not None else _ardoc_ref(existing)

    async def apply_receipt(self, receipt: CashReceipt) -> ExternalRef:
        body = tr.receipt_body(receipt, self.settings)
        created, existing = await self._create(Calls.create_ar_document(body, receipt.key).lean(), "ARDoc")
        return tr.ref_for_document(created) if created is not None else _ardoc_ref(existing)

    # ---- money movement ---------------------------------------------------------------------------------

    async def reverse_receipt(self, reversal: ReceiptReversal) -> ExternalRef:
        """An ``NS`` (SL's NSF reversal, 08.240) that takes the payment back: its applications are backed out,
        the invoices it paid are open again, the GL is reversed (Dr AR / Cr cash)."""
        doc_type, ref_nbr, body = mv.reversal_call(reversal, self.settings)
        call = Calls.reverse_payment(doc_type, ref_nbr, body, reversal.key).lean()
        created, existing = await self._create(call, "ARDoc")
        return tr.ref_for_document(created) if created is not None else _ardoc_ref(existing)

    async def issue_credit_memo(self, memo: CreditMemo) -> ExternalRef:
        """A released ``CM`` (Dr lines / Cr AR), applied to ``apply_to`` when given; SL refuses one larger
        than that document's open balance (``ApplicationExceedsBalance`` on ``Applications[0].CuryAdjgAmt``)."""
        body = mv.credit_memo_body(memo, self.settings)
        created, existing = await self._create(Calls.create_ar_document(body, memo.key).lean(), "ARDoc")
        return tr.ref_for_document(created) if created is not None else _ardoc_ref(existing)

    async def issue_debit_memo(self, memo: DebitMemo) -> ExternalRef:
        """A released ``DM`` (Dr AR / Cr lines); ``apply_credit`` pays it at once in the same request."""
        body = mv.debit_memo_body(memo, self.settings)
        created, existing = await self._create(Calls.create_ar_document(body, memo.key).lean(), "ARDoc")
        return tr.ref_for_document(created) if created is not None else _ardoc_ref(existing)

    async def open_balance(self, document: ExternalRef) -> Money:
        """``CuryDocBal``: what is still open on an invoice or debit memo (the unapplied rest of a credit)."""
        doc_type, ref_nbr = tr.ardoc_of(document, "document")
        rows: list[S.ARDoc] = await self._call(Calls.list_ar_documents(DocType=doc_type, RefNbr=ref_nbr,
                                                                       **{"$top": 1}))
        if not rows:
            raise NotFound(f"dynamics_sl: ARDoc {doc_type} {ref_nbr} does not exist", system=tr.SYSTEM,
                           operation="open_balance", field="ARDoc.RefNbr")
        return Money.of(rows[0].CuryDocBal, rows[0].CuryId)

    async def post_journal(self, entry: JournalEntry) -> ExternalRef:
        """A GL batch (01.010) released and posted (``P``) in one request, so no crash can leave it unposted."""
        body = mv.journal_body(entry, self.settings)
        created, existing = await self._create(Calls.create_gl_batch(body, entry.key).lean(), "Batch")
        if created is not None:
            return tr.batch_ref(created.Module, created.BatNbr)
        module, _, bat_nbr = (existing or "").partition(":")
        batch: S.Batch = await self._call(Calls.get_gl_batch(bat_nbr, module))
        if batch.Status == "U":  # released by someone else under this key, never posted: finish the job
            await self._call(Calls.post_gl_batch(bat_nbr, module))
        return tr.batch_ref(module, bat_nbr)

    async def open_task(self, task: Task) -> ExternalRef:
        """Create the finance to-do, or update the one with the same key (still one ``xLLTask`` row)."""
        row: S.Task = await self._call(Calls.upsert_task(mv.task_body(task, self.settings), task.key))
        return tr.task_ref(row.TaskNbr)

    async def refund_requests(self) -> list[RefundRequest]:
        """Credit memos flagged "refund to card" (``User5 = CARDRFND``) that have no outcome yet."""
        requests: list[RefundRequest] = []
        after: str | None = None
        while True:
            page: S.Page = await self._call(Calls.refund_requests(after, REFUND_REQUEST_PAGE))
            requests.extend(mv.refund_request(row, self.settings) for row in page.value)
            if not page.NextAfter:
                return requests
            after = page.NextAfter

    async def record_refund_result(self, request: ExternalRef, result: RefundResult) -> None:
        """The outcome onto the credit memo (``User6``, ``User1``, ``User3``, ``User8`` and a note line): it leaves
        the pending list. Recording the same outcome again is harmless; a different one is refused."""
        ref_nbr = mv.refund_request_nbr(request)
        await self._call(Calls.record_refund_result(ref_nbr, mv.refund_result_body(result)))

    async def posted_payments(self, start: date, end: date) -> list[PostedPayment]:
        """Receipts (``PA``/``PP`` with a gateway id, not reversed) and card refunds paid out (``DM`` flagged
        ``RFNDPAYOUT``) with ``DocDate`` in [start, end). One keyset-paged stream per day, all running at
        once, so a month's first pages share one ``$batch``."""
        if end <= start:
            return []
        reader = mv.PostedReader(self.settings)
        days = [start + timedelta(days=n) for n in range((end - start).days)]
        chunks = await asyncio.gather(*(self._posted_day(day, reader) for day in days))
        return [payment for chunk in chunks for payment in chunk]

    async def _posted_day(self, day: date, reader: mv.PostedReader) -> list[PostedPayment]:
        """One day's pages; the next page is asked for before this one is read, so with a real server the
        gateway's work on page N+1 overlaps ours on page N."""
        start, end = mv.sl_day(day, self.settings), mv.sl_day(day + timedelta(days=1), self.settings)
        size = self.settings.posted_page_size
        found: list[PostedPayment] = []
        page: S.Page = await self._call(Calls.posted_payments(start, end, None, size))
        while True:
            following = (asyncio.ensure_future(self._call(Calls.posted_payments(start, end, page.NextAfter, size)))
                         if page.NextAfter else None)
            try:
                found.extend(reader(row) for row in page.value)
            except BaseException:
                if following is not None:
                    following.cancel()
                raise
            if following is None:
                return found
            page = await following

    async def posted_frame(self, start: date, end: date) -> PostedFrame:
        """``posted_payments`` as columns: the same query, its pages asked for in their bulk (CSV) form and read
        straight into columns (``posted.Pages``); one stream per day, all at once, each asking for its next
        page before reading the current one."""
        if end <= start:
            return PostedFrame.empty()
        days = [start + timedelta(days=n) for n in range((end - start).days)]
        chunks = await asyncio.gather(*(self._posted_day_frames(day) for day in days))
        frames = [frame for chunk in chunks for frame in chunk]
        return PostedFrame(pl.concat(frames)) if frames else PostedFrame.empty()

    async def _posted_day_frames(self, day: date) -> list[pl.DataFrame]:
        start, end = mv.sl_day(day, self.settings), mv.sl_day(day + timedelta(days=1), self.settings)
        size = self.settings.posted_csv_page_size
        pages = posted.Pages(self.settings)
        columns = posted.COLUMNS
        data, after = await self.client.posted_payments_csv(start, end, None, size, columns)
        while True:
            following = (asyncio.ensure_future(self.client.posted_payments_csv(start, end, after, size, columns))
                         if after else None)
            try:
                await asyncio.to_thread(pages.add, data)  # polars, off the event loop (it lets go of the GIL)
            except BaseException:
                if following is not None:
                    following.cancel()
                raise
            if following is None:
                await asyncio.to_thread(pages.flush)
                return pages.frames
            data, after = await following

    # ---- subscriptions (recurring documents) and the AR hold ------------------------------------------------

    async def recurring_invoices(self) -> list[Subscription]:
        """Every ``RC`` template as a subscription (active or not; the flow decides what is due). A template
        that cannot be read as one raises ``InvalidInput`` naming its SL field: nothing is skipped quietly."""
        found: list[Subscription] = []
        skip = 0
        while True:
            rows: list[dict[str, Any]] = await self._call(rc.Calls.list_templates(skip))
            found.extend(rc.subscription_from_template(row, self.settings) for row in rows)
            if len(rows) < rc.PAGE:
                return found
            skip += len(rows)

    async def create_renewal_invoice(self, invoice: RenewalInvoice) -> ExternalRef:
        """The period's ``IN``: generated from the ``RC`` template (08.500, which moves the template on a cycle)
        or entered plainly; a retry with the same key returns the invoice already made."""
        created, existing = await self._create(rc.renewal_call(invoice, self.settings), "ARDoc")
        return tr.ref_for_document(created) if created is not None else _ardoc_ref(existing)

    async def set_subscription_status(self, subscription: ExternalRef, status: SubscriptionStatus, *,
                                      reason: str) -> None:
        """``User5`` of the ``RC`` template (``SUSPENDED``/``CANCELLED``/blank) and a line on its note."""
        ref_nbr = rc.template_nbr(subscription, "subscription")
        await self._call(rc.Calls.set_status(ref_nbr, rc.status_code(status), mv.clean(reason)))

    async def set_ar_hold(self, customer_id: str, *, reason: str) -> None:
        """``Customer.Status`` H (SL takes payments and credits, no new invoices), with the reason on its note."""
        await self._call(rc.Calls.hold(customer_id, mv.clean(reason)))

    async def clear_ar_hold(self, customer_id: str, *, reason: str) -> None:
        await self._call(rc.Calls.release(customer_id, mv.clean(reason)))

    # ---- customer payment profiles (profiles.py) -----------------------------------------------------------

    async def customer_profile(self, customer_id: str) -> CustomerProfile:
        """The customer (name, e-mail, phone, billing address, ``LUpd_DateTime``) and its ``xLLCustToken`` rows."""
        row, tokens = await asyncio.gather(self._call(pf.ProfileCalls.get_customer(customer_id)),
                                           self._call(pf.ProfileCalls.payment_profile(customer_id)))
        return pf.read_profile(row, tokens.get("Tokens") or [], self.settings)

    async def changed_customers(self, since: datetime | None, *, after: str | None = None,
                                limit: int = 500) -> list[CustomerProfile]:
        """Customers by ``LUpd_DateTime`` (to the minute, SL's time) then ``CustId``, with their tokens."""
        rows = await self._call(pf.ProfileCalls.changes(pf.since_text(since, self.settings), after, limit))
        return [pf.read_profile(row, row.get("Tokens") or [], self.settings) for row in rows]

    async def find_customer_by_profile(self, gateway: str, customer_token: str) -> str | None:
        rows = await self._call(pf.ProfileCalls.tokens(gateway, customer_token))
        return str(rows[0]["CustId"]).strip() if rows else None

    async def update_customer_profile(self, customer_id: str, party: Party, fields: Collection[str]) -> None:
        """PATCH the profile fields onto ``Customer`` (screen 08.260's columns)."""
        row = await self._call(pf.ProfileCalls.get_customer(customer_id))
        body = pf.customer_patch(row, party, fields)
        if body:
            await self._call(pf.ProfileCalls.update_customer(customer_id, body))

    async def set_payment_profile(self, customer_id: str, gateway: str, customer_token: str,
                                  instruments: Sequence[StoredInstrument]) -> None:
        """The customer's ``xLLCustToken`` rows for ``gateway`` replaced in one request (one transaction)."""
        body = pf.payment_profile_body(gateway, customer_token, instruments, self.settings)
        await self._call(pf.ProfileCalls.set_payment_profile(customer_id, body))

    async def aclose(self) -> None:
        await self.client.aclose()


def _ardoc_ref(existing: str | None) -> ExternalRef:
    doc_type, _, ref_nbr = (existing or "").partition(":")
    return tr.ardoc_ref(doc_type, ref_nbr)
