"""Where connector implementations are found by name.

The integration loader, the service and the CLI ask this registry for a gateway,
a back office or a sandbox by the name an integration file uses; they never
import a connector package themselves. Entries are import strings so that only
the connectors an integration uses are loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

GATEWAYS: dict[str, str] = {
    "cybersource": "ledgerlink.connectors.cybersource:build_gateway",
}

BACK_OFFICES: dict[str, str] = {
    "dynamics_sl": "ledgerlink.connectors.dynamics_sl:build_back_office",
}

SANDBOXES: dict[str, str] = {
    "cybersource": "ledgerlink.connectors.cybersource.sandbox:create_app",
    "dynamics_sl": "ledgerlink.connectors.dynamics_sl.sandbox:create_app",
    "smtp": "ledgerlink.connectors.smtp.sandbox:create_app",
}

NOTIFIERS: dict[str, str] = {
    "smtp": "ledgerlink.connectors.smtp:build_channel",
}


class UnknownConnector(LookupError):
    pass


def _load(table: dict[str, str], name: str, what: str) -> Callable[..., Any]:
    try:
        target = table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise UnknownConnector(f"unknown {what} {name!r}; known: {known}") from None
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]


def gateway_factory(name: str) -> Callable[..., Any]:
    return _load(GATEWAYS, name, "gateway")


def back_office_factory(name: str) -> Callable[..., Any]:
    return _load(BACK_OFFICES, name, "back office")


def sandbox_factory(name: str) -> Callable[..., Any]:
    return _load(SANDBOXES, name, "sandbox")


def notifier_factory(name: str) -> Callable[..., Any]:
    return _load(NOTIFIERS, name, "notification channel")
