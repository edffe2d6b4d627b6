"""Every schedule field of an integration file is checked when the file is loaded: a bad cron expression or an
unknown time zone is a ``ConfigError`` naming the field, never a crash at start or a job that never runs."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerlink.integrations import ConfigError, parse_integration
from tests.flows.harness import integration_document

CRON_FIELDS = [("flows", "settlement", "cron"), ("flows", "gap_sweep", "cron"), ("flows", "subscriptions", "cron"),
               ("flows", "profile_sync", "poll_cron"), ("flows", "disputes", "poll_cron"),
               ("flows", "erp_refunds", "poll_cron"), ("housekeeping", "prune_cron")]
ZONE_FIELDS = [("flows", "settlement", "timezone"), ("flows", "subscriptions", "timezone"),
               ("flows", "fraud_review", "timezone")]


def with_value(path: tuple[str, ...], value: str) -> dict[str, Any]:
    document = integration_document()
    node = document
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return document


@pytest.mark.parametrize("path", CRON_FIELDS, ids=".".join)
def test_a_bad_cron_expression_is_refused_naming_its_field(path: tuple[str, ...]) -> None:
    parse_integration(with_value(path, "*/10 * * * *"))  # a good one loads
    with pytest.raises(ConfigError) as refused:
        parse_integration(with_value(path, "every morning"))
    assert [p for p in refused.value.problems if p.startswith(".".join(path) + ":")], refused.value.problems
    assert "not a valid cron expression" in str(refused.value)


@pytest.mark.parametrize("path", ZONE_FIELDS, ids=".".join)
@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", ""])
def test_an_unknown_time_zone_is_refused_naming_its_field(path: tuple[str, ...], zone: str) -> None:
    parse_integration(with_value(path, "Europe/Berlin"))
    with pytest.raises(ConfigError) as refused:
        parse_integration(with_value(path, zone))
    assert [p for p in refused.value.problems if p.startswith(".".join(path) + ":")], refused.value.problems
    assert "not an IANA time zone" in str(refused.value)
