"""Microsoft Dynamics SL: a ``BackOffice`` over an HTTP API gateway in front of SL's data model,
and a sandbox of that gateway (``ledgerlink.connectors.dynamics_sl.sandbox``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ledgerlink.connectors.dynamics_sl.auth import ApiKeyAuth, ClientCredentialsAuth
from ledgerlink.connectors.dynamics_sl.back_office import DynamicsSLBackOffice
from ledgerlink.connectors.dynamics_sl.client import Calls, DynamicsSLClient, ExistingRecord, SLCall
from ledgerlink.connectors.dynamics_sl.settings import DynamicsSLSettings


def make_auth(settings: DynamicsSLSettings) -> httpx.Auth:
    """API key when configured, else OAuth2 client credentials against the gateway's token endpoint."""
    if settings.api_key is not None:
        return ApiKeyAuth(settings.api_key.get_secret_value())
    assert settings.client_id and settings.client_secret  # the settings validator guarantees one of the two
    return ClientCredentialsAuth(settings.base_url.rstrip("/") + settings.token_path, settings.client_id,
                                 settings.client_secret.get_secret_value())


def build_client(settings: DynamicsSLSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> DynamicsSLClient:
    return DynamicsSLClient(settings.base_url, company=settings.company, auth=make_auth(settings),
                            transport=transport, timeout_seconds=settings.timeout_seconds)


def build_back_office(
    settings: Mapping[str, Any] | DynamicsSLSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> DynamicsSLBackOffice:
    """The registry's entry point: a back office for the settings of one integration."""
    config = settings if isinstance(settings, DynamicsSLSettings) else DynamicsSLSettings.model_validate(dict(settings))
    return DynamicsSLBackOffice(build_client(config, transport=transport), config)


__all__ = [
    "ApiKeyAuth",
    "Calls",
    "ClientCredentialsAuth",
    "DynamicsSLBackOffice",
    "DynamicsSLClient",
    "DynamicsSLSettings",
    "ExistingRecord",
    "SLCall",
    "build_back_office",
    "build_client",
    "make_auth",
]
