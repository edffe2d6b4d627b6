"""Runtime knobs, as the ``runtime:`` section of an integration file."""

from __future__ import annotations

import os
import socket
import uuid

from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.connectors.kit.retry import Backoff
from ledgerlink.runtime.flow_settings import BackpressureSettings, BreakerSettings, RateLimitSettings


def default_worker_id() -> str:
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class BackoffSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_seconds: float = Field(1.0, gt=0)
    cap_seconds: float = Field(300.0, gt=0)
    max_attempts: int = Field(8, ge=1)

    def policy(self) -> Backoff:
        return Backoff(self.base_seconds, self.cap_seconds, self.max_attempts)


class RuntimeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    buckets: int = Field(64, ge=1, le=4096, description="partition buckets; fixed for the life of a database")
    lease_seconds: float = Field(15.0, gt=0.2)
    max_in_flight: int = Field(1024, ge=1, description="events processed concurrently by one process")
    claim_batch: int = Field(512, ge=1)
    poll_seconds: float = Field(0.25, gt=0)
    event_timeout_seconds: float = Field(120.0, gt=0)
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)
    breakers: BreakerSettings = Field(default_factory=BreakerSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    backpressure: BackpressureSettings = Field(default_factory=BackpressureSettings)
    worker_id: str = Field(default_factory=default_worker_id)
