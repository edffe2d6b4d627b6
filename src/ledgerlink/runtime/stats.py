"""What the engine has done, for the console, the admin API and the demo summary."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from ledgerlink.runtime.counters import read_counters
from ledgerlink.runtime.schema import DONE, inbox


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def engine_stats(conn: Connection, *, latency_window: int = 20_000) -> dict[str, Any]:
    """Events by status, counters, and latency over the last ``latency_window`` finished events (0: skip)."""
    by_status = {row.status: int(row.n) for row in conn.execute(
        select(inbox.c.status, func.count().label("n")).group_by(inbox.c.status))}
    if latency_window <= 0:
        return {"events": by_status, "counters": read_counters(conn)}
    recent = conn.execute(
        select(inbox.c.received_at, inbox.c.finished_at)
        .where(inbox.c.status == DONE, inbox.c.finished_at.is_not(None))
        .order_by(inbox.c.seq.desc()).limit(latency_window)
    ).all()
    latencies = sorted(max(0.0, r.finished_at - r.received_at) for r in recent)
    throughput = None
    if len(recent) > 1:
        span = max(r.finished_at for r in recent) - min(r.received_at for r in recent)
        throughput = len(recent) / span if span > 0 else None
    return {
        "events": by_status,
        "counters": read_counters(conn),
        "latency_seconds": {
            "p50": _percentile(latencies, 0.50),
            "p99": _percentile(latencies, 0.99),
            "max": latencies[-1] if latencies else None,
            "samples": len(latencies),
        },
        "throughput_per_second": throughput,
    }
