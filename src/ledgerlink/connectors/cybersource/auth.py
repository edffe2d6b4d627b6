"""Cybersource HTTP Signature authentication (spec §2): the client signer and the server verifier.

Both sides build the same "signing string" (one ``<label>: <value>`` line per
name in the Signature's ``headers`` list) and compare base64 HMAC-SHA256 values
keyed with the base64-decoded shared secret. The signer is an ``httpx.Auth`` so
any ``AsyncClient`` can use it; the verifier is what the sandbox runs on every
API call, so it accepts every spelling real clients send (``request-target`` or
``(request-target)``, ``date`` or ``v-c-date``, parameters in any order, with or
without a space after the comma) and checks the digest against the raw bytes
received, because the official SDK does not send compact JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache

import httpx

ALGORITHM = "HmacSHA256"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
TARGET_LABELS = frozenset({"request-target", "(request-target)"})
DATE_LABELS = frozenset({"date", "v-c-date"})
MERCHANT_HEADER = "v-c-merchant-id"

_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*"([^"]*)"')


def decode_secret(shared_secret: str) -> bytes:
    """The HMAC key: Cybersource shared secrets are base64 text and are used decoded."""
    return base64.b64decode(shared_secret, validate=True)


def body_digest(body: bytes) -> str:
    """The ``Digest`` header value: plain SHA-256 of the exact body bytes, not an HMAC."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def http_date(timestamp: float | None = None) -> str:
    """RFC 7231 HTTP-date in GMT, the only ``Date`` format Cybersource accepts."""
    return formatdate(timestamp, usegmt=True)


def signing_string(labels: Iterable[str], values: Mapping[str, str]) -> str:
    return "\n".join(f"{label}: {values[label]}" for label in labels)


def hmac_signature(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode("ascii")


def default_labels(method: str, *, target_label: str = "request-target", date_label: str = "date") -> list[str]:
    """The ``headers`` list the SDK signs: digest only for methods that carry a body."""
    labels = ["host", date_label, target_label]
    if method.upper() in BODY_METHODS:
        labels.append("digest")
    labels.append(MERCHANT_HEADER)
    return labels


def signature_headers(
    method: str,
    target: str,
    body: bytes,
    *,
    host: str,
    merchant_id: str,
    key_id: str,
    key: bytes,
    date: str,
    target_label: str = "request-target",
    date_label: str = "date",
    signed_merchant_id: str | None = None,
) -> dict[str, str]:
    """Every header a signed request needs. ``target`` is the path plus query string exactly as sent.

    ``signed_merchant_id`` is the portfolio id in meta-key mode: it is what the
    ``v-c-merchant-id`` line signs while the header still names the transacting merchant.
    """
    labels = default_labels(method, target_label=target_label, date_label=date_label)
    headers = {MERCHANT_HEADER: merchant_id, date_label: date, "host": host}
    values = {
        "host": host,
        date_label: date,
        target_label: f"{method.lower()} {target}",
        MERCHANT_HEADER: signed_merchant_id or merchant_id,
    }
    if "digest" in labels:
        headers["digest"] = values["digest"] = body_digest(body)
    signature = hmac_signature(key, signing_string(labels, values))
    headers["signature"] = (
        f'keyid="{key_id}", algorithm="{ALGORITHM}", headers="{" ".join(labels)}", signature="{signature}"'
    )
    return headers


class HttpSignatureAuth(httpx.Auth):
    """Signs every request the way the official SDK does, with ``Host`` set to the run-environment host.

    The signed host must be the real one (``apitest.cybersource.com``) even when
    the connection goes elsewhere (a local sandbox at ``http://127.0.0.1:port``).
    """

    requires_request_body = True

    def __init__(
        self,
        *,
        host: str,
        merchant_id: str,
        key_id: str,
        shared_secret: str,
        portfolio_id: str | None = None,
        target_label: str = "request-target",
        date_label: str = "date",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if target_label not in TARGET_LABELS or date_label not in DATE_LABELS:
            raise ValueError("target_label must be (request-target) or request-target; date_label date or v-c-date")
        self._host = host
        self._merchant_id = merchant_id
        self._key_id = key_id
        self._key = decode_secret(shared_secret)
        self._portfolio_id = portfolio_id
        self._target_label = target_label
        self._date_label = date_label
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = signature_headers(
            request.method,
            request.url.raw_path.decode("ascii"),
            request.content,
            host=self._host,
            merchant_id=self._merchant_id,
            key_id=self._key_id,
            key=self._key,
            date=http_date(self._clock()),
            target_label=self._target_label,
            date_label=self._date_label,
            signed_merchant_id=self._portfolio_id,
        )
        request.headers.update(headers)
        yield request


# --- server side -----------------------------------------------------------------------------


class SignatureRejected(Exception):
    """The request's HTTP Signature does not authenticate it; ``reason`` says why (never shown to clients)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Credential:
    """One API key as the server knows it.

    ``portfolio_id`` marks a meta key: it may transact for any merchant of the
    portfolio, and the signature's merchant line may carry the portfolio id.
    """

    merchant_id: str
    key_id: str
    shared_secret: str = field(repr=False)
    portfolio_id: str | None = None

    @property
    def key(self) -> bytes:
        return decode_secret(self.shared_secret)


@dataclass(frozen=True)
class VerifiedRequest:
    merchant_id: str
    key_id: str


def parse_signature(value: str) -> dict[str, str]:
    """Signature parameters as a dict, whatever their order and whether a space follows each comma."""
    return {name.lower(): text for name, text in _PARAM.findall(value)}


@lru_cache(maxsize=256)
def _parse_http_date(value: str) -> float:
    # Dates repeat for every request signed in the same second; caching keeps verification cheap.
    return parsedate_to_datetime(value).timestamp()


class HttpSignatureVerifier:
    """Checks a request's HTTP Signature exactly as the real service does (spec §2, "Server-side verification")."""

    def __init__(self, credentials: Iterable[Credential], *, clock_skew_seconds: float = 300.0) -> None:
        self._keys = {c.key_id: (c, c.key) for c in credentials}
        self._skew = clock_skew_seconds

    def verify(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None
    ) -> VerifiedRequest:
        """Authenticate one request. ``target`` is the raw path plus ``?query`` as received;
        ``headers`` must answer lower-case names. Raises ``SignatureRejected``."""
        raw = headers.get("signature")
        if not raw:
            raise SignatureRejected("missing Signature header")
        params = parse_signature(raw)
        key_id, labels_text, given = params.get("keyid"), params.get("headers"), params.get("signature")
        if not key_id or not labels_text or not given:
            raise SignatureRejected("Signature header lacks keyid, headers or signature")
        if params.get("algorithm", ALGORITHM).lower() != ALGORITHM.lower():
            raise SignatureRejected(f"unsupported algorithm {params.get('algorithm')!r}")
        found = self._keys.get(key_id)
        if found is None:
            raise SignatureRejected("unknown keyid")
        credential, key = found
        merchant_id = headers.get(MERCHANT_HEADER)
        if not merchant_id:
            raise SignatureRejected("missing v-c-merchant-id header")
        if credential.portfolio_id is None and merchant_id != credential.merchant_id:
            raise SignatureRejected("key does not belong to the merchant in v-c-merchant-id")

        labels = labels_text.lower().split()
        self._check_coverage(method, labels)
        date_label = "v-c-date" if "v-c-date" in labels else "date"
        self._check_date(headers.get(date_label), now)
        self._check_digest(method, headers.get("digest"), body)

        values: dict[str, str] = {}
        for label in labels:
            if label in TARGET_LABELS:
                values[label] = f"{method.lower()} {target}"
            else:
                value = headers.get(label)
                if value is None:
                    raise SignatureRejected(f"signed header {label!r} is missing")
                values[label] = value
        if self._matches(key, labels, values, given):
            return VerifiedRequest(merchant_id=merchant_id, key_id=key_id)
        if credential.portfolio_id is not None:
            values[MERCHANT_HEADER] = credential.portfolio_id
            if self._matches(key, labels, values, given):
                return VerifiedRequest(merchant_id=merchant_id, key_id=key_id)
        raise SignatureRejected("signature does not match")

    @staticmethod
    def _matches(key: bytes, labels: list[str], values: Mapping[str, str], given: str) -> bool:
        return hmac.compare_digest(hmac_signature(key, signing_string(labels, values)).encode(), given.encode())

    @staticmethod
    def _check_coverage(method: str, labels: list[str]) -> None:
        # A signature that leaves out the target, date, host or merchant would let a
        # captured signature be replayed against something else.
        present = set(labels)
        if "host" not in present or not present & DATE_LABELS or not present & TARGET_LABELS:
            raise SignatureRejected("signature must cover host, date and request-target")
        if MERCHANT_HEADER not in present:
            raise SignatureRejected("signature must cover v-c-merchant-id")
        if method.upper() in BODY_METHODS and "digest" not in present:
            raise SignatureRejected("signature must cover digest for a request with a body")

    def _check_date(self, value: str | None, now: float | None) -> None:
        if not value:
            raise SignatureRejected("missing Date header")
        try:
            sent = _parse_http_date(value)
        except (TypeError, ValueError):
            raise SignatureRejected("Date header is not an HTTP-date") from None
        if abs((time.time() if now is None else now) - sent) > self._skew:
            raise SignatureRejected("Date header outside the allowed clock skew")

    @staticmethod
    def _check_digest(method: str, value: str | None, body: bytes) -> None:
        if value is None:
            if method.upper() in BODY_METHODS:
                raise SignatureRejected("missing Digest header")
            return
        if not hmac.compare_digest(value.encode(), body_digest(body).encode()):
            raise SignatureRejected("Digest does not match the body")
