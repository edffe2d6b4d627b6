"""Order-to-cash benchmark: durable intake throughput and ack latency, and end-to-end flows/s into SL.

    .venv/bin/python benchmarks/order_to_cash.py                  # SQLite, both parts
    .venv/bin/python benchmarks/order_to_cash.py --postgres       # PostgreSQL (LEDGERLINK_BENCH_POSTGRES_URL)

Everything runs as separate processes over TCP, as in production: the engine (``ledgerlink serve``), the
Dynamics SL sandbox (``ledgerlink sandbox dynamics_sl``) and this script as the sender. The webhooks are
real Cybersource notifications: a template is taken from the Cybersource sandbox (it signs and sends one
through a recording transport), then each copy gets its own transaction id, order reference, amount and
e-mail and is signed with the connector's signer. The sender is a minimal keep-alive HTTP/1.1 client, so
that what is measured is the engine, not an HTTP library.

1. Intake: the engine with ``--no-worker`` (only durable intake), N senders each sending one request at a
   time; reports events/s and ack latency percentiles for 1, 8 and 32 concurrent senders.
2. End to end: the engine with its workers and the SL sandbox; sale notifications for new orders (each one
   a customer lookup/creation, a sales order, an invoice and an applied payment in SL); reports flows/s from
   the first send to the last posting, and webhook-to-ERP latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.connectors.cybersource.sandbox.app import Sandbox
from ledgerlink.connectors.cybersource.webhooks import compact_json, sign_notification
from ledgerlink.model import AuthorizationRequest, Money, Party, PaymentToken
from ledgerlink.processes import ChildProcess, free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
MERCHANT = {"merchant_id": "testrest", "key_id": "08c94330-f618-42a3-b09d-e1e43be5efda",
            "shared_secret": "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE="}
WEBHOOK_KEY_ID = "bench-key"
WEBHOOK_KEY = base64.b64encode(b"ledgerlink-benchmark-webhook-key").decode()
ADMIN_TOKEN = "bench-admin"
SL_API_KEY = "sl-sandbox-key"
LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# --- notifications --------------------------------------------------------------------------------------


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return httpx.Response(200, json={"status": "accepted"})


async def sale_template() -> dict[str, Any]:
    """One real ``payments.payments.accept`` notification for a sale, as the Cybersource sandbox sends it."""
    recorder = Recorder()
    sandbox = Sandbox({"subscriptions": [{"url": "http://engine/webhooks/cybersource"}]}, webhook_transport=recorder)
    await sandbox.start()
    gateway = build_gateway({"base_url": "http://cybersource", **MERCHANT}, transport=httpx.ASGITransport(app=sandbox.app))
    await gateway.authorize(AuthorizationRequest(
        amount=Money.of("102.21", "USD"), order_reference="TEMPLATE", capture=True,
        token=PaymentToken(gateway="cybersource", token_id="A0000000000000000000000000004111"),
        party=Party(first_name="Bench", last_name="Mark", email="template@example.com"),
    ))
    deadline = time.monotonic() + 10
    while not recorder.requests and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await sandbox.stop()
    await gateway.aclose()
    return orjson.loads(recorder.requests[0].content)  # type: ignore[no-any-return]


def notifications(template: dict[str, Any], count: int, run: str) -> Iterator[bytes]:
    """``count`` raw HTTP requests, each a distinct signed sale notification for a new order."""
    key = base64.b64decode(WEBHOOK_KEY)
    for i in range(count):
        document = copy.deepcopy(template)
        data = document["payload"]["data"]
        txn_id = f"{8_000_000_000_000_000_000_000 + int(run, 16) % 10**12 * 10**7 + i}"[:22]
        data["id"] = txn_id
        data["rootId"] = txn_id
        data["clientReferenceInformation"]["code"] = f"B{run[:6]}-{i:07d}"
        data["orderInformation"]["amountDetails"]["totalAmount"] = f"{10 + i % 990}.{i % 97:02d}"
        if "authorizedAmount" in data["orderInformation"]["amountDetails"]:
            data["orderInformation"]["amountDetails"]["authorizedAmount"] = \
                data["orderInformation"]["amountDetails"]["totalAmount"]
        data["orderInformation"]["billTo"]["email"] = f"c{i % 5000}-{run[:6]}@example.com"
        document["transactionTraceId"] = str(uuid.uuid4())
        body = orjson.dumps(document)
        signature = sign_notification(body, key=key, key_id=WEBHOOK_KEY_ID, timestamp_ms=int(time.time() * 1000),
                                      payload_json=compact_json(document["payload"]))
        yield (b"POST /webhooks/cybersource HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"v-c-event-type: payments.payments.accept\r\nv-c-signature: " + signature.encode()
               + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


# --- processes ------------------------------------------------------------------------------------------


def integration_file(workdir: Path, sl_url: str) -> Path:
    document = yaml.safe_load((ROOT / "integrations" / "sl-cybersource.yaml").read_text())
    document["gateway"]["settings"].update(base_url="http://127.0.0.1:9", shared_secret="${env:BENCH_CS_SECRET}",
                                           webhook_keys={WEBHOOK_KEY_ID: "${env:BENCH_WEBHOOK_KEY}"})
    document["back_office"]["settings"].update(base_url=sl_url, api_key="${env:BENCH_SL_KEY}",
                                               max_delay_seconds=float(os.environ.get("BENCH_SL_DELAY", "0")))
    # No Cybersource runs here: the flows its cron jobs drive (polls, sweeps, renewals) would only wait on it
    # (an open circuit breaker holds their events back) and the run would never drain.
    for flow in ("disputes", "erp_refunds", "settlement", "gap_sweep", "profile_sync", "subscriptions"):
        if isinstance(document.get("flows", {}).get(flow), dict):
            document["flows"][flow]["enabled"] = False
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def engine_env(database_url: str) -> dict[str, str]:
    return {"BENCH_CS_SECRET": MERCHANT["shared_secret"], "BENCH_WEBHOOK_KEY": WEBHOOK_KEY,
            "BENCH_SL_KEY": SL_API_KEY, "LEDGERLINK_DATABASE_URL": database_url,
            "LEDGERLINK_ADMIN_TOKEN": ADMIN_TOKEN}


# --- sending ---------------------------------------------------------------------------------------------


async def sender(port: int, requests: list[bytes], latencies: list[float], statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for raw in requests:
        started = time.perf_counter()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        match = LENGTH.search(head)
        if match:
            await reader.readexactly(int(match.group(1)))
        latencies.append(time.perf_counter() - started)
        status = int(head[9:12])
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


async def send_all(port: int, requests: list[bytes], concurrency: int) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    shares = [requests[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(sender(port, share, latencies, statuses) for share in shares))
    return time.perf_counter() - started, latencies, statuses


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * (len(ordered) - 1)))]


async def engine_stats(port: int, *, latency: bool = True) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        url = f"http://127.0.0.1:{port}/admin/stats?latency_window={100_000 if latency else 0}"
        return (await client.get(url)).json()  # type: ignore[no-any-return]


# --- the two parts ------------------------------------------------------------------------------------------


def fresh_database(args: argparse.Namespace, workdir: Path, name: str) -> tuple[str, dict[str, str]]:
    if not args.postgres:
        return f"sqlite:///{workdir / name}.db", {}
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    return args.postgres_url, {"LEDGERLINK_DATABASE_SCHEMA": schema}


def drop_schema(args: argparse.Namespace, env: dict[str, str]) -> None:
    if args.postgres and env.get("LEDGERLINK_DATABASE_SCHEMA"):
        from ledgerlink.runtime.db import Database

        db = Database(args.postgres_url, schema=env["LEDGERLINK_DATABASE_SCHEMA"], create=False)
        db.drop_schema()
        db.close()


async def intake_part(args: argparse.Namespace, template: dict[str, Any], workdir: Path) -> list[dict[str, Any]]:
    results = []
    config = integration_file(workdir, "http://127.0.0.1:9")
    for concurrency in args.concurrency:
        url, extra = fresh_database(args, workdir, f"intake{concurrency}")
        port = free_port()
        engine = ChildProcess(f"engine-intake-{concurrency}", ["serve", "--config", str(config), "--port", str(port),
                                                         "--no-worker", "--log-level", "warning"],
                         workdir, {**engine_env(url), **extra})
        try:
            await wait_http(f"http://127.0.0.1:{port}/readyz")
            warm = list(notifications(template, 500, uuid.uuid4().hex))
            await send_all(port, warm, concurrency)
            requests = list(notifications(template, args.intake_events, uuid.uuid4().hex))
            seconds, latencies, statuses = await send_all(port, requests, concurrency)
            stats = await engine_stats(port, latency=False)
        finally:
            engine.stop()
            drop_schema(args, extra)
        stored = stats["counters"].get("events.received", 0) - len(warm)
        results.append({
            "concurrency": concurrency, "events": len(requests), "stored": stored, "statuses": statuses,
            "events_per_second": round(len(requests) / seconds), "ack_p50_ms": round(percentile(latencies, .5) * 1e3, 2),
            "ack_p99_ms": round(percentile(latencies, .99) * 1e3, 2), "ack_max_ms": round(max(latencies) * 1e3, 2),
        })
        print(f"intake  {concurrency:>3} senders: {results[-1]}", flush=True)
    return results


async def end_to_end_part(args: argparse.Namespace, template: dict[str, Any], workdir: Path) -> dict[str, Any]:
    sl_port, engine_port = free_port(), free_port()
    sl_url = f"http://127.0.0.1:{sl_port}"
    url, extra = fresh_database(args, workdir, "e2e")
    config = integration_file(workdir, sl_url)
    sl = ChildProcess("sl", ["sandbox", "dynamics_sl", "--port", str(sl_port), "--set", f"database={workdir / 'sl.db'}"],
                 workdir)
    engine = ChildProcess("engine-e2e", ["serve", "--config", str(config), "--port", str(engine_port),
                                    "--log-level", "warning"], workdir, {**engine_env(url), **extra})
    try:
        await wait_http(f"{sl_url}/api/v1/setup")
        await wait_http(f"http://127.0.0.1:{engine_port}/readyz")
        requests = list(notifications(template, args.flows, uuid.uuid4().hex))
        cpu_before = {"engine": engine.cpu_seconds(), "sl": sl.cpu_seconds(), "sender": time.process_time()}
        started = time.perf_counter()
        send_seconds, latencies, statuses = await send_all(engine_port, requests, args.e2e_concurrency)
        while True:
            stats = await engine_stats(engine_port, latency=False)
            events = stats["events"]
            if sum(events.get(s, 0) for s in ("waiting", "pending", "running")) == 0 and \
                    sum(events.values()) >= len(requests):
                break
            if time.perf_counter() - started > 900:
                raise RuntimeError(f"did not finish: {events}")
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - started
        stats = await engine_stats(engine_port)
        cpu_after = {"engine": engine.cpu_seconds(), "sl": sl.cpu_seconds(), "sender": time.process_time()}
        async with httpx.AsyncClient(headers={"X-API-Key": SL_API_KEY}, timeout=60) as client:
            counts = (await client.get(f"{sl_url}/__sandbox/counts")).json()
    finally:
        engine.stop()
        sl.stop()
        drop_schema(args, extra)
    result = {
        "flows": len(requests), "statuses": statuses, "seconds": round(seconds, 2),
        "flows_per_second": round(len(requests) / seconds), "send_seconds": round(send_seconds, 2),
        "engine_done": events.get("done", 0), "dead": events.get("dead", 0),
        "sl_orders": counts["orders"], "sl_payments": counts["ardocs"].get("PA", 0),
        "ack_p99_ms": round(percentile(latencies, .99) * 1e3, 2),
        "latency_p50_ms": round((stats["latency_seconds"]["p50"] or 0) * 1e3),
        "latency_p99_ms": round((stats["latency_seconds"]["p99"] or 0) * 1e3),
        "cpu_ms_per_flow": {name: round((cpu_after[name] - cpu_before[name]) * 1e3 / len(requests), 3)
                            for name in cpu_before},
    }
    print(f"end to end: {result}", flush=True)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true", help="run against PostgreSQL instead of SQLite")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "LEDGERLINK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--intake-events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--flows", type=int, default=20_000)
    parser.add_argument("--e2e-concurrency", type=int, default=32)
    parser.add_argument("--skip-intake", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ledgerlink-bench-"))
    try:
        template = await sale_template()
        report: dict[str, Any] = {"database": "postgresql" if args.postgres else "sqlite",
                                  "cpus": os.cpu_count(), "python": sys.version.split()[0]}
        if not args.skip_intake:
            report["intake"] = await intake_part(args, template, workdir)
        if not args.skip_e2e:
            report["end_to_end"] = await end_to_end_part(args, template, workdir)
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
