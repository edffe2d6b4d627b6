"""Cybersource card type codes (spec §4.2) and the brand a card number belongs to.

The code is what travels on the wire (``paymentInformation.card.type``); the
brand name is what the canonical ``PaymentToken`` carries. Detecting the brand
from a number is only needed where a number legitimately passes through: the
sandbox, which must accept PAN-based requests the way the real service does.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date

CARD_TYPES: dict[str, str] = {
    "001": "visa",
    "002": "mastercard",
    "003": "amex",
    "004": "discover",
    "005": "diners",
    "007": "jcb",
    "036": "cartes_bancaires",
    "042": "maestro",
    "054": "elo",
    "062": "unionpay",
}
CARD_TYPE_CODES: dict[str, str] = {brand: code for code, brand in CARD_TYPES.items()}
# How reports name a card type: the Payment Batch Detail ``payment_method`` column and the chargeback report's
# ``cardType`` (display names), and the net funding's ``paymentSubType`` (two-letter codes).
PAYMENT_METHOD_NAMES: dict[str, str] = {
    "001": "Visa", "002": "MasterCard", "003": "American Express", "004": "Discover", "005": "Diners Club",
    "007": "JCB", "036": "Cartes Bancaires", "042": "Maestro", "054": "Elo", "062": "China UnionPay",
}
PAYMENT_SUBTYPES: dict[str, str] = {
    "001": "VI", "002": "MC", "003": "AX", "004": "DI", "005": "DC", "007": "JC", "036": "CB", "042": "MA",
    "054": "EL", "062": "UP",
}


def brand_for_type(code: str | None) -> str | None:
    """The brand behind a wire card type code; unknown codes stay unknown rather than guessed."""
    if code is None:
        return None
    return CARD_TYPES.get(code)


def type_for_number(number: str) -> str | None:
    """The card type code a number's issuer prefix belongs to, or None when no network matches."""
    if not number.isdigit():
        return None
    two, four = int(number[:2]), int(number[:4])
    if number[0] == "4":
        return "001"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "002"
    if two in (34, 37):
        return "003"
    if number.startswith(("6011", "65")) or 644 <= int(number[:3]) <= 649:
        return "004"
    if two in (36, 38) or 300 <= int(number[:3]) <= 305:
        return "005"
    if 3528 <= four <= 3589:
        return "007"
    if number.startswith("62"):
        return "062"
    return None


def expiry_date(month: str | int | None, year: str | int | None) -> date | None:
    """Last day of the expiry month (a card is valid through the end of it); None when either part is absent.

    Raises ``ValueError`` for a month or year that is not a number in range.
    """
    if month in (None, "") or year in (None, ""):
        return None
    m, y = int(month), int(year)
    if y < 100:
        y += 2000
    if not 1 <= m <= 12 or not 2000 <= y <= 2099:
        raise ValueError(f"{month}/{year} is not a card expiry month")
    return date(y, m, monthrange(y, m)[1])
