"""Subscriptions: on the due date, invoice the period in the back office, charge the stored token, post the
payment against the invoice; a declined renewal goes into dunning (``dunning.py``).

Shape on the runtime:

- A scheduled job (``renew-subscriptions``, cron from the integration file; one runner per tick) lists the
  subscriptions (the back office's recurring invoices and/or the integration file's) and emits one event per
  subscription into that subscription's own partition, ``subscription:<id>``. Everything about one
  subscription therefore runs in order, one event at a time, and its progress (next period, dunning step,
  attempts) is that partition's state, committed with the event.
- The event decides from the state and ``ctx.now()`` (business time, injectable) what is due: a renewal, a
  retry, the end of dunning, or nothing. Every side effect goes through ``ctx.once`` with a business key of
  subscription id + period (+ attempt), so a re-run posts nothing twice; the charge carries that key to the
  gateway, which finds it again after a crash (``find_payment``).
- Before anything is written for a period, the payment method is checked at the gateway: no token, a token
  the gateway does not know, a deleted or expired card -> a case for a person to link a new one (and a notice
  to the customer); nothing is invoiced or charged, and the check runs again on every tick.

Renewal charges are merchant-initiated (``recurring``) sales with the order reference ``<prefix><id>-<date>``;
``RenewalCharges`` keeps their webhooks away from order-to-cash (the flow posted them already).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledgerlink.connectors.kit.protocols import BackOffice, PaymentGateway
from ledgerlink.flows.context import FlowContext, Ignored, InboundMessage, JobCall, OutboundEvent
from ledgerlink.flows.dunning import DAY, DunningSettings, NoticeKind, notice
from ledgerlink.flows.ports import CardRetryLedger, CaseBook, NotificationOutbox
from ledgerlink.flows.schedule_fields import CronExpression, TimeZoneName
from ledgerlink.mappings.spec import MappingSpec
from ledgerlink.model import (
    AuthorizationRequest,
    Case,
    CaseType,
    CashReceipt,
    CreditMemo,
    DeclineCategory,
    DocumentKind,
    EventType,
    ExternalRef,
    GLAccount,
    IntervalUnit,
    MemoLine,
    Money,
    MoneyError,
    Notification,
    Party,
    Payment,
    PaymentEvent,
    PaymentStatus,
    PaymentToken,
    ReceiptKind,
    RenewalInvoice,
    StoredInstrument,
    Subscription,
    SubscriptionStatus,
    TokenState,
)

log = logging.getLogger(__name__)

SOURCE = SUBSCRIPTION_SOURCE = "subscriptions"  # inbox source of the per-subscription events
RENEW_JOB = "renew-subscriptions"
EVENT_TYPE = "subscription.due"
_INTERVAL = re.compile(r"^\s*(?:(\d+)\s+)?(day|week|month|year)s?\s*$", re.IGNORECASE)
_NAMED = {"daily": "1 day", "weekly": "1 week", "monthly": "1 month", "quarterly": "3 months",
          "yearly": "1 year", "annually": "1 year"}


def parse_interval(text: str) -> tuple[IntervalUnit, int]:
    """``"monthly"``, ``"1 month"``, ``"3 months"``, ``"2 weeks"``, ``"yearly"``..."""
    match = _INTERVAL.match(_NAMED.get(text.strip().lower(), text))
    if match is None or (match.group(1) is not None and int(match.group(1)) < 1):
        raise ValueError(f"{text!r} is not an interval (e.g. 'monthly', '1 month', '3 months', '2 weeks', 'yearly')")
    return IntervalUnit(match.group(2).lower()), int(match.group(1) or 1)


class SubscriptionItem(BaseModel):
    """A subscription defined in the integration file (``flows.subscriptions.items[]``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
    customer_id: str = Field(min_length=1, max_length=15, description="the back office's customer id")
    token: str = Field(min_length=1, description="the gateway token to charge (a payment instrument)")
    amount: Decimal
    currency: str
    interval: str = "monthly"
    next_date: date
    description: str = ""
    email: str | None = None
    cycles: int | None = Field(None, ge=1, description="periods to bill (None: until cancelled)")
    status: Literal["active", "suspended", "cancelled"] = "active"

    @field_validator("amount", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError("give the amount as a decimal string (e.g. '29.90'), not a float")
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        parse_interval(value)
        return value

    @model_validator(mode="after")
    def _money(self) -> SubscriptionItem:
        try:
            money = Money.of(self.amount, self.currency)
        except (MoneyError, ValueError) as exc:
            raise ValueError(f"amount/currency: {exc}") from None
        if not money.is_positive():
            raise ValueError("amount: must be positive")
        return self

    def subscription(self, gateway: str) -> Subscription:
        unit, count = parse_interval(self.interval)
        return Subscription(
            id=self.id, source="integration", customer_id=self.customer_id,
            token=PaymentToken(gateway=gateway, token_id=self.token), amount=Money.of(self.amount, self.currency),
            interval_unit=unit, interval_count=count, next_date=self.next_date, description=self.description,
            email=self.email, status=SubscriptionStatus(self.status), remaining_cycles=self.cycles,
        )


class SubscriptionSettings(BaseModel):
    """``flows.subscriptions`` in an integration file."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    cron: CronExpression = "0 * * * *"  # how often due renewals and retries are looked for
    timezone: TimeZoneName = "UTC"  # whose calendar the due dates are in
    source: Literal["back_office", "integration", "both"] = "both"
    items: list[SubscriptionItem] = Field(default_factory=list)
    order_reference_prefix: str = Field("SUB-", min_length=1, max_length=8, pattern=r"^[A-Za-z0-9-]+$")
    dunning: DunningSettings = Field(default_factory=DunningSettings)


    @field_validator("items")
    @classmethod
    def _unique(cls, value: list[SubscriptionItem]) -> list[SubscriptionItem]:
        seen: set[str] = set()
        for index, item in enumerate(value):
            if item.id in seen:
                raise ValueError(f"[{index}].id: {item.id!r} is used by another subscription")
            seen.add(item.id)
        return value


def partition(subscription_id: str) -> str:
    return f"subscription:{subscription_id}"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outcome(payment: Payment) -> str:
    return orjson.dumps({
        "id": payment.id, "status": payment.status.value, "gateway_status": payment.gateway_status,
        "amount": payment.amount.format(), "currency": payment.amount.currency, "reason": payment.decline_reason,
        "message": payment.decline_message,
        "category": payment.decline_category.value if payment.decline_category else None,
    }).decode()


class Subscriptions:
    """The renewal and dunning flow, written once against the seams."""

    name = "subscriptions"

    def __init__(self, gateway: PaymentGateway, back_office: BackOffice, mapping: MappingSpec,
                 settings: SubscriptionSettings, *, cases: CaseBook, outbox: NotificationOutbox,
                 card_retries: CardRetryLedger) -> None:
        self.gateway = gateway
        self.back_office = back_office
        self.settings = settings
        self.dunning = settings.dunning
        self.cases = cases
        self.outbox = outbox
        self.card_retries = card_retries
        self.zone = ZoneInfo(settings.timezone)
        self.deposit: GLAccount | None = mapping.accounts.card_clearing
        self.write_off: GLAccount | None = None
        if self.dunning.end_action.invoice == "write_off":
            self.write_off = mapping.accounts.require(
                "write_off", purpose="flows.subscriptions.dunning.end_action.invoice: write_off")["write_off"]

    # ---- the scheduled tick -------------------------------------------------------------------------------

    async def definitions(self) -> list[Subscription]:
        found: list[Subscription] = []
        if self.settings.source in ("integration", "both"):
            found.extend(item.subscription(self.gateway.name) for item in self.settings.items)
        if self.settings.source in ("back_office", "both"):
            found.extend(await self.back_office.recurring_invoices())
        return found

    async def tick(self, call: JobCall, ctx: FlowContext) -> None:
        """One event per subscription into its own partition; each decides for itself what is due."""
        subscriptions = await self.definitions()
        stamp = _iso(call.tick)
        for sub in subscriptions:
            ctx.emit(OutboundEvent(source=SOURCE, event_id=f"{sub.id}@{stamp}", event_type=EVENT_TYPE,
                                   partition_key=partition(sub.id), body=sub.model_dump_json().encode()))
        ctx.count("subscriptions.checked", len(subscriptions))
        ctx.outcome(f"checked {len(subscriptions)} subscription(s)")

    # ---- one subscription ---------------------------------------------------------------------------------

    async def advance(self, sub: Subscription, ctx: FlowContext) -> None:
        now = ctx.now()
        today = datetime.fromtimestamp(now, self.zone).date()
        st: dict[str, Any] = ctx.state.setdefault("subscription", {"id": sub.id, "status": "active"})
        token = self._token(sub)
        status = st["status"]
        if status == "cancelled":
            ctx.outcome("cancelled")
        elif status in ("dunning", "awaiting_payment_method", "review"):
            await self._collect(sub, st, ctx, token, now, today)
        elif status == "suspended":
            if token is not None and token.token_id != st.get("token"):
                await self._resume(sub, st, ctx, token, now, today)
            else:
                ctx.outcome("suspended")
        elif sub.status is not SubscriptionStatus.ACTIVE:
            ctx.outcome(f"{sub.status.value} at its source")
        else:
            period = self._due_period(sub, st)
            if period is None:
                ctx.outcome("every cycle billed")
            elif period > today:
                ctx.outcome(f"next renewal {period.isoformat()}")
            else:
                await self._renew(sub, st, ctx, token, period, now, today)

    def _token(self, sub: Subscription) -> PaymentToken | None:
        """The definition's token as a token of this pair's gateway (definitions name the token id only)."""
        if sub.token is None:
            return None
        return sub.token.model_copy(update={"gateway": self.gateway.name})

    def _due_period(self, sub: Subscription, st: dict[str, Any]) -> date | None:
        if sub.source == "back_office":  # the back office moves its recurring document on when it invoices
            if sub.remaining_cycles is not None and sub.remaining_cycles <= 0:
                return None
            return sub.next_date
        if sub.remaining_cycles is not None and st.get("billed", 0) >= sub.remaining_cycles:
            return None
        return date.fromisoformat(st["next_due"]) if st.get("next_due") else sub.next_date

    def _pkey(self, sub: Subscription, st: dict[str, Any]) -> str:
        return f"subscription:{sub.id}:{st['period']}"

    def _order_reference(self, sub: Subscription, period: date) -> str:
        tag = sub.ref.id.replace(":", "") if sub.ref is not None else sub.id
        return f"{self.settings.order_reference_prefix}{tag}-{period:%Y%m%d}"[:50]

    # ---- the payment method -------------------------------------------------------------------------------

    async def _method_problem(self, token: PaymentToken | None, today: date) -> tuple[str | None,
                                                                                      StoredInstrument | None]:
        if token is None:
            return "the subscription names no payment token", None
        instrument = await self.gateway.payment_instrument(token.token_id)
        if instrument is None:
            return f"the gateway does not know the payment token {token.token_id}", None
        if instrument.state is TokenState.DELETED:
            return f"the payment token {token.token_id} was deleted at the gateway", instrument
        expiry = instrument.token.expiry
        if instrument.state is TokenState.EXPIRED or (expiry is not None and expiry < today):
            card = f"the card ending {instrument.token.last4}" if instrument.token.last4 else "the card"
            return f"{card} expired at the end of {expiry:%m/%Y}" if expiry else f"{card} has expired", instrument
        return None, instrument

    async def _needs_method(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, problem: str,
                            token: PaymentToken | None, period: date) -> None:
        """A case for a person to link a payment method, and one notice to the customer per period and token."""
        token_id = token.token_id if token else None
        now = datetime.fromtimestamp(ctx.now(), UTC)
        await self.cases.record([Case(
            key=f"subscription:{sub.id}:payment-method", type=CaseType.SUBSCRIPTION,
            summary=f"subscription {sub.id} (customer {sub.customer_id}) cannot be charged: {problem}; "
                    "link a new payment method", amount=sub.amount, reference=sub.id, opened_at=now, updated_at=now,
            evidence={"problem": problem, "token": token_id, "period": period.isoformat(),
                      "customer": sub.customer_id},
            refs=(sub.ref,) if sub.ref else ())])
        st["blocked"] = {"problem": problem, "token": token_id, "period": period.isoformat()}
        await self._notify(sub, ctx, f"subscription:{sub.id}:{period.isoformat()}:notice:method:{token_id}",
                           "payment_method", period=period, problem=problem)
        ctx.count("subscriptions.blocked")
        ctx.outcome("needs a payment method")

    async def _unblock(self, sub: Subscription, st: dict[str, Any]) -> None:
        if st.pop("blocked", None) is not None:
            await self.cases.resolve([f"subscription:{sub.id}:payment-method"], note="a usable payment method")

    # ---- renewal ------------------------------------------------------------------------------------------

    async def _renew(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, token: PaymentToken | None,
                     period: date, now: float, today: date) -> None:
        problem, instrument = await self._method_problem(token, today)
        if problem is not None:
            await self._needs_method(sub, st, ctx, problem, token, period)
            return
        assert token is not None and instrument is not None
        await self._unblock(sub, st)
        st.update(period=period.isoformat(), attempt=0, retries=0, failed_at=None, next_retry_at=None, steps=0,
                  token=token.token_id, card=self._card(instrument), hold=False)
        pkey = self._pkey(sub, st)
        invoice = RenewalInvoice(
            key=f"{pkey}:invoice", subscription_id=sub.id, customer_id=sub.customer_id, amount=sub.amount,
            period=period, invoice_date=datetime.fromtimestamp(now, UTC),
            description=sub.description or f"Subscription {period:%Y-%m}", template=sub.ref)
        st["invoice"] = await ctx.once(
            invoice.key, lambda: self._invoice(invoice),
            lambda: self._find(DocumentKind.INVOICE, invoice.key), tag="subscriptions.invoices")
        await self._charge(sub, st, ctx, token, now)

    async def _invoice(self, invoice: RenewalInvoice) -> str:
        return (await self.back_office.create_renewal_invoice(invoice)).key

    async def _find(self, kind: DocumentKind, key: str) -> str | None:
        ref = await self.back_office.find_document(kind, key)
        return ref.key if ref is not None else None

    @staticmethod
    def _card(instrument: StoredInstrument) -> dict[str, str | None]:
        token = instrument.token
        return {"brand": token.brand, "last4": token.last4,
                "expiry": token.expiry.isoformat() if token.expiry else None}

    async def _charge(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, token: PaymentToken,
                      now: float) -> None:
        """One attempt at the period's charge (its key: subscription, period, attempt number)."""
        attempt = st["attempt"] + 1
        key = f"{self._pkey(sub, st)}:charge:{attempt}"
        period = date.fromisoformat(st["period"])
        request = AuthorizationRequest(amount=sub.amount, order_reference=self._order_reference(sub, period),
                                       capture=True, token=token, reference=key, recurring=True)

        async def charge() -> str:
            return _outcome(await self.gateway.authorize(request))

        async def find() -> str | None:
            found = await self.gateway.find_payment(key)
            return _outcome(found) if found is not None else None

        result = orjson.loads(await ctx.once(key, charge, find, tag="subscriptions.charges"))
        st["attempt"] = attempt
        st["last_payment"] = result["id"]
        await self._settle(sub, st, ctx, result, now)

    async def _settle(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, result: dict[str, Any],
                      now: float) -> None:
        status = PaymentStatus(result["status"])
        if status is PaymentStatus.CAPTURED:
            await self._paid(sub, st, ctx, result, now)
        elif status is PaymentStatus.DECLINED:
            await self._declined(sub, st, ctx, result, now)
        else:  # in review, or authorised only: money may still come; never charge again meanwhile
            st["status"] = "review"
            ctx.count("subscriptions.in_review")
            ctx.outcome(f"charge in review ({status.value})")

    async def _paid(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, result: dict[str, Any],
                    now: float) -> None:
        pkey = self._pkey(sub, st)
        received = Money.of(result["amount"], result["currency"])
        receipt = CashReceipt(
            key=f"{pkey}:receipt", customer_id=sub.customer_id, amount=received,
            received_at=datetime.fromtimestamp(now, UTC), kind=ReceiptKind.APPLIED,
            apply_to=ExternalRef.parse(st["invoice"]), deposit_account=self.deposit,
            gateway_ref=ExternalRef(system=self.gateway.name, kind="transaction", id=result["id"]),
            description=f"Subscription {st['period']}")

        async def post() -> str:
            return (await self.back_office.apply_receipt(receipt)).key

        await ctx.once(receipt.key, post, lambda: self._find(DocumentKind.RECEIPT, receipt.key),
                       tag="subscriptions.receipts")
        period = date.fromisoformat(st["period"])
        if st.get("failed_at") is not None:  # it was in dunning: recovered
            if st.get("hold"):
                await ctx.once(f"{pkey}:release", lambda: self._release(sub, f"renewal {period} paid"))
            await self.cases.resolve([f"{pkey}:dunning"], note=f"paid: {result['id']}")
            await self._notify(sub, ctx, f"{pkey}:notice:recovered", "recovered", period=period, st=st)
            ctx.count("subscriptions.recovered")
        st["next_due"] = sub.following(period).isoformat()
        st["billed"] = st.get("billed", 0) + 1
        st["paid_through"] = st["period"]
        st.update(status="active", failed_at=None, next_retry_at=None, hold=False, decline=None)
        ctx.count("subscriptions.renewed")
        ctx.outcome(f"renewed {period.isoformat()}")

    async def _release(self, sub: Subscription, reason: str) -> str:
        await self.back_office.clear_ar_hold(sub.customer_id, reason=reason)
        return "released"

    async def _hold(self, sub: Subscription, reason: str) -> str:
        await self.back_office.set_ar_hold(sub.customer_id, reason=reason)
        return "held"

    # ---- dunning ------------------------------------------------------------------------------------------

    async def _declined(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, result: dict[str, Any],
                        now: float) -> None:
        pkey = self._pkey(sub, st)
        period = date.fromisoformat(st["period"])
        reported = DeclineCategory(result["category"]) if result.get("category") else None
        category = self.dunning.category(result.get("reason"), reported)
        st["decline"] = {"reason": result.get("reason"), "category": category.value, "payment": result["id"]}
        if st.get("failed_at") is None:
            st["failed_at"] = now
            ctx.count("subscriptions.declined")
        else:
            st["retries"] = st.get("retries", 0) + 1
            ctx.count("subscriptions.retries_declined")
        failed_at = st["failed_at"]
        if category is DeclineCategory.HARD:
            st["status"], st["next_retry_at"] = "awaiting_payment_method", None
        else:
            st["status"], st["next_retry_at"] = "dunning", self.dunning.retry_at(failed_at, st["retries"])
        st["steps"] = step = st.get("steps", 0) + 1
        reason = f"renewal {period} declined ({result.get('reason') or 'declined'})"
        await ctx.once(f"{pkey}:hold:{step}", lambda: self._hold(sub, reason))
        st["hold"] = True
        await self._dunning_case(sub, st, ctx, now, f"{category.value} decline: {result.get('reason') or 'declined'}")
        next_try = None
        if st["next_retry_at"] is not None:
            next_try = datetime.fromtimestamp(st["next_retry_at"], self.zone).date()
        kind: NoticeKind = "hard" if category is DeclineCategory.HARD else "soft"
        await self._notify(sub, ctx, f"{pkey}:notice:{step}", kind, period=period, st=st,
                           reason=result.get("message") or result.get("reason"), next_try=next_try)
        if st["next_retry_at"] is None and now >= self.dunning.end_at(failed_at) and kind == "soft":
            await self._end(sub, st, ctx, now)
            return
        ctx.outcome(f"declined ({category.value}); " + (f"retry {next_try}" if next_try else "needs a new card"))

    async def _dunning_case(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, now: float,
                            summary: str) -> None:
        moment = datetime.fromtimestamp(now, UTC)
        await self.cases.record([Case(
            key=f"{self._pkey(sub, st)}:dunning", type=CaseType.DUNNING,
            summary=f"subscription {sub.id} (customer {sub.customer_id}), period {st['period']}: {summary}",
            amount=sub.amount, reference=sub.id, opened_at=moment, updated_at=moment,
            evidence={"period": st["period"], "invoice": st.get("invoice"), "attempts": st.get("attempt"),
                      "decline": st.get("decline"), "status": st.get("status"),
                      "next_retry_at": _iso(st["next_retry_at"]) if st.get("next_retry_at") else None},
            refs=(ExternalRef.parse(st["invoice"]),) if st.get("invoice") else ())])

    async def _collect(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, token: PaymentToken | None,
                       now: float, today: date) -> None:
        """A period in dunning: a retry that is due, a new payment method to try, or the end of dunning."""
        if st["status"] == "review":
            payment = await self.gateway.get_payment(st["last_payment"])
            if payment.status in (PaymentStatus.CAPTURED, PaymentStatus.DECLINED):
                await self._settle(sub, st, ctx, orjson.loads(_outcome(payment)), now)
            else:
                ctx.outcome(f"charge still {payment.status.value}")
            return
        new_method = token is not None and token.token_id != st.get("token")
        retry_due = st["status"] == "dunning" and st.get("next_retry_at") is not None and now >= st["next_retry_at"]
        if new_method or retry_due:
            problem, instrument = await self._method_problem(token, today)
            if problem is not None:
                await self._needs_method(sub, st, ctx, problem, token,
                                         date.fromisoformat(st["period"]))
                if new_method or st["status"] == "dunning":
                    st["status"], st["next_retry_at"] = "awaiting_payment_method", None
                if now >= self.dunning.end_at(st["failed_at"]):
                    await self._end(sub, st, ctx, now)
                return
            assert token is not None and instrument is not None
            await self._unblock(sub, st)
            if new_method:
                st.update(token=token.token_id, card=self._card(instrument))
            if await self._within_cap(sub, st, ctx, token, now):
                await self._charge(sub, st, ctx, token, now)
            return
        if now >= self.dunning.end_at(st["failed_at"]):
            await self._end(sub, st, ctx, now)
            return
        waiting = f"retry {_iso(st['next_retry_at'])}" if st.get("next_retry_at") else "needs a new card"
        ctx.outcome(f"in dunning: {waiting}")

    async def _within_cap(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, token: PaymentToken,
                          now: float) -> bool:
        """Reserve this retry against the card's cap; when the cap is reached, move the retry (or skip it)."""
        key = f"{self._pkey(sub, st)}:charge:{st['attempt'] + 1}"
        free_at = await self.card_retries.reserve(
            token.token_id, key, now, limit=self.dunning.max_retries_per_card,
            window_seconds=self.dunning.card_window_days * DAY)
        if free_at is None:
            return True
        ctx.count("subscriptions.retries_capped")
        end_at = self.dunning.end_at(st["failed_at"])
        if free_at < end_at:
            st["next_retry_at"] = free_at
            ctx.outcome("retry postponed: card retry cap")
            return False
        st["retries"] = st.get("retries", 0) + 1  # skipped: it could not go before dunning ends
        st["next_retry_at"] = self.dunning.retry_at(st["failed_at"], st["retries"])
        if st["next_retry_at"] is not None and st["next_retry_at"] < free_at:
            st["next_retry_at"] = min(free_at, end_at)
        ctx.outcome("retry skipped: card retry cap")
        return False

    async def _end(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, now: float) -> None:
        """The configured end of dunning: write off or keep the invoice; suspend or cancel the subscription."""
        pkey = self._pkey(sub, st)
        period = date.fromisoformat(st["period"])
        action = self.dunning.end_action
        written_off = False
        if action.invoice == "write_off" and st.get("invoice"):
            invoice = ExternalRef.parse(st["invoice"])
            balance = await self.back_office.open_balance(invoice)
            if balance.is_positive():
                assert self.write_off is not None
                memo = CreditMemo(
                    key=f"{pkey}:write-off", customer_id=sub.customer_id,
                    memo_date=datetime.fromtimestamp(now, UTC), description=f"Write-off {period:%Y-%m} unpaid",
                    lines=(MemoLine(account=self.write_off, amount=balance, description="subscription unpaid"),),
                    apply_to=invoice)

                async def write_off() -> str:
                    return (await self.back_office.issue_credit_memo(memo)).key

                await ctx.once(memo.key, write_off, lambda: self._find(DocumentKind.CREDIT_MEMO, memo.key),
                               tag="subscriptions.written_off")
            written_off = True
            if st.get("hold"):  # nothing is owed any more
                await ctx.once(f"{pkey}:release", lambda: self._release(sub, f"renewal {period} written off"))
                st["hold"] = False
        target = SubscriptionStatus.SUSPENDED if action.subscription == "suspend" else SubscriptionStatus.CANCELLED
        if sub.ref is not None:
            ref = sub.ref

            async def mark() -> str:
                await self.back_office.set_subscription_status(ref, target, reason=f"dunning ended for {period}")
                return target.value

            await ctx.once(f"{pkey}:end", mark)
        st["status"] = target.value
        st["next_retry_at"] = None
        if written_off:
            st["outstanding"] = None
            st["next_due"] = sub.following(period).isoformat()
        else:
            st["outstanding"] = st["period"]
        kind: NoticeKind = "suspended" if target is SubscriptionStatus.SUSPENDED else "cancelled"
        await self._notify(sub, ctx, f"{pkey}:notice:end", kind, period=period, st=st, written_off=written_off)
        await self._dunning_case(sub, st, ctx, now, f"dunning ended: {target.value}, invoice "
                                 + ("written off" if written_off else "kept (still owed)"))
        if written_off:
            await self.cases.resolve([f"{pkey}:dunning"], note="written off")
        ctx.count(f"subscriptions.{target.value}")
        ctx.outcome(f"dunning ended: {target.value}")

    async def _resume(self, sub: Subscription, st: dict[str, Any], ctx: FlowContext, token: PaymentToken,
                      now: float, today: date) -> None:
        """A suspended subscription with a new payment method: collect what is still owed, then carry on."""
        if sub.ref is not None:
            ref = sub.ref
            await self.back_office.set_subscription_status(ref, SubscriptionStatus.ACTIVE,
                                                           reason="new payment method")
        ctx.count("subscriptions.resumed")
        if st.get("outstanding"):
            st.update(status="awaiting_payment_method", failed_at=now, retries=0, next_retry_at=None)
            await self._collect(sub, st, ctx, token, now, today)
            return
        st.update(status="active", token=token.token_id)
        ctx.outcome("resumed")

    # ---- notices ------------------------------------------------------------------------------------------

    async def _notify(self, sub: Subscription, ctx: FlowContext, key: str, kind: NoticeKind, *, period: date,
                      st: dict[str, Any] | None = None, reason: str | None = None, next_try: date | None = None,
                      problem: str | None = None, written_off: bool = False) -> None:
        address = sub.email or await self._email(sub)
        subject, body = notice(kind, description=sub.description, amount=sub.amount, period=period,
                               card=(st or {}).get("card"), reason=reason, next_try=next_try, problem=problem,
                               written_off=written_off)
        try:
            message = Notification(key=key, to=address or "", subject=subject, body=body,
                                   category=f"subscription.{kind}", reference=sub.id)
        except ValueError:  # no address, or not an address: a person has to reach the customer
            moment = datetime.fromtimestamp(ctx.now(), UTC)
            await self.cases.record([Case(
                key=f"subscription:{sub.id}:no-email", type=CaseType.SUBSCRIPTION,
                summary=f"customer {sub.customer_id} of subscription {sub.id} has no usable e-mail address "
                        f"({address or 'none'}): a {kind} notice could not be sent", reference=sub.id,
                opened_at=moment, updated_at=moment, evidence={"notice": key, "subject": subject})])
            ctx.count("subscriptions.notices_undeliverable")
            return

        async def enqueue() -> str:
            await self.outbox.enqueue(message)
            return "queued"

        await ctx.once(key, enqueue, tag="subscriptions.notices")

    async def _email(self, sub: Subscription) -> str | None:
        party = await self.back_office.find_party(Party(id=sub.customer_id), ["id"])
        return party.email if party is not None else None


class SubscriptionEvents:
    """The inbox handler for ``subscriptions`` events: one subscription, one step."""

    def __init__(self, flow: Subscriptions) -> None:
        self.flow = flow

    async def __call__(self, message: InboundMessage, ctx: FlowContext) -> None:
        if message.event_type != EVENT_TYPE:
            raise Ignored(f"subscriptions do not handle {message.event_type}")
        await self.flow.advance(Subscription.model_validate_json(message.body), ctx)


CHARGE_EVENTS = frozenset({EventType.PAYMENT, EventType.CAPTURE, EventType.DECLINE, EventType.REVIEW})


class RenewalCharges:
    """Keeps the gateway's webhooks about renewal charges from order-to-cash: the subscription flow posted them
    when it charged (their order reference starts with the configured prefix). It goes first among the event
    flows; an event that carries no payment (an id-only webhook) is fetched once here, and one that is not a
    renewal goes on, with its payment, to the first of ``flows`` that takes it."""

    name = "subscription-charges"

    def __init__(self, prefix: str, gateway: PaymentGateway, flows: list[Any]) -> None:
        self.prefix = prefix
        self.gateway = gateway
        self.flows = flows  # the integration's event flows (this one among them)

    def _renewal(self, event: PaymentEvent) -> bool:
        reference = event.payment.order_reference if event.payment is not None else None
        return (reference or event.partition_key or "").startswith(self.prefix)

    def accepts(self, event: PaymentEvent) -> bool:
        return self._renewal(event) or (event.payment is None and event.event_type in CHARGE_EVENTS and any(
            flow.accepts(event) for flow in self.flows if flow is not self))

    async def handle(self, event: PaymentEvent, ctx: FlowContext) -> None:
        if event.payment is None and not self._renewal(event):
            payment = await self.gateway.get_payment(event.payment_id)
            event = event.model_copy(update={"payment": payment})
        if self._renewal(event):
            raise Ignored(f"{event.gateway_event_type} of a subscription renewal: posted by the subscription flow")
        for flow in self.flows:
            if flow is not self and flow.accepts(event):
                await flow.handle(event, ctx)
                return
        raise Ignored(f"no enabled flow handles {event.gateway_event_type}")


def renew_job(flow: Subscriptions) -> Any:
    async def job(call: JobCall, ctx: FlowContext) -> None:
        await flow.tick(call, ctx)

    return job
