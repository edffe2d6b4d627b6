"""Mapping templates: safe rendering, errors naming the field, whitelisted filters only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ledgerlink.mappings import Template, TemplateError, load_mapping
from ledgerlink.model import Money, OrderStatus, Party, Payment, PaymentKind, PaymentStatus
from ledgerlink.model.cardnumbers import contains_card_number


def payment(**overrides: object) -> Payment:
    values: dict[str, object] = {
        "gateway": "cybersource", "id": "7093261290346789104953", "kind": PaymentKind.SALE,
        "status": PaymentStatus.CAPTURED, "gateway_status": "AUTHORIZED", "amount": Money.of("102.21", "USD"),
        "order_reference": "WEB-1001", "merchant_defined": {"3": "gift wrap", "7": "campaign-x"},
        "party": Party(email="Ann@Example.com", first_name="Ann"),
        "submitted_at": datetime(2026, 11, 21, 3, 4, 5, tzinfo=UTC),
    }
    values.update(overrides)
    return Payment.model_validate(values)


def test_paths_filters_and_missing_values() -> None:
    p = payment()
    assert Template("Web order {order_reference}").render(p) == "Web order WEB-1001"
    assert Template("{merchant_defined.3|upper|truncate:4}").render(p) == "GIFT"
    assert Template("{merchant_defined.9|default:none}").render(p) == "none"
    assert Template("{party.email}").render(p) == "ann@example.com"
    assert Template("{submitted_at|date:%m/%d/%Y:America/Chicago}").render(p) == "11/20/2026"
    assert Template("{amount.amount} {amount.currency}").render(p) == "102.21 USD"


@pytest.mark.parametrize("source,message", [
    ("{order_reference|eval}", "unknown filter"),
    ("{__class__.__init__}", "not a field"),
    ("{order_reference|truncate}", "argument"),
    ("{}", "empty"),
])
def test_bad_templates_fail_when_loaded(source: str, message: str) -> None:
    from ledgerlink.mappings.spec import PAYMENT_FIELDS

    with pytest.raises(TemplateError, match=message):
        Template(source, roots=PAYMENT_FIELDS)


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=60))
def test_text_without_placeholders_renders_unchanged(text: str) -> None:
    assume(not contains_card_number(text))  # a template holding a card number is refused (below)
    assert Template(text).render(payment()) == text


def test_mapping_file_errors_name_the_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        load_mapping({"statuses": {"order": {"authorized": "shipped"}}})
    assert info.value.errors()[0]["loc"][:3] == ("statuses", "order", "authorized")
    with pytest.raises(ValidationError) as info:
        load_mapping({"customer": {"match_on": []}})
    assert info.value.errors()[0]["loc"] == ("customer", "match_on")


def test_status_harmonisation_defaults_and_overrides() -> None:
    rules = load_mapping({"statuses": {"order": {"authorized": "on_hold"}}}).statuses
    assert rules.order_status(PaymentStatus.AUTHORIZED) is OrderStatus.ON_HOLD
    assert rules.order_status(PaymentStatus.CAPTURED) is OrderStatus.PAID
    assert rules.order_status(PaymentStatus.PENDING_REVIEW) is OrderStatus.ON_HOLD
    assert rules.order_status(PaymentStatus.DECLINED) is None


def test_a_rendering_that_holds_a_card_number_is_refused_naming_the_target_field_never_the_value() -> None:
    from ledgerlink.model.cardnumbers import CardNumberRefused

    spec = load_mapping({"fields": {"order": {"User3": "{merchant_defined.3}{merchant_defined.4}"}}})
    card = payment(merchant_defined={"3": "4111 1111", "4": " 1111 1111"})  # neither half is a card number
    with pytest.raises(CardNumberRefused) as info:
        spec.render_fields(spec.fields.order, card, section="mapping.fields.order")
    assert info.value.fields == ["mapping.fields.order.User3"]
    assert "4111" not in str(info.value) and "1111" not in str(info.value)
    with pytest.raises(CardNumberRefused, match=r"mapping\.order\.line_description"):
        spec.render("Web order {order_reference}", payment(order_reference="5555-5555-5555-4444"),
                    field="mapping.order.line_description")
    assert spec.render_fields(spec.fields.order, payment(), section="mapping.fields.order") == {
        "User3": "gift wrap"}


def test_a_template_that_holds_a_card_number_fails_when_loaded_without_echoing_it() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        load_mapping({"order": {"line_description": "Paid with 4111 1111 1111 1111"}})
    [error] = info.value.errors()  # what the integration loader reports: where, and the message
    assert error["loc"] == ("order", "line_description")
    assert "card number" in error["msg"] and "4111" not in error["msg"]
