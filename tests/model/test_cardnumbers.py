"""The card-number detector: no miss on real card numbers, few false alarms on ids, phones and times."""

from __future__ import annotations

import random
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerlink.model.cardnumbers import (
    card_number_fields,
    find_card_numbers,
    luhn_valid,
    redact_card_numbers,
)

# (prefix, length) pairs networks actually issue.
NETWORKS = [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
            ("37", 15), ("6011", 16), ("65", 16), ("62", 19), ("3528", 16), ("36", 14), ("300", 14)]


def complete_with_luhn(partial: str) -> str:
    for check in "0123456789":
        if luhn_valid(partial + check):
            return partial + check
    raise AssertionError("unreachable")


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    prefix, length = draw(st.sampled_from(NETWORKS))
    body = draw(st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1))
    return complete_with_luhn(prefix + body)


def grouped(number: str, separator: str) -> str:
    return separator.join(number[i : i + 4] for i in range(0, len(number), 4))


@settings(max_examples=300)
@given(card_numbers(), st.sampled_from(["", " ", "-"]), st.text(max_size=20), st.text(max_size=20))
def test_every_card_number_is_found_inside_text(number: str, separator: str, before: str, after: str) -> None:
    shown = grouped(number, separator) if separator else number
    text = f"{before} {shown} {after}"
    assert any(m.length == len(number) and m.last4 == number[-4:] for m in find_card_numbers(text))
    assert number not in redact_card_numbers(text).replace(" ", "").replace("-", "")


def test_false_positives_on_order_numbers_phones_ids_and_times_are_rare() -> None:
    rng = random.Random(20261121)
    corpus = []
    for _ in range(2000):
        corpus.append("".join(rng.choice("0123456789") for _ in range(22)))  # Cybersource transaction ids
        corpus.append(str(rng.randint(1_500_000_000_000, 1_900_000_000_000)))  # epoch milliseconds
        corpus.append(f"+1 {rng.randint(200, 999)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}")  # phones
        corpus.append(f"ORD-{rng.randint(1, 10**9):09d}")  # order numbers
        corpus.append("70" + "".join(rng.choice("0123456789") for _ in range(17)))  # TMS instrument ids
        corpus.append(f"{rng.randint(10**9, 10**10 - 1)}")  # 10-digit invoice numbers
        corpus.append(f'"transactionTraceId":"{uuid.UUID(int=rng.getrandbits(128))}"')  # UUIDs
        corpus.append(f"sha {rng.getrandbits(160):040x}")  # hex digests
    hits = sum(1 for text in corpus if find_card_numbers(text))
    assert hits / len(corpus) < 0.001, f"{hits} false positives in {len(corpus)}"


def test_fields_holding_card_numbers_are_named() -> None:
    document = {"a": {"b": ["x", "card 4111-1111-1111-1111"]}, "id": "7093261290346789104953", "n": 4111111111111111}
    assert card_number_fields(document) == ["a.b[1]", "n"]


def test_masked_numbers_and_last_fours_are_not_card_numbers() -> None:
    assert find_card_numbers("411111XXXXXX1111 xxxxxxxxxxxx5439 ending 1111") == []


def test_uuids_whose_hex_groups_are_digits_are_not_card_numbers() -> None:
    # all-digit stretches of these UUIDs pass Luhn and start like Diners/Visa cards
    for value in ("36130076-9491-4811-a383-436000000000", "e773551f-ac41-4421-8689-190a8388363c",
                  "36130076-9491-4811-4383-436012345678"):
        assert find_card_numbers(f'"id":"{value}"') == [], value
