"""The contract every ``PaymentGateway`` must keep, checked against its sandbox.

A connector's tests subclass ``PaymentGatewayContract`` and provide one
fixture, ``harness``, returning a ``GatewayHarness``: the gateway wired to its
sandbox, a token the sandbox accepts, the amounts that make it approve, decline
or send to review, and (for gateways that push events) a way to collect the
webhooks the sandbox delivered. Each ``check_*`` function is plain async code,
so a flow test or a benchmark can call one on its own.

What the checks pin down is what flows rely on, whatever the gateway:
declines and reviews are results, not exceptions; an approved authorisation can
be read back unchanged, captured, reversed, and a sale voided, each giving a
canonical payment of the right kind and status; a sale can be refunded in full
or in parts but never beyond what was captured, and a refund can be found again
by our reference after a crash; every state change arrives as a webhook that
verifies, parses to the right canonical event, and names the payment; forged,
stale and replayed webhooks are refused. With the optional sandbox hooks
(closing a day, chargebacks, breaking a report), a settled day's batches hold
exactly the day's captures and refunds and add up, disputes come back stage by
stage, and a report that cannot be read is refused naming its line and column.
"""

from __future__ import annotations

import time
import unittest
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from ledgerlink.connectors.kit.errors import ConnectorError, WebhookRejected
from ledgerlink.connectors.kit.protocols import PaymentGateway
from ledgerlink.model import (
    AuthorizationRequest,
    DisputeStage,
    EventType,
    InvalidInput,
    Money,
    Payment,
    PaymentEvent,
    PaymentKind,
    PaymentStatus,
    PaymentToken,
    SettlementLine,
    SettlementLineKind,
)

# The ways a sandbox must be able to break a settlement report (``GatewayHarness.malform_report``).
MALFORMATIONS = ("truncate", "drop_column", "garble_amount", "repeat_line")


@dataclass(frozen=True)
class WebhookDelivery:
    headers: Mapping[str, str]  # lower-case names, as the service hands them to ``verify_webhook``
    body: bytes


@dataclass
class GatewayHarness:
    gateway: PaymentGateway
    token: PaymentToken
    approve_amount: Money
    decline_amount: Money
    review_amount: Money
    # Waits until the sandbox has delivered everything so far; returns the deliveries since the last call.
    # None for a gateway that sends no webhooks: the webhook checks are then skipped.
    drain_webhooks: Callable[[], Awaitable[list[WebhookDelivery]]] | None = None
    webhook_tolerance_seconds: float = 300.0
    # Sandbox hooks; None skips the checks that need them.
    # Close the gateway's batch for the sandbox's current day (settling what was captured and refunded so far);
    # returns that day.
    close_day: Callable[[], Awaitable[date]] | None = None
    # Open a chargeback for ``amount`` on a settled transaction; returns its dispute id.
    open_dispute: Callable[[str, Money], Awaitable[str]] | None = None
    # Resolve a chargeback: won (True) or lost (False).
    resolve_dispute: Callable[[str, bool], Awaitable[None]] | None = None
    # Break every settlement report from now on in one of ``MALFORMATIONS`` (None: stop breaking them).
    malform_report: Callable[[str | None], Awaitable[None]] | None = None
    references: list[str] = field(default_factory=list)

    def reference(self) -> str:
        ref = f"CONTRACT-{uuid.uuid4().hex[:12]}"
        self.references.append(ref)
        return ref

    @staticmethod
    def refund_reference() -> str:
        return f"CONTRACT-REFUND-{uuid.uuid4().hex[:12]}"

    async def refund(self, payment: Payment, amount: Money | None = None, *, reference: str | None = None) -> Payment:
        return await self.gateway.refund(payment.id, amount or payment.amount,
                                         reference=reference or self.refund_reference(),
                                         order_reference=payment.order_reference)

    async def authorize(self, amount: Money | None = None, *, capture: bool = False) -> Payment:
        return await self.gateway.authorize(AuthorizationRequest(
            amount=amount or self.approve_amount, order_reference=self.reference(), capture=capture,
            token=self.token,
        ))


def _fail(message: str) -> AssertionError:
    return AssertionError(f"PaymentGateway contract: {message}")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _fail(message)


# --- payments --------------------------------------------------------------------------------


async def check_authorize_auth_only(h: GatewayHarness) -> Payment:
    payment = await h.authorize()
    _expect(payment.gateway == h.gateway.name, f"payment.gateway is {payment.gateway!r}, not {h.gateway.name!r}")
    _expect(bool(payment.id), "an authorisation has an id")
    _expect(payment.kind is PaymentKind.AUTHORIZATION, f"auth-only kind is {payment.kind}")
    _expect(payment.status is PaymentStatus.AUTHORIZED, f"approved auth status is {payment.status}")
    _expect(payment.amount == h.approve_amount, f"authorised {payment.amount}, asked {h.approve_amount}")
    _expect(payment.order_reference == h.references[-1], "the order reference comes back")
    return payment


async def check_authorize_sale(h: GatewayHarness) -> Payment:
    payment = await h.authorize(capture=True)
    _expect(payment.kind is PaymentKind.SALE, f"sale kind is {payment.kind}")
    _expect(payment.status is PaymentStatus.CAPTURED, f"approved sale status is {payment.status}")
    _expect(payment.amount == h.approve_amount, f"sale amount {payment.amount}, asked {h.approve_amount}")
    return payment


async def check_get_payment_round_trip(h: GatewayHarness) -> None:
    created = await h.authorize()
    fetched = await h.gateway.get_payment(created.id)
    for name in ("id", "kind", "status", "amount", "order_reference"):
        _expect(getattr(fetched, name) == getattr(created, name),
                f"get_payment {name} {getattr(fetched, name)!r} differs from authorize's {getattr(created, name)!r}")


async def check_capture(h: GatewayHarness) -> Payment:
    auth = await h.authorize()
    capture = await h.gateway.capture(auth.id, h.approve_amount, order_reference=auth.order_reference)
    _expect(capture.kind is PaymentKind.CAPTURE, f"capture kind is {capture.kind}")
    _expect(capture.status is PaymentStatus.CAPTURED, f"capture status is {capture.status}")
    _expect(capture.amount == h.approve_amount, f"captured {capture.amount}, asked {h.approve_amount}")
    _expect(capture.chain_id == auth.id or capture.parent_id == auth.id, "a capture links to its authorisation")
    return capture


async def check_capture_beyond_authorized_is_refused(h: GatewayHarness) -> None:
    auth = await h.authorize()
    too_much = h.approve_amount + Money.of(1, h.approve_amount.currency)
    try:
        await h.gateway.capture(auth.id, too_much)
    except ConnectorError as exc:
        _expect(not exc.retryable, "capturing more than authorised is a permanent refusal, not a retry")
        return
    raise _fail("capturing more than was authorised must be refused")


async def check_void(h: GatewayHarness) -> Payment:
    sale = await h.authorize(capture=True)
    void = await h.gateway.void(sale.id, order_reference=sale.order_reference)
    _expect(void.kind is PaymentKind.VOID, f"void kind is {void.kind}")
    _expect(void.status is PaymentStatus.VOIDED, f"void status is {void.status}")
    return void


async def check_reversal(h: GatewayHarness) -> Payment:
    auth = await h.authorize()
    reversal = await h.gateway.reverse(auth.id, h.approve_amount, reason="contract", order_reference=auth.order_reference)
    _expect(reversal.kind is PaymentKind.REVERSAL, f"reversal kind is {reversal.kind}")
    _expect(reversal.status is PaymentStatus.VOIDED, f"reversal status is {reversal.status}")
    return reversal


async def check_decline_is_a_result(h: GatewayHarness) -> Payment:
    payment = await h.authorize(h.decline_amount)  # must not raise
    _expect(payment.status is PaymentStatus.DECLINED, f"declined auth status is {payment.status}")
    _expect(bool(payment.decline_reason), "a decline carries the gateway's reason")
    return payment


async def check_review_is_a_result(h: GatewayHarness) -> Payment:
    payment = await h.authorize(h.review_amount)
    _expect(payment.status is PaymentStatus.PENDING_REVIEW, f"auth in review has status {payment.status}")
    _expect(payment.risk is not None and payment.risk.decision == "review", "a review carries the risk verdict")
    return payment


# --- refunds ---------------------------------------------------------------------------------


def _expect_refund(refund: Payment, of: Payment, amount: Money) -> None:
    _expect(refund.kind is PaymentKind.REFUND, f"refund kind is {refund.kind}")
    _expect(refund.status is PaymentStatus.REFUNDED, f"accepted refund status is {refund.status}")
    _expect(refund.amount == amount, f"refunded {refund.amount}, asked {amount}")
    _expect(refund.parent_id == of.id, f"a refund names the payment it refunds ({refund.parent_id!r}, not {of.id!r})")
    _expect(bool(refund.id) and refund.id != of.id, "a refund is a transaction of its own")


async def check_refund_full(h: GatewayHarness) -> Payment:
    sale = await h.authorize(capture=True)
    refund = await h.refund(sale)
    _expect_refund(refund, sale, sale.amount)
    return refund


async def check_refund_partial_several_then_no_more(h: GatewayHarness) -> list[Payment]:
    sale = await h.authorize(capture=True)
    parts = sale.amount.allocate([1, 1, 2])
    refunds = []
    for part in parts:
        refund = await h.refund(sale, part)
        _expect_refund(refund, sale, part)
        refunds.append(refund)
    _expect(len({r.id for r in refunds}) == len(parts), "each partial refund is its own transaction")
    one_unit = Money.from_minor_units(1, sale.amount.currency)
    await _expect_refused(h.refund(sale, one_unit), "refunding past what was captured (after partial refunds)")
    return refunds


async def check_over_refund_refused(h: GatewayHarness) -> None:
    sale = await h.authorize(capture=True)
    too_much = sale.amount + Money.from_minor_units(1, sale.amount.currency)
    await _expect_refused(h.refund(sale, too_much), "refunding more than was captured")


async def _expect_refused(call: Awaitable[Payment], what: str) -> None:
    try:
        await call
    except ConnectorError as exc:
        _expect(not exc.retryable, f"{what} is a permanent refusal, not a retry")
        _expect(exc.status == 400, f"{what} is refused with HTTP 400, not {exc.status}")
        return
    raise _fail(f"{what} must be refused")


async def check_find_refund(h: GatewayHarness) -> Payment:
    sale = await h.authorize(capture=True)
    reference = h.refund_reference()
    half = sale.amount.allocate([1, 1])[0]
    refund = await h.refund(sale, half, reference=reference)
    found = await h.gateway.find_refund(reference)
    _expect(found is not None, "find_refund finds a refund by the reference it was made with")
    assert found is not None
    for name in ("id", "kind", "amount", "status"):
        _expect(getattr(found, name) == getattr(refund, name),
                f"find_refund {name} {getattr(found, name)!r} differs from refund's {getattr(refund, name)!r}")
    _expect(await h.gateway.find_refund(h.refund_reference()) is None, "an unknown reference finds nothing")
    return found


# --- settlement and disputes -----------------------------------------------------------------


def _needs(h: GatewayHarness, *hooks: str) -> None:
    missing = [name for name in hooks if getattr(h, name) is None]
    if missing:
        raise unittest.SkipTest(f"{h.gateway.name}'s harness has no {', '.join(missing)}")


async def check_settlement_of_a_day(h: GatewayHarness) -> None:
    """Every capture and refund of the day appears once, in the right direction; every batch adds up."""
    assert h.close_day is not None
    sale = await h.authorize(capture=True)
    auth = await h.authorize()
    capture = await h.gateway.capture(auth.id, auth.amount, order_reference=auth.order_reference)
    refund = await h.refund(sale, sale.amount.allocate([1, 3])[0])
    expected = {sale.id: (SettlementLineKind.CAPTURE, sale.amount),
                capture.id: (SettlementLineKind.CAPTURE, capture.amount),
                refund.id: (SettlementLineKind.REFUND, refund.amount)}
    day = await h.close_day()
    settlement = await h.gateway.settlement(day)
    _expect(settlement.day == day and settlement.gateway == h.gateway.name, "the settlement is the day's")
    frame = await h.gateway.settlement_frame(day)  # the same day as columns (what reconciliation reads)
    _expect(frame.to_settlement() == settlement, "settlement_frame(day) is settlement(day) in columns")
    found: dict[str, list[SettlementLine]] = {}
    for batch in settlement.batches:
        _expect(batch.deposit == batch.net, f"batch {batch.batch_id}: deposit {batch.deposit} is not its net")
        for line in batch.lines:
            _expect(line.amount.currency == batch.currency, f"line {line.transaction_id} is in the batch currency")
            _expect(line.amount.is_positive(), f"line {line.transaction_id} amount is positive")
            if line.transaction_id in expected:
                found.setdefault(line.transaction_id, []).append(line)
    for transaction_id, (kind, amount) in expected.items():
        lines = found.get(transaction_id, [])
        _expect(len(lines) == 1, f"{transaction_id} settled {len(lines)} times, not once")
        _expect((lines[0].kind, lines[0].amount) == (kind, amount),
                f"{transaction_id} settled as {lines[0].kind} {lines[0].amount}, not {kind} {amount}")


async def check_disputes_by_stage(h: GatewayHarness) -> None:
    """A chargeback comes back opened, then won or lost, each stage a record under one dispute id."""
    assert h.close_day is not None and h.open_dispute is not None and h.resolve_dispute is not None
    won_sale, lost_sale = await h.authorize(capture=True), await h.authorize(capture=True)
    await h.close_day()
    start = datetime.now(UTC) - timedelta(days=2)
    won = await h.open_dispute(won_sale.id, won_sale.amount)
    lost = await h.open_dispute(lost_sale.id, lost_sale.amount.allocate([1, 1])[0])
    await h.resolve_dispute(won, True)
    await h.resolve_dispute(lost, False)
    disputes = await h.gateway.disputes(start, datetime.now(UTC) + timedelta(days=2))
    for dispute_id, sale, outcome in ((won, won_sale, DisputeStage.WON), (lost, lost_sale, DisputeStage.LOST)):
        stages = [d for d in disputes if d.dispute_id == dispute_id]
        _expect([d.stage for d in stages] == [DisputeStage.OPENED, outcome],
                f"dispute {dispute_id} stages are {[d.stage.value for d in stages]}, not opened then {outcome.value}")
        _expect(all(d.transaction_id == sale.id for d in stages), f"dispute {dispute_id} names its transaction")
        _expect(all(d.amount.currency == sale.amount.currency and d.amount <= sale.amount for d in stages),
                f"dispute {dispute_id} is for at most the settled amount")


async def check_malformed_reports_refused(h: GatewayHarness) -> None:
    """A settlement report that cannot be read is an ``InvalidInput`` naming its line and column."""
    assert h.close_day is not None and h.malform_report is not None
    await h.authorize(capture=True)
    await h.authorize(capture=True)
    day = await h.close_day()
    try:
        for malformation in MALFORMATIONS:
            await h.malform_report(malformation)
            try:
                await h.gateway.settlement(day)
            except InvalidInput as exc:
                _expect(any("line" in i.field and "column" in i.field for i in exc.issues),
                        f"{malformation}: the error names a line and a column ({exc})")
            else:
                raise _fail(f"a report with {malformation} must be refused")
    finally:
        await h.malform_report(None)
    await h.gateway.settlement(day)  # and the same day reads again once the report is whole


# --- webhooks --------------------------------------------------------------------------------


async def _deliveries(h: GatewayHarness) -> list[WebhookDelivery]:
    assert h.drain_webhooks is not None
    return await h.drain_webhooks()


def _events(h: GatewayHarness, deliveries: list[WebhookDelivery]) -> list[PaymentEvent]:
    events = []
    for delivery in deliveries:
        h.gateway.verify_webhook(delivery.headers, delivery.body)
        events.append(h.gateway.parse_webhook(delivery.headers, delivery.body))
    return events


async def check_webhooks_for_each_event_type(h: GatewayHarness) -> None:
    await _deliveries(h)  # forget anything earlier checks left behind
    auth = await h.authorize()
    capture = await h.gateway.capture(auth.id, h.approve_amount)
    sale = await h.authorize(capture=True)
    void = await h.gateway.void(sale.id)
    held = await h.authorize()
    reversal = await h.gateway.reverse(held.id, h.approve_amount)
    decline = await h.authorize(h.decline_amount)
    review = await h.authorize(h.review_amount)
    refunded = await h.authorize(capture=True)
    refund = await h.refund(refunded)
    expected = {
        auth.id: EventType.PAYMENT, capture.id: EventType.CAPTURE, sale.id: EventType.PAYMENT,
        void.id: EventType.VOID, held.id: EventType.PAYMENT, reversal.id: EventType.REVERSAL,
        decline.id: EventType.DECLINE, review.id: EventType.REVIEW, refund.id: EventType.REFUND,
    }
    seen: dict[str, set[EventType]] = {}
    for event in _events(h, await _deliveries(h)):
        _expect(event.source == h.gateway.name, f"event source {event.source!r}")
        _expect(bool(event.event_id) and bool(event.partition_key), "an event has an id and a partition key")
        if event.payment is not None:
            _expect(event.payment.id == event.payment_id, "an event's payment is the one it names")
        seen.setdefault(event.payment_id, set()).add(event.event_type)
    for payment_id, event_type in expected.items():
        _expect(event_type in seen.get(payment_id, set()),
                f"no {event_type.value} webhook for {payment_id} (saw {sorted(seen.get(payment_id, set()))})")


async def check_transaction_events_name_the_webhooks(h: GatewayHarness) -> None:
    """What the gap sweep relies on: listing a window's transactions gives, for each payment webhook, an event
    with that webhook's event id (so a stored sweep event and the late webhook are one inbox row)."""
    await _deliveries(h)
    start = datetime.now(UTC) - timedelta(seconds=2)
    auth = await h.authorize()
    await h.gateway.capture(auth.id, h.approve_amount)
    await h.authorize(capture=True)
    await h.authorize(h.decline_amount)
    webhooks = {e.event_id: e for e in _events(h, await _deliveries(h))
                if e.event_type in (EventType.PAYMENT, EventType.CAPTURE, EventType.DECLINE)}
    _expect(len(webhooks) >= 4, f"four payment webhooks expected, saw {sorted(webhooks)}")
    listed = {e.event_id: e for e in await h.gateway.transaction_events(start, datetime.now(UTC) + timedelta(seconds=2))}
    for event_id, webhook in webhooks.items():
        _expect(event_id in listed, f"transaction_events has no event {event_id} (listed {sorted(listed)})")
        _expect(listed[event_id].payment_id == webhook.payment_id, f"{event_id} names another payment")
        _expect(listed[event_id].event_type is webhook.event_type, f"{event_id} is another type of event")
    _expect(await h.gateway.transaction_events(start - timedelta(hours=2), start - timedelta(hours=1)) == [],
            "a window before these payments lists none of them")


async def _fresh_delivery(h: GatewayHarness) -> WebhookDelivery:
    await _deliveries(h)
    await h.authorize()
    deliveries = await _deliveries(h)
    _expect(bool(deliveries), "an authorisation produces a webhook")
    return deliveries[0]


def _refused(h: GatewayHarness, delivery: WebhookDelivery, now: float | None = None) -> bool:
    try:
        h.gateway.verify_webhook(delivery.headers, delivery.body, now=now)
    except WebhookRejected:
        return True
    return False


async def check_forged_webhook_refused(h: GatewayHarness) -> None:
    delivery = await _fresh_delivery(h)
    # Point the event at another payment: the one alteration every signature scheme must cover.
    payment_id = h.gateway.parse_webhook(delivery.headers, delivery.body).payment_id
    other = payment_id[:-1] + ("1" if payment_id[-1:] != "1" else "2")
    body = delivery.body.replace(payment_id.encode(), other.encode())
    _expect(body != delivery.body, "the webhook body names its payment")
    _expect(_refused(h, WebhookDelivery(delivery.headers, body)), "a webhook with an altered body is refused")
    _expect(_refused(h, WebhookDelivery({}, delivery.body)), "a webhook without a signature is refused")


async def check_stale_webhook_refused(h: GatewayHarness) -> None:
    delivery = await _fresh_delivery(h)
    late = time.time() + h.webhook_tolerance_seconds + 60
    _expect(_refused(h, delivery, now=late), "a webhook older than the tolerance is refused")
    early = time.time() - h.webhook_tolerance_seconds - 60
    _expect(_refused(h, delivery, now=early), "a webhook from the future is refused")


async def check_replayed_webhook_refused(h: GatewayHarness) -> None:
    delivery = await _fresh_delivery(h)
    h.gateway.verify_webhook(delivery.headers, delivery.body)
    _expect(_refused(h, delivery), "the second delivery of the same signed bytes is refused as a replay")


PAYMENT_CHECKS = (
    check_authorize_auth_only, check_authorize_sale, check_get_payment_round_trip, check_capture,
    check_capture_beyond_authorized_is_refused, check_void, check_reversal, check_decline_is_a_result,
    check_review_is_a_result, check_refund_full, check_refund_partial_several_then_no_more,
    check_over_refund_refused, check_find_refund,
)
SETTLEMENT_CHECKS = (check_settlement_of_a_day, check_disputes_by_stage, check_malformed_reports_refused)
WEBHOOK_CHECKS = (
    check_webhooks_for_each_event_type, check_forged_webhook_refused, check_stale_webhook_refused,
    check_replayed_webhook_refused, check_transaction_events_name_the_webhooks,
)


def _needs_webhooks(h: GatewayHarness) -> None:
    if h.drain_webhooks is None:
        raise unittest.SkipTest(f"{h.gateway.name} sends no webhooks")  # pytest reports it as skipped


class PaymentGatewayContract:
    """Subclass as ``Test<Gateway>Contract`` and define an (async) ``harness`` fixture."""

    async def test_authorize_auth_only(self, harness: GatewayHarness) -> None:
        await check_authorize_auth_only(harness)

    async def test_authorize_sale(self, harness: GatewayHarness) -> None:
        await check_authorize_sale(harness)

    async def test_get_payment_round_trip(self, harness: GatewayHarness) -> None:
        await check_get_payment_round_trip(harness)

    async def test_capture(self, harness: GatewayHarness) -> None:
        await check_capture(harness)

    async def test_capture_beyond_authorized_is_refused(self, harness: GatewayHarness) -> None:
        await check_capture_beyond_authorized_is_refused(harness)

    async def test_void(self, harness: GatewayHarness) -> None:
        await check_void(harness)

    async def test_reversal(self, harness: GatewayHarness) -> None:
        await check_reversal(harness)

    async def test_decline_is_a_result(self, harness: GatewayHarness) -> None:
        await check_decline_is_a_result(harness)

    async def test_review_is_a_result(self, harness: GatewayHarness) -> None:
        await check_review_is_a_result(harness)

    async def test_refund_full(self, harness: GatewayHarness) -> None:
        await check_refund_full(harness)

    async def test_refund_partial_several_then_no_more(self, harness: GatewayHarness) -> None:
        await check_refund_partial_several_then_no_more(harness)

    async def test_over_refund_refused(self, harness: GatewayHarness) -> None:
        await check_over_refund_refused(harness)

    async def test_find_refund(self, harness: GatewayHarness) -> None:
        await check_find_refund(harness)

    async def test_settlement_of_a_day(self, harness: GatewayHarness) -> None:
        _needs(harness, "close_day")
        await check_settlement_of_a_day(harness)

    async def test_disputes_by_stage(self, harness: GatewayHarness) -> None:
        _needs(harness, "close_day", "open_dispute", "resolve_dispute")
        await check_disputes_by_stage(harness)

    async def test_malformed_reports_refused(self, harness: GatewayHarness) -> None:
        _needs(harness, "close_day", "malform_report")
        await check_malformed_reports_refused(harness)

    async def test_webhooks_for_each_event_type(self, harness: GatewayHarness) -> None:
        _needs_webhooks(harness)
        await check_webhooks_for_each_event_type(harness)

    async def test_forged_webhook_refused(self, harness: GatewayHarness) -> None:
        _needs_webhooks(harness)
        await check_forged_webhook_refused(harness)

    async def test_stale_webhook_refused(self, harness: GatewayHarness) -> None:
        _needs_webhooks(harness)
        await check_stale_webhook_refused(harness)

    async def test_replayed_webhook_refused(self, harness: GatewayHarness) -> None:
        _needs_webhooks(harness)
        await check_replayed_webhook_refused(harness)

    async def test_transaction_events_name_the_webhooks(self, harness: GatewayHarness) -> None:
        _needs_webhooks(harness)
        await check_transaction_events_name_the_webhooks(harness)
