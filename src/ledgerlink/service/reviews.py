"""Admin API for fraud review: the queue (highest risk first), one case with its audit trail, decisions.

    GET  /admin/reviews?status=open&limit=100
    GET  /admin/reviews/{key}
    POST /admin/reviews/{key}/decision   {"decision": "accept"|"reject", "comments": "...", "reviewer": "..."}
    GET  /admin/audit?target=&action=&actor=&before=&limit=

A decision answers 202 once the case is closed, audited and its capture or reversal queued (one
transaction); 404 for no such case; 409 for a case already decided (saying by whom, when and how:
nothing is changed); 422 naming the field for a bad decision or comments.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.flows.fraud_review import request_decision
from ledgerlink.flows.ports import UnknownCase
from ledgerlink.model import CaseClosed, InvalidInput, ReviewDecision, ReviewStatus
from ledgerlink.runtime import audit
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.reviews import DatabaseReviewQueue, case_summary
from ledgerlink.service.auth import Operator, Viewer

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin", tags=["fraud review"])


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision
    comments: str | None = Field(None, max_length=1000)
    reviewer: str | None = Field(None, max_length=100)  # the person behind the token, as they name themselves


def _db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def _queue(request: Request) -> DatabaseReviewQueue:
    return DatabaseReviewQueue(_db(request), buckets=request.app.state.engine.settings.buckets)


@router.get("/reviews")
async def list_reviews(request: Request, _: Viewer, status_: Annotated[str | None, Query(alias="status")] = "open",
                       limit: int = 100) -> dict[str, Any]:
    """Review cases, highest risk score first (``status``: open, accepted, rejected, or empty for all)."""
    try:
        wanted = ReviewStatus(status_) if status_ else None
    except ValueError:
        raise HTTPException(422,
                            f"status: must be one of {', '.join(s.value for s in ReviewStatus)}") from None
    cases = await _queue(request).list(status=wanted, limit=max(1, min(limit, 1000)))
    return {"items": [case_summary(case) for case in cases]}


@router.get("/reviews/{key}")
async def show_review(request: Request, key: str, _: Viewer) -> dict[str, Any]:
    case = await _queue(request).get(key)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no review case {key}")
    trail = await _db(request).read(lambda conn: audit.entries(conn, target=key))
    return {**case_summary(case), "audit": [entry.as_dict() for entry in trail]}


@router.post("/reviews/{key}/decision", status_code=status.HTTP_202_ACCEPTED)
async def decide_review(request: Request, key: str, body: DecisionBody, who: Operator) -> dict[str, Any]:
    actor = who.actor + (f" ({body.reviewer.strip()})" if body.reviewer and body.reviewer.strip() else "")
    try:
        case = await request_decision(_queue(request), key, body.decision, actor=actor, comments=body.comments)
    except UnknownCase:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no review case {key}") from None
    except CaseClosed as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except InvalidInput as exc:
        raise HTTPException(422,
                            [{"field": i.field, "reason": i.reason} for i in exc.issues]) from None
    log.info("%s decided review case %s: %s", actor, key, body.decision.value)
    engine = request.app.state.engine
    if engine.worker is not None:
        engine.worker.wake()
    return {"status": "queued", "case": case_summary(case)}


@router.get("/audit")
async def audit_log(request: Request, _: Viewer, target: str | None = None, action: str | None = None,
                    actor: str | None = None,
                    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None, limit: int = 100) -> dict[str, Any]:
    """The audit log, newest first (``action`` ending in ``.`` matches a prefix, e.g. ``review.``)."""
    found = await _db(request).read(lambda conn: audit.entries(conn, target=target, action=action, actor=actor,
                                                               before=before, limit=limit))
    return {"items": [entry.as_dict() for entry in found]}
