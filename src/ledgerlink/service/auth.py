"""Who may call which route: bearer tokens, roles, and the console's cookie.

Every admin route names the role it needs with one of the ``Viewer``, ``Operator``
or ``Admin`` dependencies (a route without one fails ``tests/service/test_access.py``).
A request presents ``Authorization: Bearer <token>``; no token, or one that is unknown
or revoked, is 401; a token whose role is below the route's is 403.

Tokens are named ones from ``ll_api_tokens`` (``ledgerlink tokens create``; see
``runtime/tokens.py``) or the bootstrap token of the environment
(``LEDGERLINK_ADMIN_TOKEN`` / ``LEDGERLINK_ADMIN_TOKEN_SHA256``), which has the admin
role and acts as ``env:<first 12 hex of its digest>``. Only digests are compared
(constant time for the environment's); no token is ever logged or echoed.

The console (``service/console.py``) is read by a browser, which cannot send a bearer
header: its pages also take the token from an HttpOnly, SameSite=Strict cookie that
its login form sets. Only console pages read that cookie; the JSON admin API (where
the mutating routes are) never does, so a cookie cannot be used across sites to act.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledgerlink.runtime import tokens
from ledgerlink.runtime.tokens import Principal, Role

log = logging.getLogger(__name__)

CONSOLE_COOKIE = "ledgerlink_console"

_bearer = HTTPBearer(auto_error=False)


def token_digest(token: str) -> str:
    return tokens.digest(token)


async def authenticate(request: Request, presented: str | None) -> Principal | None:
    """The principal a presented token stands for, or None."""
    if not presented:
        return None
    digest = token_digest(presented)
    bootstrap: tuple[str, ...] = getattr(request.app.state, "admin_token_digests", ())
    matched = [d for d in bootstrap if hmac.compare_digest(digest, d)]
    if matched:
        return Principal(f"env:{matched[0][:12]}", Role.ADMIN)
    return await request.app.state.db.read(lambda conn: tokens.principal_for(conn, digest))  # type: ignore[no-any-return]


class RoleRequired:
    """A dependency that lets a request through when its token has ``role`` or a higher one."""

    def __init__(self, role: Role, *, cookie: bool = False) -> None:
        self.role = role
        self.cookie = cookie

    async def __call__(self, request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        presented = credentials.credentials if credentials is not None else None
        if presented is None and self.cookie:
            presented = request.cookies.get(CONSOLE_COOKIE)
        if not presented:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = await authenticate(request, presented)
        if principal is None:
            log.warning("refused a request to %s %s: unknown or revoked token", request.method, request.url.path)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token",
                                headers={"WWW-Authenticate": "Bearer"})
        if not principal.role.allows(self.role):
            log.warning("refused %s %s to token %s: needs %s, has %s", request.method, request.url.path,
                        principal.name, self.role.value, principal.role.value)
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"this needs the {self.role.value} role; token {principal.name!r} has "
                                f"{principal.role.value}")
        return principal


Viewer = Annotated[Principal, Depends(RoleRequired(Role.VIEWER))]
Operator = Annotated[Principal, Depends(RoleRequired(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(RoleRequired(Role.ADMIN))]
ConsoleViewer = Annotated[Principal, Depends(RoleRequired(Role.VIEWER, cookie=True))]


def route_role(route: APIRoute) -> Role | None:
    """The role a route declares (through any of its dependencies), or None when it declares none."""
    pending: list[Any] = [route.dependant]
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, RoleRequired):
            return dependant.call.role
        pending.extend(dependant.dependencies)
    return None
