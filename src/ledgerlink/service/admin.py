"""The admin API: engine statistics, the dead-letter list and replay, schedules.

Every route needs ``Authorization: Bearer <token>``. Tokens are configured as
SHA-256 digests (``LEDGERLINK_ADMIN_TOKEN_SHA256``) or as a plain token that is
hashed at start (``LEDGERLINK_ADMIN_TOKEN``); comparison is constant-time. With
no token configured the admin API refuses every request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import select

from ledgerlink.model import CaseStatus, CaseType
from ledgerlink.runtime import dlq
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.records import DatabaseCaseBook, get_report, list_reports
from ledgerlink.runtime.schema import schedules
from ledgerlink.runtime.stats import engine_stats
from ledgerlink.service.reports import report_csv, report_html

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    digests: tuple[str, ...] = request.app.state.admin_token_digests
    if credentials is None or not digests:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "admin token required",
                            headers={"WWW-Authenticate": "Bearer"})
    presented = token_digest(credentials.credentials)
    if not any(hmac.compare_digest(presented, digest) for digest in digests):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid admin token",
                            headers={"WWW-Authenticate": "Bearer"})
    return presented[:12]


Admin = Annotated[str, Depends(require_admin)]


def _db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


class ReplayRequest(BaseModel):
    seqs: list[int] | None = None


router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/stats")
async def stats(request: Request, _: Admin, latency_window: int = 20_000) -> dict[str, Any]:
    """Engine statistics; ``latency_window=0`` skips the latency percentiles (cheap enough to poll)."""
    window = max(0, min(latency_window, 1_000_000))
    return await _db(request).read(lambda conn: engine_stats(conn, latency_window=window))


@router.get("/dlq")
async def dead_letters(request: Request, _: Admin, limit: int = 100, source: str | None = None) -> dict[str, Any]:
    limit = max(1, min(limit, 1000))
    items = await _db(request).read(lambda conn: dlq.list_dead(conn, limit=limit, source=source))
    total = await _db(request).read(dlq.count_dead)
    return {"total": total, "items": [item.summary() for item in items]}


@router.get("/dlq/{seq}")
async def dead_letter(request: Request, seq: int, _: Admin) -> dict[str, Any]:
    item = await _db(request).read(lambda conn: dlq.get_dead(conn, seq))
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead-lettered event {seq}")
    return item.detail()


async def _replay(request: Request, seqs: list[int] | None, who: str) -> dict[str, Any]:
    db = _db(request)
    replayed = await db.write(lambda conn: dlq.replay(conn, seqs, is_sqlite=db.is_sqlite))
    log.info("admin %s replayed %d dead-lettered event(s): %s", who, len(replayed), replayed[:50])
    engine = getattr(request.app.state, "engine", None)
    if engine is not None and engine.worker is not None:
        engine.worker.wake()
    return {"replayed": replayed}


@router.post("/dlq/{seq}/replay")
async def replay_one(request: Request, seq: int, who: Admin) -> dict[str, Any]:
    result = await _replay(request, [seq], who)
    if not result["replayed"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead-lettered event {seq}")
    return result


@router.post("/dlq/replay")
async def replay_many(request: Request, body: ReplayRequest, who: Admin) -> dict[str, Any]:
    return await _replay(request, body.seqs, who)


@router.get("/cases")
async def list_cases(request: Request, _: Admin, status_: str | None = Query("open", alias="status"),
                     type_: str | None = Query(None, alias="type"), limit: int = 100) -> dict[str, Any]:
    try:
        wanted_status = CaseStatus(status_) if status_ else None
        wanted_type = CaseType(type_) if type_ else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    found = await DatabaseCaseBook(_db(request)).list(status=wanted_status, type=wanted_type,
                                                      limit=max(1, min(limit, 1000)))
    return {"items": [case.model_dump(mode="json") for case in found]}


class ReconcileRequest(BaseModel):
    date: date


@router.get("/reconciliations")
async def list_reconciliations(request: Request, _: Admin, day: str | None = None,
                               limit: int = 50) -> dict[str, Any]:
    items = await _db(request).read(lambda conn: list_reports(conn, limit=max(1, min(limit, 500)), day=day))
    return {"items": items}


async def _report(request: Request, run_id: str) -> dict[str, Any]:
    found = await _db(request).read(lambda conn: get_report(conn, run_id))
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no reconciliation run {run_id}")
    return found


@router.get("/reconciliations/{run_id}")
async def reconciliation(request: Request, run_id: str, _: Admin) -> dict[str, Any]:
    return await _report(request, run_id)


@router.get("/reconciliations/{run_id}/report.csv", response_class=PlainTextResponse)
async def reconciliation_csv(request: Request, run_id: str, _: Admin) -> PlainTextResponse:
    found = await _report(request, run_id)
    return PlainTextResponse(report_csv(found["report"] or {}), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="reconciliation-{run_id}.csv"'})


@router.get("/reconciliations/{run_id}/report.html", response_class=HTMLResponse)
async def reconciliation_html(request: Request, run_id: str, _: Admin) -> HTMLResponse:
    found = await _report(request, run_id)
    report = found["report"] or {"run_id": run_id, "day": found["day"], "status": found["status"],
                                 "gateway": found["gateway"], "counts": {"error": found["error"]}}
    return HTMLResponse(report_html(report))


@router.post("/reconciliations", status_code=status.HTTP_202_ACCEPTED)
async def start_reconciliation(request: Request, body: ReconcileRequest, who: Admin) -> dict[str, Any]:
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
    await db.write(lambda conn: store_items(db, conn, [item], buckets=engine.settings.buckets, now=time.time()))
    if engine.worker is not None:
        engine.worker.wake()
    log.info("admin %s queued reconciliation %s for %s", who, run_id, body.date)
    return {"run_id": run_id, "status": "queued"}


@router.get("/schedules")
async def list_schedules(request: Request, _: Admin) -> dict[str, Any]:
    rows = await _db(request).read(lambda conn: conn.execute(select(schedules)).all())
    return {"schedules": [dict(row._mapping) for row in rows]}
