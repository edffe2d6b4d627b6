"""The circuit breaker of one endpoint as a pure state machine (no I/O, no clock of its own).

    closed ──(≥ min_calls in the window and failures/calls ≥ failure_ratio)──▶ open
    open ──(open_seconds later, the first probe)──▶ half_open
    half_open ──(half_open_probes probes succeeded)──▶ closed (a fresh window)
    half_open ──(a probe failed)──▶ open (again for open_seconds)

Closed, every call goes out and the outcomes of all processes are added up in a fixed window of
``window_seconds``. Open, nothing goes out. Half-open, at most ``half_open_probes`` probes are let through
(fleet-wide); if a probe's process dies before it reports, the slots are handed out afresh once the
half-open state is ``open_seconds`` old, so the breaker cannot stick.

``runtime/flow_control.py`` keeps one ``Breaker`` per endpoint in ``ll_breakers`` and changes it with a
compare-and-set on ``version``, always through these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATES = (CLOSED, HALF_OPEN, OPEN)  # the metric's 0, 1, 2


@dataclass(frozen=True)
class BreakerPolicy:
    failure_ratio: float = 0.5
    min_calls: int = 10
    window_seconds: float = 30.0
    open_seconds: float = 15.0
    half_open_probes: int = 2

    def trips(self, calls: int, failures: int) -> bool:
        return calls >= self.min_calls and failures >= self.failure_ratio * calls


@dataclass(frozen=True)
class Breaker:
    state: str = CLOSED
    changed_at: float = 0.0  # when it entered this state (half-open: or when its probe slots were renewed)
    window_start: float = 0.0
    calls: int = 0
    failures: int = 0
    probes: int = 0  # probe slots handed out in this half-open state
    probe_successes: int = 0

    def open_until(self, policy: BreakerPolicy) -> float:
        """Open: when the first probe may go. Half-open: when unreported probe slots are handed out again."""
        return self.changed_at + policy.open_seconds


def apply(breaker: Breaker, policy: BreakerPolicy, now: float, *, successes: int = 0, failures: int = 0,
          probe_successes: int = 0, probe_failures: int = 0) -> Breaker:
    """The breaker after outcomes reported at ``now``: ordinary calls count only while closed (late answers
    to calls made before it opened are ignored), probe outcomes only while half-open."""
    if breaker.state == HALF_OPEN:
        if probe_failures:
            return Breaker(OPEN, changed_at=now, window_start=now)
        done = breaker.probe_successes + probe_successes
        if done >= policy.half_open_probes:
            return Breaker(CLOSED, changed_at=now, window_start=now)
        return replace(breaker, probe_successes=done)
    if breaker.state != CLOSED or not (successes or failures):
        return breaker
    if now - breaker.window_start >= policy.window_seconds or now < breaker.window_start:
        breaker = replace(breaker, window_start=now, calls=0, failures=0)
    calls, failed = breaker.calls + successes + failures, breaker.failures + failures
    if policy.trips(calls, failed):
        return Breaker(OPEN, changed_at=now, window_start=now, calls=calls, failures=failed)
    return replace(breaker, calls=calls, failures=failed)


def take_probe(breaker: Breaker, policy: BreakerPolicy, now: float) -> Breaker | None:
    """The breaker with one more probe slot handed out at ``now``, or None when no probe may go now."""
    if breaker.state == CLOSED:
        return None
    stale = now >= breaker.open_until(policy)
    if breaker.state == OPEN:
        return Breaker(HALF_OPEN, changed_at=now, window_start=breaker.window_start, probes=1) if stale else None
    if stale:  # slots handed out long ago and never reported: hand them out again
        return replace(breaker, changed_at=now, probes=1, probe_successes=0)
    if breaker.probes < policy.half_open_probes:
        return replace(breaker, probes=breaker.probes + 1)
    return None
