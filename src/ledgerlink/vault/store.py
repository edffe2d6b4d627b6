"""An encrypted credential store: secrets at rest under AES-256-GCM, the key never in the database.

Each secret is sealed with a fresh 96-bit nonce and its own name as associated
data, so a ciphertext cannot be moved to another name. A canary row, sealed
with the same key, makes a wrong master key fail at start with a clear message
instead of at the first secret a flow needs. Rotation re-seals every secret
and the canary under the new key in one transaction: all or nothing. It locks
the table first (``BEGIN IMMEDIATE`` on SQLite, ``LOCK TABLE`` on PostgreSQL), so
a secret set meanwhile cannot stay behind under the old key, and a process still
holding the old key cannot write after it (``set`` checks the canary's key in its
own transaction).

``set`` and ``rotate`` take an optional ``audit`` callback, run on the same
connection before the commit: the CLI writes its audit entry there, so the change
and its entry commit together. No method puts a secret in a message or a log.

The master key (32 random bytes, base64) comes from ``LEDGERLINK_MASTER_KEY``
or the file named by ``LEDGERLINK_MASTER_KEY_FILE``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.engine import make_url

from ledgerlink.model.cardnumbers import contains_card_number

_CANARY = "__ledgerlink_vault_canary__"
_CANARY_PLAINTEXT = b"ledgerlink vault v1"

vault_metadata = MetaData()
secrets_table = Table(
    "ll_vault_secrets",
    vault_metadata,
    Column("name", String(255), primary_key=True),
    Column("key_id", String(16), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("updated_at", Float, nullable=False),
)


class VaultError(RuntimeError):
    """A vault problem an operator must act on; the message never contains a secret."""


class WrongMasterKey(VaultError):
    pass


class SecretNotFound(VaultError, KeyError):
    pass


def generate_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def decode_master_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise VaultError("the master key is not valid base64") from None
    if len(key) != 32:
        raise VaultError(f"the master key must be 32 bytes (AES-256), got {len(key)}")
    return key


def master_key_from_environment() -> bytes:
    value = os.environ.get("LEDGERLINK_MASTER_KEY")
    if value:
        return decode_master_key(value)
    path = os.environ.get("LEDGERLINK_MASTER_KEY_FILE")
    if path:
        try:
            return decode_master_key(Path(path).read_text())
        except OSError as exc:
            raise VaultError(f"cannot read the master key file {path}: {exc.strerror}") from None
    raise VaultError("no master key: set LEDGERLINK_MASTER_KEY or LEDGERLINK_MASTER_KEY_FILE")


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"ledgerlink-vault-key-id" + key).hexdigest()[:16]


def _vault_engine(url: str, schema: str | None = None) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return create_engine(parsed)
    # With a schema the runtime's tables live there (LEDGERLINK_DATABASE_SCHEMA); so does the vault.
    return create_engine(parsed, connect_args={"options": f"-csearch_path={schema}"} if schema else {})


Audit = Callable[[Connection], object]


class Vault:
    def __init__(self, database_url: str, master_key: bytes, *, engine: Engine | None = None,
                 schema: str | None = None) -> None:
        self._engine = engine or _vault_engine(database_url, schema)
        self._key = master_key
        self._aead = AESGCM(master_key)
        self.key_id = _key_id(master_key)
        try:
            with self._engine.begin() as conn:
                vault_metadata.create_all(conn)
                self._check_or_plant_canary(conn)
        except BaseException:
            if engine is None:
                self._engine.dispose()
            raise

    def _seal(self, conn: Connection, name: str, plaintext: bytes, aead: AESGCM, key_id: str) -> None:
        nonce = secrets.token_bytes(12)
        row = {"name": name, "key_id": key_id, "nonce": nonce,
               "ciphertext": aead.encrypt(nonce, plaintext, name.encode("utf-8")), "updated_at": time.time()}
        updated = conn.execute(secrets_table.update().where(secrets_table.c.name == name).values(**row)).rowcount
        if not updated:
            conn.execute(secrets_table.insert().values(**row))

    def _open(self, name: str, nonce: bytes, ciphertext: bytes, aead: AESGCM) -> bytes:
        try:
            return aead.decrypt(nonce, ciphertext, name.encode("utf-8"))
        except InvalidTag:
            raise WrongMasterKey(
                f"secret {name!r} cannot be decrypted with this master key (wrong key, or the row was tampered with)"
            ) from None

    def _check_or_plant_canary(self, conn: Connection) -> None:
        row = conn.execute(select(secrets_table).where(secrets_table.c.name == _CANARY)).first()
        if row is None:
            self._seal(conn, _CANARY, _CANARY_PLAINTEXT, self._aead, self.key_id)
            return
        if row.key_id != self.key_id:
            raise WrongMasterKey(
                "the master key does not match this vault (it was sealed with another key); "
                "check LEDGERLINK_MASTER_KEY / LEDGERLINK_MASTER_KEY_FILE"
            )
        self._open(_CANARY, row.nonce, row.ciphertext, self._aead)

    def _check_key_is_current(self, conn: Connection) -> None:
        sealed_with = conn.execute(select(secrets_table.c.key_id).where(secrets_table.c.name == _CANARY)).scalar()
        if sealed_with is not None and sealed_with != self.key_id:
            raise WrongMasterKey("the vault was re-keyed since this process opened it; "
                                 "restart with the new LEDGERLINK_MASTER_KEY / LEDGERLINK_MASTER_KEY_FILE")

    def _lock_for_rotation(self, conn: Connection) -> None:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before the first read
        else:
            conn.execute(text(f"LOCK TABLE {secrets_table.name} IN SHARE ROW EXCLUSIVE MODE"))

    def set(self, name: str, value: str, *, audit: Audit | None = None) -> None:
        if not name or name == _CANARY:
            raise VaultError("a secret needs a name")
        if contains_card_number(name):
            raise VaultError("a secret's name must not hold a card number")
        with self._engine.begin() as conn:
            self._check_key_is_current(conn)
            self._seal(conn, name, value.encode("utf-8"), self._aead, self.key_id)
            if audit is not None:
                audit(conn)

    def get(self, name: str) -> str:
        with self._engine.connect() as conn:
            row = conn.execute(select(secrets_table).where(secrets_table.c.name == name)).first()
        if row is None or name == _CANARY:
            raise SecretNotFound(f"no secret named {name!r} in the vault")
        return self._open(name, row.nonce, row.ciphertext, self._aead).decode("utf-8")

    def names(self) -> list[str]:
        with self._engine.connect() as conn:
            return sorted(n for n in conn.execute(select(secrets_table.c.name)).scalars() if n != _CANARY)

    def delete(self, name: str) -> bool:
        with self._engine.begin() as conn:
            return bool(conn.execute(secrets_table.delete().where(secrets_table.c.name == name)).rowcount)

    def rotate(self, new_key: bytes, *, audit: Callable[[Connection, int], object] | None = None) -> int:
        """Re-seal every secret under ``new_key``, all or nothing; returns how many secrets moved (the canary
        excluded). ``audit(conn, moved)`` runs in the same transaction."""
        new_aead = AESGCM(new_key)
        new_id = _key_id(new_key)
        with self._engine.begin() as conn:
            self._lock_for_rotation(conn)
            self._check_key_is_current(conn)
            rows = conn.execute(select(secrets_table)).all()
            plain = {row.name: self._open(row.name, row.nonce, row.ciphertext, self._aead) for row in rows}
            for name, value in plain.items():
                self._seal(conn, name, value, new_aead, new_id)
            left = conn.execute(select(func.count()).select_from(secrets_table)
                                .where(secrets_table.c.key_id != new_id)).scalar_one()
            if left:
                raise VaultError(f"{left} secret(s) would stay under the old key; nothing was changed")
            moved = len(plain) - (1 if _CANARY in plain else 0)
            if audit is not None:
                audit(conn, moved)
        self._key, self._aead, self.key_id = new_key, new_aead, new_id
        return moved

    def close(self) -> None:
        self._engine.dispose()
