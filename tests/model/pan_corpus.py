"""Generated inputs for the card-number detector: real card shapes, and everything that is not a card.

``NETWORKS`` lists the IIN ranges and lengths networks issue; ``card_number`` builds a Luhn-valid number in
one. ``lookalikes`` generates, per category, the digit-heavy text a payments engine sees that must not be
taken for a card: order and invoice numbers, phone numbers, timestamps, UUIDs and digests, gateway ids,
amounts, and log-like lines mixing them. ``benchmarks/cardnumbers.py --false-positives`` prints the rates
this corpus gives (the figures in docs/security.md).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

from ledgerlink.model.cardnumbers import luhn_valid

# (first prefix, last prefix, lengths): every range the detector must know, per the networks' IIN tables.
NETWORKS: list[tuple[str, str, tuple[int, ...]]] = [
    ("4", "4", (13, 16, 19)),  # Visa
    ("51", "55", (16,)), ("2221", "2720", (16,)),  # Mastercard
    ("50", "50", tuple(range(13, 20))), ("56", "59", tuple(range(13, 20))),  # Maestro
    ("6304", "6304", tuple(range(13, 20))), ("6759", "6763", tuple(range(13, 20))),  # Maestro, Laser
    ("34", "34", (15,)), ("37", "37", (15,)),  # American Express
    ("300", "305", (14, 16, 17, 18, 19)), ("36", "36", (14, 16, 17, 18, 19)),  # Diners Club
    ("38", "39", (14, 16, 17, 18, 19)),
    ("3528", "3589", (16, 17, 18, 19)),  # JCB
    ("6011", "6011", (16, 17, 18, 19)), ("644", "649", (16, 17, 18, 19)), ("65", "65", (16, 17, 18, 19)),  # Discover
    ("62", "62", (16, 17, 18, 19)), ("81", "81", (16, 17, 18, 19)),  # UnionPay
    ("60", "60", (16,)), ("82", "82", (16,)), ("508", "508", (16,)),  # RuPay
    ("636", "639", (16,)),  # InterPayment, InstaPayment
    ("2200", "2204", (16, 17, 18, 19)), ("2205", "2205", (16,)),  # Mir, Borica
    ("31", "31", (19,)),  # China T-Union
    ("9792", "9792", (16,)), ("9860", "9860", (16,)), ("8600", "8600", (16,)),  # Troy, Humo, Uzcard
    ("9704", "9704", (16, 19)), ("1946", "1946", (16, 18, 19)),  # Napas, GPN
]


def complete_with_luhn(partial: str) -> str:
    for check in "0123456789":
        if luhn_valid(partial + check):
            return partial + check
    raise AssertionError("unreachable")


def card_number(rng: random.Random, network: tuple[str, str, tuple[int, ...]], length: int | None = None) -> str:
    low, high, lengths = network
    prefix = str(rng.randint(int(low), int(high))).zfill(len(low))
    length = length or rng.choice(lengths)
    body = "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return complete_with_luhn(prefix + body)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _order(rng: random.Random) -> str:
    forms: list[Callable[[], str]] = [
        lambda: f"ORD-{rng.randint(1, 10**9):09d}",
        lambda: f"WEB-{rng.randint(1, 10**7):07d}",
        lambda: f"#{rng.randint(1000, 999_999)}",
        lambda: f"SO{rng.randint(10**5, 10**8)}",
        lambda: f"{rng.randint(100, 999)}-{_digits(rng, 7)}-{_digits(rng, 7)}",  # Amazon
        lambda: f"{_digits(rng, 2)}-{_digits(rng, 5)}-{_digits(rng, 5)}",  # eBay
        lambda: f"{rng.randint(10**5, 10**12)}",  # a bare shop order number
        lambda: f"PO {rng.randint(45 * 10**8, 46 * 10**8 - 1)}",  # an SAP purchase order
        lambda: f"B{uuid.UUID(int=rng.getrandbits(128)).hex[:6]}-{rng.randint(0, 10**7 - 1):07d}",
    ]
    return rng.choice(forms)()


def _invoice(rng: random.Random) -> str:
    forms: list[Callable[[], str]] = [
        lambda: f"INV-{rng.randint(2020, 2030)}-{rng.randint(1, 10**6):06d}",
        lambda: f"INV{rng.randint(10**7, 10**8 - 1)}",
        lambda: f"{rng.randint(9 * 10**9, 10**10 - 1)}",  # 10-digit billing documents
        lambda: f"F{rng.randint(2020, 2030)}/{rng.randint(1, 10**6):06d}",
        lambda: f"{rng.randint(10**9, 10**10 - 1)}",  # 10-digit invoice numbers
        lambda: f"RE-{rng.randint(10**3, 10**4 - 1)}-{rng.randint(10**5, 10**6 - 1)}",
    ]
    return rng.choice(forms)()


# (country code, national number lengths): a spread of the numbering plans, E.164 caps the total at 15 digits.
_PLANS = [("1", (10,)), ("44", (10,)), ("49", (10, 11, 12)), ("33", (9,)), ("39", (9, 10, 11)), ("34", (9,)),
          ("31", (9,)), ("41", (9,)), ("43", (10, 11, 12, 13)), ("45", (8,)), ("46", (9,)), ("47", (8,)),
          ("48", (9,)), ("420", (9,)), ("86", (11,)), ("91", (10,)), ("81", (10,)), ("61", (9,)), ("55", (10, 11)),
          ("52", (10,)), ("7", (10,)), ("90", (10,)), ("971", (9,)), ("65", (8,)), ("27", (9,)), ("234", (10,))]


def _national(rng: random.Random, n: int) -> str:
    return str(rng.randint(1, 9)) + _digits(rng, n - 1)


def _phone_e164(rng: random.Random) -> str:
    code, lengths = rng.choice(_PLANS)
    number = _national(rng, rng.choice(lengths))
    forms = [f"+{code}{number}", f"+{code} {number[:3]} {number[3:6]} {number[6:]}",
             f"+{code}-{number[:3]}-{number[3:]}", f"tel:+{code}{number}"]
    return rng.choice(forms)


def _phone_national(rng: random.Random) -> str:
    forms: list[Callable[[], str]] = [
        lambda: f"({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
        lambda: f"{rng.randint(200, 999)}-{rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
        lambda: f"{rng.randint(200, 999)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}",
        lambda: f"0{rng.randint(10, 999)} {_digits(rng, rng.choice((7, 8)))}",
        lambda: f"0{rng.randint(150, 179)} {_digits(rng, 8)}",  # a German mobile
        lambda: f"00{rng.choice(_PLANS)[0]} {_national(rng, 10)}",
        lambda: f"07{_digits(rng, 3)} {_digits(rng, 6)}",  # a UK mobile
    ]
    return rng.choice(forms)()


def _phone_digits_only(rng: random.Random) -> str:
    """Country code and number with no ``+`` (how some systems keep an MSISDN): the hard case."""
    code, lengths = rng.choice(_PLANS)
    return f"{code}{_national(rng, rng.choice(lengths))}"


def _timestamp(rng: random.Random) -> str:
    seconds = rng.randint(1_500_000_000, 1_900_000_000)
    import datetime as dt

    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    forms = [
        f"{seconds}", f"{seconds * 1000 + rng.randint(0, 999)}", f"{seconds * 10**6 + rng.randint(0, 10**6 - 1)}",
        f"{seconds * 10**9 + rng.randint(0, 10**9 - 1)}", moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        moment.strftime("%Y-%m-%d %H:%M:%S.") + _digits(rng, 6), moment.strftime("%Y%m%d%H%M%S"),
        moment.strftime("%Y%m%d%H%M%S") + _digits(rng, 3), moment.strftime("%d.%m.%Y %H:%M"),
        moment.strftime("%Y-%m-%d") + " " + _digits(rng, 6),
    ]
    return rng.choice(forms)


def _uuid(rng: random.Random) -> str:
    value = uuid.UUID(int=rng.getrandbits(128), version=4)
    forms = [str(value), str(value).upper(), value.hex, f"urn:uuid:{value}", f"{rng.getrandbits(160):040x}",
             f"{rng.getrandbits(256):064x}"]
    return rng.choice(forms)


def _gateway_id(rng: random.Random) -> str:
    forms: list[Callable[[], str]] = [
        lambda: _digits(rng, 22),  # Cybersource transaction ids
        lambda: "70" + _digits(rng, 17),  # TMS instrument identifiers (19 digits)
        lambda: f"{rng.getrandbits(128):032X}",  # TMS customer and payment instrument ids
        lambda: f"{rng.randint(10**5, 10**6 - 1)}{rng.randint(10**5, 10**6 - 1)}",  # 12-digit batch ids
        lambda: "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(16)),  # reconciliation
    ]
    return rng.choice(forms)()


def _network_transaction_id(rng: random.Random) -> str:
    """Visa transaction identifiers and similar processor references: 15 digits."""
    return _digits(rng, 15)


def _amount(rng: random.Random) -> str:
    value = rng.randint(1, 10**11)
    units, cents = divmod(value, 100)
    forms = [f"{units}.{cents:02d}", f"{units:,}.{cents:02d}", f"{units:,}.{cents:02d}".replace(",", "X")
             .replace(".", ",").replace("X", "."), f"{units:,}".replace(",", " ") + f",{cents:02d}", str(value),
             f"USD {units}.{cents:02d}"]
    return rng.choice(forms)


def _line(rng: random.Random) -> str:
    return (f"order {_order(rng)} invoice {_invoice(rng)} paid {_amount(rng)} at {_timestamp(rng)}; "
            f"call {_phone_e164(rng)} or {_phone_national(rng)}; txn {_gateway_id(rng)} trace {_uuid(rng)}")


CATEGORIES: dict[str, Callable[[random.Random], str]] = {
    "order numbers": _order,
    "invoice numbers": _invoice,
    "phone numbers, E.164": _phone_e164,
    "phone numbers, national": _phone_national,
    "phone numbers, country code without +": _phone_digits_only,
    "timestamps": _timestamp,
    "UUIDs and digests": _uuid,
    "gateway ids (22-digit transactions, 19-digit tokens, ...)": _gateway_id,
    "15-digit network transaction ids": _network_transaction_id,
    "amounts": _amount,
    "log lines mixing all of these": _line,
}


def lookalikes(seed: int = 20261121, per_category: int = 10_000) -> dict[str, list[str]]:
    rng = random.Random(seed)
    return {name: [make(rng) for _ in range(per_category)] for name, make in CATEGORIES.items()}
