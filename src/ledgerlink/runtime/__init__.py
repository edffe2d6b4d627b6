"""The durable runtime: a partitioned log with group-committed intake, leased buckets, batched claims,
journaled idempotent steps, retries, a dead-letter list and cron schedules, on SQLite or PostgreSQL."""

from ledgerlink.runtime.db import Database, DatabaseLocked
from ledgerlink.runtime.engine import Engine
from ledgerlink.runtime.intake import InboxItem, Intake, IntakeResult
from ledgerlink.runtime.scheduler import ScheduleSpec
from ledgerlink.runtime.settings import RuntimeSettings

__all__ = [
    "Database",
    "DatabaseLocked",
    "Engine",
    "InboxItem",
    "Intake",
    "IntakeResult",
    "RuntimeSettings",
    "ScheduleSpec",
]
