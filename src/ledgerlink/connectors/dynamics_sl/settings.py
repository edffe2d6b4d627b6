"""How ledgerlink reaches one SL company through its API gateway, and the SL defaults it posts with."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class DynamicsSLSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "http://127.0.0.1:8060"
    company: str = Field(default="0060", max_length=10)
    api_key: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    token_path: str = "/oauth2/token"
    customer_id_prefix: str = Field(default="W", max_length=4)  # CustId = prefix + digest of the match key
    customer_class: str = Field(default="WEB", max_length=6)
    order_type: str = Field(default="SO", max_length=4)
    date_format: str = "%m/%d/%Y"  # what the gateway accepts for SL dates
    timezone: str = "UTC"  # SL's server time zone: dates and periods are taken in it
    default_invtid: str = Field(default="WEB-ITEM", max_length=30)  # lines with no SKU
    default_sub: str = Field(default="000000", max_length=24)  # GL lines of a journal whose account has no sub
    posted_page_size: int = Field(default=5000, ge=1, le=5000)  # rows per page of posted payments
    posted_csv_page_size: int = Field(default=50_000, ge=1, le=50_000)  # rows per page of their bulk (CSV) form
    # Micro-batching: concurrent calls within one event-loop turn (or max_delay), and calls that waited for one of
    # the max_in_flight senders, share one $batch.
    max_batch: int = Field(default=250, ge=1, le=1000)
    max_delay_seconds: float = Field(default=0.0, ge=0.0)
    max_in_flight: int = Field(default=4, ge=1)
    timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> DynamicsSLSettings:
        if self.api_key is None and not (self.client_id and self.client_secret):
            raise ValueError("configure api_key, or client_id and client_secret (OAuth2 client credentials)")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
