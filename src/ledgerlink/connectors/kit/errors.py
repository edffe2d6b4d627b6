"""Connector errors, grouped by what the engine must do about them.

    ConnectorError                 any failure talking to an external system
    ├── RetryableError             try again later (timeouts, connection resets, 429, 5xx)
    │   ├── RateLimited            429; ``retry_after`` says when
    │   └── Deferred               held back before it was sent (nothing reached the system): wait
    │       ├── CircuitOpen        the endpoint's circuit breaker is open; ``retry_after`` says when to look again
    │       └── Throttled          the endpoint's rate limit (or a 429 pause shared by the fleet) says wait
    └── PermanentError             retrying cannot help: dead-letter with the evidence
        ├── AuthenticationFailed   401/403: credentials or permissions
        ├── NotFound               404
        ├── Conflict               409: the record already exists (``existing`` names it when known)
        └── Rejected               400/422: the system refused the content (validation, business rule)

    WebhookRejected                an inbound webhook that must not be accepted (401/400/413/415/422)

Every error carries its evidence: HTTP status, the provider's own code, request
id and a redacted, truncated body, so a dead-letter entry explains itself.
"""

from __future__ import annotations

from typing import Any

from ledgerlink.model.cardnumbers import redact_card_numbers

_BODY_LIMIT = 2000


def redact_body(body: str | bytes | None) -> str | None:
    """Evidence-safe copy of a response body: card numbers removed, length capped."""
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = redact_card_numbers(text)
    return text if len(text) <= _BODY_LIMIT else text[:_BODY_LIMIT] + "…[truncated]"


class ConnectorError(Exception):
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        system: str,
        operation: str | None = None,
        status: int | None = None,
        provider_code: str | None = None,
        request_id: str | None = None,
        body: str | bytes | None = None,
        retry_after: float | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(redact_card_numbers(message))
        self.system = system
        self.operation = operation
        self.status = status
        self.provider_code = provider_code
        self.request_id = request_id
        self.body = redact_body(body)
        self.retry_after = retry_after
        self.field = field

    def evidence(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": str(self),
            "system": self.system,
            "operation": self.operation,
            "status": self.status,
            "provider_code": self.provider_code,
            "request_id": self.request_id,
            "field": self.field,
            "body": self.body,
            "retryable": self.retryable,
        }


class RetryableError(ConnectorError):
    retryable = True


class RateLimited(RetryableError):
    pass


class Deferred(RetryableError):
    """The engine held a call back before sending it, so the system saw nothing: not a failure of the work.

    The runtime sends the event back to wait ``retry_after`` seconds without counting an attempt (see
    ``connectors/kit/guard.py`` and ``docs/runtime.md``). Code that does not know this class still treats it
    as retryable.
    """

    reason = "deferred"


class CircuitOpen(Deferred):
    reason = "circuit_open"


class Throttled(Deferred):
    reason = "throttled"


class PermanentError(ConnectorError):
    retryable = False


class AuthenticationFailed(PermanentError):
    pass


class NotFound(PermanentError):
    pass


class Conflict(PermanentError):
    def __init__(self, message: str, *, existing: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.existing = existing


class Rejected(PermanentError):
    pass


class WebhookRejected(Exception):
    """An inbound webhook refused at the edge. ``status`` is the HTTP answer to give."""

    def __init__(self, status: int, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.reason}
        if self.field:
            body["field"] = self.field
        return body
