"""Customer payment profiles and card tokens kept in step between the back office and the gateway.

Written once against ``PaymentGateway`` and ``BackOffice``; a pair is configuration (``flows.profile_sync``).

Two kinds of event start the same reconciliation of one customer:

- **Back-office changes.** The back office sends no events, so a scheduled poll reads customers changed
  since its cursor (``changed_customers``) and emits one event per change. A customer not yet linked to a
  gateway customer gets one (``create_gateway_profiles``), with the id ``profile_id_for`` gives it, so a
  create cut off by a crash is found again rather than repeated.
- **Token events from the gateway** (a stored card added, updated, expired or deleted). The customer is
  found by its link, else by the gateway customer's ``merchant_customer_id`` or e-mail (``match_on``).
  One that cannot be found opens a ``token_unlinked`` case for a person to link it (in the back office);
  the event is done, not retried. Linking the customer later is itself a back-office change: the poll
  sees it, the profile is synced and the case resolved.

Reconciling reads both sides afresh (so a late or repeated event does no harm), normalises them (phones
to E.164, addresses to ISO codes: ``model.normalise``; bad input is refused naming the field before
anything is written), and compares name, e-mail, phone and billing address against the values both sides
last agreed on (kept in the partition's state). A field only one side changed goes to the other; a field
both changed is a conflict settled by ``conflict_policy`` (``erp_wins``, ``gateway_wins`` or
``newest_wins``: the later of the back office's last change and the gateway's last token event, to the
minute; a tie goes to the back office), logged and counted. With nothing agreed yet (a new link) a value
never overwrites with a blank and a real difference is settled by the policy. Then the back office's
payment-method reference is made to match the gateway's cards: tokens, brand, last four, expiry, state
(a card gone from the gateway stays as ``deleted``) and which is the default. Every write goes through
``ctx.once`` keyed by the customer, the event and the values.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledgerlink.connectors.kit.errors import NotFound
from ledgerlink.connectors.kit.protocols import BackOffice, PaymentGateway
from ledgerlink.flows.context import FlowContext, InboundMessage, Job, JobCall, OutboundEvent
from ledgerlink.flows.ports import CaseBook
from ledgerlink.flows.schedule_fields import CronExpression
from ledgerlink.model import (
    PROFILE_FIELDS,
    Address,
    Case,
    CaseType,
    CustomerProfile,
    EventType,
    FieldIssue,
    InvalidInput,
    Party,
    PaymentEvent,
    StoredInstrument,
    TokenEvent,
    TokenEventKind,
    TokenState,
    normalise,
    profile_partition,
)

log = logging.getLogger(__name__)

CHANGED = "customer.changed"
PROFILE_POLL_JOB = "poll-customer-changes"
_MISSING = object()
_KEEP_CONFLICTS = 20


class ConflictPolicy(StrEnum):
    ERP_WINS = "erp_wins"
    GATEWAY_WINS = "gateway_wins"
    NEWEST_WINS = "newest_wins"


class ProfileSyncSettings(BaseModel):
    """``flows.profile_sync`` in an integration file."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    poll_cron: CronExpression = "*/5 * * * *"
    conflict_policy: ConflictPolicy = ConflictPolicy.ERP_WINS
    default_region: str = Field("US", description="ISO 3166 region for phone numbers written without a country code")
    create_gateway_profiles: bool = True
    match_on: list[Literal["merchant_customer_id", "email"]] = Field(
        default_factory=lambda: ["merchant_customer_id"],
        description="how a token event finds an unlinked customer, in order (the link is always tried first)")
    first_window_hours: float = Field(24.0, gt=0, description="how far back the first poll reads")
    page_size: int = Field(500, ge=1, le=1000)

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not normalise.known_region(value):
            raise ValueError(f"{value!r} is not a region libphonenumber knows (ISO 3166 alpha-2, e.g. US)")
        return value.upper()


def customer_change_source(back_office: BackOffice) -> str:
    return f"{back_office.name}.customers"


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


def _fields(party: Party) -> dict[str, Any]:
    """The compared profile values of a normalised party (the address as one value)."""
    return {"name": party.name, "email": party.email, "phone": party.phone,
            "address": party.address.model_dump() if party.address else None}


def _party(values: Mapping[str, Any]) -> Party:
    address = values.get("address")
    return Party(name=values.get("name"), email=values.get("email"), phone=values.get("phone"),
                 address=Address(**address) if address else None)


def _minute(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _reference_values(instruments: tuple[StoredInstrument, ...] | list[StoredInstrument], gateway: str) -> list[Any]:
    return sorted((i.token.token_id, i.state.value, i.token.brand, i.token.last4,
                   i.token.expiry.isoformat() if i.token.expiry else None, i.default, i.instrument_identifier)
                  for i in instruments if i.token.gateway == gateway)


class ProfileSync:
    name = "profile_sync"

    def __init__(self, gateway: PaymentGateway, back_office: BackOffice, settings: ProfileSyncSettings,
                 cases: CaseBook) -> None:
        self.gateway = gateway
        self.back_office = back_office
        self.settings = settings
        self.cases = cases

    # --- keys ----------------------------------------------------------------------------------

    def reference(self, customer_id: str) -> str:
        """Our reference for a back-office customer at the gateway (what ``profile_id_for`` is derived from)."""
        return f"{self.back_office.name}:customer:{customer_id}"

    def partition_for(self, profile: CustomerProfile) -> tuple[str, str]:
        """(gateway customer token, partition) of a back-office customer: its link, else the token it would get."""
        token = profile.linked(self.gateway.name) or self.gateway.profile_id_for(self.reference(profile.customer_id))
        return token, profile_partition(self.gateway.name, token)

    def case_key(self, subject: str) -> str:
        return f"{CaseType.TOKEN_UNLINKED.value}:{self.gateway.name}:{subject}"

    # --- gateway token events -----------------------------------------------------------------

    def accepts(self, event: PaymentEvent) -> bool:
        return event.event_type is EventType.TOKEN

    async def handle(self, event: PaymentEvent, ctx: FlowContext) -> None:
        token_event = event.token_event
        if token_event is None:
            raise InvalidInput(FieldIssue("token_event", f"{event.gateway_event_type} carries no token event"),
                               source=self.gateway.name)
        ctx.count(f"profile.token_events.{token_event.kind.value}")
        token = token_event.customer_token
        if token is None:
            await self._unlinked(token_event, None, ctx, "the stored card belongs to no gateway customer")
            return
        try:
            profile = await self.gateway.customer_profile(token)
        except NotFound:
            await self._gateway_customer_gone(token_event, token, ctx)
            return
        customer_id = await self._resolve(profile, token_event, ctx)
        if customer_id is None:
            return
        await self._reconcile(customer_id, profile, event.event_id, ctx, gateway_changed_at=event.occurred_at)

    async def _resolve(self, profile: CustomerProfile, event: TokenEvent, ctx: FlowContext) -> str | None:
        """The back-office customer a gateway customer belongs to: its link, else the ``match_on`` rules."""
        token = profile.customer_id
        linked = await self.back_office.find_customer_by_profile(self.gateway.name, token)
        if linked is not None:
            return linked
        for rule in self.settings.match_on:
            candidate = await self._candidate(profile, rule)
            if candidate is None:
                continue
            other = candidate.linked(self.gateway.name)
            if other is not None and other != token:
                await self._unlinked(event, profile, ctx, f"matched customer {candidate.customer_id} by {rule}, "
                                     f"but it is linked to {self.gateway.name} customer {other}")
                return None
            log.info("%s customer %s matched back-office customer %s by %s", self.gateway.name, token,
                     candidate.customer_id, rule)
            ctx.count(f"profile.matched_by.{rule}")
            return candidate.customer_id
        await self._unlinked(event, profile, ctx, "no back-office customer is linked to it or matches "
                             f"({', '.join(self.settings.match_on) or 'no match rules'})")
        return None

    async def _candidate(self, profile: CustomerProfile, rule: str) -> CustomerProfile | None:
        if rule == "merchant_customer_id":
            if not profile.merchant_customer_id:
                return None
            try:
                return await self.back_office.customer_profile(profile.merchant_customer_id)
            except NotFound:
                return None
        if not profile.party.email:
            return None
        found = await self.back_office.find_party(Party(email=profile.party.email), ["email"])
        return await self.back_office.customer_profile(found.id) if found is not None and found.id else None

    async def _unlinked(self, event: TokenEvent, profile: CustomerProfile | None, ctx: FlowContext,
                        reason: str) -> None:
        """A case for a person to link the customer; the event is done (it is not retried)."""
        subject = event.customer_token or event.instrument_token or "unknown"
        now = datetime.fromtimestamp(ctx.now(), UTC)
        cards = [{"token": i.token.token_id, "brand": i.token.brand, "last4": i.token.last4,
                  "expiry": i.token.expiry.isoformat() if i.token.expiry else None, "state": i.state.value}
                 for i in (profile.instruments if profile else ())]
        evidence = {
            "gateway": self.gateway.name, "event": event.kind.value, "customer_token": event.customer_token,
            "instrument_token": event.instrument_token, "instrument_identifier": event.instrument_identifier,
            "merchant_customer_id": profile.merchant_customer_id if profile else None,
            "email": profile.party.email if profile else None, "name": profile.party.name if profile else None,
            "cards": cards, "reason": reason,
            "to_link": f"link the back-office customer to {self.gateway.name} customer {subject} (its payment "
                       "profile); the next poll then syncs it and resolves this case",
        }
        summary = f"{self.gateway.name} token event ({event.kind.value}) for customer {subject}: {reason}"
        await self.cases.record([Case(key=self.case_key(subject), type=CaseType.TOKEN_UNLINKED, summary=summary,
                                      reference=subject, opened_at=now, updated_at=now, evidence=evidence)])
        log.warning("token event for %s customer %s not applied: %s; case opened", self.gateway.name, subject,
                    reason)
        ctx.count("profile.unlinked_tokens")
        ctx.outcome("unlinked")

    async def _gateway_customer_gone(self, event: TokenEvent, token: str, ctx: FlowContext) -> None:
        """The gateway customer was deleted: a linked customer's cards are kept as deleted, the link stays."""
        customer_id = await self.back_office.find_customer_by_profile(self.gateway.name, token)
        if customer_id is None:
            await self._unlinked(event, None, ctx, "the gateway customer no longer exists and no back-office "
                                 "customer is linked to it")
            return
        erp = await self.back_office.customer_profile(customer_id)
        gone = [i.model_copy(update={"state": TokenState.DELETED, "default": False})
                for i in erp.instruments if i.token.gateway == self.gateway.name]
        await self._write_reference(customer_id, token, gone, erp, f"gone:{event.kind.value}", ctx)
        ctx.outcome("gateway_customer_deleted")

    # --- back-office changes ------------------------------------------------------------------

    async def sync_customer(self, customer_id: str, message: InboundMessage, partition: str,
                            ctx: FlowContext) -> None:
        try:
            erp = await self.back_office.customer_profile(customer_id)
        except NotFound:
            log.info("back-office customer %s no longer exists; nothing to sync", customer_id)
            ctx.outcome("customer_gone")
            return
        token, expected = self.partition_for(erp)
        if expected != partition:  # linked (or relinked) since the poll saw it: its events live elsewhere now
            ctx.emit(OutboundEvent(source=message.source, event_id=f"{message.event_id}>{token}",
                                   event_type=message.event_type, partition_key=expected, body=message.body))
            ctx.outcome("forwarded")
            return
        if erp.linked(self.gateway.name) is None:
            if not self.settings.create_gateway_profiles:
                ctx.count("profile.unlinked_customers")
                ctx.outcome("unlinked")
                return
            token = await self._create_gateway_profile(erp, ctx)
        try:
            profile = await self.gateway.customer_profile(token)
        except NotFound:
            event = TokenEvent(gateway=self.gateway.name, kind=TokenEventKind.DELETED, customer_token=token)
            await self._gateway_customer_gone(event, token, ctx)
            return
        await self._reconcile(customer_id, profile, message.event_id, ctx, erp=erp)

    async def _create_gateway_profile(self, erp: CustomerProfile, ctx: FlowContext) -> str:
        party = self._normalised(erp)  # bad input is refused before the gateway holds anything
        reference = self.reference(erp.customer_id)

        async def create() -> str:
            created = await self.gateway.create_customer_profile(party, reference=reference,
                                                                 merchant_customer_id=erp.customer_id)
            return created.customer_id

        async def find() -> str | None:
            try:
                return (await self.gateway.customer_profile(self.gateway.profile_id_for(reference))).customer_id
            except NotFound:
                return None

        return await ctx.once(f"{self.gateway.name}:customer-profile:{reference}", create, find,
                              tag="profile.gateway_customers_created")

    # --- reconciliation ---------------------------------------------------------------------------

    def _normalised(self, profile: CustomerProfile) -> Party:
        return normalise.party(profile.party, default_region=self.settings.default_region,
                               source=f"{profile.system} customer {profile.customer_id}")

    async def _reconcile(self, customer_id: str, gateway: CustomerProfile, event_id: str, ctx: FlowContext, *,
                         erp: CustomerProfile | None = None, gateway_changed_at: datetime | None = None) -> None:
        erp = erp or await self.back_office.customer_profile(customer_id)
        token = gateway.customer_id
        other = erp.linked(self.gateway.name)
        if other is not None and other != token:
            event = TokenEvent(gateway=self.gateway.name, kind=TokenEventKind.UPDATED, customer_token=token)
            await self._unlinked(event, gateway, ctx, f"back-office customer {customer_id} is linked to "
                                 f"{self.gateway.name} customer {other}")
            return
        state: dict[str, Any] = ctx.state.setdefault("profile", {})
        if state.get("customer_id") != customer_id:  # a new link: nothing agreed yet
            state.clear()
            state["customer_id"] = customer_id
        if gateway_changed_at is not None:
            state["gateway_changed_at"] = max(filter(None, (state.get("gateway_changed_at"),
                                                            gateway_changed_at.astimezone(UTC).isoformat())))
        erp_values = _fields(self._normalised(erp))
        gateway_values = _fields(self._normalised(gateway))
        baseline: dict[str, Any] | None = state.get("synced")
        gateway_time = datetime.fromisoformat(state["gateway_changed_at"]) if state.get("gateway_changed_at") \
            else None
        agreed, to_erp, to_gateway = self._decide(customer_id, token, erp_values, gateway_values, baseline,
                                                  erp.changed_at, gateway_time, gateway.held, state, ctx)
        if to_erp:
            await self._write(f"{self.back_office.name}:customer:{customer_id}:profile:{event_id}:{_digest(to_erp)}",
                              lambda: self.back_office.update_customer_profile(customer_id, _party(to_erp), to_erp),
                              "profile.erp_updates", ctx)
        if to_gateway:
            mcid = customer_id if gateway.merchant_customer_id != customer_id else None
            await self._write(f"{self.gateway.name}:customer:{token}:profile:{event_id}:{_digest(to_gateway)}",
                              lambda: self.gateway.update_customer_profile(token, _party(to_gateway), to_gateway,
                                                                           merchant_customer_id=mcid),
                              "profile.gateway_updates", ctx)
        state["synced"] = {**(baseline or {}), **agreed, **to_erp, **to_gateway}
        desired = self._desired_reference(erp, gateway)
        await self._write_reference(customer_id, token, desired, erp, event_id, ctx)
        await self.cases.resolve([self.case_key(token), *(self.case_key(i.token.token_id)
                                                          for i in gateway.instruments)],
                                 note=f"linked to back-office customer {customer_id}")
        changed = bool(to_erp or to_gateway)
        ctx.count("profile.synced" if changed else "profile.in_step")
        ctx.outcome("synced" if changed else "in_step")

    def _decide(self, customer_id: str, token: str, erp: dict[str, Any], gateway: dict[str, Any],
                baseline: dict[str, Any] | None, erp_time: datetime | None, gateway_time: datetime | None,
                held: frozenset[str], state: dict[str, Any], ctx: FlowContext,
                ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        agreed: dict[str, Any] = {}
        to_erp: dict[str, Any] = {}
        to_gateway: dict[str, Any] = {}
        for field in PROFILE_FIELDS:
            if field not in held:
                continue  # the gateway has nowhere to keep it (no stored card yet)
            mine, theirs = erp[field], gateway[field]
            if mine == theirs:
                agreed[field] = mine
                continue
            before = baseline.get(field, _MISSING) if baseline is not None else _MISSING
            if before is _MISSING:  # nothing agreed yet: a blank never overwrites, a difference is a conflict
                if mine is None or theirs is None:
                    winner = "gateway" if mine is None else "erp"
                else:
                    winner = self._winner(erp_time, gateway_time)
                    self._conflict(field, winner, customer_id, token, erp_time, gateway_time, state, ctx,
                                   initial=True)
            elif mine == before:
                winner = "gateway"
            elif theirs == before:
                winner = "erp"
            else:
                winner = self._winner(erp_time, gateway_time)
                self._conflict(field, winner, customer_id, token, erp_time, gateway_time, state, ctx)
            if winner == "erp":
                to_gateway[field] = mine
            elif field == "name" and theirs is None:
                log.info("customer %s: the gateway has no name; the back office keeps %s", customer_id, field)
                agreed[field] = mine
            else:
                to_erp[field] = theirs
        return agreed, to_erp, to_gateway

    def _winner(self, erp_time: datetime | None, gateway_time: datetime | None) -> str:
        policy = self.settings.conflict_policy
        if policy is ConflictPolicy.ERP_WINS:
            return "erp"
        if policy is ConflictPolicy.GATEWAY_WINS:
            return "gateway"
        erp_minute, gateway_minute = _minute(erp_time), _minute(gateway_time)
        if gateway_minute is None:
            return "erp"
        if erp_minute is None:
            return "gateway"
        return "gateway" if gateway_minute > erp_minute else "erp"

    def _conflict(self, field: str, winner: str, customer_id: str, token: str, erp_time: datetime | None,
                  gateway_time: datetime | None, state: dict[str, Any], ctx: FlowContext, *,
                  initial: bool = False) -> None:
        policy = self.settings.conflict_policy.value
        kind = "differs on first sync" if initial else "changed on both sides"
        log.warning("profile conflict: %s of customer %s (%s customer %s) %s (back office changed %s, gateway %s); "
                    "%s wins by %s", field, customer_id, self.gateway.name, token, kind,
                    erp_time.isoformat() if erp_time else "?", gateway_time.isoformat() if gateway_time else "?",
                    "back office" if winner == "erp" else "gateway", policy)
        if initial:
            ctx.count("profile.first_sync_conflicts")
        else:
            ctx.count("profile.conflicts")
            ctx.count(f"profile.conflicts.{field}")
        history = state.setdefault("conflicts", [])
        history.append({"field": field, "winner": winner, "policy": policy, "initial": initial,
                        "at": datetime.fromtimestamp(ctx.now(), UTC).isoformat()})
        del history[:-_KEEP_CONFLICTS]

    def _desired_reference(self, erp: CustomerProfile, gateway: CustomerProfile) -> list[StoredInstrument]:
        """The gateway's cards, and the back office's that the gateway no longer has, kept as deleted."""
        current = {i.token.token_id for i in gateway.instruments}
        gone = [i.model_copy(update={"state": TokenState.DELETED, "default": False})
                for i in erp.instruments if i.token.gateway == self.gateway.name and i.token.token_id not in current]
        return [*gateway.instruments, *gone]

    async def _write_reference(self, customer_id: str, token: str, desired: list[StoredInstrument],
                               erp: CustomerProfile, event_id: str, ctx: FlowContext) -> None:
        if erp.linked(self.gateway.name) == token and \
                _reference_values(erp.instruments, self.gateway.name) == _reference_values(desired, self.gateway.name):
            return
        key = f"{self.back_office.name}:customer:{customer_id}:payment-profile:{event_id}:" \
              f"{_digest(_reference_values(desired, self.gateway.name))}"
        await self._write(key, lambda: self.back_office.set_payment_profile(customer_id, self.gateway.name, token,
                                                                            desired), "profile.token_updates", ctx)

    @staticmethod
    async def _write(key: str, write: Any, tag: str, ctx: FlowContext) -> None:
        async def run() -> str:
            await write()
            return "written"

        await ctx.once(key, run, tag=tag)


class CustomerChangeEvents:
    """Inbox handler for the back-office changes the poll emitted."""

    def __init__(self, flow: ProfileSync) -> None:
        self.flow = flow

    async def __call__(self, message: InboundMessage, ctx: FlowContext) -> None:
        try:
            body = orjson.loads(message.body)
            customer_id = body["customer_id"]
            partition = body["partition"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise InvalidInput(FieldIssue("body", "a customer change needs customer_id and partition"),
                               source=message.source) from None
        await self.flow.sync_customer(str(customer_id), message, str(partition), ctx)


class CustomerChangePoll:
    """Reads customers changed since the cursor and emits one event per change.

    The back office stamps changes to the minute, so the cursor is the last minute read plus a fingerprint of
    each customer seen in it: that minute is read again next time (a change later in the same minute is not
    missed) and what was already emitted is skipped. An event id holds the customer, its change time and
    fingerprint, so reading a change twice stores it once.
    """

    def __init__(self, flow: ProfileSync) -> None:
        self.flow = flow

    async def __call__(self, now: datetime, ctx: FlowContext) -> int:
        flow, settings = self.flow, self.flow.settings
        cursor: dict[str, Any] = ctx.state.setdefault("customer_cursor", {})
        since = datetime.fromisoformat(cursor["at"]) if cursor.get("at") \
            else now - timedelta(hours=settings.first_window_hours)
        seen: dict[str, str] = dict(cursor.get("seen") or {})
        boundary, boundary_seen = since, dict(seen) if cursor.get("at") else {}
        after: str | None = None
        page_since = since
        emitted = 0
        while True:
            page = await flow.back_office.changed_customers(page_since, after=after, limit=settings.page_size)
            for profile in page:
                changed_at = profile.changed_at or since
                fingerprint = _digest([profile.customer_id, changed_at.isoformat(), _fields(profile.party),
                                       profile.linked_profiles])
                if changed_at == since and seen.get(profile.customer_id) == fingerprint:
                    continue
                token, partition = flow.partition_for(profile)
                ctx.emit(OutboundEvent(
                    source=customer_change_source(flow.back_office),
                    event_id=f"customer:{profile.customer_id}:{changed_at:%Y%m%d%H%M}:{fingerprint}",
                    event_type=CHANGED, partition_key=partition,
                    body=orjson.dumps({"customer_id": profile.customer_id, "changed_at": changed_at.isoformat(),
                                       "gateway_customer": token, "partition": partition}),
                ))
                emitted += 1
                if changed_at > boundary:
                    boundary, boundary_seen = changed_at, {}
                if changed_at == boundary:
                    boundary_seen[profile.customer_id] = fingerprint
            if len(page) < settings.page_size:
                break
            last = page[-1]
            page_since, after = last.changed_at or since, last.customer_id
        cursor.update(at=boundary.isoformat(), seen=boundary_seen)
        ctx.count("polls.customer_changes_found", emitted)
        return emitted


def poll_customer_changes_job(poll: CustomerChangePoll) -> Job:
    async def job(call: JobCall, ctx: FlowContext) -> None:
        await poll(datetime.fromtimestamp(ctx.now(), UTC), ctx)

    return job
