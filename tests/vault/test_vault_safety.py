"""The vault under failure and in use: rotation loses nothing when it breaks halfway, a wrong key stops `serve`
at start with a clear message, changes are audited, and no secret reaches a log, an error, the API or a table."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from sqlalchemy import create_engine, inspect, select
from typer.testing import CliRunner

from ledgerlink.cli import app as cli
from ledgerlink.connectors.cybersource.webhooks import sign_notification
from ledgerlink.processes import ChildProcess, free_port, wait_http
from ledgerlink.runtime import Database, audit
from ledgerlink.vault import Vault, VaultError, WrongMasterKey, decode_master_key, generate_master_key
from ledgerlink.vault.store import secrets_table
from tests.flows.harness import CS_CREDENTIALS, WEBHOOK_KEY, WEBHOOK_KEY_ID, Pair, running_pair
from tests.service.test_webhooks import notification

REPO = Path(__file__).parents[2]


def key() -> bytes:
    return decode_master_key(generate_master_key())


def test_a_rotation_that_fails_halfway_changes_nothing(database_target: tuple[str, str | None],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url, schema = database_target
    db = Database(url, schema=schema)  # the runtime's schema, where the vault lives too
    old, new = key(), key()
    vault = Vault(url, old, schema=schema)

    def sealed_rows() -> dict[str, tuple[str, bytes]]:
        return db.read_sync(lambda conn: {row.name: (row.key_id, bytes(row.ciphertext))
                                          for row in conn.execute(select(secrets_table))})

    try:
        for i in range(6):
            vault.set(f"s{i}", f"value-{i}")
        before = sealed_rows()
        sealed: list[str] = []
        real_seal = Vault._seal

        def failing_seal(self: Vault, conn: Any, name: str, plaintext: bytes, aead: Any, key_id: str) -> None:
            sealed.append(name)
            if len(sealed) == 4:
                raise OSError("disk full (injected)")
            real_seal(self, conn, name, plaintext, aead, key_id)

        monkeypatch.setattr(Vault, "_seal", failing_seal)
        with pytest.raises(OSError, match="injected"):
            vault.rotate(new)
        monkeypatch.setattr(Vault, "_seal", real_seal)
        vault.close()
        assert sealed_rows() == before and len(sealed) == 4
        with pytest.raises(WrongMasterKey):
            Vault(url, new, schema=schema)
        reopened = Vault(url, old, schema=schema)
        assert [reopened.get(f"s{i}") for i in range(6)] == [f"value-{i}" for i in range(6)]
        assert reopened.rotate(new) == 6  # and a rotation that completes moves everything
        reopened.close()
        rotated = Vault(url, new, schema=schema)
        assert rotated.get("s5") == "value-5"
        rotated.close()
    finally:
        db.close()


def test_a_process_still_on_the_old_key_cannot_write_after_a_rotation(sqlite_url: str) -> None:
    old, new = key(), key()
    stale = Vault(sqlite_url, old)
    rotating = Vault(sqlite_url, old)
    rotating.set("a", "alpha")
    rotating.rotate(new)
    with pytest.raises(WrongMasterKey, match="re-keyed"):
        stale.set("b", "beta")
    with pytest.raises(WrongMasterKey):
        stale.rotate(key())
    assert rotating.names() == ["a"] and rotating.get("a") == "alpha"
    with pytest.raises(VaultError, match="card number"):
        rotating.set("card-4111111111111111", "x")
    stale.close()
    rotating.close()


def test_cli_changes_to_the_vault_are_audited_without_their_values(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/ledgerlink.db"
    old_file, new_file = tmp_path / "old.key", tmp_path / "new.key"
    runner = CliRunner()
    assert runner.invoke(cli, ["vault", "new-key", str(old_file)]).exit_code == 0
    assert runner.invoke(cli, ["vault", "new-key", str(new_file)]).exit_code == 0
    monkeypatch.setenv("LEDGERLINK_MASTER_KEY_FILE", str(old_file))
    monkeypatch.delenv("LEDGERLINK_MASTER_KEY", raising=False)
    stored = runner.invoke(cli, ["vault", "set", "dynamics_sl.api_key", "--database-url", url],
                           input="sl-secret-value-0001\n")
    assert stored.exit_code == 0, stored.output
    rotated = runner.invoke(cli, ["vault", "rotate-key", "--new-key-file", str(new_file), "--database-url", url])
    assert rotated.exit_code == 0 and "re-encrypted 1 secret" in rotated.stdout
    stale = runner.invoke(cli, ["vault", "get", "dynamics_sl.api_key", "--database-url", url])
    assert stale.exit_code == 2 and "does not match this vault" in stale.output
    monkeypatch.setenv("LEDGERLINK_MASTER_KEY_FILE", str(new_file))
    assert runner.invoke(cli, ["vault", "get", "dynamics_sl.api_key", "--database-url", url]).stdout.strip() \
        == "sl-secret-value-0001"
    db = Database(url)
    try:
        trail = db.read_sync(lambda conn: audit.entries(conn, action="vault."))
    finally:
        db.close()
    assert [(e.action, e.target, e.details) for e in trail] == [
        ("vault.key_rotated", "vault", {"secrets": 1}), ("vault.secret_set", "vault:dynamics_sl.api_key", {})]
    assert all(e.actor.startswith("cli:") for e in trail)
    assert "sl-secret-value" not in stored.output + rotated.output


def _vault_config(tmp_path: Path, cs_port: int, sl_port: int) -> Path:
    document = yaml.safe_load((REPO / "integrations" / "sl-cybersource.yaml").read_text())
    document["gateway"]["settings"]["base_url"] = f"http://127.0.0.1:{cs_port}"
    document["back_office"]["settings"]["base_url"] = f"http://127.0.0.1:{sl_port}"
    document["runtime"]["backoff"] = {"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 2}
    path = tmp_path / "vaulted.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.slow
def test_serve_with_a_wrong_or_missing_master_key_stops_at_start_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledgerlink.db"
    right = generate_master_key()
    vault = Vault(url, decode_master_key(right))
    for name in ("cybersource.shared_secret", "cybersource.webhook_key", "dynamics_sl.api_key"):
        vault.set(name, base64.b64encode(secrets.token_bytes(32)).decode())
    vault.close()
    config = _vault_config(tmp_path, free_port(), free_port())
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_MASTER_KEY")}
    command = [sys.executable, "-m", "ledgerlink.cli", "serve", "--config", str(config), "--database-url", url,
               "--port", str(free_port())]
    wrong = generate_master_key()
    for env, message in (({"LEDGERLINK_MASTER_KEY": wrong}, "the master key does not match this vault"),
                         ({}, "no master key: set LEDGERLINK_MASTER_KEY or LEDGERLINK_MASTER_KEY_FILE")):
        started = time.monotonic()
        result = subprocess.run(command, env={**base, **env}, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert message in " ".join(result.stderr.split())
        assert "Traceback" not in result.stderr and wrong not in result.stderr + result.stdout
        assert time.monotonic() - started < 30


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_running_engine_never_shows_a_vault_secret_in_logs_responses_or_tables(tmp_path: Path) -> None:
    """``serve`` on secrets from the vault, at debug level, with a forged and a genuine webhook whose processing
    fails against a back office that is down: every line it logged, every admin response and every table (but
    the vault's own) is searched for the secrets, whole and base64-decoded."""
    url = f"sqlite:///{tmp_path}/ledgerlink.db"
    master = generate_master_key()
    webhook_key = base64.b64encode(secrets.token_bytes(32)).decode()
    values = {"cybersource.shared_secret": base64.b64encode(secrets.token_bytes(32)).decode(),
              "cybersource.webhook_key": webhook_key, "dynamics_sl.api_key": "sl-" + secrets.token_hex(16)}
    vault = Vault(url, decode_master_key(master))
    for name, value in values.items():
        vault.set(name, value)
    vault.close()
    port = free_port()
    engine_url = f"http://127.0.0.1:{port}"
    admin = "safety-admin-" + secrets.token_hex(8)
    env = {"LEDGERLINK_MASTER_KEY": master, "LEDGERLINK_ADMIN_TOKEN": admin}
    child = ChildProcess("engine", ["serve", "--config", str(_vault_config(tmp_path, free_port(), free_port())),
                                    "--database-url", url, "--port", str(port), "--log-level", "debug"],
                         tmp_path, env)
    responses: list[str] = []
    try:
        await wait_http(f"{engine_url}/readyz", process=child)
        async with httpx.AsyncClient(base_url=engine_url, timeout=10,
                                     headers={"Authorization": f"Bearer {admin}"}) as client:
            body = orjson.dumps(notification("payments.payments.accept", txn_id="7093261290346789100001"))
            good = sign_notification(body, key=base64.b64decode(webhook_key), key_id=WEBHOOK_KEY_ID,
                                     timestamp_ms=int(time.time() * 1000))
            forged = sign_notification(body, key=b"f" * 32, key_id=WEBHOOK_KEY_ID, timestamp_ms=int(time.time() * 1000))
            for signature in (forged, good):
                answer = await client.post("/webhooks/cybersource", content=body,
                                           headers={"content-type": "application/json", "v-c-signature": signature})
                responses.append(answer.text)
            assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the event fails against the dead back office and is dead-lettered
                dead = (await client.get("/admin/dlq")).json()
                if dead["total"]:
                    break
                await asyncio.sleep(0.2)
            assert dead["total"] == 1, dead
            for path in ("/admin/stats", "/admin/dlq", f"/admin/dlq/{dead['items'][0]['seq']}", "/admin/audit",
                         "/admin/schedules", "/admin/reviews", "/admin/cases", "/admin/tokens",
                         "/admin/reconciliations", "/admin/notifications", "/openapi.json", "/metrics", "/console"):
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text)
                responses.append(response.text)
    finally:
        child.stop()
    logged = child.log_path.read_text(errors="replace")
    assert "signature does not match" in logged and "dead-lettered" in logged  # the failure paths were logged
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = []
        for table in inspect(conn).get_table_names():
            if table != secrets_table.name:
                stored += [repr(tuple(row)) for row in conn.exec_driver_sql(f'SELECT * FROM "{table}"')]
    engine.dispose()
    haystacks = {"log": logged, "responses": "\n".join(responses), "tables": "\n".join(stored)}
    for name, value in values.items():
        forms = {value, value[:16]}
        if name != "dynamics_sl.api_key":
            forms.add(base64.b64decode(value).hex())
        for where, text in haystacks.items():
            assert not any(form in text for form in forms), f"{name} found in the {where}"


async def test_in_process_every_log_record_and_admin_answer_is_free_of_vault_secrets(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    vault = Vault(sqlite_url, key())
    vault.set("cs.shared_secret", CS_CREDENTIALS["shared_secret"])
    vault.set("cs.webhook_key", WEBHOOK_KEY)
    gateway = {"shared_secret": "${vault:cs.shared_secret}", "webhook_keys": {WEBHOOK_KEY_ID: "${vault:cs.webhook_key}"}}
    try:
        async with running_pair(tmp_path, sqlite_url, gateway=gateway, vault=vault.get) as pair:
            await pair.pay("WEB-VAULT-1", "12.00")
            await pair.settle()
            assert len(await pair.orders_for("WEB-VAULT-1")) == 1  # the secrets from the vault work
            texts = await _every_admin_answer(pair)
    finally:
        vault.close()
    logged = "\n".join(r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records)
    for value in (CS_CREDENTIALS["shared_secret"], WEBHOOK_KEY):
        assert value not in logged and value[:16] not in logged
        assert all(value not in text for text in texts)


async def _every_admin_answer(pair: Pair) -> list[str]:
    texts = []
    for route in pair.app.routes:
        path = getattr(route, "path", "")
        if "GET" in (getattr(route, "methods", None) or ()) and "{" not in path:
            texts.append((await pair.engine_http.get(path)).text)
    return texts
