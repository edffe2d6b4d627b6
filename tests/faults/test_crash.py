"""kill -9 at random points while payments flow: after restarts, every payment is in SL exactly once.

Real processes on real ports: the Cybersource sandbox (its emitter retries undelivered webhooks, as
Cybersource does), the SL sandbox, and the engine. On SQLite the engine is one process (intake and
workers) and it is what gets killed; on PostgreSQL an intake-only ``serve`` keeps acknowledging while a
separate ``worker`` process is killed and restarted, and the new worker takes the dead one's buckets when
its leases expire. Kills land anywhere: mid-intake, mid-flow, between SL's commit and ours.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.model import AuthorizationRequest, Money, Party, PaymentToken
from ledgerlink.processes import ChildProcess, free_port, wait_http
from tests.conftest import POSTGRES_URL, new_schema, postgres_unavailable
from tests.flows.harness import CS_CREDENTIALS, SL_API_KEY, VISA_INSTRUMENT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WEBHOOK_KEY_ID = "sandbox-webhook-key"
WEBHOOK_KEY = "c2FuZGJveC13ZWJob29rLWtleS0wMTIzNDU2Nzg5YWI="
SALES, PAIRS = 300, 100  # 300 sale events + 100 authorisations with their captures = 500 events
ADMIN = "crash-admin"


def integration_file(workdir: Path, cs_url: str, sl_url: str) -> Path:
    document = yaml.safe_load((Path(__file__).parents[2] / "integrations" / "sl-cybersource.yaml").read_text())
    document["gateway"]["settings"].update(base_url=cs_url, shared_secret="${env:CRASH_CS_SECRET}",
                                           webhook_keys={WEBHOOK_KEY_ID: "${env:CRASH_WEBHOOK_KEY}"})
    document["back_office"]["settings"].update(base_url=sl_url, api_key="${env:CRASH_SL_KEY}")
    document["runtime"].update(lease_seconds=1.5, poll_seconds=0.05,
                               backoff={"base_seconds": 0.05, "cap_seconds": 0.5, "max_attempts": 50})
    path = workdir / "crash.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def storefront(cs_url: str, captured: list[str], orders: list[str], rng: random.Random) -> None:
    """Payments at a steady pace, so that kills fall while events arrive and while they are processed."""
    gateway = build_gateway({"base_url": cs_url, **CS_CREDENTIALS})
    try:
        plan = ["sale"] * SALES + ["pair"] * PAIRS
        rng.shuffle(plan)
        for number, kind in enumerate(plan):
            reference = f"CRASH-{number:04d}"
            request = AuthorizationRequest(
                amount=Money.of(f"{rng.randint(5, 500)}.{rng.choice([0, 10, 25, 50, 75, 99]):02d}", "USD"),
                order_reference=reference, capture=kind == "sale",
                token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT),
                party=Party(first_name="Crash", last_name=str(number), email=f"crash{number % 97}@example.com"),
            )
            payment = await gateway.authorize(request)
            if kind == "pair":
                capture = await gateway.capture(payment.id, payment.amount, order_reference=reference)
                captured.append(capture.id)
            else:
                captured.append(payment.id)
            orders.append(reference)
            await asyncio.sleep(0.008)
    finally:
        await gateway.aclose()


async def sl_rows(sl_url: str, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=sl_url, headers={"X-API-Key": SL_API_KEY}, timeout=30) as client:
        while True:
            page = (await client.get(f"/api/v1/{path}", params={**params, "$top": 1000, "$skip": len(rows)})).json()
            batch = page["value"]
            rows.extend(batch)
            if len(batch) < 1000:
                return rows


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_kill_9_at_random_points_still_posts_every_payment_exactly_once(tmp_path: Path, database: str) -> None:
    if database == "postgres" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    seed = int(os.environ.get("LEDGERLINK_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    schema = new_schema() if database == "postgres" else None
    database_url = POSTGRES_URL if schema else f"sqlite:///{tmp_path / 'ledgerlink.db'}"
    cs_port, sl_port, engine_port = free_port(), free_port(), free_port()
    cs_url, sl_url, engine_url = (f"http://127.0.0.1:{p}" for p in (cs_port, sl_port, engine_port))
    env = {"CRASH_CS_SECRET": CS_CREDENTIALS["shared_secret"], "CRASH_WEBHOOK_KEY": WEBHOOK_KEY,
           "CRASH_SL_KEY": SL_API_KEY, "LEDGERLINK_DATABASE_URL": database_url, "LEDGERLINK_ADMIN_TOKEN": ADMIN,
           **({"LEDGERLINK_DATABASE_SCHEMA": schema} if schema else {})}
    config = integration_file(tmp_path, cs_url, sl_url)
    children: list[ChildProcess] = []
    try:
        sl = ChildProcess("sl", ["sandbox", "dynamics_sl", "--port", str(sl_port),
                                 "--set", f"database={tmp_path / 'sl.db'}"], tmp_path)
        cybersource = ChildProcess("cybersource", [
            "sandbox", "cybersource", "--port", str(cs_port), "--webhook-url", f"{engine_url}/webhooks/cybersource",
            "--set", "emitter.retry_base_seconds=0.05", "--set", "emitter.retry_cap_seconds=0.5",
            "--set", "emitter.max_attempts=1000", "--set", "emitter.duplicate_rate=0.1",
            "--set", "emitter.reorder_window=8", "--set", "emitter.reorder_flush_ms=20",
        ], tmp_path)
        children += [sl, cybersource]
        engine_args = ["serve", "--config", str(config), "--port", str(engine_port), "--log-level", "warning"]
        if database == "sqlite":
            victim = ChildProcess("engine", engine_args, tmp_path, env)  # intake and workers in one process
            children.append(victim)
        else:
            intake = ChildProcess("intake", [*engine_args, "--no-worker"], tmp_path, env)
            victim = ChildProcess("worker", ["worker", "--config", str(config), "--log-level", "warning"],
                                  tmp_path, env)
            children += [intake, victim]
        await wait_http(f"{sl_url}/api/v1/setup", process=sl)
        await wait_http(f"{cs_url}/__sandbox/stats", process=cybersource)
        await wait_http(f"{engine_url}/readyz", process=children[-1] if database == "sqlite" else children[-2])

        captured: list[str] = []
        orders: list[str] = []
        traffic = asyncio.create_task(storefront(cs_url, captured, orders, rng))
        kills = 0
        while kills < 8:
            await asyncio.sleep(rng.uniform(0.4, 1.6))
            victim.kill()
            kills += 1
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            victim.start()
            if database == "sqlite":
                await wait_http(f"{engine_url}/readyz", process=victim, timeout=60)
        await traffic

        async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
            deadline = time.monotonic() + 120
            while True:
                cs_stats = (await client.get(f"{cs_url}/__sandbox/stats")).json()
                stats = (await client.get(f"{engine_url}/admin/stats", params={"latency_window": 0})).json()
                unfinished = sum(stats["events"].get(s, 0) for s in ("waiting", "pending", "running"))
                if cs_stats["webhooks"]["pending"] == 0 and unfinished == 0:
                    break
                assert time.monotonic() < deadline, f"seed {seed}: not settled: {stats['events']}, {cs_stats}"
                victim.check()
                await asyncio.sleep(0.2)

        sales_orders = Counter(row["CustOrdNbr"].strip() for row in await sl_rows(sl_url, "salesorders"))
        payments = Counter(row["User1"].strip() for row in await sl_rows(sl_url, "ar/documents", DocType="PA"))
        unpaid = [row["CustOrdNbr"] for row in await sl_rows(sl_url, "salesorders")
                  if Decimal(row["BalDue"]) != 0]
        assert stats["events"].get("dead", 0) == 0, f"seed {seed}: dead letters {stats['events']}"
        assert {ref: n for ref, n in sales_orders.items() if n != 1} == {}, f"seed {seed}: orders twice"
        assert set(sales_orders) == set(orders), f"seed {seed}: orders missing from SL"
        assert {txn: n for txn, n in payments.items() if n != 1} == {}, f"seed {seed}: payments twice"
        assert set(payments) == set(captured), f"seed {seed}: payments missing from SL"
        assert unpaid == [], f"seed {seed}: orders left unpaid"
        assert kills == 8
    finally:
        for child in reversed(children):
            child.stop()
        if schema:
            from ledgerlink.runtime.db import Database

            db = Database(POSTGRES_URL, schema=schema, create=False)
            db.drop_schema()
            db.close()
