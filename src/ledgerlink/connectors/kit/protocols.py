"""The two seams flows speak: ``PaymentGateway`` and ``BackOffice``.

A flow receives one of each and never imports a specific connector. Each
connector folder provides an implementation that translates between these
canonical calls and its system's wire format.

Idempotency contract for every ``create_*``/``apply_*`` call: the document's
``key`` is stored on the created record (an external-reference field). Calling
again with the same key must not create a second record: an implementation
returns the existing record's reference (detected by the system's uniqueness
rule or by looking the key up first). ``find_document`` finds a record by key,
and is what the runtime calls before re-running a step that a crash may have
interrupted after the system committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from ledgerlink.model import (
    AuthorizationRequest,
    CashReceipt,
    CreditMemo,
    DebitMemo,
    Dispute,
    DocumentKind,
    ExternalRef,
    Invoice,
    JournalEntry,
    Money,
    OrderStatus,
    Party,
    Payment,
    PaymentEvent,
    PostedPayment,
    ReceiptReversal,
    RefundRequest,
    RefundResult,
    SalesOrder,
    Settlement,
    Task,
)


@runtime_checkable
class WebhookSource(Protocol):
    """A system that pushes signed events to us."""

    name: str

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
        """Raise ``WebhookRejected`` unless the raw ``body`` is authentic, fresh and not a replay.

        ``headers`` keys are lower-case. Must be cheap: it runs on the intake hot path.
        """
        ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        """Turn a verified body into a canonical event; ``InvalidInput`` (naming the field) if malformed.

        An event type this connector does not handle parses to ``EventType.UNKNOWN`` rather than failing.
        """
        ...


@runtime_checkable
class PaymentGateway(WebhookSource, Protocol):
    async def get_payment(self, payment_id: str) -> Payment: ...

    async def authorize(self, request: AuthorizationRequest) -> Payment:
        """Authorise (``request.capture``: and capture) against a token. A decline is a result, not an error."""
        ...

    async def capture(self, payment_id: str, amount: Money, *, order_reference: str | None = None) -> Payment: ...

    async def void(self, payment_id: str, *, order_reference: str | None = None) -> Payment: ...

    async def reverse(
        self, payment_id: str, amount: Money, *, reason: str | None = None, order_reference: str | None = None
    ) -> Payment: ...

    async def refund(
        self, payment_id: str, amount: Money, *, reference: str, order_reference: str | None = None
    ) -> Payment:
        """Refund a captured payment (a sale or a capture id). ``reference`` is our idempotency key: the
        gateway keeps it on the refund so ``find_refund`` can answer after a crash. A decline is a result."""
        ...

    async def find_refund(self, reference: str) -> Payment | None:
        """The refund made with our ``reference``, if the gateway has one."""
        ...

    async def settlement(self, day: date) -> Settlement:
        """What the gateway settled for ``day``: batches, lines, fees, chargebacks, deposits.

        A report that cannot be read raises ``InvalidInput`` naming the report, line and column."""
        ...

    async def disputes(self, start: datetime, end: datetime) -> list[Dispute]:
        """Chargebacks opened, won or lost in [start, end)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BackOffice(Protocol):
    name: str

    async def find_party(self, party: Party, match_on: Sequence[str]) -> Party | None:
        """The existing party matching ``party`` on the first of ``match_on`` that finds one
        (``email``, ``external_id``, ``id``), or None."""
        ...

    async def create_party(self, party: Party) -> Party:
        """Create the party and return it with its back-office ``id``; idempotent for the same party."""
        ...

    async def find_document(self, kind: DocumentKind, key: str) -> ExternalRef | None: ...

    async def create_sales_order(self, order: SalesOrder) -> ExternalRef: ...

    async def set_order_status(
        self, order: ExternalRef, status: OrderStatus, *, reason: str | None = None
    ) -> None: ...

    async def create_invoice(self, invoice: Invoice) -> ExternalRef: ...

    async def apply_receipt(self, receipt: CashReceipt) -> ExternalRef: ...

    async def reverse_receipt(self, reversal: ReceiptReversal) -> ExternalRef:
        """Take back a posted receipt (the invoice it paid is open again)."""
        ...

    async def issue_credit_memo(self, memo: CreditMemo) -> ExternalRef: ...

    async def issue_debit_memo(self, memo: DebitMemo) -> ExternalRef: ...

    async def open_balance(self, document: ExternalRef) -> Money:
        """What is still open on an invoice or debit memo."""
        ...

    async def post_journal(self, entry: JournalEntry) -> ExternalRef:
        """Post a balanced journal entry to the general ledger (released and posted)."""
        ...

    async def open_task(self, task: Task) -> ExternalRef:
        """Create the task, or update the one with the same key."""
        ...

    async def refund_requests(self) -> list[RefundRequest]:
        """Refunds the back office asks the gateway to make and that have no result yet."""
        ...

    async def record_refund_result(self, request: ExternalRef, result: RefundResult) -> None: ...

    async def posted_payments(self, start: date, end: date) -> list[PostedPayment]:
        """Receipts and refunds posted in [start, end) that came from a gateway (for reconciliation)."""
        ...

    async def aclose(self) -> None: ...
