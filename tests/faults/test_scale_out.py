"""Scale-out on one PostgreSQL: two ``serve --no-worker`` processes take the webhooks, three ``worker``
processes share the partitions; one worker is killed with -9 mid-run and its partitions are taken over
within the lease time; every payment is in SL exactly once.

Real processes on real ports. The Cybersource sandbox has two subscriptions, one per intake process, so
every event arrives at both and is stored once (the inbox is unique on the event id across processes).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.processes import ChildProcess, free_port, wait_http
from ledgerlink.runtime.db import Database
from ledgerlink.runtime.schema import UNFINISHED, inbox, leases
from tests.conftest import POSTGRES_URL, new_schema, postgres_unavailable
from tests.faults.proof import assert_exactly_once, dead_letters, plan_payments, read_sl, shop
from tests.flows.harness import CS_CREDENTIALS, SL_API_KEY, WEBHOOK_KEY, WEBHOOK_KEY_ID

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(180)]

LEASE_SECONDS, BUCKETS, WORKERS = 2.0, 24, 3


def integration_file(workdir: Path, cs_url: str, sl_url: str) -> Path:
    document = yaml.safe_load((Path(__file__).parents[2] / "integrations" / "sl-cybersource.yaml").read_text())
    document["gateway"]["settings"].update(base_url=cs_url, shared_secret="${env:SCALE_CS_SECRET}",
                                           webhook_keys={WEBHOOK_KEY_ID: "${env:SCALE_WEBHOOK_KEY}"})
    document["back_office"]["settings"].update(base_url=sl_url, api_key="${env:SCALE_SL_KEY}")
    document["runtime"].update(buckets=BUCKETS, lease_seconds=LEASE_SECONDS, poll_seconds=0.05,
                               backoff={"base_seconds": 0.05, "cap_seconds": 0.5, "max_attempts": 50})
    path = workdir / "scale.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def owners(db: Database) -> Counter[str]:
    rows = db.read_sync(lambda conn: conn.execute(select(leases.c.owner, leases.c.expires_at)).all())
    now = time.time()
    return Counter(row.owner for row in rows if row.owner and row.expires_at > now)


def of_process(owner: str, child: ChildProcess) -> bool:
    return f"-{child.pid}-" in owner  # worker ids are host-pid-random


async def test_serve_and_worker_processes_share_partitions_and_take_over_a_killed_one(tmp_path: Path) -> None:
    if reason := postgres_unavailable():
        pytest.skip(reason)
    schema = new_schema()
    cs_port, sl_port, intake_ports = free_port(), free_port(), [free_port(), free_port()]
    cs_url, sl_url = f"http://127.0.0.1:{cs_port}", f"http://127.0.0.1:{sl_port}"
    env = {"SCALE_CS_SECRET": CS_CREDENTIALS["shared_secret"], "SCALE_WEBHOOK_KEY": WEBHOOK_KEY,
           "SCALE_SL_KEY": SL_API_KEY, "LEDGERLINK_DATABASE_URL": POSTGRES_URL, "LEDGERLINK_DATABASE_SCHEMA": schema}
    config = integration_file(tmp_path, cs_url, sl_url)
    children: list[ChildProcess] = []
    db = Database(POSTGRES_URL, schema=schema)  # creates the schema before the processes race to
    try:
        sl = ChildProcess("sl", ["sandbox", "dynamics_sl", "--port", str(sl_port),
                                 "--set", f"database={tmp_path / 'sl.db'}"], tmp_path)
        cs_settings = tmp_path / "cybersource.yaml"
        cs_settings.write_text(yaml.safe_dump({
            "subscriptions": [{"url": f"http://127.0.0.1:{port}/webhooks/cybersource"} for port in intake_ports],
            "emitter": {"retry_base_seconds": 0.05, "retry_cap_seconds": 0.5, "max_attempts": 1000}}))
        cybersource = ChildProcess("cybersource", ["sandbox", "cybersource", "--port", str(cs_port),
                                                   "--settings-file", str(cs_settings)], tmp_path)
        intakes = [ChildProcess(f"serve-{i}", ["serve", "--config", str(config), "--port", str(port), "--no-worker",
                                               "--log-level", "warning"], tmp_path, env)
                   for i, port in enumerate(intake_ports)]
        workers = [ChildProcess(f"worker-{i}", ["worker", "--config", str(config), "--log-level", "warning"],
                                tmp_path, env) for i in range(WORKERS)]
        children += [sl, cybersource, *intakes, *workers]
        await wait_http(f"{sl_url}/api/v1/setup", process=sl)
        await wait_http(f"{cs_url}/__sandbox/stats", process=cybersource)
        for intake, port in zip(intakes, intake_ports, strict=True):
            await wait_http(f"http://127.0.0.1:{port}/readyz", process=intake)

        deadline = time.monotonic() + 30
        while len(spread := owners(db)) < WORKERS or sum(spread.values()) < BUCKETS:
            assert time.monotonic() < deadline, f"partitions not spread: {spread}"
            await asyncio.sleep(0.1)
        assert all(BUCKETS // WORKERS - 2 <= n <= BUCKETS // WORKERS + 2 for n in spread.values()), spread

        storefront = build_gateway({"base_url": cs_url, **CS_CREDENTIALS})
        plan = plan_payments(200, 50, random.Random(17), "SCALE")
        traffic = asyncio.create_task(shop(storefront, plan, concurrency=4, pace=0.02))
        await asyncio.sleep(1.5)
        victim = workers[0]
        held = {owner for owner in owners(db) if of_process(owner, victim)}
        assert held, "the victim held no partitions"
        victim.kill()
        killed_at = time.monotonic()
        while any(of_process(owner, victim) for owner in owners(db)) or sum(owners(db).values()) < BUCKETS:
            assert time.monotonic() - killed_at < 4 * LEASE_SECONDS, f"not taken over: {owners(db)}"
            await asyncio.sleep(0.05)
        takeover = time.monotonic() - killed_at
        expected = await traffic
        await storefront.aclose()

        survivors = owners(db)
        assert len(survivors) == WORKERS - 1 and sum(survivors.values()) == BUCKETS, survivors
        async with httpx.AsyncClient(timeout=10) as client:
            deadline = time.monotonic() + 90
            while True:
                pending = (await client.get(f"{cs_url}/__sandbox/stats")).json()["webhooks"]["pending"]
                unfinished = db.read_sync(lambda conn: conn.execute(
                    select(func.count()).select_from(inbox).where(inbox.c.status.in_(UNFINISHED))).scalar_one())
                if pending == 0 and unfinished == 0:
                    break
                assert time.monotonic() < deadline, f"not settled: {unfinished} unfinished, {pending} undelivered"
                for child in children[:-WORKERS] + workers[1:]:
                    child.check()
                await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=sl_url, headers={"X-API-Key": SL_API_KEY}, timeout=30) as sl_http:
            ledger = await read_sl(sl_http)
        assert dead_letters(db) == []
        assert_exactly_once(ledger, expected, what="scale-out")
        assert set(ledger.orders) == expected.orders
        print(f"a killed worker's partitions taken over in {takeover:.2f}s (lease {LEASE_SECONDS}s)")
        assert takeover <= 2 * LEASE_SECONDS  # the leases expire, then the next heartbeat takes them
    finally:
        for child in reversed(children):
            child.stop()
        db.drop_schema()
        db.close()
