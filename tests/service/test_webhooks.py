"""The webhook edge: bad input gets a clear error and leaves nothing behind; good input is durable before 200."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from ledgerlink.connectors.cybersource.webhooks import sign_notification
from ledgerlink.runtime.schema import inbox
from tests.flows.harness import ADMIN_TOKEN, WEBHOOK_KEY, WEBHOOK_KEY_ID, Pair, running_pair

KEY = base64.b64decode(WEBHOOK_KEY)


def notification(event_type: str = "payments.payments.accept", txn_id: str = "7093261290346789104953",
                 **data: Any) -> dict[str, Any]:
    payload_data: dict[str, Any] = {"id": txn_id, **data}
    return {
        "webhookId": "a1b2c3d4-0000-4000-8000-000000000002", "transactionTraceId": "trace-1",
        "productId": "cardProcessing", "organizationId": "testrest", "eventType": event_type,
        "eventDate": "2026-11-21T10:15:30", "requestType": "NEW", "retryNumber": 0,
        "payload": {"data": payload_data},
    }


def signed(document: dict[str, Any] | bytes, *, key: bytes = KEY, at_ms: int | None = None,
           key_id: str = WEBHOOK_KEY_ID) -> tuple[bytes, dict[str, str]]:
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    timestamp = at_ms if at_ms is not None else int(time.time() * 1000)
    try:
        signature = sign_notification(body, key=key, key_id=key_id, timestamp_ms=timestamp)
    except orjson.JSONDecodeError:
        signature = sign_notification(body, key=key, key_id=key_id, timestamp_ms=timestamp, variant="raw")
    return body, {"content-type": "application/json", "v-c-signature": signature}


@pytest.fixture
async def pair(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Pair]:
    async with running_pair(tmp_path, sqlite_url) as running:
        yield running


def stored(pair: Pair) -> int:
    return pair.db.read_sync(lambda conn: conn.execute(select(func.count()).select_from(inbox)).scalar_one())


async def post(pair: Pair, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await pair.engine_http.post("/webhooks/cybersource", content=body, headers=headers)


async def test_a_signed_event_is_stored_before_the_200_and_a_redelivery_is_a_counted_duplicate(pair: Pair) -> None:
    body, headers = signed(notification("payments.captures.accept", txn_id="7000000000000000000001"))
    first = await post(pair, body, headers)
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    assert stored(pair) == 1
    body, headers = signed(notification("payments.captures.accept", txn_id="7000000000000000000001"))
    again = await post(pair, body, headers)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert stored(pair) == 1
    assert pair.stats()["counters"]["events.duplicates"] == 1


@pytest.mark.parametrize("how", ["unsigned", "wrong key", "tampered", "expired", "from the future", "unknown key id"])
async def test_forged_or_stale_webhooks_get_401_and_nothing_is_stored(pair: Pair, how: str, caplog) -> None:  # type: ignore[no-untyped-def]
    document = notification()
    if how == "unsigned":
        body, headers = orjson.dumps(document), {"content-type": "application/json"}
    elif how == "wrong key":
        body, headers = signed(document, key=b"k" * 32)
    elif how == "tampered":
        body, headers = signed(document)
        body = body.replace(b"7093261290346789104953", b"7093261290346789104954")
    elif how == "expired":
        body, headers = signed(document, at_ms=int((time.time() - 301) * 1000))
    elif how == "from the future":
        body, headers = signed(document, at_ms=int((time.time() + 301) * 1000))
    else:
        body, headers = signed(document, key_id="some-other-key")
    response = await post(pair, body, headers)
    assert response.status_code == 401
    assert stored(pair) == 0
    assert any("refused (401)" in r.getMessage() for r in caplog.records)


async def test_a_replayed_signature_is_refused(pair: Pair) -> None:
    body, headers = signed(notification())
    assert (await post(pair, body, headers)).status_code == 200
    assert (await post(pair, body, headers)).status_code == 401


async def test_a_card_number_is_refused_with_the_field_and_never_stored_or_logged(pair: Pair, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    document = notification(paymentInformation={"card": {"number": "4111 1111 1111 1111"}})
    body, headers = signed(document)
    response = await post(pair, body, headers)
    assert response.status_code == 422
    assert response.json()["fields"] == ["payload.data.paymentInformation.card.number"]
    assert "4111" not in response.text
    assert stored(pair) == 0
    assert all("4111 1111" not in r.getMessage() and "4111111111111111" not in r.getMessage()
               for r in caplog.records)


async def test_malformed_json_and_missing_fields_get_400_naming_the_field(pair: Pair) -> None:
    body, headers = signed(b"{not json")
    response = await post(pair, body, headers)
    assert response.status_code == 400
    document = notification()
    del document["payload"]["data"]["id"]
    body, headers = signed(document)
    response = await post(pair, body, headers)
    assert response.status_code == 400
    assert response.json()["issues"][0]["field"] == "payload.data.id"
    document = notification(orderInformation={"amountDetails": {"totalAmount": "12.345", "currency": "USD"}},
                            status="AUTHORIZED", clientReferenceInformation={"code": "WEB-1"})
    body, headers = signed(document)
    response = await post(pair, body, headers)
    assert response.status_code == 400
    assert response.json()["issues"][0]["field"] == "payload.data.orderInformation.amountDetails.totalAmount"
    assert stored(pair) == 0


async def test_an_unknown_event_type_is_acknowledged_and_kept_as_ignored(pair: Pair) -> None:
    body, headers = signed({**notification("invoicing.customer.invoice.send"), "payload": {"anything": 1}})
    response = await post(pair, body, headers)
    assert response.status_code == 200
    row = pair.db.read_sync(lambda conn: conn.execute(select(inbox.c.status, inbox.c.event_type)).one())
    assert (row.status, row.event_type) == ("ignored", "invoicing.customer.invoice.send")


async def test_wrong_content_type_oversized_and_unknown_source_are_refused(pair: Pair) -> None:
    body, headers = signed(notification())
    assert (await post(pair, body, {**headers, "content-type": "text/plain"})).status_code == 415
    huge = b'{"x":"' + b"a" * (300 * 1024) + b'"}'
    assert (await post(pair, huge, {"content-type": "application/json"})).status_code == 413
    response = await pair.engine_http.post("/webhooks/paypal", content=body, headers=headers)
    assert response.status_code == 404
    assert stored(pair) == 0


async def test_health_check_url_answers_get_and_post(pair: Pair) -> None:
    assert (await pair.engine_http.get("/webhooks/cybersource/health")).status_code == 200
    assert (await pair.engine_http.post("/webhooks/cybersource/health")).status_code == 200


async def test_admin_api_needs_the_token(pair: Pair) -> None:
    anonymous = httpx.AsyncClient(transport=pair.engine_http._transport, base_url="http://engine.local")
    try:
        assert (await anonymous.get("/admin/stats")).status_code == 401
        wrong = await anonymous.get("/admin/dlq", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await anonymous.get("/admin/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert right.status_code == 200 and "events" in right.json()
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).json()["status"] == "ready"
        assert b"ledgerlink_webhooks_total" in (await anonymous.get("/metrics")).content
    finally:
        await anonymous.aclose()


async def test_dead_letters_can_be_listed_shown_and_replayed_through_the_admin_api(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running_pair(tmp_path, sqlite_url, sl_settings={}) as pair:
        # make SL refuse sales orders for a while (a rule violation: 422, not retryable)
        fault = {"method": "POST", "path": "/api/v1/salesorders", "status": 422, "times": 1000}
        assert (await pair.sl_http.post("/__sandbox/faults", json=fault)).status_code in (200, 201)
        await pair.pay("WEB-DLQ-1", "10.00")
        await pair.settle()
        listing = (await pair.engine_http.get("/admin/dlq")).json()
        assert listing["total"] == 1
        seq = listing["items"][0]["seq"]
        detail = (await pair.engine_http.get(f"/admin/dlq/{seq}")).json()
        assert detail["evidence"]["status"] == 422 and detail["history"][0]["status"] == 422
        assert (await pair.sl_http.delete("/__sandbox/faults")).status_code in (200, 204)
        replayed = await pair.engine_http.post(f"/admin/dlq/{seq}/replay")
        assert replayed.json() == {"replayed": [seq]}
        await pair.settle()
        assert len(await pair.orders_for("WEB-DLQ-1")) == 1
        assert (await pair.engine_http.post("/admin/dlq/999999/replay")).status_code == 404


@pytest.mark.parametrize("where", ["id", "code", "eventType", "raw"])
async def test_a_nul_character_or_an_oversized_id_is_a_400_on_either_database_and_stores_nothing(
    tmp_path: Path, database_target: tuple[str, str | None], where: str
) -> None:
    """PostgreSQL refuses a NUL in text and an identifier longer than its column; SQLite would take both. The
    edge refuses them on both, and a good notification after them is stored."""
    url, schema = database_target
    async with running_pair(tmp_path, url, schema) as pair:
        document = notification(clientReferenceInformation={"code": "WEB-1"})
        if where == "id":
            document["payload"]["data"]["id"] += "\x00x"
        elif where == "code":
            document["payload"]["data"]["clientReferenceInformation"]["code"] += "\x00"
        elif where == "eventType":
            document["eventType"] += "\x00"
        body, headers = signed(document)
        if where == "raw":
            body, headers = signed(body.replace(b"WEB-1", b"WEB-1\x00"))
        refused = await post(pair, body, headers)
        assert refused.status_code == 400, refused.text
        assert refused.json()["issues"][0]["field"] == "body" and "NUL" in refused.text
        long_id = notification(txn_id="7" * 300)
        too_long = await post(pair, *signed(long_id))
        assert too_long.status_code == 400 and too_long.json()["issues"][0]["field"] == "event id", too_long.text
        assert stored(pair) == 0
        assert (await post(pair, *signed(notification()))).status_code == 200
        assert stored(pair) == 1
