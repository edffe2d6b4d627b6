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
from ledgerlink.runtime import audit, dlq
from ledgerlink.runtime.card_retries import DatabaseCardRetryLedger
from ledgerlink.runtime.db import Database, DatabaseLocked
from ledgerlink.runtime.engine import Engine
from ledgerlink.runtime.flow_control import FlowControl, flow_report
from ledgerlink.runtime.inbox_index import DatabaseInboxIndex
from ledgerlink.runtime.notifications import DatabaseNotificationOutbox
from ledgerlink.runtime.records import DatabaseCaseBook, DatabaseReconciliationLedger
from ledgerlink.runtime.reviews import DatabaseReviewQueue, DatabaseRiskLedger
from ledgerlink.runtime.settings import RuntimeSettings
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
review_app = typer.Typer(no_args_is_help=True, help="Fraud review: payments held for review, highest risk first.")
app.add_typer(review_app, name="review")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens for the admin API and the console (roles: viewer, "
                                                      "operator, admin); only their digests are stored.")
app.add_typer(tokens_app, name="tokens")

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


def _cli_actor() -> str:
    """The audit log's actor for what this command changes: the OS user running it."""
    import getpass

    return f"cli:{getpass.getuser()}"


def _open_vault(url: str) -> Vault:
    try:
        return Vault(url, master_key_from_environment(), schema=_schema())
    except VaultError as exc:
        raise _fail(str(exc)) from None


def _build(spec: IntegrationSpec, url: str, db: Database) -> Integration:
    vault = _open_vault(url) if needs_vault(spec) else None
    records = Records(cases=DatabaseCaseBook(db), ledger=DatabaseReconciliationLedger(db),
                      reviews=DatabaseReviewQueue(db, buckets=spec.runtime.buckets), risk=DatabaseRiskLedger(db),
                      outbox=DatabaseNotificationOutbox(db), card_retries=DatabaseCardRetryLedger(db),
                      inbox=DatabaseInboxIndex(db))
    try:
        return build_integration(spec, vault=vault.get if vault else None, records=records,
                                 flow_control=FlowControl(db, spec.runtime))
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
        services=integration.services(db) if workers else (),
        flow_control=integration.flow_control,
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
    """Print what the engine has done (events by status, counters, latency) and what holds it back
    (back-pressure alerts, circuit breakers, rate limits and 429 pauses)."""
    spec = _load_spec(config) if config else None
    runtime = spec.runtime if spec else RuntimeSettings()
    db = Database(database_url(spec, database_url_), schema=_schema())
    try:
        report = db.read_sync(engine_stats)
        report.update(db.read_sync(lambda conn: flow_report(conn, runtime)))
    finally:
        db.close()
    if runtime.rate_limits.redis_url:
        report["rate_limits"] = _redis_pauses(runtime, report["rate_limits"])
    out.print_json(json.dumps(report, default=str))


def _redis_pauses(runtime: RuntimeSettings, rate_limits: dict[str, Any]) -> dict[str, Any]:
    from ledgerlink.runtime.ratelimit import RedisBuckets

    async def read() -> dict[str, float]:
        store = RedisBuckets(runtime.rate_limits.redis_url or "", prefix=runtime.rate_limits.redis_prefix)
        try:
            return await store.pauses(time.time())
        finally:
            await store.aclose()

    try:
        pauses = asyncio.run(read())
    except Exception as exc:
        return {**rate_limits, "redis": f"unavailable: {type(exc).__name__}"}
    now = time.time()
    for key, until in pauses.items():
        rate_limits.setdefault(key, {})["paused_for_seconds"] = round(until - now, 3)
    return rate_limits


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
        replayed = db.write_sync(lambda conn: dlq.replay_audited(db, conn, None if all_ else seqs, actor=_cli_actor()))
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
    name: Annotated[str, typer.Argument(help="cybersource, dynamics_sl or smtp (a mail sink: --set smtp_port=8825)")],
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

    def queue(conn: Any) -> None:
        store_items(db, conn, [item], buckets=spec.runtime.buckets, now=time.time())
        audit.append(db, conn, actor=_cli_actor(), action="reconciliation.requested",
                     target=f"reconciliation:{run_id}", details={"day": day.isoformat()})

    db.write_sync(queue)

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
    table = Table("type", "status", "amount", "reference", "age", "summary")
    now = time.time()
    for case in found:
        age = max(0.0, now - case.opened_at.timestamp())
        table.add_row(case.type.value, case.status.value, str(case.amount or ""), case.reference or "",
                      f"{int(age // 86400)}d {int(age % 86400 // 3600)}h", case.summary[:70])
    out.print(table)
    out.print(f"{len(found)} case(s)")


def _review_queue(config: Path | None, database_url_: str | None) -> tuple[Database, DatabaseReviewQueue]:
    spec = _load_spec(config) if config else None
    db = Database(database_url(spec, database_url_), schema=_schema())
    return db, DatabaseReviewQueue(db, buckets=spec.runtime.buckets if spec else None)


@review_app.command("list")
def review_list(
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
    status: Annotated[str, typer.Option(help="open, accepted, rejected, or all")] = "open",
    limit: int = 50,
) -> None:
    """The review queue: payments held for review, highest risk score first."""
    from ledgerlink.model import ReviewStatus

    try:
        wanted = None if status == "all" else ReviewStatus(status)
    except ValueError:
        raise _fail(f"--status {status!r}: use open, accepted, rejected or all") from None
    db, queue = _review_queue(config, database_url_)
    try:
        found = asyncio.run(queue.list(status=wanted, limit=limit))
    finally:
        db.close()
    table = Table("score", "case", "order", "amount", "status", "age", "raised by", "fraud screen")
    now = time.time()
    for case in found:
        age = max(0.0, now - case.opened_at.timestamp())
        factors = ", ".join(f.feature for f in case.risk.factors) if case.risk else ""
        table.add_row(str(case.risk.points) if case.risk else "-", case.key, case.order_reference or "",
                      f"{case.amount.format()} {case.amount.currency}", case.status.value,
                      f"{int(age // 3600)}h {int(age % 3600 // 60)}m", factors,
                      ", ".join(r.code for r in case.reasons)[:40])
    out.print(table)
    out.print(f"{len(found)} case(s)")


@review_app.command("show")
def review_show(key: str, config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """One case: the fraud screen's reasons in words, our score and what raised it, and its audit trail."""
    from ledgerlink.runtime import audit
    from ledgerlink.runtime.reviews import case_summary

    db, queue = _review_queue(config, database_url_)
    try:
        case = asyncio.run(queue.get(key))
        trail = db.read_sync(lambda conn: audit.entries(conn, target=key))
    finally:
        db.close()
    if case is None:
        raise _fail(f"no review case {key}", code=1)
    out.print_json(json.dumps({**case_summary(case), "audit": [e.as_dict() for e in trail]}, default=str))


def _decide_review(decision: str, key: str, comments: str | None, reviewer: str | None, config: Path | None,
                   database_url_: str | None) -> None:
    import getpass

    from ledgerlink.flows.fraud_review import request_decision
    from ledgerlink.flows.ports import UnknownCase
    from ledgerlink.model import CaseClosed, InvalidInput, ReviewDecision

    actor = f"cli:{getpass.getuser()}" + (f" ({reviewer.strip()})" if reviewer and reviewer.strip() else "")
    db, queue = _review_queue(config, database_url_)
    try:
        case = asyncio.run(request_decision(queue, key, ReviewDecision(decision), actor=actor, comments=comments))
    except UnknownCase:
        raise _fail(f"no review case {key}", code=1) from None
    except CaseClosed as exc:
        raise _fail(str(exc), code=1) from None
    except (InvalidInput, RuntimeError) as exc:
        raise _fail(str(exc)) from None
    finally:
        db.close()
    out.print(f"{case.key}: {case.status.value} by {case.decided_by}; queued: the engine "
              f"{'captures and releases the order' if decision == 'accept' else 'reverses and cancels the order'}")


ReviewComments = Annotated[str | None, typer.Option("--comments", "-m", help="why (kept in the audit log)")]
ReviewerName = Annotated[str | None, typer.Option("--reviewer", help="your name, if not your OS user's")]


@review_app.command("accept")
def review_accept(key: str, comments: ReviewComments = None, reviewer: ReviewerName = None,
                  config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """Accept a held payment: the gateway captures it and the order's hold is released."""
    _decide_review("accept", key, comments, reviewer, config, database_url_)


@review_app.command("reject")
def review_reject(key: str, comments: ReviewComments = None, reviewer: ReviewerName = None,
                  config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """Reject a held payment as fraud: the authorisation is reversed and the order cancelled."""
    _decide_review("reject", key, comments, reviewer, config, database_url_)


@config_app.command("check")
def config_check(path: Path) -> None:
    """Validate an integration file and print what it configures."""
    spec = _load_spec(path)
    out.print(f"[green]ok[/green] {spec.name}: {spec.gateway.type} -> {spec.back_office.type}; "
              f"flows: {', '.join(k for k, v in spec.flows.model_dump().items() if v['enabled'])}")


def _vault(config: Path | None, database_url_: str | None) -> Vault:
    spec = _load_spec(config) if config else None
    return _open_vault(database_url(spec, database_url_))


def _vault_with_audit(config: Path | None, database_url_: str | None) -> tuple[Vault, Database]:
    """The vault and the runtime database beside it (which holds the audit log the change is written to)."""
    db = _database(config, database_url_)
    try:
        return _vault(config, database_url_), db
    except BaseException:
        db.close()
        raise


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
    vault, db = _vault_with_audit(config, database_url_)
    try:
        vault.set(name, secret, audit=lambda conn: audit.append(
            db, conn, actor=_cli_actor(), action="vault.secret_set", target=f"vault:{name}"))
    except VaultError as exc:
        raise _fail(str(exc)) from None
    finally:
        vault.close()
        db.close()
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
    vault, db = _vault_with_audit(config, database_url_)
    try:
        moved = vault.rotate(new_key, audit=lambda conn, moved: audit.append(
            db, conn, actor=_cli_actor(), action="vault.key_rotated", target="vault", details={"secrets": moved}))
    except VaultError as exc:
        raise _fail(f"{exc}; the vault is unchanged") from None
    finally:
        vault.close()
        db.close()
    out.print(f"re-encrypted {moved} secret(s); point LEDGERLINK_MASTER_KEY_FILE at {new_key_file} now")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="who or what holds it: a-z, 0-9, '.', '_', '-'")],
    role: Annotated[str, typer.Option(help="viewer (read), operator (also replay, decide, reconcile) or admin")],
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
) -> None:
    """Make an API token and print it once (only its digest is stored)."""
    from ledgerlink.model import InvalidInput
    from ledgerlink.runtime import tokens

    db = _database(config, database_url_)
    try:
        secret = db.write_sync(lambda conn: tokens.create(db, conn, name=name, role=role, actor=_cli_actor()))
    except (InvalidInput, tokens.TokenExists) as exc:
        raise _fail(str(exc)) from None
    finally:
        db.close()
    err.print(f"made token {name} ({role}); it is shown this once, keep it now:", highlight=False)
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list(config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """List tokens: name, role, who made and revoked them, when (never a secret)."""
    from ledgerlink.runtime import tokens

    db = _database(config, database_url_)
    try:
        found = db.read_sync(tokens.list_tokens)
    finally:
        db.close()
    table = Table("name", "role", "created", "by", "revoked", "by")

    def when(at: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at)) if at else ""

    for token in found:
        table.add_row(token.name, token.role.value, when(token.created_at), token.created_by,
                      when(token.revoked_at), token.revoked_by or "")
    out.print(table)
    out.print(f"{sum(t.revoked_at is None for t in found)} active, {sum(t.revoked_at is not None for t in found)} revoked")


@tokens_app.command("revoke")
def tokens_revoke(name: str, config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """Revoke a token: it stops working at once (its name is never reused)."""
    from ledgerlink.runtime import tokens

    db = _database(config, database_url_)
    try:
        db.write_sync(lambda conn: tokens.revoke(db, conn, name=name, actor=_cli_actor()))
    except tokens.UnknownToken as exc:
        raise _fail(str(exc), code=1) from None
    finally:
        db.close()
    out.print(f"revoked {name}")


@app.command("audit")
def audit_log(
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
    target: Annotated[str | None, typer.Option(help="the record acted on, e.g. token:ops, event:42")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. dlq.replayed; ending in '.' matches a prefix")] = None,
    actor: Annotated[str | None, typer.Option(help="e.g. admin:ops, cli:ann")] = None,
    before: Annotated[int | None, typer.Option(help="entries older than this seq (paging)")] = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
) -> None:
    """The audit log, newest first: who did what to which record, when."""
    db = _database(config, database_url_)
    try:
        found = db.read_sync(lambda conn: audit.entries(conn, target=target, action=action, actor=actor,
                                                        before=before, limit=limit))
    finally:
        db.close()
    if as_json:
        for entry in found:
            typer.echo(json.dumps(entry.as_dict(), default=str))
        return
    table = Table("seq", "at (UTC)", "actor", "action", "target", "details")
    for entry in found:
        table.add_row(str(entry.seq), entry.at.strftime("%Y-%m-%d %H:%M:%S"), entry.actor, entry.action, entry.target,
                      json.dumps(entry.details, default=str)[:80])
    out.print(table)


def main(argv: list[str] | None = None) -> Any:
    return app(args=argv)


if __name__ == "__main__":
    main()
