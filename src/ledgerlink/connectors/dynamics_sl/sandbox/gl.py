"""GL journal batches (01.010), their release (01.400) and Post Transactions (01.520, spec A.9).

Posting takes batches in Status ``U`` and refuses any whose rounded ``SUM(DrAmt)`` and ``SUM(CrAmt)``
differ from ``Batch.CrTot``; a refused batch stays ``U``. A posted batch is ``P``, its GLTran rows
``Posted = 'P'``, and ``AcctHist`` holds the period-to-date balances.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.common import (
    Ctx,
    add_note,
    check_account,
    check_currency,
    check_period,
    claim_key,
    fields_in,
    next_number,
)
from ledgerlink.connectors.dynamics_sl.sandbox.effects import GLLines, money, write_gl
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError, invalid, not_found
from ledgerlink.connectors.dynamics_sl.sandbox.store import db_date, round_money, to_db_money

PROG = "01010"
POST_PROG = "01520"
HEADER_FIELDS = frozenset({"JrnlType", "PerPost", "Descr", "CuryId", "CtrlTot", "CuryCtrlTot", "User1", "User3",
                           "User4", "User5", "User6", "User7", "User8"})
LINE_FIELDS = frozenset({"Acct", "Sub", "DrAmt", "CrAmt", "TranDesc", "RefNbr", "ExtRefNbr", "TranDate", "Id",
                         "ProjectID", "TaskID", "TranType"})
PSEUDO = ("Lines", "Note", "Release", "Hold", "Post")


def create(ctx: Ctx, body: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST gl/batches``: a balanced journal batch, released now (Status U) unless held (H) or kept (B);
    with ``"Post": true`` also posted in the same request (P), so a crash cannot leave it released but unposted."""
    key = claim_key(ctx, T.BATCH)
    header = fields_in(ctx, T.BATCH, body, HEADER_FIELDS, ignore=PSEUDO)
    raw_lines = body.get("Lines") or []
    if not isinstance(raw_lines, list) or len(raw_lines) < 2:
        raise invalid("GLTran", "Lines", "a journal batch needs at least two lines", code="Required")
    cury = header.setdefault("CuryId", ctx.company.base_cury)
    check_currency(ctx, "Batch", "CuryId", cury)
    period = header.setdefault("PerPost", ctx.company.gl_period)
    check_period(ctx, "Batch", "PerPost", period, ctx.company.gl_period, "GL")
    gl = GLLines()
    debits, credits = Decimal(0), Decimal(0)
    for i, raw in enumerate(raw_lines):
        if not isinstance(raw, dict):
            raise invalid("GLTran", f"Lines[{i}]", "must be an object")
        try:
            line = fields_in(ctx, T.GLTRAN, raw, LINE_FIELDS)
            for name in ("Acct", "Sub"):
                if line.get(name, " ") == " ":
                    raise invalid("GLTran", name, "is required", code="Required")
            check_account(ctx, "GLTran", "Acct", "Sub", line["Acct"], line["Sub"])
        except SLError as exc:
            exc.field = f"Lines[{i}].{exc.field}"
            raise
        debit = money(ctx, line.pop("DrAmt", 0.0))
        credit = money(ctx, line.pop("CrAmt", 0.0))
        if debit < 0 or credit < 0 or (debit == 0) == (credit == 0):
            raise invalid("GLTran", f"Lines[{i}].DrAmt", "each line has either a positive DrAmt or a positive "
                          "CrAmt", code="InvalidAmount")
        debits += debit
        credits += credit
        line.setdefault("TranDate", db_date(ctx.now.date()))
        line.setdefault("TranDesc", header.get("Descr", " "))
        gl.add(line.pop("Acct"), line.pop("Sub"), debit, credit, PerPost=period, **line)
    debits, credits = round_money(debits, ctx.company.decpl), round_money(credits, ctx.company.decpl)
    if debits != credits:
        raise invalid("Batch", "CrTot", f"batch is out of balance: debits {debits}, credits {credits}",
                      code="OutOfBalance")
    if "CtrlTot" in header and money(ctx, header["CtrlTot"]) != debits:
        raise invalid("Batch", "CtrlTot", f"control total {money(ctx, header['CtrlTot'])} differs from the "
                      f"batch total {debits}", code="OutOfBalance")
    hold = body.get("Hold") is True
    release = body.get("Release", True) is True and not hold
    post_now = body.get("Post") is True
    if post_now and not release:
        raise invalid("Batch", "Post", "a batch is posted after it is released; do not combine Post with Hold or "
                      "Release false", code="InvalidBatchStatus")
    setup = ctx.store.one("SELECT LastBatNbr FROM GLSetup WHERE CpnyId = ?", (ctx.company.cpny,))
    assert setup is not None
    bat_nbr = next_number(setup["LastBatNbr"])
    ctx.store.update(T.GLSETUP, {"CpnyId": ctx.company.cpny}, {"LastBatNbr": bat_nbr})
    total = to_db_money(debits)
    batch = {
        **header, "CpnyID": ctx.company.cpny, "Module": "GL", "BatNbr": bat_nbr, "Status": "H" if hold else "B",
        "Rlsed": 0, "PerEnt": ctx.company.gl_period, "JrnlType": header.get("JrnlType", "GJ"), "BatType": "N",
        "EditScrnNbr": PROG, "OrigScrnNbr": PROG, "CrTot": total, "DrTot": total, "CuryCrTot": total,
        "CuryDrTot": total, "CtrlTot": header.get("CtrlTot", total), "CuryCtrlTot": header.get("CtrlTot", total),
        "CuryRate": 1.0, "CuryMultDiv": "M", "BaseCuryID": ctx.company.base_cury, "LedgerID": ctx.company.ledger_id,
        "BalanceType": "A", "DateEnt": db_date(ctx.now.date()), T.KEY_FIELD: key, **ctx.audit(PROG),
    }
    if body.get("Note"):
        batch["NoteId"] = add_note(ctx, "Batch", str(body["Note"]))
    ctx.store.insert(T.BATCH, batch)
    write_gl(ctx, "GL", bat_nbr, batch["JrnlType"], gl)
    ctx.store.conn.execute("UPDATE GLTran SET Rlsed = 0 WHERE CpnyID = ? AND Module = 'GL' AND BatNbr = ?",
                           (ctx.company.cpny, bat_nbr))
    if release:
        _release(ctx, bat_nbr)
    if post_now:
        _post(ctx, _batch(ctx, "GL", bat_nbr))
    if ctx.minimal:
        status = "P" if post_now else "U" if release else batch["Status"]
        return 201, {"Module": "GL", "BatNbr": bat_nbr, "Status": status}
    return 201, read(ctx, "GL", bat_nbr)


def _release(ctx: Ctx, bat_nbr: str) -> None:
    where = {"CpnyID": ctx.company.cpny, "Module": "GL", "BatNbr": bat_nbr}
    ctx.store.update(T.BATCH, where, {"Status": "U", "Rlsed": 1, **ctx.touched("01400")})
    ctx.store.conn.execute("UPDATE GLTran SET Rlsed = 1 WHERE CpnyID = ? AND Module = 'GL' AND BatNbr = ?",
                           (ctx.company.cpny, bat_nbr))


def release(ctx: Ctx, bat_nbr: str) -> tuple[int, Any]:
    batch = _batch(ctx, "GL", bat_nbr)
    if batch["Status"] != "B":
        raise SLError(422, "InvalidBatchStatus", f"Batch GL {bat_nbr} has Status {batch['Status']}; only a balanced "
                      "batch (B) can be released", table="Batch", field="Status")
    _release(ctx, bat_nbr)
    return 200, read(ctx, "GL", bat_nbr)


def _batch(ctx: Ctx, module: str, bat_nbr: str) -> Any:
    row = ctx.store.one("SELECT * FROM Batch WHERE CpnyID = ? AND Module = ? AND BatNbr = ?",
                        (ctx.company.cpny, module, bat_nbr))
    if row is None:
        raise not_found("Batch", f"{module} {bat_nbr}")
    return row


def post(ctx: Ctx, module: str, bat_nbr: str) -> tuple[int, Any]:
    """``POST gl/batches/{BatNbr}/post``: post one released batch (01.520 for a single batch)."""
    batch = _batch(ctx, module, bat_nbr)
    if batch["Status"] != "U":
        raise SLError(422, "InvalidBatchStatus", f"Batch {module} {bat_nbr} has Status {batch['Status']}; only "
                      "released, unposted batches (U) are posted", table="Batch", field="Status")
    problem = _imbalance(ctx, batch)
    if problem:
        raise invalid("Batch", "CrTot", problem, code="OutOfBalance")
    _post(ctx, batch)
    return 200, read(ctx, module, bat_nbr)


def post_all(ctx: Ctx, query: Mapping[str, str]) -> tuple[int, Any]:
    """``POST gl/post``: Post Transactions for every released batch; unbalanced ones stay U and are listed."""
    sql = "SELECT * FROM Batch WHERE CpnyID = ? AND Status = 'U'"
    params: tuple[Any, ...] = (ctx.company.cpny,)
    if query.get("Module"):
        sql += " AND Module = ?"
        params += (query["Module"],)
    posted, failed = [], []
    for batch in ctx.store.all(sql + " ORDER BY Module, BatNbr", params):
        name = {"Module": batch["Module"].strip(), "BatNbr": batch["BatNbr"].strip()}
        problem = _imbalance(ctx, batch)
        if problem:
            failed.append({**name, "reason": problem})
            continue
        _post(ctx, batch)
        posted.append(name)
    return 200, {"Posted": posted, "Failed": failed}


def _imbalance(ctx: Ctx, batch: Any) -> str | None:
    row = ctx.store.one("SELECT TOTAL(DrAmt) AS dr, TOTAL(CrAmt) AS cr, TOTAL(CuryDrAmt) AS cdr, "
                        "TOTAL(CuryCrAmt) AS ccr FROM GLTran WHERE CpnyID = ? AND Module = ? AND BatNbr = ?",
                        (batch["CpnyID"], batch["Module"], batch["BatNbr"]))
    assert row is not None
    total, cury_total = money(ctx, batch["CrTot"]), money(ctx, batch["CuryCrTot"])
    dr, cr, cdr, ccr = (money(ctx, row[k]) for k in ("dr", "cr", "cdr", "ccr"))
    if not dr == cr == total:
        return f"debits {dr} and credits {cr} do not both equal the batch total {total}"
    if not cdr == ccr == cury_total:
        return f"currency debits {cdr} and credits {ccr} do not both equal the batch total {cury_total}"
    return None


def _post(ctx: Ctx, batch: Any) -> None:
    cpny, module, bat_nbr = batch["CpnyID"], batch["Module"], batch["BatNbr"]
    for tran in ctx.store.all("SELECT * FROM GLTran WHERE CpnyID = ? AND Module = ? AND BatNbr = ?",
                              (cpny, module, bat_nbr)):
        _history(ctx, tran)
    ctx.store.conn.execute("UPDATE GLTran SET Posted = 'P' WHERE CpnyID = ? AND Module = ? AND BatNbr = ?",
                           (cpny, module, bat_nbr))
    ctx.store.update(T.BATCH, {"CpnyID": cpny, "Module": module, "BatNbr": bat_nbr},
                     {"Status": "P", **ctx.touched(POST_PROG)})


def _history(ctx: Ctx, tran: Any) -> None:
    """AcctHist period-to-date balance, signed by the account's normal balance (A/E debit, L/I credit)."""
    account = ctx.store.one("SELECT AcctType FROM Account WHERE Acct = ?", (tran["Acct"],))
    debit_normal = account is None or account["AcctType"][1:2] in ("A", "E")
    change = money(ctx, tran["DrAmt"]) - money(ctx, tran["CrAmt"])
    if not debit_normal:
        change = -change
    bucket = f"PtdBal{int(tran['PerPost'][4:]) - 1:02d}"
    key = {"CpnyID": tran["CpnyID"], "Acct": tran["Acct"], "Sub": tran["Sub"], "LedgerID": tran["LedgerID"],
           "FiscYr": tran["FiscYr"]}
    row = ctx.store.one(f'SELECT "{bucket}" AS v FROM AcctHist WHERE CpnyID = ? AND Acct = ? AND Sub = ? '
                        "AND LedgerID = ? AND FiscYr = ?", tuple(key.values()))
    if row is None:
        ctx.store.insert(T.ACCTHIST, {**key, bucket: to_db_money(change), **ctx.audit(POST_PROG)})
    else:
        ctx.store.update(T.ACCTHIST, key, {bucket: to_db_money(money(ctx, row["v"]) + change)})


def read(ctx: Ctx, module: str, bat_nbr: str) -> dict[str, Any]:
    record = ctx.out(T.BATCH, _batch(ctx, module, bat_nbr))
    record["Lines"] = [ctx.out(T.GLTRAN, t) for t in ctx.store.all(
        "SELECT * FROM GLTran WHERE CpnyID = ? AND Module = ? AND BatNbr = ? ORDER BY LineNbr",
        (ctx.company.cpny, module, bat_nbr))]
    return record


def get(ctx: Ctx, module: str, bat_nbr: str) -> tuple[int, Any]:
    return 200, read(ctx, module, bat_nbr)
