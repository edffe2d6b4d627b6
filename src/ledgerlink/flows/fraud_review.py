"""Fraud review: every authorisation scored, payments held for review decided by a person.

Written once against ``PaymentGateway`` and ``BackOffice``, on top of order to cash:

1. Every authorisation or sale the gateway reports is posted as order to cash posts it (a payment
   in review: the order On Hold), then scored by the risk model (``ledgerlink.risk``) against the
   customer's earlier payments. The score is kept once per payment (``RiskLedger``).
2. A payment in review opens a review case (``ReviewQueue``): the fraud screen's reason codes in
   plain words, its rules and score, and our score with the features that raised it most. The
   queue is ordered by our score.
3. A reviewer decides, either here (admin API or CLI: ``request_decision`` closes the case, audits
   it and queues the decision as an event of the order, all in one transaction) or in the
   gateway's own case management (a decision webhook closes the case and audits it).
4. Applying a decision, in order with the order's other events: accept -> the gateway captures
   (told through its case action, or by us), the hold is released and the capture posted;
   reject -> the authorisation is reversed and the order cancelled. The gateway step is keyed
   per payment and decision and looked up after a crash (``review_outcome``), so nothing is
   captured or reversed twice, whichever way the decision came and however often it is told.

A decision for a case that is already closed is refused with who closed it and how (never a
silent drop), and changes nothing; a gateway decision that contradicts ours is dead-lettered.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledgerlink.connectors.kit.protocols import PaymentGateway
from ledgerlink.flows.context import FlowContext, Ignored, InboundMessage, OutboundEvent
from ledgerlink.flows.order_state import OrderState
from ledgerlink.flows.order_to_cash import OrderToCash
from ledgerlink.flows.ports import ReviewQueue, RiskLedger, UnknownCase
from ledgerlink.flows.schedule_fields import TimeZoneName
from ledgerlink.model import (
    CaseClosed,
    EventType,
    FieldIssue,
    InvalidInput,
    OrderStatus,
    Payment,
    PaymentEvent,
    PaymentKind,
    PaymentStatus,
    ReviewCase,
    ReviewDecision,
    ReviewStatus,
    RiskReason,
    RiskScore,
    can_move,
    find_card_numbers,
)
from ledgerlink.risk import CustomerHistory, FeatureSettings, PaymentFacts, RiskModel, default_model, extract

log = logging.getLogger(__name__)

ENGINE = "engine"  # decision source of decisions made through the admin API or the CLI
SYSTEM_ACTOR = "ledgerlink"
SCORED = frozenset({PaymentKind.AUTHORIZATION, PaymentKind.SALE})
MAX_COMMENTS = 1000


def review_source(gateway_name: str) -> str:
    """Inbox source of the decisions made here (one handler per integration)."""
    return f"{gateway_name}.reviews"


def case_key(gateway_name: str, payment_id: str) -> str:
    return f"review:{gateway_name}:{payment_id}"


class FraudReviewSettings(BaseModel):
    """``flows.fraud_review`` in an integration file."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    home_countries: list[str] = Field(default_factory=lambda: ["US"])
    watch_countries: list[str] = Field(default_factory=list)
    timezone: TimeZoneName = "UTC"  # the shop's time zone: the time-of-day feature reads local time
    top_factors: int = Field(3, ge=1, le=10)  # contributions a case shows
    model: str | None = None  # path of another model artifact (JSON); default: the one ledgerlink ships

    @field_validator("home_countries", "watch_countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        cleaned = []
        for code in value:
            text = str(code).strip().upper()
            if len(text) != 2 or not text.isalpha() or not text.isascii():
                raise ValueError(f"{code!r} is not an ISO 3166 alpha-2 country code (e.g. US, GB)")
            cleaned.append(text)
        return cleaned

    @model_validator(mode="after")
    def _model_loads(self) -> FraudReviewSettings:
        if self.model is not None:
            RiskModel.load(Path(self.model))  # RiskModelError (a ValueError) names the file and the problem
        return self

    def feature_settings(self) -> FeatureSettings:
        return FeatureSettings(home_countries=frozenset(self.home_countries),
                               watch_countries=frozenset(self.watch_countries), timezone=self.timezone)

    def risk_model(self) -> RiskModel:
        return RiskModel.load(Path(self.model)) if self.model else default_model()


def customer_key(payment: Payment) -> str | None:
    """Who a payment's history belongs to, as a digest (the email, else the card token): never the email."""
    party = payment.party
    if party is not None and party.email:
        basis = f"email:{party.email.strip().lower()}"
    elif payment.token is not None:
        basis = f"token:{payment.token.gateway}:{payment.token.token_id}"
    else:
        return None
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def payment_facts(payment: Payment, at: datetime) -> PaymentFacts:
    party = payment.party
    address = party.address if party else None
    risk = payment.risk
    return PaymentFacts(
        amount=payment.amount.amount, currency=payment.amount.currency, at=at,
        country=address.country if address else None, email=party.email if party else None,
        first_name=party.first_name if party else None, last_name=party.last_name if party else None,
        reason_codes=risk.reason_codes if risk else (), gateway_score=risk.score if risk else None,
    )


def _customer(payment: Payment) -> str | None:
    party = payment.party
    if party is None:
        return None
    name = " ".join(p for p in (party.first_name, party.last_name) if p) or party.name
    return " ".join(p for p in (name, f"<{party.email}>" if party.email else None) if p) or None


class DecisionRequest(BaseModel):
    """The body of a decision event made here: which case, what, and who asked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case: str
    decision: ReviewDecision
    actor: str
    comments: str | None = None


def check_comments(comments: str | None) -> str | None:
    """A reviewer's comments as stored: trimmed, bounded, never a card number (``InvalidInput`` naming ``comments``)."""
    if comments is None or not comments.strip():
        return None
    text = comments.strip()
    if len(text) > MAX_COMMENTS:
        raise InvalidInput(FieldIssue("comments", f"at most {MAX_COMMENTS} characters"), source="review decision")
    if find_card_numbers(text):
        raise InvalidInput(FieldIssue("comments", "contains a card number; write the last four digits at most"),
                           source="review decision")
    return text


async def request_decision(reviews: ReviewQueue, key: str, decision: ReviewDecision, *, actor: str,
                           comments: str | None = None) -> ReviewCase:
    """Decide an open case here (admin API, CLI): closed, audited and queued to apply, in one transaction.

    ``UnknownCase`` for no such case, ``CaseClosed`` when it is not open, ``InvalidInput`` for bad
    comments; in each of those nothing is written.
    """
    comments = check_comments(comments)
    case = await reviews.get(key)
    if case is None:
        raise UnknownCase(f"no review case {key}")
    if case.status is not ReviewStatus.OPEN:
        raise CaseClosed(case, decision)
    body = DecisionRequest(case=key, decision=decision, actor=actor, comments=comments)
    event = OutboundEvent(source=review_source(case.gateway), event_id=f"review-decision:{key}",
                          event_type=f"review.{decision.value}", partition_key=case.partition_key,
                          body=body.model_dump_json().encode())
    return await reviews.decide(key, decision, actor=actor, source=ENGINE, comments=comments, then=event)


class FraudReview:
    name = "fraud_review"
    HANDLED = frozenset({EventType.PAYMENT, EventType.REVIEW, EventType.REVIEW_DECISION})

    def __init__(self, gateway: PaymentGateway, order_to_cash: OrderToCash, reviews: ReviewQueue,
                 risk: RiskLedger, settings: FraudReviewSettings) -> None:
        self.gateway = gateway
        self.orders = order_to_cash
        self.reviews = reviews
        self.risk = risk
        self.settings = settings
        self.model = settings.risk_model()
        self.features = settings.feature_settings()

    def accepts(self, event: PaymentEvent) -> bool:
        return event.event_type in self.HANDLED

    async def handle(self, event: PaymentEvent, ctx: FlowContext) -> None:
        if event.event_type is EventType.REVIEW_DECISION:
            await self.gateway_decision(event, ctx)
            return
        if not self.accepts(event):
            raise Ignored(f"fraud review does not handle {event.gateway_event_type}")
        payment = event.payment or await self.gateway.get_payment(event.payment_id)
        await self.orders.apply_payment(payment, event.event_id, event.gateway_event_type, ctx)
        if payment.kind not in SCORED:
            return
        score = await self.score(payment, ctx)
        state = OrderState(ctx.state)
        state.chain(payment.chain_id)["risk_score"] = score.score
        if payment.status is PaymentStatus.PENDING_REVIEW and \
                state.chain_status(payment.chain_id) is PaymentStatus.PENDING_REVIEW:
            await self._open_case(payment, score, event, ctx)

    # --- scoring ---------------------------------------------------------------------------------

    async def score(self, payment: Payment, ctx: FlowContext) -> RiskScore:
        """The payment's risk score: the one kept for it, or computed now against the customer's history."""
        gateway = self.gateway.name
        known = await self.risk.recorded(gateway, payment.id)
        if known is not None:
            return known
        at = payment.submitted_at or datetime.fromtimestamp(ctx.now(), UTC)
        key = customer_key(payment)
        history = await self.risk.history(key, before=at, currency=payment.amount.currency, exclude=payment.id) \
            if key else CustomerHistory()
        values = extract(payment_facts(payment, at), history, self.features)
        score = self.model.score(values, top=self.settings.top_factors)
        kept = await self.risk.record(gateway=gateway, payment_id=payment.id, customer_key=key or f"none:{payment.id}",
                                      observed_at=at, amount=payment.amount,
                                      country=payment.party.address.country if payment.party and
                                      payment.party.address else None, score=score)
        if kept == score:
            ctx.count("payments.scored")
        return kept

    # --- cases -----------------------------------------------------------------------------------

    async def _open_case(self, payment: Payment, score: RiskScore, event: PaymentEvent, ctx: FlowContext) -> None:
        risk = payment.risk
        reasons = risk.reasons if risk else ()
        if risk and not reasons:
            reasons = tuple(RiskReason(code=code, description=f"reason code {code}") for code in risk.reason_codes)
        case = ReviewCase(
            key=case_key(self.gateway.name, payment.id), gateway=self.gateway.name, payment_id=payment.id,
            partition_key=f"{self.gateway.name}:{event.partition_key}", order_reference=payment.order_reference,
            amount=payment.amount, customer=_customer(payment), reasons=reasons, rules=risk.rules if risk else (),
            gateway_score=risk.score if risk else None, risk=score,
            opened_at=datetime.fromtimestamp(ctx.now(), UTC),
        )
        if await self.reviews.open(case, actor=SYSTEM_ACTOR):
            ctx.count("reviews.opened")
            log.info("review case %s opened for order %s (score %.3f)", case.key, case.order_reference, score.score)
        ctx.outcome("in_review")

    async def apply_engine_decision(self, request: DecisionRequest, event_id: str, ctx: FlowContext) -> None:
        """Apply a decision made here (the event ``request_decision`` queued)."""
        case = await self.reviews.get(request.case)
        if case is None:
            raise InvalidInput(FieldIssue("case", f"no review case {request.case}"), source="review decision")
        if case.decision is not request.decision:
            raise InvalidInput(FieldIssue("decision", f"review case {case.key} is {case.status.value}, not "
                                                      f"{request.decision.value}"), source="review decision")
        await self._settle(case, request.decision, event_id, ctx, tell_gateway=True, follow_on=None)

    async def gateway_decision(self, event: PaymentEvent, ctx: FlowContext) -> None:
        """A decision made in the gateway's case management: close the case (if still open) and apply it."""
        verdict = event.review
        if verdict is None:
            raise InvalidInput(FieldIssue("payload", "a review decision event carries no decision"),
                               source=event.gateway_event_type)
        gateway = self.gateway.name
        key = case_key(gateway, event.payment_id)
        case = await self.reviews.get(key)
        if case is None:
            raise InvalidInput(FieldIssue("payload.data.id", f"{event.gateway_event_type} for payment "
                                          f"{event.payment_id}: no review case was opened for it (was "
                                          "flows.fraud_review enabled when it was held?)"),
                               source=event.gateway_event_type)
        if case.status is ReviewStatus.OPEN:
            actor = f"{gateway}:{verdict.reviewer}" if verdict.reviewer else gateway
            try:
                case = await self.reviews.decide(key, verdict.decision, actor=actor, source=gateway,
                                                 comments=check_comments(verdict.comments))
            except CaseClosed as exc:  # decided here in the meantime
                case = exc.case
        if case.decision is not verdict.decision:
            raise InvalidInput(FieldIssue(
                "eventType", f"{gateway} reports {verdict.decision.value} for payment {event.payment_id}, but review "
                f"case {key} was {case.status.value} by {case.decided_by}: nothing changed, settle it by hand"),
                source=event.gateway_event_type)
        await self._settle(case, verdict.decision, event.event_id, ctx, tell_gateway=False,
                           follow_on=verdict.follow_on_id)

    # --- applying a decision ---------------------------------------------------------------------

    async def _gateway_step(self, case: ReviewCase, decision: ReviewDecision, *, tell_gateway: bool,
                            follow_on: str | None, ctx: FlowContext) -> str:
        """The capture (accept) or reversal (reject) for the decision, made once; returns its transaction id."""
        gateway = self.gateway
        payment_id = case.payment_id
        accepted = decision is ReviewDecision.ACCEPT

        async def create() -> str:
            made = follow_on
            if made is None and tell_gateway:
                outcome = await gateway.review_outcome(payment_id)
                if outcome is None:
                    outcome = await gateway.decide_review(payment_id, decision, comments=case.comments,
                                                          reviewer=case.decided_by)
                elif outcome.decision is not decision:
                    raise InvalidInput(FieldIssue("decision", f"{gateway.name} already has payment {payment_id} "
                                                              f"{outcome.decision.value}ed; case {case.key} says "
                                                              f"{decision.value}"), source="review decision")
                made = outcome.follow_on_id
            if made is None and accepted:
                made = (await gateway.capture(payment_id, case.amount, order_reference=case.order_reference)).id
            elif made is None:
                made = (await gateway.reverse(payment_id, case.amount, reason="fraud review rejected",
                                              order_reference=case.order_reference)).id
            return made

        async def find() -> str | None:
            outcome = await gateway.review_outcome(payment_id)
            if outcome is None or outcome.decision is not decision:
                return None
            return outcome.follow_on_id

        return await ctx.once(f"{gateway.name}:review:{payment_id}:{decision.value}", create, find,
                              tag=f"reviews.{'accepted' if accepted else 'rejected'}")

    async def _settle(self, case: ReviewCase, decision: ReviewDecision, event_id: str, ctx: FlowContext, *,
                      tell_gateway: bool, follow_on: str | None) -> None:
        follow = await self._gateway_step(case, decision, tell_gateway=tell_gateway, follow_on=follow_on, ctx=ctx)
        state = OrderState(ctx.state)
        order = state.order
        who = case.decided_by or "a reviewer"
        if decision is ReviewDecision.ACCEPT:
            if order is not None and order["status"] == OrderStatus.ON_HOLD.value:
                await self.orders.move_order(order, OrderStatus.OPEN, None, event_id, ctx,
                                             reason=f"Fraud review accepted by {who}")
            captured = await self.gateway.get_payment(follow)
            await self.orders.apply_payment(captured, f"{event_id}:capture", "review.accepted", ctx)
        else:
            if order is not None and order["status"] in (OrderStatus.ON_HOLD.value, OrderStatus.OPEN.value):
                await self.orders.move_order(order, OrderStatus.CANCELLED, None, event_id, ctx,
                                             reason=f"Fraud review rejected by {who}"[:60])
            chain = state.chain(case.payment_id)
            if can_move(state.chain_status(case.payment_id), PaymentStatus.VOIDED):
                chain["status"] = PaymentStatus.VOIDED.value
        await self.reviews.settled(case.key, follow_on_id=follow, actor=SYSTEM_ACTOR)
        ctx.outcome(f"review_{case.status.value}")


class ReviewDecisionEvents:
    """Inbox handler for decisions made here (the body is a ``DecisionRequest``)."""

    def __init__(self, flow: FraudReview) -> None:
        self.flow = flow

    async def __call__(self, message: InboundMessage, ctx: FlowContext) -> None:
        try:
            request = DecisionRequest.model_validate(orjson.loads(message.body))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise InvalidInput(FieldIssue("body", f"not a review decision: {exc}"), source=message.source) from None
        await self.flow.apply_engine_decision(request, message.event_id, ctx)
