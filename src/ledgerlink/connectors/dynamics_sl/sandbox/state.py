"""The sandbox's state (``app.state.sl``): its store, clock, tokens and fault script, and what tests
inspect (counts) or change (reset, closing periods, expiring tokens)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.auth import Tokens
from ledgerlink.connectors.dynamics_sl.sandbox.common import PERIOD, Company, Ctx
from ledgerlink.connectors.dynamics_sl.sandbox.errors import SLError
from ledgerlink.connectors.dynamics_sl.sandbox.faults import FaultScript
from ledgerlink.connectors.dynamics_sl.sandbox.seed import seed_company, seed_missing_accounts
from ledgerlink.connectors.dynamics_sl.sandbox.settings import SandboxSettings
from ledgerlink.connectors.dynamics_sl.sandbox.store import Codec, Store


class SandboxState:
    def __init__(self, settings: SandboxSettings, clock: Callable[[], datetime] = datetime.now) -> None:
        self.settings = settings
        self.clock = clock  # SL's server time (local, naive); tests may replace it
        self.store = Store(settings.database, synchronous=settings.synchronous)
        self.tokens = Tokens(now=lambda: self.clock().timestamp(), ttl=settings.token_ttl_seconds)
        self.faults = FaultScript(settings.faults)
        self._companies: dict[str, Company] = {}
        self._seed_if_empty()

    def _seed_if_empty(self) -> None:
        if self.store.one("SELECT 1 FROM GLSetup WHERE CpnyId = ?", (self.settings.company,)) is None:
            seed_company(self.store, self.settings, self.clock())
        else:
            seed_missing_accounts(self.store, self.settings, self.clock())
        self.store.load_currencies()
        self.codec = Codec(self.settings.date_format, self.store.decpl[self.settings.base_currency])

    def company(self, cpny: str) -> Company:
        company = self._companies.get(cpny)
        if company is None:
            company = Company.load(self.store, cpny)
            if company is None:
                raise SLError(400, "UnknownCompany", f"company {cpny!r} is not set up in this SL database",
                              table="GLSetup", field="CpnyID")
            self._companies[cpny] = company
        return company

    def context(self, cpny: str, user: str, key: str | None = None, *, minimal: bool = False) -> Ctx:
        return Ctx(store=self.store, codec=self.codec, company=self.company(cpny), settings=self.settings,
                   user=user, now=self.clock().replace(second=0, microsecond=0), idempotency_key=key,
                   minimal=minimal)

    def reset(self) -> None:
        """Empty every table and seed the company again (tokens and faults survive)."""
        self.store.drop_all()
        self._companies.clear()
        self._seed_if_empty()

    def set_periods(self, ar: str | None = None, gl: str | None = None) -> None:
        """Move a module's current period (closing the ones before it), as period-end closing does."""
        cpny = self.settings.company
        with self.store.transaction():
            for period, table, column in ((ar, T.ARSETUP, "CpnyID"), (gl, T.GLSETUP, "CpnyId")):
                if period is None:
                    continue
                if not PERIOD.match(period):
                    raise SLError(400, "InvalidPeriod", f"{period!r} is not YYYYPP", table=table.name,
                                  field="PerNbr")
                values = {"PerNbr": period, **({"CurrPerNbr": period} if table is T.ARSETUP else {})}
                self.store.update(table, {column: cpny}, values)
        self._companies.clear()

    def counts(self) -> dict[str, Any]:
        cpny = self.settings.company
        one = self.store.one

        def scalar(sql: str, *params: Any) -> int:
            row = one(sql, params)
            return int(row[0]) if row is not None else 0

        by_type = {r["DocType"].strip(): r["n"] for r in self.store.all(
            "SELECT DocType, COUNT(*) AS n FROM ARDoc WHERE CpnyID = ? GROUP BY DocType", (cpny,))}
        batches: dict[str, dict[str, int]] = {}
        for r in self.store.all("SELECT Module, Status, COUNT(*) AS n FROM Batch WHERE CpnyID = ? "
                                "GROUP BY Module, Status", (cpny,)):
            batches.setdefault(r["Module"].strip(), {})[r["Status"].strip()] = r["n"]
        return {
            "customers": scalar("SELECT COUNT(*) FROM Customer"),
            "orders": scalar("SELECT COUNT(*) FROM SOHeader WHERE CpnyID = ?", cpny),
            "orders_on_hold": scalar("SELECT COUNT(*) FROM SOHeader WHERE CpnyID = ? AND AdminHold = 1 AND "
                                     "Cancelled = 0", cpny),
            "orders_cancelled": scalar("SELECT COUNT(*) FROM SOHeader WHERE CpnyID = ? AND Cancelled = 1", cpny),
            "ardocs": by_type,
            "aradjust": scalar("SELECT COUNT(*) FROM ARAdjust WHERE CpnyID = ?", cpny),
            "batches": batches,
            "gltran": scalar("SELECT COUNT(*) FROM GLTran WHERE CpnyID = ?", cpny),
            "notes": scalar("SELECT COUNT(*) FROM Snote"),
            "tasks": scalar("SELECT COUNT(*) FROM xLLTask WHERE CpnyID = ?", cpny),
            "tasks_open": scalar("SELECT COUNT(*) FROM xLLTask WHERE CpnyID = ? AND Status = 'O'", cpny),
            "refund_requests_pending": scalar(
                "SELECT COUNT(*) FROM ARDoc WHERE CpnyID = ? AND DocType = 'CM' AND User5 = 'CARDRFND' "
                "AND User6 = ' ' AND Rlsed = 1", cpny),
        }

    def close(self) -> None:
        self.store.close()
