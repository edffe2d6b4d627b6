"""A card number is refused at every entry point: 422 naming the field, the value never echoed, nothing stored.

The webhook edge's basics are in test_webhooks.py; here are the ways around a naive scan (JSON escapes, a
number glued to an escaped newline, a kept header, the 404 of an unknown source) and every other route.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.flows.harness import Pair, running_pair
from tests.service.test_webhooks import notification, post, signed, stored


@pytest.fixture
async def pair(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Pair]:
    async with running_pair(tmp_path, sqlite_url) as running:
        yield running


def refused(response: httpx.Response, fields: list[str]) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "card_number_refused"
    assert response.json()["fields"] == fields
    assert "4111" not in response.text and "5555" not in response.text


async def test_a_card_number_spelled_with_json_escapes_is_refused(pair: Pair) -> None:
    document = notification(clientReferenceInformation={"comments": "PLACEHOLDER"})
    raw = orjson.dumps(document).replace(b"PLACEHOLDER", b"card \\u0034111\\u00201111 1111 1111")
    body, headers = signed(raw)
    refused(await post(pair, body, headers), ["payload.data.clientReferenceInformation.comments"])
    assert stored(pair) == 0


async def test_a_card_number_after_an_escaped_newline_is_refused(pair: Pair) -> None:
    body, headers = signed(notification(clientReferenceInformation={"comments": "card:\n4111111111111111"}))
    assert b"\\n4111111111111111" in body  # glued to the "n" of the escape in the raw bytes
    refused(await post(pair, body, headers), ["payload.data.clientReferenceInformation.comments"])
    assert stored(pair) == 0


async def test_a_card_number_in_a_header_that_would_be_kept_is_refused(pair: Pair) -> None:
    body, headers = signed(notification())
    response = await post(pair, body, {**headers, "v-c-transaction-trace-id": "4111-1111-1111-1111"})
    refused(response, ["headers.v-c-transaction-trace-id"])
    assert stored(pair) == 0


async def test_an_unknown_webhook_source_that_is_a_card_number_is_not_echoed(pair: Pair) -> None:
    body, headers = signed(notification())
    response = await pair.engine_http.post("/webhooks/4111111111111111", content=body, headers=headers)
    assert response.status_code == 404 and "4111" not in response.text


@pytest.mark.parametrize("method,url,payload,fields", [
    ("GET", "/admin/dlq/4111111111111111", None, ["path"]),
    ("POST", "/admin/dlq/4111111111111111/replay", None, ["path"]),
    ("GET", "/admin/reconciliations?day=4111+1111+1111+1111", None, ["query.day"]),
    ("GET", "/admin/dlq?source=5555-5555-5555-4444&limit=5", None, ["query.source"]),
    ("GET", "/admin/reconciliations/run%204111%201111%201111%201111/report.csv", None, ["path"]),
    ("POST", "/admin/dlq/replay", {"seqs": [1, 4111111111111111]}, ["seqs[1]"]),
    ("POST", "/admin/reconciliations", {"date": "4111 1111 1111 1111"}, ["date"]),
    ("GET", "/metrics?x=4111111111111111", None, ["query.x"]),
])
async def test_the_admin_api_and_every_other_route_refuse_card_numbers(
    pair: Pair, caplog: pytest.LogCaptureFixture, method: str, url: str, payload: object, fields: list[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await pair.engine_http.request(method, url, json=payload)
    refused(response, fields)
    assert not any("4111" in r.getMessage() or "5555" in r.getMessage() for r in caplog.records)


async def test_admin_requests_without_card_numbers_pass_the_guard(pair: Pair) -> None:
    assert (await pair.engine_http.post("/admin/dlq/replay", json={"seqs": [123]})).json() == {"replayed": []}
    assert (await pair.engine_http.get("/admin/dlq?source=cybersource&limit=5")).status_code == 200
    # a non-JSON body is scanned as text
    response = await pair.engine_http.post("/admin/dlq/replay", content=b"seqs=4111111111111111",
                                           headers={"content-type": "application/x-www-form-urlencoded"})
    refused(response, ["body"])
