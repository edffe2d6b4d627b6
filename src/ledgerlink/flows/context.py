"""What a flow may ask of the runtime that runs it.

Flows are plain async Python over the canonical seams. They never import the
runtime; the runtime hands each invocation a ``FlowContext`` and the flow uses
three things from it:

- ``state``: a JSON document kept per partition (per order), persisted in the
  same transaction that marks the event done. Flows keep their cross-references
  and the payment's canonical status there.
- ``once(key, create, find)``: run a side effect at most once per business key.
  A result already journaled in ``state`` is returned without calling anything;
  when an earlier attempt may have been cut off after the external system
  committed (``recovering``), ``find`` looks the key up in that system first.
- ``emit(event)``: a new durable event (an outbox): stored in the same transaction
  that finishes this one, so it exists exactly when this flow completed.
- ``count(tag)``: counters committed in the same transaction as the attempt's
  state, even when the attempt then fails, so count only what has happened
  (a created record, a decision) and the totals stay exact.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One durable inbox event as a flow sees it: where it came from and its raw bytes."""

    source: str
    event_id: str
    event_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: float = 0.0


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    """An event a flow or job creates for the inbox (e.g. one per new chargeback a poll finds)."""

    source: str
    event_id: str  # stable, so emitting it twice stores it once
    event_type: str
    partition_key: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class FlowContext(Protocol):
    state: dict[str, Any]
    recovering: bool  # a previous attempt at this event may have had side effects
    attempt: int

    def now(self) -> float:
        """Current time, epoch seconds (injectable in tests)."""
        ...

    async def once(
        self,
        key: str,
        create: Callable[[], Awaitable[str]],
        find: Callable[[], Awaitable[str | None]] | None = None,
        *,
        tag: str | None = None,
    ) -> str:
        """Run ``create`` at most once for ``key``; ``tag`` is counted only when ``create`` actually ran."""
        ...

    def emit(self, event: OutboundEvent) -> None:
        """Store ``event`` in the inbox when (and only if) this event completes."""
        ...

    def count(self, tag: str, amount: int = 1) -> None: ...

    def outcome(self, outcome: str) -> None:
        """A short word for what happened to this event (shown in the console and the DLQ)."""
        ...


class MessageHandler(Protocol):
    """Turns one inbox message into flow work. Raise ``Ignored`` for a message nothing handles."""

    async def __call__(self, message: InboundMessage, ctx: FlowContext) -> None: ...


@dataclass(frozen=True, slots=True)
class JobCall:
    """What a scheduled job is asked to do: the tick it runs for, and arguments (e.g. a day to reconcile)."""

    tick: float
    args: Mapping[str, Any] = field(default_factory=dict)


Job = Callable[[JobCall, "FlowContext"], Awaitable[None]]


JOB_SOURCE = "schedule"  # inbox source of job runs; their body is ``job_body``


def job_body(job: str, tick: float, args: Mapping[str, Any] | None = None) -> bytes:
    """The inbox body that asks the runtime to run ``job`` (what the scheduler writes for a tick)."""
    return orjson.dumps({"job": job, "tick": tick, "args": dict(args or {})})


def job_request(job: str, *, event_id: str, partition_key: str, tick: float,
                args: Mapping[str, Any] | None = None) -> OutboundEvent:
    """An event that runs ``job`` once, e.g. a scheduled tick asking for one day's reconciliation."""
    return OutboundEvent(source=JOB_SOURCE, event_id=event_id, event_type=job, partition_key=partition_key,
                         body=job_body(job, tick, args))


class Ignored(Exception):
    """The message is of a kind nothing handles; it is kept and marked ignored, not failed."""
