"""Labelled payments for training and evaluating the risk model, generated from a seed.

No real card data exists here to learn from, so this draws a web shop's authorisations with a
known label. The shapes follow how card-not-present fraud usually looks, with enough overlap that
the problem is not trivial:

- genuine payments: mostly returning customers paying near their usual amount from their home
  country by day; some travel, shop at night, buy something big, or use an email without their
  name; the fraud screen raises a code on some of them too;
- stolen cards (half of fraud): large amounts, often a new customer or a known account paying far
  above its usual amount from a new country, at any hour, the screen's codes more often raised;
- card testing (a quarter): small amounts in quick succession from a fresh identity;
- friendly fraud (a quarter): the cardholder disputes a purchase that looks like any other one, so
  nothing at authorisation can tell (it bounds what any model can reach).

Countries are the home ``US``, a handful of foreign ones, and ``XA``/``XB``, ISO 3166 user-assigned
codes that stand for "a country on the merchant's watch list" (the generator names no real country
as risky). ``generate(seed, n)`` always returns the same payments for the same arguments.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ledgerlink.risk.features import CustomerHistory, FeatureSettings, PaymentFacts

HOME = "US"
FOREIGN = ("CA", "GB", "DE", "FR", "MX", "JP", "AU", "BR", "IN", "ES")
WATCH = ("XA", "XB")
SETTINGS = FeatureSettings(home_countries=frozenset({HOME}), watch_countries=frozenset(WATCH), timezone="UTC")
FRAUD_RATE = 0.04
REVIEW_CODE = "480"  # the fraud screen held the payment for review (the baseline the model is compared with)
_FIRST = ("ada", "alan", "grace", "linus", "margaret", "ken", "barbara", "edsger", "frances", "donald", "radia",
          "john", "mary", "tim", "sophie", "yusuf", "mei", "carlos", "amara", "ivan")
_LAST = ("lovelace", "turing", "hopper", "torvalds", "hamilton", "thompson", "liskov", "dijkstra", "allen",
         "knuth", "perlman", "backus", "shelley", "berners", "wilson", "ali", "chen", "garcia", "okafor", "petrov")
_HANDLES = ("sunny", "blue_fox", "gamer", "xx_shop", "deals", "qwerty", "mailbox", "night_owl", "happy", "star")
_TLDS = ("de", "fr", "br", "in", "mx", "es", "jp")
_EPOCH = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Sample:
    facts: PaymentFacts
    history: CustomerHistory
    fraud: bool
    scenario: str


def _amount(value: float) -> Decimal:
    return Decimal(str(max(0.5, round(value, 2)))).quantize(Decimal("0.01"))


def _history(rng: random.Random, *, known: bool, fraud_burst: bool = False) -> tuple[CustomerHistory, float]:
    """An earlier record for a customer and their usual amount."""
    usual = math.exp(rng.gauss(math.log(60.0), 0.8))
    if not known:
        burst = rng.randint(2, 8) if fraud_burst else 0
        return CustomerHistory(payments=burst, mean_amount=_amount(rng.uniform(1, 5)) if burst else None,
                               last_hour=burst, last_day=burst, countries=frozenset()), usual
    payments = 1 + int(rng.expovariate(1 / 8))
    countries = {HOME} if rng.random() < 0.93 else {HOME, rng.choice(FOREIGN)}
    last_day = min(payments, int(rng.expovariate(1 / 0.3)))
    last_hour = min(last_day, 1 if rng.random() < 0.03 else 0)
    return CustomerHistory(payments=payments, mean_amount=_amount(usual), last_hour=last_hour, last_day=last_day,
                           countries=frozenset(countries)), usual


def _email(rng: random.Random, first: str, last: str, *, named: bool, foreign_domain: bool) -> str:
    local = f"{first}.{last}" if named and rng.random() < 0.6 else (f"{first}{rng.randint(1, 99)}" if named
                                                                   else f"{rng.choice(_HANDLES)}{rng.randint(1, 999)}")
    domain = f"mail.{rng.choice(_TLDS)}" if foreign_domain else rng.choice(("example.com", "mail.com", "web.net"))
    return f"{local}@{domain}"


def _when(rng: random.Random, index: int, *, night_rate: float) -> datetime:
    day = _EPOCH + timedelta(days=index % 90)
    hour = rng.randint(0, 5) if rng.random() < night_rate else rng.choice((8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                                                                           18, 19, 20, 21, 22, 23, 7, 6))
    return day + timedelta(hours=hour, minutes=rng.randint(0, 59))


def _screen(rng: random.Random, p: dict[str, float]) -> tuple[tuple[str, ...], int | None]:
    """The fraud screen's codes and score for a payment whose code rates are ``p``."""
    codes: list[str] = []
    if rng.random() < p["velocity"]:
        codes += rng.sample(("VEL-CC", "VEL-ADDR", "VEL-NAME", "V"), rng.randint(1, 2))
    if rng.random() < p["address"]:
        codes += rng.sample(("MM-A", "MM-BIN", "COR-BA", "UNV-ADDR", "G", "Y"), rng.randint(1, 2))
    if rng.random() < p["internet"]:
        codes += rng.sample(("FREE-EM", "RISK-EM", "MM-IPBCO", "UNV-NID", "I"), rng.randint(1, 2))
    if rng.random() < p["negative"]:
        codes.append(rng.choice(("NEG-EM", "NEG-CC", "NEG-BA", "F")))
    score = None
    if rng.random() < 0.9:
        score = int(max(0, min(99, rng.gauss(p["score"], 18))))
    return tuple(dict.fromkeys(codes)), score


_GENUINE = {"velocity": 0.05, "address": 0.15, "internet": 0.12, "negative": 0.004, "score": 30}
_FRAUD = {"velocity": 0.40, "address": 0.45, "internet": 0.35, "negative": 0.12, "score": 62}


def _sample(rng: random.Random, index: int) -> Sample:
    fraud = rng.random() < FRAUD_RATE
    scenario = "genuine"
    if fraud:
        roll = rng.random()
        scenario = "stolen_card" if roll < 0.5 else ("card_testing" if roll < 0.75 else "friendly")
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    if scenario in ("genuine", "friendly"):
        known = rng.random() < 0.7
        history, usual = _history(rng, known=known)
        amount = usual * math.exp(rng.gauss(0, 0.45)) if known else math.exp(rng.gauss(math.log(70), 0.9))
        if rng.random() < 0.04:
            amount *= rng.uniform(3, 8)  # a big purchase now and then
        travelling = rng.random() < 0.06
        country = rng.choice(FOREIGN) if travelling else HOME
        if rng.random() < 0.004:
            country = rng.choice(WATCH)
        email = _email(rng, first, last, named=rng.random() < 0.82, foreign_domain=rng.random() < 0.03)
        at = _when(rng, index, night_rate=0.08)
        codes, score = _screen(rng, _GENUINE)
    elif scenario == "stolen_card":
        takeover = rng.random() < 0.4
        history, usual = _history(rng, known=takeover)
        amount = max(usual * rng.uniform(2, 10), 80.0) if takeover else math.exp(rng.gauss(math.log(260), 0.7))
        roll = rng.random()
        country = HOME if roll < 0.5 else (rng.choice(FOREIGN) if roll < 0.85 else rng.choice(WATCH))
        email = _email(rng, first, last, named=rng.random() < 0.4, foreign_domain=rng.random() < 0.2)
        at = _when(rng, index, night_rate=0.3)
        codes, score = _screen(rng, _FRAUD)
    else:  # card testing
        history, _ = _history(rng, known=False, fraud_burst=True)
        amount = rng.uniform(1, 6)
        country = HOME if rng.random() < 0.6 else rng.choice(FOREIGN + WATCH)
        email = _email(rng, first, last, named=rng.random() < 0.3, foreign_domain=rng.random() < 0.15)
        at = _when(rng, index, night_rate=0.4)
        codes, score = _screen(rng, {**_FRAUD, "velocity": 0.6})
    if scenario == "friendly":
        codes, score = _screen(rng, _GENUINE)
    if (score or 0) >= 70 or any(code.startswith("NEG-") or code == "F" for code in codes):
        codes = (*codes, REVIEW_CODE)
    facts = PaymentFacts(amount=_amount(amount), currency="USD", at=at, country=country, email=email,
                         first_name=first.title(), last_name=last.title(), reason_codes=codes, gateway_score=score)
    return Sample(facts=facts, history=history, fraud=fraud, scenario=scenario)


def generate(seed: int, n: int) -> list[Sample]:
    """``n`` labelled payments; the same ``seed`` and ``n`` always give the same payments."""
    rng = random.Random(seed)
    return [_sample(rng, index) for index in range(n)]
