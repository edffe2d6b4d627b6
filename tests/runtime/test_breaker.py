"""The circuit breaker's state machine, by example and by property."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerlink.runtime.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerPolicy, apply, take_probe

POLICY = BreakerPolicy(failure_ratio=0.5, min_calls=4, window_seconds=10.0, open_seconds=5.0, half_open_probes=2)


def test_opens_at_the_ratio_once_the_window_has_enough_calls() -> None:
    b = apply(Breaker(window_start=0.0), POLICY, 1.0, failures=3)
    assert b.state == CLOSED  # 3 calls: too few to judge
    b = apply(b, POLICY, 2.0, successes=1)
    assert b.state == OPEN and b.changed_at == 2.0  # 3 of 4 failed
    closed = apply(Breaker(window_start=0.0), POLICY, 1.0, successes=3, failures=2)
    assert closed.state == CLOSED  # 2 of 5 is under half


def test_a_new_window_forgets_old_failures() -> None:
    b = apply(Breaker(window_start=0.0), POLICY, 1.0, failures=3)
    b = apply(b, POLICY, 11.0, failures=1)
    assert b.state == CLOSED and (b.calls, b.failures, b.window_start) == (1, 1, 11.0)


def test_open_then_probes_then_closed() -> None:
    b = apply(Breaker(window_start=0.0), POLICY, 1.0, failures=4)
    assert take_probe(b, POLICY, 5.9) is None  # still open
    first = take_probe(b, POLICY, 6.0)
    assert first is not None and first.state == HALF_OPEN and first.probes == 1
    second = take_probe(first, POLICY, 6.1)
    assert second is not None and second.probes == 2
    assert take_probe(second, POLICY, 6.2) is None  # both probes are out
    half = apply(second, POLICY, 6.3, probe_successes=1)
    assert half.state == HALF_OPEN
    assert apply(half, POLICY, 6.4, probe_successes=1).state == CLOSED


def test_a_failed_probe_opens_it_again() -> None:
    half = take_probe(Breaker(OPEN, changed_at=0.0), POLICY, 5.0)
    assert half is not None
    again = apply(half, POLICY, 5.5, probe_failures=1)
    assert again.state == OPEN and again.changed_at == 5.5
    assert take_probe(again, POLICY, 10.0) is None and take_probe(again, POLICY, 10.5) is not None


def test_probe_slots_nobody_reported_are_handed_out_again() -> None:
    half = Breaker(HALF_OPEN, changed_at=10.0, probes=2)
    assert take_probe(half, POLICY, 14.0) is None
    renewed = take_probe(half, POLICY, 15.0)
    assert renewed is not None and renewed.probes == 1 and renewed.changed_at == 15.0


def test_outcomes_out_of_their_state_are_ignored() -> None:
    opened = Breaker(OPEN, changed_at=1.0)
    assert apply(opened, POLICY, 2.0, successes=5, failures=5, probe_successes=3) == opened
    closed = Breaker(window_start=0.0)
    assert apply(closed, POLICY, 1.0, probe_failures=1) == closed


step = st.one_of(
    st.tuples(st.just("calls"), st.integers(0, 6), st.integers(0, 6)),
    st.tuples(st.just("probe"), st.just(0), st.just(0)),
    st.tuples(st.just("probe_result"), st.booleans(), st.just(0)),
    st.tuples(st.just("wait"), st.floats(0.0, 12.0), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=60))
def test_properties(steps: list[tuple[str, object, object]]) -> None:
    """Whatever happens: it opens only on enough failing calls, an open breaker lets nothing out until its time,
    half-open lets at most ``half_open_probes`` out (per renewal), and probe results decide."""
    now = 0.0
    b = Breaker(window_start=now)
    for kind, a, c in steps:
        before = b
        if kind == "wait":
            now += float(a)  # type: ignore[arg-type]
            continue
        if kind == "calls":
            b = apply(b, POLICY, now, successes=int(a), failures=int(c))  # type: ignore[call-overload]
            if before.state == CLOSED and b.state == OPEN:
                assert POLICY.trips(b.calls, b.failures) and b.calls >= POLICY.min_calls
            if before.state != CLOSED:
                assert b == before
        elif kind == "probe":
            taken = take_probe(b, POLICY, now)
            if before.state == CLOSED or (before.state == OPEN and now < before.open_until(POLICY)):
                assert taken is None
            elif taken is not None:
                assert taken.state == HALF_OPEN and 1 <= taken.probes <= POLICY.half_open_probes
                b = taken
        else:
            succeeded = bool(a)
            b = apply(b, POLICY, now, probe_successes=int(succeeded), probe_failures=int(not succeeded))
            if before.state == HALF_OPEN:
                if not succeeded:
                    assert b.state == OPEN and b.changed_at == now
                elif before.probe_successes + 1 >= POLICY.half_open_probes:
                    assert b.state == CLOSED and b.calls == 0
                else:
                    assert b.state == HALF_OPEN
            else:
                assert b == before
        assert b.state in (CLOSED, OPEN, HALF_OPEN)
        assert b.probes <= POLICY.half_open_probes
