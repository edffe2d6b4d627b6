"""Find full card numbers (PANs) in text so they can be refused at the edge and redacted everywhere else.

A candidate is a run of 13–19 digits, optionally grouped by single spaces or
hyphens (groups of at most six digits, as cards are printed: 4-4-4-4, 4-6-5),
that is not part of a longer run of digits, starts with an issuer prefix a card
network uses at that length (``issuer_prefix_ok``), and passes the Luhn check.

The prefix and length rules keep transaction ids (22 digits), epoch
milliseconds (13 digits starting with 1), token ids (19 digits starting with 7)
and most phone numbers from being mistaken for cards; a leading ``+`` marks an
E.164 phone number. Digits glued to a hexadecimal word (``ac41``, ``190a``, a
digest) or hyphen-joined to one (``36130076-9491-4811-a383``) belong to an
identifier: the all-digit stretches of UUIDs and digests pass Luhn one time in
ten. Glued to any other word (``card4111…``, ``PAN:``, an escaped newline in
raw JSON) they are still found. docs/security.md has the measured rates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ledgerlink.model.errors import FieldIssue, InvalidInput

# A cheap first pass: stretches of digits, spaces and hyphens long enough to hold a card number. It starts
# with a plain character class, so the regex engine skips everything else in C; the exact rule (``_RUN``, with
# its look-arounds) then runs only inside stretches that have separators. On a typical webhook body this is
# what keeps the scan cheap, and it runs on every request.
_SPAN = re.compile(r"[0-9][0-9 \-]{11,}[0-9]")
# A maximal run of at least 13 digits in which single spaces or hyphens may separate groups.
_RUN = re.compile(r"(?<![0-9])[0-9](?:[ \-]?[0-9]){12,}(?![0-9])")
_GROUP_SPLIT = re.compile(r"[ \-]")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPES = frozenset("bfnrt")  # \b \f \n \r \t in raw JSON or C strings: a boundary, not a word

REDACTION = "[redacted card number]"
REFUSAL = "holds a full card number; only gateway tokens are accepted"


@dataclass(frozen=True, slots=True)
class CardNumberMatch:
    start: int
    end: int
    length: int  # number of digits
    last4: str


class CardNumberRefused(InvalidInput):
    """Input or output that holds a full card number. Names the fields; never carries the value."""

    def __init__(self, fields: list[str], *, source: str = "input") -> None:
        super().__init__([FieldIssue(field, REFUSAL) for field in fields], source=source)
        self.fields = list(fields)


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


def issuer_prefix_ok(digits: str) -> bool:
    """True when the number starts like a card a network issues, at a length that network uses.

    The table (first digit, then prefix ranges) follows the networks' published IIN ranges. Left out on
    purpose: UATP (airline accounts, prefix 1, 15 digits), because 15-digit ids starting with 1 are common.
    """
    n = len(digits)
    first = digits[0]
    if first == "4":  # Visa, Visa Electron, Elo and co-brands
        return n in (13, 16, 19)
    if first == "5":  # Mastercard 51-55; Maestro 50, 56-59; Verve, Dankort, RuPay 508
        return n == 16 if "51" <= digits[:2] <= "55" else 13 <= n <= 19
    if first == "2":
        four = digits[:4]
        if "2221" <= four <= "2720":  # Mastercard 2-series
            return n == 16
        return "2200" <= four <= "2205" and 16 <= n <= 19  # Mir 2200-2204, Borica 2205
    if first == "3":
        two = digits[:2]
        if two in ("34", "37"):  # American Express
            return n == 15
        if "3528" <= digits[:4] <= "3589":  # JCB, LankaPay, RuPay 353/356
            return 16 <= n <= 19
        if two in ("36", "38", "39") or "300" <= digits[:3] <= "305":  # Diners Club
            return n == 14 or 16 <= n <= 19
        return two == "31" and n == 19  # China T-Union
    if first == "6":  # Discover, UnionPay, RuPay, Troy, InterPayment; Maestro, Laser, Solo at 63, 67
        return 13 <= n <= 19 if digits[1] in "37" else 16 <= n <= 19
    if first == "8":  # RuPay and UnionPay 81, 82; Uzcard 8600
        return (digits[:2] in ("81", "82") and 16 <= n <= 19) or (digits[:4] == "8600" and n == 16)
    if first == "9":  # Troy 9792, Humo 9860, Napas 9704
        four = digits[:4]
        return (four in ("9792", "9860") and n == 16) or (four == "9704" and n in (16, 19))
    if first == "1":  # GPN (Indonesia) 1946
        return digits[:4] == "1946" and n in (16, 18, 19)
    return False


def _is_card_number(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and issuer_prefix_ok(digits) and luhn_valid(digits)


def _hex_word(text: str, start: int, step: int) -> bool:
    """True when the alphanumeric word running from ``start`` in direction ``step`` is all hexadecimal and
    holds a letter (an id or a digest); False for a word with other letters (``card``, ``PAN``) or digits only."""
    index = start
    letter = False
    while 0 <= index < len(text) and text[index].isalnum():
        char = text[index]
        if char not in _HEX:
            return False
        letter = letter or char.isalpha()
        index += step
    return letter


def _inside_identifier(text: str, start: int, end: int) -> bool:
    """True when the digits are glued to a hexadecimal word on each side they touch letters (``ac41``,
    ``190a``, a digest), or hyphen-joined to one (``36130076-9491-4811-a383``): UUIDs, hashes and other ids.
    Also true after a ``+``: a phone number in E.164 form (``+4915123456789``)."""
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    if before == "+":  # +4915123456789: a phone number written in E.164 form
        return True
    glued_before = before.isalpha() and not (before in _ESCAPES and start >= 2 and text[start - 2] == "\\")
    glued_after = after.isalpha()
    if glued_before or glued_after:
        return (not glued_before or _hex_word(text, start - 1, -1)) and (not glued_after or _hex_word(text, end, 1))
    if before == "-" and start >= 2 and _hex_word(text, start - 2, -1):
        return True
    return after == "-" and _hex_word(text, end + 1, 1)


def _grouped(text: str, start: int, raw: str) -> Iterator[CardNumberMatch]:
    """Card numbers in a run of digit groups: any contiguous window of groups may be one
    ("ref 12 4111 1111 1111 1111"). Offsets are tracked to report the span."""
    groups = _GROUP_SPLIT.split(raw)
    offsets = []
    position = start
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


def _candidates(text: str) -> Iterator[CardNumberMatch]:
    for span in _SPAN.finditer(text):
        raw = span.group()
        if raw.isdigit():  # no separators: the span is the whole run (most spans: ids, amounts, times)
            if 13 <= len(raw) <= 19 and _is_card_number(raw) \
                    and not _inside_identifier(text, span.start(), span.end()):
                yield CardNumberMatch(span.start(), span.end(), len(raw), raw[-4:])
            continue
        if len(raw) - raw.count(" ") - raw.count("-") < 13:
            continue  # dates, UUID pieces: too few digits for a card
        for run in _RUN.finditer(text, span.start(), span.end()):
            found = run.group()
            if _GROUP_SPLIT.search(found) is None:
                if _is_card_number(found) and not _inside_identifier(text, run.start(), run.end()):
                    yield CardNumberMatch(run.start(), run.end(), len(found), found[-4:])
            else:
                yield from _grouped(text, run.start(), found)


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


def _scalar_holds_card_number(value: object) -> bool:
    if isinstance(value, str):
        return contains_card_number(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return 10**12 <= abs(value) < 10**19 and contains_card_number(str(value))
    return False


def card_number_fields(document: object, path: str = "") -> list[str]:
    """Dotted paths of every string or number in a parsed JSON document that holds a card number.

    A key that is itself a card number is named ``[redacted card number]``: a path never echoes one.
    """
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            name = redact_card_numbers(key) if isinstance(key, str) else str(key)
            where = f"{path}.{name}" if path else name
            if name != key:
                found.append(where)
            found.extend(card_number_fields(value, where))
    elif isinstance(document, (list, tuple)):
        for index, value in enumerate(document):
            found.extend(card_number_fields(value, f"{path}[{index}]"))
    elif _scalar_holds_card_number(document):
        found.append(path or "body")
    return found


def redact_document(document: object) -> object:
    """A copy of a JSON-like document with every card number redacted: in strings (the marker replaces the
    digits), in keys, and in integers (which become the marker). Unchanged parts are shared, not copied."""
    if isinstance(document, str):
        return redact_card_numbers(document)
    if isinstance(document, dict):
        return {redact_card_numbers(k) if isinstance(k, str) else k: redact_document(v) for k, v in document.items()}
    if isinstance(document, (list, tuple)):
        return [redact_document(v) for v in document]
    if _scalar_holds_card_number(document):
        return REDACTION
    return document
