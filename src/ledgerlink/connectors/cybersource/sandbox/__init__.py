"""A stateful Cybersource simulator: signed Payments/TSS/TMS/webhook-setup/Reporting APIs and a webhook emitter.

``create_app(settings)`` is the registry's entry point; ``Sandbox`` gives tests
the store, the emitter and the knobs directly; ``serve`` runs it under uvicorn.
"""

from ledgerlink.connectors.cybersource.sandbox.app import Sandbox, create_app, serve
from ledgerlink.connectors.cybersource.sandbox.emitter import Notification, WebhookEmitter
from ledgerlink.connectors.cybersource.sandbox.settings import (
    EmitterSettings,
    FaultSettings,
    FeeRule,
    ReportAnomalies,
    SandboxCredential,
    SandboxSettings,
    SeedSubscription,
    SettlementSettings,
)

__all__ = [
    "EmitterSettings",
    "FaultSettings",
    "FeeRule",
    "Notification",
    "ReportAnomalies",
    "Sandbox",
    "SandboxCredential",
    "SandboxSettings",
    "SeedSubscription",
    "SettlementSettings",
    "WebhookEmitter",
    "create_app",
    "serve",
]
