"""Every log record is redacted, whatever logger made it and whatever handler writes it.

Paths covered: our root handler (serve, worker, sandbox, demo and reconcile all call ``configure_logging``),
uvicorn's error and access loggers both as ``ledgerlink serve`` runs them (``log_config=None``: they reach
the root handler) and with uvicorn's own default config (their own handlers, not propagating), a logger with
a handler of its own, extras, tracebacks, URL-encoded numbers, and a fresh process that only imported the CLI.
"""

from __future__ import annotations

import logging
import logging.config
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ledgerlink.model.cardnumbers import REDACTION
from ledgerlink.telemetry import configure_logging

PAN = "4111 1111 1111 1111"
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "ledgerlink.test", "some.library")


def no_card_number(text: str) -> None:
    for shown in ("4111 1111", "4111111111111111", "4111+1111", "4111%201111"):
        assert shown not in text, text


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Leave logging as the test found it (handlers bound to captured streams must not outlive the test)."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate,
                    logging.getLogger(name).level) for name in LOGGERS}
    yield
    root.handlers[:] = saved_root[0]
    root.setLevel(saved_root[1])
    for name, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)


def emit_everything() -> None:
    """What a running engine might log with a card number in it, through every kind of logger."""
    logging.getLogger("ledgerlink.test").warning("SL answered: %s", f"card {PAN} refused",
                                                 extra={"ll_note": f"note {PAN}"})
    try:
        raise ValueError(f"bad value {PAN}")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                                             "/admin/reconciliations?day=4111+1111+1111+1111", "1.1", 422)
    logging.getLogger("some.library").error("HTTP Request: GET %s", "https://x.test/pay?pan=4111111111111111")


def test_the_root_handler_redacts_messages_arguments_extras_tracebacks_and_urls(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in LOGGERS:  # as in a fresh `ledgerlink serve`: uvicorn (log_config=None) configures nothing
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    configure_logging("INFO")  # as every CLI command does
    emit_everything()
    err = capsys.readouterr().err
    no_card_number(err)
    assert err.count(REDACTION) >= 5
    assert '"GET /admin/reconciliations?day=' in err and "422" in err  # the access line is still whole


def test_loggers_with_handlers_of_their_own_are_redacted_too(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)  # uvicorn's defaults: own handlers, access log not propagating
    own = logging.getLogger("some.library")
    own.addHandler(logging.StreamHandler(sys.stderr))
    own.propagate = False
    emit_everything()
    captured = capsys.readouterr()
    output = captured.out + captured.err  # uvicorn's access handler writes to stdout
    no_card_number(output)
    assert "GET /admin/reconciliations?day=" in captured.out and "422" in captured.out  # its formatter still works


def test_a_process_that_only_imported_the_cli_redacts_every_record() -> None:
    code = (
        "import logging, logging.config, sys\n"
        "import ledgerlink.cli\n"
        "from uvicorn.config import LOGGING_CONFIG\n"
        "logging.config.dictConfig(LOGGING_CONFIG)\n"
        "logging.getLogger('uvicorn.error').error('card %s', '4111 1111 1111 1111')\n"
        "logging.getLogger('uvicorn.access').info('%s - \"%s %s HTTP/%s\" %d', 'c', 'GET', '/x?pan=4111111111111111', '1.1', 200)\n"
        "logging.getLogger('anything').warning('pan=%d', 4111111111111111)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    output = result.stdout + result.stderr
    no_card_number(output)
    assert output.count(REDACTION) == 3


def fake_uvicorn_run(*args: Any, **kwargs: Any) -> None:
    assert kwargs.get("log_config", "default") is None or "log_config" not in kwargs
    emit_everything()


@pytest.mark.parametrize("command", ["sandbox", "serve", "demo"])
def test_cli_commands_log_through_the_redacting_handler(
    clean_logging: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str
) -> None:
    import uvicorn

    from ledgerlink import cli
    from tests.flows.harness import integration_document

    monkeypatch.setattr(uvicorn, "run", fake_uvicorn_run)
    if command == "sandbox":
        args = ["sandbox", "dynamics_sl", "--log-level", "info"]
    elif command == "serve":
        config = tmp_path / "integration.yaml"
        config.write_text(yaml.safe_dump(integration_document()))
        args = ["serve", "--config", str(config), "--database-url", f"sqlite:///{tmp_path}/engine.db"]
    else:
        async def fake_demo(options: Any, console: Any) -> int:
            emit_everything()
            return 0

        monkeypatch.setattr("ledgerlink.demo.run_demo", fake_demo)
        args = ["demo", "--workdir", str(tmp_path / "demo")]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    no_card_number(result.output)
    assert REDACTION in result.output
