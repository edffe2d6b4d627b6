"""API key and OAuth2 client credentials, on both sides of the wire."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette

from ledgerlink.connectors.dynamics_sl import build_client
from ledgerlink.connectors.dynamics_sl.auth import ClientCredentialsAuth
from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState
from ledgerlink.connectors.kit.errors import AuthenticationFailed

from .conftest import BASE, NOW, settings


@pytest.fixture
async def raw(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


async def test_requests_without_or_with_a_wrong_api_key_are_refused(raw: httpx.AsyncClient) -> None:
    assert (await raw.get("/api/v1/setup")).status_code == 401
    response = await raw.get("/api/v1/setup", headers={"X-API-Key": "wrong"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "InvalidApiKey"
    assert (await raw.get("/api/v1/setup", headers={"X-API-Key": "sl-sandbox-key"})).status_code == 200


async def test_token_issue_with_form_or_basic_credentials(raw: httpx.AsyncClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": "ledgerlink", "client_secret": "sl-sandbox-secret"}
    token = (await raw.post("/oauth2/token", data=form)).json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    basic = base64.b64encode(b"ledgerlink:sl-sandbox-secret").decode()
    response = await raw.post("/oauth2/token", data={"grant_type": "client_credentials"},
                              headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    ok = await raw.get("/api/v1/setup", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert ok.status_code == 200


async def test_token_errors_follow_rfc6749(raw: httpx.AsyncClient) -> None:
    bad = await raw.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": "ledgerlink",
                                                "client_secret": "nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    wrong_grant = await raw.post("/oauth2/token", data={"grant_type": "password"})
    assert wrong_grant.status_code == 400 and wrong_grant.json()["error"] == "unsupported_grant_type"


async def test_expired_token_is_invalid_token(raw: httpx.AsyncClient, state: SandboxState) -> None:
    form = {"grant_type": "client_credentials", "client_id": "ledgerlink", "client_secret": "sl-sandbox-secret"}
    token = (await raw.post("/oauth2/token", data=form)).json()["access_token"]
    state.clock = lambda: NOW + timedelta(seconds=3601)
    response = await raw.get("/api/v1/setup", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_client_credentials_auth_caches_and_refreshes_once(app: Starlette, state: SandboxState) -> None:
    client = build_client(settings(api_key=None, client_id="ledgerlink", client_secret="sl-sandbox-secret"),
                          transport=httpx.ASGITransport(app=app))
    auth = client._http.auth
    assert isinstance(auth, ClientCredentialsAuth)
    await client.get_setup()
    await client.get_setup()
    assert auth.fetches == 1  # cached
    state.tokens.expire_all()  # revoked early: the gateway says invalid_token
    await client.get_setup()
    assert auth.fetches == 2  # one refresh, then the request went through
    await client.aclose()


async def test_wrong_client_secret_is_authentication_failed(app: Starlette) -> None:
    client = build_client(settings(api_key=None, client_id="ledgerlink", client_secret="wrong"),
                          transport=httpx.ASGITransport(app=app))
    with pytest.raises(AuthenticationFailed) as failure:
        await client.get_setup()
    assert failure.value.status == 401 and failure.value.provider_code == "invalid_client"
    await client.aclose()
