"""Properties: applications never drive a balance below zero; GL batches always balance."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerlink.connectors.dynamics_sl.sandbox import create_app
from ledgerlink.connectors.dynamics_sl.sandbox.api import Call, execute, prepare
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError
from ledgerlink.connectors.dynamics_sl.sandbox.state import SandboxState

cents = st.integers(min_value=1, max_value=50_000).map(lambda c: f"{Decimal(c) / 100:.2f}")


def _do(state: SandboxState, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    call = Call(method, path, {}, body, "0060", None)
    try:
        route, params = prepare(call)
        with state.store.transaction():
            return execute(state.context("0060", "TEST"), route, params, call)
    except SLError as exc:
        return exc.status, exc.body()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invoices=st.lists(cents, min_size=1, max_size=3),
       payments=st.lists(st.tuples(cents, st.integers(min_value=0, max_value=2), cents), min_size=1, max_size=6))
def test_applications_never_drive_a_balance_negative(invoices: list[str], payments: list[tuple[str, int, str]]) -> None:
    state = create_app({}).state.sl
    _do(state, "POST", "/customers", {"CustId": "P1", "Name": "Prop"})
    refs = [_do(state, "POST", "/ar/documents", {"CustId": "P1", "DocType": "IN", "CuryOrigDocAmt": a})[1]["RefNbr"]
            for a in invoices]
    for amount, target, applied in payments:
        ref = refs[target % len(refs)]
        status, _ = _do(state, "POST", "/ar/documents", {
            "CustId": "P1", "DocType": "PA", "CuryOrigDocAmt": amount,
            "Applications": [{"AdjdDocType": "IN", "AdjdRefNbr": ref, "CuryAdjgAmt": applied}]})
        assert status in (201, 422)
    docs = state.store.all("SELECT DocType, OrigDocAmt, DocBal, OpenDoc, RefNbr FROM ARDoc")
    for doc in docs:
        assert doc["DocBal"] >= 0
        assert (doc["OpenDoc"] == 0) == (round(doc["DocBal"], 2) == 0)
        side = "AdjgRefNbr" if doc["DocType"] == "PA" else "AdjdRefNbr"
        applied_total = state.store.one(f"SELECT TOTAL(AdjAmt) FROM ARAdjust WHERE {side} = ? AND "
                                        f"{side[:4]}DocType = ?", (doc["RefNbr"], doc["DocType"]))[0]
        assert round(doc["OrigDocAmt"] - applied_total, 2) == round(doc["DocBal"], 2)
    current = state.store.one("SELECT CurrBal FROM AR_Balances WHERE CustID = 'P1'")[0]
    open_debits = sum(d["DocBal"] for d in docs if d["DocType"] == "IN")
    open_credits = sum(d["DocBal"] for d in docs if d["DocType"] == "PA")
    assert round(current, 2) == round(open_debits - open_credits, 2)
    for batch in state.store.all("SELECT Module, BatNbr, CrTot FROM Batch"):
        dr, cr = state.store.one("SELECT TOTAL(DrAmt), TOTAL(CrAmt) FROM GLTran WHERE Module = ? AND BatNbr = ?",
                                 (batch["Module"], batch["BatNbr"]))
        assert round(dr, 2) == round(cr, 2) == round(batch["CrTot"], 2)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.tuples(st.booleans(), cents), min_size=2, max_size=8), balance=st.booleans())
def test_gl_batches_are_accepted_only_when_they_balance(lines: list[tuple[bool, str]], balance: bool) -> None:
    state = create_app({}).state.sl
    gap = sum(Decimal(a) if d else -Decimal(a) for d, a in lines)
    if balance and gap:
        lines = [*lines, (gap < 0, f"{abs(gap):.2f}")]
    body = [{"Acct": "6500" if debit else "1050", "Sub": "000000", ("DrAmt" if debit else "CrAmt"): amount}
            for debit, amount in lines]
    debits = sum(Decimal(a) for d, a in lines if d)
    credits = sum(Decimal(a) for d, a in lines if not d)
    status, answer = _do(state, "POST", "/gl/batches", {"Lines": body})
    assert (status == 201) == (debits == credits)
    if status == 201:
        assert Decimal(answer["CrTot"]) == debits
        status, posted = _do(state, "POST", f"/gl/batches/{answer['BatNbr']}/post")
        assert status == 200 and posted["Status"] == "P"
    else:
        assert answer["error"]["code"] == "OutOfBalance" and state.counts()["gltran"] == 0


# ---- money movement: random sequences of receipts, refunds, memos and reversals --------------------------

small = st.integers(min_value=1, max_value=20_000).map(lambda c: f"{Decimal(c) / 100:.2f}")
pick = st.integers(min_value=0, max_value=7)
OPERATIONS = st.one_of(
    st.tuples(st.just("invoice"), small),
    st.tuples(st.just("pay"), pick, small, small),
    st.tuples(st.just("prepay"), small),
    st.tuples(st.just("credit"), pick, small),
    st.tuples(st.just("refund"), small, small),
    st.tuples(st.just("chargeback"), small, small),
    st.tuples(st.just("reverse"), pick),
)
DEBITS, CREDITS = ("IN", "DM", "NS"), ("PA", "PP", "CM")


def _money(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01"))


def _run(state: SandboxState, op: tuple[Any, ...], debits: list[tuple[str, str]], payments: list[tuple[str, str]],
         counter: list[int]) -> None:
    counter[0] += 1
    txn = f"7{counter[0]:06d}"
    kind = op[0]
    if kind == "invoice":
        status, doc = _do(state, "POST", "/ar/documents", {"CustId": "P1", "DocType": "IN", "CuryOrigDocAmt": op[1]})
        debits.append(("IN", doc["RefNbr"]))
    elif kind == "pay" and debits:
        doc_type, ref = debits[op[1] % len(debits)]
        applied = min(op[2], op[3], key=Decimal)  # mostly within the payment: the balance decides the rest
        status, doc = _do(state, "POST", "/ar/documents", {
            "CustId": "P1", "DocType": "PA", "CuryOrigDocAmt": op[2], "User1": txn,
            "Applications": [{"AdjdDocType": doc_type, "AdjdRefNbr": ref, "CuryAdjgAmt": applied}]})
        if status == 201:
            payments.append(("PA", doc["RefNbr"]))
    elif kind == "prepay":
        status, doc = _do(state, "POST", "/ar/documents", {"CustId": "P1", "DocType": "PP", "CuryOrigDocAmt": op[1],
                                                           "User1": txn})
        payments.append(("PP", doc["RefNbr"]))
    elif kind == "credit" and debits:
        doc_type, ref = debits[op[1] % len(debits)]
        status, doc = _do(state, "POST", "/ar/documents", {
            "CustId": "P1", "DocType": "CM", "CuryOrigDocAmt": op[2], "Lines": [{"Acct": "6900", "CuryTranAmt": op[2]}],
            "Applications": [{"AdjdDocType": doc_type, "AdjdRefNbr": ref, "CuryAdjgAmt": op[2]}]})
    elif kind == "refund":
        status, cm = _do(state, "POST", "/ar/documents", {
            "CustId": "P1", "DocType": "CM", "CuryOrigDocAmt": op[1], "Lines": [{"Acct": "4900", "CuryTranAmt": op[1]}]})
        status, _ = _do(state, "POST", "/ar/documents", {
            "CustId": "P1", "DocType": "DM", "CuryOrigDocAmt": op[2], "User1": "8" + txn, "User5": "RFNDPAYOUT",
            "Lines": [{"Acct": "2350", "CuryTranAmt": op[2]}],
            "Credits": [{"AdjgDocType": "CM", "AdjgRefNbr": cm["RefNbr"], "CuryAdjgAmt": op[2]}]})
    elif kind == "chargeback":
        status, dm = _do(state, "POST", "/ar/documents", {
            "CustId": "P1", "DocType": "DM", "CuryOrigDocAmt": op[1], "Lines": [{"Acct": "1060", "CuryTranAmt": op[1]}]})
        debits.append(("DM", dm["RefNbr"]))
        status, _ = _do(state, "POST", "/ar/documents", {
            "CustId": "P1", "DocType": "CM", "CuryOrigDocAmt": op[2], "Lines": [{"Acct": "6550", "CuryTranAmt": op[2]}],
            "Applications": [{"AdjdDocType": "DM", "AdjdRefNbr": dm["RefNbr"], "CuryAdjgAmt": op[2]}]})
    elif kind == "reverse" and payments:
        doc_type, ref = payments[op[1] % len(payments)]
        status, _ = _do(state, "POST", f"/ar/documents/{doc_type}/{ref}/reverse", {})
    else:
        return
    assert status in (201, 422), (op, status)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=14))
def test_money_movement_keeps_balances_and_ledger_whole(operations: list[tuple[Any, ...]]) -> None:
    state = create_app({}).state.sl
    _do(state, "POST", "/customers", {"CustId": "P1", "Name": "Prop"})
    debits: list[tuple[str, str]] = []
    payments: list[tuple[str, str]] = []
    counter = [0]
    for op in operations:
        _run(state, op, debits, payments, counter)

    docs = state.store.all("SELECT DocType, RefNbr, OrigDocAmt, DocBal, OpenDoc FROM ARDoc WHERE Rlsed = 1")
    for doc in docs:
        balance, original = _money(doc["DocBal"]), _money(doc["OrigDocAmt"])
        assert 0 <= balance <= original, dict(doc)
        assert (doc["OpenDoc"] == 1) == (balance != 0), dict(doc)
        side = "Adjg" if doc["DocType"] in CREDITS else "Adjd"
        applied = state.store.one(f"SELECT TOTAL(AdjAmt) FROM ARAdjust WHERE {side}DocType = ? AND {side}RefNbr = ?",
                                  (doc["DocType"], doc["RefNbr"]))[0]
        assert original - _money(applied) == balance, dict(doc)  # CuryOrigDocAmt - SUM(applications) = CuryDocBal
    owed = sum((_money(d["DocBal"]) for d in docs if d["DocType"] in DEBITS), Decimal(0))
    credit = sum((_money(d["DocBal"]) for d in docs if d["DocType"] in CREDITS), Decimal(0))
    balances = state.store.one("SELECT CurrBal, TotPrePay FROM AR_Balances WHERE CustID = 'P1'")
    assert _money(balances["CurrBal"]) == owed - credit
    assert _money(balances["TotPrePay"]) == sum((_money(d["DocBal"]) for d in docs if d["DocType"] == "PP"),
                                                Decimal(0))
    for batch in state.store.all("SELECT Module, BatNbr, Status, CrTot FROM Batch"):
        dr, cr, lines = state.store.one("SELECT TOTAL(DrAmt), TOTAL(CrAmt), COUNT(*) FROM GLTran WHERE Module = ? "
                                        "AND BatNbr = ?", (batch["Module"], batch["BatNbr"]))
        if batch["Status"] == "C":
            assert lines == 0
        else:
            assert _money(dr) == _money(cr) == _money(batch["CrTot"]), dict(batch)
    status, result = _do(state, "POST", "/gl/post")
    assert status == 200 and result["Failed"] == []
    net = {r["Acct"].strip(): _money(r["dr"]) - _money(r["cr"]) for r in state.store.all(
        "SELECT Acct, TOTAL(DrAmt) AS dr, TOTAL(CrAmt) AS cr FROM GLTran GROUP BY Acct")}
    assert sum(net.values(), Decimal(0)) == 0
    # the subledger and the ledger agree: what the customer owes is AR less unapplied prepayments
    assert net.get("1200", Decimal(0)) + net.get("2300", Decimal(0)) == owed - credit
