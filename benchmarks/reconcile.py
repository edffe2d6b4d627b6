"""Reconciliation benchmark: 1,000,000 settlement lines against 1,000,000 posted payments.

    .venv/bin/python benchmarks/reconcile.py [--lines 1000000] [--path real|core]

Builds a day: a Payment Batch Detail report (the classic Cybersource CSV layout: title line, header, CRLF,
refunds negative) and the back office's postings for it, with 250 discrepancies of each of the five kinds
injected (an amount changed, a currency changed, a posting dated two days earlier that never settles, a line
never posted, a posting made twice), plus 250 postings whose gateway id is wrong but whose order reference and
amount match. The run must find every injected discrepancy and nothing else.

``--path real`` (default) times what an operator's ``ledgerlink reconcile --date`` does, over real HTTP:

* the Cybersource sandbox and the Dynamics SL sandbox run as servers of their own (``ledgerlink sandbox``). The
  report is recorded in the Cybersource sandbox (``POST /__sandbox/reports``: it serves the file as given and
  puts the day's figures in its net fundings); the postings are written into the SL sandbox's database
  (``ARDoc`` rows, as releasing receipts and refund payouts leaves them) before it starts.
* the measured process is ``ledgerlink reconcile --date`` with the shipped integration file pointed at them,
  on a fresh SQLite database: it queues the day's job and runs the engine until the job is done. The job
  downloads the report (HTTP Signature auth) and the net fundings and parses them into columns, pages the
  postings out of SL as CSV at the same time, matches, posts one balanced GL journal per batch to SL, opens a
  case and an SL task per discrepancy, and saves the report.

Printed: the command's wall time and peak RSS (its own ``VmHWM``, written when it exits), the run's own time
and its stages as the engine recorded them, the CPU time the two sandboxes spent meanwhile, the load average,
and the check. ``--path core`` times only the in-memory core on the same data: the connector's column reader,
the matcher and the journals (no HTTP, no database).

Investigation aids: ``BENCH_RSS_TRACE=<file>`` writes the engine's resident set every 50 ms, and
``BENCH_PYSPY=<file>`` runs the engine under ``py-spy record`` (collapsed stacks).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import io
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
DAY = date(2026, 11, 20)
INJECTED = 250  # of each kind
CS_SECRET = "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE="  # the Cybersource sandbox's own test merchant
SL_API_KEY = "sl-sandbox-key"
FEE_PER_MILLE = 29
COLUMNS = ["batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no",
           "payment_method", "currency", "amount", "transaction_type"]
EXPECTED = {"amount_mismatch": INJECTED, "currency_mismatch": INJECTED, "missing_in_settlement": INJECTED,
            "missing_in_erp": INJECTED, "duplicate": INJECTED}


# --- the day ----------------------------------------------------------------------------------------------


def _draw(ids: pl.Expr, seed: int, below: int) -> pl.Expr:
    """A deterministic pseudo-random integer in [0, below) per id (polars' hash, no other dependency)."""
    return (ids.hash(seed) % below).cast(pl.Int64)


def _text(cents: pl.Expr) -> pl.Expr:
    return pl.format("{}.{}", (cents // 100).cast(pl.Utf8), (cents % 100).cast(pl.Utf8).str.zfill(2))


def build_day(n: int) -> tuple[bytes, pl.DataFrame, dict[str, dict[str, str]]]:
    """(the report, the postings, the day's figures per currency for the net fundings)."""
    k = INJECTED
    lines = pl.DataFrame({"id": pl.int_range(n, dtype=pl.Int64, eager=True)}).with_columns(
        (_draw(pl.col("id"), 1, 499_900) + 100).alias("cents"),
        (_draw(pl.col("id"), 2, 100) < 5).alias("refund"),
        (pl.col("id") + 7_000_000_000_000_000_000).cast(pl.Utf8).str.zfill(22).alias("txn"),
        pl.format("WEB-{}", pl.col("id").cast(pl.Utf8).str.zfill(8)).alias("order_ref"),
    )
    settles = lines.filter((pl.col("id") < 3 * k) | (pl.col("id") >= 4 * k))  # [3k, 4k): posted, never settled
    report = settles.select(
        (pl.col("id") % 4).cast(pl.Utf8).str.zfill(12).alias("batch_id"), pl.lit("testrest").alias("merchant_id"),
        pl.lit(DAY.isoformat()).alias("batch_date"), pl.col("txn").alias("request_id"),
        pl.col("order_ref").alias("merchant_ref_number"), pl.col("id").cast(pl.Utf8).str.zfill(16).alias("trans_ref_no"),
        pl.lit("Visa").alias("payment_method"), pl.lit("USD").alias("currency"),
        pl.format("{}{}", pl.when(pl.col("refund")).then(pl.lit("-")).otherwise(pl.lit("")), _text(pl.col("cents")))
        .alias("amount"),
        pl.when(pl.col("refund")).then(pl.lit("ics_credit")).otherwise(pl.lit("ics_bill")).alias("transaction_type"),
    )
    out = io.BytesIO()
    out.write(f"Payment Batch Detail Report,1.0,{DAY} to {DAY},,,,,,,\r\n".encode())
    report.write_csv(out, line_terminator="\r\n")
    gross = int(settles.filter(~pl.col("refund"))["cents"].sum())
    refunds = int(settles.filter(pl.col("refund"))["cents"].sum())
    fees = gross * FEE_PER_MILLE // 1000
    figures = {"USD": {"purchases": _cents(gross), "refunds": _cents(refunds), "fees": _cents(fees)}}

    ids = pl.col("id")
    postings = lines.filter((ids < 4 * k) | (ids >= 5 * k)).with_columns(  # [4k, 5k): settled, never posted
        pl.when(ids < k).then(pl.col("cents") + 1).otherwise(pl.col("cents")).alias("cents"),
        pl.when((ids >= k) & (ids < 2 * k)).then(pl.lit("EUR")).otherwise(pl.lit("USD")).alias("currency"),
        pl.when((ids >= 2 * k) & (ids < 3 * k)).then(pl.format("X{}", pl.col("txn")))  # matched by reference
        .otherwise(pl.col("txn")).alias("txn"),
        pl.when((ids >= 3 * k) & (ids < 4 * k)).then(pl.lit(DAY - timedelta(days=2))).otherwise(pl.lit(DAY))
        .alias("posted_on"),
        _draw(ids, 3, 24).alias("hour"),
    )
    twice = postings.filter((ids >= 5 * k) & (ids < 6 * k)).with_columns((ids + 10_000_000).alias("id"))
    return out.getvalue(), pl.concat([postings, twice]), figures


def _cents(units: int) -> str:
    return f"{units // 100}.{units % 100:02d}"


def seed_sl(database: Path, postings: pl.DataFrame) -> None:
    """The postings as SL's ``ARDoc`` rows, released: receipts (``PA``) and refund payouts (``DM`` flagged
    ``RFNDPAYOUT``), each carrying the gateway's id in ``User1``."""
    from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
    from ledgerlink.connectors.dynamics_sl.sandbox.settings import SandboxSettings
    from ledgerlink.connectors.dynamics_sl.sandbox.state import SandboxState

    state = SandboxState(SandboxSettings(database=str(database), current_period="202611", synchronous="OFF"))
    conn = state.store.conn
    given = ["DocType", "RefNbr", "DocDate", "CuryOrigDocAmt", "OrigDocAmt", "CuryId", "User1", "CustOrdNbr",
             "User5", "Crtd_DateTime"]
    rows = postings.select(
        pl.when(pl.col("refund")).then(pl.lit("DM")).otherwise(pl.lit("PA")).alias("DocType"),
        pl.col("id").cast(pl.Utf8).str.zfill(10).alias("RefNbr"),
        pl.format("{} 00:00", pl.col("posted_on").cast(pl.Utf8)).alias("DocDate"),
        (pl.col("cents") / 100).alias("CuryOrigDocAmt"), (pl.col("cents") / 100).alias("OrigDocAmt"),
        pl.col("currency").alias("CuryId"), pl.col("txn").alias("User1"), pl.col("order_ref").alias("CustOrdNbr"),
        pl.when(pl.col("refund")).then(pl.lit("RFNDPAYOUT")).otherwise(pl.lit(" ")).alias("User5"),
        pl.format("{} {}:00", pl.col("posted_on").cast(pl.Utf8), pl.col("hour").cast(pl.Utf8).str.zfill(2))
        .alias("Crtd_DateTime"),
    ).iter_rows()
    fixed = {"CpnyID": "0060", "CustId": "C0001", "BatNbr": "000001", "Rlsed": 1, "PerPost": "202611",
             "PerEnt": "202611", "Status": "C", "DocDesc": "Card payment"}
    conn.execute("BEGIN")
    conn.execute("CREATE TEMP TABLE seed (" + ", ".join(f'"{c}"' for c in given) + ")")
    conn.executemany("INSERT INTO seed VALUES (" + ", ".join("?" * len(given)) + ")", rows)
    names = list(T.ARDOC.defaults)
    values = [f'"{name}"' if name in given else "?" for name in names]
    params = [fixed.get(name, T.ARDOC.defaults[name]) for name in names if name not in given]
    conn.execute(f'INSERT INTO ARDoc ({", ".join(chr(34) + n + chr(34) for n in names)}) '
                 f'SELECT {", ".join(values)} FROM seed', params)
    conn.execute("COMMIT")
    state.close()


# --- the real run ---------------------------------------------------------------------------------------


def integration_file(workdir: Path, cs_url: str, sl_url: str) -> Path:
    document = yaml.safe_load((ROOT / "integrations" / "sl-cybersource.yaml").read_text())
    document["gateway"]["settings"].update(base_url=cs_url, shared_secret="${env:BENCH_CS_SECRET}",
                                           webhook_keys={"bench-key": "${env:BENCH_CS_SECRET}"})
    document["back_office"]["settings"].update(base_url=sl_url, api_key="${env:BENCH_SL_KEY}")
    document["flows"] = {"settlement": document["flows"]["settlement"]}  # nothing else runs meanwhile
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def real(n: int, workdir: Path) -> dict[str, Any]:
    from ledgerlink.processes import ChildProcess, free_port, wait_http

    data, postings, figures = build_day(n)
    seed_sl(workdir / "sl.db", postings)
    del postings
    cs_port, sl_port = free_port(), free_port()
    cs_url, sl_url = f"http://127.0.0.1:{cs_port}", f"http://127.0.0.1:{sl_port}"
    sandboxes = [
        ChildProcess("cybersource", ["sandbox", "cybersource", "--port", str(cs_port)], workdir),
        ChildProcess("dynamics_sl", ["sandbox", "dynamics_sl", "--port", str(sl_port), "--set",
                                     f"database={workdir / 'sl.db'}", "--set", "current_period='202611'"], workdir),
    ]
    try:
        await wait_http(f"{cs_url}/__sandbox/stats", process=sandboxes[0], timeout=120)
        await wait_http(f"{sl_url}/api/v1/setup", process=sandboxes[1], timeout=120)
        async with httpx.AsyncClient(timeout=300) as http:
            recorded = await http.post(f"{cs_url}/__sandbox/reports", json={
                "day": DAY.isoformat(), "csv": data.decode(), "figures": figures})
            assert recorded.status_code == 201, recorded.text
        del data
        config = integration_file(workdir, cs_url, sl_url)
        database = workdir / "ledgerlink.db"
        peak_file = workdir / "engine.peak"
        command = [sys.executable, __file__, "--engine", str(peak_file), "reconcile", "--date", DAY.isoformat(),
                   "--config", str(config), "--database-url", f"sqlite:///{database}"]
        if os.environ.get("BENCH_PYSPY"):  # investigation aid: a py-spy profile of the engine (collapsed stacks)
            command = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "-r", "50",
                       "-o", os.environ["BENCH_PYSPY"], "--", *command]
        env = {**os.environ, "BENCH_CS_SECRET": CS_SECRET, "BENCH_SL_KEY": SL_API_KEY}
        load_before = os.getloadavg()
        cpu_before = [cpu_seconds(s.pid) for s in sandboxes]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
        wall = time.perf_counter() - started
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        engine_cpu = used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime
        sandbox_cpu = {s.name: round(cpu_seconds(s.pid) - before, 2) for s, before in zip(sandboxes, cpu_before,
                                                                                           strict=True)}
        if done.returncode != 0:
            raise SystemExit(f"ledgerlink reconcile failed:\n{done.stdout}\n{done.stderr}")
        tasks = json.loads(await _get(f"{sl_url}/__sandbox/counts")).get("tasks")
    finally:
        for sandbox in sandboxes:
            sandbox.stop()
    with sqlite3.connect(database) as conn:
        run = json.loads(conn.execute("SELECT report FROM ll_reconciliations WHERE status = 'succeeded'").fetchone()[0])
    found = {kind: item["count"] for kind, item in run["discrepancies"]["by_type"].items()}
    return {
        "path": "real", "lines": run["counts"]["lines"], "postings": run["counts"]["postings"],
        "command_seconds": round(wall, 2), "command_cpu_seconds": round(engine_cpu, 2),
        "peak_rss_mb": round(int(peak_file.read_text()) / 1024),
        "run_seconds": round(run["finished_at"] - run["started_at"], 2), "run_stages": run["seconds"],
        "run_stages_cpu": run["cpu_seconds"],
        "sandbox_cpu_seconds": sandbox_cpu, "load_average": {"before": load_before, "after": os.getloadavg()},
        "journals_posted": len(run["journals"]), "sl_tasks": tasks, "counts": run["counts"],
        "discrepancies_found": found,
    }


async def _get(url: str) -> str:
    async with httpx.AsyncClient(headers={"X-API-Key": SL_API_KEY}) as http:
        return (await http.get(url)).text


def engine(peak_file: str, args: list[str]) -> None:
    """The measured process: ``ledgerlink <args>``, writing its peak resident set (``VmHWM``, kB) when it exits.
    (``ru_maxrss`` would not do: Linux carries it across exec, so a child reports at least its parent's size.)"""

    def peak() -> None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                Path(peak_file).write_text(line.split()[1])

    atexit.register(peak)
    trace = os.environ.get("BENCH_RSS_TRACE")
    if trace:  # investigation aid: resident set every 50 ms
        import threading

        samples: list[str] = []

        def sample() -> None:
            began = time.perf_counter()
            while True:
                for line in Path("/proc/self/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        samples.append(f"{time.perf_counter() - began:.2f} {int(line.split()[1]) // 1024}")
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
        atexit.register(lambda: Path(trace).write_text("\n".join(samples)))
    from ledgerlink.cli import main

    main(args)


# --- the core, in memory ----------------------------------------------------------------------------------


def core(n: int) -> dict[str, Any]:
    from ledgerlink.connectors.cybersource.batch_detail import read_batch_detail_columns
    from ledgerlink.connectors.cybersource.settlement import Funding, build_settlement_frame
    from ledgerlink.connectors.kit.columns import PostedFrame
    from ledgerlink.flows.matching import MatchSettings, match
    from ledgerlink.flows.settlement import JOURNAL_ACCOUNTS, lines_frame, postings_frame, settlement_journal
    from ledgerlink.model import GLAccount, Money

    data, postings, figures = build_day(n)
    posted = PostedFrame(postings.select(
        pl.format("dynamics_sl:ardoc:{}:{}", pl.when(pl.col("refund")).then(pl.lit("DM")).otherwise(pl.lit("PA")),
                  pl.col("id")).alias("ref"),
        pl.when(pl.col("refund")).then(pl.lit("refund")).otherwise(pl.lit("receipt")).alias("kind"),
        "cents", "currency", "posted_on",
        pl.col("posted_on").cast(pl.Datetime("us", "UTC")).alias("posted_at"),
        "txn", "order_ref", pl.lit("C0001").alias("customer")))
    del postings
    usd = {name: Money.of(value, "USD") for name, value in figures["USD"].items()}
    zero = Money.zero("USD")
    funding = {"USD": Funding("USD", usd["purchases"], usd["refunds"], usd["fees"], zero, zero,
                              usd["purchases"] - usd["refunds"] - usd["fees"])}
    rss_before = _peak_mb()
    started = time.perf_counter()
    columns = read_batch_detail_columns(data)
    del data
    settlement = build_settlement_frame(gateway="cybersource", merchant_id="testrest", day=DAY, columns=columns,
                                        funding=funding)
    read = time.perf_counter()
    result = match(lines_frame(settlement), postings_frame(posted), day=DAY, settings=MatchSettings(lag_days=2))
    matched = time.perf_counter()
    accounts = {name: GLAccount(account=str(1000 + i)) for i, name in enumerate(JOURNAL_ACCOUNTS)}
    journals = sum(settlement_journal(b, accounts, f"journal:{b.batch_id}") is not None for b in settlement.batches)
    finished = time.perf_counter()
    return {
        "path": "core", "lines": settlement.line_count, "postings": posted.height, "journals_posted": journals,
        "seconds": {"read_report": round(read - started, 2), "match": round(matched - read, 2),
                    "journals": round(finished - matched, 3), "total": round(finished - started, 2)},
        "rss_before_run_mb": rss_before, "peak_rss_mb": _peak_mb(), "counts": result.counts(),
        "discrepancies_found": dict(result.discrepancies.group_by("type").len().iter_rows()),
    }


def _peak_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return 0


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--engine":
        engine(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--path", choices=("real", "core"), default="real",
                        help="real: ledgerlink reconcile over HTTP against both sandboxes; core: in memory")
    args = parser.parse_args()
    if args.path == "core":
        report = core(args.lines)
    else:
        with tempfile.TemporaryDirectory(prefix="ledgerlink-reconcile-") as directory:
            report = asyncio.run(real(args.lines, Path(directory)))
    report.update(cpus=os.cpu_count(), python=sys.version.split()[0], discrepancies_injected=EXPECTED,
                  all_found_nothing_else=report["discrepancies_found"] == EXPECTED)
    print(json.dumps(report, indent=2))
    if not report["all_found_nothing_else"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
