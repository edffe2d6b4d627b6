"""Shared fixtures: databases on SQLite and (when a server answers) PostgreSQL, each test in its own schema.

The whole run has the card-number storage guard on (``LEDGERLINK_PAN_GUARD=1``, inherited by every process a
test starts): a card number about to be written to the runtime database or a sandbox's store raises, and a
test during which that happened fails, even if the code under test caught the error.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from ledgerlink.model import storage_guard
from ledgerlink.runtime.db import Database
from ledgerlink.telemetry import RedactingFilter

os.environ[storage_guard.ENV] = "1"

POSTGRES_URL = os.environ.get("LEDGERLINK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@cache
def postgres_unavailable() -> str | None:
    """None when PostgreSQL answers, else the reason tests that need it are skipped."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL} ({type(exc).__name__}); set LEDGERLINK_TEST_POSTGRES_URL"
    return None


def new_schema() -> str:
    return f"llt_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledgerlink.db"


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    schema = new_schema()
    yield schema
    db = Database(POSTGRES_URL, schema=schema, create=False)
    try:
        db.drop_schema()
    finally:
        db.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, schema) for a fresh runtime database; PostgreSQL tests get their own schema, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledgerlink.db", None
        return
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    schema = new_schema()
    yield POSTGRES_URL, schema
    db = Database(POSTGRES_URL, schema=schema, create=False)
    try:
        db.drop_schema()
    finally:
        db.close()


@pytest.fixture
def database(database_target: tuple[str, str | None]) -> Iterator[Database]:
    url, schema = database_target
    db = Database(url, schema=schema)
    yield db
    db.close()


@pytest.fixture(autouse=True)
def _redact_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Captured logs pass the same card-number filter as production logs."""
    caplog.handler.addFilter(RedactingFilter())
    logging.getLogger("ledgerlink").setLevel(logging.INFO)


@pytest.fixture(autouse=True)
def _no_card_number_stored() -> Iterator[None]:
    """Fails the test if any store's card-number guard tripped while it ran (a test that trips it on purpose
    asserts the refusal and calls ``storage_guard.clear_trips()``)."""
    storage_guard.clear_trips()
    yield
    tripped = storage_guard.trips()
    storage_guard.clear_trips()
    if tripped:
        pytest.fail("a card number reached storage:\n" + "\n".join(tripped), pytrace=False)
