"""The credential vault: sealed at rest, wrong key fails fast, rotation loses nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from ledgerlink.vault import (
    SecretNotFound,
    Vault,
    VaultError,
    WrongMasterKey,
    decode_master_key,
    generate_master_key,
)
from ledgerlink.vault.store import secrets_table


def key() -> bytes:
    return decode_master_key(generate_master_key())


def test_secrets_round_trip_and_are_not_stored_in_clear(sqlite_url: str) -> None:
    vault = Vault(sqlite_url, key())
    vault.set("cybersource.shared_secret", "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE=")
    assert vault.get("cybersource.shared_secret") == "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE="
    assert vault.names() == ["cybersource.shared_secret"]
    vault.close()
    with create_engine(sqlite_url).connect() as conn:
        stored = b"".join(row.ciphertext for row in conn.execute(select(secrets_table)))
    assert b"yBJxy6" not in stored


def test_a_wrong_master_key_fails_at_open(sqlite_url: str) -> None:
    Vault(sqlite_url, key()).close()
    with pytest.raises(WrongMasterKey, match="does not match"):
        Vault(sqlite_url, key())


def test_rotation_re_seals_everything(sqlite_url: str) -> None:
    old, new = key(), key()
    vault = Vault(sqlite_url, old)
    for i in range(5):
        vault.set(f"s{i}", f"value-{i}")
    assert vault.rotate(new) == 5
    vault.close()
    with pytest.raises(WrongMasterKey):
        Vault(sqlite_url, old)
    reopened = Vault(sqlite_url, new)
    assert [reopened.get(f"s{i}") for i in range(5)] == [f"value-{i}" for i in range(5)]


def test_a_ciphertext_cannot_be_moved_to_another_name(sqlite_url: str) -> None:
    vault = Vault(sqlite_url, key())
    vault.set("a", "alpha")
    vault.set("b", "beta")
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        a = conn.execute(select(secrets_table).where(secrets_table.c.name == "a")).one()
        conn.execute(secrets_table.update().where(secrets_table.c.name == "b")
                     .values(nonce=a.nonce, ciphertext=a.ciphertext))
    with pytest.raises(WrongMasterKey):
        vault.get("b")


def test_missing_secrets_and_bad_keys_have_clear_errors(sqlite_url: str) -> None:
    vault = Vault(sqlite_url, key())
    with pytest.raises(SecretNotFound, match="no secret named 'nope'"):
        vault.get("nope")
    with pytest.raises(VaultError, match="32 bytes"):
        decode_master_key("c2hvcnQ=")
