"""Money is exact: property tests over amounts and currencies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.model import Money, MoneyError, currency_exponent
from ledgerlink.model.money import CURRENCY_EXPONENTS

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))


@st.composite
def money(draw: st.DrawFn, currency: str | None = None) -> Money:
    code = currency or draw(currencies)
    units = draw(st.integers(min_value=-10**12, max_value=10**12))
    return Money.from_minor_units(units, code)


@given(money(), st.data())
def test_addition_and_subtraction_are_exact(a: Money, data: st.DataObject) -> None:
    b = data.draw(money(a.currency))
    assert (a + b).minor_units == a.minor_units + b.minor_units
    assert (a + b - b) == a
    negated = -a
    assert -negated == a


@given(money(), st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=12).filter(any))
def test_allocation_sums_back_exactly(value: Money, weights: list[int]) -> None:
    parts = value.allocate(weights)
    assert sum(p.minor_units for p in parts) == value.minor_units
    assert len(parts) == len(weights)


@given(money())
def test_format_round_trips_through_text(value: Money) -> None:
    assert Money.of(value.format(), value.currency) == value


def test_exponents_follow_iso_4217() -> None:
    assert (currency_exponent("USD"), currency_exponent("JPY"), currency_exponent("BHD")) == (2, 0, 3)
    assert Money.of("102.21", "usd").format() == "102.21"
    assert Money.of("500", "JPY").format() == "500"
    assert Money.of("1.005", "BHD").format() == "1.005"


@pytest.mark.parametrize("amount,currency", [("1.005", "USD"), ("10.5", "JPY"), ("0.0001", "BHD")])
def test_more_places_than_the_currency_has_is_an_error(amount: str, currency: str) -> None:
    with pytest.raises(MoneyError, match="decimal places"):
        Money.of(amount, currency)


def test_floats_never_become_money() -> None:
    with pytest.raises(MoneyError, match="float"):
        Money.of(0.1, "USD")  # type: ignore[arg-type]


def test_mixed_currencies_are_refused() -> None:
    with pytest.raises(MoneyError, match="explicit rate"):
        Money.of("1", "USD") + Money.of("1", "EUR")


@pytest.mark.parametrize("bad", ["XYZ", "US", "", "€"])
def test_unknown_currencies_are_refused(bad: str) -> None:
    with pytest.raises((MoneyError, ValueError)):
        Money.of("1", bad)


def test_explicit_rounding_is_the_only_rounding() -> None:
    assert Money.rounded(Decimal("2.675"), "USD").format() == "2.68"  # half-even: 2.675 -> 2.68
    assert Money.rounded(Decimal("2.665"), "USD").format() == "2.66"
