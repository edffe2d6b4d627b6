"""The whole pair in one process: Cybersource sandbox -> engine -> Dynamics SL sandbox, over ASGI HTTP.

The Cybersource sandbox's emitter posts signed webhooks to the engine's real
ASGI app; the engine's connectors call both sandboxes' real ASGI apps. Nothing
is mocked: only the sockets are replaced by in-process transports (tests that
need sockets start real servers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from ledgerlink.connectors.cybersource import build_gateway
from ledgerlink.connectors.cybersource.sandbox.app import Sandbox
from ledgerlink.connectors.dynamics_sl.sandbox import create_app as create_sl_app
from ledgerlink.integrations import Integration, Records, build_integration, parse_integration
from ledgerlink.model import AuthorizationRequest, Money, Party, Payment, PaymentToken
from ledgerlink.runtime import Database, Engine
from ledgerlink.runtime.card_retries import DatabaseCardRetryLedger
from ledgerlink.runtime.inbox_index import DatabaseInboxIndex
from ledgerlink.runtime.notifications import DatabaseNotificationOutbox
from ledgerlink.runtime.records import DatabaseCaseBook, DatabaseReconciliationLedger
from ledgerlink.runtime.reviews import DatabaseReviewQueue, DatabaseRiskLedger
from ledgerlink.runtime.schema import UNFINISHED, inbox
from ledgerlink.runtime.stats import engine_stats
from ledgerlink.service.app import create_app

ADMIN_TOKEN = "test-admin-token"
VISA_INSTRUMENT = "A0000000000000000000000000004111"
CS_CREDENTIALS = {
    "merchant_id": "testrest",
    "key_id": "08c94330-f618-42a3-b09d-e1e43be5efda",
    "shared_secret": "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE=",
}
WEBHOOK_KEY_ID = "sandbox-webhook-key"
WEBHOOK_KEY = "c2FuZGJveC13ZWJob29rLWtleS0wMTIzNDU2Nzg5YWI="
SL_API_KEY = "sl-sandbox-key"


class LateApp:
    """An ASGI app whose target is set after construction (the sandbox and the engine point at each other)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


ACCOUNTS = {
    "card_clearing": {"account": "1050", "sub": "000000"}, "sales": {"account": "4000", "sub": "000000"},
    "returns": {"account": "4900", "sub": "000000"}, "refund_liability": {"account": "2350", "sub": "000000"},
    "write_off": {"account": "6900", "sub": "000000"}, "processing_fees": {"account": "6500", "sub": "000000"},
    "bank": {"account": "1010", "sub": "000000"}, "chargeback_clearing": {"account": "1060", "sub": "000000"},
    "chargeback_losses": {"account": "6550", "sub": "000000"}, "chargeback_fees": {"account": "6560", "sub": "000000"},
}
ALL_FLOWS = {"refunds": {"enabled": True}, "disputes": {"enabled": True}, "erp_refunds": {"enabled": True},
             "settlement": {"enabled": True, "lag_days": 2}}


def integration_document(mapping: dict[str, Any] | None = None, runtime: dict[str, Any] | None = None,
                         gateway: dict[str, Any] | None = None, flows: dict[str, Any] | None = None,
                         notifications: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**({"notifications": notifications} if notifications else {}),
        "name": "sl-cybersource-test",
        "gateway": {"type": "cybersource", "settings": {
            "base_url": "http://cybersource.sandbox", "host": "apitest.cybersource.com", **CS_CREDENTIALS,
            "webhook_keys": {WEBHOOK_KEY_ID: WEBHOOK_KEY}, **(gateway or {}),
        }},
        "back_office": {"type": "dynamics_sl", "settings": {
            "base_url": "http://sl.sandbox", "company": "0060", "api_key": SL_API_KEY,
        }},
        "mapping": {"accounts": ACCOUNTS, **(mapping or {})},
        "flows": flows or {},
        "runtime": {"buckets": 16, "lease_seconds": 2, "poll_seconds": 0.02,
                    "backoff": {"base_seconds": 0.02, "cap_seconds": 0.1, "max_attempts": 5}, **(runtime or {})},
    }


@dataclass
class Pair:
    cybersource: Sandbox
    sl_app: Any
    engine: Engine
    integration: Integration
    db: Database
    engine_http: httpx.AsyncClient
    sl_http: httpx.AsyncClient
    storefront: Any  # a CybersourceGateway used as the merchant's web shop
    app: Any = None  # the engine's ASGI app (its routes, for tests that walk them)

    @property
    def sl(self) -> Any:
        return self.sl_app.state.sl

    async def pay(self, order: str, amount: str, *, capture: bool = True, email: str | None = None,
                  currency: str = "USD", merchant_defined: dict[str, str] | None = None) -> Payment:
        party = Party(first_name="Ada", last_name="Lovelace", email=email or f"{order.lower()}@example.com")
        request = AuthorizationRequest(
            amount=Money.of(amount, currency), order_reference=order, capture=capture, party=party,
            token=PaymentToken(gateway="cybersource", token_id=VISA_INSTRUMENT),
            merchant_defined=merchant_defined or {},
        )
        return await self.storefront.authorize(request)  # type: ignore[no-any-return]

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every webhook is delivered and every stored event is finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.cybersource.emitter.pending == 0:
                unfinished = self.db.read_sync(lambda conn: conn.execute(
                    select(func.count()).select_from(inbox).where(inbox.c.status.in_(UNFINISHED))).scalar_one())
                if unfinished == 0 and self.cybersource.emitter.pending == 0:
                    self.assert_all_delivered()
                    return
            await asyncio.sleep(0.02)
        raise AssertionError(f"not settled in {timeout}s: {self.stats()['events']}")

    def assert_all_delivered(self) -> None:
        failed = self.cybersource.emitter.stats().get("failed", 0)
        assert not failed, f"{failed} webhook(s) were never accepted by the engine"

    def stats(self) -> dict[str, Any]:
        return self.db.read_sync(engine_stats)

    async def run_job(self, job: str, **args: Any) -> None:
        """Run one of the integration's jobs now, through the inbox like a scheduled tick, and settle."""
        import time as _time

        from ledgerlink.runtime.intake import InboxItem, store_items
        from ledgerlink.runtime.scheduler import job_event

        row = job_event(job, args=args, nonce=f"{_time.time_ns()}", buckets=self.engine.settings.buckets,
                        now=_time.time())
        item = InboxItem(source=row["source"], event_id=row["event_id"], event_type=row["event_type"],
                         partition_key=row["partition_key"], body=row["body"])
        await self.db.write(lambda conn: store_items(self.db, conn, [item], buckets=self.engine.settings.buckets,
                                                     now=_time.time()))
        assert self.engine.worker is not None
        self.engine.worker.wake()
        await self.settle()

    async def sl_get(self, path: str, **params: Any) -> Any:
        response = await self.sl_http.get(f"/api/v1/{path}", params=params)
        response.raise_for_status()
        body = response.json()
        return body["value"] if isinstance(body, dict) and "value" in body else body

    async def orders_for(self, reference: str) -> list[dict[str, Any]]:
        return await self.sl_get("salesorders", CustOrdNbr=reference)  # type: ignore[no-any-return]

    async def order(self, reference: str) -> dict[str, Any]:
        [header] = await self.orders_for(reference)
        return await self.sl_get(f"salesorders/{header['OrdNbr'].strip()}")  # type: ignore[no-any-return]


def amount(value: str) -> Decimal:
    return Decimal(value)


@asynccontextmanager
async def running_pair(
    tmp_path: Path,
    database_url: str,
    schema: str | None = None,
    *,
    emitter: dict[str, Any] | None = None,
    mapping: dict[str, Any] | None = None,
    runtime: dict[str, Any] | None = None,
    gateway: dict[str, Any] | None = None,
    sl_settings: dict[str, Any] | None = None,
    flows: dict[str, Any] | None = None,
    cybersource_settings: dict[str, Any] | None = None,
    notifications: dict[str, Any] | None = None,
    business_clock: Callable[[], float] | None = None,
    schedules: bool = False,
    vault: Callable[[str], str] | None = None,
) -> AsyncIterator[Pair]:
    """``business_clock``: the time flows see and cron ticks by (the machinery keeps real time);
    ``schedules``: run the integration's cron schedules (off by default: a test drives its jobs itself);
    ``notifications``: the integration file's section (a channel, e.g. an SMTP sink's port)."""
    engine_proxy = LateApp()
    cybersource = Sandbox(
        {"subscriptions": [{"url": "http://engine.local/webhooks/cybersource"}],
         "emitter": {"retry_base_seconds": 0.02, "retry_cap_seconds": 0.2, **(emitter or {})},
         **(cybersource_settings or {})},
        webhook_transport=httpx.ASGITransport(app=engine_proxy),
    )
    sl_app = create_sl_app({"database": str(tmp_path / "sl.db"), **(sl_settings or {})})
    spec = parse_integration(integration_document(mapping, runtime, gateway, flows, notifications))
    db = Database(database_url, schema=schema)
    records = Records(cases=DatabaseCaseBook(db), ledger=DatabaseReconciliationLedger(db),
                      reviews=DatabaseReviewQueue(db, buckets=spec.runtime.buckets), risk=DatabaseRiskLedger(db),
                      outbox=DatabaseNotificationOutbox(db), card_retries=DatabaseCardRetryLedger(db),
                      inbox=DatabaseInboxIndex(db))
    integration = build_integration(spec, records=records, vault=vault, transports={
        "cybersource": httpx.ASGITransport(app=cybersource.app), "dynamics_sl": httpx.ASGITransport(app=sl_app),
    })
    engine = Engine(db, handlers=integration.handlers, settings=spec.runtime, jobs=integration.jobs(db),
                    business_clock=business_clock, schedules=integration.schedules() if schedules else (),
                    services=integration.services(db))
    app = create_app(integration, engine, admin_tokens=[ADMIN_TOKEN], manage_engine=False)
    engine_proxy.app = app
    storefront = build_gateway(integration_document()["gateway"]["settings"],
                               transport=httpx.ASGITransport(app=cybersource.app))
    engine_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine.local",
                                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    sl_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sl_app), base_url="http://sl.sandbox",
                                headers={"X-API-Key": SL_API_KEY})
    await engine.start()
    await cybersource.start()
    try:
        yield Pair(cybersource, sl_app, engine, integration, db, engine_http, sl_http, storefront, app=app)
    finally:
        await cybersource.stop()
        await engine.stop()
        await integration.aclose()
        await storefront.aclose()
        await engine_http.aclose()
        await sl_http.aclose()
        db.close()
