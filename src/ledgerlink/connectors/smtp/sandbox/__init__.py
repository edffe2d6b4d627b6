"""An SMTP sink for the demo and the tests: a real SMTP server (aiosmtpd) that keeps every message it accepts.

``SMTPSink`` listens on a port (0: any free one) in the running event loop and stores what it receives in
memory, and, with ``store_path``, one JSON line per message in a file. ``fail_next`` makes it answer the next
deliveries with a chosen SMTP code (``451`` a temporary failure, ``550`` a refusal), to exercise the sender's
retries. ``create_app`` wraps it as the ASGI app ``ledgerlink sandbox smtp`` serves: the SMTP server starts
and stops with the app, and HTTP shows what arrived::

    GET    /messages            every message ({from, to, subject, body, message_id, key, received_at}); ?to=
    DELETE /messages            forget them
    POST   /__sandbox/faults    {"fail_next": [451, 451]}
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledgerlink.connectors.smtp.channel import KEY_HEADER


class SinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8825, ge=0, le=65535)  # 0: any free port
    store_path: str | None = None  # also append each message as a JSON line here
    fail_next: list[int] = Field(default_factory=list)


class SMTPSink:
    def __init__(self, settings: SinkSettings | Mapping[str, Any] | None = None) -> None:
        if not isinstance(settings, SinkSettings):
            settings = SinkSettings.model_validate(dict(settings or {}))
        self.settings = settings
        self.messages: list[dict[str, Any]] = []
        self.fail_next: list[int] = list(settings.fail_next)
        self.refused = 0
        self._server: asyncio.AbstractServer | None = None
        self.port = settings.smtp_port
        self.received = asyncio.Condition()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="ledgerlink-sink", loop=loop), self.settings.smtp_host,
            self.settings.smtp_port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SMTPSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # aiosmtpd handler hook
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fail_next:
            code = self.fail_next.pop(0)
            self.refused += 1
            return f"{code} sandbox fault: {'try again later' if code < 500 else 'refused'}"
        raw = envelope.original_content or envelope.content or b""
        parsed = email.message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(), policy=email.policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        record = {
            "from": envelope.mail_from, "to": list(envelope.rcpt_tos), "subject": str(parsed["Subject"] or ""),
            "body": body.get_content() if body is not None else "", "message_id": str(parsed["Message-ID"] or ""),
            "key": str(parsed[KEY_HEADER] or ""), "received_at": time.time(),
        }
        self.messages.append(record)
        if self.settings.store_path:
            path = Path(self.settings.store_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as handle:
                handle.write(orjson.dumps(record) + b"\n")
        async with self.received:
            self.received.notify_all()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if address in m["to"]]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Until at least ``count`` messages arrived (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout), self.received:
            await self.received.wait_for(lambda: len(self.messages) >= count)
        return self.messages


def create_app(settings: SinkSettings | Mapping[str, Any] | None = None) -> Starlette:
    """The registry's entry point: the sink's SMTP server runs with the app; ``app.state.sink`` is the sink."""
    sink = SMTPSink(settings)

    def json(status: int, body: Any) -> Response:
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    async def messages(request: Request) -> Response:
        if request.method == "DELETE":
            sink.messages.clear()
        to = request.query_params.get("to")
        return json(200, sink.to(to) if to else sink.messages)

    async def faults(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body() or b"{}")
            codes = body.get("fail_next", [])
            if not isinstance(codes, list) or not all(isinstance(c, int) and 400 <= c < 600 for c in codes):
                raise ValueError
        except (ValueError, AttributeError):
            return json(400, {"error": "fail_next must be a list of SMTP codes (400-599)", "field": "fail_next"})
        sink.fail_next = list(codes)
        return json(200, {"fail_next": sink.fail_next})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with sink:
            yield

    app = Starlette(routes=[Route("/messages", messages, methods=["GET", "DELETE"]),
                            Route("/__sandbox/faults", faults, methods=["POST"])], lifespan=lifespan)
    app.state.sink = sink
    return app


__all__ = ["SMTPSink", "SinkSettings", "create_app"]
