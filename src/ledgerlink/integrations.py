"""Load an integration file and build what it describes: a gateway, a back office, mapping, flows, schedules.

An integration file (``integrations/<pair>.yaml``) is the whole of a pair. It is
validated by one pydantic schema; every error names its field, e.g.
``mapping.statuses.order.authorized: Input should be 'open', 'paid', ...``.
Secrets never sit in the file: a setting may be ``${env:NAME}`` (an environment
variable) or ``${vault:name}`` (a vault secret), resolved when the pair is built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledgerlink.connectors import registry
from ledgerlink.connectors.kit.guard import guarded_transport
from ledgerlink.connectors.kit.protocols import BackOffice, NotificationChannel, PaymentGateway
from ledgerlink.flows.context import Job, MessageHandler
from ledgerlink.flows.disputes import DisputeEvents, Disputes
from ledgerlink.flows.erp_refunds import ErpRefunds, RefundRequestEvents
from ledgerlink.flows.events import EventFlow, GatewayEvents
from ledgerlink.flows.fraud_review import (
    FraudReview,
    FraudReviewSettings,
    ReviewDecisionEvents,
    review_source,
)
from ledgerlink.flows.gap_sweep import SWEEP_JOB, GapSweep, GapSweepSettings, sweep_job
from ledgerlink.flows.jobs import RECONCILE_DAY, poll_job, reconcile_day_job, reconcile_schedule_job
from ledgerlink.flows.money_back import MoneyBack
from ledgerlink.flows.order_to_cash import OrderToCash
from ledgerlink.flows.polls import DisputePoll, RefundRequestPoll, dispute_source, refund_request_source
from ledgerlink.flows.ports import (
    CardRetryLedger,
    CaseBook,
    InboxIndex,
    NotificationOutbox,
    ReconciliationLedger,
    ReviewQueue,
    RiskLedger,
)
from ledgerlink.flows.profile_sync import (
    PROFILE_POLL_JOB,
    CustomerChangeEvents,
    CustomerChangePoll,
    ProfileSync,
    ProfileSyncSettings,
    customer_change_source,
    poll_customer_changes_job,
)
from ledgerlink.flows.schedule_fields import CronExpression
from ledgerlink.flows.settlement import SettlementReconciliation, SettlementSettings
from ledgerlink.flows.subscriptions import (
    RENEW_JOB,
    SUBSCRIPTION_SOURCE,
    RenewalCharges,
    SubscriptionEvents,
    Subscriptions,
    SubscriptionSettings,
    renew_job,
)
from ledgerlink.mappings.spec import MappingSpec
from ledgerlink.runtime.db import DEFAULT_DATABASE_URL, Database
from ledgerlink.runtime.flow_control import FlowControl
from ledgerlink.runtime.notifications import NotificationSender, SenderSettings
from ledgerlink.runtime.scheduler import ScheduleSpec, prune_inbox_job
from ledgerlink.runtime.settings import RuntimeSettings

_REFERENCE = re.compile(r"^\$\{(env|vault):([^}]+)\}$")


class ConfigError(ValueError):
    """An integration file that cannot be used; ``problems`` are ``field: reason`` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}:\n  " + "\n  ".join(problems))


class ConnectorSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    settings: dict[str, Any] = Field(default_factory=dict)


class FlowToggle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


class PollToggle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    poll_cron: CronExpression = "*/5 * * * *"


class FlowsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_to_cash: FlowToggle = Field(default_factory=FlowToggle)
    refunds: FlowToggle = Field(default_factory=lambda: FlowToggle(enabled=False))  # refunds, voids, reversals
    disputes: PollToggle = Field(default_factory=PollToggle)
    erp_refunds: PollToggle = Field(default_factory=lambda: PollToggle(poll_cron="* * * * *"))
    settlement: SettlementSettings = Field(default_factory=SettlementSettings)
    subscriptions: SubscriptionSettings = Field(default_factory=SubscriptionSettings)
    profile_sync: ProfileSyncSettings = Field(default_factory=ProfileSyncSettings)
    fraud_review: FraudReviewSettings = Field(default_factory=FraudReviewSettings)
    gap_sweep: GapSweepSettings = Field(default_factory=GapSweepSettings)  # webhooks that never came


class HousekeepingSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inbox_retention_days: float = Field(30.0, gt=0)
    prune_cron: CronExpression = "17 3 * * *"


class NotificationsSection(BaseModel):
    """Where customer notices go (``type``: a notification channel, e.g. ``smtp``) and how hard to try."""

    model_config = ConfigDict(extra="forbid")

    type: str = "smtp"
    settings: dict[str, Any] = Field(default_factory=dict)
    delivery: SenderSettings = Field(default_factory=SenderSettings)


class IntegrationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    database: str | None = None
    gateway: ConnectorSection
    back_office: ConnectorSection
    mapping: MappingSpec = Field(default_factory=MappingSpec)
    flows: FlowsSection = Field(default_factory=FlowsSection)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    housekeeping: HousekeepingSection = Field(default_factory=HousekeepingSection)
    notifications: NotificationsSection | None = None


def _problems(exc: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        lines.append(f"{prefix}{location}: {error['msg']}")
    return lines


def parse_integration(data: Any, *, source: str = "integration") -> IntegrationSpec:
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must be a YAML mapping"])
    try:
        return IntegrationSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_integration_file(path: str | Path) -> IntegrationSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_integration(data, source=str(path))


SecretLookup = Callable[[str], str]


def resolve_references(
    value: Any, *, vault: SecretLookup | None, where: str, env: Mapping[str, str] | None = None
) -> Any:
    """Replace ``${env:NAME}`` and ``${vault:name}`` strings anywhere in ``value``."""
    environment = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: resolve_references(v, vault=vault, where=f"{where}.{k}", env=environment) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, vault=vault, where=f"{where}[{i}]", env=environment)
                for i, v in enumerate(value)]
    if isinstance(value, str):
        match = _REFERENCE.match(value.strip())
        if not match:
            return value
        kind, name = match.group(1), match.group(2).strip()
        if kind == "env":
            if name not in environment:
                raise ConfigError("credentials", [f"{where}: environment variable {name} is not set"])
            return environment[name]
        if vault is None:
            raise ConfigError("credentials", [f"{where}: refers to vault secret {name!r} but no vault is open "
                                              "(set LEDGERLINK_MASTER_KEY or LEDGERLINK_MASTER_KEY_FILE)"])
        try:
            return vault(name)
        except KeyError:
            raise ConfigError("credentials", [f"{where}: no secret named {name!r} in the vault"]) from None
    return value


def needs_vault(spec: IntegrationSpec) -> bool:
    text = repr(spec.gateway.settings) + repr(spec.back_office.settings)
    return "${vault:" in text


def database_url(spec: IntegrationSpec | None, override: str | None = None) -> str:
    return override or os.environ.get("LEDGERLINK_DATABASE_URL") or (spec.database if spec else None) \
        or DEFAULT_DATABASE_URL


@dataclass
class Records:
    """The engine's own storage the flows use (cases, reconciliation ledger, review queue, risk scores)."""

    cases: CaseBook
    ledger: ReconciliationLedger
    reviews: ReviewQueue | None = None
    risk: RiskLedger | None = None
    outbox: NotificationOutbox | None = None
    card_retries: CardRetryLedger | None = None
    inbox: InboxIndex | None = None  # what the gap sweep checks before storing an event


@dataclass
class Integration:
    """A built pair: live connectors, the inbox handlers per source and the scheduled jobs."""

    spec: IntegrationSpec
    gateway: PaymentGateway
    back_office: BackOffice
    handlers: dict[str, MessageHandler]
    flows: list[EventFlow] = field(default_factory=list)
    flow_jobs: dict[str, Job] = field(default_factory=dict)
    flow_schedules: list[ScheduleSpec] = field(default_factory=list)
    settlement: SettlementReconciliation | None = None
    subscriptions: Subscriptions | None = None
    notifier: NotificationChannel | None = None
    flow_control: FlowControl | None = None  # the guard in front of both connectors (the engine runs it)

    def services(self, db: Database) -> list[NotificationSender]:
        """What runs beside the workers: the sender of customer notices, when a channel is configured."""
        if self.notifier is None:
            return []
        delivery = self.spec.notifications.delivery if self.spec.notifications else SenderSettings()
        return [NotificationSender(db, self.notifier, delivery)]

    def jobs(self, db: Database) -> dict[str, Job]:
        return {"prune-inbox": prune_inbox_job(db, retention_days=self.spec.housekeeping.inbox_retention_days),
                **self.flow_jobs}

    def schedules(self) -> list[ScheduleSpec]:
        return [
            ScheduleSpec(name="prune-inbox", cron=self.spec.housekeeping.prune_cron, job="prune-inbox"),
            *self.flow_schedules,
            *self.spec.schedules,
        ]

    async def aclose(self) -> None:
        await self.gateway.aclose()
        await self.back_office.aclose()


def _build(factory: Callable[..., Any], settings: dict[str, Any], transport: Any, where: str) -> Any:
    try:
        return factory(settings, transport=transport)
    except ValidationError as exc:
        raise ConfigError("integration", _problems(exc, prefix=f"{where}.settings.")) from None


def build_integration(
    spec: IntegrationSpec,
    *,
    vault: SecretLookup | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    env: Mapping[str, str] | None = None,
    records: Records | None = None,
    flow_control: FlowControl | None = None,
) -> Integration:
    """Build the pair. ``transports`` (by connector type) route a connector to an in-process sandbox;
    ``records`` is the engine's storage, needed by the disputes, refund-request and settlement flows;
    ``flow_control`` guards every request of both connectors (breakers, rate limits; endpoint
    ``<connector type>/<operation>``)."""
    transports = dict(transports or {})
    if flow_control is not None:
        for system in dict.fromkeys((spec.gateway.type, spec.back_office.type)):
            transports[system] = guarded_transport(flow_control, system=system, inner=transports.get(system))
    gateway_settings = resolve_references(spec.gateway.settings, vault=vault, where="gateway.settings", env=env)
    if spec.mapping.statuses.gateway:
        gateway_settings = {**gateway_settings, "status_map": {
            **gateway_settings.get("status_map", {}),
            **{k: v.value for k, v in spec.mapping.statuses.gateway.items()},
        }}
    back_office_settings = resolve_references(
        spec.back_office.settings, vault=vault, where="back_office.settings", env=env
    )
    try:
        gateway_factory = registry.gateway_factory(spec.gateway.type)
        back_office_factory = registry.back_office_factory(spec.back_office.type)
    except registry.UnknownConnector as exc:
        raise ConfigError("integration", [str(exc)]) from None
    gateway = _build(gateway_factory, gateway_settings, transports.get(spec.gateway.type), "gateway")
    back_office = _build(back_office_factory, back_office_settings, transports.get(spec.back_office.type),
                         "back_office")
    try:
        integration = _assemble(spec, gateway, back_office, records)
    except ValueError as exc:  # a flow that lacks what it needs (an account, a store) says which
        raise ConfigError("integration", [str(exc)]) from None
    if spec.notifications is not None:
        integration.notifier = _notifier(spec.notifications, vault=vault, env=env)
    integration.flow_control = flow_control
    return integration


def _notifier(section: NotificationsSection, *, vault: SecretLookup | None,
              env: Mapping[str, str] | None) -> NotificationChannel:
    settings = resolve_references(section.settings, vault=vault, where="notifications.settings", env=env)
    try:
        factory = registry.notifier_factory(section.type)
    except registry.UnknownConnector as exc:
        raise ConfigError("integration", [f"notifications.type: {exc}"]) from None
    try:
        return factory(settings)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise ConfigError("integration", _problems(exc, prefix="notifications.settings.")) from None


def _assemble(spec: IntegrationSpec, gateway: PaymentGateway, back_office: BackOffice,
              records: Records | None) -> Integration:
    flows_spec = spec.flows
    order_to_cash = OrderToCash(gateway, back_office, spec.mapping)
    flows: list[EventFlow] = [order_to_cash] if flows_spec.order_to_cash.enabled else []
    handlers: dict[str, MessageHandler] = {}
    jobs: dict[str, Job] = {}
    schedules: list[ScheduleSpec] = []

    def need_records(what: str) -> Records:
        if records is None:
            raise ValueError(f"flows.{what} needs the engine's records (cases and reconciliation ledger)")
        return records

    money_back: MoneyBack | None = None
    if flows_spec.refunds.enabled or flows_spec.erp_refunds.enabled:
        money_back = MoneyBack(gateway, back_office, spec.mapping, order_to_cash)
    if flows_spec.refunds.enabled and money_back is not None:
        flows.append(money_back)
    if flows_spec.disputes.enabled:
        disputes = Disputes(gateway, back_office, spec.mapping, order_to_cash, need_records("disputes").cases)
        handlers[dispute_source(gateway)] = DisputeEvents(disputes)
        jobs["poll-disputes"] = poll_job(DisputePoll(gateway))
        schedules.append(ScheduleSpec(name="poll-disputes", cron=flows_spec.disputes.poll_cron,
                                      job="poll-disputes"))
    if flows_spec.erp_refunds.enabled and money_back is not None:
        erp = ErpRefunds(gateway, back_office, money_back, need_records("erp_refunds").cases)
        handlers[refund_request_source(back_office)] = RefundRequestEvents(erp)
        jobs["poll-refund-requests"] = poll_job(RefundRequestPoll(gateway, back_office))
        schedules.append(ScheduleSpec(name="poll-refund-requests", cron=flows_spec.erp_refunds.poll_cron,
                                      job="poll-refund-requests"))
    settlement: SettlementReconciliation | None = None
    if flows_spec.settlement.enabled:
        stores = need_records("settlement")
        settlement = SettlementReconciliation(gateway, back_office, spec.mapping, flows_spec.settlement,
                                              cases=stores.cases, ledger=stores.ledger)
        jobs["reconcile-settlement"] = reconcile_schedule_job(settlement)
        jobs[RECONCILE_DAY] = reconcile_day_job(settlement)
        schedules.append(ScheduleSpec(name="reconcile-settlement", cron=flows_spec.settlement.cron,
                                      job="reconcile-settlement", timezone=flows_spec.settlement.timezone))
    if flows_spec.fraud_review.enabled:
        stores = need_records("fraud_review")
        if not flows_spec.order_to_cash.enabled:
            raise ValueError("flows.fraud_review needs flows.order_to_cash: it posts the orders it holds")
        if stores.reviews is None or stores.risk is None:
            raise ValueError("flows.fraud_review needs the engine's review queue and risk ledger")
        fraud_review = FraudReview(gateway, order_to_cash, stores.reviews, stores.risk, flows_spec.fraud_review)
        flows.insert(0, fraud_review)  # ahead of order to cash: it posts through it, then scores and opens cases
        handlers[review_source(gateway.name)] = ReviewDecisionEvents(fraud_review)
    if flows_spec.profile_sync.enabled:
        profile_sync = ProfileSync(gateway, back_office, flows_spec.profile_sync, need_records("profile_sync").cases)
        flows.append(profile_sync)  # token events
        handlers[customer_change_source(back_office)] = CustomerChangeEvents(profile_sync)
        jobs[PROFILE_POLL_JOB] = poll_customer_changes_job(CustomerChangePoll(profile_sync))
        schedules.append(ScheduleSpec(name=PROFILE_POLL_JOB, cron=flows_spec.profile_sync.poll_cron,
                                      job=PROFILE_POLL_JOB))
    subscriptions: Subscriptions | None = None
    if flows_spec.subscriptions.enabled:
        stores = need_records("subscriptions")
        if stores.outbox is None or stores.card_retries is None:
            raise ValueError("flows.subscriptions needs the engine's notification outbox and card retry ledger")
        sub_settings = flows_spec.subscriptions
        subscriptions = Subscriptions(gateway, back_office, spec.mapping, sub_settings, cases=stores.cases,
                                      outbox=stores.outbox, card_retries=stores.card_retries)
        flows.insert(0, RenewalCharges(sub_settings.order_reference_prefix, gateway, flows))  # already posted
        handlers[SUBSCRIPTION_SOURCE] = SubscriptionEvents(subscriptions)
        jobs[RENEW_JOB] = renew_job(subscriptions)
        schedules.append(ScheduleSpec(name=RENEW_JOB, cron=sub_settings.cron, job=RENEW_JOB,
                                      timezone=sub_settings.timezone))
    if flows_spec.gap_sweep.enabled:
        jobs[SWEEP_JOB] = sweep_job(GapSweep(gateway, flows_spec.gap_sweep, records.inbox if records else None))
        schedules.append(ScheduleSpec(name=SWEEP_JOB, cron=flows_spec.gap_sweep.cron, job=SWEEP_JOB))
    handlers[gateway.name] = GatewayEvents(gateway, flows)
    return Integration(spec=spec, gateway=gateway, back_office=back_office, handlers=handlers, flows=flows,
                       flow_jobs=jobs, flow_schedules=schedules, settlement=settlement,
                       subscriptions=subscriptions)
