"""Features of a payment known at authorisation, each with a sentence a reviewer can read.

Inputs are the payment as the gateway reported it (``PaymentFacts``) and what the engine saw of
the same customer before (``CustomerHistory``). Every feature is a number the model weighs, and
``extract`` also says in words what it was for this payment ("amount is 8.0x this customer's
usual 60.00 USD"), so the top contributions of a score explain themselves.

The same code computes the features for training (``synthetic.py``) and for scoring, so the two
cannot drift apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """What the gateway told us about one authorisation (never a card number)."""

    amount: Decimal  # in the currency's major units
    currency: str
    at: datetime  # time-zone aware
    country: str | None = None  # billing country, ISO 3166 alpha-2
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    reason_codes: tuple[str, ...] = ()  # the fraud screen's reason, factor and info codes
    gateway_score: int | None = None  # the fraud screen's own score, 0..100


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    """The same customer's earlier payments, as the engine recorded them."""

    payments: int = 0
    mean_amount: Decimal | None = None  # of earlier payments in the same currency
    last_hour: int = 0
    last_day: int = 0
    countries: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FeatureSettings:
    home_countries: frozenset[str] = frozenset({"US"})
    watch_countries: frozenset[str] = frozenset()
    timezone: str = "UTC"  # for the time of day


@dataclass(frozen=True, slots=True)
class FeatureValue:
    value: float
    description: str


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    meaning: str  # for the model's documentation


FEATURES: tuple[Feature, ...] = (
    Feature("amount_vs_history", "log2 of the amount over the customer's mean earlier amount (0 without history)"),
    Feature("amount_size", "log10 of 1 + the amount in major units"),
    Feature("new_customer", "1 when the engine has seen no earlier payment of the customer"),
    Feature("velocity_hour", "earlier payments of the customer in the last hour (capped at 10)"),
    Feature("velocity_day", "earlier payments of the customer in the last 24 hours (capped at 20)"),
    Feature("email_name_mismatch", "1 when the email's local part contains neither of the cardholder's names"),
    Feature("email_country_mismatch", "1 when the email's country domain differs from the billing country"),
    Feature("foreign_country", "1 when the billing country is not one of the home countries"),
    Feature("watch_country", "1 when the billing country is on the watch list"),
    Feature("new_country", "1 when a known customer pays from a country not seen for them before"),
    Feature("night", "1 when placed between 00:00 and 05:59 local time"),
    Feature("screen_velocity", "the fraud screen's velocity codes (VEL-*, factor V), capped at 5"),
    Feature("screen_address", "the fraud screen's address codes (MM-*, COR-*, UNV-ADDR, INTL-*, factors A G U Y)"),
    Feature("screen_internet", "the fraud screen's email, IP and identity codes (FREE-EM, RISK-EM, factors D I P Q)"),
    Feature("screen_negative", "1 when the fraud screen matched a negative list (NEG-*, factors F W)"),
    Feature("screen_score", "the fraud screen's own score / 100 (0 when it gave none)"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)

# Two-letter domains that people use regardless of country (.io, .co, .me, ...): not a country signal.
_GENERIC_CC = frozenset({"io", "co", "me", "tv", "ai", "ly", "gg", "fm", "cc", "ws", "to", "la", "sh", "am", "it"})
_TLD_COUNTRY = {"uk": "GB"}
_VELOCITY = ("VEL", "VELS", "VELL", "VELI", "VELV")
_ADDRESS = ("MM-", "COR-", "UNV-ADDR", "INTL-", "MIL-")
_INTERNET = ("FREE-EM", "INV-EM", "RISK-EM", "UNV-EM", "UNV-NID", "UNV-RISK", "MM-EMBCO", "MM-IPBCO", "MM-IPBC",
             "MM-IPBST", "INTL-IPCO", "BAD-FP", "RISK-")
_FACTORS = {"V": "velocity", "A": "address", "G": "address", "U": "address", "Y": "address", "D": "internet",
            "I": "internet", "P": "internet", "Q": "internet", "F": "negative", "W": "negative"}
_LETTERS = re.compile(r"[a-z]+")


def _kind(code: str) -> str | None:
    """Which feature a fraud-screen code counts towards."""
    if code in _FACTORS:
        return _FACTORS[code]
    if code.startswith("NEG-"):
        return "negative"
    if code.startswith(_INTERNET):  # before address: MM-EMBCO is an email/country code
        return "internet"
    if code.startswith(_ADDRESS):
        return "address"
    if code.split("-", 1)[0] in _VELOCITY:
        return "velocity"
    return None


def screen_codes(codes: Iterable[str]) -> dict[str, list[str]]:
    """The fraud screen's codes by the feature they count towards."""
    found: dict[str, list[str]] = {"velocity": [], "address": [], "internet": [], "negative": []}
    for code in codes:
        kind = _kind(code.strip().upper())
        if kind is not None and code not in found[kind]:
            found[kind].append(code)
    return found


def _email_parts(email: str | None) -> tuple[str, str] | None:
    if not email or "@" not in email:
        return None
    local, _, domain = email.strip().lower().rpartition("@")
    return local, domain


def _names(facts: PaymentFacts) -> list[str]:
    words = []
    for part in (facts.first_name, facts.last_name):
        words += [w for w in _LETTERS.findall((part or "").lower()) if len(w) >= 3]
    return words


def email_name_mismatch(facts: PaymentFacts) -> bool:
    parts = _email_parts(facts.email)
    names = _names(facts)
    if parts is None or not names:
        return False  # nothing to compare
    local = parts[0]
    return not any(name in local or name[:4] in local for name in names)


def email_country(email: str | None) -> str | None:
    """The country an email's domain names (``.de`` -> DE), or None for generic domains."""
    parts = _email_parts(email)
    if parts is None:
        return None
    tld = parts[1].rsplit(".", 1)[-1]
    if len(tld) != 2 or not tld.isalpha() or tld in _GENERIC_CC:
        return None
    return _TLD_COUNTRY.get(tld, tld.upper())


def _local_time(at: datetime, timezone: str) -> datetime:
    return at.astimezone(ZoneInfo(timezone)) if at.tzinfo is not None else at


def extract(facts: PaymentFacts, history: CustomerHistory, settings: FeatureSettings) -> dict[str, FeatureValue]:
    """Every feature of ``FEATURES`` for one payment, with what it was in words."""
    amount = float(facts.amount)
    money = f"{facts.amount} {facts.currency}"
    country = (facts.country or "").upper() or None
    values: dict[str, FeatureValue] = {}

    mean = float(history.mean_amount) if history.mean_amount else 0.0
    if history.payments and mean > 0 and amount > 0:
        ratio = amount / mean
        values["amount_vs_history"] = FeatureValue(
            max(-4.0, min(6.0, math.log2(ratio))),
            f"amount {money} is {ratio:.1f}x this customer's usual {history.mean_amount:.2f}")
    else:
        values["amount_vs_history"] = FeatureValue(0.0, f"no earlier {facts.currency} payment to compare {money} with")
    values["amount_size"] = FeatureValue(math.log10(1.0 + max(amount, 0.0)), f"amount of {money}")
    values["new_customer"] = FeatureValue(float(history.payments == 0),
                                          "first payment seen from this customer" if history.payments == 0
                                          else f"{history.payments} earlier payment(s) from this customer")
    values["velocity_hour"] = FeatureValue(float(min(history.last_hour, 10)),
                                           f"{history.last_hour} other payment(s) from this customer in the last hour")
    values["velocity_day"] = FeatureValue(float(min(history.last_day, 20)),
                                          f"{history.last_day} other payment(s) from this customer in 24 hours")
    mismatch = email_name_mismatch(facts)
    values["email_name_mismatch"] = FeatureValue(float(mismatch),
                                                 "the email address does not mention the cardholder's name"
                                                 if mismatch else "the email address matches the cardholder")
    mail_country = email_country(facts.email)
    differs = mail_country is not None and country is not None and mail_country != country
    values["email_country_mismatch"] = FeatureValue(
        float(differs), f"email domain is in {mail_country}, billing country is {country}" if differs
        else "email domain and billing country agree (or say nothing)")
    foreign = country is not None and country not in settings.home_countries
    values["foreign_country"] = FeatureValue(float(foreign), f"billing country {country} is not a home country"
                                             if foreign else f"billing country {country or 'not given'}")
    watched = country is not None and country in settings.watch_countries
    values["watch_country"] = FeatureValue(float(watched), f"billing country {country} is on the watch list"
                                           if watched else "billing country not on the watch list")
    new_country = bool(history.payments and country and history.countries and country not in history.countries)
    values["new_country"] = FeatureValue(
        float(new_country), f"first payment from {country} for this customer (before: "
        f"{', '.join(sorted(history.countries))})" if new_country else "no change of country")
    local = _local_time(facts.at, settings.timezone)
    night = local.hour < 6
    values["night"] = FeatureValue(float(night), f"placed at {local:%H:%M} {settings.timezone}")
    codes = screen_codes(facts.reason_codes)
    for kind, cap in (("velocity", 5), ("address", 5), ("internet", 5)):
        found = codes[kind]
        values[f"screen_{kind}"] = FeatureValue(float(min(len(found), cap)),
                                                f"fraud screen {kind} codes: {', '.join(found)}" if found
                                                else f"no fraud screen {kind} codes")
    negative = codes["negative"]
    values["screen_negative"] = FeatureValue(float(bool(negative)),
                                             f"fraud screen negative-list match: {', '.join(negative)}"
                                             if negative else "no negative-list match")
    score = facts.gateway_score
    values["screen_score"] = FeatureValue((max(0, min(score, 100)) / 100.0) if score is not None else 0.0,
                                          f"fraud screen score {score}" if score is not None
                                          else "no fraud screen score")
    return values


def vector(values: dict[str, FeatureValue]) -> list[float]:
    """The values in ``FEATURES`` order (what the model's weights line up with)."""
    return [values[name].value for name in FEATURE_NAMES]


__all__ = ["FEATURES", "FEATURE_NAMES", "CustomerHistory", "Feature", "FeatureSettings", "FeatureValue",
           "PaymentFacts", "email_country", "email_name_mismatch", "extract", "screen_codes", "vector"]

