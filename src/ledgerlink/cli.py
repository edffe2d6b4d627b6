"""``ledgerlink``: run the engine, its workers, the sandboxes and the demo; operate the DLQ and the vault."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from ledgerlink.integrations import (
    ConfigError,
    Integration,
    IntegrationSpec,
    Records,
    build_integration,
    database_url,
    load_integration_file,
    needs_vault,
)
from ledgerlink.runtime import dlq
from ledgerlink.runtime.db import Database, DatabaseLocked
from ledgerlink.runtime.engine import Engine
from ledgerlink.runtime.records import DatabaseCaseBook, DatabaseReconciliationLedger
from ledgerlink.runtime.stats import engine_stats
from ledgerlink.telemetry import configure_logging
from ledgerlink.vault import (
    Vault,
    VaultError,
    decode_master_key,
    generate_master_key,
    master_key_from_environment,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter list: inspect and replay failed events.")
vault_app = typer.Typer(no_args_is_help=True, help="The encrypted credential vault.")
config_app = typer.Typer(no_args_is_help=True, help="Integration files.")
app.add_typer(dlq_app, name="dlq")
app.add_typer(vault_app, name="vault")
app.add_typer(config_app, name="config")

out = Console()
err = Console(stderr=True)
log = logging.getLogger("ledgerlink")

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="integration file (YAML)")]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="overrides LEDGERLINK_DATABASE_URL and the file's database")
]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning, error")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def _schema() -> str | None:
    return os.environ.get("LEDGERLINK_DATABASE_SCHEMA") or None


def _load_spec(config: Path | None) -> IntegrationSpec:
    if config is None:
        raise _fail("--config is required")
    try:
        return load_integration_file(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _open_vault(url: str) -> Vault:
    try:
        return Vault(url, master_key_from_environment())
    except VaultError as exc:
        raise _fail(str(exc)) from None


def _build(spec: IntegrationSpec, url: str, db: Database) -> Integration:
    vault = _open_vault(url) if needs_vault(spec) else None
    records = Records(cases=DatabaseCaseBook(db), ledger=DatabaseReconciliationLedger(db))
    try:
        return build_integration(spec, vault=vault.get if vault else None, records=records)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    finally:
        if vault is not None:
            vault.close()


def _prepare(config: Path | None, database_url_: str | None, log_level: str) -> tuple[
        IntegrationSpec, Integration, Database]:
    """What ``serve`` and ``worker`` both start from: logging, the integration built, its database open."""
    configure_logging(log_level)
    spec = _load_spec(config)
    url = database_url(spec, database_url_)
    db = Database(url, schema=_schema())
    try:
        return spec, _build(spec, url, db), db
    except BaseException:
        db.close()
        raise


def _engine(spec: IntegrationSpec, integration: Integration, db: Database, *, intake: bool, workers: bool) -> Engine:
    return Engine(
        db,
        handlers=integration.handlers,
        settings=spec.runtime,
        schedules=integration.schedules(),
        jobs=integration.jobs(db),
        run_intake=intake,
        run_workers=workers,
    )


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8800,
    database_url_: DatabaseOption = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="intake and API only (PostgreSQL scale-out)")] = False,
    admin_token: Annotated[str | None, typer.Option(envvar="LEDGERLINK_ADMIN_TOKEN", hidden=True)] = None,
    log_level: LogLevel = "info",
) -> None:
    """Run the engine: webhook intake, workers, scheduler, admin API, metrics."""
    import uvicorn

    from ledgerlink.service.app import create_app

    spec, integration, db = _prepare(config, database_url_, log_level)
    if no_worker and db.is_sqlite:
        log.warning("--no-worker on SQLite: events are stored but nothing processes them until an engine runs")
    try:
        engine = _engine(spec, integration, db, intake=True, workers=not no_worker)
        application = create_app(integration, engine, admin_tokens=[admin_token] if admin_token else [])
        uvicorn.run(application, host=host, port=port, loop="uvloop", http="httptools", log_config=None,
                    access_log=False, lifespan="on", timeout_graceful_shutdown=30)
    except DatabaseLocked as exc:
        raise _fail(str(exc)) from None
    finally:
        db.close()


@app.command()
def worker(
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
    metrics_port: Annotated[int | None, typer.Option(help="serve Prometheus metrics on this port")] = None,
    log_level: LogLevel = "info",
) -> None:
    """Run an extra worker process against the same PostgreSQL database as ``serve``."""
    spec, integration, db = _prepare(config, database_url_, log_level)
    if db.is_sqlite:
        db.close()
        raise _fail("extra workers need PostgreSQL (LEDGERLINK_DATABASE_URL=postgresql://...); "
                    "on SQLite `ledgerlink serve` runs the only engine")
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)

    async def run() -> None:
        engine = _engine(spec, integration, db, intake=False, workers=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await engine.start()
        log.info("worker %s running", spec.runtime.worker_id)
        await stop.wait()
        await engine.stop()
        await integration.aclose()

    try:
        asyncio.run(run())
    finally:
        db.close()


def _database(config: Path | None, database_url_: str | None) -> Database:
    spec = _load_spec(config) if config else None
    return Database(database_url(spec, database_url_), schema=_schema())


@app.command()
def stats(config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """Print what the engine has done (events by status, counters, latency)."""
    db = _database(config, database_url_)
    try:
        out.print_json(json.dumps(db.read_sync(engine_stats)))
    finally:
        db.close()


@dlq_app.command("list")
def dlq_list(
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
    limit: int = 100,
    source: str | None = None,
) -> None:
    """List dead-lettered events."""
    db = _database(config, database_url_)
    try:
        items = db.read_sync(lambda conn: dlq.list_dead(conn, limit=limit, source=source))
    finally:
        db.close()
    table = Table("seq", "source", "event", "type", "attempts", "error", "status", "message")
    for item in items:
        s = item.summary()
        table.add_row(str(s["seq"]), s["source"], s["event_id"], s["event_type"], str(s["attempts"]),
                      str(s["error"]), str(s["status"] or ""), str(s["message"] or "")[:80])
    out.print(table)
    out.print(f"{len(items)} dead-lettered event(s)")


@dlq_app.command("show")
def dlq_show(seq: int, config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """Show one dead-lettered event with its evidence, attempt history and (redacted) body."""
    db = _database(config, database_url_)
    try:
        item = db.read_sync(lambda conn: dlq.get_dead(conn, seq))
    finally:
        db.close()
    if item is None:
        raise _fail(f"no dead-lettered event {seq}", code=1)
    out.print_json(json.dumps(item.detail(), default=str))


@dlq_app.command("replay")
def dlq_replay(
    seqs: Annotated[list[int] | None, typer.Argument(help="event seqs to replay")] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every dead-lettered event")] = False,
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
) -> None:
    """Send dead-lettered events back to the queue (a running engine picks them up)."""
    if not seqs and not all_:
        raise _fail("name the seqs to replay, or --all")
    db = _database(config, database_url_)
    try:
        replayed = db.write_sync(lambda conn: dlq.replay(conn, None if all_ else seqs, is_sqlite=db.is_sqlite))
    finally:
        db.close()
    out.print(f"replayed {len(replayed)} event(s): {replayed}")


def _settings_from(pairs: list[str] | None, settings_file: Path | None) -> dict[str, Any]:
    import yaml

    settings: dict[str, Any] = {}
    if settings_file is not None:
        loaded = yaml.safe_load(settings_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise _fail(f"{settings_file} must hold a YAML mapping")
        settings.update(loaded)
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise _fail(f"--set takes key=value, got {pair!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        target = settings
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return settings


@app.command()
def sandbox(
    name: Annotated[str, typer.Argument(help="cybersource or dynamics_sl")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8801,
    set_: Annotated[list[str] | None, typer.Option("--set", help="a sandbox setting, key=value (dots nest)")] = None,
    settings_file: Annotated[Path | None, typer.Option(help="sandbox settings as YAML")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="cybersource: subscribe this URL to every event")] = None,
    log_level: LogLevel = "warning",
) -> None:
    """Run one external system's sandbox as a real server (state, auth and wire format as the real system)."""
    import uvicorn

    from ledgerlink.connectors import registry

    configure_logging(log_level)
    settings = _settings_from(set_, settings_file)
    if webhook_url:
        settings.setdefault("subscriptions", []).append({"url": webhook_url})
    try:
        application = registry.sandbox_factory(name)(settings)
    except registry.UnknownConnector as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(f"sandbox settings: {exc}") from None
    uvicorn.run(application, host=host, port=port, loop="uvloop", http="httptools", log_config=None,
                access_log=False, lifespan="on")


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="webhook deliveries to generate")] = 2000,
    keep: Annotated[bool, typer.Option("--keep", help="leave the sandboxes and the engine serving")] = False,
    workdir: Annotated[Path, typer.Option(help="where the demo keeps its databases and logs")] = Path("var/demo"),
    seed: Annotated[int, typer.Option(help="random seed of the traffic")] = 2026,
) -> None:
    """Start both sandboxes and the engine, send a burst of real signed traffic, and summarise what SL got."""
    from ledgerlink.demo import DemoOptions, run_demo

    configure_logging("warning")
    code = asyncio.run(run_demo(DemoOptions(events=events, keep=keep, workdir=workdir, seed=seed), out))
    raise typer.Exit(code)


@app.command()
def reconcile(
    date_: Annotated[str, typer.Option("--date", help="the settlement day, YYYY-MM-DD")],
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the run")] = 600.0,
    log_level: LogLevel = "warning",
) -> None:
    """Reconcile one settlement day now (the same run the daily schedule makes) and print its summary.

    The run is queued as a durable job: a running engine picks it up; with none running, this command runs
    the engine itself until the job is done.
    """
    import datetime as dt

    from ledgerlink.flows.jobs import RECONCILE_DAY, reconcile_partition
    from ledgerlink.runtime.records import get_report
    from ledgerlink.runtime.scheduler import job_event
    from ledgerlink.runtime.schema import inbox

    try:
        day = dt.date.fromisoformat(date_)
    except ValueError:
        raise _fail(f"--date {date_!r} is not YYYY-MM-DD") from None
    spec, integration, db = _prepare(config, database_url_, log_level)
    if integration.settlement is None:
        db.close()
        raise _fail("flows.settlement is not enabled in this integration file")
    run_id = f"{day.isoformat()}-manual-{os.getpid()}-{int(time.time())}"
    row = job_event(RECONCILE_DAY, args={"day": day.isoformat(), "run_id": run_id}, nonce=run_id,
                    buckets=spec.runtime.buckets, now=time.time(),
                    partition=reconcile_partition(integration.settlement, day))
    from ledgerlink.runtime.intake import InboxItem, store_items

    item = InboxItem(source=row["source"], event_id=row["event_id"], event_type=row["event_type"],
                     partition_key=row["partition_key"], body=row["body"])
    db.write_sync(lambda conn: store_items(db, conn, [item], buckets=spec.runtime.buckets, now=time.time()))

    async def wait() -> str:
        engine: Engine | None = None
        try:
            db.acquire_engine_lock()
            engine = _engine(spec, integration, db, intake=False, workers=True)
            await engine.start()
        except DatabaseLocked:
            engine = None  # a running engine will run it
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                status = await db.read(lambda conn: conn.execute(
                    select(inbox.c.status).where(inbox.c.source == item.source,
                                                 inbox.c.event_id == item.event_id)).scalar_one())
                if status in ("done", "dead"):
                    return str(status)
                await asyncio.sleep(0.25)
            return "timeout"
        finally:
            if engine is not None:
                await engine.stop()
            await integration.aclose()

    try:
        status = asyncio.run(wait())
        report = db.read_sync(lambda conn: get_report(conn, run_id))
    finally:
        db.close()
    if report is None:
        raise _fail(f"the run did not finish ({status}); see `ledgerlink dlq list`", code=1)
    out.print_json(json.dumps({"run_id": run_id, "status": report["status"], "day": report["day"],
                               "summary": report["summary"], "error": report["error"]}, default=str))
    if report["status"] != "succeeded":
        raise typer.Exit(1)


@app.command()
def cases(
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
    status: Annotated[str | None, typer.Option(help="open or resolved")] = "open",
    type_: Annotated[str | None, typer.Option("--type", help="e.g. missing_in_erp, dispute")] = None,
    limit: int = 100,
) -> None:
    """List cases: reconciliation discrepancies, disputes, refused refunds."""
    from ledgerlink.model import CaseStatus, CaseType

    db = _database(config, database_url_)
    try:
        found = asyncio.run(DatabaseCaseBook(db).list(
            status=CaseStatus(status) if status else None, type=CaseType(type_) if type_ else None, limit=limit))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    finally:
        db.close()
    table = Table("type", "status", "amount", "reference", "summary", "opened")
    for case in found:
        table.add_row(case.type.value, case.status.value, str(case.amount or ""), case.reference or "",
                      case.summary[:70], case.opened_at.strftime("%Y-%m-%d %H:%M"))
    out.print(table)
    out.print(f"{len(found)} case(s)")


@config_app.command("check")
def config_check(path: Path) -> None:
    """Validate an integration file and print what it configures."""
    spec = _load_spec(path)
    out.print(f"[green]ok[/green] {spec.name}: {spec.gateway.type} -> {spec.back_office.type}; "
              f"flows: {', '.join(k for k, v in spec.flows.model_dump().items() if v['enabled'])}")


def _vault(config: Path | None, database_url_: str | None) -> Vault:
    spec = _load_spec(config) if config else None
    return _open_vault(database_url(spec, database_url_))


@vault_app.command("new-key")
def vault_new_key(path: Annotated[Path, typer.Argument(help="file to write the new master key to")]) -> None:
    """Generate a master key into a file readable only by you."""
    if path.exists():
        raise _fail(f"{path} exists; refusing to overwrite a master key")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_master_key() + "\n")
    out.print(f"wrote a new master key to {path}; set LEDGERLINK_MASTER_KEY_FILE={path}")


@vault_app.command("set")
def vault_set(
    name: str,
    value: Annotated[str | None, typer.Option(help="the secret (omit to read it from stdin)")] = None,
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
) -> None:
    """Store a secret (read from stdin unless --value is given)."""
    secret = value if value is not None else sys.stdin.read().strip()
    if not secret:
        raise _fail("empty secret")
    vault = _vault(config, database_url_)
    try:
        vault.set(name, secret)
    finally:
        vault.close()
    out.print(f"stored {name}")


@vault_app.command("get")
def vault_get(name: str, config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """Print a secret to stdout (for scripts; it is never logged)."""
    vault = _vault(config, database_url_)
    try:
        typer.echo(vault.get(name))
    except VaultError as exc:
        raise _fail(str(exc), code=1) from None
    finally:
        vault.close()


@vault_app.command("list")
def vault_list(config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """List secret names (never values)."""
    vault = _vault(config, database_url_)
    try:
        for name in vault.names():
            out.print(name)
    finally:
        vault.close()


@vault_app.command("rotate-key")
def vault_rotate(
    new_key_file: Annotated[Path, typer.Option(help="file holding the new master key")],
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
) -> None:
    """Re-encrypt every secret under a new master key (all or nothing)."""
    try:
        new_key = decode_master_key(new_key_file.read_text())
    except (OSError, VaultError) as exc:
        raise _fail(f"cannot use {new_key_file}: {exc}") from None
    vault = _vault(config, database_url_)
    try:
        moved = vault.rotate(new_key)
    finally:
        vault.close()
    out.print(f"re-encrypted {moved} secret(s); point LEDGERLINK_MASTER_KEY_FILE at {new_key_file} now")


def main(argv: list[str] | None = None) -> Any:
    return app(args=argv)


if __name__ == "__main__":
    main()
