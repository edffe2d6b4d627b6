"""The admin API: engine statistics, the dead-letter list and replay, schedules.

Every route needs ``Authorization: Bearer <token>`` and names the role it needs
(``Viewer``, ``Operator``, ``Admin`` from ``service/auth.py``): 401 without a valid
token, 403 with one whose role is too low. What a route changes is written to the
audit log in the same transaction, with the token's name as the actor.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from ledgerlink.model import CaseStatus, CaseType
from ledgerlink.runtime import audit, dlq
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.records import DatabaseCaseBook, get_report, list_reports
from ledgerlink.runtime.schema import schedules
from ledgerlink.runtime.stats import engine_stats
from ledgerlink.runtime.tokens import Principal
from ledgerlink.service.auth import Admin, Operator, Viewer, token_digest
from ledgerlink.service.reports import report_csv, report_html

log = logging.getLogger(__name__)

__all__ = ["MAX_SEQ", "Admin", "Operator", "Viewer", "router", "token_digest"]

MAX_SEQ = 2**63 - 1  # the largest sequence number a database column holds: larger ones are a 422, not a 500
Seq = Annotated[int, Path(ge=1, le=MAX_SEQ)]


def _db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


class ReplayRequest(BaseModel):
    seqs: list[Annotated[int, Field(ge=1, le=MAX_SEQ)]] | None = Field(None, max_length=10_000)


router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/stats")
async def stats(request: Request, _: Viewer, latency_window: int = 20_000) -> dict[str, Any]:
    """Engine statistics; ``latency_window=0`` skips the latency percentiles (cheap enough to poll)."""
    window = max(0, min(latency_window, 1_000_000))
    return await _db(request).read(lambda conn: engine_stats(conn, latency_window=window))


@router.get("/dlq")
async def dead_letters(request: Request, _: Viewer, limit: int = 100, source: str | None = None) -> dict[str, Any]:
    limit = max(1, min(limit, 1000))
    items = await _db(request).read(lambda conn: dlq.list_dead(conn, limit=limit, source=source))
    total = await _db(request).read(dlq.count_dead)
    return {"total": total, "items": [item.summary() for item in items]}


@router.get("/dlq/{seq}")
async def dead_letter(request: Request, seq: Seq, _: Viewer) -> dict[str, Any]:
    item = await _db(request).read(lambda conn: dlq.get_dead(conn, seq))
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead-lettered event {seq}")
    return item.detail()


async def _replay(request: Request, seqs: list[int] | None, who: Principal) -> dict[str, Any]:
    db = _db(request)
    replayed = await db.write(lambda conn: dlq.replay_audited(db, conn, seqs, actor=who.actor))
    log.info("%s replayed %d dead-lettered event(s): %s", who.actor, len(replayed), replayed[:50])
    engine = getattr(request.app.state, "engine", None)
    if engine is not None and engine.worker is not None:
        engine.worker.wake()
    return {"replayed": replayed}


@router.post("/dlq/{seq}/replay")
async def replay_one(request: Request, seq: Seq, who: Operator) -> dict[str, Any]:
    result = await _replay(request, [seq], who)
    if not result["replayed"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead-lettered event {seq}")
    return result


@router.post("/dlq/replay")
async def replay_many(request: Request, body: ReplayRequest, who: Operator) -> dict[str, Any]:
    return await _replay(request, body.seqs, who)


@router.get("/cases")
async def list_cases(request: Request, _: Viewer, status_: str | None = Query("open", alias="status"),
                     type_: str | None = Query(None, alias="type"), limit: int = 100) -> dict[str, Any]:
    try:
        wanted_status = CaseStatus(status_) if status_ else None
        wanted_type = CaseType(type_) if type_ else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    found = await DatabaseCaseBook(_db(request)).list(status=wanted_status, type=wanted_type,
                                                      limit=max(1, min(limit, 1000)))
    now = time.time()
    return {"items": [{**case.model_dump(mode="json"), "age_days": round((now - case.opened_at.timestamp()) / 86400, 2)}
                      for case in found]}


class ReconcileRequest(BaseModel):
    date: date


@router.get("/reconciliations")
async def list_reconciliations(request: Request, _: Viewer, day: str | None = None,
                               limit: int = 50) -> dict[str, Any]:
    items = await _db(request).read(lambda conn: list_reports(conn, limit=max(1, min(limit, 500)), day=day))
    return {"items": items}


async def _report(request: Request, run_id: str) -> dict[str, Any]:
    found = await _db(request).read(lambda conn: get_report(conn, run_id))
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no reconciliation run {run_id}")
    return found


@router.get("/reconciliations/{run_id}")
async def reconciliation(request: Request, run_id: str, _: Viewer) -> dict[str, Any]:
    return await _report(request, run_id)


@router.get("/reconciliations/{run_id}/report.csv", response_class=PlainTextResponse)
async def reconciliation_csv(request: Request, run_id: str, _: Viewer) -> PlainTextResponse:
    found = await _report(request, run_id)
    return PlainTextResponse(report_csv(found["report"] or {}), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="reconciliation-{run_id}.csv"'})


@router.get("/reconciliations/{run_id}/report.html", response_class=HTMLResponse)
async def reconciliation_html(request: Request, run_id: str, _: Viewer) -> HTMLResponse:
    found = await _report(request, run_id)
    report = found["report"] or {"run_id": run_id, "day": found["day"], "status": found["status"],
                                 "gateway": found["gateway"], "counts": {"error": found["error"]}}
    return HTMLResponse(report_html(report))


@router.post("/reconciliations", status_code=status.HTTP_202_ACCEPTED)
async def start_reconciliation(request: Request, body: ReconcileRequest, who: Operator) -> dict[str, Any]:
    """Queue a run for a day (idempotent in effect: journals and cases are keyed, a re-run updates them)."""
    integration = request.app.state.integration
    if integration.settlement is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "flows.settlement is not enabled")
    from ledgerlink.flows.jobs import RECONCILE_DAY, reconcile_partition
    from ledgerlink.runtime.intake import InboxItem, store_items
    from ledgerlink.runtime.scheduler import job_event

    db = _db(request)
    engine = request.app.state.engine
    run_id = f"{body.date.isoformat()}-api-{uuid.uuid4().hex[:10]}"
    row = job_event(RECONCILE_DAY, args={"day": body.date.isoformat(), "run_id": run_id}, nonce=run_id,
                    buckets=engine.settings.buckets, now=time.time(),
                    partition=reconcile_partition(integration.settlement, body.date))
    item = InboxItem(source=row["source"], event_id=row["event_id"], event_type=row["event_type"],
                     partition_key=row["partition_key"], body=row["body"])
    def queue(conn: Any) -> None:
        store_items(db, conn, [item], buckets=engine.settings.buckets, now=time.time())
        audit.append(db, conn, actor=who.actor, action="reconciliation.requested", target=f"reconciliation:{run_id}",
                     details={"day": body.date.isoformat()})

    await db.write(queue)
    if engine.worker is not None:
        engine.worker.wake()
    log.info("%s queued reconciliation %s for %s", who.actor, run_id, body.date)
    return {"run_id": run_id, "status": "queued"}


@router.get("/schedules")
async def list_schedules(request: Request, _: Viewer) -> dict[str, Any]:
    rows = await _db(request).read(lambda conn: conn.execute(select(schedules)).all())
    return {"schedules": [dict(row._mapping) for row in rows]}


@router.get("/notifications")
async def list_customer_notices(request: Request, _: Viewer, status_: Annotated[str | None, Query(alias="status")] = None,
                                reference: str | None = None,
                                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Customer notices in the outbox (``pending``, ``sending``, ``sent``, ``dead``), oldest first; ``reference``
    is what they are about (a subscription id)."""
    from ledgerlink.runtime.notifications import list_notifications, notification_counts

    def read(conn: Any) -> dict[str, Any]:
        return {"counts": notification_counts(conn),
                "notifications": list_notifications(conn, status=status_, reference=reference, limit=limit)}

    return await _db(request).read(read)
