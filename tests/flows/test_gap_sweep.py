"""The gap sweep on its own: its window and cursor, what it stores, and that no webhook can pass for one of its
events (end to end, with webhooks really dropped: ``tests/faults/test_faults.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from ledgerlink.flows.context import OutboundEvent
from ledgerlink.flows.events import SYNTHETIC_HEADER
from ledgerlink.flows.gap_sweep import SWEEP_JOB, GapSweep, GapSweepSettings
from ledgerlink.model import EventType, PaymentEvent
from ledgerlink.runtime.schema import inbox
from tests.flows.harness import running_pair
from tests.service.test_webhooks import notification, signed

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def event(txn: str, order: str) -> PaymentEvent:
    return PaymentEvent(source="cybersource", event_id=f"payments.payments.accept:{txn}", event_type=EventType.PAYMENT,
                        gateway_event_type="payments.payments.accept", partition_key=order, payment_id=txn,
                        payload_sha256="0" * 64)


class Gateway:
    name = "cybersource"

    def __init__(self, events: list[PaymentEvent]) -> None:
        self.events = events
        self.windows: list[tuple[datetime, datetime]] = []

    async def transaction_events(self, start: datetime, end: datetime) -> list[PaymentEvent]:
        self.windows.append((start, end))
        return self.events


class Inbox:
    def __init__(self, known: set[str]) -> None:
        self.known_ids = known

    async def known(self, source: str, event_ids: Collection[str]) -> set[str]:
        return {i for i in event_ids if i in self.known_ids} if source == "cybersource" else set()


class Context:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.emitted: list[OutboundEvent] = []
        self.counts: dict[str, int] = {}
        self.recovering, self.attempt = False, 1

    def now(self) -> float:
        return NOW.timestamp()

    async def once(self, key: str, create: Callable[[], Awaitable[str]], find: Any = None, *, tag: Any = None) -> str:
        return await create()

    def emit(self, event: OutboundEvent) -> None:
        self.emitted.append(event)

    def count(self, tag: str, amount: int = 1) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + amount

    def outcome(self, outcome: str) -> None:
        pass


async def test_the_sweep_stores_only_gaps_as_the_webhooks_they_stand_for_and_moves_its_cursor() -> None:
    gateway = Gateway([event("1", "A"), event("2", "B"), event("3", "C")])
    sweep = GapSweep(gateway, GapSweepSettings(lookback_minutes=10, grace_seconds=60),  # type: ignore[arg-type]
                     Inbox({"payments.payments.accept:2"}))
    ctx = Context()
    assert await sweep(NOW, ctx) == 2  # type: ignore[arg-type]
    assert gateway.windows == [(NOW - timedelta(minutes=11), NOW - timedelta(minutes=1))]
    assert [(e.source, e.event_id, e.partition_key) for e in ctx.emitted] == [
        ("cybersource", "payments.payments.accept:1", "cybersource:A"),
        ("cybersource", "payments.payments.accept:3", "cybersource:C")]
    assert ctx.emitted[0].headers == {SYNTHETIC_HEADER: SWEEP_JOB}
    assert PaymentEvent.model_validate_json(ctx.emitted[0].body) == event("1", "A")
    assert ctx.counts == {"sweeps.transactions_seen": 3, "sweeps.gaps_found": 2}
    assert ctx.state["cursor"] == (NOW - timedelta(minutes=1)).isoformat()

    await sweep(NOW + timedelta(minutes=5), ctx)  # type: ignore[arg-type]
    assert gateway.windows[-1] == (NOW - timedelta(minutes=11), NOW + timedelta(minutes=4))  # cursor - lookback


async def test_a_webhook_cannot_pass_for_a_synthetic_event(tmp_path: Path) -> None:
    """Intake keeps only the gateway's own headers: one claiming to be the sweep's is stored without it, and
    the event is parsed from its (signed) webhook body like any other."""
    async with running_pair(tmp_path, f"sqlite:///{tmp_path}/ledgerlink.db") as pair:
        body, headers = signed(notification("payments.payments.accept", txn_id="7000000000000000000042"))
        answer = await pair.engine_http.post("/webhooks/cybersource", content=body,
                                             headers={**headers, SYNTHETIC_HEADER: SWEEP_JOB})
        assert answer.status_code == 200
        [row] = pair.db.read_sync(lambda conn: conn.execute(select(inbox.c.headers)
                                                            .where(inbox.c.source == "cybersource")).all())
        assert SYNTHETIC_HEADER not in orjson.loads(row.headers or "{}")
