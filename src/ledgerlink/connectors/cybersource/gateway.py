"""``CybersourceGateway``: the ``PaymentGateway`` seam spoken in Cybersource terms.

Flows call canonical operations; this class picks the endpoint, builds the
wire body (``translate``), and reads the answer back into a canonical
``Payment``. A response the translation cannot read is a ``PermanentError``
naming the field: retrying would only read the same thing again. Reports are
different: a settlement or chargeback report that cannot be read is an
``InvalidInput`` naming the report, line and column (or field), because the
report is the input a reconciliation is about and someone has to look at it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ledgerlink.connectors.cybersource import schemas as wire
from ledgerlink.connectors.cybersource.batch_detail import REPORT, read_batch_detail_columns
from ledgerlink.connectors.cybersource.client import SYSTEM, CybersourceClient
from ledgerlink.connectors.cybersource.decision_manager import case_action, read_action_response
from ledgerlink.connectors.cybersource.disputes import DisputeActions, to_disputes
from ledgerlink.connectors.cybersource.instruments import read_instrument
from ledgerlink.connectors.cybersource.profiles import (
    CARD_FIELDS,
    bill_to_patch,
    buyer_patch,
    customer_body,
    customer_token_for,
    read_profile,
)
from ledgerlink.connectors.cybersource.settlement import (
    CHARGEBACK_FEE_SUBTYPE,
    build_settlement_frame,
    read_net_fundings,
)
from ledgerlink.connectors.cybersource.transactions import summary_event, window_query
from ledgerlink.connectors.cybersource.translate import (
    StatusTable,
    amount_details,
    payment_request,
    to_payment,
)
from ledgerlink.connectors.cybersource.webhooks import SignatureVariant, WebhookVerifier, parse_notification
from ledgerlink.connectors.kit.columns import SettlementFrame
from ledgerlink.connectors.kit.errors import Conflict, NotFound, PermanentError, Rejected
from ledgerlink.model import (
    PROFILE_FIELDS,
    AuthorizationRequest,
    CustomerProfile,
    Dispute,
    FieldIssue,
    InvalidInput,
    Money,
    Party,
    Payment,
    PaymentEvent,
    PaymentKind,
    ReviewDecision,
    ReviewVerdict,
    Settlement,
    StoredInstrument,
)


def _base64(value: str, name: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError(f"{name} must be base64 text, as Cybersource issues it") from None
    return value


class CybersourceSettings(BaseModel):
    """Everything an integration file says about one Cybersource merchant account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "https://apitest.cybersource.com"
    host: str = "apitest.cybersource.com"  # the signed Host; differs from base_url when pointing at a sandbox
    merchant_id: str
    key_id: str
    shared_secret: SecretStr
    portfolio_id: str | None = None  # meta-key mode
    organization_id: str | None = None  # webhook organisation; defaults to the merchant id
    webhook_keys: dict[str, SecretStr] = Field(default_factory=dict)  # KMS keyId → base64 key (rotation)
    webhook_key_id: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_tolerance_seconds: float = Field(default=300.0, gt=0)
    webhook_signature_variant: SignatureVariant = SignatureVariant.EITHER
    status_map: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=30.0, gt=0)
    report_name: str = REPORT  # the name of the Payment Batch Detail report subscription
    chargeback_fee_subtype: str = CHARGEBACK_FEE_SUBTYPE  # net-funding FEES paymentSubType of chargeback fees
    dispute_actions: dict[str, str] = Field(default_factory=dict)  # chargeback action → opened|won|lost|ignore

    @field_validator("shared_secret")
    @classmethod
    def _secret_is_base64(cls, value: SecretStr) -> SecretStr:
        _base64(value.get_secret_value(), "shared_secret")
        return value

    @field_validator("status_map")
    @classmethod
    def _statuses_are_canonical(cls, value: dict[str, str]) -> dict[str, str]:
        StatusTable(value)
        return value

    @field_validator("dispute_actions")
    @classmethod
    def _stages_are_canonical(cls, value: dict[str, str]) -> dict[str, str]:
        DisputeActions(value)
        return value

    @model_validator(mode="after")
    def _webhook_keys_complete(self) -> CybersourceSettings:
        if (self.webhook_key_id is None) != (self.webhook_secret is None):
            raise ValueError("webhook_key_id and webhook_secret go together")
        for key_id, secret in self.all_webhook_keys().items():
            _base64(secret, f"webhook key {key_id!r}")
        return self

    def all_webhook_keys(self) -> dict[str, str]:
        keys = {k: v.get_secret_value() for k, v in self.webhook_keys.items()}
        if self.webhook_key_id is not None and self.webhook_secret is not None:
            keys[self.webhook_key_id] = self.webhook_secret.get_secret_value()
        return keys


class CybersourceGateway:
    """Cybersource as a ``PaymentGateway``: webhooks in, payments out, one signed HTTP client."""

    name = SYSTEM

    def __init__(
        self,
        settings: CybersourceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: CybersourceClient | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or CybersourceClient(
            base_url=settings.base_url,
            host=settings.host,
            merchant_id=settings.merchant_id,
            key_id=settings.key_id,
            shared_secret=settings.shared_secret.get_secret_value(),
            portfolio_id=settings.portfolio_id,
            organization_id=settings.organization_id,
            transport=transport,
            timeout_seconds=settings.timeout_seconds,
        )
        self._statuses = StatusTable(settings.status_map)
        self._dispute_actions = DisputeActions(settings.dispute_actions)
        self._verifier = WebhookVerifier(
            settings.all_webhook_keys(),
            tolerance_seconds=settings.webhook_tolerance_seconds,
            variant=settings.webhook_signature_variant,
        )

    # --- webhooks --------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
        self._verifier.verify(headers, body, now=now)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        return parse_notification(body, statuses=self._statuses)

    # --- payments --------------------------------------------------------------------------

    async def get_payment(self, payment_id: str) -> Payment:
        details = await self.client.get_transaction(payment_id)
        return self._read(details, "get_payment")

    async def authorize(self, request: AuthorizationRequest) -> Payment:
        response = await self.client.create_payment(payment_request(request))
        kind = PaymentKind.SALE if request.capture else PaymentKind.AUTHORIZATION
        payment = self._read(response, "authorize", kind=kind, fallback_amount=request.amount)
        # The response echoes little of the request; the payment as authorised is both.
        return payment.model_copy(update={
            "order_reference": payment.order_reference or request.order_reference,
            "party": payment.party or request.party,
            "token": payment.token or request.token,
            "merchant_defined": payment.merchant_defined or dict(request.merchant_defined),
            "line_items": payment.line_items or request.line_items,
        })

    async def capture(self, payment_id: str, amount: Money, *, order_reference: str | None = None) -> Payment:
        body = wire.CaptureRequest.model_validate({
            "clientReferenceInformation": _reference(order_reference),
            "orderInformation": {"amountDetails": amount_details(amount)},
        })
        response = await self.client.capture(payment_id, body)
        return self._read(response, "capture", kind=PaymentKind.CAPTURE, fallback_amount=amount, parent_id=payment_id)

    async def refund(
        self, payment_id: str, amount: Money, *, reference: str, order_reference: str | None = None
    ) -> Payment:
        """Refund a sale or a capture; ``reference`` (our idempotency key) travels as the client's own
        transaction id, ``clientReferenceInformation.transactionId``, so ``find_refund`` can find it again.

        Sent to ``/pts/v2/payments/{id}/refunds`` for either kind of id: the seam does not say which it is.
        """
        if not reference or not reference.strip():
            raise InvalidInput(FieldIssue("reference", "a refund needs our idempotency key"), source="refund")
        client_reference = {**(_reference(order_reference) or {}), "transactionId": reference}
        body = wire.RefundRequest.model_validate({
            "clientReferenceInformation": client_reference,
            "orderInformation": {"amountDetails": amount_details(amount)},
        })
        response = await self.client.refund_payment(payment_id, body)
        return self._read(response, "refund", kind=PaymentKind.REFUND, fallback_amount=amount, parent_id=payment_id)

    async def find_refund(self, reference: str) -> Payment | None:
        """The refund made with ``reference``, through Transaction Search, read back whole from TSS.

        Several hits (a refund sent twice before this lookup existed) give the earliest.
        """
        return await self._find_by_reference(reference, "ics_credit")

    # --- reports ---------------------------------------------------------------------------

    async def find_payment(self, reference: str) -> Payment | None:
        """The authorisation or sale sent with ``reference`` as ``clientReferenceInformation.transactionId``,
        through Transaction Search, read back whole from TSS (the earliest, should there be several)."""
        return await self._find_by_reference(reference, "ics_auth")

    async def _find_by_reference(self, reference: str, application: str) -> Payment | None:
        """The earliest transaction that echoes ``reference`` and ran ``application`` (a search hit that names
        no applications is taken on the reference alone)."""
        query = f"clientReferenceInformation.transactionId:{search_value(reference)}"
        found = await self.client.search_transactions(query, limit=100, sort="submitTimeUtc:asc")
        for summary in found.summaries:
            echoed = summary.client_reference_information.transaction_id \
                if summary.client_reference_information else None
            apps = summary.application_information.applications if summary.application_information else None
            names = {a.name for a in apps or ()}
            if not summary.id or (echoed is not None and echoed != reference) or (names and application not in names):
                continue
            return await self.get_payment(summary.id)
        return None

    async def transaction_events(self, start: datetime, end: datetime) -> list[PaymentEvent]:
        """Every transaction submitted in [start, end), through Transaction Search page by page, as the
        event its notification carried (``transactions.py``); oldest first."""
        query = window_query(start, end)
        events: list[PaymentEvent] = []
        offset = 0
        while True:
            page = await self.client.search_transactions(query, limit=SEARCH_PAGE, offset=offset,
                                                         sort="submitTimeUtc:asc")
            summaries = page.summaries
            events.extend(e for e in map(summary_event, summaries) if e is not None)
            offset += len(summaries)
            if len(summaries) < SEARCH_PAGE or (page.total_count is not None and offset >= page.total_count):
                return events

    async def payment_instrument(self, token_id: str) -> StoredInstrument | None:
        """The TMS payment instrument behind ``token_id``; None when TMS answers 404 or 410 (deleted)."""
        try:
            doc = await self.client.get_payment_instrument(token_id)
        except PermanentError as exc:
            if exc.status in (404, 410):
                return None
            raise
        try:
            return read_instrument(doc)
        except InvalidInput as exc:
            raise PermanentError(f"cybersource payment_instrument: unreadable response: {exc}", system=SYSTEM,
                                 operation="payment_instrument", field=exc.issues[0].field) from exc

    async def settlement(self, day: date) -> Settlement:
        """``settlement_frame`` as records, one ``SettlementLine`` per line (for small days)."""
        return (await self.settlement_frame(day)).to_settlement()

    async def settlement_frame(self, day: date) -> SettlementFrame:
        """The day's Payment Batch Detail report (fetched with reportDate = day + 1, spec §7) and net fundings
        for [day, day + 1) UTC, as one canonical settlement with its lines in columns.

        No report yet (404) is ``NotFound``: the processor publishes it some time after the day closes, so the
        caller tries again later.
        """
        name = self.settings.report_name
        try:
            data = await self.client.download_report(name, day + timedelta(days=1))
        except NotFound as exc:
            raise NotFound(f"cybersource settlement: no {name} for {day} yet", system=SYSTEM,
                           operation="settlement", status=404, provider_code=exc.provider_code,
                           request_id=exc.request_id) from exc
        start = datetime.combine(day, time(0), tzinfo=UTC)
        funding_doc = await self.client.net_fundings(start, start + timedelta(days=1))
        # A second or two of CPU for a big day (polars, which lets go of the GIL): off the event loop
        columns = await asyncio.to_thread(read_batch_detail_columns, data, report=name)
        del data
        funding = read_net_fundings(funding_doc, chargeback_fee_subtype=self.settings.chargeback_fee_subtype)
        sources = (f"{name} reportDate={day + timedelta(days=1)}", f"net-fundings {day}")
        return build_settlement_frame(gateway=SYSTEM, merchant_id=self.settings.merchant_id, day=day,
                                      columns=columns, funding=funding, sources=sources, report=name)

    async def disputes(self, start: datetime, end: datetime) -> list[Dispute]:
        """Every chargeback stage in [start, end) from the chargeback-details report (a naive time is UTC)."""
        start, end = _aware(start), _aware(end)
        details = await self.client.chargeback_details(start, end)
        return [d for d in to_disputes(details, self._dispute_actions) if start <= d.occurred_at < end]

    # --- Decision Manager case management (spec §8) ----------------------------------------------

    async def decide_review(self, payment_id: str, decision: ReviewDecision, *, comments: str | None = None,
                            reviewer: str | None = None) -> ReviewVerdict:
        """``POST /risk/v1/decisions/{id}/actions``: ACCEPT with ``actionList [CAPTURE]`` or REJECT with
        ``[REVERSE]``; the capture or reversal made comes back under ``_embedded``."""
        body = case_action(decision, comments=comments, reviewer=reviewer)
        return read_action_response(decision, await self.client.case_action(payment_id, body))

    async def review_outcome(self, payment_id: str) -> ReviewVerdict | None:
        """Read from TSS: a transaction still ``AUTHORIZED_PENDING_REVIEW``/``PENDING_REVIEW`` is undecided;
        reversed or risk-declined means rejected, anything else accepted. The capture (a sale: itself) or
        reversal made for it is found among its related transactions."""
        details = await self.client.get_transaction(payment_id)
        status = details.status or ""
        if not status or status in REVIEW_STATUSES:
            return None
        accepted = status not in REJECTED_REVIEW_STATUSES
        decision = ReviewDecision.ACCEPT if accepted else ReviewDecision.REJECT
        wanted = "ics_bill" if accepted else "ics_auth_reversal"
        if accepted and wanted in _application_names(details):
            return ReviewVerdict(decision=decision, follow_on_id=details.id)  # a sale: captured in itself
        for related in _related_ids(details, payment_id):
            child = await self.client.get_transaction(related)
            if wanted in _application_names(child):
                return ReviewVerdict(decision=decision, follow_on_id=child.id or related)
        return ReviewVerdict(decision=decision)

    async def void(self, payment_id: str, *, order_reference: str | None = None) -> Payment:
        body = wire.VoidRequest.model_validate({"clientReferenceInformation": _reference(order_reference)})
        response = await self.client.void_payment(payment_id, body)
        return self._read(response, "void", kind=PaymentKind.VOID, parent_id=payment_id)

    async def reverse(
        self, payment_id: str, amount: Money, *, reason: str | None = None, order_reference: str | None = None
    ) -> Payment:
        body = wire.ReversalRequest.model_validate({
            "clientReferenceInformation": _reference(order_reference),
            "reversalInformation": {"amountDetails": {"totalAmount": amount.format()}, "reason": reason or "reversal"},
        })
        response = await self.client.reverse(payment_id, body)
        return self._read(response, "reverse", kind=PaymentKind.REVERSAL, fallback_amount=amount,
                          parent_id=payment_id)

    # --- customer profiles (TMS, spec §5; see profiles.py for where each field lives) -------------

    def profile_id_for(self, reference: str) -> str:
        """The TMS customer id ``create_customer_profile`` uses for ``reference``: always the same one."""
        return customer_token_for(self.settings.merchant_id, reference)

    async def customer_profile(self, customer_id: str) -> CustomerProfile:
        """The TMS customer with every stored card; ``NotFound`` when TMS does not know it (404) or it was
        deleted (410)."""
        customer = await self.client.get_customer(customer_id)
        instruments = await self.client.customer_instruments(customer_id)
        return self._profile(customer.body, instruments, "customer_profile")

    async def create_customer_profile(self, party: Party, *, reference: str,
                                      merchant_customer_id: str | None = None) -> CustomerProfile:
        """A TMS customer with the id ``profile_id_for(reference)`` (e-mail and ``merchantCustomerID``; name,
        phone and address have no place on a customer without a stored card). One made before a crash cut
        the step off (``tokenIdConflict``) is read back instead of made again."""
        customer_id = self.profile_id_for(reference)
        body = customer_body(party, customer_id=customer_id, reference=reference,
                             merchant_customer_id=merchant_customer_id)
        try:
            created = await self.client.create_customer(body)
        except Conflict as exc:
            if exc.provider_code != "tokenIdConflict":
                raise
            return await self.customer_profile(customer_id)
        return self._profile(created.body, [], "create_customer_profile")

    async def update_customer_profile(self, customer_id: str, party: Party, fields: Collection[str], *,
                                      merchant_customer_id: str | None = None) -> None:
        """Write ``fields`` of ``party``: the e-mail (and ``merchantCustomerID``) on the customer, name, phone
        and address on its default card's ``billTo``, each PATCH guarded by the ETag just read (a 412 is
        retryable: someone changed it in between)."""
        unknown = set(fields) - set(PROFILE_FIELDS)
        if unknown:
            raise InvalidInput(FieldIssue("fields", f"not profile fields: {', '.join(sorted(unknown))}"),
                               source="cybersource profile")
        customer = await self.client.get_customer(customer_id)
        buyer = buyer_patch(party, fields) or {}
        if merchant_customer_id:
            buyer.setdefault("buyerInformation", {})["merchantCustomerID"] = merchant_customer_id
        if buyer:
            await self.client.update_customer(customer_id, buyer, if_match=customer.etag)
        default = customer.body.get("defaultPaymentInstrument")
        default_id = default.get("id") if isinstance(default, dict) else None
        on_card = set(fields) & CARD_FIELDS
        if default_id is None:
            if on_card:
                raise Rejected(f"cybersource customer {customer_id} has no default card to hold "
                               f"{', '.join(sorted(on_card))}", system=SYSTEM, operation="update_customer_profile",
                               field="defaultPaymentInstrument.id")
            return
        patch = bill_to_patch(party, fields)
        if patch is None:
            return
        instrument = await self.client.get_customer_instrument(customer_id, default_id)
        await self.client.update_customer_instrument(customer_id, default_id, patch, if_match=instrument.etag)

    def _profile(self, customer: Any, instruments: list[Any], operation: str) -> CustomerProfile:
        try:
            return read_profile(customer, instruments, today=datetime.now(UTC).date())
        except InvalidInput as exc:
            raise PermanentError(f"cybersource {operation}: unreadable response: {exc}", system=SYSTEM,
                                 operation=operation, field=exc.issues[0].field) from exc

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> CybersourceGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _read(self, doc: wire.Transaction, operation: str, **kwargs: Any) -> Payment:
        try:
            return to_payment(doc, statuses=self._statuses, **kwargs)
        except InvalidInput as exc:
            raise PermanentError(f"cybersource {operation}: unreadable response: {exc}", system=SYSTEM,
                                 operation=operation, field=exc.issues[0].field) from exc


REVIEW_STATUSES = frozenset({"AUTHORIZED_PENDING_REVIEW", "PENDING_REVIEW"})
REJECTED_REVIEW_STATUSES = frozenset({"REVERSED", "AUTHORIZED_RISK_DECLINED", "DECLINED", "VOIDED", "CANCELLED"})


def _application_names(doc: wire.Transaction) -> set[str]:
    apps = doc.application_information.applications if doc.application_information else None
    return {a.name for a in apps or () if a.name}


def _related_ids(doc: wire.Transaction, own_id: str) -> list[str]:
    """Ids of ``_links.relatedTransactions`` (TSS), without the transaction's own and its parent's."""
    links = (doc.links or {}).get("relatedTransactions")
    parent = (doc.links or {}).get("parentTransaction")
    parent_href = parent.get("href") if isinstance(parent, dict) else None
    found = []
    for link in links if isinstance(links, list) else ():
        href = link.get("href") if isinstance(link, dict) else None
        if not isinstance(href, str) or href == parent_href:
            continue
        ident = href.rstrip("/").rsplit("/", 1)[-1]
        if ident and ident != own_id and ident not in found:
            found.append(ident)
    return found


def _reference(order_reference: str | None) -> dict[str, str] | None:
    return {"code": order_reference} if order_reference else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


SEARCH_PAGE = 1000  # transactions per Transaction Search page (TSS allows up to 2,500)


def search_value(value: str) -> str:
    """A Transaction Search term value, double-quoted so spaces, colons and ``AND`` stay part of it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_gateway(
    settings: Mapping[str, Any] | CybersourceSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> CybersourceGateway:
    """The registry's entry point: settings from an integration file (or ready-made), optional transport."""
    if not isinstance(settings, CybersourceSettings):
        settings = CybersourceSettings.model_validate(dict(settings))
    return CybersourceGateway(settings, transport=transport)
