"""The audit log and the review queue's records: append-only entries, one transaction per decision."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from ledgerlink.flows.context import OutboundEvent
from ledgerlink.flows.ports import UnknownCase
from ledgerlink.model import (
    CaseClosed,
    InvalidInput,
    Money,
    ReviewCase,
    ReviewDecision,
    ReviewStatus,
    RiskScore,
)
from ledgerlink.runtime import audit
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.reviews import DatabaseReviewQueue, DatabaseRiskLedger
from ledgerlink.runtime.schema import inbox


@pytest.fixture
def db(database_target: tuple[str, str | None]) -> Iterator[Database]:
    url, schema = database_target
    database = Database(url, schema=schema)
    yield database
    database.close()


def case(key: str, score: float | None, opened: int = 0) -> ReviewCase:
    return ReviewCase(key=key, gateway="cybersource", payment_id=key.rsplit(":", 1)[-1], partition_key=f"p:{key}",
                      order_reference="WEB-1", amount=Money.of("10.00", "USD"),
                      risk=RiskScore(score=score, model="lr-test") if score is not None else None,
                      opened_at=datetime.fromtimestamp(1_700_000_000 + opened, UTC))


def event(key: str) -> OutboundEvent:
    return OutboundEvent(source="cybersource.reviews", event_id=f"review-decision:{key}", event_type="review.accept",
                         partition_key=f"p:{key}", body=b"{}")


async def test_entries_are_appended_filtered_newest_first_and_keyed_ones_written_once(db: Database) -> None:
    log = audit.AuditLog(db)
    assert await log.record(actor="admin:abc", action="review.accepted", target="r:1", details={"why": "ok"})
    assert await log.record(actor="ledgerlink", action="review.settled", target="r:1", key="settled:r:1")
    assert not await log.record(actor="ledgerlink", action="review.settled", target="r:1", key="settled:r:1")
    await log.record(actor="cli:ann", action="dlq.replayed", target="inbox:7")
    found = await log.entries(target="r:1")
    assert [e.action for e in found] == ["review.settled", "review.accepted"]
    assert found[1].details == {"why": "ok"} and found[1].actor == "admin:abc"
    assert [e.target for e in await log.entries(action="review.")] == ["r:1", "r:1"]
    assert len(await log.entries(before=found[0].seq)) == 1


async def test_an_entry_with_a_card_number_or_no_actor_is_refused(db: Database) -> None:
    log = audit.AuditLog(db)
    with pytest.raises(InvalidInput) as refused:
        await log.record(actor=" ", action="x", target="y", details={"note": "card 4111111111111111"})
    assert {i.field for i in refused.value.issues} == {"actor", "details"}
    assert await log.entries() == []


async def test_a_decision_closes_audits_and_queues_in_one_transaction(db: Database) -> None:
    queue = DatabaseReviewQueue(db, buckets=8)
    assert await queue.open(case("review:cs:1", 0.4), actor="ledgerlink")
    assert not await queue.open(case("review:cs:1", 0.9), actor="ledgerlink")  # once per key
    decided = await queue.decide("review:cs:1", ReviewDecision.ACCEPT, actor="admin:abc", source="engine",
                                 comments="fine", then=event("review:cs:1"))
    assert decided.status is ReviewStatus.ACCEPTED and decided.decided_by == "admin:abc"
    with pytest.raises(CaseClosed, match="already accepted by admin:abc"):
        await queue.decide("review:cs:1", ReviewDecision.REJECT, actor="admin:def", source="engine",
                           then=event("review:cs:1-again"))
    with pytest.raises(UnknownCase):
        await queue.decide("review:cs:404", ReviewDecision.REJECT, actor="admin:def", source="engine")
    queued = db.read_sync(lambda conn: conn.execute(select(func.count()).select_from(inbox)).scalar_one())
    assert queued == 1
    trail = await audit.AuditLog(db).entries(target="review:cs:1")
    assert [e.action for e in trail] == ["review.accepted", "review.opened"]
    await queue.settled("review:cs:1", follow_on_id="cap-1", actor="ledgerlink")
    await queue.settled("review:cs:1", follow_on_id="cap-1", actor="ledgerlink")
    stored = await queue.get("review:cs:1")
    assert stored is not None and stored.follow_on_id == "cap-1" and stored.settled_at is not None
    trail = await audit.AuditLog(db).entries(target="review:cs:1")
    assert [e.action for e in trail] == ["review.settled", "review.accepted", "review.opened"]


async def test_two_decisions_at_once_one_wins_and_the_other_is_refused(db: Database) -> None:
    queue = DatabaseReviewQueue(db, buckets=8)
    await queue.open(case("review:cs:2", 0.5), actor="ledgerlink")
    results = await asyncio.gather(
        queue.decide("review:cs:2", ReviewDecision.ACCEPT, actor="a", source="engine", then=event("a")),
        queue.decide("review:cs:2", ReviewDecision.REJECT, actor="b", source="engine", then=event("b")),
        return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["CaseClosed", "ReviewCase"]
    queued = db.read_sync(lambda conn: conn.execute(select(func.count()).select_from(inbox)).scalar_one())
    assert queued == 1


async def test_the_queue_lists_the_riskiest_first(db: Database) -> None:
    queue = DatabaseReviewQueue(db)
    for key, score, opened in (("review:cs:a", 0.2, 1), ("review:cs:b", 0.9, 2), ("review:cs:c", None, 0),
                               ("review:cs:d", 0.9, 1)):
        await queue.open(case(key, score, opened), actor="ledgerlink")
    assert [c.key for c in await queue.list()] == ["review:cs:d", "review:cs:b", "review:cs:a", "review:cs:c"]
    with pytest.raises(RuntimeError, match="bucket count is unknown"):  # no engine ever ran on this database
        await queue.decide("review:cs:a", ReviewDecision.ACCEPT, actor="cli:ann", source="engine", then=event("x"))
    assert (await queue.get("review:cs:a")).status is ReviewStatus.OPEN  # type: ignore[union-attr]


async def test_risk_scores_keep_the_first_and_give_the_customers_history(db: Database) -> None:
    ledger = DatabaseRiskLedger(db)
    base = 1_700_000_000
    for index, (amount, country, offset) in enumerate((("10.00", "US", -7200), ("30.00", "GB", -600),
                                                       ("99.00", "US", -30))):
        await ledger.record(gateway="cs", payment_id=f"p{index}", customer_key="cust", country=country,
                            observed_at=datetime.fromtimestamp(base + offset, UTC), amount=Money.of(amount, "USD"),
                            score=RiskScore(score=0.1, model="m"))
    kept = await ledger.record(gateway="cs", payment_id="p0", customer_key="cust", country="US",
                               observed_at=datetime.fromtimestamp(base, UTC), amount=Money.of("1.00", "USD"),
                               score=RiskScore(score=0.9, model="m"))
    assert kept.score == 0.1 and (await ledger.recorded("cs", "p0")) == kept
    history = await ledger.history("cust", before=datetime.fromtimestamp(base, UTC), currency="USD", exclude="p2")
    assert history.payments == 2 and history.mean_amount == Money.of("20.00", "USD").amount
    assert history.last_hour == 1 and history.last_day == 2 and history.countries == {"US", "GB"}


async def test_concurrent_scores_share_transactions_and_a_row_the_database_refuses_fails_alone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = DatabaseRiskLedger(db)
    writes = 0
    write = db.write

    async def counted(fn):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += 1
        return await write(fn)

    monkeypatch.setattr(db, "write", counted)
    at = datetime.fromtimestamp(1_700_000_000, UTC)

    async def score(index: int, value: float, payment_id: str = "") -> RiskScore:
        return await ledger.record(gateway="cs", payment_id=payment_id or f"p{index}", customer_key=f"c{index % 7}",
                                   observed_at=at, amount=Money.of("5.00", "USD"), country="US",
                                   score=RiskScore(score=value, model="m"))

    first = await asyncio.gather(*(score(i, 0.25) for i in range(200)))
    assert [s.score for s in first] == [0.25] * 200 and writes < 10, writes
    # the first score is kept: a second round (with one id too long for its column) gets it back
    again = await asyncio.gather(*(score(i, 0.75) for i in range(200)), score(999, 0.5, "p" * 200),
                                 return_exceptions=True)
    assert [s.score for s in again[:200]] == [0.25] * 200  # type: ignore[union-attr]
    if db.is_sqlite:  # SQLite keeps what it is given; PostgreSQL refuses the row, and only that row
        assert again[200].score == 0.5  # type: ignore[union-attr]
    else:
        assert isinstance(again[200], Exception)
    found = await asyncio.gather(*(ledger.recorded("cs", f"p{i}") for i in (0, 5, 199, 1000)))
    assert [s.score if s else None for s in found] == [0.25, 0.25, 0.25, None]
    histories = await asyncio.gather(*(ledger.history(f"c{k}", before=datetime.fromtimestamp(1_700_000_001, UTC),
                                                      currency="USD", exclude="p0") for k in range(7)))
    in_sqlite = 1 if db.is_sqlite else 0  # p999's row, kept by SQLite only (999 % 7 == 5)
    assert [h.payments for h in histories] == [28, 29, 29, 29, 28, 28 + in_sqlite, 28]
