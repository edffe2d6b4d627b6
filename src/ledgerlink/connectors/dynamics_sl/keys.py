"""How a business idempotency key fits in SL's 30-character ``User`` columns.

Keys such as ``dynamics_sl:salesorder:cybersource:7093456`` are longer than
any SL extension column, so the API gateway stores a fixed-width digest of the
key (26 characters of base32 of its SHA-256, 130 bits) in ``User2`` of the
record it belongs to, under a unique index. Both sides of the wire know this
rule; the raw key itself travels only in the ``Idempotency-Key`` header.
"""

from __future__ import annotations

import base64
import hashlib

KEY_DIGEST_LENGTH = 26


def key_digest(key: str) -> str:
    """The value stored in ``User2`` for ``key``."""
    raw = hashlib.sha256(key.encode("utf-8")).digest()
    return base64.b32encode(raw).decode("ascii")[:KEY_DIGEST_LENGTH]
