"""Back-pressure: past a threshold the engine alerts, and intake keeps acknowledging durably."""

from __future__ import annotations

import logging

import pytest

from ledgerlink.connectors.kit.errors import Rejected
from ledgerlink.flows.context import FlowContext, InboundMessage
from ledgerlink.runtime import Database, IntakeResult
from ledgerlink.telemetry import BACKLOG, BACKPRESSURE, BACKPRESSURE_ALERTS, DEAD_LETTER_SIZE
from tests.runtime.helpers import fast_settings, finished, item, running_engine, statuses, wait_until

THRESHOLDS = {"max_backlog": 3, "max_dead_letters": 1, "check_seconds": 0.05}


async def test_a_backlog_past_its_threshold_alerts_and_intake_still_acknowledges(
        database: Database, caplog: pytest.LogCaptureFixture) -> None:
    alerts_before = BACKPRESSURE_ALERTS.labels("backlog")._value.get()
    settings = fast_settings(backpressure=THRESHOLDS)
    async with running_engine(database, {}, settings, run_workers=False) as engine:
        assert engine.intake is not None
        results = [await engine.intake.submit(item(f"e{n}", f"order-{n}")) for n in range(6)]
        assert all(r == IntakeResult.ACCEPTED for r in results)  # acknowledged: the rows are committed
        await wait_until(lambda: engine.backpressure.pressure is not None
                         and engine.backpressure.pressure.backlog == 6)
        assert engine.backpressure.pressure.alerts == ("backlog",)
        assert BACKPRESSURE.labels("backlog")._value.get() == 1 and BACKLOG._value.get() == 6
        assert BACKPRESSURE.labels("dead_letters")._value.get() == 0
        assert await engine.intake.submit(item("e7", "order-7")) == IntakeResult.ACCEPTED
    assert statuses(database) == {"pending": 7}
    assert BACKPRESSURE_ALERTS.labels("backlog")._value.get() == alerts_before + 1  # raised once, not per check
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "back-pressure" in
                r.getMessage()]
    assert len(warnings) == 1 and "past its threshold of 3; intake keeps acknowledging" in warnings[0]


async def test_dead_letters_past_their_threshold_alert_and_clear(database: Database) -> None:
    async def handler(message: InboundMessage, ctx: FlowContext) -> None:
        raise Rejected("SL refused it", system="sl", status=422)

    settings = fast_settings(backpressure=THRESHOLDS)
    async with running_engine(database, {"test": handler}, settings) as engine:
        assert engine.intake is not None
        for n in range(2):
            await engine.intake.submit(item(f"e{n}", f"order-{n}"))
        await wait_until(finished(database, 2))
        await wait_until(lambda: engine.backpressure.pressure is not None
                         and engine.backpressure.pressure.alerts == ("dead_letters",))
        assert DEAD_LETTER_SIZE._value.get() == 2 and BACKPRESSURE.labels("dead_letters")._value.get() == 1
        assert engine.backpressure.pressure.as_dict()["max_dead_letters"] == 1
        engine.backpressure.settings = engine.backpressure.settings.model_copy(update={"max_dead_letters": 5})
        await wait_until(lambda: engine.backpressure.pressure is not None and not engine.backpressure.pressure.alerts)
        assert BACKPRESSURE.labels("dead_letters")._value.get() == 0
