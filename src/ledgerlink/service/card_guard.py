"""The card-number check at the edge of every other route: the admin API, health, metrics.

A pure ASGI middleware in front of the router: a request whose path, query
string or body holds a card number is answered 422 ``card_number_refused``
naming the fields (``path``, ``query.<name>``, or the JSON path in the body),
before any route runs. So a card number typed into an admin request is never
stored, logged by a route, or echoed back (a 404 that repeats the path, a
validation error that repeats the input). Webhooks do not pass here: their
fast path (``service.webhooks``) runs first and does the same check itself.
The same pass refuses a NUL character anywhere in the request (``service.text_guard``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledgerlink.model.cardnumbers import contains_card_number, redact_card_numbers
from ledgerlink.service.text_guard import nul_fields, nul_refusal
from ledgerlink.service.webhooks import body_card_number_fields, card_number_refusal

_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def request_card_number_fields(path: str, query_string: bytes, body: bytes) -> list[str]:
    """The parts of a request that hold a card number, named (never the value)."""
    fields = ["path"] if contains_card_number(path) else []
    if query_string:
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            if contains_card_number(name) or contains_card_number(value):
                fields.append(f"query.{redact_card_numbers(name)}")
    if body:
        fields += body_card_number_fields(body)
    return fields


class CardNumberGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        if scope["method"] in _WITH_BODY:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
        fields = request_card_number_fields(scope.get("path", ""), scope.get("query_string", b""), body)
        if fields:
            await card_number_refusal(fields)(scope, receive, send)
            return
        fields = nul_fields(scope.get("path", ""), scope.get("query_string", b""), body)
        if fields:  # PostgreSQL refuses a NUL in text: a 400 here, not a 500 in a route
            await nul_refusal(fields)(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
