"""Posted payments for reconciliation: one indexed, keyset-paged query instead of thousands of document reads.

``GET ar/posted-payments?DocDateFrom=&DocDateTo=&$top=&After=`` lists, by ``DocDate`` in
[``DocDateFrom``, ``DocDateTo``), every released document that moved card money and carries the gateway's
id in ``User1``:

* receipts: ``PA`` and ``PP`` (a capture), except those an ``NS`` reversed (a void before settlement never
  settles, so it is not money the back office holds);
* refunds paid out: the ``DM`` flagged ``RFNDPAYOUT`` (``User1`` = the gateway's refund id).

Rows are ordered by (``DocDate``, ``DocType``, ``RefNbr``) and walk the partial index ``ARDoc_gateway``
(only documents with a gateway id are in it); ``NextAfter`` is the cursor for the next page, absent on
the last one. Only the columns reconciliation needs are returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox.common import Ctx
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date
from ledgerlink.connectors.dynamics_sl.userfields import REFUND_PAYOUT

MAX_PAGE = 5000
SQL = (
    "SELECT DocType, RefNbr, CustId, DocDate, CuryOrigDocAmt, CuryId, User1, OrdNbr, CustOrdNbr, BatNbr, "
    "PerPost, Crtd_DateTime FROM ARDoc "
    # the first two terms are the partial index's own condition, so SQLite uses it
    "WHERE User1 <> ' ' AND DocType IN ('PA', 'PP', 'DM') AND CpnyID = ? AND DocDate >= ? AND DocDate < ? "
    "AND (DocDate, DocType, RefNbr) > (?, ?, ?) AND Rlsed = 1 "
    f"AND (DocType = 'DM' AND User5 = '{REFUND_PAYOUT}' OR DocType <> 'DM' AND S4Future12 NOT IN ('NS', 'RP')) "
    "ORDER BY DocDate, DocType, RefNbr LIMIT ?"
)


def search(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    start = db_date(ctx.codec.parse_date("ARDoc", "DocDateFrom", _required(query, "DocDateFrom")))
    end = db_date(ctx.codec.parse_date("ARDoc", "DocDateTo", _required(query, "DocDateTo")))
    top = _top(query.get("$top", "1000"))
    after = _cursor(query.get("After"))
    rows = ctx.store.conn.execute(SQL, (ctx.company.cpny, start, end, *after, top)).fetchall()
    decpl = ctx.company.decpl
    date_out = ctx.codec.date_out
    value = [{
        "DocType": r[0], "RefNbr": r[1].rstrip(), "CustId": r[2].rstrip(), "DocDate": date_out(r[3]),
        "CuryOrigDocAmt": f"{round(r[4], decpl) + 0.0:.{decpl}f}", "CuryId": r[5].rstrip(), "User1": r[6].rstrip(),
        "OrdNbr": r[7].rstrip(), "CustOrdNbr": r[8].rstrip(), "BatNbr": r[9].rstrip(), "PerPost": r[10],
        "Crtd_DateTime": r[11].replace(" ", "T"),
    } for r in rows]
    next_after = None
    if len(rows) == top:
        last = rows[-1]
        next_after = f"{last[3]}|{last[0]}|{last[1].rstrip()}"
    return 200, {"value": value, "NextAfter": next_after}


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise SLError(400, "InvalidQuery", f"{name} is required (a date; the range is [DocDateFrom, DocDateTo))",
                      table="ARDoc", field=name)
    return value


def _top(raw: str) -> int:
    try:
        top = int(raw)
    except ValueError:
        top = 0
    if not 1 <= top <= MAX_PAGE:
        raise SLError(400, "InvalidQuery", f"$top must be an integer between 1 and {MAX_PAGE}", table="ARDoc",
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
