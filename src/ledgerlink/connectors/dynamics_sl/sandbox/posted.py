"""Posted payments for reconciliation: one indexed, keyset-paged query instead of thousands of document reads.

``GET ar/posted-payments?DocDateFrom=&DocDateTo=&$top=&After=`` lists, by ``DocDate`` in
[``DocDateFrom``, ``DocDateTo``), every released document that moved card money and carries the gateway's
id in ``User1``:

* receipts: ``PA`` and ``PP`` (a capture), except those an ``NS`` reversed (a void before settlement never
  settles, so it is not money the back office holds);
* refunds paid out: the ``DM`` flagged ``RFNDPAYOUT`` (``User1`` = the gateway's refund id).

Rows are ordered by (``DocDate``, ``DocType``, ``RefNbr``) and walk the partial index ``ARDoc_gateway``
(only documents with a gateway id are in it, and it carries every column read here); ``NextAfter`` is the
cursor for the next page, absent on the last one, and each page starts in the index right after it (a
row-value range, so a page costs its own rows, not every row before it). Only the columns reconciliation
needs are returned.

With ``Accept: text/csv`` the same page comes as CSV, the bulk form of the same rows: a column line, one CRLF
record per row with the values as SL stores them (text columns quoted, an empty one as SL's one space;
``DocDate`` and ``Crtd_DateTime`` as ``YYYY-MM-DD HH:MM``; the amount with the currency's places), and the
cursor in the ``X-Next-After`` header. SQLite writes each record, so a row costs one string here, and a
reader of a million rows builds no object per row either (``connectors/dynamics_sl/posted.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox.common import Ctx
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date
from ledgerlink.connectors.dynamics_sl.userfields import REFUND_PAYOUT

MAX_PAGE = 5000
MAX_CSV_PAGE = 50_000  # the bulk form's pages may be larger: a row costs a few dozen bytes, not an object
SQL = (  # parameters: company, from, to, the cursor's three parts (empty on the first page), page size
    "SELECT DocType, RefNbr, CustId, DocDate, CuryOrigDocAmt, CuryId, User1, OrdNbr, CustOrdNbr, BatNbr, "
    "PerPost, Crtd_DateTime FROM ARDoc "
    # the first two terms are the partial index's own condition, so SQLite uses it; the range starts at the
    # cursor, or at the first day (no document has an empty DocType); ``+`` keeps ``DocDate >= from`` a filter
    "WHERE User1 <> ' ' AND DocType IN ('PA', 'PP', 'DM') AND CpnyID = ?1 "
    "AND (DocDate, DocType, RefNbr) > (CASE WHEN ?4 = '' THEN ?2 ELSE ?4 END, ?5, ?6) "
    "AND DocDate < ?3 AND +DocDate >= ?2 AND Rlsed = 1 "
    f"AND (DocType = 'DM' AND User5 = '{REFUND_PAYOUT}' OR DocType <> 'DM' AND S4Future12 NOT IN ('NS', 'RP')) "
    "ORDER BY DocDate, DocType, RefNbr LIMIT ?7"
)


COLUMNS = ("DocType", "RefNbr", "CustId", "DocDate", "CuryOrigDocAmt", "CuryId", "User1", "OrdNbr", "CustOrdNbr",
           "BatNbr", "PerPost", "Crtd_DateTime")


def search(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    rows, next_after = _page(ctx, query)
    return 200, {"value": [dict(zip(COLUMNS, values, strict=True)) for values in _values(ctx, rows)],
                 "NextAfter": next_after}


def search_csv(ctx: Ctx, query: Mapping[str, str]) -> tuple[bytes, str | None]:
    """The page as CSV (the columns ``$select`` names, all by default), and the cursor of the next page (None on
    the last)."""
    start, end, top, after = _query(ctx, query, MAX_CSV_PAGE)
    columns = _select(query.get("$select"))
    params = (ctx.company.cpny, start, end, *after, top)
    rows = ctx.store.conn.execute(_csv_sql(columns), (*params, ctx.company.decpl)).fetchall()
    data = "\r\n".join([",".join(columns), *(row[0] for row in rows), ""]).encode()
    if len(rows) < top:
        return data, None
    last = ctx.store.conn.execute(LAST_SQL, params).fetchone()  # the page's last key: the next page's cursor
    return data, f"{last[0]}|{last[1]}|{last[2].rstrip()}"


# How each column is written: as is, quoted (``"%w"``: in double quotes, a double quote in it doubled, as CSV
# has it), or the amount with the company's places (``?8``). One printf per row.
_CSV_FIELDS = {"DocType": ("%s", "DocType"), "CuryOrigDocAmt": ("%.*f", "?8, CuryOrigDocAmt"),
               "DocDate": ("%s", "DocDate"), "CuryId": ("%s", "CuryId"), "PerPost": ("%s", "PerPost"),
               "Crtd_DateTime": ("%s", "Crtd_DateTime")}


@functools.lru_cache(maxsize=64)
def _csv_sql(columns: tuple[str, ...]) -> str:
    fields = [_CSV_FIELDS.get(name, ('"%w"', name)) for name in columns]
    printf = f"printf('{','.join(f for f, _ in fields)}', {', '.join(a for _, a in fields)})"
    return SQL.replace(SQL[SQL.index("SELECT ") + 7:SQL.index(" FROM ARDoc")], printf)


LAST_SQL = SQL.replace(SQL[SQL.index("SELECT ") + 7:SQL.index(" FROM ARDoc")], "DocDate, DocType, RefNbr").replace(
    "LIMIT ?7", "LIMIT 1 OFFSET ?7 - 1")


def _select(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return COLUMNS
    names = tuple(name.strip() for name in raw.split(","))
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or not names:
        raise SLError(400, "InvalidQuery", f"$select names {', '.join(unknown) or 'nothing'}; the columns are "
                                           f"{', '.join(COLUMNS)}", table="ARDoc", field="$select")
    return names


def _query(ctx: Ctx, query: Mapping[str, str], max_page: int = MAX_PAGE) -> tuple[str, str, int, tuple[str, str, str]]:
    start = db_date(ctx.codec.parse_date("ARDoc", "DocDateFrom", _required(query, "DocDateFrom")))
    end = db_date(ctx.codec.parse_date("ARDoc", "DocDateTo", _required(query, "DocDateTo")))
    return start, end, _top(query.get("$top", "1000"), max_page), _cursor(query.get("After"))


def _page(ctx: Ctx, query: Mapping[str, str]) -> tuple[list[Any], str | None]:
    start, end, top, after = _query(ctx, query)
    rows = ctx.store.conn.execute(SQL, (ctx.company.cpny, start, end, *after, top)).fetchall()
    next_after = None
    if len(rows) == top:
        last = rows[-1]
        next_after = f"{last[3]}|{last[0]}|{last[1].rstrip()}"
    return rows, next_after


def _values(ctx: Ctx, rows: list[Any]) -> Iterator[tuple[Any, ...]]:
    decpl = ctx.company.decpl
    date_out = ctx.codec.date_out
    for r in rows:
        yield (r[0], r[1].rstrip(), r[2].rstrip(), date_out(r[3]), f"{round(r[4], decpl) + 0.0:.{decpl}f}",
               r[5].rstrip(), r[6].rstrip(), r[7].rstrip(), r[8].rstrip(), r[9].rstrip(), r[10],
               r[11].replace(" ", "T"))


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise SLError(400, "InvalidQuery", f"{name} is required (a date; the range is [DocDateFrom, DocDateTo))",
                      table="ARDoc", field=name)
    return value


def _top(raw: str, max_page: int = MAX_PAGE) -> int:
    try:
        top = int(raw)
    except ValueError:
        top = 0
    if not 1 <= top <= max_page:
        raise SLError(400, "InvalidQuery", f"$top must be an integer between 1 and {max_page}", table="ARDoc",
                      field="$top")
    return top


def _cursor(raw: str | None) -> tuple[str, str, str]:
    """``After`` as the gateway wrote it: ``<stored DocDate>|<DocType>|<RefNbr>`` of the previous page's last row."""
    if not raw:
        return ("", "", "")
    parts = raw.split("|")
    if len(parts) != 3 or len(parts[0]) != 16:
        raise SLError(400, "InvalidQuery", "After must be the NextAfter of the previous page", table="ARDoc",
                      field="After")
    return (parts[0], parts[1], parts[2])
