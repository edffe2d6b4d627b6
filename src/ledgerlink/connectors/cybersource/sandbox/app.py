"""The Cybersource sandbox as one ASGI app: signed API routes, webhook emitter, ``/__sandbox/`` controls.

Every API call is authenticated exactly like the real service (HTTP
Signature over the ``Host`` as received, digest over the raw body) and refused
with the real 401 body otherwise. ``/__sandbox/`` endpoints are unsigned and
exist for tests and demos only: statistics, emitter and fault knobs, waiting
for webhook delivery to finish, the delivery log, closing a day into batches,
the business clock, chargebacks, report anomalies, and a dump of the store (so
an end-to-end test can prove no card number was kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledgerlink.connectors.cybersource.auth import Credential, HttpSignatureVerifier, SignatureRejected
from ledgerlink.connectors.cybersource.cards import brand_for_type, type_for_number
from ledgerlink.connectors.cybersource.sandbox.decisions import DecisionManager, risk_control_routes
from ledgerlink.connectors.cybersource.sandbox.declines import InstrumentOutcomes
from ledgerlink.connectors.cybersource.sandbox.disputes import Disputes
from ledgerlink.connectors.cybersource.sandbox.emitter import WebhookEmitter
from ledgerlink.connectors.cybersource.sandbox.money_controls import money_control_routes
from ledgerlink.connectors.cybersource.sandbox.notifications import WebhookHub
from ledgerlink.connectors.cybersource.sandbox.payments import Payments
from ledgerlink.connectors.cybersource.sandbox.reporting_api import batch_detail_download, window
from ledgerlink.connectors.cybersource.sandbox.reports import Reports
from ledgerlink.connectors.cybersource.sandbox.search import Search
from ledgerlink.connectors.cybersource.sandbox.settings import (
    FaultSettings,
    ReportAnomalies,
    SandboxSettings,
    SettlementSettings,
)
from ledgerlink.connectors.cybersource.sandbox.settlement import Settlements
from ledgerlink.connectors.cybersource.sandbox.store import Store
from ledgerlink.connectors.cybersource.sandbox.tms import SEEDED_CARDS, TokenVault
from ledgerlink.connectors.cybersource.sandbox.tms_api import tms_control_routes, tms_routes
from ledgerlink.connectors.cybersource.sandbox.wire import (
    AUTH_FAILED,
    TMS_JSON,
    Family,
    Problem,
    json_response,
    parse_body,
    pts_error,
    read_json,
)
from ledgerlink.connectors.kit.sandbox_faults import (
    BrokenResponse,
    FaultScript,
    WebhookFaults,
    quiet_injected_faults,
)

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], str, dict[str, str]], Any]  # (body, merchant id, path+query params)


class Sandbox:
    """State, emitter and app of one sandbox; ``app.state.sandbox`` gives tests this object."""

    def __init__(
        self,
        settings: SandboxSettings | Mapping[str, Any] | None = None,
        *,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(settings, SandboxSettings):
            settings = SandboxSettings.model_validate(dict(settings or {}))
        self.settings = settings
        self.fault_script = FaultScript()
        self.rng = random.Random(settings.emitter.seed)
        self.store = Store()
        self.verifier = HttpSignatureVerifier(
            [Credential(c.merchant_id, c.key_id, c.shared_secret, c.portfolio_id) for c in settings.credentials],
            clock_skew_seconds=settings.clock_skew_seconds,
        )
        self.emitter = WebhookEmitter(settings.emitter, transport=webhook_transport)
        self.faults = settings.faults
        self.vault = TokenVault(self.store, settings.vault_key, self.rng)
        self.hub = WebhookHub(self.store, self.emitter, self.rng)
        self.vault.notify = self.hub.publish_token_event
        self.payments = Payments(self.store, self.vault, settings.outcome_by_cents, self.rng, self.hub.publish,
                                 settings.refund_outcome_by_cents)
        self.payments.instrument_outcomes = InstrumentOutcomes(settings.instrument_outcomes)
        self.decisions = DecisionManager(self.store, self.payments, self.hub)
        self.search = Search(self.store)
        self.settlements = Settlements(self.store, settings.settlement)
        self.disputes = Disputes(self.store, settings.settlement, self.rng)
        self.reports = Reports(self.store, self.settlements, self.disputes, settings.anomalies)
        first_merchant = settings.credentials[0].merchant_id
        if settings.seed_tokens:
            self.vault.seed(first_merchant)
        self.hub.seed(settings.subscriptions, first_merchant)
        self.app = self._build_app()

    @property
    def faults(self) -> FaultSettings:
        """The fault script as configured; setting it restarts the script (shots, windows, draws)."""
        return self._faults

    @faults.setter
    def faults(self, value: FaultSettings) -> None:
        self._faults = value
        plan = value.script()
        if plan.seed is None:
            plan = plan.model_copy(update={"seed": self.settings.emitter.seed})
        self.fault_script.load(plan)
        if value.webhooks is not None:
            self.emitter.configure(value.webhooks.model_dump())

    def describe_faults(self) -> dict[str, Any]:
        """``GET /__sandbox/faults``: the settings, the emitter's webhook faults, and what was injected."""
        knobs = self.emitter.settings
        return {**self._faults.model_dump(mode="json"),
                "webhooks": {"duplicate_rate": knobs.duplicate_rate, "reorder_window": knobs.reorder_window,
                             "drop_rate": knobs.drop_rate},
                "injected": {**self.fault_script.injected, "webhooks_dropped": self.emitter.counters["dropped"],
                             "webhooks_duplicated": self.emitter.counters["duplicates"]}}

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.emitter.start()

    async def stop(self) -> None:
        await self.emitter.stop()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def stats(self) -> dict[str, Any]:
        return {
            "payments": self.store.counts_by_status(),
            "transactions": len(self.store.transactions),
            "customers": len(self.store.customers),
            "subscriptions": len(self.store.subscriptions),
            "batches": len(self.store.batches),
            "settled_days": len(self.store.settled_days),
            "chargebacks": len(self.store.chargebacks),
            "webhooks": self.emitter.stats(),
        }

    def configure_settlement(self, changes: Mapping[str, Any]) -> SettlementSettings:
        """Change settlement knobs at run time (fees, batches per currency, auto close, chargeback fees)."""
        settings = SettlementSettings.model_validate({**self.settlements.settings.model_dump(), **changes})
        self.settlements.settings = self.disputes.settings = settings
        return settings

    def configure_anomalies(self, changes: Mapping[str, Any] | None) -> ReportAnomalies:
        """Merge report anomaly knobs into the current ones (None: back to no anomalies)."""
        base = self.reports.anomalies.model_dump() if changes is not None else {}
        self.reports.anomalies = ReportAnomalies.model_validate({**base, **(changes or {})})
        return self.reports.anomalies

    # --- the signed API ----------------------------------------------------------------------

    async def _admit(self, request: Request) -> tuple[str, bytes, Response | None, Response | None]:
        """Authenticate like the real service, then draw a fault: (merchant, body, refusal, fault after work)."""
        body = await request.body()
        scope = request.scope
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            verified = self.verifier.verify(request.method, target, request.headers, body)
        except SignatureRejected as exc:
            log.info("sandbox refused %s %s: %s", request.method, scope["path"], exc.reason)
            return "", body, AUTH_FAILED.response(), None
        fault, after_commit = await self._fault(request)
        if fault is not None and not after_commit:
            return verified.merchant_id, body, fault, None
        return verified.merchant_id, body, None, fault

    def _api(self, handler: Handler, *, status: int = 201, family: Family = "pts",
             media_type: str | None = None) -> Callable[[Request], Any]:
        media_type = media_type or (TMS_JSON if family == "tms" else "application/hal+json")

        async def endpoint(request: Request) -> Response:
            merchant_id, body, refusal, fault = await self._admit(request)
            if refusal is not None:
                return refusal
            try:
                doc = parse_body(body, family) if request.method in ("POST", "PUT", "PATCH") else {}
                result = handler(doc, merchant_id, {**request.query_params, **request.path_params})
            except Problem as problem:
                return problem.response()
            if fault is not None:
                return fault  # the work is done, but the caller cannot know: an unknown outcome
            code, payload = result if isinstance(result, tuple) else (status, result)
            return json_response(code, payload, media_type)

        return endpoint

    async def _report_download(self, request: Request) -> Response:
        """GET /reporting/v3/report-downloads: signed and fault-injected like the JSON endpoints, answered in CSV."""
        merchant_id, _, refusal, fault = await self._admit(request)
        if refusal is not None:
            return refusal
        try:
            response = batch_detail_download(self.reports, merchant_id, request.query_params,
                                             request.headers.get("accept", ""))
        except Problem as problem:
            return problem.response()
        return fault or response

    async def _fault(self, request: Request) -> tuple[Response | None, bool]:
        """Draw from the fault script: (the failure to answer with, whether it comes after the work)."""
        fault = self.fault_script.take(request.method, request.scope["path"])
        if fault is None:
            return None, False
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if not fault.fails:
            return None, False
        if fault.breaks_connection:
            return BrokenResponse(fault), fault.after_commit  # type: ignore[return-value]
        if fault.status == 429:
            reason = "TOO_MANY_REQUESTS"
        elif fault.status >= 500:
            reason = "SYSTEM_ERROR"
        else:
            reason = "INVALID_REQUEST"
        message = "Down for maintenance" if fault.cause == "maintenance" else "Injected fault"
        problem = pts_error(reason, message, status=fault.status)
        problem.headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        return problem.response(), fault.after_commit

    def _routes(self) -> list[Route]:
        p, hub = self.payments, self.hub

        def void(doc: dict[str, Any], mid: str, params: dict[str, str]) -> Any:
            return p.void(doc, mid, params["id"])

        def refund(doc: dict[str, Any], mid: str, params: dict[str, str]) -> Any:
            return p.refund(doc, mid, params["id"])

        def unsubscribe(doc: dict[str, Any], mid: str, params: dict[str, str]) -> Any:
            hub.delete_subscription(params["id"])
            return 204, None

        # Reports are the signed merchant's own; ``organizationId`` is accepted and not used to reach others'.
        def net_fundings(doc: dict[str, Any], mid: str, params: dict[str, str]) -> Any:
            return self.reports.net_fundings(mid, *window(params))

        def chargebacks(doc: dict[str, Any], mid: str, params: dict[str, str]) -> Any:
            return self.disputes.details(mid, *window(params))

        reporting = "application/json"

        return [
            Route("/pts/v2/payments", self._api(lambda d, m, _: p.authorize(d, m)), methods=["POST"]),
            Route("/pts/v2/payments/{id}/captures", self._api(lambda d, m, a: p.capture(d, m, a["id"])),
                  methods=["POST"]),
            Route("/pts/v2/payments/{id}/refunds", self._api(refund), methods=["POST"]),
            Route("/pts/v2/captures/{id}/refunds", self._api(refund), methods=["POST"]),
            Route("/pts/v2/payments/{id}/reversals", self._api(lambda d, m, a: p.reverse(d, m, a["id"])),
                  methods=["POST"]),
            Route("/pts/v2/payments/{id}/voids", self._api(void), methods=["POST"]),
            Route("/pts/v2/captures/{id}/voids", self._api(void), methods=["POST"]),
            Route("/pts/v2/refunds/{id}/voids", self._api(void), methods=["POST"]),
            Route("/pts/v2/credits/{id}/voids", self._api(void), methods=["POST"]),
            Route("/tss/v2/transactions/{id}", self._api(lambda d, m, a: p.details(m, a["id"]), status=200),
                  methods=["GET"]),
            Route("/risk/v1/decisions/{id}/actions",
                  self._api(lambda d, m, a: self.decisions.action(d, m, a["id"])), methods=["POST"]),
            Route("/tss/v2/searches", self._api(lambda d, m, _: self.search.create(d, m)), methods=["POST"]),
            Route("/tss/v2/searches/{id}", self._api(lambda d, m, a: self.search.get(a["id"], m), status=200),
                  methods=["GET"]),
            Route("/reporting/v3/report-downloads", self._report_download, methods=["GET"]),
            Route("/reporting/v3/net-fundings", self._api(net_fundings, status=200, media_type=reporting),
                  methods=["GET"]),
            Route("/reporting/v3/chargeback-details", self._api(chargebacks, status=200, media_type=reporting),
                  methods=["GET"]),
            *tms_routes(self),
            Route("/kms/egress/v2/keys-sym", self._api(lambda d, m, _: hub.create_key(d, m)), methods=["POST"]),
            Route("/notification-subscriptions/v2/webhooks",
                  self._api(lambda d, m, _: hub.create_subscription(d, m)), methods=["POST"]),
            Route("/notification-subscriptions/v2/webhooks",
                  self._api(lambda d, m, a: hub.list_subscriptions(a.get("organizationId", m)), status=200),
                  methods=["GET"]),
            Route("/notification-subscriptions/v2/webhooks/{id}",
                  self._api(lambda d, m, a: hub.get_subscription(a["id"]), status=200), methods=["GET"]),
            Route("/notification-subscriptions/v2/webhooks/{id}",
                  self._api(unsubscribe), methods=["DELETE"]),
            Route("/notification-subscriptions/v2/products/{org}",
                  self._api(lambda d, m, a: hub.products(a["org"]), status=200), methods=["GET"]),
        ]

    # --- controls (unsigned, test-only) -----------------------------------------------------

    def _control_routes(self) -> list[Route]:
        async def stats(request: Request) -> Response:
            return json_response(200, self.stats(), "application/json")

        async def emitter(request: Request) -> Response:
            if request.method == "POST":
                try:
                    self.emitter.configure(await read_json(request))
                except ValidationError as exc:
                    return json_response(400, {"error": "invalid emitter settings",
                                               "issues": exc.errors(include_url=False, include_context=False)},
                                         "application/json")
            return json_response(200, self.emitter.settings.model_dump(mode="json"), "application/json")

        async def faults(request: Request) -> Response:
            """GET the script; POST merges knobs into it; PUT replaces it; DELETE: no faults at all."""
            try:
                if request.method == "POST":
                    self.faults = FaultSettings.model_validate({**self.faults.model_dump(), **await read_json(request)})
                elif request.method == "PUT":
                    self.faults = FaultSettings.model_validate(await read_json(request))
                elif request.method == "DELETE":
                    self.faults = FaultSettings(webhooks=WebhookFaults())
            except ValidationError as exc:
                return json_response(400, {"error": "invalid fault settings",
                                           "issues": exc.errors(include_url=False, include_context=False)},
                                     "application/json")
            return json_response(200, self.describe_faults(), "application/json")

        async def release_dropped(request: Request) -> Response:
            return json_response(200, {"released": self.emitter.release_dropped()}, "application/json")

        async def wait_idle(request: Request) -> Response:
            timeout = float(request.query_params.get("timeout", "30"))
            idle = await self.emitter.wait_idle(timeout)
            return json_response(200 if idle else 504, {"idle": idle, **self.emitter.stats()}, "application/json")

        async def notifications(request: Request) -> Response:
            event_type = request.query_params.get("eventType")
            entries = [e for e in self.emitter.log if event_type is None or e["eventType"] == event_type]
            limit = int(request.query_params.get("limit", "1000"))
            return json_response(200, entries[-limit:] if limit else [], "application/json")

        async def tokens(request: Request) -> Response:
            rows = [{"customerId": c, "paymentInstrumentId": pi, "brand": brand_for_type(type_for_number(number)),
                     "last4": number[-4:], "expirationMonth": exp[0], "expirationYear": exp[1]}
                    for c, pi, number, exp, _ in SEEDED_CARDS]
            return json_response(200, rows, "application/json")

        async def store(request: Request) -> Response:
            return json_response(200, self.store.snapshot(), "application/json")

        return [
            Route("/__sandbox/stats", stats, methods=["GET"]),
            Route("/__sandbox/emitter", emitter, methods=["GET", "POST"]),
            Route("/__sandbox/faults", faults, methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/__sandbox/emitter/release-dropped", release_dropped, methods=["POST"]),
            Route("/__sandbox/wait-idle", wait_idle, methods=["POST"]),
            Route("/__sandbox/notifications", notifications, methods=["GET"]),
            *money_control_routes(self),
            *risk_control_routes(self),
            *tms_control_routes(self),
            *self.payments.instrument_outcomes.routes(self),
            Route("/__sandbox/tokens", tokens, methods=["GET"]),
            Route("/__sandbox/store", store, methods=["GET"]),
        ]

    def _build_app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with self:
                yield

        app = Starlette(routes=self._routes() + self._control_routes(), lifespan=lifespan)
        app.state.sandbox = self
        quiet_injected_faults()
        return app


def create_app(
    settings: SandboxSettings | Mapping[str, Any] | None = None,
    *,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The registry's entry point. ``app.state.sandbox`` is the ``Sandbox`` (store, emitter, controls)."""
    return Sandbox(settings, webhook_transport=webhook_transport).app


def serve(settings: SandboxSettings | Mapping[str, Any] | None = None, host: str = "127.0.0.1",
          port: int = 8081, **uvicorn_options: Any) -> None:
    """Run the sandbox as a real server (for ``ledgerlink sandbox`` and demos); blocks until stopped."""
    import uvicorn

    options: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "log_level": "warning", "access_log": False}
    options.update(uvicorn_options)
    uvicorn.run(create_app(settings), host=host, port=port, **options)
