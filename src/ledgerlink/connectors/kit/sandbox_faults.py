"""Fault scripts for sandboxes: make an external system fail the ways real ones do, on purpose and repeatably.

Every sandbox takes the same script, in its settings at start or through ``/__sandbox/faults`` at run time
(GET shows it, PUT replaces it, DELETE clears it)::

    FaultPlan
      seed                      seeds the draws behind every rate: the same seed fails the same requests
      latency_ms [min, max]     added to every API request
      rules[]                   FaultRule: a method and a path prefix, and what happens to a matching request
      maintenance[]             MaintenanceWindow: everything under a path answers 503 for N seconds
      webhooks                  WebhookFaults (gateways only): duplicated, reordered, never-delivered notifications

A rule's ``kind`` says what happens, before the work or (``after_commit``) after it, when the caller can
no longer know whether its request took effect:

    error     answer ``status``: 500/502/503/504, 429 with ``Retry-After``, or a 4xx nobody should retry
    reset     close the connection without an answer
    timeout   stall past the caller's timeout, then close
    latency   only slow the request down (``latency_ms``); it then runs normally

A rule matches a method (``*``: any) and a path prefix (the whole path with ``exact``). It fires for a
matching request with probability ``rate`` (default 1), at most ``times`` times (default: once for a
certain fault, no limit for a rate or a latency). The first failing rule that fires decides; latency
rules add up. Maintenance windows come before rules.

A broken connection has to reach the client as a transport error whichever way the sandbox runs. Behind
uvicorn the sandbox starts an answer and abandons it, so the client sees the connection close mid-response
(``httpx.RemoteProtocolError``) or its own read timeout; in-process, through ``httpx.ASGITransport``, the
exception the app raises is itself an ``httpx`` transport error and reaches the client as one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

FaultKind = Literal["error", "reset", "timeout", "latency"]


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if low < 0 or high < low:
        raise ValueError("must be [min, max] with 0 <= min <= max")
    return value


# A random delay drawn uniformly from [min, max] milliseconds: added latency, a webhook's first-attempt delay.
MillisecondRange = Annotated[tuple[float, float], AfterValidator(_ordered)]


class FaultRule(BaseModel):
    """What happens to requests matching ``method`` (``*``: any) and ``path`` (a prefix, or the whole path
    with ``exact``)."""

    model_config = ConfigDict(extra="forbid")

    method: str = "*"
    path: str = "/"
    exact: bool = False
    kind: FaultKind = "error"
    status: int = Field(default=503, ge=400, le=599)
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    times: int | None = Field(default=1, ge=0)  # shots left; None: no limit
    after_commit: bool = False
    retry_after: int | None = Field(default=None, ge=0)  # seconds, sent as Retry-After with an error
    latency_ms: float = Field(default=0, ge=0)
    stall_seconds: float = Field(default=30.0, ge=0)  # kind timeout: how long the answer is withheld

    @model_validator(mode="after")
    def _rates_repeat(self) -> FaultRule:
        """A rate is meant for many requests: unless ``times`` is given, it has no limit."""
        if "times" not in self.model_fields_set and (self.rate < 1.0 or self.kind == "latency"):
            self.times = None
        return self

    def matches(self, method: str, path: str) -> bool:
        return (self.times is None or self.times > 0) and self.method in ("*", method) \
            and (path == self.path if self.exact else path.startswith(self.path))


class MaintenanceWindow(BaseModel):
    """Every request under ``path`` answers ``status`` from ``start`` (or ``after_seconds`` from when the
    script is set) for ``seconds``, with ``Retry-After`` saying when it ends unless ``retry_after`` is given."""

    model_config = ConfigDict(extra="forbid")

    start: datetime | None = None
    after_seconds: float = Field(default=0.0, ge=0)
    seconds: float = Field(gt=0)
    path: str = "/"
    status: int = Field(default=503, ge=400, le=599)
    retry_after: int | None = Field(default=None, ge=0)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class WebhookFaults(BaseModel):
    """What goes wrong with a gateway's notifications: sent twice, shuffled, or never sent at all."""

    model_config = ConfigDict(extra="forbid")

    duplicate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    reorder_window: int = Field(default=0, ge=0)  # hold up to N notifications and shuffle them
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)  # never delivered (the gap sweep's work)


class FaultPlan(BaseModel):
    """A whole fault script as data: what settings and the control endpoint carry."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    latency_ms: MillisecondRange = (0.0, 0.0)
    rules: list[FaultRule] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    webhooks: WebhookFaults | None = None  # None: leave the emitter's own knobs as they are


@dataclass(frozen=True)
class Fault:
    """One drawn fault: what to do to this request."""

    kind: FaultKind
    status: int
    after_commit: bool
    retry_after: int | None
    latency_ms: float
    stall_seconds: float = 0.0
    cause: str = "rule"  # "rule" or "maintenance", for the sandbox's evidence

    @property
    def delay(self) -> float:
        """Seconds to wait before handling the request."""
        return self.latency_ms / 1000

    @property
    def breaks_connection(self) -> bool:
        return self.kind in ("reset", "timeout")

    @property
    def fails(self) -> bool:
        return self.kind != "latency"


class FaultScript:
    """A ``FaultPlan`` at work: remaining shots, resolved maintenance windows, the seeded draws and a count
    of what was injected. ``take`` is called once per request (``$batch`` items: once per item)."""

    fault_class: type[Fault] = Fault  # a sandbox may give its faults a way to render themselves

    def __init__(self, plan: FaultPlan | Mapping[str, Any] | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.injected: Counter[str] = Counter()
        self.load(plan)

    # --- the script --------------------------------------------------------------------------

    def load(self, plan: FaultPlan | Mapping[str, Any] | None) -> None:
        """Replace the whole script (None: no faults)."""
        if not isinstance(plan, FaultPlan):
            plan = FaultPlan.model_validate(dict(plan or {}))
        self.seed = plan.seed
        self._rng = random.Random(plan.seed)
        self.latency_ms = plan.latency_ms
        self.rules: list[FaultRule] = [rule.model_copy() for rule in plan.rules]
        now = self._clock()
        self.maintenance: list[MaintenanceWindow] = [
            window if window.start is not None else window.model_copy(update={
                "start": datetime.fromtimestamp(now + window.after_seconds, UTC), "after_seconds": 0.0})
            for window in plan.maintenance
        ]
        self.webhooks = plan.webhooks

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule.model_copy())

    def add_maintenance(self, window: MaintenanceWindow) -> None:
        plan = self.plan()
        self.load(plan.model_copy(update={"maintenance": [*plan.maintenance, window]}))

    def clear(self) -> None:
        self.load(None)

    def plan(self) -> FaultPlan:
        """The script as it stands (rules with the shots they have left)."""
        return FaultPlan(seed=self.seed, latency_ms=self.latency_ms, rules=[r.model_copy() for r in self.rules],
                         maintenance=list(self.maintenance), webhooks=self.webhooks)

    def describe(self) -> dict[str, Any]:
        """The script and what it has injected so far, as JSON for ``GET /__sandbox/faults``."""
        return {**self.plan().model_dump(mode="json"), "injected": dict(self.injected)}

    @property
    def active(self) -> bool:
        return bool(self.rules or self.maintenance or self.latency_ms[1] > 0)

    # --- per request -------------------------------------------------------------------------

    def in_maintenance(self, path: str, now: float | None = None) -> MaintenanceWindow | None:
        now = self._clock() if now is None else now
        for window in self.maintenance:
            assert window.start is not None
            start = window.start.timestamp()
            if start <= now < start + window.seconds and path.startswith(window.path):
                return window
        return None

    def take(self, method: str, path: str, *, whole_request: bool = True) -> Fault | None:
        """The fault for this request, if any (each firing rule uses one of its shots). A part of a request
        (an item of a ``$batch``) has no latency of its own: the request it came in had it."""
        if not self.active:
            return None
        now = self._clock()
        window = self.in_maintenance(path, now)
        if window is not None:
            assert window.start is not None
            left = window.start.timestamp() + window.seconds - now
            retry_after = window.retry_after if window.retry_after is not None else max(1, math.ceil(left))
            self.injected["maintenance"] += 1
            return self.fault_class("error", window.status, False, retry_after, 0.0, cause="maintenance")
        low, high = self.latency_ms
        latency = self._rng.uniform(low, high) if high > 0 and whole_request else 0.0
        chosen: FaultRule | None = None
        for rule in self.rules:
            if not rule.matches(method, path) or (chosen is not None and rule.kind != "latency") \
                    or (rule.kind == "latency" and not whole_request):
                continue
            if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                continue
            if rule.times is not None:
                rule.times -= 1
            latency += rule.latency_ms
            if rule.kind != "latency":
                chosen = rule
        if chosen is not None:
            self.injected[chosen.kind if chosen.kind != "error" else f"error:{chosen.status}"] += 1
            if chosen.after_commit:
                self.injected["after_commit"] += 1
            return self.fault_class(chosen.kind, chosen.status, chosen.after_commit, chosen.retry_after, latency,
                                    chosen.stall_seconds)
        if latency > 0:
            self.injected["latency"] += 1
            return self.fault_class("latency", 200, False, None, latency)
        return None


# --- broken connections ----------------------------------------------------------------------


class InjectedConnectionReset(httpx.RemoteProtocolError):
    """The sandbox dropped the connection without a complete answer (a fault script's ``reset``)."""


class InjectedTimeout(httpx.ReadTimeout):
    """The sandbox withheld its answer past the caller's timeout (a fault script's ``timeout``)."""


class BrokenResponse:
    """An ASGI response that never completes: a ``reset`` drops at once, a ``timeout`` stalls first.

    It starts an answer that promises a body and then raises. Behind uvicorn that closes the socket mid-
    response (the client reads ``RemoteProtocolError``, or times out first); through ``ASGITransport`` the
    exception itself, an ``httpx`` transport error, reaches the client.
    """

    def __init__(self, fault: Fault) -> None:
        self.fault = fault

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.fault.kind == "timeout":
            await asyncio.sleep(self.fault.stall_seconds)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        if self.fault.kind == "timeout":
            raise InjectedTimeout("sandbox fault: no answer within the client's timeout")
        raise InjectedConnectionReset("sandbox fault: connection reset by peer")


class _QuietInjectedFaults(logging.Filter):
    """Keep uvicorn from logging a traceback for every connection a fault script broke on purpose."""

    names = tuple(f"{cls.__module__}.{cls.__qualname__}" for cls in (InjectedConnectionReset, InjectedTimeout))

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            return not isinstance(exc, InjectedConnectionReset | InjectedTimeout)
        # ledgerlink's log records carry their traceback as (redacted) text already: read its last line
        last = record.exc_text.rstrip().rpartition("\n")[2] if record.exc_text else ""
        return not last.startswith(self.names)


_QUIET = _QuietInjectedFaults()


def quiet_injected_faults() -> None:
    """Install the filter on uvicorn's error logger (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)
