"""Benchmark (not a test): how long one ``$batch`` of 250 creates takes in the SL sandbox.

Run: ``.venv/bin/python benchmarks/sl_batch.py``. Prints the best and median of
five batches per document kind, in-process over the ASGI transport, for an in-memory database and a
WAL file database (synchronous=FULL, one fsync per batch), with full and minimal answers.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

import httpx
import orjson

from ledgerlink.connectors.dynamics_sl.sandbox import create_app

SIZE = 250


def _requests(kind: str, round_: int, minimal: bool) -> list[dict[str, Any]]:
    headers = {"Prefer": "return=minimal"} if minimal else {}
    out = []
    for i in range(SIZE):
        key = {"Idempotency-Key": f"{kind}-{round_}-{i}", **headers}
        if kind == "customers":
            body: dict[str, Any] = {"CustId": f"C{round_}X{i}", "Name": f"Customer {i}", "EMailAddr": f"c{round_}.{i}@x.com"}
            url = "/api/v1/customers"
        elif kind == "orders":
            body = {"CustID": f"C0X{i}", "CustOrdNbr": f"ORD{round_}-{i}",
                    "Lines": [{"InvtID": "SKU", "Descr": "Thing", "QtyOrd": "1", "SlsPrice": "10.00"}]}
            url = "/api/v1/salesorders"
        else:
            body = {"CustId": f"C0X{i}", "DocType": "PP", "CuryOrigDocAmt": "1.00"}
            url = "/api/v1/ar/documents"
        out.append({"id": str(i), "method": "POST", "url": url, "headers": key, "body": body})
    return out


async def run(database: str, minimal: bool) -> None:
    app = create_app({"database": database})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sl",
                                 headers={"X-API-Key": "sl-sandbox-key", "content-type": "application/json"}) as sl:
        for kind in ("customers", "orders", "payments"):
            times = []
            for round_ in range(5):
                body = orjson.dumps({"requests": _requests(kind, round_, minimal)})
                start = time.perf_counter()
                response = await sl.post("/api/v1/$batch", content=body)
                times.append(time.perf_counter() - start)
                assert {r["status"] for r in response.json()["responses"]} == {201}
            label = "memory" if database == ":memory:" else "file"
            print(f"{label:6} {'minimal' if minimal else 'full':7} {kind:9} best {min(times) * 1000:6.1f} ms  "
                  f"median {statistics.median(times) * 1000:6.1f} ms  {SIZE / min(times):7.0f} docs/s")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for minimal in (False, True):
            asyncio.run(run(":memory:", minimal))
            asyncio.run(run(os.path.join(folder, f"sl-{minimal}.db"), minimal))


if __name__ == "__main__":
    main()
