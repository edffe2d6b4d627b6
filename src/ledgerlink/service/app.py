"""The ASGI application: webhook intake, admin API, health and metrics around a running engine."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ledgerlink.integrations import Integration
from ledgerlink.runtime.engine import Engine
from ledgerlink.service import access, admin, console, reviews
from ledgerlink.service.card_guard import CardNumberGuard
from ledgerlink.service.webhooks import WebhookEndpoint, WebhookFastPath, health

log = logging.getLogger(__name__)


def admin_token_digests(tokens: Iterable[str] = (), digests: Iterable[str] = ()) -> tuple[str, ...]:
    """Digests from explicit values plus ``LEDGERLINK_ADMIN_TOKEN`` / ``LEDGERLINK_ADMIN_TOKEN_SHA256``."""
    found = [admin.token_digest(t) for t in tokens if t]
    found += [d.strip().lower() for d in digests if d.strip()]
    if os.environ.get("LEDGERLINK_ADMIN_TOKEN"):
        found.append(admin.token_digest(os.environ["LEDGERLINK_ADMIN_TOKEN"]))
    for digest in os.environ.get("LEDGERLINK_ADMIN_TOKEN_SHA256", "").split(","):
        if digest.strip():
            found.append(digest.strip().lower())
    return tuple(dict.fromkeys(found))


class EngineApp(FastAPI):
    """The FastAPI application with webhook deliveries answered in front of it.

    A ``WebhookFastPath`` added with ``add_middleware`` would sit inside FastAPI's own stack (server-error,
    telemetry and body-limit middleware run on every request first); here it runs before any of it.
    """

    fast_path: WebhookFastPath | None = None  # (not `webhooks`: FastAPI uses that name for its OpenAPI webhooks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is None or not await self.fast_path.serve(scope, receive, send):
            await super().__call__(scope, receive, send)


def create_app(
    integration: Integration,
    engine: Engine,
    *,
    admin_tokens: Iterable[str] = (),
    manage_engine: bool = True,
) -> FastAPI:
    """``manage_engine``: start and stop the engine (and close the connectors) with the app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_engine:
            await engine.start()
        try:
            yield
        finally:
            if manage_engine:
                await engine.stop()
                await integration.aclose()

    app = EngineApp(title="ledgerlink", version="0.1.0", lifespan=lifespan,
                    description=f"Integration engine for {integration.spec.name}")
    app.state.db = engine.db
    app.state.engine = engine
    app.state.integration = integration
    app.state.admin_token_digests = admin_token_digests(admin_tokens)
    if not app.state.admin_token_digests:
        log.info("no bootstrap admin token (LEDGERLINK_ADMIN_TOKEN): only named tokens "
                 "(`ledgerlink tokens create`) open the admin API")

    app.add_middleware(CardNumberGuard)  # every route: a card number in path, query or body -> 422
    if engine.intake is not None:  # in front of everything: webhooks do their own card-number check
        endpoint = WebhookEndpoint({integration.gateway.name: integration.gateway}, engine.intake)
        app.fast_path = WebhookFastPath(app.router, endpoint)
    app.add_route("/webhooks/{source}/health", health, methods=["GET", "POST"], include_in_schema=False)
    app.include_router(admin.router)
    app.include_router(reviews.router)
    app.include_router(access.router)
    app.include_router(console.router)

    @app.get("/healthz", tags=["health"])
    async def liveness() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readiness(request: Request) -> Response:
        from sqlalchemy import text

        try:
            await engine.db.read(lambda conn: conn.execute(text("SELECT 1")).scalar_one())
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
        body = {"status": "ready", "database": engine.db.dialect, "workers": engine.worker is not None}
        # Back-pressure is reported, never refused: the node keeps acknowledging webhooks durably.
        pressure = engine.backpressure.pressure
        if pressure is not None:
            body["alerts"] = list(pressure.alerts)
            body["backpressure"] = pressure.as_dict()
        if engine.flow_control is not None:
            body["flow_control"] = engine.flow_control.snapshot()
        return JSONResponse(body)

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
