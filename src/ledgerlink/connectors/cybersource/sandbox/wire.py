"""How the sandbox reads requests and shapes answers: the error families and amount rules of spec §4–§5.

Cybersource has three error body families and a client must see the right one:
Payments (PTS) ``{submitTimeUtc, status, reason, message, details[{field, reason}]}``,
Token Management ``{errors: [{type, message, details[{name, location}]}]}``, and the
authentication failure ``{response: {rmsg}}``.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ledgerlink.connectors.cybersource.sandbox.store import utc_now_text
from ledgerlink.model import MoneyError, currency_exponent

HAL_JSON = "application/hal+json"
TMS_JSON = "application/json;charset=utf-8"
Family = Literal["pts", "tms"]

MESSAGES = {
    "MISSING_FIELD": "Declined - The request is missing one or more fields",
    "INVALID_DATA": "Declined - One or more fields in the request contains invalid data",
}


def json_response(status: int, body: Any, media_type: str = HAL_JSON, headers: dict[str, str] | None = None) -> Response:
    extra = {"v-c-correlation-id": str(uuid.uuid4())}
    if headers:
        extra.update(headers)
    if body is None:
        return Response(status_code=status, headers=extra)
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=extra)


class Problem(Exception):
    """A refusal with its exact wire answer; raised anywhere in a handler, answered by the route."""

    def __init__(self, status: int, body: Any, media_type: str = HAL_JSON, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.media_type, self.headers = status, body, media_type, headers

    def response(self) -> Response:
        return json_response(self.status, self.body, self.media_type, self.headers)


def pts_error(reason: str, message: str | None = None, details: list[dict[str, str]] | None = None,
              status: int = 400) -> Problem:
    body: dict[str, Any] = {
        "submitTimeUtc": utc_now_text(),
        "status": "INVALID_REQUEST" if status == 400 else ("SERVER_ERROR" if status >= 500 else "NOT_FOUND"),
        "reason": reason,
        "message": message or MESSAGES.get(reason, reason.replace("_", " ").capitalize()),
    }
    if details:
        body["details"] = details
    return Problem(status, body)


def tms_error(status: int, kind: str, message: str, names: list[str] | None = None) -> Problem:
    item: dict[str, Any] = {"type": kind, "message": message}
    if names:
        item["details"] = [{"name": n, "location": "body"} for n in names]
    return Problem(status, {"errors": [item]}, TMS_JSON)


def not_found(family: Family) -> Problem:
    if family == "tms":
        return tms_error(404, "notFound", "The requested resource was not found")
    return pts_error("NOT_FOUND", "The requested resource does not exist", status=404)


AUTH_FAILED = Problem(401, {"response": {"rmsg": "Authentication Failed"}}, "application/json")


def control_error(field: str, reason: str, status: int = 400) -> Problem:
    """The refusal of a ``/__sandbox/`` control (not a Cybersource shape): ``{error, field}``."""
    return Problem(status, {"error": reason, "field": field}, "application/json")


async def read_json(request: Request) -> dict[str, Any]:
    """A control endpoint's JSON object; anything else reads as ``{"__invalid_body__": True}``, which settings
    validation refuses as an unknown field."""
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        body = None
    return body if isinstance(body, dict) else {"__invalid_body__": True}


async def read_object(request: Request) -> dict[str, Any]:
    """A control endpoint's JSON object (an empty body is ``{}``); anything else is a 400."""
    doc = await read_json(request)
    if "__invalid_body__" in doc:
        raise control_error("body", "must be a JSON object")
    return doc


def parse_body(body: bytes, family: Family) -> dict[str, Any]:
    """The request JSON (any whitespace; the SDK is not compact); a non-object is invalid data."""
    if not body.strip():
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        if family == "tms":
            raise tms_error(400, "invalidRequest", "Request body is not a JSON object")
        raise pts_error("INVALID_DATA", "The request body is not a JSON object", [{"field": "body", "reason": "INVALID_DATA"}])
    return doc


class Reader:
    """Reads dotted paths from a request and collects every problem before refusing once, like the real API."""

    def __init__(self, doc: dict[str, Any], family: Family = "pts") -> None:
        self.doc = doc
        self.family = family
        self.missing: list[str] = []
        self.invalid: list[str] = []

    def get(self, path: str) -> Any:
        value: Any = self.doc
        for part in path.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    def text(self, path: str, *, required: bool = False) -> str | None:
        value = self.get(path)
        if value is None or value == "":
            if required:
                self.missing.append(path)
            return None
        if not isinstance(value, str):
            self.invalid.append(path)
            return None
        return value

    def currency(self, path: str, *, required: bool = True) -> str | None:
        code = self.text(path, required=required)
        if code is None:
            return None
        try:
            currency_exponent(code.upper())
        except MoneyError:
            self.invalid.append(path)
            return None
        return code.upper()

    def amount(self, path: str, currency: str | None, *, required: bool = True, positive: bool = True) -> Decimal | None:
        """A decimal *string* with no more places than the currency has; a JSON number is refused."""
        text = self.text(path, required=required)
        if text is None or currency is None:
            return None
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            self.invalid.append(path)
            return None
        exponent = currency_exponent(currency)
        if not value.is_finite() or value < 0 or (positive and value == 0) or value != value.quantize(
            Decimal(1).scaleb(-exponent)
        ):
            self.invalid.append(path)
            return None
        return value.quantize(Decimal(1).scaleb(-exponent))

    def refuse_if_any(self) -> None:
        if not self.missing and not self.invalid:
            return
        if self.family == "tms":
            kind = "missingFields" if self.missing else "invalidFields"
            raise tms_error(400, kind, "One or more fields are missing or invalid", self.missing + self.invalid)
        details = [{"field": f, "reason": "MISSING_FIELD"} for f in self.missing]
        details += [{"field": f, "reason": "INVALID_DATA"} for f in self.invalid]
        raise pts_error("MISSING_FIELD" if self.missing else "INVALID_DATA", details=details)


def format_amount(value: Decimal, currency: str) -> str:
    return f"{value:.{currency_exponent(currency)}f}"


def minor_units(value: Decimal, currency: str) -> int:
    return int(value.scaleb(currency_exponent(currency)))
