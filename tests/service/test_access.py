"""Who may call what: every route declares a role; 401 without a valid token, 403 below the role; tokens are
stored hashed, shown once, revocable; every mutating action is in the audit log with who, what and when.

The route list is read from the app, so a new route without a role declaration fails here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select
from typer.testing import CliRunner

from ledgerlink.cli import app as cli
from ledgerlink.model import InvalidInput
from ledgerlink.runtime import audit, dlq
from ledgerlink.runtime.schema import DEAD, api_tokens, inbox
from ledgerlink.runtime.tokens import Role
from ledgerlink.service import access, admin, console, reviews
from ledgerlink.service.auth import route_role
from tests.flows.harness import ADMIN_TOKEN
from tests.service.apps import Service, admin_service, make_token

ROUTERS = (admin.router, reviews.router, access.router, console.router)
DECLARED = {(method, route.path): route_role(route) for router in ROUTERS for route in router.routes
            if isinstance(route, APIRoute) for method in sorted(route.methods)}
PROTECTED = sorted(key for key in DECLARED if key not in console.PUBLIC_ROUTES)
# Reachable without a token, on purpose: probes, metrics, the schema and its docs, the gateway's health check.
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs"),
          ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"), ("GET", "/webhooks/{source}/health"),
          ("POST", "/webhooks/{source}/health")} | console.PUBLIC_ROUTES
EXPECTED = {
    ("POST", "/admin/dlq/{seq}/replay"): Role.OPERATOR, ("POST", "/admin/dlq/replay"): Role.OPERATOR,
    ("POST", "/admin/reviews/{key}/decision"): Role.OPERATOR, ("POST", "/admin/reconciliations"): Role.OPERATOR,
    ("GET", "/admin/tokens"): Role.ADMIN, ("POST", "/admin/tokens"): Role.ADMIN,
    ("POST", "/admin/tokens/{name}/revoke"): Role.ADMIN, ("GET", "/admin/stats"): Role.VIEWER,
    ("GET", "/admin/dlq"): Role.VIEWER, ("GET", "/admin/audit"): Role.VIEWER, ("GET", "/console"): Role.VIEWER,
}
SAMPLE = {"seq": "999999", "key": "review:cybersource:none", "run_id": "none", "name": "nobody"}


@pytest.fixture
async def service(sqlite_url: str) -> AsyncIterator[Service]:
    async with admin_service(sqlite_url) as running:
        yield running


def url_for(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)


def test_every_route_of_the_app_declares_a_role_or_is_public_on_purpose(service: Service) -> None:
    found = {(method, route.path) for route in service.app.routes
             for method in getattr(route, "methods", None) or () if method != "HEAD"}
    undeclared = sorted(key for key in found - PUBLIC if DECLARED.get(key) is None)
    assert not undeclared, f"routes without a role (use Viewer/Operator/Admin from service/auth.py): {undeclared}"
    unknown = sorted(found - PUBLIC - set(DECLARED))
    assert not unknown, f"routes from a router this test does not know; add it to ROUTERS: {unknown}"
    assert {key: DECLARED[key] for key in EXPECTED} == EXPECTED
    weak = sorted(key for key in PROTECTED if key[0] != "GET" and DECLARED[key] is Role.VIEWER)
    assert not weak, f"a route that changes something needs the operator role or above: {weak}"


@pytest.mark.parametrize("method,path", PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
async def test_each_route_is_401_without_a_valid_token_403_below_its_role_and_served_at_it(
    service: Service, method: str, path: str
) -> None:
    needed = DECLARED[(method, path)]
    assert needed is not None
    url = url_for(path)
    body = {} if method == "POST" else None
    anonymous = await service.http.request(method, url, json=body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = await service.http.request(method, url, json=body, headers=service.auth("llt_forged"))
    assert forged.status_code == 401
    for role in Role:
        response = await service.http.request(method, url, json=body, headers=service.as_role(role))
        if role.allows(needed):
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert f"needs the {needed.value} role" in response.json()["detail"]
    bootstrap = await service.http.request(method, url, json=body, headers=service.auth(ADMIN_TOKEN))
    assert bootstrap.status_code not in (401, 403)


async def test_a_token_is_shown_once_stored_as_a_digest_works_at_its_role_and_stops_when_revoked(
    service: Service
) -> None:
    made = await service.http.post("/admin/tokens", json={"name": "grafana", "role": "viewer"},
                                   headers=service.as_role(Role.ADMIN))
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    secret = made.json()["token"]
    assert secret.startswith("llt_") and len(secret) > 40
    row = service.db.read_sync(lambda conn: conn.execute(select(api_tokens).where(api_tokens.c.name == "grafana")).one())
    assert row.digest == hashlib.sha256(secret.encode()).hexdigest() and secret not in repr(tuple(row))
    assert (await service.http.get("/admin/whoami", headers=service.auth(secret))).json() == {
        "name": "grafana", "role": "viewer"}
    assert (await service.http.get("/admin/stats", headers=service.auth(secret))).status_code == 200
    assert (await service.http.post("/admin/dlq/replay", json={}, headers=service.auth(secret))).status_code == 403
    listed = await service.http.get("/admin/tokens", headers=service.as_role(Role.ADMIN))
    assert secret not in listed.text and row.digest not in listed.text
    assert {t["name"]: t["role"] for t in listed.json()["items"]}["grafana"] == "viewer"
    again = await service.http.post("/admin/tokens", json={"name": "grafana", "role": "admin"},
                                    headers=service.as_role(Role.ADMIN))
    assert again.status_code == 409
    bad = await service.http.post("/admin/tokens", json={"name": "Bad Name", "role": "viewer"},
                                  headers=service.as_role(Role.ADMIN))
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "name"
    revoked = await service.http.post("/admin/tokens/grafana/revoke", headers=service.as_role(Role.ADMIN))
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert (await service.http.get("/admin/stats", headers=service.auth(secret))).status_code == 401
    trail = await audit.AuditLog(service.db).entries(target="token:grafana")
    assert [(e.action, e.actor, e.details) for e in trail] == [
        ("token.revoked", "admin:admin-1", {"role": "viewer"}), ("token.created", "admin:admin-1", {"role": "viewer"})]


async def test_replays_decisions_and_reconciliation_runs_are_audited_with_the_token_name(service: Service) -> None:
    operator = make_token(service.db, "night-shift", Role.OPERATOR)
    seq = service.dead_letter("evt-1")
    replayed = await service.http.post(f"/admin/dlq/{seq}/replay", headers=service.auth(operator))
    assert replayed.json() == {"replayed": [seq]}
    await service.review_case("review:cybersource:7001")
    decided = await service.http.post("/admin/reviews/review:cybersource:7001/decision",
                                      json={"decision": "accept", "comments": "known customer", "reviewer": "Rita"},
                                      headers=service.auth(operator))
    assert decided.status_code == 202
    queued = await service.http.post("/admin/reconciliations", json={"date": "2026-11-20"},
                                     headers=service.auth(operator))
    assert queued.status_code == 202
    entries = (await service.http.get("/admin/audit", params={"actor": "admin:night-shift"},
                                      headers=service.as_role(Role.VIEWER))).json()["items"]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("reconciliation.requested", f"reconciliation:{queued.json()['run_id']}"),
        ("dlq.replayed", f"event:{seq}")]
    assert entries[0]["details"] == {"day": "2026-11-20"} and entries[0]["at"]
    decision = (await service.http.get("/admin/audit", params={"action": "review.accepted"},
                                       headers=service.as_role(Role.VIEWER))).json()["items"]
    assert decision[0]["actor"] == "admin:night-shift (Rita)"
    assert decision[0]["details"]["comments"] == "known customer"


def test_an_action_whose_audit_entry_cannot_be_written_is_not_done(service: Service) -> None:
    seq = service.dead_letter("evt-2")
    with pytest.raises(InvalidInput):
        service.db.write_sync(lambda conn: dlq.replay_audited(service.db, conn, [seq], actor="cli:4111111111111111"))
    status = service.db.read_sync(lambda conn: conn.execute(select(inbox.c.status).where(inbox.c.seq == seq)).scalar())
    assert status == DEAD


def test_the_cli_makes_lists_and_revokes_tokens_and_reads_the_audit_log(service: Service) -> None:
    runner = CliRunner()
    url = ["--database-url", service.db.url]
    made = runner.invoke(cli, ["tokens", "create", "ci-bot", "--role", "operator", *url])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("llt_")
    digest = service.db.read_sync(lambda conn: conn.execute(
        select(api_tokens.c.digest).where(api_tokens.c.name == "ci-bot")).scalar())
    assert digest == hashlib.sha256(secret.encode()).hexdigest()
    listed = runner.invoke(cli, ["tokens", "list", *url])
    assert "ci-bot" in listed.stdout and "operator" in listed.stdout and secret not in listed.stdout
    assert runner.invoke(cli, ["tokens", "create", "ci-bot", "--role", "viewer", *url]).exit_code == 2
    assert runner.invoke(cli, ["tokens", "create", "x", "--role", "root", *url]).exit_code == 2
    seq = service.dead_letter("evt-3")
    assert runner.invoke(cli, ["dlq", "replay", str(seq), *url]).exit_code == 0
    assert runner.invoke(cli, ["tokens", "revoke", "ci-bot", *url]).exit_code == 0
    assert runner.invoke(cli, ["tokens", "revoke", "nobody", *url]).exit_code == 1
    shown = runner.invoke(cli, ["audit", "--json", *url])
    assert shown.exit_code == 0
    entries = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(e["action"], e["target"]) for e in entries[:3]] == [
        ("token.revoked", "token:ci-bot"), ("dlq.replayed", f"event:{seq}"), ("token.created", "token:ci-bot")]
    assert all(e["actor"].startswith("cli:") for e in entries[:3])
    tokens_only = runner.invoke(cli, ["audit", "--action", "token.", "--json", *url]).stdout.splitlines()
    assert [json.loads(line)["action"] for line in tokens_only][:2] == ["token.revoked", "token.created"]
    assert all(json.loads(line)["action"].startswith("token.") for line in tokens_only)
    assert runner.invoke(cli, ["audit", *url]).exit_code == 0
