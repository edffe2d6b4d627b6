"""The canonical payment status and its forward-only transition table.

Every gateway maps its own statuses onto this enum; every back office maps this
enum onto its own document statuses (through the integration file). A payment
only ever moves forward: an event that would move it back is stale and is
skipped, which is what makes out-of-order delivery safe.
"""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    SETTLED = "settled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    DECLINED = "declined"
    DISPUTED = "disputed"
    CHARGEBACK_LOST = "chargeback_lost"


_S = PaymentStatus

# status -> statuses it may move to. Staying put is always allowed (idempotent re-delivery,
# a second partial capture or refund).
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    _S.PENDING_REVIEW: frozenset({_S.AUTHORIZED, _S.CAPTURED, _S.SETTLED, _S.DECLINED, _S.VOIDED}),
    _S.AUTHORIZED: frozenset({_S.PENDING_REVIEW, _S.CAPTURED, _S.SETTLED, _S.VOIDED}),
    _S.CAPTURED: frozenset({_S.SETTLED, _S.PARTIALLY_REFUNDED, _S.REFUNDED, _S.VOIDED, _S.DISPUTED}),
    _S.SETTLED: frozenset({_S.PARTIALLY_REFUNDED, _S.REFUNDED, _S.DISPUTED}),
    _S.PARTIALLY_REFUNDED: frozenset({_S.REFUNDED, _S.DISPUTED}),
    _S.REFUNDED: frozenset({_S.DISPUTED}),
    _S.DISPUTED: frozenset({_S.SETTLED, _S.CHARGEBACK_LOST}),
    _S.CHARGEBACK_LOST: frozenset(),
    _S.VOIDED: frozenset(),
    _S.DECLINED: frozenset(),
}


class StaleTransition(ValueError):
    """An event that would move a payment backwards (it arrived late)."""


def can_move(current: PaymentStatus | None, target: PaymentStatus) -> bool:
    """True when a payment in ``current`` (None: not seen yet) may move to ``target``."""
    return current is None or current == target or target in TRANSITIONS[current]


def advance(current: PaymentStatus | None, target: PaymentStatus) -> PaymentStatus:
    if not can_move(current, target):
        raise StaleTransition(f"payment is {current}; an event for {target} cannot move it back")
    return target


class OrderStatus(StrEnum):
    """What a back-office sales order says about its payment (mapped per back office)."""

    OPEN = "open"
    PAID = "paid"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
