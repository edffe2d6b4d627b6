"""The transport seam: every client talks through an ``httpx.AsyncClient``.

Production passes a base URL; tests and the demo may pass an in-process ASGI
app (a sandbox) instead, through ``httpx.ASGITransport``. Nothing is
monkeypatched. This module also turns HTTP failures into the error classes the
runtime acts on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ledgerlink.connectors.kit.errors import Conflict, ConnectorError, RetryableError
from ledgerlink.connectors.kit.retry import RetryDecisions, parse_retry_after

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=32)


def make_client(
    base_url: str,
    *,
    app: Any | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """An async HTTP client for ``base_url``; with ``app`` it calls that ASGI app in-process."""
    if app is not None and transport is None:
        transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        timeout=timeout,
        limits=DEFAULT_LIMITS,
        headers=headers,
    )


ProviderCode = Callable[[httpx.Response], str | None]


def error_for_response(
    response: httpx.Response,
    *,
    system: str,
    operation: str,
    decisions: RetryDecisions,
    provider_code: ProviderCode | None = None,
    message: str | None = None,
    field: str | None = None,
) -> ConnectorError:
    """The error a non-2xx response stands for, with its evidence attached."""
    cls = decisions.error_class(response.status_code)
    code = provider_code(response) if provider_code else None
    kwargs: dict[str, Any] = {
        "system": system,
        "operation": operation,
        "status": response.status_code,
        "provider_code": code,
        "request_id": response.headers.get("v-c-correlation-id") or response.headers.get("x-request-id"),
        "body": response.content,
        "retry_after": parse_retry_after(response.headers.get("retry-after")),
        "field": field,
    }
    text = message or f"{system} {operation} failed with HTTP {response.status_code}" + (f" ({code})" if code else "")
    if cls is Conflict:
        return Conflict(text, **kwargs)
    return cls(text, **kwargs)


def error_for_transport(exc: httpx.HTTPError, *, system: str, operation: str) -> ConnectorError:
    """Timeouts, resets and refused connections: the outcome is unknown, so retry (steps are idempotent)."""
    return RetryableError(f"{system} {operation}: {type(exc).__name__}: {exc}", system=system, operation=operation)


async def whole_body(response: httpx.Response, *, system: str, operation: str) -> bytes:
    """A streamed response's body. With its length announced (and no compression) it is read into one buffer
    of that length: a report or a page of rows is megabytes, and gathering the pieces and joining them held
    it twice and left the pieces' memory with the process. A body longer or shorter than announced is a
    ``RetryableError`` (the transfer broke; the read is safe to repeat)."""
    length = response.headers.get("content-length", "")
    if not length.isdigit() or response.headers.get("content-encoding", "identity") != "identity":
        return await response.aread()
    buffer = bytearray(int(length))
    at = 0
    with memoryview(buffer) as view:
        async for chunk in response.aiter_raw():
            if at + len(chunk) > len(buffer):
                raise RetryableError(f"{system} {operation}: more than the {length} bytes announced", system=system,
                                     operation=operation, status=response.status_code)
            view[at:at + len(chunk)] = chunk
            at += len(chunk)
    if at != len(buffer):
        raise RetryableError(f"{system} {operation}: {at} of the {length} bytes announced", system=system,
                             operation=operation, status=response.status_code)
    return bytes(buffer)
