"""HTTP Signature: the spec §2.1 vectors through signer and verifier, the verifier's refusals, and properties."""

from __future__ import annotations

import string
from email.utils import parsedate_to_datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerlink.connectors.cybersource.auth import (
    Credential,
    HttpSignatureAuth,
    HttpSignatureVerifier,
    SignatureRejected,
    body_digest,
    decode_secret,
    parse_signature,
    signature_headers,
)

HOST = "apitest.cybersource.com"
DATE = "Thu, 18 Jul 2019 22:18:03 GMT"
NOW = parsedate_to_datetime(DATE).timestamp()
MID = "testrest"
KEY_ID = "08c94330-f618-42a3-b09d-e1e43be5efda"
SECRET = "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE="
KEY = decode_secret(SECRET)

BODY_A = (
    b'{"clientReferenceInformation": {"code": "TC50171_3"}, "processingInformation": {"capture": false}, '
    b'"paymentInformation": {"card": {"number": "4111111111111111", "expirationMonth": "12", "expirationYear": "2031"}}, '
    b'"orderInformation": {"amountDetails": {"totalAmount": "102.21", "currency": "USD"}, "billTo": {"firstName": '
    b'"John", "lastName": "Doe", "address1": "1 Market St", "locality": "san francisco", "administrativeArea": "CA", '
    b'"postalCode": "94105", "country": "US", "email": "test@cybs.com", "phoneNumber": "4158880000"}}}'
)
BODY_C = (b'{"clientReferenceInformation":{"code":"TC50171_3"},"orderInformation":{"amountDetails":'
          b'{"totalAmount":"102.21","currency":"USD"}}}')
TXN = "6505616245026185904005"
REPORT = "/reporting/v3/report-downloads?organizationId=testrest&reportDate=2024-01-15&reportName=TransactionRequestReport"

# (name, method, target, body, target label, date label, digest, signature) — spec §2.1.
VECTORS = [
    ("A", "POST", "/pts/v2/payments", BODY_A, "request-target", "date",
     "SHA-256=3nkbA1yHnl28vD5FFXgRJ1qOmBiq8/zbDsN5uJ1xoFE=", "ItHZ3i4lFTcpLBW8v5d9l4FdoSkLpaLW3SdmyMtPZDo="),
    ("A (request-target)", "POST", "/pts/v2/payments", BODY_A, "(request-target)", "date",
     "SHA-256=3nkbA1yHnl28vD5FFXgRJ1qOmBiq8/zbDsN5uJ1xoFE=", "nYmAO3khzj8SrqITBhqVRHyeK/qWIsiu/6+ig10mekU="),
    ("A v-c-date", "POST", "/pts/v2/payments", BODY_A, "request-target", "v-c-date",
     "SHA-256=3nkbA1yHnl28vD5FFXgRJ1qOmBiq8/zbDsN5uJ1xoFE=", "1M3+WL/hMFTY0allGHYIibtaFE7ELah09JrlqIm/scU="),
    ("B", "GET", f"/tss/v2/transactions/{TXN}", b"", "request-target", "date", None,
     "7+dGh5XDrwHeDTFiSCP8mfRVm8YHKRH27hsiJ01uSuI="),
    ("C", "POST", f"/pts/v2/payments/{TXN}/captures", BODY_C, "request-target", "date",
     "SHA-256=rF9mfJHA9pS+FDJOW9yznnHnEgzwY9seZwrgVmnhcZ8=", "1ZeIOBxBekdWmt01glfrkzvQUIISMUw5fMENT4zQMKs="),
    ("D", "GET", REPORT, b"", "request-target", "date", None, "DjvcJDKPDkHghyMWrfP5d83LVXlG4i/bO1yHG3m4AtI="),
]
vector_ids = [v[0] for v in VECTORS]


def sign(method: str, target: str, body: bytes, **kwargs: str) -> dict[str, str]:
    options = {"host": HOST, "merchant_id": MID, "key_id": KEY_ID, "key": KEY, "date": DATE, **kwargs}
    return signature_headers(method, target, body, **options)  # type: ignore[arg-type]


def verifier(**kwargs: float) -> HttpSignatureVerifier:
    return HttpSignatureVerifier([Credential(MID, KEY_ID, SECRET)], **kwargs)


@pytest.mark.parametrize(("name", "method", "target", "body", "label", "date_label", "digest", "expected"), VECTORS,
                         ids=vector_ids)
def test_signer_reproduces_vector(name, method, target, body, label, date_label, digest, expected) -> None:
    headers = sign(method, target, body, target_label=label, date_label=date_label)
    assert parse_signature(headers["signature"])["signature"] == expected
    assert headers.get("digest") == digest
    assert headers[date_label] == DATE


def test_signer_header_format_is_the_sdks() -> None:
    headers = sign("POST", "/pts/v2/payments", BODY_A)
    assert headers["signature"] == (
        f'keyid="{KEY_ID}", algorithm="HmacSHA256", headers="host date request-target digest v-c-merchant-id", '
        'signature="ItHZ3i4lFTcpLBW8v5d9l4FdoSkLpaLW3SdmyMtPZDo="'
    )


@pytest.mark.parametrize(("name", "method", "target", "body", "label", "date_label", "digest", "expected"), VECTORS,
                         ids=vector_ids)
def test_verifier_accepts_vector(name, method, target, body, label, date_label, digest, expected) -> None:
    labels = ["host", date_label, label] + (["digest"] if digest else []) + ["v-c-merchant-id"]
    headers = {"host": HOST, date_label: DATE, "v-c-merchant-id": MID,
               "signature": f'keyid="{KEY_ID}",algorithm="HmacSHA256",headers="{" ".join(labels)}",signature="{expected}"'}
    if digest:
        headers["digest"] = digest
    assert verifier().verify(method, target, headers, body, now=NOW).merchant_id == MID


def test_verifier_accepts_parameters_in_any_order_with_or_without_spaces() -> None:
    headers = sign("POST", "/pts/v2/payments", BODY_A)
    params = parse_signature(headers["signature"])
    headers["signature"] = (f'signature="{params["signature"]}",headers="{params["headers"]}" ,  keyid="{KEY_ID}",'
                            'algorithm="HmacSHA256"')
    verifier().verify("POST", "/pts/v2/payments", headers, BODY_A, now=NOW)


def test_http_date_is_checked_against_the_clock() -> None:
    headers = sign("GET", f"/tss/v2/transactions/{TXN}", b"")
    verifier().verify("GET", f"/tss/v2/transactions/{TXN}", headers, b"", now=NOW + 299)
    with pytest.raises(SignatureRejected, match="clock skew"):
        verifier().verify("GET", f"/tss/v2/transactions/{TXN}", headers, b"", now=NOW + 301)
    with pytest.raises(SignatureRejected, match="clock skew"):
        verifier().verify("GET", f"/tss/v2/transactions/{TXN}", headers, b"", now=NOW - 301)
    verifier(clock_skew_seconds=3600).verify("GET", f"/tss/v2/transactions/{TXN}", headers, b"", now=NOW + 3000)


@pytest.mark.parametrize(("change", "reason"), [
    (lambda h: h.pop("signature"), "missing Signature"),
    (lambda h: h.update(signature=h["signature"].replace(KEY_ID, "00000000-0000-0000-0000-000000000000")),
     "unknown keyid"),
    (lambda h: h.pop("digest"), "missing Digest"),
    (lambda h: h.update(digest=body_digest(b"{}")), "Digest does not match"),
    (lambda h: h.update(date="yesterday"), "not an HTTP-date"),
    (lambda h: h.update({"v-c-merchant-id": "someoneelse"}), "does not belong"),
    (lambda h: h.update(signature=h["signature"].replace("HmacSHA256", "HmacSHA1")), "unsupported algorithm"),
    (lambda h: h.update(signature=h["signature"].replace(" digest", "")), "must cover digest"),
    (lambda h: h.update(signature=h["signature"].replace("host ", "")), "must cover host"),
    (lambda h: h.update(host="api.cybersource.com"), "does not match"),
])
def test_verifier_refuses(change, reason) -> None:
    headers = sign("POST", "/pts/v2/payments", BODY_A)
    change(headers)
    with pytest.raises(SignatureRejected, match=reason):
        verifier().verify("POST", "/pts/v2/payments", headers, BODY_A, now=NOW)


def test_meta_key_signs_the_portfolio_and_transacts_for_the_merchant() -> None:
    meta = HttpSignatureVerifier([Credential("portfolio1", KEY_ID, SECRET, portfolio_id="portfolio1")])
    headers = sign("GET", f"/tss/v2/transactions/{TXN}", b"", merchant_id="merchant7", signed_merchant_id="portfolio1")
    assert headers["v-c-merchant-id"] == "merchant7"
    assert meta.verify("GET", f"/tss/v2/transactions/{TXN}", headers, b"", now=NOW).merchant_id == "merchant7"
    with pytest.raises(SignatureRejected, match="key does not belong"):
        verifier().verify("GET", f"/tss/v2/transactions/{TXN}", headers, b"", now=NOW)


async def test_httpx_auth_signs_the_run_environment_host_not_the_connection() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={})

    auth = HttpSignatureAuth(host=HOST, merchant_id=MID, key_id=KEY_ID, shared_secret=SECRET, clock=lambda: NOW)
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8081", transport=httpx.MockTransport(handler),
                                 auth=auth) as client:
        await client.post("/pts/v2/payments", content=BODY_A)
        await client.get("/reporting/v3/report-downloads",
                         params={"organizationId": "testrest", "reportDate": "2024-01-15",
                                 "reportName": "TransactionRequestReport"})
    post, get = seen
    assert post.headers["host"] == HOST and post.url.host == "127.0.0.1"
    assert parse_signature(post.headers["signature"])["signature"] == "ItHZ3i4lFTcpLBW8v5d9l4FdoSkLpaLW3SdmyMtPZDo="
    assert parse_signature(get.headers["signature"])["signature"] == "DjvcJDKPDkHghyMWrfP5d83LVXlG4i/bO1yHG3m4AtI="
    assert "digest" not in get.headers


# --- properties ------------------------------------------------------------------------------

methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])
paths = st.text(string.ascii_letters + string.digits + "/-_.?=&", min_size=1, max_size=40).map(lambda p: "/" + p)
bodies = st.binary(max_size=200)
merchants = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(method=methods, path=paths, body=bodies, merchant=merchants)
def test_sign_then_verify_round_trips(method: str, path: str, body: bytes, merchant: str) -> None:
    check = HttpSignatureVerifier([Credential(merchant, KEY_ID, SECRET)])
    headers = sign(method, path, body, merchant_id=merchant)
    assert check.verify(method, path, headers, body, now=NOW).merchant_id == merchant


MUTATIONS = st.sampled_from(["method", "path", "body", "date", "host", "merchant"])


@settings(max_examples=80, deadline=None)
@given(method=st.sampled_from(["POST", "PUT", "PATCH"]), path=paths, body=bodies, mutation=MUTATIONS,
       noise=st.text(string.ascii_letters, min_size=1, max_size=5))
def test_any_mutation_fails(method: str, path: str, body: bytes, mutation: str, noise: str) -> None:
    check = HttpSignatureVerifier([Credential(MID, KEY_ID, SECRET), Credential(MID + noise, "other-key", SECRET)])
    headers = sign(method, path, body)
    if mutation == "method":
        method = {"POST": "PUT", "PUT": "PATCH", "PATCH": "POST"}[method]
    elif mutation == "path":
        path += noise
    elif mutation == "body":
        body += noise.encode()
    elif mutation == "date":
        headers["date"] = "Thu, 18 Jul 2019 22:18:04 GMT"
    elif mutation == "host":
        headers["host"] = noise + HOST
    else:
        headers["v-c-merchant-id"] = MID + noise
    with pytest.raises(SignatureRejected):
        check.verify(method, path, headers, body, now=NOW)
