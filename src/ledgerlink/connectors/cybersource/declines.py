"""Which Cybersource declines are worth retrying (spec §4.5 ``errorInformation.reason``).

A *hard* decline says this card will not be charged again: stolen or lost, closed or suspended account,
expired, blocked by the cardholder, refused by the fraud screen, or card data the issuer will never accept.
Retrying it risks network penalties and annoys the issuer; the customer has to give a new payment method.
A *soft* decline may clear by itself: insufficient funds, an issuer or processor that is unavailable,
a credit limit, a generic decline. Those are retried on the dunning schedule, within the card networks' cap
on retries. A reason this table does not know is soft: the cap still bounds how often it is tried.
"""

from __future__ import annotations

from ledgerlink.model import DeclineCategory

HARD_DECLINES = frozenset({
    "STOLEN_LOST_CARD",
    "EXPIRED_CARD",
    "INVALID_ACCOUNT",  # the account number is not (or no longer) valid: a closed account
    "SUSPENDED_ACCOUNT",
    "BLOCKED_BY_CARDHOLDER",
    "UNAUTHORIZED_CARD",
    "PAYMENT_REFUSED",
    "DECLINED_CHECK",
    "BLACKLISTED_CUSTOMER",
    "CVN_NOT_MATCH",
    "INVALID_CVN",
    "CV_FAILED",
    "ACH_VERIFICATION_FAILED",
    "ALLOWABLE_PIN_RETRIES_EXCEEDED",
    "CONSUMER_AUTHENTICATION_FAILED",
    "DECISION_PROFILE_REJECT",
    "SCORE_EXCEEDS_THRESHOLD",
    "CUSTOMER_WATCHLIST_MATCH",
    "ADDRESS_COUNTRY_WATCHLIST_MATCH",
    "EMAIL_COUNTRY_WATCHLIST_MATCH",
    "IP_COUNTRY_WATCHLIST_MATCH",
    "DAGGREJECTED",
    "DAGGDENIED",
    "DSYSREJECTED",
    # 400 reasons of a payments request that a retry with the same token cannot fix
    "INVALID_CARD",
    "CARD_TYPE_NOT_ACCEPTED",
    "INVALID_CARD_TYPE",
})

SOFT_DECLINES = frozenset({
    "INSUFFICIENT_FUND",
    "ISSUER_UNAVAILABLE",
    "EXCEEDS_CREDIT_LIMIT",
    "PROCESSOR_DECLINED",
    "GENERAL_DECLINE",
    "CONTACT_PROCESSOR",
    "PROCESSOR_ERROR",
    "PROCESSOR_UNAVAILABLE",
    "AVS_FAILED",
    "PENDING_AUTHENTICATION",
    "CONSUMER_AUTHENTICATION_REQUIRED",
    "DECISION_PROFILE_REVIEW",
    "INVALID_MERCHANT_CONFIGURATION",  # ours to fix, not the customer's: keep the card, retry later
    "DEBIT_CARD_USEAGE_EXCEEDD_LIMIT",
})


def classify_decline(reason: str | None) -> DeclineCategory:
    """Hard or soft for an ``errorInformation.reason`` (None or unknown: soft)."""
    if reason is not None and reason.strip().upper() in HARD_DECLINES:
        return DeclineCategory.HARD
    return DeclineCategory.SOFT
