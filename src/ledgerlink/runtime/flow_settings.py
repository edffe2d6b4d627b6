"""Flow-control knobs: ``runtime.breakers``, ``runtime.rate_limits`` and ``runtime.backpressure``.

    runtime:
      breakers: {failure_ratio: 0.5, min_calls: 10, window_seconds: 30, open_seconds: 15, half_open_probes: 2}
      rate_limits:
        redis_url: redis://127.0.0.1:6379/0      # optional: buckets in Redis instead of the database
        limits:
          dynamics_sl: {per_second: 50, burst: 100}          # every operation of the system shares one bucket
          cybersource/get_transaction: {per_second: 5}       # one endpoint on its own
      backpressure: {max_dead_letters: 1000, max_backlog: 100000}

A rate-limit key is a system (``dynamics_sl``) or one endpoint (``dynamics_sl/batch``); an endpoint uses
the most specific key configured, else its system's name (which then only carries 429 pauses).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledgerlink.runtime.breaker import BreakerPolicy

_KEY = re.compile(r"^[a-z0-9_.-]+(/[a-z0-9_.-]+)?$")


class BreakerSettings(BaseModel):
    """A circuit breaker per endpoint, its state shared by every process through the database."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    failure_ratio: float = Field(0.5, gt=0, le=1, description="open when this share of the window's calls failed")
    min_calls: int = Field(10, ge=1, description="... and the window holds at least this many calls")
    window_seconds: float = Field(30.0, gt=0)
    open_seconds: float = Field(15.0, gt=0, description="how long an open breaker holds calls back")
    half_open_probes: int = Field(2, ge=1, description="probes let through after that; this many successes close it")
    sync_seconds: float = Field(0.5, gt=0, le=60, description="how often a process shares counts and reads states")

    def policy(self) -> BreakerPolicy:
        return BreakerPolicy(self.failure_ratio, self.min_calls, self.window_seconds, self.open_seconds,
                             self.half_open_probes)


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_second: float = Field(gt=0)
    burst: float | None = Field(None, ge=1, description="bucket size; default: one second's worth (at least 1)")

    @property
    def size(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.per_second)


class RateLimitSettings(BaseModel):
    """Token buckets per system or endpoint, shared by the fleet; 429 pauses shared the same way."""

    model_config = ConfigDict(extra="forbid")

    limits: dict[str, RateLimit] = Field(default_factory=dict)
    redis_url: str | None = Field(None, description="keep buckets and pauses in Redis instead of the database")
    redis_prefix: str = Field("ledgerlink", min_length=1, max_length=64)
    max_wait_seconds: float = Field(2.0, ge=0, description="longest a request waits for a token in-process; "
                                    "beyond it the event is deferred")
    default_pause_seconds: float = Field(1.0, gt=0, description="pause after a 429 without Retry-After")
    max_pause_seconds: float = Field(3600.0, gt=0, description="longest pause a Retry-After may ask for")

    @field_validator("limits")
    @classmethod
    def _keys(cls, limits: dict[str, RateLimit]) -> dict[str, RateLimit]:
        for key in limits:
            if not _KEY.match(key):
                raise ValueError(f"{key!r} is not a system (dynamics_sl) or an endpoint (dynamics_sl/batch)")
        return limits

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url

    def key_for(self, system: str, operation: str) -> str:
        """The bucket (and pause) key of an endpoint: its own if configured, else its system's."""
        endpoint = f"{system}/{operation}"
        return endpoint if endpoint in self.limits else system


class BackpressureSettings(BaseModel):
    """When the backlog or the dead-letter list passes these, alert (intake keeps acknowledging). 0: off."""

    model_config = ConfigDict(extra="forbid")

    max_dead_letters: int = Field(1000, ge=0)
    max_backlog: int = Field(100_000, ge=0, description="unfinished events: waiting, pending, running")
    check_seconds: float = Field(10.0, gt=0)
