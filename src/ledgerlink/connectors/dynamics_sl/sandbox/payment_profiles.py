"""Customers' links to gateway customers and the stored cards they refer to (``xLLCustToken``), and the
list of customers changed since a time (how an integration learns of SL changes: SL sends no events).

Why a table of our own: gateway tokens are 32 characters (TMS customer and payment-instrument ids) and
``Customer.User1``/``User2`` hold 30 (``User2`` is the idempotency-key digest besides); a customer can have
several cards; and ``Customer.CardNbr``/``CardType``/``CardExpDate`` are SL's legacy single-card fields,
built to hold a card number, which must never be stored. So, like ``xLLTask``, the API gateway keeps a
customisation table shaped the SL way (``x`` prefix, CHAR columns, audit and ``User`` columns), one row per
token: the customer link (``TokenKind`` ``CU``, ``TokenId`` = the gateway customer token) and one row per
card (``PI``: token, instrument identifier, brand, last four, expiry as the month's last day, ``Status``
A active / E expired / D deleted, ``IsDefault``). A token belongs to one customer (unique per gateway).

``POST customers/{id}/payment-profile`` replaces one gateway's rows of a customer in one transaction and
stamps the customer's ``LUpd_DateTime`` when anything changed (the customer's payment profile changed),
so a person who links a customer by hand is seen by the next poll of ``customer-changes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.common import Ctx, list_query
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid, not_found

PROG = "LLTOKEN"
TABLE = T.XLLCUSTTOKEN.name
STATUSES = ("A", "E", "D")
COMPARED = ("TokenKind", "CustToken", "IdentToken", "Brand", "Last4", "ExpDate", "Status", "IsDefault")


def _customer(ctx: Ctx, cust_id: str) -> Any:
    row = ctx.store.one("SELECT CustId FROM Customer WHERE CustId = ?", (cust_id,))
    if row is None:
        raise not_found("Customer", cust_id)
    return row


def _tokens_of(ctx: Ctx, cust_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {c: [] for c in cust_ids}
    for start in range(0, len(cust_ids), 500):
        chunk = cust_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in ctx.store.all(f'SELECT * FROM "{TABLE}" WHERE CustId IN ({marks}) '
                                 "ORDER BY CustId, Gateway, TokenKind DESC, TokenId", tuple(chunk)):
            found[row["CustId"].rstrip()].append(ctx.out(T.XLLCUSTTOKEN, row))
    return found


def get(ctx: Ctx, cust_id: str) -> tuple[int, Any]:
    """``GET customers/{id}/payment-profile``: every token row of the customer."""
    _customer(ctx, cust_id)
    return 200, {"CustId": cust_id, "Tokens": _tokens_of(ctx, [cust_id])[cust_id]}


def search(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    """``GET payment-tokens?Gateway=&TokenId=&TokenKind=``: which customer holds a token."""
    rows = list_query(ctx, T.XLLCUSTTOKEN, query, {})
    return 200, {"value": [ctx.out(T.XLLCUSTTOKEN, r) for r in rows]}


def _text(body: Mapping[str, Any], name: str, length: int, where: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise invalid(TABLE, f"{where}{name}", "is required", code="Required")
        return " "
    if not isinstance(value, str):
        raise invalid(TABLE, f"{where}{name}", f"must be a string (CHAR({length}))")
    value = value.strip()
    if len(value) > length:
        raise invalid(TABLE, f"{where}{name}", f"{len(value)} characters; the column is CHAR({length})",
                      code="FieldTooLong")
    return value


def _instrument(ctx: Ctx, item: Any, index: int, gateway: str, customer_token: str) -> dict[str, Any]:
    where = f"Instruments[{index}]."
    if not isinstance(item, dict):
        raise invalid(TABLE, f"Instruments[{index}]", "must be an object")
    last4 = _text(item, "Last4", 4, where, required=False)
    if last4 != " " and (len(last4) != 4 or not last4.isdigit()):
        raise invalid(TABLE, f"{where}Last4", "must be exactly four digits")
    status = _text(item, "Status", 1, where, required=False)
    status = "A" if status == " " else status
    if status not in STATUSES:
        raise invalid(TABLE, f"{where}Status", f"{status!r} is not A (active), E (expired) or D (deleted)")
    default = item.get("IsDefault", 0)
    if default not in (0, 1, True, False):
        raise invalid(TABLE, f"{where}IsDefault", "must be 0 or 1")
    expiry = item.get("ExpDate")
    return {
        "Gateway": gateway, "TokenKind": "PI", "TokenId": _text(item, "TokenId", 40, where),
        "CustToken": customer_token, "IdentToken": _text(item, "IdentToken", 40, where, required=False),
        "Brand": _text(item, "Brand", 20, where, required=False), "Last4": last4,
        "ExpDate": T.NO_DATE if expiry in (None, "") else ctx.codec.value_in(
            T.XLLCUSTTOKEN, T.XLLCUSTTOKEN.by_name["ExpDate"], expiry),
        "Status": status, "IsDefault": int(bool(default)),
    }


def put(ctx: Ctx, cust_id: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST customers/{id}/payment-profile`` ``{Gateway, CustomerToken, Instruments: [...]}``: the customer's
    rows for that gateway become exactly the link and these cards."""
    _customer(ctx, cust_id)
    gateway = _text(body, "Gateway", 20, "")
    customer_token = _text(body, "CustomerToken", 40, "")
    items = body.get("Instruments", [])
    if not isinstance(items, list):
        raise invalid(TABLE, "Instruments", "must be a list")
    wanted = {customer_token: {"Gateway": gateway, "TokenKind": "CU", "TokenId": customer_token, "CustToken": " ",
                               "IdentToken": " ", "Brand": " ", "Last4": " ", "ExpDate": T.NO_DATE, "Status": "A",
                               "IsDefault": 0}}
    for index, item in enumerate(items):
        row = _instrument(ctx, item, index, gateway, customer_token)
        if row["TokenId"] in wanted:
            raise invalid(TABLE, f"Instruments[{index}].TokenId", f"{row['TokenId']} is listed twice",
                          code="DuplicateToken")
        wanted[row["TokenId"]] = row
    if sum(r["IsDefault"] for r in wanted.values()) > 1:
        raise invalid(TABLE, "Instruments", "at most one card can be the default", code="TwoDefaults")
    marks = ", ".join("?" for _ in wanted)
    taken = ctx.store.one(f'SELECT CustId, TokenId FROM "{TABLE}" WHERE Gateway = ? AND CustId <> ? '
                          f"AND TokenId IN ({marks}) LIMIT 1", (gateway, cust_id, *wanted))
    if taken is not None:
        holder = taken["CustId"].rstrip()
        raise SLError(409, "TokenLinkedElsewhere", f"{gateway} token {taken['TokenId'].rstrip()} is linked to "
                      f"customer {holder}", table=TABLE, field="TokenId", existing={"table": "Customer", "id": holder})
    current = {r["TokenId"].rstrip(): r for r in ctx.store.all(
        f'SELECT * FROM "{TABLE}" WHERE CustId = ? AND Gateway = ?', (cust_id, gateway))}
    changed = False
    for token_id, row in current.items():
        if token_id not in wanted:
            ctx.store.conn.execute(f'DELETE FROM "{TABLE}" WHERE CustId = ? AND Gateway = ? AND TokenId = ?',
                                   (cust_id, gateway, row["TokenId"]))
            changed = True
    for token_id, row in wanted.items():
        before = current.get(token_id)
        if before is None:
            ctx.store.insert(T.XLLCUSTTOKEN, {**row, "CustId": cust_id, **ctx.audit(PROG)})
            changed = True
        elif any(str(before[c]).rstrip() != str(row[c]).rstrip() for c in COMPARED):
            ctx.store.update(T.XLLCUSTTOKEN, {"CustId": cust_id, "Gateway": gateway, "TokenId": token_id},
                             {**{c: row[c] for c in COMPARED}, **ctx.touched(PROG)})
            changed = True
    if changed:
        ctx.store.update(T.CUSTOMER, {"CustId": cust_id}, ctx.touched(PROG))
    return 200, {"CustId": cust_id, "Changed": changed, "Tokens": _tokens_of(ctx, [cust_id])[cust_id]}


def _since(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SLError(400, "InvalidQuery", f"since {value!r} is not a date and time (YYYY-MM-DDTHH:MM)",
                      table="Customer", field="LUpd_DateTime") from None
    return moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M")


def changes(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    """``GET customer-changes?since=&after=&$top=``: customers whose ``LUpd_DateTime`` is at or after
    ``since`` (SL's time, to the minute), oldest first then by ``CustId``; with ``after`` (a ``CustId``) the
    page continues after (``since``, ``after``). Each row carries its ``Tokens``."""
    since = _since(query.get("since"))
    after = (query.get("after") or "").strip() or None
    try:
        top = int(query.get("$top", "500"))
    except ValueError:
        raise SLError(400, "InvalidQuery", "$top must be an integer", table="Customer", field="$top") from None
    if not 1 <= top <= 1000:
        raise SLError(400, "InvalidQuery", "$top must be between 1 and 1000", table="Customer", field="$top")
    if after is not None and since is None:
        raise SLError(400, "InvalidQuery", "after needs since", table="Customer", field="after")
    where, params = "", ()
    if since is not None and after is not None:
        where, params = "WHERE LUpd_DateTime > ? OR (LUpd_DateTime = ? AND CustId > ?)", (since, since, after)
    elif since is not None:
        where, params = "WHERE LUpd_DateTime >= ?", (since,)
    rows = ctx.store.all(f"SELECT * FROM Customer {where} ORDER BY LUpd_DateTime, CustId LIMIT ?", (*params, top))
    tokens = _tokens_of(ctx, [r["CustId"].rstrip() for r in rows])
    return 200, {"value": [{**ctx.out(T.CUSTOMER, r), "Tokens": tokens[r["CustId"].rstrip()]} for r in rows]}
