"""Chaos: thousands of payments through real processes with every fault at once, and kill -9 at random times.

    .venv/bin/python benchmarks/chaos.py                          # SQLite: one engine process, killed and restarted
    .venv/bin/python benchmarks/chaos.py --postgres --workers 3   # PostgreSQL: an intake and 3 workers, killed
    .venv/bin/python benchmarks/chaos.py --events 2000 --seed 7   # smaller, repeatable

Separate processes over TCP: the Cybersource sandbox, the Dynamics SL sandbox, the engine (SQLite: one
``serve``; PostgreSQL: ``serve --no-worker`` and ``--workers`` ``worker`` processes) and this script as the
web shop. Every fault the sandboxes' fault scripts know is on at once:

- SL: 500/502/503 at a few per cent per endpoint, 429 with Retry-After, added latency, timeouts after the
  commit (SL posts, then stalls past the engine's 2 s timeout), connection resets before and after the
  commit, a maintenance window (SL answers 503 to everything for ``--maintenance`` seconds mid-run), and
  a non-retryable 422 on a small share of sales orders (those payments must end in the dead-letter list).
- Cybersource: 503s, 429s and resets on transaction reads (``GET /tss/v2/transactions``) and Transaction
  Search; 5 % of webhooks duplicated, a reorder window of 8, and 2 % never delivered: the gap sweep (every
  20 s here, for transactions older than ``--grace``) must find those through Transaction Search. (Full-detail notifications: with id-only ones every
  event also reads its transaction back, which ``tests/faults`` covers in-process.)
- kill -9 of an engine process every 7-22 s (``--kill-every``) while the shop pays, each restarted 0-2 s later.

Afterwards the dropped webhooks are delivered after all, late: each must be an inbox duplicate.

Printed: lost / duplicated / dead-lettered (expected: 0 / 0 / only injected 422s), how long each kill took
to recover (SQLite: restart until ready; PostgreSQL: until the killed worker's partitions are leased again)
and how long the backlog took to drain after the last payment. The exit status is 1 if anything was lost,
posted twice, or dead-lettered without being injected.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.model import AuthorizationRequest, Money, Party, PaymentToken
from ledgerlink.processes import ChildProcess, free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
MERCHANT = {"merchant_id": "testrest", "key_id": "08c94330-f618-42a3-b09d-e1e43be5efda",
            "shared_secret": "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE="}
WEBHOOK_KEY_ID = "sandbox-webhook-key"
WEBHOOK_KEY = "c2FuZGJveC13ZWJob29rLWtleS0wMTIzNDU2Nzg5YWI="
VISA_INSTRUMENT = "A0000000000000000000000000004111"
SL_KEY = "sl-sandbox-key"
ADMIN = "chaos-admin"
LEASE_SECONDS = 3.0

SL_FAULTS: dict[str, Any] = {
    "latency_ms": [0, 3],
    "rules": [
        {"method": "POST", "path": "/api/v1/salesorders", "exact": True, "status": 422, "rate": 0.002},
        {"method": "POST", "path": "/api/v1/salesorders", "status": 500, "rate": 0.02},
        {"method": "POST", "path": "/api/v1/ar/documents", "status": 502, "rate": 0.02},
        {"path": "/api/v1/customers", "status": 503, "rate": 0.02},
        {"method": "POST", "path": "/api/v1/$batch", "status": 429, "retry_after": 1, "rate": 0.01},
        {"method": "POST", "path": "/api/v1/$batch", "kind": "timeout", "after_commit": True, "stall_seconds": 3,
         "rate": 0.005},
        {"method": "POST", "path": "/api/v1/$batch", "kind": "reset", "rate": 0.005},
        {"method": "POST", "path": "/api/v1/$batch", "kind": "reset", "after_commit": True, "rate": 0.005},
    ],
}
CS_FAULTS: dict[str, Any] = {
    "rules": [
        {"method": "GET", "path": "/tss/v2/transactions/", "status": 503, "rate": 0.02},
        {"method": "GET", "path": "/tss/v2/transactions/", "status": 429, "retry_after": 1, "rate": 0.01},
        {"method": "GET", "path": "/tss/v2/transactions/", "kind": "reset", "rate": 0.01},
        {"method": "POST", "path": "/tss/v2/searches", "status": 502, "rate": 0.03},
    ],
    "webhooks": {"duplicate_rate": 0.05, "reorder_window": 8, "drop_rate": 0.02},
}


@dataclass
class Shop:
    """What the web shop did: every transaction's order, and which transactions took money."""

    order_of: dict[str, str] = field(default_factory=dict)  # transaction id → order reference
    money: dict[str, str] = field(default_factory=dict)  # sale or capture id → order reference
    finished_at: float = 0.0


@dataclass
class Kill:
    name: str
    at: float
    worker_id_fragment: str  # -pid- of the killed process, as it appears in its lease owner id
    recovered_after: float | None = None


def integration_file(workdir: Path, cs_url: str, sl_url: str, args: argparse.Namespace) -> Path:
    document = yaml.safe_load((ROOT / "integrations" / "sl-cybersource.yaml").read_text())
    document["gateway"]["settings"].update(base_url=cs_url, shared_secret="${env:CHAOS_CS_SECRET}",
                                           webhook_keys={WEBHOOK_KEY_ID: "${env:CHAOS_WEBHOOK_KEY}"},
                                           timeout_seconds=2)
    document["back_office"]["settings"].update(base_url=sl_url, api_key="${env:CHAOS_SL_KEY}", timeout_seconds=2)
    document["flows"]["gap_sweep"] = {"enabled": True, "cron": "* * * * * */20", "grace_seconds": args.grace,
                                      "lookback_minutes": 0.5}
    document["runtime"].update(lease_seconds=LEASE_SECONDS, poll_seconds=0.05,
                               backoff={"base_seconds": 0.05, "cap_seconds": 1.0, "max_attempts": 200})
    path = workdir / "chaos.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def storefront(cs_url: str, events: int, rng: random.Random, shop: Shop, concurrency: int) -> None:
    """``events`` gateway events: 60 % sales, 20 % authorisations each captured later."""
    pairs = events // 5
    plan = ["sale"] * (events - 2 * pairs) + ["pair"] * pairs
    rng.shuffle(plan)
    amounts = [f"{rng.randint(5, 500)}.{rng.choice([0, 10, 25, 50, 75, 99]):02d}" for _ in plan]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(len(plan)):
        queue.put_nowait(number)

    async def worker() -> None:
        gateway = build_gateway({"base_url": cs_url, **MERCHANT})
        try:
            while not queue.empty():
                number = queue.get_nowait()
                reference = f"CHAOS-{number:05d}"
                request = AuthorizationRequest(
                    amount=Money.of(amounts[number], "USD"), order_reference=reference,
                    capture=plan[number] == "sale", token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT),
                    party=Party(first_name="Chaos", last_name=str(number), email=f"chaos{number % 997}@example.com"),
                )
                payment = await gateway.authorize(request)
                shop.order_of[payment.id] = reference
                if plan[number] == "pair":
                    capture = await gateway.capture(payment.id, payment.amount, order_reference=reference)
                    shop.order_of[capture.id] = reference
                    shop.money[capture.id] = reference
                else:
                    shop.money[payment.id] = reference
        finally:
            await gateway.aclose()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    shop.finished_at = time.monotonic()


async def sl_rows(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every row, a page at a time; SL's own faults (a maintenance window, a 503) are waited out."""
    rows: list[dict[str, Any]] = []
    while True:
        try:
            response = await client.get(f"/api/v1/{path}", params={**params, "$top": 1000, "$skip": len(rows)})
        except httpx.TransportError:
            continue
        if response.status_code != 200:
            await asyncio.sleep(0.5)
            continue
        page = response.json()["value"]
        rows.extend(page)
        if len(page) < 1000:
            return rows


@dataclass
class Verdict:
    orders: Counter[str]
    payments: Counter[str]
    dead: list[dict[str, Any]]
    lost_payments: set[str]
    lost_orders: set[str]

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.orders.values() if n > 1) + sum(n - 1 for n in self.payments.values() if n > 1)

    @property
    def lost(self) -> int:
        return len(self.lost_payments) + len(self.lost_orders)

    @property
    def unexpected_dead(self) -> list[dict[str, Any]]:
        return [d for d in self.dead if (d.get("status"), d.get("provider_code")) != (422, "InjectedFault")]


async def verdict(sl_url: str, engine_url: str, shop: Shop) -> Verdict:
    async with httpx.AsyncClient(base_url=sl_url, headers={"X-API-Key": SL_KEY}, timeout=60) as sl:
        orders = Counter(row["CustOrdNbr"].strip() for row in await sl_rows(sl, "salesorders"))
        payments = Counter(row["User1"].strip() for row in await sl_rows(sl, "ar/documents", DocType="PA"))
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as admin:
        dead = (await admin.get(f"{engine_url}/admin/dlq", params={"limit": 1000})).json()["items"]
    dead_txns = {d["event_id"].partition(":")[2] for d in dead}
    dead_orders = {shop.order_of.get(txn, "") for txn in dead_txns}
    lost_payments = {txn for txn in shop.money if txn not in payments and txn not in dead_txns}
    lost_orders = set(shop.money.values()) - set(orders) - dead_orders
    return Verdict(orders, payments, dead, lost_payments, lost_orders)


async def engine_backlog(engine_url: str, cs_url: str) -> tuple[int, int]:
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        cs = (await client.get(f"{cs_url}/__sandbox/stats")).json()["webhooks"]
        events = (await client.get(f"{engine_url}/admin/stats", params={"latency_window": 0})).json()["events"]
    return sum(events.get(s, 0) for s in ("waiting", "pending", "running")), cs["pending"]


def lease_owners(db: Any) -> Counter[str]:
    from sqlalchemy import select

    from ledgerlink.runtime.schema import leases

    now = time.time()
    rows = db.read_sync(lambda conn: conn.execute(select(leases.c.owner, leases.c.expires_at)).all())
    return Counter(row.owner for row in rows if row.owner and row.expires_at > now)


async def watch_takeover(kill: Kill, db: Any, buckets: int) -> None:
    """Seconds until no live lease is the killed worker's and every bucket has an owner again."""
    while True:
        owners = await asyncio.to_thread(lease_owners, db)
        if not any(kill.worker_id_fragment in owner for owner in owners) and sum(owners.values()) == buckets:
            kill.recovered_after = time.monotonic() - kill.at
            return
        await asyncio.sleep(0.1)


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="ledgerlink-chaos-"))
    schema = f"chaos_{uuid.uuid4().hex[:8]}" if args.postgres else None
    database_url = args.postgres_url if args.postgres else f"sqlite:///{workdir / 'ledgerlink.db'}"
    cs_port, sl_port, engine_port = free_port(), free_port(), free_port()
    cs_url, sl_url, engine_url = (f"http://127.0.0.1:{p}" for p in (cs_port, sl_port, engine_port))
    env = {"CHAOS_CS_SECRET": MERCHANT["shared_secret"], "CHAOS_WEBHOOK_KEY": WEBHOOK_KEY, "CHAOS_SL_KEY": SL_KEY,
           "LEDGERLINK_DATABASE_URL": database_url, "LEDGERLINK_ADMIN_TOKEN": ADMIN,
           **({"LEDGERLINK_DATABASE_SCHEMA": schema} if schema else {})}
    config = integration_file(workdir, cs_url, sl_url, args)
    buckets = int(yaml.safe_load(config.read_text())["runtime"]["buckets"])
    sl_settings, cs_settings = workdir / "sl.yaml", workdir / "cybersource.yaml"
    sl_faults, cs_faults = ({**SL_FAULTS, "seed": args.seed}, {**CS_FAULTS, "seed": args.seed + 1}) \
        if not args.calm else ({}, {})
    sl_settings.write_text(yaml.safe_dump({"database": str(workdir / "sl.db"), "faults": sl_faults}))
    cs_settings.write_text(yaml.safe_dump({
        "subscriptions": [{"url": f"{engine_url}/webhooks/cybersource"}],
        "emitter": {"payload_detail": "full", "retry_base_seconds": 0.05, "retry_cap_seconds": 0.5,
                    "max_attempts": 10_000, "reorder_flush_ms": 20, "seed": args.seed},
        "faults": cs_faults}))
    watch_db = None
    if schema:
        from ledgerlink.runtime.db import Database

        watch_db = Database(database_url, schema=schema)  # the schema exists before the processes start
    children: list[ChildProcess] = []
    kills: list[Kill] = []
    watchers: list[asyncio.Task[None]] = []
    try:
        sl = ChildProcess("sl", ["sandbox", "dynamics_sl", "--port", str(sl_port), "--settings-file",
                                 str(sl_settings)], workdir)
        cs = ChildProcess("cybersource", ["sandbox", "cybersource", "--port", str(cs_port), "--settings-file",
                                          str(cs_settings)], workdir)
        serve_args = ["serve", "--config", str(config), "--port", str(engine_port), "--log-level", "error"]
        if args.postgres:
            intake = ChildProcess("intake", [*serve_args, "--no-worker"], workdir, env)
            victims = [ChildProcess(f"worker-{i}", ["worker", "--config", str(config), "--log-level", "error"],
                                    workdir, env) for i in range(args.workers)]
            children += [sl, cs, intake, *victims]
        else:
            intake = ChildProcess("engine", serve_args, workdir, env)
            victims = [intake]
            children += [sl, cs, intake]
        await wait_http(f"{sl_url}/api/v1/setup", process=sl)
        await wait_http(f"{cs_url}/__sandbox/stats", process=cs)
        await wait_http(f"{engine_url}/readyz", process=intake, timeout=60)

        shop = Shop()
        started = time.monotonic()
        traffic = asyncio.create_task(storefront(cs_url, args.events, rng, shop, args.concurrency))
        maintenance_at = started + rng.uniform(0.3, 0.6) * args.events / 150  # some way into the traffic
        maintenance_done = False
        while not traffic.done():
            await asyncio.wait({traffic}, timeout=rng.uniform(args.kill_every * 0.5, args.kill_every * 1.5))
            if traffic.done():
                break
            if args.calm:
                continue
            victim = rng.choice(victims)
            kill = Kill(victim.name, time.monotonic(), f"-{victim.pid}-")
            victim.kill()
            kills.append(kill)
            if args.postgres:
                watchers.append(asyncio.create_task(watch_takeover(kill, watch_db, buckets)))
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            victim.start()
            if not args.postgres:
                await wait_http(f"{engine_url}/readyz", process=victim, timeout=60)
                kill.recovered_after = time.monotonic() - kill.at
            if not maintenance_done and time.monotonic() >= maintenance_at:  # while the engine is up
                async with httpx.AsyncClient(headers={"X-API-Key": SL_KEY}) as client:
                    await client.post(f"{sl_url}/__sandbox/faults/maintenance", json={"seconds": args.maintenance})
                maintenance_done = True
                print(f"  SL maintenance: down for {args.maintenance:.0f}s from t={time.monotonic() - started:.0f}s",
                      flush=True)
        await traffic
        sent = time.monotonic() - started
        print(f"  shop done: {len(shop.order_of)} transactions in {sent:.1f}s, {len(kills)} kills", flush=True)

        # Drain: everything delivered, stored and finished, and the sweep has found every dropped webhook.
        deadline = time.monotonic() + args.drain_timeout
        result = None
        delivered: float | None = None
        while time.monotonic() < deadline:
            for child in children:
                child.check()
            unfinished, undelivered = await engine_backlog(engine_url, cs_url)
            if unfinished == 0 and undelivered == 0:
                delivered = delivered or time.monotonic() - shop.finished_at
                result = await verdict(sl_url, engine_url, shop)
                if result.lost == 0:
                    break
            await asyncio.sleep(1.0)
        drained = time.monotonic() - shop.finished_at
        for watcher in watchers:
            watcher.cancel()
        if result is None:
            result = await verdict(sl_url, engine_url, shop)

        # The lost webhooks arrive after all: every one must be a duplicate.
        async with httpx.AsyncClient(timeout=30, headers={"X-API-Key": SL_KEY,
                                                          "Authorization": f"Bearer {ADMIN}"}) as client:
            before = (await client.get(f"{engine_url}/admin/stats", params={"latency_window": 0})).json()["counters"]
            released = (await client.post(f"{cs_url}/__sandbox/emitter/release-dropped")).json()["released"]
            await client.post(f"{cs_url}/__sandbox/wait-idle", params={"timeout": 60})
            while (await engine_backlog(engine_url, cs_url))[0]:
                await asyncio.sleep(0.5)
            after = (await client.get(f"{engine_url}/admin/stats", params={"latency_window": 0})).json()["counters"]
            sl_faults = (await client.get(f"{sl_url}/__sandbox/faults")).json()["injected"]
            cs_faults = (await client.get(f"{cs_url}/__sandbox/faults")).json()["injected"]
        late = await verdict(sl_url, engine_url, shop)

        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        engine = f"PostgreSQL, 1 intake + {args.workers} workers" if args.postgres else "SQLite, 1 engine process"
        recoveries = [k.recovered_after for k in kills if k.recovered_after is not None]
        what = "partitions taken over" if args.postgres else "restarted and ready"
        injected_422 = sl_faults.get("error:422", 0)
        print(f"\nchaos: {len(shop.order_of):,} gateway events ({len(shop.money):,} payments) on {engine}, "
              f"seed {args.seed}")
        print(f"  faults injected, SL: {dict(sorted(sl_faults.items()))}")
        print(f"  faults injected, Cybersource: {dict(sorted(cs_faults.items()))}")
        print(f"  gap sweep: {after.get('sweeps.gaps_found', 0)} missing webhooks found and posted "
              f"({cs_faults.get('webhooks_dropped', 0)} dropped)")
        print(f"  kill -9: {len(kills)} ({Counter(k.name for k in kills)}); {what} after: "
              + (f"p50 {statistics.median(recoveries):.2f}s, max {max(recoveries):.2f}s" if recoveries else "-")
              + (f" (lease {LEASE_SECONDS:.0f}s)" if args.postgres else ""))
        print(f"  lost {result.lost} / duplicated {result.duplicated} / dead-lettered {len(result.dead)} "
              f"(injected non-retryable 422s: {injected_422}; dead letters that are not one: "
              f"{len(result.unexpected_dead)})")
        print(f"  recovery: every delivered webhook posted {delivered or float('nan'):.1f}s after the last payment, "
              f"the dropped ones too (gap sweep) after {drained:.1f}s (shop ran {sent:.1f}s)")
        print(f"  late webhooks: {released} dropped ones delivered after the sweep: "
              f"{after.get('events.duplicates', 0) - before.get('events.duplicates', 0)} inbox duplicates, "
              f"{late.duplicated - result.duplicated} posted twice")
        cpu = ", ".join(f"{child.name} {child.cpu_seconds():.0f}s" for child in children)
        print(f"  CPU of the processes now running: {cpu}")
        print(f"  load: {uptime}")
        failed = result.lost or result.duplicated or result.unexpected_dead or late.duplicated or late.lost
        if failed:
            print(f"FAILED: lost {sorted(result.lost_payments)[:5]} {sorted(result.lost_orders)[:5]}, "
                  f"dead {result.unexpected_dead[:3]}; logs in {workdir}")
            return 1
        return 0
    finally:
        for child in reversed(children):
            child.stop()
        if watch_db is not None:
            watch_db.drop_schema()
            watch_db.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="gateway events (transactions) the shop makes")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL with an intake and --workers workers")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "LEDGERLINK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--workers", type=int, default=3, help="worker processes (PostgreSQL)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent shop requests")
    parser.add_argument("--maintenance", type=float, default=10.0, help="seconds SL is down mid-run")
    parser.add_argument("--kill-every", type=float, default=15.0, help="mean seconds between kills (±50 %%)")
    parser.add_argument("--grace", type=float, default=300.0,
                        help="the gap sweep leaves younger transactions to their webhooks (seconds)")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases and logs)")
    parser.add_argument("--calm", action="store_true", help="no faults and no kills: the baseline to compare with")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
