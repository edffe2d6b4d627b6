"""The engine's own records for flows: cases, settled transactions, reconciliation reports.

Implements ``flows.ports.CaseBook`` and ``flows.ports.ReconciliationLedger`` on the runtime database,
so they live beside the inbox on SQLite or PostgreSQL and need no other store. Cases and reports are built
from what gateways and back offices report, so their text passes through ``runtime.redaction`` first: a
card number in a summary, a reference, evidence or a report is stored redacted.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
import polars as pl
from sqlalchemy import Connection, select, update

from ledgerlink.model import Case, CaseStatus, CaseType, ExternalRef, Money
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.redaction import stored_json, stored_text
from ledgerlink.runtime.schema import cases, reconciliations, settled, settled_days

SETTLED_KEYS = {"txn": pl.Utf8, "kind": pl.Utf8}


def _case_from_row(row: Any) -> Case:
    amount = Money.of(row.amount, row.currency) if row.amount is not None and row.currency else None
    return Case(
        key=row.key, type=CaseType(row.type), status=CaseStatus(row.status), summary=row.summary, amount=amount,
        reference=row.reference, opened_at=datetime.fromtimestamp(row.opened_at, UTC),
        updated_at=datetime.fromtimestamp(row.updated_at, UTC),
        evidence=orjson.loads(row.evidence) if row.evidence else {},
        refs=tuple(ExternalRef.parse(key) for key in orjson.loads(row.refs or "[]")),
    )


class DatabaseCaseBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, new_cases: Sequence[Case]) -> list[Case]:
        if not new_cases:
            return []

        def run(conn: Connection) -> list[Case]:
            keys = [case.key for case in new_cases]
            existing: dict[str, Any] = {}
            for start in range(0, len(keys), 500):
                for row in conn.execute(select(cases).where(cases.c.key.in_(keys[start : start + 500]))):
                    existing[row.key] = row
            opened: list[Case] = []
            inserts = []
            now = time.time()
            for case in new_cases:
                what = f"case {case.key}"
                values = {
                    "type": case.type.value, "summary": stored_text(case.summary, what=what),
                    "amount": case.amount.format() if case.amount else None,
                    "currency": case.amount.currency if case.amount else None,
                    "reference": stored_text(case.reference, what=what),
                    "evidence": stored_json(case.evidence, what=what, default=str), "updated_at": now,
                }
                row = existing.get(case.key)
                if row is None:
                    inserts.append({**values, "key": case.key, "status": CaseStatus.OPEN.value, "opened_at": now,
                                    "resolved_at": None, "refs": "[]"})
                    opened.append(case)
                else:
                    if row.status != CaseStatus.OPEN.value:
                        values.update(status=CaseStatus.OPEN.value, resolved_at=None)  # it came back
                        opened.append(case)
                    conn.execute(update(cases).where(cases.c.key == case.key).values(**values))
            if inserts:
                conn.execute(cases.insert(), inserts)
            return opened

        return await self._db.write(run)

    async def resolve(self, keys: Iterable[str], *, note: str) -> int:
        wanted = sorted(set(keys))
        if not wanted:
            return 0

        def run(conn: Connection) -> int:
            resolved = 0
            now = time.time()
            for start in range(0, len(wanted), 500):
                resolved += conn.execute(
                    update(cases).where(cases.c.key.in_(wanted[start : start + 500]),
                                        cases.c.status == CaseStatus.OPEN.value)
                    .values(status=CaseStatus.RESOLVED.value, resolved_at=now, updated_at=now)
                ).rowcount or 0
            return resolved

        return await self._db.write(run)

    async def open_keys(self, types: Iterable[CaseType] | None = None) -> set[str]:
        query = select(cases.c.key).where(cases.c.status == CaseStatus.OPEN.value)
        if types is not None:
            query = query.where(cases.c.type.in_([t.value for t in types]))
        return set(await self._db.read(lambda conn: list(conn.execute(query).scalars())))

    async def attach(self, key: str, ref: str) -> None:
        await self.attach_all({key: ref})

    async def attach_all(self, refs: Mapping[str, str]) -> None:
        wanted = dict(refs)
        if not wanted:
            return

        def run(conn: Connection) -> None:
            keys = sorted(wanted)
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                for row in conn.execute(select(cases.c.key, cases.c.refs).where(cases.c.key.in_(chunk))).all():
                    held = orjson.loads(row.refs or "[]")
                    if wanted[row.key] not in held:
                        held.append(wanted[row.key])
                        conn.execute(update(cases).where(cases.c.key == row.key)
                                     .values(refs=orjson.dumps(held).decode()))

        await self._db.write(run)

    async def list(self, *, status: CaseStatus | None = None, type: CaseType | None = None,
                   limit: int = 100) -> list[Case]:
        query = select(cases).order_by(cases.c.opened_at.desc(), cases.c.key).limit(limit)
        if status is not None:
            query = query.where(cases.c.status == status.value)
        if type is not None:
            query = query.where(cases.c.type == type.value)
        return await self._db.read(lambda conn: [_case_from_row(row) for row in conn.execute(query)])


class DatabaseReconciliationLedger:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def settled_before(self, gateway: str, day: date, since: date) -> pl.DataFrame:
        window = (since.isoformat(), day.isoformat())
        blobs = select(settled_days.c.keys_arrow).where(settled_days.c.gateway == gateway,
                                                  settled_days.c.day >= window[0], settled_days.c.day < window[1])
        legacy = select(settled.c.transaction_id, settled.c.kind).where(
            settled.c.gateway == gateway, settled.c.day >= window[0], settled.c.day < window[1])

        def run(conn: Connection) -> tuple[list[bytes], list[tuple[str, str]]]:
            return list(conn.execute(blobs).scalars()), [(row[0], row[1]) for row in conn.execute(legacy)]

        stored, rows = await self._db.read(run)
        frames = [pl.read_ipc(io.BytesIO(blob), columns=["txn", "kind"]) for blob in stored]
        if rows:  # what an engine before the per-day blobs recorded
            frames.append(pl.DataFrame(rows, schema=SETTLED_KEYS, orient="row"))
        if not frames:
            return pl.DataFrame(schema=SETTLED_KEYS)
        return pl.concat(frames)

    async def record_settled(self, gateway: str, day: date, settled: pl.DataFrame) -> None:
        buffer = io.BytesIO()
        settled.select(pl.col("txn", "kind", "batch").cast(pl.Utf8)).write_ipc(buffer, compression="zstd")
        row = {"gateway": gateway, "day": day.isoformat(), "lines": settled.height,
               "keys_arrow": buffer.getvalue(), "recorded_at": time.time()}
        statement = self._db.insert(settled_days).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["gateway", "day"],
            set_={k: statement.excluded[k] for k in ("lines", "keys_arrow", "recorded_at")})
        await self._db.write(lambda conn: conn.execute(statement))

    async def reconciled_days(self, gateway: str, first: date, last: date) -> set[date]:
        query = select(reconciliations.c.day).distinct().where(
            reconciliations.c.gateway == gateway, reconciliations.c.status == "succeeded",
            reconciliations.c.day >= first.isoformat(), reconciliations.c.day <= last.isoformat())
        return await self._db.read(lambda conn: {date.fromisoformat(day) for day in conn.execute(query).scalars()})

    async def save_report(self, run_id: str, gateway: str, day: date, status: str, summary: dict[str, Any],
                          report: dict[str, Any] | None, error: str | None, started_at: float) -> None:
        what = f"reconciliation {run_id}"
        row = {
            "run_id": run_id, "gateway": gateway, "day": day.isoformat(), "status": status,
            "started_at": started_at, "finished_at": time.time(),
            "summary": stored_json(summary, what=what, default=str),
            "report": stored_json(report, what=what, default=str) if report is not None else None,
            "error": stored_text(error, what=what),
        }
        statement = self._db.insert(reconciliations).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id"], set_={k: statement.excluded[k] for k in row if k != "run_id"})
        await self._db.write(lambda conn: conn.execute(statement))


def list_reports(conn: Connection, *, limit: int = 50, day: str | None = None) -> list[dict[str, Any]]:
    query = select(reconciliations.c.run_id, reconciliations.c.gateway, reconciliations.c.day,
                   reconciliations.c.status, reconciliations.c.started_at, reconciliations.c.finished_at,
                   reconciliations.c.summary, reconciliations.c.error) \
        .order_by(reconciliations.c.started_at.desc()).limit(limit)
    if day:
        query = query.where(reconciliations.c.day == day)
    return [{**row._asdict(), "summary": orjson.loads(row.summary) if row.summary else None}
            for row in conn.execute(query)]


def get_report(conn: Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(reconciliations).where(reconciliations.c.run_id == run_id)).first()
    if row is None:
        return None
    return {**row._asdict(), "summary": orjson.loads(row.summary) if row.summary else None,
            "report": orjson.loads(row.report) if row.report else None}
