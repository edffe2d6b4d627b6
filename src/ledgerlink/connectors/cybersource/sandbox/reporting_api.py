"""The Reporting API's HTTP side (spec §7): query parameters as the real service reads them, and the download.

Parameter problems are PTS-shaped 400s naming the parameter (``reportDate``,
``startTime``, ``endTime``); times are ISO 8601 with an offset (one without is
UTC). A daily report for day D is asked for with ``reportDate`` = D + 1, and is
404 until D is closed. Only ``PaymentBatchDetailReport`` exists, and only as CSV:
an ``Accept`` that does not allow ``text/csv`` (``application/xml`` alone) is a 406.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from starlette.responses import Response

from ledgerlink.connectors.cybersource.sandbox.clock import parse_time
from ledgerlink.connectors.cybersource.sandbox.reports import BATCH_DETAIL, Reports
from ledgerlink.connectors.cybersource.sandbox.wire import Problem, pts_error

CSV_ACCEPTS = ("text/csv", "*/*", "text/*")


def _missing(name: str) -> Problem:
    return pts_error("MISSING_FIELD", f"{name} is required", [{"field": name, "reason": "MISSING_FIELD"}])


def _invalid(name: str, message: str) -> Problem:
    return pts_error("INVALID_DATA", message, [{"field": name, "reason": "INVALID_DATA"}])


def date_param(params: Mapping[str, str], name: str) -> date:
    text = params.get(name)
    if not text:
        raise _missing(name)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _invalid(name, f"{name} must be a date, YYYY-MM-DD") from None


def time_param(params: Mapping[str, str], name: str) -> datetime:
    text = params.get(name)
    if not text:
        raise _missing(name)
    try:
        return parse_time(text)
    except ValueError:
        raise _invalid(name, f"{name} must be an ISO 8601 time") from None


def window(params: Mapping[str, str]) -> tuple[datetime, datetime]:
    """``[startTime, endTime)`` of a JSON report."""
    start, end = time_param(params, "startTime"), time_param(params, "endTime")
    if end <= start:
        raise _invalid("endTime", "endTime must be after startTime")
    return start, end


def batch_detail_download(reports: Reports, merchant_id: str, params: Mapping[str, str], accept: str) -> Response:
    """GET /reporting/v3/report-downloads for the signed merchant; a ``Problem`` when it cannot be served."""
    report_date = date_param(params, "reportDate")
    name = params.get("reportName")
    if not name:
        raise _missing("reportName")
    if accept and not any(kind in accept for kind in CSV_ACCEPTS):
        raise Problem(406, {"reason": "NOT_ACCEPTABLE", "message": "The sandbox serves reports as text/csv only"},
                      "application/json")
    day = report_date - timedelta(days=1)
    if name != BATCH_DETAIL or not reports.is_settled(day):
        raise pts_error("NOT_FOUND", f"No {name} for reportDate {report_date.isoformat()} "
                                     f"(the day {day.isoformat()} is not settled yet)", status=404)
    return Response(reports.batch_detail_csv(merchant_id, day), media_type="text/csv",
                    headers={"v-c-correlation-id": str(uuid.uuid4())})
