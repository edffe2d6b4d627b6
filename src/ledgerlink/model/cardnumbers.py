"""Find full card numbers (PANs) in text so they can be refused at the edge and redacted in logs.

A candidate is a run of 13–19 digits, optionally grouped by single spaces or
hyphens (groups of at most six digits, as cards are printed: 4-4-4-4, 4-6-5),
that is not part of a longer run of digits nor of an identifier made of
letters and digits, starts with an issuer prefix that card networks actually
use, and passes the Luhn check. The prefix and length rules keep transaction
ids (22 digits), epoch milliseconds (13 digits starting with 1), token ids (19
digits starting with 7) and phone numbers from being mistaken for cards; the
identifier and grouping rules keep UUIDs and hex digests out (their all-digit
stretches pass Luhn one time in ten).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# A maximal run of at least 13 ASCII digits in which single spaces or hyphens may separate groups
# (shorter runs cannot hold a card number, so the regex engine skips them without a Python-level look).
_RUN = re.compile(r"(?<![0-9])[0-9](?:[ \-]?[0-9]){12,}(?![0-9])")
# A cheap first pass: stretches of digits, spaces and hyphens long enough to hold a card number.
# The exact rule (``_RUN``, with its look-arounds) then runs only inside those stretches: on a typical
# webhook body this halves the scan, which runs on every request.
_SPAN = re.compile(r"[0-9][0-9 \-]{11,}[0-9]")
_GROUP_SPLIT = re.compile(r"[ \-]")

REDACTION = "[redacted card number]"


@dataclass(frozen=True, slots=True)
class CardNumberMatch:
    start: int
    end: int
    length: int  # number of digits
    last4: str


def luhn_valid(digits: str) -> bool:
    total = 0
    parity = len(digits) % 2
    for index, char in enumerate(digits):
        value = ord(char) - 48
        if index % 2 == parity:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _prefix_in(digits: str, low: int, high: int) -> bool:
    width = len(str(low))
    return low <= int(digits[:width]) <= high


def issuer_prefix_ok(digits: str) -> bool:
    """True when the number starts like a card a network issues, at a length that network uses."""
    n = len(digits)
    first = digits[0]
    if first == "4":  # Visa
        return n in (13, 16, 19)
    if first == "5":  # Mastercard 51-55; Maestro 50, 56-59
        return n == 16 if _prefix_in(digits, 51, 55) else 12 <= n <= 19
    if first == "2":  # Mastercard 2221-2720, Mir 2200-2204
        return (_prefix_in(digits, 2221, 2720) and n == 16) or (_prefix_in(digits, 2200, 2204) and 16 <= n <= 19)
    if first == "3":
        if digits[:2] in ("34", "37"):  # American Express
            return n == 15
        if _prefix_in(digits, 3528, 3589):  # JCB
            return 16 <= n <= 19
        if _prefix_in(digits, 300, 305) or digits[:2] in ("36", "38", "39"):  # Diners Club
            return 14 <= n <= 19
        return False
    if first == "6":  # Discover, UnionPay, Maestro, RuPay, ...
        return 16 <= n <= 19 or n == 13
    if first == "8":  # RuPay 81, 82
        return digits[:2] in ("81", "82") and n == 16
    return False


def _is_card_number(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and issuer_prefix_ok(digits) and luhn_valid(digits)


def _inside_identifier(text: str, start: int, end: int) -> bool:
    """True when the digits are glued to letters (``ac41``, ``190a``) or hyphen-joined to a
    token holding letters (``36130076-9491-4811-a383``), as in UUIDs and other identifiers."""
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    if before.isalpha() or after.isalpha():
        return True
    if after == "-" and end + 1 < len(text) and text[end + 1].isalnum():
        return True
    return before == "-" and start >= 2 and text[start - 2].isalnum()


def _runs(text: str) -> Iterator[re.Match[str]]:
    for span in _SPAN.finditer(text):
        yield from _RUN.finditer(text, span.start(), span.end())


def _candidates(text: str) -> Iterator[CardNumberMatch]:
    for run in _runs(text):
        raw = run.group()
        if len(raw) < 13:
            continue
        groups = _GROUP_SPLIT.split(raw)
        if len(groups) == 1:
            if _is_card_number(raw) and not _inside_identifier(text, run.start(), run.end()):
                yield CardNumberMatch(run.start(), run.end(), len(raw), raw[-4:])
            continue
        # Grouped digits: any contiguous window of groups may be the card number
        # ("ref 12 4111 1111 1111 1111"). Offsets are tracked to report the span.
        offsets = []
        position = run.start()
        for group in groups:
            offsets.append((position, position + len(group)))
            position += len(group) + 1
        i = 0
        while i < len(groups):
            best: tuple[int, str] | None = None  # the longest card number starting at group i
            digits = ""
            for j in range(i, len(groups)):
                if j > i and max(len(groups[i]), len(groups[j])) > 6:
                    break  # grouped, cards are printed four to six digits at a time; a lone group may be whole
                digits += groups[j]
                if len(digits) > 19:
                    break
                if _is_card_number(digits) and not _inside_identifier(text, offsets[i][0], offsets[j][1]):
                    best = (j, digits)
            if best is None:
                i += 1
                continue
            end, digits = best
            yield CardNumberMatch(offsets[i][0], offsets[end][1], len(digits), digits[-4:])
            i = end + 1


def find_card_numbers(text: str) -> list[CardNumberMatch]:
    """Every card number in ``text``, in order."""
    return list(_candidates(text))


def contains_card_number(text: str) -> bool:
    return next(_candidates(text), None) is not None


def redact_card_numbers(text: str) -> str:
    """``text`` with every card number replaced by a fixed marker (the last four digits are not kept)."""
    matches = find_card_numbers(text)
    if not matches:
        return text
    parts = []
    cursor = 0
    for match in matches:
        if match.start < cursor:
            continue
        parts.append(text[cursor : match.start])
        parts.append(REDACTION)
        cursor = match.end
    parts.append(text[cursor:])
    return "".join(parts)


def card_number_fields(document: object, path: str = "") -> list[str]:
    """Dotted paths of every string or number in a parsed JSON document that holds a card number."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend(card_number_fields(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(card_number_fields(value, f"{path}[{index}]"))
    elif isinstance(document, (str, int)) and not isinstance(document, bool) and contains_card_number(str(document)):
        found.append(path or "body")
    return found
