"""Transaction Search (POST /tss/v2/searches, spec §4.1): the small part of its query language clients use.

A query is ``field:value`` terms joined by `` AND ``; values may be double-quoted
(backslash escapes inside). Supported fields: ``id``,
``clientReferenceInformation.code``, ``clientReferenceInformation.transactionId``
(exact match), and a ``submitTimeUtc`` range: ``[`` / ``]`` include a bound, ``{`` / ``}``
exclude it, and a bound is an ISO 8601 time, ``*``, or date math on ``NOW`` (the SDK
samples send ``[NOW/DAY-7DAYS TO NOW/DAY+1DAY}``). Anything else is a 400 naming
``query``. Results come as ``_embedded.transactionSummaries``,
the SDK's summary shape (a subset of TSS details, plus
``clientReferenceInformation.transactionId``); ``GET /tss/v2/searches/{id}`` runs
a search again.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from ledgerlink.connectors.cybersource.sandbox.clock import parse_time
from ledgerlink.connectors.cybersource.sandbox.store import Store, Txn, utc_now_text
from ledgerlink.connectors.cybersource.sandbox.views import transaction_details
from ledgerlink.connectors.cybersource.sandbox.wire import Reader, not_found, pts_error

FIELDS: dict[str, Callable[[Txn], str | None]] = {
    "id": lambda t: t.id,
    "clientReferenceInformation.code": lambda t: t.code,
    "clientReferenceInformation.transactionId": lambda t: t.client_transaction_id,
}
RANGE_FIELDS = frozenset({"submitTimeUtc"})
IGNORED_FIELDS = RANGE_FIELDS  # as plain terms
SORT_KEYS: dict[str, Callable[[Txn], str]] = {"id": lambda t: t.id, "submitTimeUtc": lambda t: t.submitted}
MAX_LIMIT = 2500


def _invalid(message: str, field: str = "query") -> Exception:
    return pts_error("INVALID_DATA", message, [{"field": field, "reason": "INVALID_DATA"}])


def parse_query(query: str) -> list[tuple[str, str]]:
    """``[(field, value)]`` of the supported terms; range terms are consumed and dropped."""
    try:
        tokens = shlex.split(query, posix=True)
    except ValueError as exc:
        raise _invalid(f"The query cannot be read: {exc}") from None
    terms: list[tuple[str, str]] = []
    expect_term = True
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not expect_term:
            if token != "AND":
                raise _invalid(f"Only AND joins terms; found {token!r}")
            expect_term = True
            continue
        name, sep, value = token.partition(":")
        if not sep or not name:
            raise _invalid(f"{token!r} is not a field:value term")
        if value.startswith(("[", "{")):  # a range: consume up to its closing bracket
            while not value.endswith(("]", "}")) and index < len(tokens):
                value += " " + tokens[index]
                index += 1
            if name not in RANGE_FIELDS:
                raise _invalid(f"Ranges are only supported on submitTimeUtc, not {name}")
            terms.append((name, value))
        elif name in FIELDS:
            terms.append((name, value))
        elif name not in IGNORED_FIELDS:
            raise _invalid(f"Searching by {name} is not supported by the sandbox")
        expect_term = False
    if expect_term:
        raise _invalid("The query is empty or ends with AND")
    return terms


_MATH = re.compile(r"/(DAY|HOUR|MINUTE)|([+-])(\d+)(DAYS?|HOURS?|MINUTES?|SECONDS?)")
_UNITS = {"DAY": "days", "HOUR": "hours", "MINUTE": "minutes", "SECOND": "seconds"}


def _bound(text: str, now: datetime) -> datetime | None:
    """One end of a range: None for ``*``."""
    if text == "*":
        return None
    if not text.startswith("NOW"):
        try:
            return parse_time(text)
        except ValueError:
            raise _invalid(f"{text!r} is not a time") from None
    value, rest = now, text[3:]
    while rest:
        match = _MATH.match(rest)
        if match is None:
            raise _invalid(f"{text!r}: cannot read the date math {rest!r}")
        if match.group(1) == "DAY":
            value = value.replace(hour=0, minute=0, second=0, microsecond=0)
        elif match.group(1) == "HOUR":
            value = value.replace(minute=0, second=0, microsecond=0)
        elif match.group(1) == "MINUTE":
            value = value.replace(second=0, microsecond=0)
        else:
            amount = int(match.group(3)) * (1 if match.group(2) == "+" else -1)
            value += timedelta(**{_UNITS[match.group(4).rstrip("S")]: amount})
        rest = rest[match.end():]
    return value


def time_range(value: str, now: datetime) -> Callable[[datetime], bool]:
    """``[A TO B}`` as a test of a time."""
    low_open, high_open = value[0] == "{", value[-1] == "}"
    parts = value[1:-1].split(" TO ")
    if len(parts) != 2 or value[-1] not in "]}":
        raise _invalid(f"{value!r} is not a range like [A TO B]")
    low, high = (_bound(part.strip(), now) for part in parts)

    def within(moment: datetime) -> bool:
        if low is not None and (moment < low or (low_open and moment == low)):
            return False
        return high is None or moment < high or (not high_open and moment == high)

    return within


def summary(txn: Txn) -> dict[str, Any]:
    """One ``transactionSummaries`` entry: what TSS details has, less what a summary does not carry."""
    details = transaction_details(txn)
    reference = dict(details["clientReferenceInformation"])
    reference["applicationName"] = "REST API"
    app = details["applicationInformation"]
    result: dict[str, Any] = {
        "id": txn.id,
        "submitTimeUtc": txn.submitted,
        "merchantId": txn.merchant_id,
        "applicationInformation": app,
        "clientReferenceInformation": reference,
        "orderInformation": {"amountDetails": details["orderInformation"]["amountDetails"]},
        "_links": {"transactionDetail": {"href": f"/tss/v2/transactions/{txn.id}", "method": "GET"}},
    }
    if "billTo" in details["orderInformation"]:
        result["orderInformation"]["billTo"] = details["orderInformation"]["billTo"]
    if "paymentInformation" in details:
        result["paymentInformation"] = details["paymentInformation"]
    return result


class Search:
    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, doc: dict[str, Any], merchant_id: str) -> dict[str, Any]:
        reader = Reader(doc)
        query = reader.text("query", required=True)
        limit, offset = doc.get("limit", 20), doc.get("offset", 0)
        for name, value in (("limit", limit), ("offset", offset)):
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                reader.invalid.append(name)
        reader.refuse_if_any()
        assert query is not None
        parse_query(query)  # refuse a bad query before keeping the search
        search = {"searchId": str(uuid.uuid4()), "save": doc.get("save", False), "name": doc.get("name"),
                  "timezone": doc.get("timezone"), "query": query, "offset": int(offset),
                  "limit": min(int(limit), MAX_LIMIT), "sort": doc.get("sort") or "submitTimeUtc:asc",
                  "merchantId": merchant_id}
        self._store.searches[search["searchId"]] = search
        return self._run(search)

    def get(self, search_id: str, merchant_id: str) -> dict[str, Any]:
        search = self._store.searches.get(search_id)
        if search is None or search["merchantId"] != merchant_id:
            raise not_found("pts")
        return self._run(search)

    def _candidates(self, terms: list[tuple[str, str]]) -> Iterable[Txn]:
        """Transactions worth testing: looked up by id or client transaction id when the query names one."""
        store = self._store
        for name, value in terms:
            if name == "id":
                return [store.transactions[value]] if value in store.transactions else []
            if name == "clientReferenceInformation.transactionId":
                return [store.transactions[i] for i in store.by_client_transaction_id.get(value, ())]
        return store.transactions.values()

    def _run(self, search: dict[str, Any]) -> dict[str, Any]:
        parsed = parse_query(search["query"])
        terms = [(name, value) for name, value in parsed if name in FIELDS]
        now = self._store.clock.now()
        ranges = [time_range(value, now) for name, value in parsed if name in RANGE_FIELDS]
        found = [t for t in self._candidates(terms) if t.merchant_id == search["merchantId"]
                 and all(FIELDS[name](t) == value for name, value in terms)
                 and all(within(t.submitted_at) for within in ranges)]
        for part in reversed(str(search["sort"]).split(",")):
            name, _, direction = part.strip().partition(":")
            if name not in SORT_KEYS:
                raise _invalid(f"Sorting by {name!r} is not supported", "sort")
            found.sort(key=SORT_KEYS[name], reverse=direction.strip().lower() == "desc")
        page = found[search["offset"]: search["offset"] + search["limit"]]
        body = {k: v for k, v in search.items() if k != "merchantId" and v is not None}
        body.update({"count": len(page), "totalCount": len(found), "submitTimeUtc": utc_now_text(),
                     "_links": {"self": {"href": f"/tss/v2/searches/{search['searchId']}", "method": "GET"}}})
        if page:
            body["_embedded"] = {"transactionSummaries": [summary(t) for t in page]}
        return body
