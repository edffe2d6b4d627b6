"""``ledgerlink demo``: the whole pair on this machine, real processes and real protocols.

1. Start the Dynamics SL and Cybersource sandboxes as servers.
2. As the merchant would: create a webhook signing key through Cybersource's KMS API and keep every
   credential in the vault (a fresh master key in the work directory).
3. Start the engine (SQLite, nothing else to set up) on an integration file written from
   ``integrations/sl-cybersource.yaml``, then subscribe its URL through the webhook-subscription API.
4. Act as a web shop: sales, authorisations with later captures, reviews, declines — signed API calls to
   the Cybersource sandbox, which sends signed webhooks (some duplicated, some reordered) to the engine.
5. Wait until every event is settled in SL, then print what happened and check every expected order is
   in SL exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.model import AuthorizationRequest, Money, Party, PaymentToken
from ledgerlink.processes import ChildProcess, free_port, wait_http
from ledgerlink.vault import Vault, decode_master_key, generate_master_key

MERCHANT = {
    "merchant_id": "testrest",
    "key_id": "08c94330-f618-42a3-b09d-e1e43be5efda",
    "shared_secret": "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE=",
}
SL_API_KEY = "sl-sandbox-key"
ADMIN_TOKEN = "demo-admin-token"
INSTRUMENTS = ["A0000000000000000000000000004111", "A0000000000000000000000000005555",
               "A0000000000000000000000000003782"]
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "integrations" / "sl-cybersource.yaml"


@dataclass
class DemoOptions:
    events: int = 2000
    keep: bool = False
    workdir: Path = Path("var/demo")
    seed: int = 2026
    duplicate_rate: float = 0.05
    reorder_window: int = 16


@dataclass
class Plan:
    """What the storefront did, to check SL against."""

    expected_orders: set[str] = field(default_factory=set)
    expected_paid: set[str] = field(default_factory=set)
    expected_on_hold: set[str] = field(default_factory=set)
    declined: set[str] = field(default_factory=set)
    kinds: Counter[str] = field(default_factory=Counter)


def write_integration_file(workdir: Path, cs_url: str, sl_url: str, webhook_key_id: str) -> Path:
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    document["gateway"]["settings"]["base_url"] = cs_url
    document["gateway"]["settings"]["webhook_keys"] = {webhook_key_id: "${vault:cybersource.webhook_key}"}
    document["back_office"]["settings"]["base_url"] = sl_url
    document["runtime"]["lease_seconds"] = 5
    path = workdir / "sl-cybersource.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def storefront_traffic(gateway: Any, cs_http: httpx.AsyncClient, options: DemoOptions, plan: Plan,
                             progress: Progress, task: Any) -> None:
    """Place orders until the sandbox has emitted ``options.events`` webhook deliveries."""
    rng = random.Random(options.seed)
    counter = 0
    lock = asyncio.Lock()

    async def emitted() -> int:
        stats = (await cs_http.get("/__sandbox/stats")).json()
        return int(stats["webhooks"]["emitted"])

    async def one_order() -> None:
        nonlocal counter
        async with lock:
            counter += 1
            number = counter
        reference = f"WEB-{options.seed % 1000:03d}-{number:05d}"
        roll = rng.random()
        dollars = rng.randint(5, 900)
        cents = rng.choice([c for c in range(100) if c not in (1, 2, 3, 8, 9)])
        capture = True
        if roll < 0.55:
            kind = "sale"
        elif roll < 0.75:
            kind, capture = "auth+capture", False
        elif roll < 0.85:
            kind, capture = "authorisation", False
        elif roll < 0.93:
            kind, cents, capture = "review", 9, False
        else:
            kind, cents = "declined", rng.choice([1, 2, 3])
        email = f"customer{rng.randint(1, max(50, options.events // 3))}@example.com"
        request = AuthorizationRequest(
            amount=Money.of(f"{dollars}.{cents:02d}", "USD"), order_reference=reference, capture=capture,
            token=PaymentToken(gateway="cybersource", token_id=rng.choice(INSTRUMENTS)),
            party=Party(first_name="Demo", last_name=f"Customer {number}", email=email, phone="+1 415 555 0100"),
            merchant_defined={"1": f"campaign-{number % 7}"},
        )
        payment = await gateway.authorize(request)
        plan.kinds[kind] += 1
        if kind == "declined":
            plan.declined.add(reference)
            return
        plan.expected_orders.add(reference)
        if kind == "review":
            plan.expected_on_hold.add(reference)
        elif kind == "auth+capture":
            await gateway.capture(payment.id, payment.amount, order_reference=reference)
            plan.expected_paid.add(reference)
        elif kind == "sale":
            plan.expected_paid.add(reference)

    async def shopper() -> None:
        while True:
            done = await emitted()
            progress.update(task, completed=min(done, options.events))
            if done >= options.events:
                return
            await asyncio.gather(*(one_order() for _ in range(8)))

    await asyncio.gather(*(shopper() for _ in range(4)))
    progress.update(task, completed=options.events)


async def settled(engine: httpx.AsyncClient, cs_http: httpx.AsyncClient) -> tuple[bool, dict[str, Any]]:
    cs_stats = (await cs_http.get("/__sandbox/stats")).json()
    stats = (await engine.get("/admin/stats", params={"latency_window": 0})).json()
    events = stats["events"]
    unfinished = sum(events.get(s, 0) for s in ("waiting", "pending", "running"))
    return cs_stats["webhooks"]["pending"] == 0 and unfinished == 0, stats


async def sl_orders(sl_http: httpx.AsyncClient) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    while True:
        page = (await sl_http.get("/api/v1/salesorders", params={"$top": 1000, "$skip": len(orders)})).json()
        rows = page["value"] if isinstance(page, dict) else page
        orders.extend(rows)
        if len(rows) < 1000:
            return orders


def summary_table(stats: dict[str, Any], sl_counts: dict[str, Any], cs_stats: dict[str, Any],
                  wall_seconds: float) -> Table:
    counters = stats["counters"]
    latency = stats["latency_seconds"]
    table = Table(title="ledgerlink demo: Cybersource -> Dynamics SL", show_header=True, header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.0f} ms"

    rows = [
        ("webhook deliveries sent by Cybersource", f"{cs_stats['webhooks']['delivered']:,}"),
        ("events received (stored durably)", f"{counters.get('events.received', 0):,}"),
        ("duplicates skipped", f"{counters.get('events.duplicates', 0):,}"),
        ("late events skipped (out of order)", f"{counters.get('events.stale', 0):,}"),
        ("declines logged, nothing posted", f"{counters.get('payments.declined', 0):,}"),
        ("sales orders created in SL", f"{sl_counts['orders']:,}"),
        ("payments applied in SL (PA documents)", f"{sl_counts['ardocs'].get('PA', 0):,}"),
        ("orders on hold in SL", f"{sl_counts['orders_on_hold']:,}"),
        ("customers in SL", f"{sl_counts['customers']:,}"),
        ("dead-lettered", f"{stats['events'].get('dead', 0):,}"),
        ("webhook -> ERP latency p50", ms(latency["p50"])),
        ("webhook -> ERP latency p99", ms(latency["p99"])),
        ("throughput (events/s, first receipt to last posting)",
         f"{stats['throughput_per_second']:,.0f}" if stats["throughput_per_second"] else "-"),
        ("wall time", f"{wall_seconds:,.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def verify(plan: Plan, orders: list[dict[str, Any]]) -> list[str]:
    """Problems found comparing SL with what the storefront did (empty: every order exactly once)."""
    by_reference = Counter(o["CustOrdNbr"].strip() for o in orders)
    problems = []
    for reference in sorted(plan.expected_orders):
        if by_reference[reference] != 1:
            problems.append(f"{reference}: {by_reference[reference]} sales orders in SL (expected 1)")
    for reference in sorted(plan.declined):
        if by_reference[reference]:
            problems.append(f"{reference}: declined, yet {by_reference[reference]} sales order(s) in SL")
    lookup = {o["CustOrdNbr"].strip(): o for o in orders}
    for reference in sorted(plan.expected_paid):
        order = lookup.get(reference)
        if order is not None and Decimal(order["BalDue"]) != 0:
            problems.append(f"{reference}: captured but BalDue is {order['BalDue']}")
    for reference in sorted(plan.expected_on_hold):
        order = lookup.get(reference)
        if order is not None and order["AdminHold"] != 1:
            problems.append(f"{reference}: in review but not on hold")
    return problems


async def run_demo(options: DemoOptions, console: Console) -> int:
    workdir = options.workdir
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    children: list[ChildProcess] = []

    def start(name: str, args: list[str], env: dict[str, str] | None = None) -> ChildProcess:
        child = ChildProcess(name, args, workdir, env)
        children.append(child)
        return child

    def check_all() -> None:
        for child in children:
            child.check()

    engine_port, cs_port, sl_port = free_port(8800), free_port(8801), free_port(8802)
    cs_url, sl_url, engine_url = (f"http://127.0.0.1:{p}" for p in (cs_port, sl_port, engine_port))
    database_url = f"sqlite:///{workdir / 'ledgerlink.db'}"
    try:
        console.print(f"[bold]1.[/bold] sandboxes: Cybersource {cs_url}, Dynamics SL {sl_url}")
        sl = start("dynamics_sl", ["sandbox", "dynamics_sl", "--port", str(sl_port),
                                   "--set", f"database={workdir / 'sl.db'}"])
        cybersource = start("cybersource", [
            "sandbox", "cybersource", "--port", str(cs_port),
            "--set", f"emitter.duplicate_rate={options.duplicate_rate}",
            "--set", f"emitter.reorder_window={options.reorder_window}",
            "--set", "emitter.reorder_flush_ms=25", "--set", f"emitter.seed={options.seed}",
            "--set", "emitter.delay_ms=[0, 20]",
        ])
        await wait_http(f"{cs_url}/__sandbox/stats", process=cybersource)
        await wait_http(f"{sl_url}/api/v1/setup", process=sl)

        console.print("[bold]2.[/bold] webhook signing key from Cybersource KMS; credentials into the vault")
        gateway = build_gateway({"base_url": cs_url, **MERCHANT})
        key = await gateway.client.create_webhook_key(MERCHANT["merchant_id"])
        key_info = key.key_information
        master_key_file = workdir / "master.key"
        master_key_file.write_text(generate_master_key())
        master_key_file.chmod(0o600)
        vault = Vault(database_url, decode_master_key(master_key_file.read_text()))
        vault.set("cybersource.shared_secret", MERCHANT["shared_secret"])
        vault.set("cybersource.webhook_key", key_info.key)
        vault.set("dynamics_sl.api_key", SL_API_KEY)
        vault.close()

        config = write_integration_file(workdir, cs_url, sl_url, key_info.key_id)
        console.print(f"[bold]3.[/bold] engine {engine_url} (SQLite {workdir / 'ledgerlink.db'}, config {config})")
        env = {"LEDGERLINK_MASTER_KEY_FILE": str(master_key_file), "LEDGERLINK_DATABASE_URL": database_url,
               "LEDGERLINK_ADMIN_TOKEN": ADMIN_TOKEN}
        engine_process = start("engine", ["serve", "--config", str(config), "--port", str(engine_port),
                                          "--log-level", "warning"], env)
        await wait_http(f"{engine_url}/readyz", process=engine_process)
        await gateway.client.create_webhook_subscription({
            "name": "ledgerlink demo", "organizationId": MERCHANT["merchant_id"],
            "products": [{"productId": "cardProcessing", "eventTypes": [
                "payments.payments.accept", "payments.payments.review", "payments.payments.reject",
                "payments.captures.accept"]},
                {"productId": "decisionManager", "eventTypes": ["risk.profile.decision.review"]}],
            "webhookUrl": f"{engine_url}/webhooks/cybersource",
            "healthCheckUrl": f"{engine_url}/webhooks/cybersource/health",
            "securityPolicy": {"securityType": "key", "config": {"additionalConfig": {"keyId": key_info.key_id}}},
        })

        console.print(f"[bold]4.[/bold] storefront traffic until {options.events:,} signed webhooks are sent")
        plan = Plan()
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=cs_url, timeout=30) as cs_http, \
                httpx.AsyncClient(base_url=engine_url, timeout=30,
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as engine, \
                httpx.AsyncClient(base_url=sl_url, timeout=60, headers={"X-API-Key": SL_API_KEY}) as sl_http:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as progress:
                sent = progress.add_task("webhooks sent      ", total=options.events)
                posted = progress.add_task("events settled     ", total=None)
                traffic = asyncio.create_task(storefront_traffic(gateway, cs_http, options, plan, progress, sent))
                while True:
                    check_all()
                    done, stats = await settled(engine, cs_http)
                    events = stats["events"]
                    finished = sum(events.get(s, 0) for s in ("done", "ignored", "dead"))
                    progress.update(posted, completed=finished, total=sum(events.values()) or None)
                    if traffic.done():
                        traffic.result()
                        if done:
                            break
                    if time.monotonic() - started > 600:
                        raise RuntimeError("the demo did not settle within 10 minutes")
                    await asyncio.sleep(0.2)
            wall = time.monotonic() - started
            await gateway.aclose()
            stats = (await engine.get("/admin/stats", params={"latency_window": 100_000})).json()
            sl_counts = (await sl_http.get("/__sandbox/counts")).json()
            cs_stats = (await cs_http.get("/__sandbox/stats")).json()
            orders = await sl_orders(sl_http)

        console.print(summary_table(stats, sl_counts, cs_stats, wall))
        console.print(f"storefront: {dict(plan.kinds)}")
        problems = verify(plan, orders)
        if problems:
            console.print(f"[red]{len(problems)} problem(s):[/red]")
            for problem in problems[:20]:
                console.print(f"  {problem}")
        else:
            console.print(f"[green]every one of the {len(plan.expected_orders):,} expected orders is in SL exactly "
                          f"once; none of the {len(plan.declined):,} declines was posted[/green]")
        if options.keep:
            console.print(f"\nserving until Ctrl-C: engine {engine_url} (admin token {ADMIN_TOKEN!r}), "
                          f"Cybersource {cs_url}, SL {sl_url} (X-API-Key {SL_API_KEY}); logs in {workdir}")
            with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
                while True:
                    check_all()
                    await asyncio.sleep(1)
        return 1 if problems else 0
    finally:
        for child in reversed(children):
            child.stop()
