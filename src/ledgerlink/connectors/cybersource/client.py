"""Typed calls to the Cybersource REST API over one signed ``httpx.AsyncClient``.

Each method is one endpoint: it sends a wire model (or a plain mapping), and
returns the wire model of the answer. Anything but a 2xx becomes a kit error
carrying Cybersource's own reason (PTS ``reason``, TMS ``errors[0].type``) and
the offending field, so the runtime can decide retry vs dead-letter without
reading bodies. A DECLINED payment is a 201 and therefore a result here.

A 502 means Cybersource may or may not have done the work; it is retryable
because every engine step carries a business idempotency key and looks the
result up before acting again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from ledgerlink.connectors.cybersource import schemas as wire
from ledgerlink.connectors.cybersource.auth import HttpSignatureAuth
from ledgerlink.connectors.kit.errors import NotFound, PermanentError, RetryableError
from ledgerlink.connectors.kit.guard import operation_extensions
from ledgerlink.connectors.kit.http import error_for_response, error_for_transport, make_client, whole_body
from ledgerlink.connectors.kit.retry import RetryDecisions

SYSTEM = "cybersource"
JSON_HEADERS = {"Content-Type": "application/json;charset=utf-8"}
TMS_JSON = "application/json;charset=utf-8"
WEBHOOKS = "/notification-subscriptions/v2/webhooks"
DEFAULT_HEADERS = {"Accept": "application/hal+json;charset=utf-8", "User-Agent": "ledgerlink"}

M = TypeVar("M", bound=BaseModel)
Body = wire.Wire | Mapping[str, Any] | None


def _segment(value: str) -> str:
    """A path segment from an id; quoting keeps a hostile id from changing the path."""
    if not value:
        raise ValueError("transaction id must not be empty")
    return quote(value, safe="")


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    """Cybersource's reason code and the field it blames, from either error family."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    details = body.get("details")
    if isinstance(body.get("reason"), str):
        field = details[0].get("field") if isinstance(details, list) and details and isinstance(details[0], dict) else None
        return body["reason"], field
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        names = first.get("details")
        field = names[0].get("name") if isinstance(names, list) and names and isinstance(names[0], dict) else None
        return first.get("type"), field
    return None, None


def _provider_code(response: httpx.Response) -> str | None:
    return _error_fields(response)[0]


@dataclass(frozen=True, slots=True)
class TmsDocument:
    """A Token Management answer: its JSON object (``{}`` for 204) and the token's ``ETag`` (for ``if-match``)."""

    body: dict[str, Any]
    etag: str | None = None


def report_time(value: datetime) -> str:
    """A reporting window bound as the API wants it: ISO 8601 with an offset (a naive time is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")


class CybersourceClient:
    def __init__(
        self,
        *,
        base_url: str,
        host: str,
        merchant_id: str,
        key_id: str,
        shared_secret: str,
        portfolio_id: str | None = None,
        organization_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_seconds: float = 30.0,
        decisions: RetryDecisions | None = None,
    ) -> None:
        self.organization_id = organization_id or merchant_id  # whose reports to read
        self._http = make_client(
            base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
            headers=DEFAULT_HEADERS,
        )
        self._http.auth = HttpSignatureAuth(
            host=host, merchant_id=merchant_id, key_id=key_id, shared_secret=shared_secret,
            portfolio_id=portfolio_id,
        )
        self._decisions = decisions or RetryDecisions()
        self._tms_decisions = self._decisions.with_overrides({410: NotFound, 412: RetryableError})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CybersourceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, method: str, path: str, operation: str, body: Body = None,
                    params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                    decisions: RetryDecisions | None = None) -> httpx.Response:
        """A 2xx response; a kit error for anything else (or a transport failure)."""
        content = None
        sent_headers = dict(headers or {})
        if body is not None:
            content = orjson.dumps(body.to_wire() if isinstance(body, wire.Wire) else dict(body))
            sent_headers.update(JSON_HEADERS)
        try:
            response = await self._http.request(method, path, content=content, params=params,
                                                headers=sent_headers or None,
                                                extensions=operation_extensions(operation))
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, system=SYSTEM, operation=operation) from exc
        if not response.is_success:
            _, field = _error_fields(response)
            raise error_for_response(response, system=SYSTEM, operation=operation,
                                     decisions=decisions or self._decisions, provider_code=_provider_code,
                                     field=field)
        return response

    async def _call(self, method: str, path: str, operation: str, body: Body = None,
                    params: Mapping[str, str] | None = None) -> Any:
        """The parsed JSON of a 2xx answer (None when empty); a kit error for anything else."""
        response = await self._send(method, path, operation, body, params)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            # The call succeeded but we cannot read what happened: an unknown outcome, like a 502.
            raise RetryableError(f"cybersource {operation}: unreadable {response.status_code} body",
                                 system=SYSTEM, operation=operation, status=response.status_code,
                                 body=response.content) from exc

    @staticmethod
    def _read(model: type[M], data: Any, operation: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise PermanentError(f"cybersource {operation}: unexpected response shape: {exc}", system=SYSTEM,
                                 operation=operation, body=orjson.dumps(data)) from exc

    async def _one(self, model: type[M], method: str, path: str, operation: str, body: Body = None) -> M:
        return self._read(model, await self._call(method, path, operation, body), operation)

    # --- Payments (PTS) and Transaction Search (TSS) ---------------------------------------

    async def get_transaction(self, transaction_id: str) -> wire.TransactionDetails:
        path = f"/tss/v2/transactions/{_segment(transaction_id)}"
        return await self._one(wire.TransactionDetails, "GET", path, "get_transaction")

    async def create_payment(self, body: wire.PaymentRequest | Mapping[str, Any]) -> wire.PaymentResponse:
        """Authorise, or authorise and capture when ``processingInformation.capture`` is true."""
        return await self._one(wire.PaymentResponse, "POST", "/pts/v2/payments", "create_payment", body)

    async def capture(self, payment_id: str, body: wire.CaptureRequest | Mapping[str, Any]) -> wire.CaptureResponse:
        path = f"/pts/v2/payments/{_segment(payment_id)}/captures"
        return await self._one(wire.CaptureResponse, "POST", path, "capture", body)

    async def void_payment(self, payment_id: str, body: Body = None) -> wire.VoidResponse:
        """Void a sale (or, in the sandbox, any voidable transaction by id)."""
        path = f"/pts/v2/payments/{_segment(payment_id)}/voids"
        return await self._one(wire.VoidResponse, "POST", path, "void_payment", body or {})

    async def void_capture(self, capture_id: str, body: Body = None) -> wire.VoidResponse:
        path = f"/pts/v2/captures/{_segment(capture_id)}/voids"
        return await self._one(wire.VoidResponse, "POST", path, "void_capture", body or {})

    async def reverse(self, payment_id: str, body: wire.ReversalRequest | Mapping[str, Any]) -> wire.ReversalResponse:
        path = f"/pts/v2/payments/{_segment(payment_id)}/reversals"
        return await self._one(wire.ReversalResponse, "POST", path, "reverse", body)

    async def refund_payment(self, payment_id: str, body: wire.RefundRequest | Mapping[str, Any]) -> wire.RefundResponse:
        path = f"/pts/v2/payments/{_segment(payment_id)}/refunds"
        return await self._one(wire.RefundResponse, "POST", path, "refund_payment", body)

    async def refund_capture(self, capture_id: str, body: wire.RefundRequest | Mapping[str, Any]) -> wire.RefundResponse:
        path = f"/pts/v2/captures/{_segment(capture_id)}/refunds"
        return await self._one(wire.RefundResponse, "POST", path, "refund_capture", body)

    async def search_transactions(self, query: str, *, limit: int = 100, offset: int = 0,
                                  sort: str = "submitTimeUtc:asc") -> wire.SearchResponse:
        """POST /tss/v2/searches: summaries of the transactions matching ``query`` (not saved)."""
        body = wire.SearchRequest(save=False, query=query, limit=limit, offset=offset, sort=sort)
        return await self._one(wire.SearchResponse, "POST", "/tss/v2/searches", "search_transactions", body)

    # --- Decision Manager case management (spec §8) -----------------------------------------

    async def case_action(self, decision_id: str, body: Mapping[str, Any]) -> Any:
        """POST /risk/v1/decisions/{id}/actions: a reviewer's ACCEPT or REJECT of a case (``id``: the
        transaction's id), with ``processingInformation.actionList`` CAPTURE or REVERSE to move the money."""
        path = f"/risk/v1/decisions/{_segment(decision_id)}/actions"
        return await self._call("POST", path, "case_action", body)

    async def get_payment_instrument(self, instrument_id: str) -> Any:
        """GET /tms/v1/paymentinstruments/{id} (spec §5): the stored card as TMS holds it (JSON, read by
        ``instruments.read_instrument``). 404/410 when TMS does not know it (any more)."""
        path = f"/tms/v1/paymentinstruments/{_segment(instrument_id)}"
        return await self._call("GET", path, "get_payment_instrument")

    # --- Token Management (spec §5) -----------------------------------------------------------
    # No call here carries a card number: instrument identifiers are read, changed and deleted, never created.
    # 410 (a deleted token) is NotFound; 412 (if-match no longer matches: someone changed the token since it
    # was read) is retryable, because reading it again and recomputing the change is the way out.

    async def _tms(self, method: str, path: str, operation: str, body: Mapping[str, Any] | None = None, *,
                   params: Mapping[str, str] | None = None, if_match: str | None = None) -> TmsDocument:
        headers = {"Accept": TMS_JSON, **({"if-match": if_match} if if_match else {})}
        response = await self._send(method, path, operation, body, params, headers, decisions=self._tms_decisions)
        if response.status_code == 204 or not response.content:
            return TmsDocument({}, response.headers.get("etag"))
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise RetryableError(f"cybersource {operation}: unreadable {response.status_code} body", system=SYSTEM,
                                 operation=operation, status=response.status_code, body=response.content) from exc
        if not isinstance(data, dict):
            raise PermanentError(f"cybersource {operation}: the answer is not a JSON object", system=SYSTEM,
                                 operation=operation, body=response.content)
        return TmsDocument(data, response.headers.get("etag"))

    async def create_customer(self, body: Mapping[str, Any]) -> TmsDocument:
        """POST /tms/v2/customers; an ``id`` of our choosing that is taken is a ``Conflict`` (tokenIdConflict)."""
        return await self._tms("POST", "/tms/v2/customers", "create_customer", body)

    async def get_customer(self, customer_id: str) -> TmsDocument:
        return await self._tms("GET", f"/tms/v2/customers/{_segment(customer_id)}", "get_customer")

    async def update_customer(self, customer_id: str, body: Mapping[str, Any], *,
                              if_match: str | None = None) -> TmsDocument:
        return await self._tms("PATCH", f"/tms/v2/customers/{_segment(customer_id)}", "update_customer", body,
                               if_match=if_match)

    async def delete_customer(self, customer_id: str, *, if_match: str | None = None) -> None:
        await self._tms("DELETE", f"/tms/v2/customers/{_segment(customer_id)}", "delete_customer", if_match=if_match)

    async def list_customer_instruments(self, customer_id: str, *, offset: int = 0, limit: int = 100) -> TmsDocument:
        path = f"/tms/v2/customers/{_segment(customer_id)}/payment-instruments"
        return await self._tms("GET", path, "list_customer_instruments",
                               params={"offset": str(offset), "limit": str(limit)})

    async def customer_instruments(self, customer_id: str) -> list[dict[str, Any]]:
        """Every payment instrument of the customer, page by page."""
        found: list[dict[str, Any]] = []
        while True:
            page = (await self.list_customer_instruments(customer_id, offset=len(found))).body
            items = (page.get("_embedded") or {}).get("paymentInstruments") or []
            found.extend(item for item in items if isinstance(item, dict))
            total = page.get("total")
            if not items or not isinstance(total, int) or len(found) >= total:
                return found

    async def create_customer_instrument(self, customer_id: str, body: Mapping[str, Any]) -> TmsDocument:
        """A card for the customer from an existing instrument identifier (``instrumentIdentifier.id``)."""
        path = f"/tms/v2/customers/{_segment(customer_id)}/payment-instruments"
        return await self._tms("POST", path, "create_customer_instrument", body)

    async def get_customer_instrument(self, customer_id: str, instrument_id: str) -> TmsDocument:
        path = f"/tms/v2/customers/{_segment(customer_id)}/payment-instruments/{_segment(instrument_id)}"
        return await self._tms("GET", path, "get_customer_instrument")

    async def update_customer_instrument(self, customer_id: str, instrument_id: str, body: Mapping[str, Any], *,
                                         if_match: str | None = None) -> TmsDocument:
        path = f"/tms/v2/customers/{_segment(customer_id)}/payment-instruments/{_segment(instrument_id)}"
        return await self._tms("PATCH", path, "update_customer_instrument", body, if_match=if_match)

    async def delete_customer_instrument(self, customer_id: str, instrument_id: str, *,
                                         if_match: str | None = None) -> None:
        path = f"/tms/v2/customers/{_segment(customer_id)}/payment-instruments/{_segment(instrument_id)}"
        await self._tms("DELETE", path, "delete_customer_instrument", if_match=if_match)

    async def update_payment_instrument(self, instrument_id: str, body: Mapping[str, Any], *,
                                        if_match: str | None = None) -> TmsDocument:
        path = f"/tms/v1/paymentinstruments/{_segment(instrument_id)}"
        return await self._tms("PATCH", path, "update_payment_instrument", body, if_match=if_match)

    async def delete_payment_instrument(self, instrument_id: str, *, if_match: str | None = None) -> None:
        path = f"/tms/v1/paymentinstruments/{_segment(instrument_id)}"
        await self._tms("DELETE", path, "delete_payment_instrument", if_match=if_match)

    async def get_instrument_identifier(self, identifier_id: str) -> TmsDocument:
        path = f"/tms/v1/instrumentidentifiers/{_segment(identifier_id)}"
        return await self._tms("GET", path, "get_instrument_identifier")

    async def delete_instrument_identifier(self, identifier_id: str, *, if_match: str | None = None) -> None:
        """409 (``instrumentIdentifierDeletionError``) while a payment instrument still uses it."""
        path = f"/tms/v1/instrumentidentifiers/{_segment(identifier_id)}"
        await self._tms("DELETE", path, "delete_instrument_identifier", if_match=if_match)

    async def identifier_instruments(self, identifier_id: str, *, offset: int = 0, limit: int = 100) -> TmsDocument:
        path = f"/tms/v1/instrumentidentifiers/{_segment(identifier_id)}/paymentinstruments"
        return await self._tms("GET", path, "identifier_instruments",
                               params={"offset": str(offset), "limit": str(limit)})

    # --- Reporting (spec §7) ----------------------------------------------------------------

    async def download_report(self, report_name: str, report_date: date, *, accept: str = "text/csv") -> bytes:
        """The file of a subscribed report. ``report_date`` is the report's *end* date: a daily report for D
        is fetched with D + 1 (spec §7). 404 (``NotFound``) while the report does not exist yet.

        A large day's file is a hundred megabytes or more: it is streamed into one buffer of the announced
        length instead of gathered in pieces and joined, which held it twice and left the pieces' memory
        with the process."""
        params = {"organizationId": self.organization_id, "reportDate": report_date.isoformat(),
                  "reportName": report_name}
        operation = "download_report"
        try:
            async with self._http.stream("GET", "/reporting/v3/report-downloads", params=params,
                                         headers={"Accept": accept},
                                         extensions=operation_extensions(operation)) as response:
                if not response.is_success:
                    await response.aread()
                    _, field = _error_fields(response)
                    raise error_for_response(response, system=SYSTEM, operation=operation,
                                             decisions=self._decisions, provider_code=_provider_code, field=field)
                return await whole_body(response, system=SYSTEM, operation=operation)
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, system=SYSTEM, operation=operation) from exc

    async def net_fundings(self, start: datetime, end: datetime) -> wire.NetFundings:
        params = {"startTime": report_time(start), "endTime": report_time(end),
                  "organizationId": self.organization_id}
        data = await self._call("GET", "/reporting/v3/net-fundings", "net_fundings", params=params)
        return self._read(wire.NetFundings, data, "net_fundings")

    async def chargeback_details(self, start: datetime, end: datetime) -> wire.ChargebackDetails:
        params = {"startTime": report_time(start), "endTime": report_time(end),
                  "organizationId": self.organization_id}
        data = await self._call("GET", "/reporting/v3/chargeback-details", "chargeback_details", params=params)
        return self._read(wire.ChargebackDetails, data, "chargeback_details")

    # --- Webhook setup (KMS + Notification Subscriptions) -----------------------------------

    async def create_webhook_key(self, organization_id: str, *, expiry_days: int = 365) -> wire.KeyResponse:
        """A new symmetric signing key; it replaces the organisation's previous one (spec §6.1)."""
        body = wire.KeyRequest(key_information=wire.KeyInformation(
            provider="nrtd", tenant=organization_id, key_type="sharedSecret", organization_id=organization_id,
            expiry_duration=str(expiry_days),
        ))
        return await self._one(wire.KeyResponse, "POST", "/kms/egress/v2/keys-sym", "create_webhook_key", body)

    async def create_webhook_subscription(
        self, subscription: wire.WebhookSubscription | Mapping[str, Any]
    ) -> wire.WebhookSubscription:
        return await self._one(wire.WebhookSubscription, "POST", WEBHOOKS, "create_webhook_subscription",
                               subscription)

    async def list_webhook_subscriptions(self, organization_id: str) -> list[wire.WebhookSubscription]:
        operation = "list_webhook_subscriptions"
        data = await self._call("GET", WEBHOOKS, operation, params={"organizationId": organization_id})
        return [self._read(wire.WebhookSubscription, item, operation) for item in data or []]

    async def get_webhook_subscription(self, webhook_id: str) -> wire.WebhookSubscription:
        path = f"{WEBHOOKS}/{_segment(webhook_id)}"
        return await self._one(wire.WebhookSubscription, "GET", path, "get_webhook_subscription")

    async def delete_webhook_subscription(self, webhook_id: str) -> None:
        await self._call("DELETE", f"{WEBHOOKS}/{_segment(webhook_id)}", "delete_webhook_subscription")

