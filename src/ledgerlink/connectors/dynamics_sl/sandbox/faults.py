"""The sandbox's fault script: make chosen requests fail the way a real gateway in front of SL does.

The script is the kit's (``connectors/kit/sandbox_faults.py``): per-endpoint error rates, 429 with
``Retry-After``, latency, resets and timeouts, before the work or after its commit, and maintenance windows
("SL is down for N minutes"). A rule matches a method and a path prefix (``POST /api/v1/salesorders``); in a
``$batch`` each item is matched on its own path, and an item whose rule breaks the connection loses the
whole batch's answer; latency belongs to the whole request (``POST /api/v1/$batch``). What SL adds here is how a failure reads: SL's error body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledgerlink.connectors.kit.sandbox_faults import Fault as KitFault
from ledgerlink.connectors.kit.sandbox_faults import FaultPlan, FaultRule, MaintenanceWindow
from ledgerlink.connectors.kit.sandbox_faults import FaultScript as KitFaultScript

__all__ = ["Fault", "FaultPlan", "FaultRule", "FaultScript", "MaintenanceWindow"]


@dataclass(frozen=True)
class Fault(KitFault):
    def response(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        if self.cause == "maintenance":
            code, message = "Maintenance", "SL is down for maintenance; try again later"
        else:
            code = "TooManyRequests" if self.status == 429 else "InjectedFault"
            message = f"sandbox fault: HTTP {self.status}"
        return self.status, {"error": {"code": code, "message": message, "table": None, "field": None}}, headers


class FaultScript(KitFaultScript):
    fault_class = Fault

    def take(self, method: str, path: str, *, whole_request: bool = True) -> Fault | None:
        fault = super().take(method, path, whole_request=whole_request)
        assert fault is None or isinstance(fault, Fault)
        return fault
