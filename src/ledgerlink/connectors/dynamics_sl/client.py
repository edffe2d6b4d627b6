"""``DynamicsSLClient``: typed operations on the SL API gateway, one at a time or many in one ``$batch``.

Every operation is an ``SLCall`` (method, URL, body, idempotency key, how to read the answer), so
the same call can be sent alone (``send``) or with hundreds of others (``send_batch``) and each
caller gets the same typed result or the same typed error either way. A non-2xx answer becomes the
kit's error for its status, with the gateway's error ``code`` as provider code and the SL field it
names; a 409 carries the record that already holds the key or id (``Conflict.existing``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson

from ledgerlink.connectors.dynamics_sl import schemas as S
from ledgerlink.connectors.kit.errors import Conflict, ConnectorError
from ledgerlink.connectors.kit.guard import operation_extensions
from ledgerlink.connectors.kit.http import error_for_response, error_for_transport, make_client, whole_body
from ledgerlink.connectors.kit.retry import RetryDecisions

SYSTEM = "dynamics_sl"
API = "/api/v1"


class ExistingRecord(Conflict):
    """409: SL already holds the record (same idempotency key or same id); ``table`` and ``existing`` name it."""

    def __init__(self, message: str, *, table: str | None, existing: str | None, **kwargs: Any) -> None:
        super().__init__(message, existing=existing, **kwargs)
        self.table = table


def _seg(value: str) -> str:
    return quote(value, safe="")


def _query(filters: Mapping[str, Any]) -> str:
    pairs = {k: v for k, v in filters.items() if v is not None}
    return "?" + urlencode(pairs) if pairs else ""


@dataclass(frozen=True)
class SLCall:
    """One gateway operation, ready to send alone or inside a ``$batch``."""

    operation: str
    method: str
    url: str  # below the API prefix
    parse: Callable[[Any], Any]
    body: Mapping[str, Any] | None = None
    key: str | None = None  # business idempotency key (Idempotency-Key header)
    minimal: bool = False  # ask for the created record's keys only (Prefer: return=minimal)

    def headers(self) -> dict[str, str]:
        headers = {"Idempotency-Key": self.key} if self.key else {}
        if self.minimal:
            headers["Prefer"] = "return=minimal"
        return headers

    def lean(self) -> SLCall:
        """The same call, answered with the created record's keys only (cheaper inside a big batch)."""
        return replace(self, minimal=True)


def _list(model: type[S.SLRecord]) -> Callable[[Any], list[Any]]:
    return lambda body: [model.model_validate(row) for row in body.get("value", [])]


class Calls:
    """Builders for every gateway operation the connector uses."""

    @staticmethod
    def setup() -> SLCall:
        return SLCall("get_setup", "GET", "/setup", S.Setup.model_validate)

    @staticmethod
    def find_key(key: str) -> SLCall:
        return SLCall("find_key", "GET", f"/keys/{_seg(key)}", S.KeyHolder.model_validate)

    @staticmethod
    def list_customers(**filters: Any) -> SLCall:
        return SLCall("list_customers", "GET", "/customers" + _query(filters), _list(S.Customer))

    @staticmethod
    def get_customer(cust_id: str) -> SLCall:
        return SLCall("get_customer", "GET", f"/customers/{_seg(cust_id)}", S.Customer.model_validate)

    @staticmethod
    def create_customer(body: Mapping[str, Any], key: str | None = None) -> SLCall:
        return SLCall("create_customer", "POST", "/customers", S.Customer.model_validate, body, key)

    @staticmethod
    def update_customer(cust_id: str, body: Mapping[str, Any]) -> SLCall:
        return SLCall("update_customer", "PATCH", f"/customers/{_seg(cust_id)}", S.Customer.model_validate, body)

    @staticmethod
    def list_sales_orders(**filters: Any) -> SLCall:
        return SLCall("list_sales_orders", "GET", "/salesorders" + _query(filters), _list(S.SOHeader))

    @staticmethod
    def get_sales_order(ord_nbr: str) -> SLCall:
        return SLCall("get_sales_order", "GET", f"/salesorders/{_seg(ord_nbr)}", S.SOHeader.model_validate)

    @staticmethod
    def create_sales_order(body: Mapping[str, Any], key: str | None = None) -> SLCall:
        return SLCall("create_sales_order", "POST", "/salesorders", S.SOHeader.model_validate, body, key)

    @staticmethod
    def hold_sales_order(ord_nbr: str, reason: str | None) -> SLCall:
        return SLCall("hold_sales_order", "POST", f"/salesorders/{_seg(ord_nbr)}/hold", S.SOHeader.model_validate,
                      {"reason": reason} if reason else {})

    @staticmethod
    def release_sales_order(ord_nbr: str) -> SLCall:
        return SLCall("release_sales_order", "POST", f"/salesorders/{_seg(ord_nbr)}/release",
                      S.SOHeader.model_validate, {})

    @staticmethod
    def cancel_sales_order(ord_nbr: str, reason: str | None = None) -> SLCall:
        return SLCall("cancel_sales_order", "POST", f"/salesorders/{_seg(ord_nbr)}/cancel",
                      S.SOHeader.model_validate, {"reason": reason} if reason else {})

    @staticmethod
    def set_payment_status(ord_nbr: str, status: str, reason: str | None = None) -> SLCall:
        body = {"Status": status, **({"reason": reason} if reason else {})}
        return SLCall("set_payment_status", "POST", f"/salesorders/{_seg(ord_nbr)}/payment-status",
                      S.SOHeader.model_validate, body)

    @staticmethod
    def invoice_sales_order(ord_nbr: str, body: Mapping[str, Any], key: str | None = None) -> SLCall:
        return SLCall("invoice_sales_order", "POST", f"/salesorders/{_seg(ord_nbr)}/invoice",
                      S.ARDoc.model_validate, body, key)

    @staticmethod
    def create_ar_document(body: Mapping[str, Any], key: str | None = None) -> SLCall:
        return SLCall("create_ar_document", "POST", "/ar/documents", S.ARDoc.model_validate, body, key)

    @staticmethod
    def list_ar_documents(**filters: Any) -> SLCall:
        return SLCall("list_ar_documents", "GET", "/ar/documents" + _query(filters), _list(S.ARDoc))

    @staticmethod
    def get_ar_document(doc_type: str, ref_nbr: str) -> SLCall:
        return SLCall("get_ar_document", "GET", f"/ar/documents/{_seg(doc_type)}/{_seg(ref_nbr)}",
                      S.ARDoc.model_validate)

    @staticmethod
    def reverse_payment(doc_type: str, ref_nbr: str, body: Mapping[str, Any], key: str | None = None) -> SLCall:
        return SLCall("reverse_payment", "POST", f"/ar/documents/{_seg(doc_type)}/{_seg(ref_nbr)}/reverse",
                      S.ARDoc.model_validate, body, key)

    @staticmethod
    def refund_requests(after: str | None = None, top: int = 500) -> SLCall:
        return SLCall("refund_requests", "GET", "/ar/refund-requests" + _query({"$top": top, "After": after}),
                      S.Page.model_validate)

    @staticmethod
    def record_refund_result(ref_nbr: str, body: Mapping[str, Any]) -> SLCall:
        return SLCall("record_refund_result", "POST", f"/ar/refund-requests/{_seg(ref_nbr)}/result",
                      S.ARDoc.model_validate, body)

    @staticmethod
    def posted_payments(start: str, end: str, after: str | None = None, top: int = 5000) -> SLCall:
        query = _query({"DocDateFrom": start, "DocDateTo": end, "$top": top, "After": after})
        return SLCall("posted_payments", "GET", "/ar/posted-payments" + query, S.Page.model_validate)

    @staticmethod
    def list_ar_adjustments(**filters: Any) -> SLCall:
        return SLCall("list_ar_adjustments", "GET", "/ar/adjustments" + _query(filters), _list(S.ARAdjust))

    @staticmethod
    def release_ar_batch(bat_nbr: str) -> SLCall:
        return SLCall("release_ar_batch", "POST", f"/ar/batches/{_seg(bat_nbr)}/release", S.Batch.model_validate, {})

    @staticmethod
    def create_gl_batch(body: Mapping[str, Any], key: str | None = None) -> SLCall:
        return SLCall("create_gl_batch", "POST", "/gl/batches", S.Batch.model_validate, body, key)

    @staticmethod
    def get_gl_batch(bat_nbr: str, module: str = "GL") -> SLCall:
        return SLCall("get_gl_batch", "GET", f"/gl/batches/{_seg(bat_nbr)}?Module={module}", S.Batch.model_validate)

    @staticmethod
    def post_gl_batch(bat_nbr: str, module: str = "GL") -> SLCall:
        return SLCall("post_gl_batch", "POST", f"/gl/batches/{_seg(bat_nbr)}/post?Module={module}",
                      S.Batch.model_validate, {})

    @staticmethod
    def post_transactions(module: str | None = None) -> SLCall:
        return SLCall("post_transactions", "POST", "/gl/post" + _query({"Module": module}),
                      S.PostResult.model_validate, {})

    @staticmethod
    def upsert_task(body: Mapping[str, Any], key: str | None = None) -> SLCall:
        return SLCall("upsert_task", "POST", "/tasks", S.Task.model_validate, body, key)

    @staticmethod
    def list_tasks(**filters: Any) -> SLCall:
        return SLCall("list_tasks", "GET", "/tasks" + _query(filters), _list(S.Task))

    @staticmethod
    def get_task(task_nbr: str) -> SLCall:
        return SLCall("get_task", "GET", f"/tasks/{_seg(task_nbr)}", S.Task.model_validate)

    @staticmethod
    def update_task(task_nbr: str, body: Mapping[str, Any]) -> SLCall:
        return SLCall("update_task", "PATCH", f"/tasks/{_seg(task_nbr)}", S.Task.model_validate, body)


class DynamicsSLClient:
    def __init__(
        self,
        base_url: str,
        *,
        company: str,
        auth: httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_seconds: float = 30.0,
        decisions: RetryDecisions | None = None,
    ) -> None:
        self._http = make_client(base_url, transport=transport, timeout=httpx.Timeout(timeout_seconds, connect=5.0),
                                 headers={"X-SL-Company": company, "Accept": "application/json"})
        self._http.auth = auth
        self._decisions = decisions or RetryDecisions()
        self.requests_sent = 0  # HTTP requests, for tests and metrics: batching should keep this small

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post_or_get(self, method: str, url: str, body: Any, headers: Mapping[str, str],
                           operation: str) -> httpx.Response:
        self.requests_sent += 1
        content = orjson.dumps(body) if method != "GET" and body is not None else None
        if content is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            return await self._http.request(method, API + url, content=content, headers=headers,
                                            extensions=operation_extensions(operation))
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, system=SYSTEM, operation=operation) from exc

    async def send(self, call: SLCall) -> Any:
        """One operation as its own HTTP request."""
        response = await self._post_or_get(call.method, call.url, call.body, call.headers(), call.operation)
        if response.is_success:
            return call.parse(orjson.loads(response.content))
        raise self.error(response, call.operation)

    async def posted_payments_csv(self, start: str, end: str, after: str | None = None, top: int = 5000,
                                  select: Sequence[str] = ()) -> tuple[bytes, str | None]:
        """One page of ``ar/posted-payments`` in its bulk form (CSV: ``select`` names the columns, all if
        empty), in a request of its own (not a ``$batch`` item), and the cursor of the next page (None on the
        last)."""
        call = Calls.posted_payments(start, end, after, top)
        url = call.url + (f"&$select={','.join(select)}" if select else "")
        self.requests_sent += 1
        try:  # streamed into one buffer of the announced length: a page is megabytes
            async with self._http.stream("GET", API + url, headers={"Accept": "text/csv"},
                                         extensions=operation_extensions(call.operation)) as response:
                if not response.is_success:
                    await response.aread()
                    raise self.error(response, call.operation)
                body = await whole_body(response, system=SYSTEM, operation=call.operation)
                return body, response.headers.get("X-Next-After")
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, system=SYSTEM, operation=call.operation) from exc

    async def send_batch(self, calls: Sequence[SLCall]) -> list[Any]:
        """Many operations in one ``$batch``: a result or a ``ConnectorError`` per call, in order."""
        items = []
        for i, call in enumerate(calls):
            item: dict[str, Any] = {"id": str(i), "method": call.method, "url": API + call.url}
            headers = call.headers()
            if headers:
                item["headers"] = headers
            if call.body is not None:
                item["body"] = call.body
            items.append(item)
        response = await self._post_or_get("POST", "/$batch", {"requests": items}, {}, "batch")
        if not response.is_success:
            raise self.error(response, "batch")
        answers = {item.id: item for item in S.BatchResponse.model_validate(orjson.loads(response.content)).responses}
        results: list[Any] = []
        for i, call in enumerate(calls):
            answer = answers.get(str(i))
            if answer is None:
                results.append(ConnectorError(f"{SYSTEM} batch returned no answer for {call.operation}",
                                              system=SYSTEM, operation=call.operation))
            elif 200 <= answer.status < 300:
                results.append(call.parse(answer.body))
            else:
                sub = httpx.Response(answer.status, json=answer.body, headers=answer.headers,
                                     request=response.request)
                results.append(self.error(sub, call.operation))
        return results

    def error(self, response: httpx.Response, operation: str) -> ConnectorError:
        detail = _detail(response)
        message = None
        if detail is not None and detail.message:
            message = f"{SYSTEM} {operation}: HTTP {response.status_code} {detail.code}: {detail.message}"
        error = error_for_response(
            response, system=SYSTEM, operation=operation, decisions=self._decisions,
            provider_code=lambda r: detail.code if detail is not None else None, message=message,
            field=detail.field if detail is not None else None)
        if isinstance(error, Conflict) and detail is not None and detail.existing:
            return ExistingRecord(str(error), table=detail.existing.get("table"), existing=detail.existing.get("id"),
                                  system=SYSTEM, operation=operation, status=error.status,
                                  provider_code=error.provider_code, request_id=error.request_id, body=error.body,
                                  field=error.field)
        return error

    # ---- typed operations ---------------------------------------------------------------------------

    async def get_setup(self) -> S.Setup:
        return await self.send(Calls.setup())  # type: ignore[no-any-return]

    async def find_key(self, key: str) -> S.KeyHolder:
        return await self.send(Calls.find_key(key))  # type: ignore[no-any-return]

    async def list_customers(self, **filters: Any) -> list[S.Customer]:
        return await self.send(Calls.list_customers(**filters))  # type: ignore[no-any-return]

    async def get_customer(self, cust_id: str) -> S.Customer:
        return await self.send(Calls.get_customer(cust_id))  # type: ignore[no-any-return]

    async def create_customer(self, body: Mapping[str, Any], key: str | None = None) -> S.Customer:
        return await self.send(Calls.create_customer(body, key))  # type: ignore[no-any-return]

    async def update_customer(self, cust_id: str, body: Mapping[str, Any]) -> S.Customer:
        return await self.send(Calls.update_customer(cust_id, body))  # type: ignore[no-any-return]

    async def list_sales_orders(self, **filters: Any) -> list[S.SOHeader]:
        return await self.send(Calls.list_sales_orders(**filters))  # type: ignore[no-any-return]

    async def get_sales_order(self, ord_nbr: str) -> S.SOHeader:
        return await self.send(Calls.get_sales_order(ord_nbr))  # type: ignore[no-any-return]

    async def create_sales_order(self, body: Mapping[str, Any], key: str | None = None) -> S.SOHeader:
        return await self.send(Calls.create_sales_order(body, key))  # type: ignore[no-any-return]

    async def hold_sales_order(self, ord_nbr: str, reason: str | None) -> S.SOHeader:
        return await self.send(Calls.hold_sales_order(ord_nbr, reason))  # type: ignore[no-any-return]

    async def release_sales_order(self, ord_nbr: str) -> S.SOHeader:
        return await self.send(Calls.release_sales_order(ord_nbr))  # type: ignore[no-any-return]

    async def cancel_sales_order(self, ord_nbr: str, reason: str | None = None) -> S.SOHeader:
        return await self.send(Calls.cancel_sales_order(ord_nbr, reason))  # type: ignore[no-any-return]

    async def invoice_sales_order(self, ord_nbr: str, body: Mapping[str, Any], key: str | None = None) -> S.ARDoc:
        return await self.send(Calls.invoice_sales_order(ord_nbr, body, key))  # type: ignore[no-any-return]

    async def create_ar_document(self, body: Mapping[str, Any], key: str | None = None) -> S.ARDoc:
        return await self.send(Calls.create_ar_document(body, key))  # type: ignore[no-any-return]

    async def list_ar_documents(self, **filters: Any) -> list[S.ARDoc]:
        return await self.send(Calls.list_ar_documents(**filters))  # type: ignore[no-any-return]

    async def get_ar_document(self, doc_type: str, ref_nbr: str) -> S.ARDoc:
        return await self.send(Calls.get_ar_document(doc_type, ref_nbr))  # type: ignore[no-any-return]

    async def list_ar_adjustments(self, **filters: Any) -> list[S.ARAdjust]:
        return await self.send(Calls.list_ar_adjustments(**filters))  # type: ignore[no-any-return]

    async def release_ar_batch(self, bat_nbr: str) -> S.Batch:
        return await self.send(Calls.release_ar_batch(bat_nbr))  # type: ignore[no-any-return]

    async def create_gl_batch(self, body: Mapping[str, Any], key: str | None = None) -> S.Batch:
        return await self.send(Calls.create_gl_batch(body, key))  # type: ignore[no-any-return]

    async def get_gl_batch(self, bat_nbr: str, module: str = "GL") -> S.Batch:
        return await self.send(Calls.get_gl_batch(bat_nbr, module))  # type: ignore[no-any-return]

    async def post_gl_batch(self, bat_nbr: str, module: str = "GL") -> S.Batch:
        return await self.send(Calls.post_gl_batch(bat_nbr, module))  # type: ignore[no-any-return]

    async def post_transactions(self, module: str | None = None) -> S.PostResult:
        return await self.send(Calls.post_transactions(module))  # type: ignore[no-any-return]


def _detail(response: httpx.Response) -> S.ErrorDetail | None:
    try:
        return S.ErrorBody.model_validate(response.json()).error
    except ValueError:
        return None
