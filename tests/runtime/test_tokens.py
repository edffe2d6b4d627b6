"""Named API tokens: stored as digests, one name per token forever, revocation at once, audited with the change."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from ledgerlink.model import InvalidInput
from ledgerlink.runtime import Database, audit, tokens
from ledgerlink.runtime.schema import api_tokens
from ledgerlink.runtime.tokens import Principal, Role


def test_a_token_is_found_by_its_digest_until_revoked_and_every_change_is_audited(database: Database) -> None:
    db = database
    secret = db.write_sync(lambda conn: tokens.create(db, conn, name="ops", role="operator", actor="cli:ann"))
    row = db.read_sync(lambda conn: conn.execute(select(api_tokens)).one())
    assert row.digest == hashlib.sha256(secret.encode()).hexdigest() and secret not in repr(tuple(row))
    assert db.read_sync(lambda conn: tokens.principal_for(conn, tokens.digest(secret))) == Principal("ops",
                                                                                                    Role.OPERATOR)
    with pytest.raises(tokens.TokenExists):
        db.write_sync(lambda conn: tokens.create(db, conn, name="ops", role="admin", actor="cli:ann"))
    revoked = db.write_sync(lambda conn: tokens.revoke(db, conn, name="ops", actor="admin:root"))
    assert revoked.revoked_by == "admin:root" and revoked.revoked_at is not None
    assert db.read_sync(lambda conn: tokens.principal_for(conn, tokens.digest(secret))) is None
    assert db.write_sync(lambda conn: tokens.revoke(db, conn, name="ops", actor="admin:other")).revoked_by \
        == "admin:root"  # revoking twice changes nothing
    with pytest.raises(tokens.UnknownToken):
        db.write_sync(lambda conn: tokens.revoke(db, conn, name="nobody", actor="admin:root"))
    trail = db.read_sync(lambda conn: audit.entries(conn, target="token:ops"))
    assert [(e.action, e.actor) for e in trail] == [("token.revoked", "admin:root"), ("token.created", "cli:ann")]
    assert [t.name for t in db.read_sync(lambda conn: tokens.list_tokens(conn, include_revoked=False))] == []


@pytest.mark.parametrize("name,role,field", [
    ("Upper", "viewer", "name"), ("", "viewer", "name"), ("a" * 65, "viewer", "name"),
    ("x4111111111111111", "viewer", "name"), ("ok", "root", "role"),
])
def test_bad_names_and_roles_are_refused_and_nothing_is_written(sqlite_url: str, name: str, role: str,
                                                                field: str) -> None:
    db = Database(sqlite_url)
    try:
        with pytest.raises(InvalidInput) as refused:
            db.write_sync(lambda conn: tokens.create(db, conn, name=name, role=role, actor="cli:ann"))
        assert refused.value.issues[0].field == field
        assert db.read_sync(tokens.list_tokens) == [] and db.read_sync(lambda conn: audit.entries(conn)) == []
    finally:
        db.close()


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER) and Role.VIEWER.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR) and not Role.OPERATOR.allows(Role.ADMIN)
