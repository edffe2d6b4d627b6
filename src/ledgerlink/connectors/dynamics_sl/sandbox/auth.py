"""Who may call the gateway: API keys, and OAuth2 client-credentials bearer tokens (RFC 6749 4.4, 6750).

A refused token answers 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` so a client knows
to fetch a new token once; wrong client credentials answer ``invalid_client``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

REALM = "sl-gateway"


@dataclass
class Denied(Exception):
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Tokens:
    """Issued bearer tokens and when they expire (seconds on the sandbox clock)."""

    now: Callable[[], float]
    ttl: int
    issued: dict[str, tuple[str, float]] = field(default_factory=dict)

    def issue(self, client_id: str) -> str:
        token = secrets.token_urlsafe(32)
        self.issued[token] = (client_id, self.now() + self.ttl)
        return token

    def client(self, token: str) -> str | None:
        entry = self.issued.get(token)
        if entry is None:
            return None
        if entry[1] <= self.now():
            del self.issued[token]
            return None
        return entry[0]

    def expire_all(self) -> None:
        self.issued.clear()


def _in(candidate: str, allowed: Mapping[str, str] | tuple[str, ...]) -> bool:
    return any(hmac.compare_digest(candidate.encode(), known.encode()) for known in allowed)


def authenticate(headers: Mapping[str, str], api_keys: tuple[str, ...], tokens: Tokens) -> str:
    """The SL user the request runs as (``Crtd_User``), or ``Denied``."""
    api_key = headers.get("x-api-key")
    if api_key is not None:
        if _in(api_key, api_keys):
            return "APIKEY"
        raise Denied(401, _error("InvalidApiKey", "the API key is not valid"),
                     {"WWW-Authenticate": f'ApiKey realm="{REALM}"'})
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        client = tokens.client(credentials.strip())
        if client is not None:
            return client[:10].upper()
        raise Denied(401, _error("InvalidToken", "the access token is invalid or has expired"),
                     {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", '
                                          'error_description="The access token is invalid or has expired"'})
    raise Denied(401, _error("Unauthorized", "send X-API-Key or Authorization: Bearer <token>"),
                 {"WWW-Authenticate": f'Bearer realm="{REALM}"'})


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "table": None, "field": None}}


def issue_token(form: bytes, headers: Mapping[str, str], clients: Mapping[str, str],
                tokens: Tokens) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``POST /oauth2/token`` with ``grant_type=client_credentials``; credentials in the form
    (client_secret_post) or HTTP Basic (client_secret_basic)."""
    params = dict(parse_qsl(form.decode("utf-8", "replace"), keep_blank_values=True))
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    grant = params.get("grant_type")
    if not grant:
        return 400, {"error": "invalid_request", "error_description": "grant_type is required"}, no_store
    if grant != "client_credentials":
        return 400, {"error": "unsupported_grant_type"}, no_store
    client_id, secret = params.get("client_id"), params.get("client_secret")
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        client_id, secret = unquote_plus(user), unquote_plus(password)
    known = clients.get(client_id or "")
    if not client_id or secret is None or known is None or not hmac.compare_digest(secret.encode(), known.encode()):
        return 401, {"error": "invalid_client", "error_description": "client authentication failed"}, {
            **no_store, "WWW-Authenticate": f'Basic realm="{REALM}"'}
    token = tokens.issue(client_id)
    return 200, {"access_token": token, "token_type": "Bearer", "expires_in": tokens.ttl}, no_store

