"""Flow control at the transport seam: every request a connector sends passes an ``EndpointGuard``.

An *endpoint* is ``<system>/<operation>``: the connector's system (``dynamics_sl``) and the operation its
client names on the request (``batch``, ``get_transaction``), carried in the request's extensions under
``OPERATION``; a request that names none is ``<system>/other``. Operation names are few and stable (they
are the ones errors and dead letters already show), unlike URLs, which hold record ids.

``GuardedTransport`` wraps the real transport. Before a request goes out it asks the guard, which may let
it through, make it wait a little (a rate-limit token), or refuse it with ``Deferred`` (a ``CircuitOpen``
breaker, a ``Throttled`` endpoint): nothing is sent then, and the runtime puts the work back to wait
without counting a failed attempt. After the answer the guard hears the outcome: a transport failure, a
timeout or a 5xx (and 408) is a failure; a 429 is ``THROTTLED``, with its ``Retry-After``; any other
answer means the system is up and is a success, a 4xx included. The guard may turn an answer into a
``Deferred`` too: a 429 (the system did not take the request; the fleet now waits) and a failed probe of a
half-open breaker (the system is still down) make the work wait rather than fail.

The runtime provides the guard (``runtime/flow_control.py``: breakers and token buckets shared by every
process through the database or Redis); connectors only name their operations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

import httpx

from ledgerlink.connectors.kit.errors import Deferred
from ledgerlink.connectors.kit.http import DEFAULT_LIMITS
from ledgerlink.connectors.kit.retry import parse_retry_after

OPERATION = "ledgerlink.operation"  # the request extension that names the operation
UNNAMED = "other"


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    THROTTLED = "throttled"
    UNKNOWN = "unknown"  # cancelled, or our own error: says nothing about the endpoint


def outcome_of(status: int) -> Outcome:
    if status == 429:
        return Outcome.THROTTLED
    if status >= 500 or status == 408:
        return Outcome.FAILURE
    return Outcome.SUCCESS


@dataclass(frozen=True, slots=True)
class Endpoint:
    system: str
    operation: str

    @property
    def key(self) -> str:
        return f"{self.system}/{self.operation}"


class EndpointGuard(Protocol):
    async def admit(self, endpoint: Endpoint) -> object:
        """Let one request to ``endpoint`` go (possibly after a short wait) and return a ticket for
        ``settle``; or raise ``Deferred`` (``CircuitOpen``, ``Throttled``) to hold it back."""
        ...

    def settle(self, endpoint: Endpoint, ticket: object, outcome: Outcome,
               retry_after: float | None = None) -> Deferred | None:
        """What became of a request ``admit`` let through; a ``Deferred`` to raise instead of its answer."""
        ...


def operation_extensions(operation: str) -> dict[str, str]:
    """The request extensions that name ``operation`` (pass as ``extensions=`` to ``AsyncClient.request``)."""
    return {OPERATION: operation}


class GuardedTransport(httpx.AsyncBaseTransport):
    """A transport that asks ``guard`` before each request and tells it the outcome after."""

    def __init__(self, inner: httpx.AsyncBaseTransport, guard: EndpointGuard, *, system: str) -> None:
        self.inner = inner
        self.guard = guard
        self.system = system
        self._endpoints: dict[str, Endpoint] = {}

    def endpoint(self, operation: str) -> Endpoint:
        found = self._endpoints.get(operation)
        if found is None:
            found = self._endpoints[operation] = Endpoint(self.system, operation)
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = self.endpoint(request.extensions.get(OPERATION) or UNNAMED)
        ticket = await self.guard.admit(endpoint)
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:  # timeouts, refused and reset connections
            held = self.guard.settle(endpoint, ticket, Outcome.FAILURE)
            if held is not None:
                raise held from exc
            raise
        except BaseException:
            self.guard.settle(endpoint, ticket, Outcome.UNKNOWN)
            raise
        outcome = outcome_of(response.status_code)
        retry_after = parse_retry_after(response.headers.get("retry-after")) if outcome is Outcome.THROTTLED else None
        held = self.guard.settle(endpoint, ticket, outcome, retry_after)
        if held is not None:
            await response.aclose()
            raise held
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def guarded_transport(guard: EndpointGuard, *, system: str,
                      inner: httpx.AsyncBaseTransport | None = None) -> GuardedTransport:
    """``inner`` (a sandbox's ASGI transport, say) or a real HTTP transport, behind ``guard``."""
    return GuardedTransport(inner or httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS), guard, system=system)
