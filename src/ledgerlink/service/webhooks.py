"""The webhook endpoint: verify, refuse card numbers, parse, durably store, then answer.

This is the hottest path in the product, so it is a plain Starlette endpoint
(no dependency injection) and every check is done once on the raw bytes:

1. unknown source -> 404; wrong content type -> 415; too large -> 413;
2. signature, freshness and replay (the connector's verifier) -> 401, nothing stored;
3. a card number anywhere in the body or in a header that is kept -> 422 naming
   the field, never the value; the body is neither stored nor logged. The raw
   text is scanned (fast); a body with JSON unicode escapes, which can spell out
   digits the raw scan cannot see, is also scanned parsed;
4. malformed JSON or a missing/invalid field -> 400 naming the field;
5. the inbox row is committed (group commit), then 200. A re-delivery answers 200
   ``duplicate`` and is counted; an event type nothing acts on is stored as ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ledgerlink.connectors.kit.errors import WebhookRejected
from ledgerlink.connectors.kit.protocols import WebhookSource
from ledgerlink.model import EventType, FieldIssue, InvalidInput
from ledgerlink.model.cardnumbers import card_number_fields, contains_card_number, redact_card_numbers
from ledgerlink.runtime.intake import InboxItem, Intake
from ledgerlink.runtime.schema import EVENT_ID_LENGTH, EVENT_TYPE_LENGTH, PARTITION_KEY_LENGTH
from ledgerlink.service.text_guard import nul_fields, nul_refusal
from ledgerlink.telemetry import WEBHOOKS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
KEPT_HEADERS = (
    "v-c-event-type", "v-c-webhook-id", "v-c-transaction-trace-id", "v-c-request-type", "v-c-retry-count",
    "v-c-organization-id", "v-c-product-name", "content-type",
)


def _json(status: int, body: object) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def body_card_number_fields(body: bytes) -> list[str]:
    """The fields of a raw JSON body that hold a card number: [] when none, ["body"] when it is not JSON."""
    if contains_card_number(body.decode("utf-8", "replace")):
        try:
            return card_number_fields(orjson.loads(body)) or ["body"]
        except orjson.JSONDecodeError:
            return ["body"]
    if b"\\u" in body:  # "\u0034\u0031..." or an escaped separator: only the parsed text shows the number
        try:
            return card_number_fields(orjson.loads(body))
        except orjson.JSONDecodeError:
            return []
    return []


def card_number_refusal(fields: list[str]) -> Response:
    return _json(422, {"error": "card_number_refused",
                       "message": "a full card number is not accepted; send gateway tokens only",
                       "fields": fields})


def _fits_the_inbox(event_id: str, partition_key: str, event_type: str, *, source: str) -> None:
    """Identifiers longer than the inbox's columns: PostgreSQL would refuse them at commit (SQLite would not)."""
    issues = [FieldIssue(field, f"longer than {limit} characters") for field, value, limit in (
        ("event id", event_id, EVENT_ID_LENGTH), ("partition key", f"{source}:{partition_key}", PARTITION_KEY_LENGTH),
        ("event type", event_type, EVENT_TYPE_LENGTH)) if len(value) > limit]
    if issues:
        raise InvalidInput(issues, source=source)


class WebhookEndpoint:
    def __init__(self, sources: Mapping[str, WebhookSource], intake: Intake, *, max_body: int = MAX_BODY_BYTES):
        self._sources = dict(sources)
        self._intake = intake
        self._max_body = max_body

    async def _read_body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return None
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def handle(self, request: Request) -> Response:
        name = request.path_params["source"]
        source = self._sources.get(name)
        if source is None:
            return _json(404, {"error": f"no webhook source named {redact_card_numbers(name)!r}"})
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            WEBHOOKS.labels(name, "unsupported_media_type").inc()
            return _json(415, {"error": "content-type must be application/json"})
        body = await self._read_body(request)
        if body is None:
            WEBHOOKS.labels(name, "too_large").inc()
            return _json(413, {"error": f"body larger than {self._max_body} bytes"})
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            source.verify_webhook(headers, body)
        except WebhookRejected as exc:
            WEBHOOKS.labels(name, "rejected").inc()
            log.warning("webhook from %s refused (%d): %s", name, exc.status, exc.reason,
                        extra={"ll_remote": request.client.host if request.client else None})
            return _json(exc.status, exc.as_dict())
        kept = {k: headers[k] for k in KEPT_HEADERS if k in headers}
        fields = body_card_number_fields(body)
        if contains_card_number("\n".join(kept.values())):
            fields += [f"headers.{k}" for k, v in kept.items() if contains_card_number(v)]
        if fields:
            WEBHOOKS.labels(name, "card_number").inc()
            log.warning("webhook from %s refused: card number in %s (not stored)", name, ", ".join(fields))
            return card_number_refusal(fields)
        if nul_fields("", b"", body):
            WEBHOOKS.labels(name, "invalid").inc()
            log.warning("webhook from %s refused: a NUL character in its body", name)
            return nul_refusal(["body"], source=name)
        try:
            event = source.parse_webhook(headers, body)
            _fits_the_inbox(event.event_id, event.partition_key, event.gateway_event_type, source=name)
        except InvalidInput as exc:
            WEBHOOKS.labels(name, "invalid").inc()
            log.warning("webhook from %s refused: %s", name, exc)
            return _json(400, exc.as_dict())
        item = InboxItem(
            source=name,
            event_id=event.event_id,
            event_type=event.gateway_event_type,
            partition_key=f"{name}:{event.partition_key}",
            body=body,
            headers=kept,
            ignored=event.event_type is EventType.UNKNOWN,
        )
        try:
            result = await self._intake.submit(item)
        except Exception:
            WEBHOOKS.labels(name, "unavailable").inc()
            log.exception("could not store webhook %s from %s; the sender will retry", event.event_id, name)
            return _json(503, {"error": "temporarily unable to store the event; retry"})
        WEBHOOKS.labels(name, result.value).inc()
        return _json(200, {"status": result.value, "event_id": event.event_id})


class WebhookFastPath:
    """Pure ASGI middleware that serves ``POST /webhooks/{source}`` before routing.

    Intake is the hot path: skipping the framework's middleware stack (error and exception middleware,
    body limits, telemetry hooks) and the router saves a noticeable share of each request's CPU. Every
    other request (including the health URL) goes through the app unchanged. ``create_app`` puts it in
    front of the whole FastAPI application, not among the app's own middleware.
    """

    def __init__(self, app: ASGIApp, endpoint: WebhookEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.serve(scope, receive, send):
            await self.app(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer ``scope`` if it is a webhook delivery; False (nothing sent) if it is not."""
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith("/webhooks/"):
                source = path[len("/webhooks/"):]
                if source and "/" not in source:
                    request = Request({**scope, "path_params": {"source": source}}, receive)
                    response = await self.endpoint.handle(request)
                    await response(scope, receive, send)
                    return True
        return False


async def health(request: Request) -> Response:
    """Cybersource validates a subscription's health-check URL with GET and POST; both answer 200."""
    return _json(200, {"status": "ok"})
