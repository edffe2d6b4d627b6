"""Declines by card, for renewals: a stored card that always declines with a given reason until told otherwise,
and cards past their expiry month, which the issuer declines with ``EXPIRED_CARD`` as the real service does.

Amount triggers (``outcome_by_cents``) suit one-off purchases; a subscription charges the same amount every
time, so its renewals decline or succeed by card instead: ``instrument_outcomes`` maps a token id (payment
instrument, customer or instrument identifier) to ``"DECLINED:<errorInformation.reason>"``, settable at start-up
or at run time through ``/__sandbox/instrument-outcomes`` (POST ``{"token": ..., "outcome": ...}`` or
``{"token": ..., "outcome": null}`` to clear; DELETE clears all). The reasons and legacy codes are spec §4.5/§4.7.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledgerlink.connectors.cybersource.cards import expiry_date
from ledgerlink.connectors.cybersource.sandbox.settings import OUTCOME_STATUSES
from ledgerlink.connectors.cybersource.sandbox.store import CardInfo, Tokens
from ledgerlink.connectors.cybersource.sandbox.wire import json_response, read_json

if TYPE_CHECKING:
    from ledgerlink.connectors.cybersource.sandbox.app import Sandbox

# errorInformation.reason → (legacy reason code, message) for declines a renewal can meet (spec §4.5, §4.7).
RENEWAL_REASONS: dict[str, tuple[str, str]] = {
    "ISSUER_UNAVAILABLE": ("207", "Decline - Issuing bank unavailable."),
    "INVALID_ACCOUNT": ("231", "Decline - Invalid account number (the account is closed)."),
    "SUSPENDED_ACCOUNT": ("203", "Decline - The account is suspended."),
    "EXCEEDS_CREDIT_LIMIT": ("210", "Decline - The card has reached the credit limit."),
    "CONTACT_PROCESSOR": ("201", "Decline - The issuing bank has questions about the request."),
    "PROCESSOR_ERROR": ("236", "Decline - Processor failure."),
    "GENERAL_DECLINE": ("203", "Decline - General decline of the card."),
    "BLOCKED_BY_CARDHOLDER": ("203", "Decline - The cardholder stopped recurring payments to this merchant."),
    "UNAUTHORIZED_CARD": ("208", "Decline - Inactive card or card not authorized for card-not-present "
                                 "transactions."),
}


def check_outcome(outcome: str, where: str) -> str:
    status = outcome.partition(":")[0]
    if status not in OUTCOME_STATUSES:
        raise ValueError(f"{where}: outcome {outcome!r}: status must be one of {', '.join(sorted(OUTCOME_STATUSES))}")
    return outcome


class InstrumentOutcomes:
    def __init__(self, table: Mapping[str, str] | None = None) -> None:
        self.table = {token: check_outcome(outcome, f"instrument_outcomes[{token!r}]")
                      for token, outcome in (table or {}).items()}

    def outcome(self, tokens: Tokens, card: CardInfo, today: date) -> tuple[str, str | None] | None:
        """(status, reason) this card gets whatever the amount, or None when the amount decides."""
        for token in (tokens.payment_instrument_id, tokens.customer_id, tokens.instrument_identifier_id):
            if token and token in self.table:
                status, _, reason = self.table[token].partition(":")
                return status, reason or None
        try:
            expiry = expiry_date(card.expiration_month, card.expiration_year)
        except ValueError:
            expiry = None
        if expiry is not None and expiry < today:
            return "DECLINED", "EXPIRED_CARD"
        return None

    def routes(self, sandbox: Sandbox) -> list[Route]:
        async def control(request: Request) -> Response:
            if request.method == "POST":
                body: Any = await read_json(request)
                token = body.get("token") if isinstance(body, dict) else None
                if not isinstance(token, str) or not token:
                    return json_response(400, {"error": "name the token", "field": "token"}, "application/json")
                outcome = body.get("outcome")
                if outcome is None:
                    self.table.pop(token, None)
                else:
                    try:
                        self.table[token] = check_outcome(str(outcome), "outcome")
                    except ValueError as exc:
                        return json_response(400, {"error": str(exc), "field": "outcome"}, "application/json")
            elif request.method == "DELETE":
                self.table.clear()
            return json_response(200, dict(self.table), "application/json")

        return [Route("/__sandbox/instrument-outcomes", control, methods=["GET", "POST", "DELETE"])]
