"""The ASGI app: auth, the ``/api/v1`` resources, the OData-JSON-style ``$batch``, the OAuth2 token
endpoint and the ``/__sandbox`` control routes.

Handlers are synchronous SQLite work run on the event loop's thread: there is one writer, no request
awaits inside a transaction, so requests are serialised exactly like SL's own row locks would make
concurrent writers of the same rows wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledgerlink.connectors.dynamics_sl.sandbox import posted
from ledgerlink.connectors.dynamics_sl.sandbox.api import PREFIX, Call, execute, prepare, split_url
from ledgerlink.connectors.dynamics_sl.sandbox.auth import Denied, authenticate, issue_token
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError
from ledgerlink.connectors.dynamics_sl.sandbox.faults import Fault, FaultPlan, FaultRule, MaintenanceWindow
from ledgerlink.connectors.dynamics_sl.sandbox.settings import SandboxSettings, coerce_settings
from ledgerlink.connectors.dynamics_sl.sandbox.state import SandboxState
from ledgerlink.connectors.kit.sandbox_faults import BrokenResponse, quiet_injected_faults
from ledgerlink.model.cardnumbers import contains_card_number

Result = tuple[int, Any, dict[str, str]]


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "table": None, "field": None}}


def run_posted_csv(state: SandboxState, call: Call, user: str) -> Response:
    """``GET ar/posted-payments`` asked for as ``text/csv``: the page as CSV, the cursor in ``X-Next-After``."""
    try:
        prepare(call)
        data, next_after = posted.search_csv(state.context(call.company, user), call.query)
    except SLError as exc:
        return _json(exc.status, exc.body())
    return Response(data, media_type="text/csv", headers={"X-Next-After": next_after} if next_after else None)


def run_one(state: SandboxState, call: Call, user: str) -> Result:
    """A plain request: its own transaction (reads need none)."""
    try:
        route, params = prepare(call)
        ctx = state.context(call.company, user, call.key, minimal=call.minimal)
        if call.method == "GET":
            status, body = execute(ctx, route, params, call)
        else:
            with state.store.transaction():
                status, body = execute(ctx, route, params, call)
    except SLError as exc:
        return exc.status, exc.body(), {}
    return status, body, {}


def run_batch(state: SandboxState, body: Any, user: str, company: str, *, may_hold_card: bool = True,
              broken: list[Fault] | None = None) -> Result:
    """``$batch``: every item atomic on its own (a SAVEPOINT), the whole batch one commit. An item whose
    fault breaks the connection is appended to ``broken``: the caller then loses the whole answer."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list):
        return 400, _error(400, "InvalidBatch", 'the body must be {"requests": [...]}'), {}
    if len(requests) > state.settings.max_batch_requests:
        return 400, _error(400, "BatchTooLarge", f"at most {state.settings.max_batch_requests} requests"), {}
    responses = []
    with state.store.transaction():
        for index, item in enumerate(requests):
            responses.append(_batch_item(state, index, item, user, company, may_hold_card, broken))
    return 200, {"responses": responses}, {}


def _batch_item(state: SandboxState, index: int, item: Any, user: str, company: str,
                may_hold_card: bool = True, broken: list[Fault] | None = None) -> dict[str, Any]:
    ident = str(item.get("id", index)) if isinstance(item, dict) else str(index)
    if not isinstance(item, dict) or not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
        return {"id": ident, "status": 400, "body": _error(400, "InvalidBatch", "each request needs method and url")}
    headers = {k.lower(): v for k, v in (item.get("headers") or {}).items() if isinstance(v, str)}
    path, query = split_url(item["url"])
    method = item["method"].upper()
    if path == "/$batch":
        return {"id": ident, "status": 400, "body": _error(400, "InvalidBatch", "batches do not nest")}
    fault = state.faults.take(method, PREFIX + path, whole_request=False)
    if fault is not None and not fault.fails:
        fault = None
    if fault is not None and fault.breaks_connection and broken is not None:
        broken.append(fault)
    if fault is not None and not fault.after_commit:
        status, body, extra = fault.response()
        return {"id": ident, "status": status, "body": body, "headers": extra}
    call = Call(method, path, query, item.get("body"), headers.get("x-sl-company", company),
                headers.get("idempotency-key"), Call.wants_minimal(headers.get("prefer")), may_hold_card)
    try:
        route, params = prepare(call)
        ctx = state.context(call.company, user, call.key, minimal=call.minimal)
        with state.store.savepoint():
            status, body = execute(ctx, route, params, call)
    except SLError as exc:
        status, body = exc.status, exc.body()
    except Exception as exc:  # a sandbox bug must not take the rest of the batch with it
        status, body = 500, _error(500, "InternalError", f"{type(exc).__name__}: {exc}")
    if fault is not None:
        status, body, extra = fault.response()
        return {"id": ident, "status": status, "body": body, "headers": extra}
    return {"id": ident, "status": status, "body": body}


def create_app(settings: Mapping[str, Any] | SandboxSettings | None = None, *,
               clock: Callable[[], datetime] | None = None) -> Starlette:
    """The sandbox as an ASGI app; its state is ``app.state.sl`` (a ``SandboxState``)."""
    config = coerce_settings(settings)
    state = SandboxState(config, clock or datetime.now)

    def user_of(request: Request) -> str:
        return authenticate(request.headers, config.api_keys, state.tokens)

    async def api(request: Request) -> Response:
        try:
            user = user_of(request)
        except Denied as denied:
            return _json(denied.status, denied.body, denied.headers)
        path = "/" + request.path_params["path"]
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            return _json(400, _error(400, "InvalidJson", f"the body is not JSON: {exc}"))
        company = request.headers.get("x-sl-company", config.company)
        key = request.headers.get("idempotency-key")
        fault = state.faults.take(request.method, PREFIX + path)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and not fault.fails:
            fault = None
        if fault is not None and not fault.after_commit:
            return BrokenResponse(fault) if fault.breaks_connection else _json(*fault.response())  # type: ignore[return-value]
        # one scan of the raw bytes; only a request that holds a card number is walked to name the field
        may_hold_card = contains_card_number(raw.decode("utf-8", "replace")) if raw else False
        broken: list[Fault] = []
        if path == "/ar/posted-payments" and request.method == "GET" and "text/csv" in request.headers.get("accept", ""):
            return run_posted_csv(state, Call("GET", path, dict(request.query_params), None, company, key), user)
        if path == "/$batch" and request.method == "POST":
            result = run_batch(state, body, user, company, may_hold_card=may_hold_card, broken=broken)
        else:
            call = Call(request.method, path, dict(request.query_params), body, company, key,
                        Call.wants_minimal(request.headers.get("prefer")), may_hold_card)
            result = run_one(state, call, user)
        if fault is None and broken:
            fault = broken[0]  # an item's broken connection loses every item's answer
        if fault is not None:  # the work is committed; the caller cannot know
            return BrokenResponse(fault) if fault.breaks_connection else _json(*fault.response())  # type: ignore[return-value]
        return _json(*result)

    async def token(request: Request) -> Response:
        return _json(*issue_token(await request.body(), request.headers, config.oauth_clients, state.tokens))

    async def control(request: Request) -> Response:
        if not config.control_enabled:
            return _json(404, _error(404, "NoSuchRoute", "control routes are disabled"))
        try:
            user_of(request)
        except Denied as denied:
            return _json(denied.status, denied.body, denied.headers)
        action = request.path_params["action"]
        raw = await request.body()
        try:
            return _json(200, _control(state, request.method, action, orjson.loads(raw) if raw else {}))
        except orjson.JSONDecodeError as exc:
            return _json(400, _error(400, "InvalidJson", f"the body is not JSON: {exc}"))
        except SLError as exc:
            return _json(exc.status, exc.body())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.close()

    app = Starlette(routes=[
        Route("/oauth2/token", token, methods=["POST"]),
        Route(PREFIX + "/{path:path}", api, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        Route("/__sandbox/{action:path}", control, methods=["GET", "POST", "PUT", "DELETE"]),
    ], lifespan=lifespan)
    app.state.sl = state
    quiet_injected_faults()
    return app


def _control(state: SandboxState, method: str, action: str, body: Any) -> Any:
    if action == "counts" and method == "GET":
        return state.counts()
    if action == "reset" and method == "POST":
        state.reset()
        return {"reset": True}
    if action in ("faults", "faults/maintenance"):
        try:
            if method == "POST" and action == "faults":  # one more rule
                state.faults.add(FaultRule.model_validate(body))
            elif method == "POST":  # one more maintenance window
                state.faults.add_maintenance(MaintenanceWindow.model_validate(body))
            elif method == "PUT":  # the whole script
                state.faults.load(FaultPlan.model_validate(body))
            elif method == "DELETE":
                state.faults.clear()
        except ValidationError as exc:
            raise SLError(400, "InvalidFaultScript", str(exc)) from None
        return {"faults": [r.model_dump() for r in state.faults.rules], **state.faults.describe()}
    if action == "periods" and method == "POST":
        state.set_periods(ar=body.get("AR"), gl=body.get("GL"))
        company = state.company(state.settings.company)
        return {"AR": company.ar_period, "GL": company.gl_period}
    if action == "tokens/expire" and method == "POST":
        state.tokens.expire_all()
        return {"expired": True}
    raise SLError(404, "NoSuchRoute", f"no control action {method} {action}")
