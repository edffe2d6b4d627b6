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
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ledgerlink.connectors.cybersource import schemas as wire
from ledgerlink.connectors.cybersource.batch_detail import REPORT, read_payment_batch_detail
from ledgerlink.connectors.cybersource.client import SYSTEM, CybersourceClient
from ledgerlink.connectors.cybersource.disputes import DisputeActions, to_disputes
from ledgerlink.connectors.cybersource.settlement import (
    CHARGEBACK_FEE_SUBTYPE,
    build_settlement,
    read_net_fundings,
)
from ledgerlink.connectors.cybersource.translate import (
    StatusTable,
    amount_details,
    payment_request,
    to_payment,
)
from ledgerlink.connectors.cybersource.webhooks import SignatureVariant, WebhookVerifier, parse_notification
from ledgerlink.connectors.kit.errors import NotFound, PermanentError
from ledgerlink.model import (
    AuthorizationRequest,
    Dispute,
    FieldIssue,
    InvalidInput,
    Money,
    Payment,
    PaymentEvent,
    PaymentKind,
    Settlement,
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
        query = f"clientReferenceInformation.transactionId:{search_value(reference)}"
        found = await self.client.search_transactions(query, limit=100, sort="submitTimeUtc:asc")
        for summary in found.summaries:
            echoed = summary.client_reference_information.transaction_id \
                if summary.client_reference_information else None
            apps = summary.application_information.applications if summary.application_information else None
            names = {a.name for a in apps or ()}
            if not summary.id or (echoed is not None and echoed != reference) or (names and "ics_credit" not in names):
                continue
            return await self.get_payment(summary.id)
        return None

    # --- reports ---------------------------------------------------------------------------

    async def settlement(self, day: date) -> Settlement:
        """The day's Payment Batch Detail report (fetched with reportDate = day + 1, spec §7) and net fundings
        for [day, day + 1) UTC, as one canonical ``Settlement``.

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
        # Seconds of CPU for a big day: off the event loop, so webhooks and other steps keep moving.
        detail = await asyncio.to_thread(read_payment_batch_detail, data, gateway=SYSTEM, report=name)
        funding = read_net_fundings(funding_doc, chargeback_fee_subtype=self.settings.chargeback_fee_subtype)
        sources = (f"{name} reportDate={day + timedelta(days=1)}", f"net-fundings {day}")
        return build_settlement(gateway=SYSTEM, merchant_id=self.settings.merchant_id, day=day, detail=detail,
                                funding=funding, sources=sources, report=name)

    async def disputes(self, start: datetime, end: datetime) -> list[Dispute]:
        """Every chargeback stage in [start, end) from the chargeback-details report (a naive time is UTC)."""
        start, end = _aware(start), _aware(end)
        details = await self.client.chargeback_details(start, end)
        return [d for d in to_disputes(details, self._dispute_actions) if start <= d.occurred_at < end]

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


def _reference(order_reference: str | None) -> dict[str, str] | None:
    return {"code": order_reference} if order_reference else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
