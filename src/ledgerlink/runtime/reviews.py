"""Review cases and risk scores in the runtime database (``flows.ports.ReviewQueue``, ``RiskLedger``).

A decision is one transaction: the case's compare-and-set from ``open``, its audit entry, and
the inbox event that will apply it (capture or reversal, order status) through the durable
runtime, in order with the order's other events. So a decision is either recorded and on its way,
or nothing happened; a second decision finds the case closed and is refused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, func, select, update

from ledgerlink.connectors.kit.batching import MicroBatcher
from ledgerlink.flows.context import OutboundEvent
from ledgerlink.flows.ports import UnknownCase
from ledgerlink.model import (
    CaseClosed,
    Money,
    ReviewCase,
    ReviewDecision,
    ReviewStatus,
    RiskScore,
)
from ledgerlink.model.review import DECIDED_STATUS
from ledgerlink.risk import CustomerHistory
from ledgerlink.runtime import audit
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.intake import REFUSED_VALUES, InboxItem, store_items
from ledgerlink.runtime.schema import leases, review_cases, risk_scores

HISTORY_DAYS = 365
HISTORY_ROWS = 500


def _read(row: Any) -> ReviewCase:
    return ReviewCase.model_validate_json(row.document)


class DatabaseReviewQueue:
    """``buckets``: the runtime's bucket count, for the decision events; None reads it from ``ll_leases``
    (every engine that ran has a lease row per bucket, and a case exists only if an engine opened it)."""

    def __init__(self, db: Database, *, buckets: int | None = None) -> None:
        self._db = db
        self._buckets = buckets

    def _bucket_count(self, conn: Connection) -> int:
        if self._buckets is not None:
            return self._buckets
        count = conn.execute(select(func.count()).select_from(leases)).scalar_one()
        if not count:
            raise RuntimeError("no engine has run on this database yet: its bucket count is unknown (pass the "
                               "integration file)")
        return int(count)

    async def open(self, case: ReviewCase, *, actor: str) -> bool:
        row = {"key": case.key, "gateway": case.gateway, "payment_id": case.payment_id,
               "partition_key": case.partition_key, "order_reference": case.order_reference,
               "status": case.status.value, "score": case.risk.score if case.risk else None,
               "amount": case.amount.format(), "currency": case.amount.currency,
               "opened_at": case.opened_at.timestamp(), "decided_at": None, "settled_at": None,
               "document": case.model_dump_json()}

        def run(conn: Connection) -> bool:
            inserted = conn.execute(self._db.insert(review_cases).values(**row)
                                    .on_conflict_do_nothing(index_elements=["key"])
                                    .returning(review_cases.c.key)).first() is not None
            if inserted:
                audit.append(self._db, conn, actor=actor, action="review.opened", target=case.key,
                             key=f"review.opened:{case.key}", details={
                                 "payment": case.payment_id, "order": case.order_reference,
                                 "amount": case.amount.format(), "currency": case.amount.currency,
                                 "score": case.risk.score if case.risk else None,
                                 "reasons": [r.code for r in case.reasons]})
            return inserted

        return await self._db.write(run)

    async def get(self, key: str) -> ReviewCase | None:
        query = select(review_cases.c.document).where(review_cases.c.key == key)
        row = await self._db.read(lambda conn: conn.execute(query).first())
        return _read(row) if row is not None else None

    async def decide(self, key: str, decision: ReviewDecision, *, actor: str, source: str,
                     comments: str | None = None, then: OutboundEvent | None = None) -> ReviewCase:
        def run(conn: Connection) -> ReviewCase:
            row = conn.execute(select(review_cases).where(review_cases.c.key == key)).first()
            if row is None:
                raise UnknownCase(f"no review case {key}")
            case = _read(row)
            if row.status != ReviewStatus.OPEN.value:
                raise CaseClosed(case, decision)
            now = time.time()
            decided = case.model_copy(update={
                "status": DECIDED_STATUS[decision], "decided_at": datetime.fromtimestamp(now, UTC),
                "decided_by": actor, "decision_source": source, "comments": comments or None})
            changed = conn.execute(
                update(review_cases).where(review_cases.c.key == key, review_cases.c.status == ReviewStatus.OPEN.value)
                .values(status=decided.status.value, decided_at=now, document=decided.model_dump_json())
            ).rowcount
            if not changed:  # decided by someone else between the read and the write
                raise CaseClosed(_read(conn.execute(select(review_cases).where(review_cases.c.key == key)).one()),
                                 decision)
            audit.append(self._db, conn, actor=actor, action=f"review.{decided.status.value}", target=key, at=now,
                         details={"decision": decision.value, "source": source, "comments": comments,
                                  "payment": case.payment_id, "order": case.order_reference,
                                  "score": case.risk.score if case.risk else None})
            if then is not None:
                item = InboxItem(source=then.source, event_id=then.event_id, event_type=then.event_type,
                                 partition_key=then.partition_key, body=then.body, headers=dict(then.headers))
                store_items(self._db, conn, [item], buckets=self._bucket_count(conn), now=now)
            return decided

        return await self._db.write(run)

    async def settled(self, key: str, *, follow_on_id: str | None, actor: str) -> None:
        def run(conn: Connection) -> None:
            row = conn.execute(select(review_cases).where(review_cases.c.key == key)).first()
            if row is None or row.settled_at is not None:
                return
            case = _read(row)
            now = time.time()
            done = case.model_copy(update={"settled_at": datetime.fromtimestamp(now, UTC),
                                           "follow_on_id": follow_on_id})
            conn.execute(update(review_cases).where(review_cases.c.key == key)
                         .values(settled_at=now, document=done.model_dump_json()))
            audit.append(self._db, conn, actor=actor, action="review.settled", target=key, at=now,
                         key=f"review.settled:{key}",
                         details={"decision": case.decision.value if case.decision else None,
                                  "follow_on": follow_on_id, "payment": case.payment_id})

        await self._db.write(run)

    async def list(self, *, status: ReviewStatus | None = ReviewStatus.OPEN, limit: int = 100) -> list[ReviewCase]:
        query = select(review_cases.c.document).limit(max(1, min(limit, 1000)))
        if status is not None:
            query = query.where(review_cases.c.status == status.value)
        # Highest score first, cases without a score last; then oldest first.
        query = query.order_by(review_cases.c.score.is_(None), review_cases.c.score.desc(),
                               review_cases.c.opened_at, review_cases.c.key)
        return await self._db.read(lambda conn: [_read(row) for row in conn.execute(query)])


@dataclass(frozen=True, slots=True)
class _HistoryQuery:
    customer_key: str
    end: float
    currency: str
    exclude: str


class DatabaseRiskLedger:
    """Every payment is scored once: its score is looked up, its customer's history read, and the score
    kept. Hundreds of flows do that at once, so each of the three is micro-batched: one read (or one write
    transaction, one fsync) for every call made in the same turn of the event loop, instead of one each. A
    batch the database refuses as a whole is written row by row, so one bad row fails alone."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._records: MicroBatcher[tuple[dict[str, Any], RiskScore], RiskScore] = MicroBatcher(
            self._record_batch, max_batch=500, max_in_flight=2)
        self._lookups: MicroBatcher[tuple[str, str], RiskScore | None] = MicroBatcher(
            self._lookup_batch, max_batch=500, max_in_flight=2)
        self._histories: MicroBatcher[_HistoryQuery, CustomerHistory] = MicroBatcher(
            self._history_batch, max_batch=200, max_in_flight=2)

    async def recorded(self, gateway: str, payment_id: str) -> RiskScore | None:
        return await self._lookups.submit((gateway, payment_id))

    async def history(self, customer_key: str, *, before: datetime, currency: str,
                      exclude: str) -> CustomerHistory:
        return await self._histories.submit(_HistoryQuery(customer_key, before.timestamp(), currency, exclude))

    async def record(self, *, gateway: str, payment_id: str, customer_key: str, observed_at: datetime,
                     amount: Money, country: str | None, score: RiskScore) -> RiskScore:
        row = {"gateway": gateway, "payment_id": payment_id, "customer_key": customer_key[:64],
               "observed_at": observed_at.timestamp(), "amount": amount.format(), "currency": amount.currency,
               "country": (country or "")[:2] or None, "score": score.score, "model": score.model[:64],
               "document": score.model_dump_json()}
        return await self._records.submit((row, score))

    # --- the batches -----------------------------------------------------------------------------

    async def _lookup_batch(self, keys: Sequence[tuple[str, str]]) -> list[RiskScore | None]:
        found = await self._db.read(lambda conn: _documents(conn, keys))
        return [RiskScore.model_validate_json(found[key]) if key in found else None for key in keys]

    async def _history_batch(self, queries: Sequence[_HistoryQuery]) -> list[CustomerHistory]:
        return await self._db.read(lambda conn: [_history(conn, query) for query in queries])

    async def _record_batch(self, items: Sequence[tuple[dict[str, Any], RiskScore]]) -> list[RiskScore | BaseException]:
        insert = self._db.insert(risk_scores).on_conflict_do_nothing(index_elements=["gateway", "payment_id"])

        def run(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
            conn.execute(insert, list(rows))
            return _documents(conn, [(row["gateway"], row["payment_id"]) for row in rows])

        def kept(row: dict[str, Any], score: RiskScore, documents: dict[tuple[str, str], str]) -> RiskScore:
            document = documents[(row["gateway"], row["payment_id"])]
            return score if document == row["document"] else RiskScore.model_validate_json(document)

        try:
            documents = await self._db.write(lambda conn: run(conn, [row for row, _ in items]))
        except REFUSED_VALUES:
            if len(items) == 1:
                raise
            results: list[RiskScore | BaseException] = []
            for row, score in items:  # one by one: the row the database refuses fails alone
                try:
                    one = await self._db.write(lambda conn, row=row: run(conn, [row]))
                    results.append(kept(row, score, one))
                except Exception as exc:
                    results.append(exc)
            return results
        return [kept(row, score, documents) for row, score in items]


def _documents(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The kept score documents of (gateway, payment id) keys, one query per gateway."""
    found: dict[tuple[str, str], str] = {}
    for gateway in {gateway for gateway, _ in keys}:
        ids = sorted({payment_id for g, payment_id in keys if g == gateway})
        query = select(risk_scores.c.payment_id, risk_scores.c.document).where(
            risk_scores.c.gateway == gateway, risk_scores.c.payment_id.in_(ids))
        found.update({(gateway, row.payment_id): row.document for row in conn.execute(query)})
    return found


_HISTORY = (select(risk_scores.c.payment_id, risk_scores.c.observed_at, risk_scores.c.amount, risk_scores.c.currency,
                   risk_scores.c.country)
            .where(risk_scores.c.customer_key == bindparam("key"), risk_scores.c.observed_at < bindparam("end"),
                   risk_scores.c.observed_at >= bindparam("start"))
            .order_by(risk_scores.c.observed_at.desc()).limit(HISTORY_ROWS))  # built once: one is run per payment
_HISTORY_SECONDS = timedelta(days=HISTORY_DAYS).total_seconds()


def _history(conn: Connection, query: _HistoryQuery) -> CustomerHistory:
    end = query.end
    rows = [r for r in conn.execute(_HISTORY, {"key": query.customer_key, "end": end,
                                               "start": end - _HISTORY_SECONDS}) if r.payment_id != query.exclude]
    same = [Decimal(r.amount) for r in rows if r.currency == query.currency]
    return CustomerHistory(
        payments=len(rows),
        mean_amount=(sum(same, Decimal(0)) / len(same)).quantize(Decimal("0.01")) if same else None,
        last_hour=sum(1 for r in rows if r.observed_at >= end - 3600),
        last_day=sum(1 for r in rows if r.observed_at >= end - 86400),
        countries=frozenset(r.country for r in rows if r.country),
    )


def case_summary(case: ReviewCase, now: float | None = None) -> dict[str, Any]:
    """A case as the admin API and CLI list it."""
    data: dict[str, Any] = orjson.loads(case.model_dump_json())
    now = time.time() if now is None else now
    data["age_hours"] = round((now - case.opened_at.timestamp()) / 3600, 2)
    data["points"] = case.risk.points if case.risk else None
    return data


__all__ = ["DatabaseReviewQueue", "DatabaseRiskLedger", "case_summary"]
