"""Exact money: a ``Decimal`` amount in a currency's minor units.

Money never passes through ``float``. Amounts are checked against the currency's
ISO 4217 exponent when a value is built, so a value that cannot be represented
in the currency (``1.005 USD``, ``10.5 JPY``) is an error, not a silent rounding.
Rounding happens only where a caller asks for it, with the rule named.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

# ISO 4217 minor-unit exponents for active currencies. Currencies missing from
# this table are refused rather than guessed.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
    "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BRL": 2,
    "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2, "CHF": 2, "CLP": 0, "CNY": 2,
    "COP": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2,
    "ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2,
    "GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2,
    "IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0,
    "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3,
    "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2,
    "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2,
    "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2, "RON": 2,
    "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2,
    "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SYP": 2, "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2,
    "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0, "USD": 2, "UYU": 2,
    "UZS": 2, "VES": 2, "VND": 0, "VUV": 0, "WST": 2, "XAF": 0, "XCD": 2, "XOF": 0, "XPF": 0, "YER": 2,
    "ZAR": 2, "ZMW": 2, "ZWL": 2,
}


class MoneyError(ValueError):
    """A money value or operation that cannot be exact."""


def currency_exponent(currency: str) -> int:
    """Minor-unit exponent of ``currency`` (USD 2, JPY 0, BHD 3)."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}: not an ISO 4217 code this engine knows") from None


def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-currency_exponent(currency))


def to_decimal(value: Any) -> Decimal:
    """Read an amount from text, int or Decimal; a float is refused because it is already inexact."""
    if isinstance(value, (bool, float)):
        raise MoneyError(f"amount must be a decimal string, int or Decimal, not {type(value).__name__}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"{value!r} is not a decimal amount") from None
    else:
        raise MoneyError(f"amount must be a decimal string, int or Decimal, not {type(value).__name__}")
    if not result.is_finite():
        raise MoneyError(f"{value!r} is not a finite amount")
    return result


class Money(BaseModel):
    """An exact amount of one currency, quantised to its minor units."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: str

    @field_validator("currency", mode="before")
    @classmethod
    def _known_currency(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise MoneyError("currency must be a three-letter ISO 4217 code")
        code = value.strip().upper()
        currency_exponent(code)
        return code

    @field_validator("amount", mode="before")
    @classmethod
    def _exact_amount(cls, value: Any) -> Decimal:
        return to_decimal(value)

    @model_validator(mode="after")
    def _in_minor_units(self) -> Money:
        quantum = _quantum(self.currency)
        try:
            quantised = self.amount.quantize(quantum)
        except InvalidOperation:
            raise MoneyError(f"{self.amount} is too large to be an amount of {self.currency}") from None
        if quantised != self.amount:
            raise MoneyError(
                f"{self.amount} {self.currency} has more decimal places than the currency's "
                f"{currency_exponent(self.currency)}"
            )
        object.__setattr__(self, "amount", quantised)
        return self

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        """Build a value; a problem is a ``MoneyError`` (inside other records pydantic names the field)."""
        try:
            return cls(amount=amount, currency=currency)
        except ValidationError as exc:
            raise MoneyError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    @classmethod
    def from_minor_units(cls, units: int, currency: str) -> Money:
        return cls.of(Decimal(units).scaleb(-currency_exponent(currency)), currency)

    @classmethod
    def rounded(cls, amount: Any, currency: str, rounding: str = ROUND_HALF_EVEN) -> Money:
        """Build a value by rounding ``amount`` to the currency's minor units with an explicit rule."""
        return cls.of(to_decimal(amount).quantize(_quantum(currency.upper()), rounding=rounding), currency)

    @property
    def minor_units(self) -> int:
        return int(self.amount.scaleb(currency_exponent(self.currency)))

    @property
    def exponent(self) -> int:
        return currency_exponent(self.currency)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency} without an explicit rate")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(amount=self.amount + self._same(other).amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(amount=self.amount - self._same(other).amount, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def __abs__(self) -> Money:
        return Money(amount=abs(self.amount), currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other).amount

    def __hash__(self) -> int:
        return hash((self.amount, self.currency))

    def is_zero(self) -> bool:
        return self.amount == 0

    def is_positive(self) -> bool:
        return self.amount > 0

    def allocate(self, weights: list[int]) -> list[Money]:
        """Split into parts proportional to ``weights`` that sum exactly to this value (largest remainder)."""
        if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
            raise MoneyError("allocation weights must be non-negative and not all zero")
        total = sum(weights)
        units = self.minor_units
        shares = [units * w // total for w in weights]
        remainders = sorted(range(len(weights)), key=lambda i: (units * weights[i]) % total, reverse=True)
        for i in remainders[: units - sum(shares)]:
            shares[i] += 1
        return [Money.from_minor_units(s, self.currency) for s in shares]

    def format(self) -> str:
        """Plain decimal text with exactly the currency's decimal places (``"102.21"``, ``"500"``)."""
        return f"{self.amount:.{self.exponent}f}"

    def __str__(self) -> str:
        return f"{self.format()} {self.currency}"


def sum_money(values: list[Money], currency: str) -> Money:
    """Sum values of one currency; an empty list sums to zero of ``currency``."""
    total = Money.zero(currency)
    for value in values:
        total = total + value
    return total
