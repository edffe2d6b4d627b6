"""The Token Management routes (spec §5), signed like every API call, plus the TMS test controls.

Answers carry ``Content-Type: application/json;charset=utf-8`` and the token's ``ETag``; a PATCH or
DELETE with a stale ``if-match`` is a 412. An optional ``profile-id`` header must be a 36-character TMS
profile id (424 otherwise, as TMS answers an unknown profile).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledgerlink.connectors.cybersource.sandbox.wire import (
    TMS_JSON,
    Problem,
    json_response,
    parse_body,
    read_object,
)

if TYPE_CHECKING:
    from ledgerlink.connectors.cybersource.sandbox.app import Sandbox

# (body, merchant id, path and query parameters, if-match header) → payload, or (status, payload)
TmsHandler = Callable[[dict[str, Any], str, dict[str, str], str | None], Any]


def _header_problem(status: int, kind: str, message: str, header: str) -> Problem:
    return Problem(status, {"errors": [{"type": kind, "message": message,
                                        "details": [{"name": header, "location": "header"}]}]}, TMS_JSON)


def tms_routes(sandbox: Sandbox) -> list[Route]:
    vault = sandbox.vault

    def api(handler: TmsHandler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            merchant_id, body, refusal, fault = await sandbox._admit(request)
            if refusal is not None:
                return refusal
            try:
                profile = request.headers.get("profile-id")
                if profile is not None and len(profile.strip()) != 36:
                    raise _header_problem(424, "notFound", "Profile not found", "profile-id")
                doc = parse_body(body, "tms") if request.method in ("POST", "PATCH", "PUT") else {}
                params = {**request.query_params, **request.path_params}
                result = handler(doc, merchant_id, params, request.headers.get("if-match"))
            except Problem as problem:
                return problem.response()
            if fault is not None:
                return fault  # the work is done, but the caller cannot know
            code, payload = result if isinstance(result, tuple) else (status, result)
            if payload is None:
                return json_response(204 if code == 200 else code, None, TMS_JSON)
            headers = {"ETag": vault.etag(payload["id"])} if isinstance(payload, dict) and "id" in payload else None
            return json_response(code, payload, TMS_JSON, headers)

        return endpoint

    def page(params: dict[str, str]) -> tuple[str, str]:
        return params.get("offset", "0"), params.get("limit", "20")

    customers = "/tms/v2/customers"
    instruments = customers + "/{cid}/payment-instruments"
    standalone = "/tms/v1/paymentinstruments"
    identifiers = "/tms/v1/instrumentidentifiers"
    return [
        Route(customers, api(lambda d, m, a, t: vault.post_customer(d, m), 201), methods=["POST"]),
        Route(customers + "/{id}", api(lambda d, m, a, t: vault.get_customer(a["id"])), methods=["GET"]),
        Route(customers + "/{id}", api(lambda d, m, a, t: vault.patch_customer(a["id"], d, t)), methods=["PATCH"]),
        Route(customers + "/{id}", api(lambda d, m, a, t: vault.delete_customer(a["id"], t), 204),
              methods=["DELETE"]),
        Route(instruments, api(lambda d, m, a, t: vault.list_instruments(a["cid"], *page(a))), methods=["GET"]),
        Route(instruments, api(lambda d, m, a, t: vault.post_instrument(d, m, a["cid"]), 201), methods=["POST"]),
        Route(instruments + "/{id}", api(lambda d, m, a, t: vault.get_instrument(a["id"], a["cid"])),
              methods=["GET"]),
        Route(instruments + "/{id}", api(lambda d, m, a, t: vault.patch_instrument(a["id"], d, t, a["cid"])),
              methods=["PATCH"]),
        Route(instruments + "/{id}", api(lambda d, m, a, t: vault.delete_instrument(a["id"], t, a["cid"]), 204),
              methods=["DELETE"]),
        Route(standalone, api(lambda d, m, a, t: vault.post_instrument(d, m, None), 201), methods=["POST"]),
        Route(standalone + "/{id}", api(lambda d, m, a, t: vault.get_instrument(a["id"])), methods=["GET"]),
        Route(standalone + "/{id}", api(lambda d, m, a, t: vault.patch_instrument(a["id"], d, t)),
              methods=["PATCH"]),
        Route(standalone + "/{id}", api(lambda d, m, a, t: vault.delete_instrument(a["id"], t), 204),
              methods=["DELETE"]),
        Route(identifiers, api(lambda d, m, a, t: vault.post_identifier(d, m)), methods=["POST"]),
        Route(identifiers + "/{id}", api(lambda d, m, a, t: vault.get_identifier(a["id"])), methods=["GET"]),
        Route(identifiers + "/{id}", api(lambda d, m, a, t: vault.patch_identifier(a["id"], d, t)),
              methods=["PATCH"]),
        Route(identifiers + "/{id}", api(lambda d, m, a, t: vault.delete_identifier(a["id"], t), 204),
              methods=["DELETE"]),
        Route(identifiers + "/{id}/paymentinstruments",
              api(lambda d, m, a, t: vault.identifier_instruments(a["id"], *page(a))), methods=["GET"]),
    ]


def tms_control_routes(sandbox: Sandbox) -> list[Route]:
    """``POST /__sandbox/tms/payment-instruments/{id}/expire`` (body ``{month, year}``, both optional: the
    month before the business clock's): the card's expiry has passed; sends ``tms.token.expired``."""

    async def expire(request: Request) -> Response:
        try:
            doc = await read_object(request)
            month, year = doc.get("month"), doc.get("year")
            for name, value in (("month", month), ("year", year)):
                if value is not None and not isinstance(value, str):
                    return json_response(400, {"error": "must be a string", "field": name}, "application/json")
            body = sandbox.vault.expire(request.path_params["id"], sandbox.store.clock.today(), month, year)
        except Problem as problem:
            return problem.response()
        return json_response(200, body, "application/json")

    return [Route("/__sandbox/tms/payment-instruments/{id}/expire", expire, methods=["POST"])]
