"""The gateway's resource routes, as one table, and the dispatcher both plain requests and ``$batch``
items go through (so a batched request behaves exactly like the same request sent alone)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from ledgerlink.connectors.dynamics_sl.keys import key_digest
from ledgerlink.connectors.dynamics_sl.sandbox import (
    ardocs,
    customers,
    gl,
    orders,
    payment_profiles,
    posted,
    recurring,
    refunds,
    reversals,
    tasks,
)
from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.common import Ctx, key_holder
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError
from ledgerlink.model.cardnumbers import card_number_fields, contains_card_number

PREFIX = "/api/v1"
Handler = Callable[[Ctx, dict[str, str], Mapping[str, str], Any], tuple[int, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    table: str


def _route(method: str, path: str, handler: Handler, table: str) -> Route:
    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"
    return Route(method, re.compile(regex), handler, table)


def _setup(ctx: Ctx, p: dict[str, str], q: Mapping[str, str], b: Any) -> tuple[int, Any]:
    cpny = ctx.company.cpny
    glsetup = ctx.store.one("SELECT * FROM GLSetup WHERE CpnyId = ?", (cpny,))
    arsetup = ctx.store.one("SELECT * FROM ARSetup WHERE CpnyID = ?", (cpny,))
    currencies = ctx.store.all("SELECT * FROM Currncy ORDER BY CuryId")
    return 200, {"GLSetup": ctx.out(T.GLSETUP, glsetup), "ARSetup": ctx.out(T.ARSETUP, arsetup),
                 "Currncy": [ctx.out(T.CURRNCY, c) for c in currencies], "DateFormat": ctx.codec.date_format}


def _accounts(ctx: Ctx, p: dict[str, str], q: Mapping[str, str], b: Any) -> tuple[int, Any]:
    return 200, {"value": [ctx.out(T.ACCOUNT, a) for a in ctx.store.all("SELECT * FROM Account ORDER BY Acct")],
                 "SubAcct": [ctx.out(T.SUBACCT, s) for s in ctx.store.all("SELECT * FROM SubAcct ORDER BY Sub")]}


def _key(ctx: Ctx, p: dict[str, str], q: Mapping[str, str], b: Any) -> tuple[int, Any]:
    digest = key_digest(p["key"])
    holder = key_holder(ctx, digest)
    if holder is None:
        raise SLError(404, "NotFound", "no record carries this idempotency key", table=None, field=T.KEY_FIELD)
    return 200, {"Key": p["key"], "Digest": digest, "Field": T.KEY_FIELD, "Table": holder["table"],
                 "Id": holder["id"]}


def _module(q: Mapping[str, str]) -> str:
    return (q.get("Module") or "GL").upper()


ROUTES: tuple[Route, ...] = (
    _route("GET", "/setup", _setup, "GLSetup"),
    _route("GET", "/accounts", _accounts, "Account"),
    _route("GET", "/keys/{key}", _key, "Batch"),
    _route("GET", "/customers", lambda c, p, q, b: customers.search(c, q), "Customer"),
    _route("POST", "/customers", lambda c, p, q, b: customers.create(c, b), "Customer"),
    _route("GET", "/customers/{id}", lambda c, p, q, b: customers.get(c, p["id"]), "Customer"),
    _route("PATCH", "/customers/{id}", lambda c, p, q, b: customers.patch(c, p["id"], b), "Customer"),
    _route("GET", "/customers/{id}/payment-profile", lambda c, p, q, b: payment_profiles.get(c, p["id"]),
           "xLLCustToken"),
    _route("POST", "/customers/{id}/payment-profile", lambda c, p, q, b: payment_profiles.put(c, p["id"], b),
           "xLLCustToken"),
    _route("GET", "/customer-changes", lambda c, p, q, b: payment_profiles.changes(c, q), "Customer"),
    _route("GET", "/payment-tokens", lambda c, p, q, b: payment_profiles.search(c, q), "xLLCustToken"),
    _route("GET", "/salesorders", lambda c, p, q, b: orders.search(c, q), "SOHeader"),
    _route("POST", "/salesorders", lambda c, p, q, b: orders.create(c, b), "SOHeader"),
    _route("GET", "/salesorders/{id}", lambda c, p, q, b: orders.get(c, p["id"]), "SOHeader"),
    _route("POST", "/salesorders/{id}/hold", lambda c, p, q, b: orders.hold(c, p["id"], b), "SOHeader"),
    _route("POST", "/salesorders/{id}/release", lambda c, p, q, b: orders.release(c, p["id"]), "SOHeader"),
    _route("POST", "/salesorders/{id}/cancel", lambda c, p, q, b: orders.cancel(c, p["id"], b), "SOHeader"),
    _route("POST", "/salesorders/{id}/invoice", lambda c, p, q, b: orders.invoice(c, p["id"], b), "ARDoc"),
    _route("POST", "/salesorders/{id}/payment-status", lambda c, p, q, b: orders.payment_status(c, p["id"], b),
           "SOHeader"),
    _route("GET", "/ar/documents", lambda c, p, q, b: ardocs.search(c, q), "ARDoc"),
    _route("POST", "/ar/documents", lambda c, p, q, b: ardocs.create(c, b), "ARDoc"),
    _route("GET", "/ar/documents/{type}/{id}", lambda c, p, q, b: ardocs.get(c, p["type"], p["id"]), "ARDoc"),
    _route("POST", "/ar/documents/{type}/{id}/reverse",
           lambda c, p, q, b: reversals.reverse(c, p["type"], p["id"], b), "ARDoc"),
    _route("GET", "/ar/recurring", lambda c, p, q, b: recurring.search(c, q), "ARDoc"),
    _route("POST", "/ar/recurring", lambda c, p, q, b: recurring.create(c, b), "ARDoc"),
    _route("GET", "/ar/recurring/{id}", lambda c, p, q, b: recurring.get(c, p["id"]), "ARDoc"),
    _route("PATCH", "/ar/recurring/{id}", lambda c, p, q, b: recurring.patch(c, p["id"], b), "ARDoc"),
    _route("POST", "/ar/recurring/{id}/generate", lambda c, p, q, b: recurring.generate(c, p["id"], b), "ARDoc"),
    _route("POST", "/ar/recurring/{id}/status", lambda c, p, q, b: recurring.set_status(c, p["id"], b), "ARDoc"),
    _route("POST", "/customers/{id}/hold", lambda c, p, q, b: recurring.hold(c, p["id"], b), "Customer"),
    _route("POST", "/customers/{id}/release", lambda c, p, q, b: recurring.release(c, p["id"], b), "Customer"),
    _route("GET", "/ar/adjustments", lambda c, p, q, b: ardocs.adjustments(c, q), "ARAdjust"),
    _route("GET", "/ar/refund-requests", lambda c, p, q, b: refunds.pending(c, q), "ARDoc"),
    _route("POST", "/ar/refund-requests/{id}/result", lambda c, p, q, b: refunds.record_result(c, p["id"], b),
           "ARDoc"),
    _route("GET", "/ar/posted-payments", lambda c, p, q, b: posted.search(c, q), "ARDoc"),
    _route("POST", "/ar/batches/{id}/release", lambda c, p, q, b: ardocs.release(c, p["id"]), "Batch"),
    _route("POST", "/gl/batches", lambda c, p, q, b: gl.create(c, b), "Batch"),
    _route("GET", "/gl/batches/{id}", lambda c, p, q, b: gl.get(c, _module(q), p["id"]), "Batch"),
    _route("POST", "/gl/batches/{id}/release", lambda c, p, q, b: gl.release(c, p["id"]), "Batch"),
    _route("POST", "/gl/batches/{id}/post", lambda c, p, q, b: gl.post(c, _module(q), p["id"]), "Batch"),
    _route("POST", "/gl/post", lambda c, p, q, b: gl.post_all(c, q), "Batch"),
    _route("GET", "/tasks", lambda c, p, q, b: tasks.search(c, q), "xLLTask"),
    _route("POST", "/tasks", lambda c, p, q, b: tasks.upsert(c, b), "xLLTask"),
    _route("GET", "/tasks/{id}", lambda c, p, q, b: tasks.get(c, p["id"]), "xLLTask"),
    _route("PATCH", "/tasks/{id}", lambda c, p, q, b: tasks.patch(c, p["id"], b), "xLLTask"),
)


@dataclass
class Call:
    """One request to dispatch: a plain HTTP request or one item of a ``$batch``."""

    method: str
    path: str  # below the API prefix, e.g. /customers/C1
    query: dict[str, str]
    body: Any
    company: str
    key: str | None
    minimal: bool = False
    may_hold_card: bool = True  # False once the raw request was scanned and holds no card number

    @staticmethod
    def wants_minimal(prefer: str | None) -> bool:
        return prefer is not None and "return=minimal" in prefer


def split_url(url: str) -> tuple[str, dict[str, str]]:
    path, _, query = url.partition("?")
    if path.startswith(PREFIX):
        path = path[len(PREFIX):]
    return path, dict(parse_qsl(query, keep_blank_values=True))


def resolve(method: str, path: str) -> tuple[Route, dict[str, str]]:
    allowed = False
    for route in ROUTES:
        match = route.pattern.match(path)
        if match is None:
            continue
        if route.method == method:
            return route, {k: unquote(v).rstrip() for k, v in match.groupdict().items()}
        allowed = True
    if allowed:
        raise SLError(405, "MethodNotAllowed", f"{method} is not allowed on {PREFIX}{path}")
    raise SLError(404, "NoSuchRoute", f"no resource at {PREFIX}{path}")


def prepare(call: Call) -> tuple[Route, dict[str, str]]:
    """Checks that need no database: the route, the body's shape, and no card numbers anywhere."""
    route, params = resolve(call.method, call.path)
    if call.method in ("POST", "PATCH"):
        if call.body is None:
            call.body = {}
        if not isinstance(call.body, dict):
            raise SLError(400, "InvalidBody", "the request body must be a JSON object", table=route.table)
    if not call.may_hold_card and not any(contains_card_number(v) for v in (*call.query.values(), *params.values())):
        return route, params
    found = next(iter(card_number_fields(call.body) + card_number_fields(call.query) + card_number_fields(params)),
                 None)
    if found is not None:
        raise SLError(422, "CardDataRefused", f"{route.table}.{found}: a card number may not be sent to SL",
                      table=route.table, field=found)
    return route, params


def execute(ctx: Ctx, route: Route, params: dict[str, str], call: Call) -> tuple[int, Any]:
    return route.handler(ctx, params, call.query, call.body)
