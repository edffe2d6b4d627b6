"""A fault script for the sandbox: make chosen requests fail the way a real gateway in front of SL does.

A rule matches a method and a path prefix (``POST /api/v1/salesorders``) and fires ``times`` times.
Before the work it answers with ``status`` (a 503 or 429 with ``Retry-After``); with ``after_commit``
it does the work, commits, and then answers with the failure, which is the crash a client must
survive without posting twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = "*"
    path: str = "/"
    status: int = 503
    times: int = 1
    after_commit: bool = False
    retry_after: int | None = None
    latency_ms: int = 0


@dataclass
class Fault:
    status: int
    after_commit: bool
    retry_after: int | None
    latency_ms: int

    def response(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        code = "TooManyRequests" if self.status == 429 else "InjectedFault"
        return self.status, {"error": {"code": code, "message": f"sandbox fault: HTTP {self.status}",
                                       "table": None, "field": None}}, headers


class FaultScript:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def clear(self) -> None:
        self.rules.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if a rule still has shots left (each match uses one)."""
        for rule in self.rules:
            if rule.times > 0 and rule.method in ("*", method) and path.startswith(rule.path):
                rule.times -= 1
                return Fault(rule.status, rule.after_commit, rule.retry_after, rule.latency_ms)
        return None
