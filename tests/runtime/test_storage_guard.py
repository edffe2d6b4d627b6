"""No card number is ever stored: the test-mode guard at the database layer, and the redaction that keeps it quiet.

What the engine stores from other systems (partition state with its step journal, events a poll emits, cases,
reconciliation reports, dead-letter evidence) is redacted before it is written; the guard proves it by raising
on any INSERT or UPDATE that would still carry a card number (on for the whole test run, see conftest.py).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from ledgerlink.flows.context import FlowContext, InboundMessage, OutboundEvent
from ledgerlink.model import Case, CaseType, FieldIssue, InvalidInput, Money, storage_guard
from ledgerlink.model.cardnumbers import REDACTION, contains_card_number
from ledgerlink.model.storage_guard import CardNumberStored
from ledgerlink.runtime import Database, dlq
from ledgerlink.runtime.intake import InboxItem, store_items
from ledgerlink.runtime.records import DatabaseCaseBook, DatabaseReconciliationLedger, get_report
from ledgerlink.runtime.schema import cases, inbox, partition_state
from tests.runtime.helpers import finished, item, running_engine, wait_until

PAN = "4111 1111 1111 1111"


def everything_stored(db: Database) -> str:
    """Every row of every runtime table as text, the way a PAN scanner would read the database."""
    from ledgerlink.runtime.schema import metadata

    def dump(conn) -> str:  # type: ignore[no-untyped-def]
        out = []
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                out.extend(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
        return "\n".join(out)

    return db.read_sync(dump)


def test_the_guard_is_on_for_the_test_run(database: Database) -> None:
    assert storage_guard.enabled() and database.storage_guard


@pytest.mark.parametrize("value", [PAN.encode(), '{"note":"card 4111-1111-1111-1111"}', 4111111111111111,
                                   '{"note":"\\u0034111111111111111"}'])
def test_a_card_number_about_to_be_stored_raises_naming_the_table_and_column_not_the_value(
    database: Database, value: object
) -> None:
    body = value if isinstance(value, bytes) else str(value).encode()
    bad = InboxItem(source="s", event_id="e1", event_type="t", partition_key="p", body=body)
    with pytest.raises(CardNumberStored) as info:
        database.write_sync(lambda conn: store_items(database, conn, [bad], buckets=8, now=time.time()))
    assert "ll_inbox" in str(info.value) and "body" in str(info.value)
    assert "4111" not in str(info.value)
    assert storage_guard.trips() == [str(info.value)]
    storage_guard.clear_trips()
    assert database.read_sync(lambda conn: conn.execute(select(inbox.c.seq)).all()) == []  # rolled back


def test_updates_and_many_rows_are_guarded_too(database: Database) -> None:
    rows = [{"partition_key": "a", "state": "{}", "updated_at": 1.0},
            {"partition_key": "b", "state": '{"n":5555555555554444}', "updated_at": 1.0}]
    with pytest.raises(CardNumberStored, match="ll_partition_state"):
        database.write_sync(lambda conn: conn.execute(partition_state.insert(), rows))
    database.write_sync(lambda conn: conn.execute(partition_state.insert(), rows[:1]))
    with pytest.raises(CardNumberStored):
        database.write_sync(lambda conn: conn.execute(
            partition_state.update().where(partition_state.c.partition_key == "a").values(state=f'"{PAN}"')))
    storage_guard.clear_trips()


def test_ids_amounts_and_times_pass_the_guard(database: Database) -> None:
    body = orjson.dumps({"id": "7093261290346789104953", "token": "7011073301595401111", "amount": "102.21",
                         "at": 1732184130123, "trace": "36130076-9491-4811-a383-436000000000"})
    ok = InboxItem(source="s", event_id="7093261290346789104953", event_type="t", partition_key="p", body=body)
    database.write_sync(lambda conn: store_items(database, conn, [ok], buckets=8, now=time.time()))


def test_off_the_guard_is_not_installed_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    from ledgerlink.runtime.db import _guard_writes

    monkeypatch.setenv(storage_guard.ENV, "0")
    db = Database(f"sqlite:///{tmp_path}/off.db")
    try:
        assert not db.storage_guard
        assert not event.contains(db._writer, "before_cursor_execute", _guard_writes)
    finally:
        db.close()


async def test_what_a_flow_keeps_and_emits_from_other_systems_is_stored_redacted(database: Database, caplog) -> None:  # type: ignore[no-untyped-def]
    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        # what a back office answered, journaled: a free-text note holding a card number, and one as a number
        ctx.state["effects"] = {"sl:task:1": "T0001"}
        ctx.state["note"] = f"customer said: card {PAN}, please refund"
        ctx.state["raw"] = {"CardNbr": 5555555555554444}
        ctx.emit(OutboundEvent(source="test.emitted", event_id="refund-request:CM001", event_type="refund.requested",
                               partition_key="test:WEB-1", body=orjson.dumps({"note": f"card:\n{PAN}"})))

    async with running_engine(database, {"test": handler, "test.emitted": handler}) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "p1"))
        await wait_until(finished(database, 2))
    state = orjson.loads(database.read_sync(lambda conn: conn.execute(
        select(partition_state.c.state).where(partition_state.c.partition_key == "p1")).scalar_one()))
    assert state["note"] == f"customer said: card {REDACTION}, please refund"
    assert state["raw"] == {"CardNbr": REDACTION} and state["effects"] == {"sl:task:1": "T0001"}
    emitted = database.read_sync(lambda conn: conn.execute(
        select(inbox.c.body).where(inbox.c.source == "test.emitted")).scalar_one())
    assert orjson.loads(emitted) == {"note": f"card:\n{REDACTION}"}
    assert not contains_card_number(everything_stored(database))
    assert any("redacted before it was stored" in r.getMessage() for r in caplog.records)


async def test_dead_letter_evidence_from_invalid_input_is_redacted(database: Database) -> None:
    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        raise InvalidInput(FieldIssue("payment.note", f"'{PAN}' is not a note we can post"), source="back office")

    async with running_engine(database, {"test": handler}) as engine:
        assert engine.intake is not None
        await engine.intake.submit(item("e1", "p1"))
        await wait_until(finished(database, 1))
    [dead] = database.read_sync(lambda conn: dlq.list_dead(conn))
    assert dead.error["issues"][0]["field"] == "payment.note"
    assert REDACTION in dead.error["message"] and not contains_card_number(everything_stored(database))


async def test_cases_and_reports_are_stored_redacted(database: Database) -> None:
    book = DatabaseCaseBook(database)
    now = datetime.now(UTC)
    await book.record([Case(key="missing_in_erp:cybersource:1", type=CaseType.MISSING_IN_ERP, opened_at=now,
                            updated_at=now, summary=f"settled, not in SL; the processor's memo reads {PAN}",
                            amount=Money.of("10.00", "USD"), reference="4111-1111-1111-1111",
                            evidence={"memo": PAN, "lines": [{"card": 4111111111111111}]})])
    row = database.read_sync(lambda conn: conn.execute(select(cases)).one())
    assert REDACTION in row.summary and row.reference == REDACTION
    assert orjson.loads(row.evidence) == {"memo": REDACTION, "lines": [{"card": REDACTION}]}
    ledger = DatabaseReconciliationLedger(database)
    await ledger.save_report("run-1", "cybersource", date(2026, 11, 21), "failed", {"lines": 1},
                             {"unmatched": [{"description": f"card {PAN}"}]}, f"line 3: {PAN}", time.time())
    report = database.read_sync(lambda conn: get_report(conn, "run-1"))
    assert report is not None and report["report"] == {"unmatched": [{"description": f"card {REDACTION}"}]}
    assert report["error"] == f"line 3: {REDACTION}"
    assert not contains_card_number(everything_stored(database))
