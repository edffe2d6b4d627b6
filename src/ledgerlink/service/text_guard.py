"""NUL characters at the edge of every route: the admin API's and the webhooks'.

A NUL is legal in a URL (``%00``) and in JSON (``\\u0000``) but PostgreSQL refuses it in any text value, so
one that reached a query would fail there as a 500 on PostgreSQL and be stored on SQLite. No field of the
admin API or of a gateway's notification has a use for it: ``service.card_guard``'s middleware and the webhook
endpoint refuse it up front as a 400 naming where it was, before anything is stored.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from starlette.responses import Response

from ledgerlink.model import FieldIssue, InvalidInput
from ledgerlink.model.cardnumbers import redact_card_numbers

NUL_REASON = "contains a NUL character, which no field accepts"


def nul_fields(path: str, query_string: bytes, body: bytes) -> list[str]:
    """The parts of a request that hold a NUL character, named (never the value)."""
    fields = ["path"] if "\x00" in path else []
    if query_string:
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                fields.append(f"query.{redact_card_numbers(name.replace(chr(0), '?'))}")
    if b"\\u0000" in body or b"\x00" in body:  # JSON can carry a NUL only escaped; a raw one is not JSON
        fields.append("body")
    return fields


def nul_refusal(fields: list[str], *, source: str = "request") -> Response:
    refused = InvalidInput([FieldIssue(field, NUL_REASON) for field in fields], source=source)
    return Response(orjson.dumps(refused.as_dict()), status_code=400, media_type="application/json")
