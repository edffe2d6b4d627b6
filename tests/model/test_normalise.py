"""Normalising phones, countries, regions, postal codes and whole parties: examples and properties."""

from __future__ import annotations

import phonenumbers
import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerlink.mappings.engine import Template
from ledgerlink.model import Address, InvalidInput, Party, normalise

US_STATES = [s for s in pycountry.subdivisions.get(country_code="US")]
COUNTRIES = list(pycountry.countries)


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("(415) 888-0000", "US", "+14158880000"),
    ("415.888.0000", "US", "+14158880000"),
    ("+1 415 888 0000", "GB", "+14158880000"),  # a country code wins over the region
    ("020 7946 0958", "GB", "+442079460958"),
    ("  +44 (0)20 7946 0958 ", "US", "+442079460958"),
    ("", "US", None),
    (None, "US", None),
])
def test_phone_examples(raw: str | None, region: str, expected: str | None) -> None:
    assert normalise.phone_e164(raw, region) == expected


@pytest.mark.parametrize("raw", ["12", "call after 5pm", "+1 415 888", "999999999999999999"])
def test_bad_phones_name_the_field(raw: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise.phone_e164(raw, "US", field="Customer.Phone", source="dynamics_sl customer C1")
    assert refused.value.issues[0].field == "Customer.Phone"
    assert "dynamics_sl customer C1" in str(refused.value)


@pytest.mark.parametrize(("raw", "expected"), [
    ("us", "US"), ("USA", "US"), ("840", "US"), ("United States", "US"), ("united states of america", "US"),
    ("U.S.A.", "US"), ("UK", "GB"), ("Deutschland", None), ("Germany", "DE"), (" gb ", "GB"),
])
def test_country_examples(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidInput) as refused:
            normalise.country_code(raw, field="billTo.country")
        assert refused.value.issues[0].field == "billTo.country"
    else:
        assert normalise.country_code(raw) == expected


@pytest.mark.parametrize(("raw", "country", "expected"), [
    ("California", "US", "CA"), ("ca", "US", "CA"), ("US-CA", "US", "CA"), ("new york", "US", "NY"),
    ("Ontario", "CA", "ON"), ("qc", "CA", "QC"), ("Bayern", "DE", "BY"), ("Bavaria", "DE", "Bavaria"),
    ("nsw", None, "NSW"),
])
def test_region_examples(raw: str, country: str | None, expected: str) -> None:
    assert normalise.region_code(raw, country) == expected


def test_unknown_us_state_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise.region_code("Narnia", "US", field="address.region")
    assert refused.value.issues[0].field == "address.region"


@pytest.mark.parametrize(("raw", "country", "expected"), [
    ("94105", "US", "94105"), ("941051234", "US", "94105-1234"), ("94105 1234", "US", "94105-1234"),
    ("k1a0b1", "CA", "K1A 0B1"), ("sw1a1aa", "GB", "SW1A 1AA"), ("SW1Y  4JH", "GB", "SW1Y 4JH"),
    ("1011 ab", "NL", "1011 AB"), ("75008", None, "75008"),
])
def test_postal_examples(raw: str, country: str | None, expected: str) -> None:
    assert normalise.postal_code(raw, country) == expected


@pytest.mark.parametrize(("raw", "country"), [("9410", "US"), ("ABCDE", "US"), ("123456", "CA"), ("12345", "GB")])
def test_malformed_postal_codes_are_refused(raw: str, country: str) -> None:
    with pytest.raises(InvalidInput):
        normalise.postal_code(raw, country)


def test_party_reports_every_problem_at_once() -> None:
    party = Party(name="  Ada   Lovelace ", email="ADA@Example.com", phone="12",
                  address=Address(line1=" 1  Main St ", region="Narnia", postal_code="1", country="US"))
    with pytest.raises(InvalidInput) as refused:
        normalise.party(party, source="dynamics_sl customer C1")
    assert {i.field for i in refused.value.issues} == {"phone", "address.region", "address.postal_code"}


def test_party_reads_the_phone_in_the_address_country() -> None:
    party = Party(first_name=" Ada", last_name="Lovelace ", phone="020 7946 0958",
                  address=Address(line1="12  St James's Sq", city="London", postal_code="sw1y4jh",
                                  country="United Kingdom"))
    normalised = normalise.party(party, default_region="US")
    assert normalised.name == "Ada Lovelace" and normalised.phone == "+442079460958"
    assert normalised.address == Address(line1="12 St James's Sq", city="London", postal_code="SW1Y 4JH",
                                         country="GB")
    assert normalise.party(Party(address=Address(line1="  ")), default_region="US").address is None


def test_mapping_filters() -> None:
    assert Template("{id|phone:GB}").render({"id": "020 7946 0958"}) == "+442079460958"
    assert Template("{id|country}").render({"id": "germany"}) == "DE"
    assert Template("{id|region:US}").render({"id": "texas"}) == "TX"
    assert Template("{id|postal_code:CA}").render({"id": "k1a 0b1"}) == "K1A 0B1"


# --- properties ------------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=80, deadline=None)
@given(texts)
def test_clean_text_is_idempotent_and_tidy(value: str) -> None:
    once = normalise.clean_text(value)
    assert normalise.clean_text(once) == once
    if once is not None:
        assert once == once.strip() and "  " not in once and once


@st.composite
def us_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """Valid US numbers: area and exchange codes that libphonenumber accepts."""
    area = draw(st.sampled_from(["201", "212", "303", "312", "415", "512", "617", "702", "808", "919"]))
    exchange = draw(st.integers(200, 999).filter(lambda n: n % 100 != 11 and n not in (555, 950, 958, 959, 976)))
    line = draw(st.integers(0, 9999))
    return phonenumbers.parse(f"+1{area}{exchange}{line:04d}")


@settings(max_examples=80, deadline=None)
@given(us_numbers(), st.sampled_from([phonenumbers.PhoneNumberFormat.NATIONAL,
                                      phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                                      phonenumbers.PhoneNumberFormat.E164,
                                      phonenumbers.PhoneNumberFormat.RFC3966]))
def test_every_written_form_of_a_number_gives_one_e164(number: phonenumbers.PhoneNumber, form: int) -> None:
    if not phonenumbers.is_valid_number(number):
        return
    written = phonenumbers.format_number(number, form).removeprefix("tel:")
    e164 = normalise.phone_e164(written, "US")
    assert e164 == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert normalise.phone_e164(e164, "GB") == e164  # idempotent, whatever the default region


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(COUNTRIES), st.sampled_from(["alpha_2", "alpha_3", "name", "numeric"]),
       st.sampled_from([str.lower, str.upper, str]))
def test_any_way_of_naming_a_country_gives_its_alpha2(country: object, attribute: str, case: object) -> None:
    raw = case(getattr(country, attribute))  # type: ignore[operator]
    code = normalise.country_code(raw)
    assert code == country.alpha_2  # type: ignore[attr-defined]
    assert normalise.country_code(code) == code


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(US_STATES), st.sampled_from(["code", "short", "name"]), st.sampled_from([str.lower, str.upper]))
def test_any_way_of_naming_a_state_gives_its_code(state: object, how: str, case: object) -> None:
    code = state.code  # type: ignore[attr-defined]
    raw = {"code": code, "short": code.split("-")[1], "name": state.name}[how]  # type: ignore[attr-defined]
    short = normalise.region_code(case(raw), "US")  # type: ignore[operator]
    assert short == code.split("-")[1]
    assert normalise.region_code(short, "US") == short


@settings(max_examples=80, deadline=None)
@given(st.from_regex(r"\A\d{5}([- ]?\d{4})?\Z"))
def test_us_zip_codes_keep_their_digits(raw: str) -> None:
    zip_code = normalise.postal_code(f"  {raw} ", "US")
    assert zip_code is not None and zip_code.replace("-", "") == raw.replace("-", "").replace(" ", "")
    assert normalise.postal_code(zip_code, "US") == zip_code


@settings(max_examples=80, deadline=None)
@given(st.from_regex(r"\A[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d\Z"))
def test_canadian_postal_codes_are_spaced(raw: str) -> None:
    postal = normalise.postal_code(raw, "CA")
    assert postal is not None and len(postal) == 7 and postal[3] == " " and postal == postal.upper()
    assert normalise.postal_code(postal, "CA") == postal


@settings(max_examples=80, deadline=None)
@given(line=texts, city=texts, region=st.sampled_from(US_STATES), zip_code=st.from_regex(r"\A\d{5}\Z"),
       country=st.sampled_from(["US", "usa", "United States"]))
def test_address_normalisation_is_idempotent(line: str, city: str, region: object, zip_code: str,
                                              country: str) -> None:
    address = Address(line1=line, city=city, region=region.name, postal_code=zip_code,  # type: ignore[attr-defined]
                      country=country)
    once = normalise.address(address)
    assert once is not None and once.country == "US" and once.region == region.code[3:]  # type: ignore[attr-defined]
    assert normalise.address(once) == once
