"""The encrypted credential vault."""

from ledgerlink.vault.store import (
    SecretNotFound,
    Vault,
    VaultError,
    WrongMasterKey,
    decode_master_key,
    generate_master_key,
    master_key_from_environment,
)

__all__ = [
    "SecretNotFound",
    "Vault",
    "VaultError",
    "WrongMasterKey",
    "decode_master_key",
    "generate_master_key",
    "master_key_from_environment",
]
