"""The operations console: one read-only, server-rendered page over what the admin API shows.

    GET  /console          events by status and counters, dead letters, the review queue, open cases,
                           reconciliation runs, customer notices, schedules, the latest audit entries
    GET  /console/login    the login form;  POST /console/login (form field ``token``) sets the cookie
    POST /console/logout   clears it

The page needs the viewer role, from a bearer header or the console's cookie (HttpOnly, SameSite=Strict,
Secure over HTTPS, path ``/console``; see ``service/auth.py``). Without a valid token it answers 401 with
the login form. Nothing here changes engine state: replays and decisions stay in the JSON API and the CLI,
which the audit log covers. Every value is HTML-escaped, and the page forbids scripts, frames and
caching (``Content-Security-Policy``, ``Cache-Control: no-store``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy import select

from ledgerlink.model import CaseStatus, ReviewStatus
from ledgerlink.runtime import audit, dlq
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.notifications import notification_counts
from ledgerlink.runtime.records import DatabaseCaseBook, list_reports
from ledgerlink.runtime.reviews import DatabaseReviewQueue, case_summary
from ledgerlink.runtime.schema import schedules
from ledgerlink.runtime.stats import engine_stats
from ledgerlink.service.auth import CONSOLE_COOKIE, ConsoleViewer, authenticate

# Routes reachable without a token (the route-role test allows exactly these).
PUBLIC_ROUTES = frozenset({("GET", "/console/login"), ("POST", "/console/login"), ("POST", "/console/logout")})
SESSION_SECONDS = 8 * 3600
ROWS = 20

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_STYLE = ("body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;"
          "margin-bottom:1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
          "th{background:#f3f3f3}h2{margin-top:1.2em}.muted{color:#777}.bad{color:#a00}")


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    document = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
                f"<style>{_STYLE}</style></head><body>{body}</body></html>")
    headers = {**_HEADERS, "WWW-Authenticate": "Bearer"} if status_code == 401 else _HEADERS
    return HTMLResponse(document, status_code=status_code, headers=headers)


def _login_page(message: str | None = None, status_code: int = 401) -> HTMLResponse:
    note = f'<p class="bad">{escape(message)}</p>' if message else ""
    return _page("ledgerlink console: sign in", (
        "<h1>ledgerlink console</h1>" + note +
        '<form method="post" action="/console/login"><label>API token (viewer or above) '
        '<input type="password" name="token" autocomplete="off" required></label> '
        '<button type="submit">Sign in</button></form>'
        '<p class="muted">Make one with <code>ledgerlink tokens create NAME --role viewer</code>.</p>'),
        status_code)


class ConsoleRoute(APIRoute):
    """A console route: a refused token gets the login page (401) instead of JSON."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except HTTPException as exc:
                if exc.status_code == status.HTTP_401_UNAUTHORIZED:
                    return _login_page("Sign in with an API token." if CONSOLE_COOKIE not in request.cookies
                                       else "That token is unknown or revoked: sign in again.")
                raise

        return run


router = APIRouter(prefix="/console", tags=["console"], route_class=ConsoleRoute, include_in_schema=False)


def _cell(value: Any) -> str:
    if value is None:
        return '<span class="muted">-</span>'
    if isinstance(value, float) and value > 1e9:  # epoch seconds
        value = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, (dict, list)):
        value = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else ", ".join(map(str, value))
    return escape(str(value))


def _table(title: str, columns: Iterable[str], rows: Iterable[Mapping[str, Any]], *, note: str = "") -> str:
    columns = list(columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    extra = f' <span class="muted">{escape(note)}</span>' if note else ""
    return (f"<h2>{escape(title)}{extra}</h2>" +
            (f"<table><tr>{head}</tr>{body}</table>" if body else '<p class="muted">none</p>'))


def _db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


@router.get("", response_class=HTMLResponse)
async def overview(request: Request, who: ConsoleViewer) -> HTMLResponse:
    db = _db(request)
    engine = request.app.state.engine

    def read(conn: Any) -> dict[str, Any]:
        return {
            "stats": engine_stats(conn, latency_window=0),
            "dead": [d.summary() for d in dlq.list_dead(conn, limit=ROWS)],
            "dead_total": dlq.count_dead(conn),
            "runs": list_reports(conn, limit=10),
            "schedules": [dict(r._mapping) for r in conn.execute(select(schedules))],
            "audit": [e.as_dict() for e in audit.entries(conn, limit=ROWS)],
            "notices": notification_counts(conn),
        }

    data = await db.read(read)
    reviews = await DatabaseReviewQueue(db, buckets=engine.settings.buckets).list(status=ReviewStatus.OPEN,
                                                                                  limit=ROWS)
    cases = await DatabaseCaseBook(db).list(status=CaseStatus.OPEN, type=None, limit=ROWS)
    now = time.time()
    stats = data["stats"]
    parts = [
        f"<h1>ledgerlink: {escape(request.app.state.integration.spec.name)}</h1>",
        f'<form method="post" action="/console/logout"><span class="muted">signed in as {escape(who.name)} '
        f"({escape(who.role.value)})</span> <button type=\"submit\">Sign out</button></form>",
        _table("Events by status", ["status", "count"],
               [{"status": k, "count": v} for k, v in sorted(stats["events"].items())]),
        _table("Counters", ["counter", "value"],
               [{"counter": k, "value": v} for k, v in sorted(stats["counters"].items())]),
        _table("Dead letters", ["seq", "source", "event_id", "event_type", "attempts", "error", "status", "message",
                                "dead_at"], data["dead"],
               note=f"{data['dead_total']} in all; replay with `ledgerlink dlq replay SEQ` or the admin API"),
        _table("Fraud review queue (open, riskiest first)", ["key", "order_reference", "amount", "points",
                                                             "age_hours"],
               [{**case_summary(c, now), "amount": f"{c.amount.format()} {c.amount.currency}"}
                for c in reviews]),
        _table("Open cases", ["type", "reference", "amount", "summary", "age_days"],
               [{**c.model_dump(mode="json"), "age_days": round((now - c.opened_at.timestamp()) / 86400, 2)}
                for c in cases]),
        _table("Reconciliation runs", ["run_id", "day", "status", "started_at", "finished_at", "error"],
               data["runs"]),
        _table("Customer notices", ["status", "count"],
               [{"status": k, "count": v} for k, v in sorted(data["notices"].items())]),
        _table("Schedules", ["name", "cron", "timezone", "next_run_at", "last_run_at"], data["schedules"]),
        _table("Audit log (latest)", ["seq", "at", "actor", "action", "target"], data["audit"]),
    ]
    return _page("ledgerlink console", "".join(parts))


@router.get("/login", response_class=HTMLResponse)
async def login_form() -> HTMLResponse:
    return _login_page(status_code=200)


@router.post("/login")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    principal = await authenticate(request, token) if token else None
    if principal is None:
        return _login_page("That token is unknown or revoked.")
    response = RedirectResponse("/console", status_code=status.HTTP_303_SEE_OTHER, headers=_HEADERS)
    response.set_cookie(CONSOLE_COOKIE, token, max_age=SESSION_SECONDS, path="/console", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/console/login", status_code=status.HTTP_303_SEE_OTHER, headers=_HEADERS)
    response.delete_cookie(CONSOLE_COOKIE, path="/console", httponly=True, samesite="strict")
    return response
