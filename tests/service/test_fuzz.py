"""Fuzzing the edges: the webhook endpoint (hypothesis) and the admin API (schemathesis, from the app's own
OpenAPI schema), in-process.

Each request must get an answer below 500; a refused one must leave every table as it was; one carrying a card
number must be refused (422) without the number in the answer. After each run every text and binary column of
every table (the engine's and the SL sandbox's), every captured log record and every dead letter's evidence is
searched for card numbers (the storage guard of ``tests/conftest.py`` also fails a run that writes one).

Bounded so the file runs in well under a minute; ``LEDGERLINK_FUZZ_EXAMPLES`` scales the runs up (e.g. 20 for
twenty times as many examples). Under CI the examples are derandomised, so a run is repeatable.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import create_engine, func, inspect, select, text

from ledgerlink.connectors.cybersource.webhooks import EVENT_TYPES, sign_notification
from ledgerlink.model.cardnumbers import card_number_fields, contains_card_number
from ledgerlink.runtime import Database
from ledgerlink.runtime.schema import inbox, metadata
from tests.flows.harness import ADMIN_TOKEN, WEBHOOK_KEY, WEBHOOK_KEY_ID, Pair, running_pair
from tests.model.pan_corpus import NETWORKS, card_number
from tests.service.apps import Service, admin_service

SCALE = max(1, int(os.environ.get("LEDGERLINK_FUZZ_EXAMPLES", "1")))
KEY = base64.b64decode(WEBHOOK_KEY)


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


# --- strategies ---------------------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    """A card number of any network and length, printed whole, in fours, or with hyphens."""
    network = draw(st.sampled_from(NETWORKS))
    number = card_number(random.Random(draw(st.integers(0, 2**32))), network, draw(st.sampled_from(network[2])))
    style = draw(st.sampled_from(["whole", "spaces", "hyphens"]))
    if style == "whole":
        return number
    groups = [number[i:i + 4] for i in range(0, len(number), 4)]
    return (" " if style == "spaces" else "-").join(groups)


@st.composite
def notifications(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed Cybersource notification of any event type (as the sandbox and Cybersource send them)."""
    event_type = draw(st.sampled_from([*EVENT_TYPES, "invoicing.customer.invoice.send"]))
    data: dict[str, Any] = {"id": str(draw(st.integers(10**21, 10**22 - 1)))}
    if draw(st.booleans()):
        data.update(status=draw(st.sampled_from(["AUTHORIZED", "PENDING", "DECLINED", "TRANSMITTED", "REVERSED"])),
                    clientReferenceInformation={"code": f"WEB-{draw(st.integers(1, 10**6))}"},
                    orderInformation={"amountDetails": {"totalAmount": f"{draw(st.integers(0, 10**6)) / 100:.2f}",
                                                        "currency": draw(st.sampled_from(["USD", "EUR", "JPY"]))}})
    return {"webhookId": "a1b2c3d4-0000-4000-8000-000000000002", "transactionTraceId": "trace-1",
            "productId": "cardProcessing", "organizationId": "testrest", "eventType": event_type,
            "eventDate": "2026-11-21T10:15:30", "requestType": "NEW", "retryNumber": 0,
            "payload": {"data": data}}


def _slots(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield (*path, key)
            yield from _slots(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield (*path, index)
            yield from _slots(value, (*path, index))


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


@st.composite
def mutated_notifications(draw: st.DrawFn) -> dict[str, Any]:
    """A notification with one to three fields dropped or replaced by any JSON value."""
    document = draw(notifications())
    for _ in range(draw(st.integers(1, 3))):
        slots = list(_slots(document))
        if not slots:
            break
        path = draw(st.sampled_from(slots))
        parent = _parent(document, path)
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return document


@st.composite
def pan_seeded_notifications(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A notification with a card number put in a string field, as a new field, or as a JSON number."""
    document = draw(notifications())
    pan = draw(card_numbers())
    value: Any = draw(st.sampled_from([pan, f"card {pan}", f"PAN:{pan}", f"({pan})", f"note\n{pan} exp 12/29"]))
    if draw(st.booleans()) and " " not in pan and "-" not in pan:
        value = int(pan)
    slots = [s for s in _slots(document) if isinstance(_parent(document, s), dict)]
    path = draw(st.sampled_from(slots))
    parent = _parent(document, path)
    if draw(st.booleans()) or not isinstance(parent.get(path[-1]), str):
        parent[draw(st.sampled_from(["comments", "note", path[-1]]))] = value
    else:
        parent[path[-1]] = value
    return document, pan


@st.composite
def junk_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """Anything but a correctly signed notification: random bytes or JSON, any content type, no signature, a
    garbled one, one made with the wrong key or outside the 5-minute window."""
    body = draw(st.one_of(st.binary(max_size=600), JSON_VALUES.map(orjson.dumps),
                          mutated_notifications().map(orjson.dumps)))
    headers: dict[str, str] = {}
    content_type = draw(st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                         "application/x-www-form-urlencoded", "", "APPLICATION/JSON", None]))
    if content_type is not None:
        headers["content-type"] = content_type
    now = int(time.time() * 1000)
    signature = draw(st.one_of(
        st.none(),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
        st.builds(lambda t, k, s: f"t={t};keyId={k};sig={s}", st.integers(-10, 2**45), st.sampled_from(
            [WEBHOOK_KEY_ID, "other"]), st.text("ABCabc0123+/=", max_size=44)),
        st.sampled_from(["stale", "future", "wrong key"]),
    ))
    if signature in ("stale", "future", "wrong key"):
        at = now - 301_000 if signature == "stale" else now + 301_000 if signature == "future" else now
        signature = sign_notification(body, key=b"w" * 32 if signature == "wrong key" else KEY, key_id=WEBHOOK_KEY_ID,
                                      timestamp_ms=at, variant="raw")
    if signature is not None:
        headers["v-c-signature"] = signature
    return body, headers


def signed(body: bytes, extra: dict[str, str] | None = None) -> dict[str, str]:
    signature = sign_notification(body, key=KEY, key_id=WEBHOOK_KEY_ID, timestamp_ms=int(time.time() * 1000),
                                  variant="raw")
    return {"content-type": "application/json", "v-c-signature": signature, **(extra or {})}


# --- what a run must leave behind ---------------------------------------------------------------------------


def holds_card_number(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str):
        return False
    if contains_card_number(value):
        return True
    if "\\u" in value:  # a JSON document whose escapes spell a number
        try:
            return bool(card_number_fields(orjson.loads(value)))
        except orjson.JSONDecodeError:
            return False
    return False


def card_numbers_in_tables(url: str, schema: str | None = None) -> list[str]:
    """``table.column`` of every stored value that holds a card number, in every table of the database."""
    engine = create_engine(url)
    found = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names(schema=schema):
                rows = conn.execute(text(f'SELECT * FROM "{table}"'))
                columns = list(rows.keys())
                for row in rows:
                    found += [f"{table}.{column}" for column, value in zip(columns, row, strict=True)
                              if holds_card_number(value)]
    finally:
        engine.dispose()
    return found


def card_numbers_in_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = logging.Formatter()
    return [record.getMessage()[:80] for record in caplog.records
            if holds_card_number(record.getMessage()) or (record.exc_info and holds_card_number(
                formatter.formatException(record.exc_info))) or holds_card_number(repr(record.__dict__))]


def inbox_rows(db: Database) -> tuple[int, int | None]:
    """What a webhook can write: inbox rows (the workers change the other tables meanwhile)."""
    return db.read_sync(lambda conn: tuple(conn.execute(select(func.count(), func.max(inbox.c.seq))).one()))  # type: ignore[return-value]


def snapshot(db: Database) -> dict[str, Any]:
    """Row counts of every table, and the newest inbox row."""
    def read(conn: Any) -> dict[str, Any]:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in metadata.sorted_tables} | {
            "max_seq": conn.execute(select(func.max(inbox.c.seq))).scalar_one()}

    return db.read_sync(read)


# --- the webhook endpoint -----------------------------------------------------------------------------------


@contextmanager
def pair_in_a_thread(tmp_path: Path, url: str) -> Iterator[tuple[Pair, BlockingPortal]]:
    """The whole pair running on an event loop of its own, so that hypothesis can drive it synchronously."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(running_pair(tmp_path, url)) as pair:
        yield pair, portal


def test_fuzzed_webhooks_never_get_a_5xx_and_refused_ones_store_nothing_nor_any_card_number(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ledgerlink")
    outcomes: dict[int, int] = {}
    with pair_in_a_thread(tmp_path, sqlite_url) as (pair, portal):

        def send(body: bytes, headers: dict[str, str]) -> httpx.Response:
            before = inbox_rows(pair.db)
            response = portal.call(functools.partial(pair.engine_http.post, "/webhooks/cybersource", content=body,
                                                     headers=headers))
            outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
            assert response.status_code < 500, response.text
            if response.status_code != 200:
                assert inbox_rows(pair.db) == before, f"a refused webhook ({response.status_code}) was stored"
            return response

        @fuzz_settings(60)
        @given(junk_requests())
        def junk(request: tuple[bytes, dict[str, str]]) -> None:
            response = send(*request)
            assert response.status_code in (400, 401, 413, 415, 422), response.text

        @fuzz_settings(60)
        @given(mutated_notifications())
        def mutated(document: dict[str, Any]) -> None:
            body = orjson.dumps(document)
            response = send(body, signed(body))
            assert response.status_code in (200, 400, 422), response.text
            if response.status_code == 200:
                stored = pair.db.read_sync(lambda conn: conn.execute(
                    select(inbox.c.body).where(inbox.c.event_id == response.json()["event_id"])).scalar_one())
                assert response.json()["status"] == "duplicate" or stored == body

        @fuzz_settings(40)
        @given(pan_seeded_notifications(), st.booleans())
        def with_card_numbers(seeded: tuple[dict[str, Any], str], in_header: bool) -> None:
            document, pan = seeded
            body = orjson.dumps(document)
            extra = {"v-c-transaction-trace-id": f"trace {pan}"} if in_header else None
            response = send(body, signed(body, extra))
            assert response.status_code == 422 and response.json()["error"] == "card_number_refused", response.text
            digits = pan.replace(" ", "").replace("-", "")
            assert digits not in response.text.replace(" ", "").replace("-", "")

        junk()
        mutated()
        with_card_numbers()
        # what was accepted is processed (against the sandboxes: most ids are unknown there) before looking
        portal.call(pair.settle)
        dead = portal.call(functools.partial(pair.engine_http.get, "/admin/dlq", params={"limit": 1000})).json()
        evidence = [portal.call(pair.engine_http.get, f"/admin/dlq/{item['seq']}").text for item in dead["items"]]
        assert not [text for text in evidence if holds_card_number(text)]
        assert not card_numbers_in_tables(sqlite_url)
        assert not card_numbers_in_tables(f"sqlite:///{tmp_path / 'sl.db'}")
    assert not card_numbers_in_logs(caplog)
    assert outcomes.get(200) and outcomes.get(401) and outcomes.get(422), outcomes


async def test_a_body_over_the_limit_is_413_even_without_a_content_length(tmp_path: Path, sqlite_url: str) -> None:
    async with running_pair(tmp_path, sqlite_url) as pair:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"payload": "'
            for _ in range(40):
                yield b"a" * 8192
            yield b'"}'

        response = await pair.engine_http.post("/webhooks/cybersource", content=chunks(),
                                               headers={"content-type": "application/json", "v-c-signature": "x"})
        assert response.status_code == 413
        assert pair.db.read_sync(lambda conn: conn.execute(select(func.count()).select_from(inbox)).scalar_one()) == 0


# --- the admin API ------------------------------------------------------------------------------------------


@pytest.fixture
async def service(sqlite_url: str) -> AsyncIterator[Service]:
    async with admin_service(sqlite_url) as running:
        yield running


def _pan_seeded(case: Any, pan: str, where: str) -> None:
    """Put ``pan`` into the case: a path parameter, a query parameter or the JSON body."""
    if where == "path" and case.path_parameters:
        case.path_parameters[next(iter(case.path_parameters))] = pan
    elif where == "body" and case.operation.method.upper() == "POST":
        case.body = {**case.body, "note": pan} if isinstance(case.body, dict) else {"note": pan}
        case.media_type = "application/json"
    else:
        case.query = {**(case.query or {}), "q": pan}


def test_the_admin_api_fuzzed_from_its_openapi_schema_never_gets_a_5xx_nor_changes_anything_it_refuses(
    service: Service, caplog: pytest.LogCaptureFixture, sqlite_url: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="ledgerlink")
    schema = schemathesis.openapi.from_asgi("/openapi.json", service.app)
    service.dead_letter("evt-fuzz-1")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # the bootstrap admin: a fuzzed revoke cannot lock it out
    operations: set[str] = set()
    strategy = schema.as_strategy(GenerationMode.POSITIVE) | schema.as_strategy(GenerationMode.NEGATIVE)

    def call(case: Any) -> Any:
        before = snapshot(service.db)
        response = case.call(headers=auth)
        operations.add(f"{case.operation.method.upper()} {case.operation.path}")
        assert response.status_code < 500, (case.operation.path, case.path_parameters, case.query, case.body,
                                             response.text[:500])
        if response.status_code >= 400:
            assert snapshot(service.db) == before, f"{case.operation.path} refused ({response.status_code}) " \
                                                   "yet changed a table"
        return response

    @fuzz_settings(150)
    @given(strategy)
    def fuzz(case: Any) -> None:
        call(case)

    @fuzz_settings(60)
    @given(schema.as_strategy(GenerationMode.POSITIVE), card_numbers(), st.sampled_from(["path", "query", "body"]))
    def with_card_numbers(case: Any, pan: str, where: str) -> None:
        _pan_seeded(case, pan, where)
        response = call(case)
        assert response.status_code == 422 and response.json()["error"] == "card_number_refused", response.text
        assert pan.replace(" ", "").replace("-", "") not in response.text

    fuzz()
    with_card_numbers()
    assert len(operations) >= 15, sorted(operations)
    assert not card_numbers_in_tables(sqlite_url)
    assert not card_numbers_in_logs(caplog)
