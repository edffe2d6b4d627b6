"""Fraud review end to end: a payment in review at the Cybersource sandbox opens a scored case in the engine
and an SL order on hold; a decision (admin API, CLI, or Decision Manager's own case management) captures or
reverses it at the gateway and releases or cancels the SL order, exactly once, audited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from ledgerlink.cli import app as cli_app
from ledgerlink.model import Address, AuthorizationRequest, Money, Party, Payment, PaymentToken
from ledgerlink.runtime.schema import audit, inbox, risk_scores
from tests.flows.harness import VISA_INSTRUMENT, Pair, running_pair

FLOWS = {"fraud_review": {"enabled": True, "home_countries": ["US"], "watch_countries": ["XA"]},
         "refunds": {"enabled": True}}


@pytest.fixture
async def pair(tmp_path: Path, database_target: tuple[str, str | None]) -> AsyncIterator[Pair]:
    url, schema = database_target
    async with running_pair(tmp_path, url, schema, flows=FLOWS) as running:
        yield running


async def held(pair: Pair, order: str, amount: str = "55.09", *, email: str | None = None,
               country: str | None = None, first: str = "Ada", last: str = "Lovelace") -> Payment:
    """An authorisation Decision Manager holds for review (amounts ending .09 in the sandbox)."""
    party = Party(first_name=first, last_name=last, email=email or f"{first}.{last}@example.com".lower(),
                  address=Address(line1="1 Main St", city="Springfield", postal_code="12345", country=country)
                  if country else None)
    request = AuthorizationRequest(amount=Money.of(amount, "USD"), order_reference=order, capture=False, party=party,
                                   token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT))
    payment: Payment = await pair.storefront.authorize(request)
    await pair.settle()
    return payment


def key_of(payment: Payment) -> str:
    return f"review:cybersource:{payment.id}"


async def queue(pair: Pair, status: str = "open") -> list[dict[str, Any]]:
    answer = await pair.engine_http.get("/admin/reviews", params={"status": status})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


async def case(pair: Pair, key: str) -> dict[str, Any]:
    answer = await pair.engine_http.get(f"/admin/reviews/{key}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def decide(pair: Pair, key: str, decision: str, **extra: Any) -> httpx.Response:
    return await pair.engine_http.post(f"/admin/reviews/{key}/decision", json={"decision": decision, **extra})


def sandbox_txn(pair: Pair, payment_id: str) -> Any:
    return pair.cybersource.store.transactions[payment_id]


def children(pair: Pair, payment_id: str, kind: str) -> list[Any]:
    txn = sandbox_txn(pair, payment_id)
    return [pair.cybersource.store.transactions[c] for c in txn.children
            if pair.cybersource.store.transactions[c].kind == kind]


def audit_actions(pair: Pair, target: str) -> list[str]:
    rows = pair.db.read_sync(lambda conn: conn.execute(
        select(audit.c.action).where(audit.c.target == target).order_by(audit.c.seq)).scalars().all())
    return list(rows)


def inbox_count(pair: Pair) -> int:
    return int(pair.db.read_sync(lambda conn: conn.execute(select(func.count()).select_from(inbox)).scalar_one()))


async def test_a_payment_in_review_holds_the_order_and_opens_a_case_with_reasons_in_words_and_a_score(
        pair: Pair) -> None:
    payment = await held(pair, "FR-1001")
    await pair.pay("FR-1002", "20.00", capture=False)  # not in review: scored, no case
    await pair.settle()

    order = await pair.order("FR-1001")
    assert order["AdminHold"] == 1
    [item] = await queue(pair)
    assert item["key"] == key_of(payment) and item["status"] == "open" and item["order_reference"] == "FR-1001"
    assert Decimal(str(item["amount"]["amount"])) == Decimal("55.09") and item["amount"]["currency"] == "USD"
    reasons = {r["code"]: r["description"] for r in item["reasons"]}
    assert reasons["480"] == "Decision Manager marked the order for review"
    assert "different card numbers" in reasons["VEL-CC"].lower()
    assert item["rules"] == ["Velocity - 3 orders from one card in 1 hour"] and item["gateway_score"] == 87
    risk = item["risk"]
    assert 0 < risk["score"] < 1 and risk["model"].startswith("lr-") and item["points"] == round(risk["score"] * 100)
    assert risk["factors"] and all(f["contribution"] > 0 and f["description"] for f in risk["factors"])
    assert [f["contribution"] for f in risk["factors"]] == sorted((f["contribution"] for f in risk["factors"]),
                                                                  reverse=True)
    scored = pair.db.read_sync(lambda conn: conn.execute(select(func.count()).select_from(risk_scores)).scalar_one())
    assert scored == 2  # every authorisation gets a score, not only those in review
    counters = pair.stats()["counters"]
    assert counters["reviews.opened"] == 1 and counters["payments.scored"] == 2
    assert audit_actions(pair, key_of(payment)) == ["review.opened"]


async def test_the_queue_is_ordered_by_our_risk_score(pair: Pair) -> None:
    low = await held(pair, "FR-2001", "15.09", email="ada.lovelace@example.com")
    high = await held(pair, "FR-2002", "1899.09", email="xx_deals77@mail.de", country="XA",
                      first="Grace", last="Hopper")
    middle = await held(pair, "FR-2003", "240.09", email="grace.hopper@example.com", country="FR",
                        first="Grace", last="Hopper")
    items = await queue(pair)
    assert [i["key"] for i in items] == [key_of(high), key_of(middle), key_of(low)]
    scores = [i["risk"]["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    top = {f["feature"] for f in items[0]["risk"]["factors"]}
    assert top & {"watch_country", "email_name_mismatch", "amount_size", "email_country_mismatch", "foreign_country"}


async def test_accepting_in_the_admin_api_captures_once_and_releases_the_hold(pair: Pair) -> None:
    payment = await held(pair, "FR-3001")
    key = key_of(payment)
    answer = await decide(pair, key, "accept", comments="Called the customer", reviewer="Rita")
    assert answer.status_code == 202, answer.text
    assert answer.json()["case"]["status"] == "accepted"
    await pair.settle()

    order = await pair.order("FR-3001")
    assert order["AdminHold"] == 0 and Decimal(order["BalDue"]) == 0
    assert len(await pair.sl_get("ar/documents", DocType="PA")) == 1
    [capture] = children(pair, payment.id, "capture")
    assert capture.amount == Decimal("55.09")
    assert pair.cybersource.decisions.decisions[payment.id]["decision"] == "ACCEPT"
    shown = await case(pair, key)
    assert shown["status"] == "accepted" and shown["decided_by"].startswith("admin:") and "Rita" in shown["decided_by"]
    assert shown["decision_source"] == "engine" and shown["comments"] == "Called the customer"
    assert shown["settled_at"] and shown["follow_on_id"] == capture.id
    assert [a["action"] for a in reversed(shown["audit"])] == ["review.opened", "review.accepted", "review.settled"]
    counters = pair.stats()["counters"]
    assert counters["reviews.accepted"] == 1
    # Decision Manager's own notification of the decision came back and changed nothing.
    assert pair.stats()["events"].get("dead", 0) == 0

    events, entries = inbox_count(pair), audit_actions(pair, key)
    again = await decide(pair, key, "reject")
    assert again.status_code == 409
    assert "already accepted" in again.json()["detail"] and "admin:" in again.json()["detail"]
    await pair.settle()
    assert inbox_count(pair) == events and audit_actions(pair, key) == entries
    assert len(children(pair, payment.id, "capture")) == 1 and not children(pair, payment.id, "reversal")


async def test_rejecting_in_the_admin_api_reverses_the_authorisation_and_cancels_the_order(pair: Pair) -> None:
    payment = await held(pair, "FR-4001", "75.09")
    answer = await decide(pair, key_of(payment), "reject", comments="Stolen card, confirmed by issuer")
    assert answer.status_code == 202, answer.text
    await pair.settle()

    order = await pair.order("FR-4001")
    assert order["Cancelled"] == 1 and order["Status"].strip() == "C"
    assert await pair.sl_get("ar/documents", DocType="PA") == []
    [reversal] = children(pair, payment.id, "reversal")
    assert reversal.amount == Decimal("75.09") and sandbox_txn(pair, payment.id).status == "REVERSED"
    shown = await case(pair, key_of(payment))
    assert shown["status"] == "rejected" and shown["follow_on_id"] == reversal.id and shown["settled_at"]
    assert pair.stats()["counters"]["reviews.rejected"] == 1
    assert pair.stats()["events"].get("dead", 0) == 0


@pytest.mark.parametrize(("decision", "settle"), [("ACCEPT", True), ("ACCEPT", False), ("REJECT", True),
                                                  ("REJECT", False)])
async def test_a_decision_made_in_decision_manager_arrives_by_webhook_and_is_applied(
        pair: Pair, decision: str, settle: bool) -> None:
    payment = await held(pair, f"FR-5{decision[0]}{int(settle)}")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=pair.cybersource.app),
                                 base_url="http://cybersource.sandbox") as control:
        answer = await control.post(f"/__sandbox/risk/cases/{payment.id}/decision",
                                    json={"decision": decision, "reviewer": "rita", "comments": "checked",
                                          "settle": settle})
        assert answer.status_code == 201, answer.text
    await pair.settle()

    shown = await case(pair, key_of(payment))
    assert shown["decided_by"] == "cybersource:rita" and shown["decision_source"] == "cybersource"
    assert shown["comments"] == "checked" and shown["settled_at"]
    order = await pair.order(payment.order_reference or "")
    if decision == "ACCEPT":
        [capture] = children(pair, payment.id, "capture")  # made by Decision Manager, or by the engine
        assert shown["status"] == "accepted" and shown["follow_on_id"] == capture.id
        assert order["AdminHold"] == 0 and Decimal(order["BalDue"]) == 0
    else:
        [reversal] = children(pair, payment.id, "reversal")
        assert shown["status"] == "rejected" and shown["follow_on_id"] == reversal.id
        assert order["Cancelled"] == 1
    assert pair.stats()["events"].get("dead", 0) == 0
    assert audit_actions(pair, key_of(payment)) == ["review.opened", f"review.{shown['status']}", "review.settled"]


async def test_a_gateway_decision_contradicting_ours_is_dead_lettered_with_the_reason(pair: Pair) -> None:
    payment = await held(pair, "FR-6001")
    assert (await decide(pair, key_of(payment), "accept")).status_code == 202
    await pair.settle()
    # Decision Manager reports a reject for the same payment (two reviewers at once): never silently dropped.
    txn = sandbox_txn(pair, payment.id)
    pair.cybersource.hub.publish("risk.casemanagement.decision.reject", "decisionManager", txn, data={
        "id": txn.id, "clientReferenceInformation": {"code": txn.code},
        "notes": [{"addedBy": "bob", "comment": "looks fraudulent"}]})
    await pair.settle()
    dead = (await pair.engine_http.get("/admin/dlq")).json()["items"]
    assert len(dead) == 1 and dead[0]["event_type"] == "risk.casemanagement.decision.reject"
    detail = (await pair.engine_http.get(f"/admin/dlq/{dead[0]['seq']}")).json()
    assert "reports reject" in str(detail) and "accepted" in str(detail)
    assert (await case(pair, key_of(payment)))["status"] == "accepted"
    assert not children(pair, payment.id, "reversal")


async def test_bad_decisions_are_refused_naming_the_field_and_change_nothing(pair: Pair) -> None:
    payment = await held(pair, "FR-7001")
    key = key_of(payment)
    events = inbox_count(pair)
    wrong = await decide(pair, key, "maybe")
    assert wrong.status_code == 422 and "decision" in wrong.text
    card = await decide(pair, key, "accept", comments="card 4111 1111 1111 1111 looked fine")
    assert card.status_code == 422 and "comments" in card.text and "4111 1111" not in card.text
    unknown = await decide(pair, "review:cybersource:0000", "accept")
    assert unknown.status_code == 404
    assert (await case(pair, key))["status"] == "open"
    assert audit_actions(pair, key) == ["review.opened"] and inbox_count(pair) == events
    assert (await pair.engine_http.post(f"/admin/reviews/{key}/decision", json={"decision": "accept"},
                                        headers={"Authorization": "Bearer wrong"})).status_code == 401


async def test_the_cli_lists_shows_and_decides(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await held(pair, "FR-8001")
    second = await held(pair, "FR-8002", "65.09")
    url = str(pair.db.url)
    if pair.db.schema:
        monkeypatch.setenv("LEDGERLINK_DATABASE_SCHEMA", pair.db.schema)
    runner = CliRunner()

    async def invoke(args: list[str]) -> Any:  # the CLI runs its own event loop: off this one
        return await asyncio.to_thread(runner.invoke, cli_app, args)

    listed = await invoke(["review", "list", "--database-url", url])
    assert listed.exit_code == 0, listed.output
    assert "FR-8001" in listed.output and "FR-8002" in listed.output and "2 case(s)" in listed.output
    shown = await invoke(["review", "show", key_of(first), "--database-url", url])
    assert shown.exit_code == 0 and "review.opened" in shown.output and "480" in shown.output

    accepted = await invoke(["review", "accept", key_of(first), "-m", "known customer",
                                       "--database-url", url])
    assert accepted.exit_code == 0, accepted.output
    rejected = await invoke(["review", "reject", key_of(second), "--database-url", url])
    assert rejected.exit_code == 0, rejected.output
    assert pair.engine.worker is not None
    pair.engine.worker.wake()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not ((await case(pair, key_of(first)))["settled_at"] and
                                               (await case(pair, key_of(second)))["settled_at"]):
        await pair.settle()
    assert (await pair.order("FR-8001"))["AdminHold"] == 0
    assert (await pair.order("FR-8002"))["Cancelled"] == 1
    assert (await case(pair, key_of(first)))["decided_by"].startswith("cli:")

    closed = await invoke(["review", "reject", key_of(first), "--database-url", url])
    assert closed.exit_code == 1 and "already accepted" in closed.output


async def test_a_decision_the_gateway_already_has_is_not_sent_or_captured_again(pair: Pair) -> None:
    from ledgerlink.model import ReviewDecision

    payment = await held(pair, "FR-9001")
    key = key_of(payment)
    await pair.cybersource.emitter.stop()  # its notifications wait, as if the engine died right after telling it
    verdict = await pair.integration.gateway.decide_review(payment.id, ReviewDecision.ACCEPT)
    assert (await decide(pair, key, "accept")).status_code == 202
    assert pair.engine.worker is not None
    pair.engine.worker.wake()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (await case(pair, key))["settled_at"]:
        await asyncio.sleep(0.05)
    await pair.cybersource.emitter.start()
    await pair.settle()
    assert [c.id for c in children(pair, payment.id, "capture")] == [verdict.follow_on_id]
    assert (await case(pair, key))["follow_on_id"] == verdict.follow_on_id
    order = await pair.order("FR-9001")
    assert order["AdminHold"] == 0 and Decimal(order["BalDue"]) == 0
    assert len(await pair.sl_get("ar/documents", DocType="PA")) == 1
