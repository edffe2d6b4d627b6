"""Named API tokens with roles, kept as SHA-256 digests in ``ll_api_tokens``.

A token is 256 random bits (``llt_`` + base64url), shown once when it is made; the
database keeps its SHA-256 digest only. A salted slow hash (bcrypt, argon2) protects
low-entropy passwords against guessing; a 256-bit random token cannot be guessed, so
one SHA-256 is enough and lets a request find its token by an indexed lookup.

Roles are ordered: ``viewer`` reads; ``operator`` also replays dead letters, decides
review cases and queues reconciliation runs; ``admin`` also manages tokens. Making and
revoking a token writes its audit entry in the same transaction. A revoked token keeps
its row and its name, so an actor ``admin:<name>`` in the audit log always means one token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select, update

from ledgerlink.model import FieldIssue, InvalidInput
from ledgerlink.model.cardnumbers import contains_card_number
from ledgerlink.runtime import audit
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import api_tokens

TOKEN_PREFIX = "llt_"
NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the token's name and role."""

    name: str
    role: Role

    @property
    def actor(self) -> str:
        """The audit log's ``actor`` for what this token does through the admin API."""
        return f"admin:{self.name}"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    role: Role
    created_at: float
    created_by: str
    revoked_at: float | None
    revoked_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role.value, "created_at": self.created_at,
                "created_by": self.created_by, "revoked_at": self.revoked_at, "revoked_by": self.revoked_by,
                "active": self.revoked_at is None}


class TokenExists(ValueError):
    pass


class UnknownToken(LookupError):
    pass


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise InvalidInput(FieldIssue("name", "1-64 characters: a lower-case letter, then a-z, 0-9, '.', '_', '-'"),
                           source="token")
    if contains_card_number(name):
        raise InvalidInput(FieldIssue("name", "must not hold a card number"), source="token")
    return name


def _info(row: Any) -> TokenInfo:
    return TokenInfo(name=row.name, role=Role(row.role), created_at=row.created_at, created_by=row.created_by,
                     revoked_at=row.revoked_at, revoked_by=row.revoked_by)


def create(db: Database, conn: Connection, *, name: str, role: Role | str, actor: str,
           now: float | None = None) -> str:
    """Make a token and audit it (``token.created``) in ``conn``'s transaction; returns the secret, once."""
    check_name(name)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(FieldIssue("role", "must be viewer, operator or admin"), source="token") from None
    secret = new_secret()
    when = time.time() if now is None else now
    inserted = conn.execute(
        db.insert(api_tokens)
        .values(name=name, role=role.value, digest=digest(secret), created_at=when, created_by=actor[:255])
        .on_conflict_do_nothing(index_elements=["name"]).returning(api_tokens.c.name)
    ).first()
    if inserted is None:
        raise TokenExists(f"a token named {name!r} exists (revoked names are not reused)")
    audit.append(db, conn, actor=actor, action="token.created", target=f"token:{name}",
                 details={"role": role.value}, at=when)
    return secret


def revoke(db: Database, conn: Connection, *, name: str, actor: str, now: float | None = None) -> TokenInfo:
    """Revoke a token and audit it (``token.revoked``); revoking a revoked token changes nothing."""
    row = conn.execute(select(api_tokens).where(api_tokens.c.name == name)).first()
    if row is None:
        raise UnknownToken(f"no token named {name!r}")
    if row.revoked_at is not None:
        return _info(row)
    when = time.time() if now is None else now
    conn.execute(update(api_tokens).where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                 .values(revoked_at=when, revoked_by=actor[:255]))
    audit.append(db, conn, actor=actor, action="token.revoked", target=f"token:{name}",
                 details={"role": row.role}, at=when)
    return _info(conn.execute(select(api_tokens).where(api_tokens.c.name == name)).one())


def list_tokens(conn: Connection, *, include_revoked: bool = True) -> list[TokenInfo]:
    query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.name)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    return [_info(row) for row in conn.execute(query)]


def principal_for(conn: Connection, presented_digest: str) -> Principal | None:
    """The active token with this digest, as a principal; None for an unknown or revoked one."""
    row = conn.execute(select(api_tokens.c.name, api_tokens.c.role).where(
        api_tokens.c.digest == presented_digest, api_tokens.c.revoked_at.is_(None))).first()
    return Principal(row.name, Role(row.role)) if row else None
