"""$batch: each request atomic on its own, the whole batch one commit, answers in order."""

from __future__ import annotations

import httpx

from ledgerlink.connectors.dynamics_sl.sandbox import SandboxState


def _customer(i: int, name: str = "Buyer") -> dict[str, object]:
    return {"id": f"c{i}", "method": "POST", "url": "/api/v1/customers", "body": {"CustId": f"B{i}", "Name": name}}


async def test_each_request_is_atomic_and_answered_in_order(api: httpx.AsyncClient, state: SandboxState) -> None:
    requests = [
        _customer(1),
        {"id": "bad-order", "method": "POST", "url": "/api/v1/salesorders", "body": {
            "CustID": "B1", "Lines": [{"InvtID": "SKU", "QtyOrd": "1", "SlsPrice": "1.00"},
                                      {"InvtID": "SKU", "QtyOrd": "1", "SlsPrice": "1.00", "SlsAcct": "9999"}]}},
        _customer(2, name="x" * 61),
        {"id": "read", "method": "GET", "url": "/api/v1/customers/B1"},
        {"id": "nested", "method": "POST", "url": "/api/v1/$batch", "body": {}},
    ]
    response = await api.post("/api/v1/$batch", json={"requests": requests})
    assert response.status_code == 200
    answers = response.json()["responses"]
    assert [(a["id"], a["status"]) for a in answers] == [("c1", 201), ("bad-order", 422), ("c2", 422), ("read", 200),
                                                         ("nested", 400)]
    assert answers[1]["body"]["error"]["field"] == "Lines[1].SlsAcct"
    counts = state.counts()
    # The refused order left no header, no line and no consumed order number behind.
    assert (counts["customers"], counts["orders"]) == (1, 0)
    assert state.store.one("SELECT LastOrdNbr FROM SOType")["LastOrdNbr"] == "000000"  # type: ignore[index]


async def test_same_key_twice_in_one_batch_makes_one_record(api: httpx.AsyncClient, state: SandboxState) -> None:
    order = {"method": "POST", "url": "/api/v1/salesorders", "headers": {"Idempotency-Key": "k-1"},
             "body": {"CustID": "B1", "Lines": [{"InvtID": "SKU", "QtyOrd": "1", "SlsPrice": "1.00"}]}}
    answers = (await api.post("/api/v1/$batch", json={"requests": [
        _customer(1), {"id": "o1", **order}, {"id": "o2", **order}]})).json()["responses"]
    assert [a["status"] for a in answers] == [201, 201, 409]
    assert answers[2]["body"]["error"]["existing"]["id"] == answers[1]["body"]["OrdNbr"]
    assert state.counts()["orders"] == 1


async def test_the_batch_commits_once(api: httpx.AsyncClient, state: SandboxState) -> None:
    commits = []
    state.store.conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    response = await api.post("/api/v1/$batch", json={"requests": [_customer(i) for i in range(50)]})
    state.store.conn.set_trace_callback(None)
    assert {a["status"] for a in response.json()["responses"]} == {201}
    assert commits == ["COMMIT"]


async def test_minimal_answers_carry_the_keys(api: httpx.AsyncClient) -> None:
    requests = [{**_customer(1), "headers": {"Prefer": "return=minimal"}}]
    answer = (await api.post("/api/v1/$batch", json={"requests": requests})).json()["responses"][0]
    assert answer["body"] == {"CustId": "B1", "Status": "A", "ClassId": "WEB"}


async def test_malformed_batches(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/v1/$batch", json={"nope": []})).status_code == 400
    assert (await api.post("/api/v1/$batch", content=b"{not json", headers={"content-type": "application/json"})
            ).status_code == 400
    answer = (await api.post("/api/v1/$batch", json={"requests": [{"id": "x"}]})).json()["responses"][0]
    assert answer["status"] == 400
