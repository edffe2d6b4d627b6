"""``/__sandbox/`` controls for money movement: close days, the business clock, chargebacks, report trouble.

Unsigned and test-only like every control. Bodies are JSON objects; a refusal
is a 400 (404, 409) ``{error, field}`` naming what to fix, and a settings
problem is a 400 with pydantic's issues.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledgerlink.connectors.cybersource.sandbox.clock import parse_time
from ledgerlink.connectors.cybersource.sandbox.store import Batch
from ledgerlink.connectors.cybersource.sandbox.wire import (
    Problem,
    control_error,
    json_response,
    read_json,
    read_object,
)

if TYPE_CHECKING:
    from ledgerlink.connectors.cybersource.sandbox.app import Sandbox

Handler = Callable[[Request], Awaitable[Any]]


def _control(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except ValidationError as exc:
            return json_response(400, {"error": "invalid settings",
                                       "issues": exc.errors(include_url=False, include_context=False)},
                                 "application/json")
        except Problem as problem:
            return problem.response()
        status, body = result if isinstance(result, tuple) else (200, result)
        return json_response(status, body, "application/json")

    return endpoint


def _day(value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise control_error("day", "must be a date, YYYY-MM-DD") from None


def _amount(doc: dict[str, Any], name: str) -> Decimal | None:
    """A money knob: a decimal string or an integer; a float is refused (it is already inexact)."""
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise control_error(name, "must be a decimal string (or an integer), not a float")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise control_error(name, f"{value!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise control_error(name, f"{value!r} is not a decimal amount")
    return amount


def batch_view(batch: Batch) -> dict[str, Any]:
    return {"batchId": batch.id, "day": batch.day.isoformat(), "currency": batch.currency,
            "merchantId": batch.merchant_id, "transactions": len(batch.transaction_ids), "closedAt": batch.closed_at}


def money_control_routes(sandbox: Sandbox) -> list[Route]:
    async def settle(request: Request) -> Any:
        doc = await read_object(request)
        day = _day(doc["day"]) if doc.get("day") else None
        batches = doc.get("batches")
        if batches is not None and (not isinstance(batches, int) or isinstance(batches, bool) or batches < 1):
            raise control_error("batches", "must be a whole number of batches per currency, at least 1")
        made = sandbox.settlements.close(day, batches)
        return {"day": (day or sandbox.store.clock.today()).isoformat(),
                "settled": sum(len(b.transaction_ids) for b in made), "batches": [batch_view(b) for b in made]}

    async def batches(request: Request) -> Any:
        wanted = request.query_params.get("day")
        day = _day(wanted) if wanted else None
        return [batch_view(b) for b in sandbox.store.batches.values() if day is None or b.day == day]

    async def settlement(request: Request) -> Any:
        if request.method == "POST":
            sandbox.configure_settlement(await read_json(request))
        return sandbox.settlements.settings.model_dump(mode="json")

    async def anomalies(request: Request) -> Any:
        if request.method == "DELETE":
            sandbox.configure_anomalies(None)
        elif request.method == "POST":
            sandbox.configure_anomalies(await read_json(request))
        return sandbox.reports.anomalies.model_dump(mode="json")

    async def clock(request: Request) -> Any:
        if request.method == "POST":
            doc = await read_object(request)
            if "now" in doc:
                try:
                    sandbox.store.clock.pin(parse_time(doc["now"]) if doc["now"] else None)
                except (TypeError, ValueError):
                    raise control_error("now", "must be an ISO 8601 time, or null for real time") from None
            if "advance_seconds" in doc:
                step = doc["advance_seconds"]
                if isinstance(step, bool) or not isinstance(step, int | float):
                    raise control_error("advance_seconds", "must be a number of seconds")
                sandbox.store.clock.advance(step)
        return sandbox.store.clock.describe()

    async def disputes(request: Request) -> Any:
        if request.method == "GET":
            return [sandbox.disputes.summary(cb) for cb in sandbox.store.chargebacks.values()]
        doc = await read_object(request)
        transaction_id = doc.get("transactionId")
        if not isinstance(transaction_id, str) or not transaction_id:
            raise control_error("transactionId", "required")
        reason_code = doc.get("reasonCode")
        chargeback = sandbox.disputes.open(transaction_id, amount=_amount(doc, "amount"), fee=_amount(doc, "fee"),
                                           reason_code=reason_code if isinstance(reason_code, str) else None)
        return 201, sandbox.disputes.summary(chargeback)

    async def recorded(request: Request) -> Any:
        """A day's files as given (``RecordedDay``): ``{day, csv, figures: {currency: {purchases, refunds,
        fees}}, merchantId?}``."""
        doc = await read_object(request)
        day = _day(doc.get("day"))
        text = doc.get("csv")
        if not isinstance(text, str) or not text:
            raise control_error("csv", "must be the Payment Batch Detail file, as text")
        figures = doc.get("figures") or {}
        if not isinstance(figures, dict) or not all(isinstance(v, dict) for v in figures.values()):
            raise control_error("figures", "must map a currency to {purchases, refunds, fees}")
        amounts = {currency: {name: _amount(values, name) or Decimal(0) for name in ("purchases", "refunds", "fees")}
                   for currency, values in figures.items()}
        merchant = doc.get("merchantId") or sandbox.settings.credentials[0].merchant_id
        sandbox.reports.record(str(merchant), day, text.encode(), amounts)
        return 201, {"day": day.isoformat(), "merchantId": merchant, "bytes": len(text)}

    async def resolve(request: Request) -> Any:
        outcome = (await read_object(request)).get("outcome")
        chargeback = sandbox.disputes.resolve(request.path_params["tracking"],
                                              outcome if isinstance(outcome, str) else "")
        return sandbox.disputes.summary(chargeback)

    return [
        Route("/__sandbox/settle", _control(settle), methods=["POST"]),
        Route("/__sandbox/batches", _control(batches), methods=["GET"]),
        Route("/__sandbox/settlement", _control(settlement), methods=["GET", "POST"]),
        Route("/__sandbox/anomalies", _control(anomalies), methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox/clock", _control(clock), methods=["GET", "POST"]),
        Route("/__sandbox/disputes", _control(disputes), methods=["GET", "POST"]),
        Route("/__sandbox/disputes/{tracking}", _control(resolve), methods=["POST"]),
        Route("/__sandbox/reports", _control(recorded), methods=["POST"]),
    ]
