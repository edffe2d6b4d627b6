"""Cybersource (Visa Acceptance) REST: HTTP Signature auth, payments, TSS, webhooks, and a sandbox.

The registry loads ``build_gateway`` from here and ``create_app`` from ``.sandbox``.
"""

from ledgerlink.connectors.cybersource.client import CybersourceClient
from ledgerlink.connectors.cybersource.gateway import CybersourceGateway, CybersourceSettings, build_gateway

__all__ = ["CybersourceClient", "CybersourceGateway", "CybersourceSettings", "build_gateway"]
