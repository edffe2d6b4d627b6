"""What a sandbox instance is: where its data lives, who may call it, and the company it seeds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.connectors.kit.sandbox_faults import FaultPlan


class SeedAccount(BaseModel):
    model_config = ConfigDict(frozen=True)

    acct: str
    descr: str
    acct_type: str  # SL AcctType: sort prefix + class letter (A, L, I, E)
    active: bool = True


DEFAULT_ACCOUNTS: tuple[SeedAccount, ...] = (
    SeedAccount(acct="1010", descr="Cash - Operating", acct_type="1A"),
    SeedAccount(acct="1050", descr="Card Clearing", acct_type="1A"),
    SeedAccount(acct="1060", descr="Chargeback Clearing", acct_type="1A"),
    SeedAccount(acct="1200", descr="Accounts Receivable", acct_type="1A"),
    SeedAccount(acct="1999", descr="Retired Clearing (inactive)", acct_type="1A", active=False),
    SeedAccount(acct="2300", descr="Customer Prepayments", acct_type="3L"),
    SeedAccount(acct="2350", descr="Refund Liability", acct_type="3L"),
    SeedAccount(acct="3900", descr="Retained Earnings", acct_type="4L"),
    SeedAccount(acct="4000", descr="Sales Revenue", acct_type="6I"),
    SeedAccount(acct="4900", descr="Sales Returns", acct_type="6I"),
    SeedAccount(acct="6500", descr="Payment Processing Expense", acct_type="8E"),
    SeedAccount(acct="6550", descr="Chargeback Losses", acct_type="8E"),
    SeedAccount(acct="6560", descr="Chargeback Fees", acct_type="8E"),
    SeedAccount(acct="6900", descr="Small Balance Write-off", acct_type="8E"),
)


class SandboxSettings(BaseModel):
    """Everything configurable about one sandbox; every field has a laptop-friendly default."""

    model_config = ConfigDict(frozen=True)

    database: str = ":memory:"  # a file path for a persistent sandbox (WAL, one writer)
    synchronous: str = "FULL"  # SQLite PRAGMA synchronous: one fsync per commit (per $batch)
    company: str = "0060"
    company_name: str = "Ledgerlink Demo Co"
    base_currency: str = "USD"
    currencies: dict[str, int] = Field(default_factory=lambda: {"USD": 2, "CAD": 2, "EUR": 2, "JPY": 0})
    periods: int = 12
    current_period: str | None = None  # YYYYPP; None: the calendar month of the sandbox's today
    date_format: str = "%m/%d/%Y"
    api_keys: tuple[str, ...] = ("sl-sandbox-key",)
    oauth_clients: dict[str, str] = Field(default_factory=lambda: {"ledgerlink": "sl-sandbox-secret"})
    token_ttl_seconds: int = 3600
    control_enabled: bool = True  # the /__sandbox/ routes (still need credentials)
    max_batch_requests: int = 1000
    accounts: tuple[SeedAccount, ...] = DEFAULT_ACCOUNTS
    subaccounts: dict[str, bool] = Field(default_factory=lambda: {"000000": True, "100000": True,
                                                                  "999999": False})
    customer_class: str = "WEB"
    order_type: str = "SO"
    order_prefix: str = "SO"
    card_clearing_account: str = "1050"
    ar_account: str = "1200"
    prepayment_account: str = "2300"
    sales_account: str = "4000"
    small_balance_account: str = "6900"
    retained_earnings_account: str = "3900"
    default_sub: str = "000000"
    validate_acct_sub: bool = False
    faults: FaultPlan = Field(default_factory=FaultPlan)  # the fault script at start (also /__sandbox/faults)


def coerce_settings(settings: Mapping[str, Any] | SandboxSettings | None) -> SandboxSettings:
    if settings is None:
        return SandboxSettings()
    if isinstance(settings, SandboxSettings):
        return settings
    return SandboxSettings.model_validate(dict(settings))
