"""The operations console: read-only HTML behind the same tokens; a cookie for browsers that only it reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from sqlalchemy import update

from ledgerlink.runtime import tokens
from ledgerlink.runtime.schema import inbox
from ledgerlink.runtime.tokens import Role
from ledgerlink.service.auth import CONSOLE_COOKIE
from tests.service.apps import Service, admin_service


@pytest.fixture
async def service(sqlite_url: str) -> AsyncIterator[Service]:
    async with admin_service(sqlite_url) as running:
        yield running


async def test_without_a_token_the_console_is_401_with_the_login_form(service: Service) -> None:
    page = await service.http.get("/console")
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/console/login">' in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert (await service.http.get("/console/login")).status_code == 200
    wrong = await service.http.post("/console/login", content=b"token=llt_nope",
                                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    assert CONSOLE_COOKIE not in wrong.headers.get("set-cookie", "")


async def test_a_viewer_signs_in_and_sees_every_section_escaped(service: Service) -> None:
    seq = service.dead_letter("evt-<b>1</b>")
    service.db.write_sync(lambda conn: conn.execute(update(inbox).where(inbox.c.seq == seq).values(
        last_error=orjson.dumps({"error": "Rejected", "message": "<script>alert(1)</script>"}).decode())))
    await service.review_case("review:cybersource:7009")
    signed_in = await service.http.post("/console/login", content=f"token={service.secrets[Role.VIEWER]}".encode(),
                                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    page = await service.http.get("/console")
    assert page.status_code == 200, page.text
    for section in ("Events by status", "Counters", "Dead letters", "Fraud review queue", "Open cases",
                    "Reconciliation runs", "Customer notices", "Schedules", "Audit log"):
        assert section in page.text
    assert "signed in as viewer-1 (viewer)" in page.text
    assert "review:cybersource:7009" in page.text and "10.00 USD" in page.text
    assert "<script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "evt-&lt;b&gt;1&lt;/b&gt;" in page.text
    # the cookie opens the console only, never the JSON API where the changes are made
    assert (await service.http.get("/admin/stats")).status_code == 401
    assert (await service.http.post("/admin/dlq/replay", json={})).status_code == 401
    signed_out = await service.http.post("/console/logout")
    assert signed_out.status_code == 303 and 'ledgerlink_console=""' in signed_out.headers["set-cookie"]
    assert (await service.http.get("/console")).status_code == 401


async def test_a_bearer_token_works_too_and_a_revoked_one_is_sent_back_to_sign_in(service: Service) -> None:
    assert (await service.http.get("/console", headers=service.as_role(Role.VIEWER))).status_code == 200
    await service.http.post("/console/login", content=f"token={service.secrets[Role.OPERATOR]}".encode(),
                            headers={"content-type": "application/x-www-form-urlencoded"})
    assert (await service.http.get("/console")).status_code == 200
    service.db.write_sync(lambda conn: tokens.revoke(service.db, conn, name="operator-1", actor="test"))
    page = await service.http.get("/console")
    assert page.status_code == 401 and "sign in again" in page.text
