"""Normalising what people type into a customer record, so two systems can be compared field by field.

- Phones become E.164 (``+14158880000``) through libphonenumber (``phonenumbers``); a number written
  without a country code is read in the address's country, else in the integration's default region.
- Countries become ISO 3166-1 alpha-2 codes, from a code (``US``, ``USA``, ``840``) or a name
  (``United States``, ``united states of america``).
- States and provinces become the ISO 3166-2 subdivision code without its country prefix (``CA`` for
  ``California``, ``ca`` or ``US-CA``). The US and Canada, where gateways require the two-letter code,
  refuse a region that is not one of theirs; elsewhere an unknown region is kept as typed.
- Postal codes are upper-cased with whitespace collapsed; US ZIP (``12345``, ``12345-6789``), Canadian
  (``A1A 1A1``) and UK postcodes (``SW1A 1AA``) also get their standard spacing and are refused when
  malformed.
- Free text (names, address lines, city) is trimmed with inner whitespace collapsed, and keeps the case it
  was typed in: title-casing would damage ``PO Box`` or ``McDonald St``. E-mail is lower-cased.

Every function is idempotent (normalising twice gives the same value) and maps blank to ``None``. A value
that cannot be normalised raises ``InvalidInput`` naming the field, so bad input is refused before
anything is written.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
import pycountry

from ledgerlink.model.errors import FieldIssue, InvalidInput
from ledgerlink.model.party import Address, Party

_SPACES = re.compile(r"\s+")
_STRICT_REGIONS = frozenset({"US", "CA"})  # gateways want the two-letter code here
_COUNTRY_ALIASES = {"UK": "GB", "GREAT BRITAIN": "GB", "ENGLAND": "GB", "SCOTLAND": "GB", "WALES": "GB",
                    "NORTHERN IRELAND": "GB", "AMERICA": "US", "UNITED STATES": "US"}
_US_ZIP = re.compile(r"^(\d{5})(?:-?(\d{4}))?$")
_CA_POSTAL = re.compile(r"^([A-Z]\d[A-Z])(\d[A-Z]\d)$")
_GB_POSTCODE = re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?)(\d[A-Z]{2})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _invalid(field: str, reason: str, source: str) -> InvalidInput:
    return InvalidInput(FieldIssue(field, reason), source=source)


def clean_text(value: str | None) -> str | None:
    """Trimmed, inner whitespace collapsed to single spaces; blank is None."""
    if value is None:
        return None
    text = _SPACES.sub(" ", value).strip()
    return text or None


def email(value: str | None, *, field: str = "email", source: str = "input") -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    text = text.lower()
    if not _EMAIL.match(text):
        raise _invalid(field, f"{text!r} is not an e-mail address", source)
    return text


def phone_e164(value: str | None, region: str | None = "US", *, field: str = "phone",
               source: str = "input") -> str | None:
    """``value`` as E.164, read in ``region`` (ISO alpha-2) when it has no country code."""
    text = clean_text(value)
    if text is None:
        return None
    try:
        number = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        raise _invalid(field, f"{text!r} is not a phone number", source) from None
    if not phonenumbers.is_valid_number(number):
        where = f" for region {region}" if region and not text.startswith("+") else ""
        raise _invalid(field, f"{text!r} is not a valid phone number{where}", source)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def known_region(region: str) -> bool:
    """True when libphonenumber knows ``region`` (for validating a configured default region)."""
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


@lru_cache(maxsize=1024)
def _country(text: str) -> str | None:
    key = text.upper().replace(".", "")
    if key in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[key]
    if key.isdigit():
        found = pycountry.countries.get(numeric=key.zfill(3))
    elif len(key) == 2:
        found = pycountry.countries.get(alpha_2=key)
    elif len(key) == 3:
        found = pycountry.countries.get(alpha_3=key)
    else:
        found = None
    if found is None:
        try:
            found = pycountry.countries.lookup(text)
        except LookupError:
            return None
    return str(found.alpha_2)


def country_code(value: str | None, *, field: str = "country", source: str = "input") -> str | None:
    """ISO 3166-1 alpha-2 for a code or name; an unknown country is refused."""
    text = clean_text(value)
    if text is None:
        return None
    code = _country(text)
    if code is None:
        raise _invalid(field, f"{text!r} is not a country (ISO 3166 code or name)", source)
    return code


@lru_cache(maxsize=256)
def _subdivisions(country: str) -> dict[str, str]:
    """Every way of writing a country's subdivisions (code, full code, name) → the code without prefix."""
    found = pycountry.subdivisions.get(country_code=country) or []
    table: dict[str, str] = {}
    for sub in found:
        short = sub.code.split("-", 1)[1]
        table[short.upper()] = short
        table[sub.code.upper()] = short
        table.setdefault(sub.name.casefold(), short)
    return table


def region_code(value: str | None, country: str | None, *, field: str = "region",
                source: str = "input") -> str | None:
    """The subdivision code (``CA``) for a code or name within ``country`` (alpha-2)."""
    text = clean_text(value)
    if text is None:
        return None
    table = _subdivisions(country) if country else {}
    short = table.get(text.upper()) or table.get(text.casefold()) or table.get(text.replace(".", "").upper())
    if short is not None:
        return short
    if country in _STRICT_REGIONS:
        raise _invalid(field, f"{text!r} is not a state or province of {country}", source)
    return text.upper() if len(text) <= 3 else text


def postal_code(value: str | None, country: str | None, *, field: str = "postal_code",
                source: str = "input") -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    text = text.upper()
    compact = text.replace(" ", "")
    if country == "US":
        match = _US_ZIP.match(compact)
        if match is None:
            raise _invalid(field, f"{text!r} is not a US ZIP code (12345 or 12345-6789)", source)
        return match.group(1) + (f"-{match.group(2)}" if match.group(2) else "")
    if country == "CA":
        match = _CA_POSTAL.match(compact)
        if match is None:
            raise _invalid(field, f"{text!r} is not a Canadian postal code (A1A 1A1)", source)
        return f"{match.group(1)} {match.group(2)}"
    if country == "GB":
        match = _GB_POSTCODE.match(compact)
        if match is None:
            raise _invalid(field, f"{text!r} is not a UK postcode", source)
        return f"{match.group(1)} {match.group(2)}"
    return text


def address(value: Address | None, *, field: str = "address", source: str = "input") -> Address | None:
    """Every part normalised; an address with nothing left in it is None. Collects every problem."""
    if value is None:
        return None
    issues: list[FieldIssue] = []

    def attempt(fn: object, *args: object, part: str) -> str | None:
        try:
            return fn(*args, field=f"{field}.{part}", source=source)  # type: ignore[operator, no-any-return]
        except InvalidInput as exc:
            issues.extend(exc.issues)
            return None

    country = attempt(country_code, value.country, part="country")
    result = Address(
        line1=clean_text(value.line1), line2=clean_text(value.line2), city=clean_text(value.city),
        region=attempt(region_code, value.region, country, part="region"),
        postal_code=attempt(postal_code, value.postal_code, country, part="postal_code"),
        country=country,
    )
    if issues:
        raise InvalidInput(issues, source=source)
    return result if any(result.model_dump().values()) else None


def party(value: Party, *, default_region: str = "US", source: str = "input") -> Party:
    """The party's name, e-mail, phone and address normalised; every problem is reported at once.

    The phone is read in the address's country when it has one, else in ``default_region``.
    """
    issues: list[FieldIssue] = []
    normalised_address = None
    try:
        normalised_address = address(value.address, source=source)
    except InvalidInput as exc:
        issues.extend(exc.issues)
    region = (normalised_address.country if normalised_address and normalised_address.country
              else default_region)
    normalised_email = normalised_phone = None
    try:
        normalised_email = email(value.email, source=source)
    except InvalidInput as exc:
        issues.extend(exc.issues)
    try:
        normalised_phone = phone_e164(value.phone, region, source=source)
    except InvalidInput as exc:
        issues.extend(exc.issues)
    if issues:
        raise InvalidInput(issues, source=source)
    first, last = clean_text(value.first_name), clean_text(value.last_name)
    name = clean_text(value.name) or clean_text(" ".join(p for p in (first, last) if p))
    return value.model_copy(update={"name": name, "first_name": first, "last_name": last,
                                    "email": normalised_email, "phone": normalised_phone,
                                    "address": normalised_address})
