"""Dunning decisions without I/O: the retry schedule, the end, overrides of the decline table, the notices."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from ledgerlink.flows.dunning import DAY, DunningSettings, notice
from ledgerlink.flows.subscriptions import parse_interval
from ledgerlink.model import DeclineCategory, IntervalUnit, Money, add_interval


def test_retry_schedule_and_end() -> None:
    settings = DunningSettings(retry_days=[1, 3, 7])
    assert [settings.retry_at(0.0, n) for n in range(4)] == [1 * DAY, 3 * DAY, 7 * DAY, None]
    assert settings.end_at(0.0) == 7 * DAY
    assert DunningSettings(retry_days=[1, 3], end_after_days=60).end_at(100.0) == 100.0 + 60 * DAY


def test_overrides_win_over_the_connector() -> None:
    settings = DunningSettings(decline_overrides={"insufficient_fund": "hard"})
    assert settings.category("INSUFFICIENT_FUND", DeclineCategory.SOFT) is DeclineCategory.HARD
    assert settings.category("STOLEN_LOST_CARD", DeclineCategory.HARD) is DeclineCategory.HARD
    assert settings.category(None, None) is DeclineCategory.SOFT


@pytest.mark.parametrize(("settings", "field"), [
    ({"retry_days": [3, 3]}, "retry_days"),
    ({"retry_days": [0]}, "retry_days"),
    ({"retry_days": [1, 45], "end_after_days": 30}, "end_after_days"),
    ({"max_retries_per_card": 0}, "max_retries_per_card"),
    ({"end_action": {"invoice": "forget"}}, "end_action.invoice"),
])
def test_bad_settings_name_the_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        DunningSettings.model_validate(settings)
    assert field.split(".")[0] in str(refused.value)


def test_intervals() -> None:
    assert parse_interval("monthly") == (IntervalUnit.MONTH, 1)
    assert parse_interval("3 months") == (IntervalUnit.MONTH, 3)
    assert parse_interval("2 Weeks") == (IntervalUnit.WEEK, 2)
    assert parse_interval("yearly") == (IntervalUnit.YEAR, 1)
    with pytest.raises(ValueError, match="not an interval"):
        parse_interval("0 days")
    assert add_interval(date(2027, 1, 31), IntervalUnit.MONTH, 1) == date(2027, 2, 28)
    assert add_interval(date(2028, 2, 29), IntervalUnit.YEAR, 1) == date(2029, 2, 28)


def test_notices_name_the_card_by_brand_and_last_four_only() -> None:
    card = {"brand": "visa", "last4": "1111", "expiry": "2031-12-31"}
    subject, body = notice("soft", description="Pro plan", amount=Money.of("29.90", "USD"), period=date(2027, 1, 1),
                           card=card, reason="INSUFFICIENT_FUND", next_try=date(2027, 1, 2))
    assert subject == "Payment failed: Pro plan"
    assert "your Visa ending 1111" in body and "02 January 2027" in body and "29.90 USD" in body
    subject, body = notice("hard", description="Pro plan", amount=Money.of("29.90", "USD"),
                           period=date(2027, 1, 1), card=card, reason="STOLEN_LOST_CARD")
    assert subject.startswith("Action needed") and "new payment method" in body
    _, body = notice("cancelled", description="Pro plan", amount=Money.of("29.90", "USD"),
                     period=date(2027, 1, 1), card=None, written_off=True)
    assert "written off" in body
