"""Credentials for the SL API gateway, as ``httpx.Auth`` flows.

``ApiKeyAuth`` adds ``X-API-Key``. ``ClientCredentialsAuth`` fetches an OAuth2 token with the client
credentials grant, caches it until shortly before ``expires_in``, and when the gateway answers 401
with ``error="invalid_token"`` (expired or revoked early) fetches a new one and retries the request
once. Concurrent requests share one token fetch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Generator

import httpx

from ledgerlink.connectors.kit.errors import AuthenticationFailed

SYSTEM = "dynamics_sl"


class ApiKeyAuth(httpx.Auth):
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-API-Key"] = self._api_key
        yield request


class ClientCredentialsAuth(httpx.Auth):
    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        leeway_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token_url = token_url
        self._form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        self._leeway = leeway_seconds
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many tokens were fetched (for tests and metrics)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("ClientCredentialsAuth is for httpx.AsyncClient")

    def _token_request(self) -> httpx.Request:
        return httpx.Request("POST", self._token_url, data=self._form, headers={"Accept": "application/json"})

    async def _store(self, response: httpx.Response) -> None:
        await response.aread()
        if response.status_code != 200:
            raise AuthenticationFailed(
                f"{SYSTEM} token request failed with HTTP {response.status_code}", system=SYSTEM,
                operation="oauth2_token", status=response.status_code, body=response.content,
                provider_code=_oauth_error(response))
        payload = response.json()
        self._token = str(payload["access_token"])
        self._expires_at = self._clock() + float(payload.get("expires_in", 3600)) - self._leeway
        self.fetches += 1

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    await self._store((yield self._token_request()))
        used = self._token
        request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        if response.status_code == 401 and "invalid_token" in response.headers.get("www-authenticate", ""):
            async with self._lock:
                if self._token == used:  # nobody refreshed it meanwhile
                    self._token = None
                    await self._store((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


def _oauth_error(response: httpx.Response) -> str | None:
    try:
        return str(response.json().get("error"))
    except ValueError:
        return None
