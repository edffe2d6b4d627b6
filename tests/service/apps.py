"""The engine's app with its admin API over a fresh database and nothing running: no sandboxes, no workers.

For tests of who may call what (each builds one in milliseconds). A named token of each role is made up front.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import update

from ledgerlink.integrations import Records, build_integration, parse_integration
from ledgerlink.model import Money, ReviewCase, RiskScore
from ledgerlink.runtime import Database, Engine, tokens
from ledgerlink.runtime.card_retries import DatabaseCardRetryLedger
from ledgerlink.runtime.intake import InboxItem, store_items
from ledgerlink.runtime.notifications import DatabaseNotificationOutbox
from ledgerlink.runtime.records import DatabaseCaseBook, DatabaseReconciliationLedger
from ledgerlink.runtime.reviews import DatabaseReviewQueue, DatabaseRiskLedger
from ledgerlink.runtime.schema import DEAD, inbox
from ledgerlink.runtime.tokens import Role
from ledgerlink.service.app import create_app
from tests.flows.harness import ADMIN_TOKEN, ALL_FLOWS, integration_document

BASE_URL = "http://engine.local"


@dataclass
class Service:
    app: Any
    db: Database
    engine: Engine
    http: httpx.AsyncClient  # no token
    secrets: dict[Role, str]  # a named token per role: "viewer-1", "operator-1", "admin-1"

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def as_role(self, role: Role) -> dict[str, str]:
        return self.auth(self.secrets[role])

    def dead_letter(self, event_id: str, *, partition: str = "p-1") -> int:
        """A dead-lettered event, as the worker leaves one."""
        item = InboxItem(source="cybersource", event_id=event_id, event_type="payments.payments.accept",
                         partition_key=f"cybersource:{partition}", body=b'{"id": "x"}')

        def run(conn: Any) -> int:
            store_items(self.db, conn, [item], buckets=self.engine.settings.buckets, now=time.time())
            seq = conn.execute(inbox.select().where(inbox.c.event_id == event_id)).one().seq
            conn.execute(update(inbox).where(inbox.c.seq == seq).values(
                status=DEAD, finished_at=time.time(),
                last_error=orjson.dumps({"error": "Rejected", "message": "refused"}).decode()))
            return int(seq)

        return self.db.write_sync(run)

    async def review_case(self, key: str) -> None:
        queue = DatabaseReviewQueue(self.db, buckets=self.engine.settings.buckets)
        await queue.open(ReviewCase(key=key, gateway="cybersource", payment_id=key.rsplit(":", 1)[-1],
                                    partition_key=f"cybersource:{key}", order_reference="WEB-1",
                                    amount=Money.of("10.00", "USD"), risk=RiskScore(score=0.7, model="lr-test"),
                                    opened_at=datetime.now(UTC)), actor="ledgerlink")


def make_token(db: Database, name: str, role: Role | str, actor: str = "test") -> str:
    return db.write_sync(lambda conn: tokens.create(db, conn, name=name, role=role, actor=actor))


@asynccontextmanager
async def admin_service(database_url: str, schema: str | None = None) -> AsyncIterator[Service]:
    spec = parse_integration(integration_document(flows=ALL_FLOWS))
    db = Database(database_url, schema=schema)
    records = Records(cases=DatabaseCaseBook(db), ledger=DatabaseReconciliationLedger(db),
                      reviews=DatabaseReviewQueue(db, buckets=spec.runtime.buckets), risk=DatabaseRiskLedger(db),
                      outbox=DatabaseNotificationOutbox(db), card_retries=DatabaseCardRetryLedger(db))
    offline = httpx.MockTransport(lambda request: httpx.Response(503))
    integration = build_integration(spec, records=records, transports={"cybersource": offline, "dynamics_sl": offline})
    engine = Engine(db, handlers=integration.handlers, settings=spec.runtime, jobs=integration.jobs(db),
                    run_intake=False, run_workers=False)
    app = create_app(integration, engine, admin_tokens=[ADMIN_TOKEN], manage_engine=False)
    secrets = {role: make_token(db, f"{role.value}-1", role) for role in Role}
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
    try:
        yield Service(app, db, engine, http, secrets)
    finally:
        await http.aclose()
        await integration.aclose()
        db.close()
