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

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from ledgerlink.connectors.kit.columns import PostedFrame, SettlementFrame
from ledgerlink.model import (
    AuthorizationRequest,
    CashReceipt,
    CreditMemo,
    CustomerProfile,
    DebitMemo,
    Dispute,
    DocumentKind,
    ExternalRef,
    Invoice,
    JournalEntry,
    Money,
    Notification,
    OrderStatus,
    Party,
    Payment,
    PaymentEvent,
    PostedPayment,
    ReceiptReversal,
    RefundRequest,
    RefundResult,
    RenewalInvoice,
    ReviewDecision,
    ReviewVerdict,
    SalesOrder,
    Settlement,
    StoredInstrument,
    Subscription,
    SubscriptionStatus,
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

    async def find_payment(self, reference: str) -> Payment | None:
        """The authorisation or sale made with our ``reference`` (``AuthorizationRequest.reference``), if the
        gateway has one: what a renewal charge looks up after a crash before charging again."""
        ...

    async def transaction_events(self, start: datetime, end: datetime) -> list[PaymentEvent]:
        """The events the gateway's notifications carry for the transactions it recorded in [start, end),
        oldest first: each with the ``event_id`` and ``partition_key`` its webhook has and no ``payment``
        (the flow fetches it). What the gap sweep compares with the inbox to find notifications that never
        came; one delivered after the sweep posted it is then an inbox duplicate."""
        ...

    async def payment_instrument(self, token_id: str) -> StoredInstrument | None:
        """The stored card behind a token as the gateway holds it now (state, brand, last four, expiry);
        None when the gateway does not know the token."""
        ...

    async def settlement(self, day: date) -> Settlement:
        """What the gateway settled for ``day``: batches, lines, fees, chargebacks, deposits.

        A report that cannot be read raises ``InvalidInput`` naming the report, line and column."""
        ...

    async def settlement_frame(self, day: date) -> SettlementFrame:
        """``settlement`` with the lines as columns (``kit.columns``): what reconciliation reads, since a large
        day is millions of lines. Same rules, same ``InvalidInput`` for a report that cannot be read."""
        ...

    async def disputes(self, start: datetime, end: datetime) -> list[Dispute]:
        """Chargebacks opened, won or lost in [start, end)."""
        ...

    async def decide_review(self, payment_id: str, decision: ReviewDecision, *, comments: str | None = None,
                            reviewer: str | None = None) -> ReviewVerdict:
        """Close the fraud screen's review of an authorisation held for review with a reviewer's decision,
        and have the gateway move the money with it: accept captures the authorisation, reject reverses it.
        The verdict names that capture or reversal (``follow_on_id``; None when the gateway made none)."""
        ...

    async def review_outcome(self, payment_id: str) -> ReviewVerdict | None:
        """How the review of ``payment_id`` was decided, here or in the gateway's own case management, with
        the capture or reversal made for it if any; None while it is still in review. What a decision step
        looks up after a crash before deciding (or capturing, or reversing) again."""
        ...

    def profile_id_for(self, reference: str) -> str:
        """The gateway customer id ``create_customer_profile(reference=...)`` gives a customer: the same every
        time, so the partition of its events is known before it exists and a create cut off by a crash is
        found again (``customer_profile``) instead of repeated."""
        ...

    async def customer_profile(self, customer_id: str) -> CustomerProfile:
        """The gateway customer with its stored cards; ``NotFound`` when unknown or deleted."""
        ...

    async def create_customer_profile(self, party: Party, *, reference: str,
                                      merchant_customer_id: str | None = None) -> CustomerProfile:
        """Create the customer ``profile_id_for(reference)``; one that exists already is returned as it is."""
        ...

    async def update_customer_profile(self, customer_id: str, party: Party, fields: Collection[str], *,
                                      merchant_customer_id: str | None = None) -> None:
        """Write the named profile fields (``PROFILE_FIELDS``) of ``party``; only fields the profile ``held``."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class NotificationChannel(Protocol):
    """Where customer notices go out (e-mail over SMTP): ``send`` delivers one or raises a ``ConnectorError``
    (``RetryableError`` for a failure worth trying again)."""

    name: str

    async def send(self, notification: Notification) -> None: ...

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

    async def posted_frame(self, start: date, end: date) -> PostedFrame:
        """``posted_payments`` as columns (``kit.columns``): what reconciliation reads, a million a day."""
        ...

    async def recurring_invoices(self) -> list[Subscription]:
        """Subscriptions the back office defines (its recurring invoices), active or not."""
        ...

    async def create_renewal_invoice(self, invoice: RenewalInvoice) -> ExternalRef:
        """The invoice for one period: generated from ``invoice.template`` when there is one (which moves the
        template to its next period), else a plain invoice. Idempotent by ``invoice.key``."""
        ...

    async def set_subscription_status(self, subscription: ExternalRef, status: SubscriptionStatus, *,
                                      reason: str) -> None:
        """Suspend, cancel or resume a subscription the back office defines."""
        ...

    async def set_ar_hold(self, customer_id: str, *, reason: str) -> None:
        """Put the customer on AR (credit) hold: no new charges, payments still accepted. Idempotent."""
        ...

    async def clear_ar_hold(self, customer_id: str, *, reason: str) -> None:
        """Take the customer off AR hold (a customer not on hold is left as it is)."""
        ...

    async def customer_profile(self, customer_id: str) -> CustomerProfile:
        """The customer's profile fields, its links to gateway customers and the stored cards it refers to;
        ``NotFound`` when there is no such customer."""
        ...

    async def changed_customers(self, since: datetime | None, *, after: str | None = None,
                                limit: int = 500) -> list[CustomerProfile]:
        """Customers created or changed at or after ``since`` (all with None), oldest change first, then by id;
        with ``after`` (a customer id) only those after (``since``, ``after``): one keyset page."""
        ...

    async def find_customer_by_profile(self, gateway: str, customer_token: str) -> str | None:
        """The customer linked to the gateway customer ``customer_token``, if any."""
        ...

    async def update_customer_profile(self, customer_id: str, party: Party, fields: Collection[str]) -> None:
        """Write the named profile fields (``PROFILE_FIELDS``) of ``party`` onto the customer."""
        ...

    async def set_payment_profile(self, customer_id: str, gateway: str, customer_token: str,
                                  instruments: Sequence[StoredInstrument]) -> None:
        """Link the customer to ``customer_token`` and make its payment-method reference exactly
        ``instruments`` (tokens, brand, last four, expiry, state, default), all at once. Idempotent; refused
        when the token is linked to another customer."""
        ...

    async def aclose(self) -> None: ...
