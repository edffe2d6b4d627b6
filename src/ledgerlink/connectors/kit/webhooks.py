"""Shared pieces of webhook verification: HMAC, constant-time compare, timestamp tolerance, replays."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections import OrderedDict


def hmac_sha256_b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def within_tolerance(timestamp_seconds: float, now_seconds: float, tolerance_seconds: float) -> bool:
    return abs(now_seconds - timestamp_seconds) <= tolerance_seconds


class ReplayGuard:
    """Remembers signatures seen inside the tolerance window; a second use of one is a replay.

    Entries older than the window are forgotten (a signature that old is refused by
    the timestamp check anyway), and the memory is capped.
    """

    def __init__(self, window_seconds: float = 300.0, max_entries: int = 1_000_000) -> None:
        self._window = window_seconds
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, signature: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            while self._seen:
                oldest, seen_at = next(iter(self._seen.items()))
                if now - seen_at <= self._window and len(self._seen) < self._max:
                    break
                del self._seen[oldest]
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True
