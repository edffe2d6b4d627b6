"""The payment status only moves forward."""

from __future__ import annotations

import pytest

from ledgerlink.model import PaymentStatus, StaleTransition, advance, can_move

S = PaymentStatus


def test_late_events_cannot_move_a_payment_back() -> None:
    assert can_move(None, S.CAPTURED)
    assert can_move(S.AUTHORIZED, S.CAPTURED)
    assert can_move(S.PENDING_REVIEW, S.AUTHORIZED)
    assert not can_move(S.CAPTURED, S.AUTHORIZED)
    assert not can_move(S.DECLINED, S.AUTHORIZED)
    with pytest.raises(StaleTransition):
        advance(S.CAPTURED, S.PENDING_REVIEW)


def test_staying_put_is_always_allowed() -> None:
    for status in S:
        assert can_move(status, status)
