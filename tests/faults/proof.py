"""What the fault tests prove, in one place: after the run, SL holds every payment exactly once, and every
payment that is not there is in the dead-letter list with its evidence; nothing else.

A run plays a web shop against the Cybersource sandbox (sales, and authorisations captured later), keeps
what it expects SL to end up with (order references, and the transaction ids of the money taken), then
reads SL back through its API and the engine's dead letters from its database.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from ledgerlink.runtime.db import Database
from ledgerlink.runtime.dlq import DeadLetter, list_dead
from ledgerlink.runtime.schema import inbox


@dataclass
class Expected:
    """What the shop did: order reference → the transaction ids that took its money."""

    payments: dict[str, list[str]] = field(default_factory=dict)

    @property
    def orders(self) -> set[str]:
        return set(self.payments)

    @property
    def captured(self) -> set[str]:
        return {txn for txns in self.payments.values() for txn in txns}


def plan_payments(sales: int, pairs: int, rng: random.Random, prefix: str) -> list[tuple[str, str, bool]]:
    """(order reference, amount, is a sale); amounts avoid the sandbox's decline and review triggers."""
    kinds = [True] * sales + [False] * pairs
    rng.shuffle(kinds)
    return [(f"{prefix}-{n:05d}", f"{rng.randint(5, 500)}.{rng.choice([0, 10, 25, 50, 75, 99]):02d}", sale)
            for n, sale in enumerate(kinds)]


async def shop(gateway: Any, plan: list[tuple[str, str, bool]], *, concurrency: int = 16,
               pace: float = 0.0) -> Expected:
    """Authorise (and for pairs, capture) every planned payment through ``gateway`` (a storefront)."""
    from ledgerlink.model import AuthorizationRequest, Money, Party, PaymentToken
    from tests.flows.harness import VISA_INSTRUMENT

    expected = Expected()
    queue: asyncio.Queue[tuple[str, str, bool]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def one(reference: str, amount: str, sale: bool) -> None:
        request = AuthorizationRequest(
            amount=Money.of(amount, "USD"), order_reference=reference, capture=sale,
            token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT),
            party=Party(first_name="Fault", last_name=reference, email=f"{reference.lower()}@example.com"),
        )
        payment = await gateway.authorize(request)
        if not sale:
            capture = await gateway.capture(payment.id, payment.amount, order_reference=reference)
            expected.payments[reference] = [capture.id]
        else:
            expected.payments[reference] = [payment.id]

    async def worker() -> None:
        while not queue.empty():
            await one(*queue.get_nowait())
            if pace:
                await asyncio.sleep(pace)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return expected


async def sl_rows(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        response = await client.get(f"/api/v1/{path}", params={**params, "$top": 1000, "$skip": len(rows)})
        response.raise_for_status()
        page = response.json()["value"]
        rows.extend(page)
        if len(page) < 1000:
            return rows


@dataclass
class Ledger:
    """What SL holds: sales orders by reference, applied payments by gateway transaction id."""

    orders: Counter[str]
    payments: Counter[str]
    unpaid: list[str]


async def read_sl(client: httpx.AsyncClient) -> Ledger:
    orders = await sl_rows(client, "salesorders")
    payments = await sl_rows(client, "ar/documents", DocType="PA")
    return Ledger(orders=Counter(row["CustOrdNbr"].strip() for row in orders),
                  payments=Counter(row["User1"].strip() for row in payments),
                  unpaid=[row["CustOrdNbr"].strip() for row in orders if Decimal(row["BalDue"]) != 0])


def dead_letters(db: Database) -> list[DeadLetter]:
    return db.read_sync(lambda conn: list_dead(conn, limit=100_000))


def dead_orders(db: Database, dead: list[DeadLetter]) -> set[str]:
    """The order references of dead payment events (from their stored bodies)."""
    seqs = [d.seq for d in dead]
    if not seqs:
        return set()
    rows = db.read_sync(lambda conn: conn.execute(select(inbox.c.body, inbox.c.partition_key)
                                                  .where(inbox.c.seq.in_(seqs))).all())
    references = set()
    for row in rows:
        data = orjson.loads(row.body).get("payload", {}).get("data", {})
        code = (data.get("clientReferenceInformation") or {}).get("code")
        references.add(code or row.partition_key.partition(":")[2])
    return references


def assert_exactly_once(ledger: Ledger, expected: Expected, *, dead: list[DeadLetter] = (),  # type: ignore[assignment]
                        dead_refs: set[str] = frozenset(), what: str = "") -> None:  # type: ignore[assignment]
    """Every expected payment posted exactly once, or its event dead with evidence; nothing else in SL."""
    twice = {ref: n for ref, n in ledger.orders.items() if n != 1}
    assert twice == {}, f"{what}: sales orders posted more than once: {twice}"
    paid_twice = {txn: n for txn, n in ledger.payments.items() if n != 1}
    assert paid_twice == {}, f"{what}: payments applied more than once: {paid_twice}"
    assert set(ledger.orders) <= expected.orders, f"{what}: orders nobody paid for: {set(ledger.orders) - expected.orders}"
    assert set(ledger.payments) <= expected.captured, f"{what}: unknown payments in SL"
    for letter in dead:
        evidence = letter.error
        assert evidence.get("status") and evidence.get("error") and evidence.get("message"), \
            f"{what}: dead letter {letter.event_id} without evidence: {evidence}"
        assert letter.history, f"{what}: dead letter {letter.event_id} without its attempts"
    missing_orders = expected.orders - set(ledger.orders) - dead_refs
    assert missing_orders == set(), f"{what}: {len(missing_orders)} orders neither in SL nor dead: {sorted(missing_orders)[:5]}"
    alive = {txn for ref, txns in expected.payments.items() if ref not in dead_refs for txn in txns}
    missing = alive - set(ledger.payments)
    assert missing == set(), f"{what}: {len(missing)} payments neither in SL nor dead: {sorted(missing)[:5]}"
    unpaid = set(ledger.unpaid) - dead_refs
    assert unpaid == set(), f"{what}: orders left unpaid: {sorted(unpaid)[:5]}"
