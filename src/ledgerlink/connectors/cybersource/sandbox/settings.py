"""Sandbox settings: credentials it accepts, outcome triggers, webhook emitter, fault, settlement and report knobs.

Defaults make a fresh sandbox behave like Cybersource's public test account
(merchant ``testrest`` with the demo key from spec §2.1) with documented magic
amounts; every knob can be changed from an integration file, a test, or (for
the emitter, faults, settlement and report anomalies) the ``/__sandbox/``
control endpoints at run time. Money knobs are decimal strings or integers: a
float is refused because it is already inexact.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledgerlink.connectors.kit.sandbox_faults import FaultPlan, FaultRule, MillisecondRange

DEMO_MERCHANT_ID = "testrest"
DEMO_KEY_ID = "08c94330-f618-42a3-b09d-e1e43be5efda"
DEMO_SHARED_SECRET = "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE="

# Amount triggers: the last two digits of the amount in minor units → "STATUS[:REASON]".
DEFAULT_OUTCOMES: dict[str, str] = {
    "01": "DECLINED:INSUFFICIENT_FUND",
    "02": "DECLINED:STOLEN_LOST_CARD",
    "03": "DECLINED:EXPIRED_CARD",
    "08": "AUTHORIZED_RISK_DECLINED:DECISION_PROFILE_REJECT",
    "09": "AUTHORIZED_PENDING_REVIEW:DECISION_PROFILE_REVIEW",
}
OUTCOME_STATUSES = frozenset({
    "AUTHORIZED", "PARTIAL_AUTHORIZED", "DECLINED", "AUTHORIZED_RISK_DECLINED", "AUTHORIZED_PENDING_REVIEW",
    "PENDING_REVIEW",
})
REFUND_OUTCOME_STATUSES = frozenset({"PENDING", "DECLINED"})
# The columns of the classic Payment Batch Detail CSV (spec §7), in order.
BATCH_DETAIL_COLUMNS = (
    "batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no", "payment_method",
    "currency", "amount", "transaction_type",
)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SandboxCredential(_Settings):
    merchant_id: str
    key_id: str
    shared_secret: str
    portfolio_id: str | None = None


class EmitterSettings(_Settings):
    """How the sandbox delivers webhooks; all of it adjustable at run time."""

    payload_detail: Literal["full", "id_only"] = "full"
    signature_variant: Literal["payload", "raw"] = "payload"
    duplicate_rate: float = Field(default=0.0, ge=0.0, le=1.0)  # chance an event is delivered twice
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)  # chance an event is never delivered at all
    reorder_window: int = Field(default=0, ge=0)  # hold up to N events and shuffle them before sending
    reorder_flush_ms: float = Field(default=50.0, ge=0.0)  # send a partial window after this long
    delay_ms: MillisecondRange = (0.0, 0.0)  # uniform random delay before the first attempt
    seed: int | None = None
    concurrency: int = Field(default=32, ge=1, le=1024)  # workers, each with one keep-alive connection
    timeout_seconds: float = Field(default=10.0, gt=0)
    retry_base_seconds: float = Field(default=0.2, ge=0.0)
    retry_cap_seconds: float = Field(default=10.0, ge=0.0)
    max_attempts: int = Field(default=20, ge=1)  # then the notification is marked failed
    log_limit: int = Field(default=100_000, ge=0)  # delivered-notification log entries kept


class FaultSettings(FaultPlan):
    """Failures injected into signed API calls and webhooks: the kit's fault script (``rules`` per endpoint,
    ``maintenance`` windows, ``latency_ms``, ``webhooks``: duplicated, reordered, dropped notifications), plus
    the original global knobs below, which act as one more rule on every endpoint."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_status: Literal[429, 500, 502, 503, 504] = 502
    retry_after_seconds: int | None = Field(default=None, ge=0)  # sent with 429/503
    after_commit: bool = False  # do the work, then answer with the error (the outcome is unknown to the caller)

    def script(self) -> FaultPlan:
        """The plan the sandbox runs: the rules, then the global error rate as a rule of its own."""
        rules = list(self.rules)
        if self.error_rate > 0:
            retry_after = self.retry_after_seconds if self.error_status in (429, 503) else None
            rules.append(FaultRule(status=self.error_status, rate=self.error_rate, times=None,
                                   after_commit=self.after_commit, retry_after=retry_after))
        return FaultPlan(seed=self.seed, latency_ms=self.latency_ms, rules=rules, maintenance=self.maintenance,
                         webhooks=self.webhooks)


class SeedSubscription(_Settings):
    """A webhook subscription present from start-up, so a demo needs no setup calls."""

    url: str
    key_id: str = "sandbox-webhook-key"
    key: str = "c2FuZGJveC13ZWJob29rLWtleS0wMTIzNDU2Nzg5YWI="  # base64, 32 bytes
    organization_id: str | None = None  # default: the first credential's merchant
    products: dict[str, list[str]] = Field(default_factory=dict)  # productId → eventTypes; empty = all


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("give money as a decimal string or an integer, not a float")
    return value


class FeeRule(_Settings):
    """The processing fee of one settled transaction: ``percent`` of its amount plus ``fixed``, rounded half-even
    to the currency's minor unit. Refunds use their own pair (no fee by default)."""

    percent: Decimal = Field(default=Decimal("2.9"), ge=0)
    fixed: Decimal = Field(default=Decimal("0.30"), ge=0)
    refund_percent: Decimal = Field(default=Decimal(0), ge=0)
    refund_fixed: Decimal = Field(default=Decimal(0), ge=0)

    _exact = field_validator("percent", "fixed", "refund_percent", "refund_fixed", mode="before")(_no_float)


class SettlementSettings(_Settings):
    """How a day is closed into processor batches, what it costs, and what a chargeback costs."""

    fees: dict[str, FeeRule] = Field(default_factory=lambda: {"*": FeeRule()})  # currency (or "*") → rule
    batches_per_currency: int = Field(default=1, ge=1, le=1000)
    auto_close: bool = False  # a report asked for a past day that was never closed closes it first
    chargeback_fees: dict[str, Decimal] = Field(default_factory=lambda: {"*": Decimal("15.00")})
    response_days: int = Field(default=30, ge=1)  # responseDueTime = opened + this many days

    @field_validator("chargeback_fees", mode="before")
    @classmethod
    def _exact_fees(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for fee in value.values():
                _no_float(fee)
        return value

    def fee_rule(self, currency: str) -> FeeRule | None:
        return self.fees.get(currency) or self.fees.get("*")

    def chargeback_fee(self, currency: str) -> Decimal:
        return self.chargeback_fees.get(currency, self.chargeback_fees.get("*", Decimal(0)))


class ReportAnomalies(_Settings):
    """What goes wrong in a day's reports, applied when they are generated (deterministic per seed and day).

    Data anomalies change what the processor says it settled, in the CSV and the net funding alike, so the
    figures still add up and the reconciliation has something to find. Malformations break only the CSV file.
    """

    seed: int = 0
    days: list[date] | None = None  # None: every day
    # data
    drop_lines: int = Field(default=0, ge=0)  # a settled transaction missing from the report
    duplicate_lines: int = Field(default=0, ge=0)  # the same transaction settled again in another batch
    change_amounts: int = Field(default=0, ge=0)  # settled for a different amount
    change_currencies: int = Field(default=0, ge=0)  # settled in a different currency (moves to that batch)
    phantom_lines: int = Field(default=0, ge=0)  # a transaction the sandbox never had
    # malformations (CSV only)
    truncate: bool = False  # the file ends in the middle of its last line
    drop_header_column: Literal[BATCH_DETAIL_COLUMNS] | None = None  # type: ignore[valid-type]
    garble_amounts: int = Field(default=0, ge=0)  # an amount like "12.3.4"
    repeat_lines: int = Field(default=0, ge=0)  # a line repeated byte for byte

    def applies_to(self, day: date) -> bool:
        return self.days is None or day in self.days

    def any_data(self) -> bool:
        return any((self.drop_lines, self.duplicate_lines, self.change_amounts, self.change_currencies,
                    self.phantom_lines))

    def any_format(self) -> bool:
        return bool(self.truncate or self.drop_header_column or self.garble_amounts or self.repeat_lines)


class SandboxSettings(_Settings):
    credentials: list[SandboxCredential] = Field(default_factory=lambda: [
        SandboxCredential(merchant_id=DEMO_MERCHANT_ID, key_id=DEMO_KEY_ID, shared_secret=DEMO_SHARED_SECRET)
    ])
    clock_skew_seconds: float = Field(default=300.0, gt=0)
    outcome_by_cents: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_OUTCOMES))
    refund_outcome_by_cents: dict[str, str] = Field(default_factory=dict)  # e.g. {"01": "DECLINED:PROCESSOR_DECLINED"}
    # token id → "DECLINED:<reason>" whatever the amount (renewals charge a fixed amount), see declines.py
    instrument_outcomes: dict[str, str] = Field(default_factory=dict)
    vault_key: str = "ledgerlink-sandbox-vault"  # keys the hash that turns a card number into a token id
    seed_tokens: bool = True
    emitter: EmitterSettings = Field(default_factory=EmitterSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    subscriptions: list[SeedSubscription] = Field(default_factory=list)
    settlement: SettlementSettings = Field(default_factory=SettlementSettings)
    anomalies: ReportAnomalies = Field(default_factory=ReportAnomalies)

    @field_validator("outcome_by_cents")
    @classmethod
    def _known_outcomes(cls, value: dict[str, str]) -> dict[str, str]:
        return _outcome_table(value, OUTCOME_STATUSES, "outcome_by_cents")

    @field_validator("refund_outcome_by_cents")
    @classmethod
    def _known_refund_outcomes(cls, value: dict[str, str]) -> dict[str, str]:
        return _outcome_table(value, REFUND_OUTCOME_STATUSES, "refund_outcome_by_cents")

    @model_validator(mode="after")
    def _has_credentials(self) -> SandboxSettings:
        if not self.credentials:
            raise ValueError("the sandbox needs at least one credential")
        return self


def _outcome_table(value: dict[str, str], statuses: frozenset[str], name: str) -> dict[str, str]:
    result = {}
    for cents, outcome in value.items():
        key = cents.lstrip(".")
        if len(key) != 2 or not key.isdigit():
            raise ValueError(f"{name} key {cents!r} must be two digits, e.g. '01' or '.01'")
        status = outcome.partition(":")[0]
        if status not in statuses:
            raise ValueError(f"outcome {outcome!r}: status must be one of {', '.join(sorted(statuses))}")
        result[key] = outcome
    return result
