"""Admin API for access: who am I, and the named API tokens (admin role).

    GET  /admin/whoami                      the calling token's name and role (any role)
    GET  /admin/tokens                      every token: name, role, made by/when, revoked by/when (never a secret)
    POST /admin/tokens {"name", "role"}     201 with the token, shown this once; 409 if the name was ever used
    POST /admin/tokens/{name}/revoke        the token stops working at once; 404 for no such name

Making and revoking a token is audited (``token.created``, ``token.revoked``) in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.model import InvalidInput
from ledgerlink.runtime import tokens
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.tokens import Role
from ledgerlink.service.auth import Admin, Viewer

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin", tags=["access"])


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    role: Role


def _db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


@router.get("/whoami")
async def whoami(who: Viewer) -> dict[str, str]:
    return {"name": who.name, "role": who.role.value}


@router.get("/tokens")
async def list_tokens(request: Request, _: Admin) -> dict[str, Any]:
    found = await _db(request).read(tokens.list_tokens)
    return {"items": [token.as_dict() for token in found]}


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(request: Request, body: NewToken, who: Admin, response: Response) -> dict[str, str]:
    db = _db(request)
    try:
        secret = await db.write(lambda conn: tokens.create(db, conn, name=body.name, role=body.role, actor=who.actor))
    except InvalidInput as exc:
        raise HTTPException(422,
                            [{"field": i.field, "reason": i.reason} for i in exc.issues]) from None
    except tokens.TokenExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    log.info("%s made token %s (%s)", who.actor, body.name, body.role.value)
    response.headers["Cache-Control"] = "no-store"
    return {"name": body.name, "role": body.role.value, "token": secret,
            "note": "shown once: only its digest is kept"}


@router.post("/tokens/{name}/revoke")
async def revoke_token(request: Request, name: str, who: Admin) -> dict[str, Any]:
    db = _db(request)
    try:
        info = await db.write(lambda conn: tokens.revoke(db, conn, name=name, actor=who.actor))
    except tokens.UnknownToken:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no token by that name") from None
    log.info("%s revoked token %s", who.actor, info.name)
    return info.as_dict()
