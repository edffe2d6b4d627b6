"""The runtime's tables: a partitioned durable log plus the state it needs.

``ll_inbox`` is the log. A row is written once at intake (unique on source and
gateway event id, so a re-delivery cannot become a second row) and then only
moves forward: (waiting ->) pending -> running -> done | ignored | dead (a dead
row can be replayed). ``seq`` is the arrival order; events that share a
``partition_key`` are applied strictly in ``seq`` order: at most one event of a
partition is ``pending`` or ``running`` (its head), later ones are ``waiting``
and the head's completion promotes the next. Claiming is then a plain scan of
ready rows, however many events queue behind a busy partition. ``bucket`` (a
hash of the partition key) is the unit of ownership between worker processes.

Times are epoch seconds as floats: portable, cheap to compare, no time-zone
ambiguity in the database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# Event statuses.
WAITING = "waiting"
PENDING = "pending"
RUNNING = "running"
DONE = "done"
IGNORED = "ignored"
DEAD = "dead"

_big_id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite rowid aliasing needs INTEGER

inbox = Table(
    "ll_inbox",
    metadata,
    Column("seq", _big_id, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("partition_key", String(255), nullable=False),
    Column("bucket", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("replays", Integer, nullable=False, server_default=text("0")),
    Column("available_at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("lease_owner", String(64)),
    Column("headers", Text),  # JSON object of the headers worth keeping (never secrets)
    Column("body", LargeBinary, nullable=False),  # raw bytes as received (PAN-checked at intake)
    Column("outcome", String(64)),
    Column("last_error", Text),  # JSON evidence of the last failure
    Column("history", Text),  # JSON list of attempts
    UniqueConstraint("source", "event_id", name="uq_ll_inbox_source_event"),
)

# Plain composite indexes, not partial ones: SQLite only uses a partial index when it can prove the query
# implies the index's WHERE, which it cannot with bound parameters. (status, seq) serves claims (pending rows
# in arrival order, no sort), the dead-letter list and the heal pass; (partition_key, seq) serves
# per-partition order; (status, finished_at) serves pruning.
UNFINISHED = (WAITING, PENDING, RUNNING)
Index("ix_ll_inbox_status_seq", inbox.c.status, inbox.c.seq)
Index("ix_ll_inbox_partition_seq", inbox.c.partition_key, inbox.c.seq)
Index("ix_ll_inbox_status_finished", inbox.c.status, inbox.c.finished_at)

partition_state = Table(
    "ll_partition_state",
    metadata,
    Column("partition_key", String(255), primary_key=True),
    Column("state", Text, nullable=False),  # JSON document owned by the flows, incl. their step journal
    Column("updated_at", Float, nullable=False),
)

counters = Table(
    "ll_counters",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

leases = Table(
    "ll_leases",
    metadata,
    Column("bucket", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(64)),
    Column("expires_at", Float, nullable=False),
    Column("epoch", Integer, nullable=False),  # bumped at every change of owner (a fencing token)
)

workers = Table(
    "ll_workers",
    metadata,
    Column("worker_id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

schedules = Table(
    "ll_schedules",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("cron", String(128), nullable=False),
    Column("job", String(128), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("next_run_at", Float, nullable=False),
    Column("last_run_at", Float),
)

cases = Table(
    "ll_cases",
    metadata,
    Column("key", String(255), primary_key=True),  # stable across runs: a re-run updates, never duplicates
    Column("type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("summary", Text, nullable=False),
    Column("amount", String(64)),  # decimal text, never a float
    Column("currency", String(3)),
    Column("reference", String(255)),
    Column("opened_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("resolved_at", Float),
    Column("evidence", Text),  # JSON
    Column("refs", Text),  # JSON list of external-reference keys (e.g. the back-office task)
)
Index("ix_ll_cases_status_type", cases.c.status, cases.c.type)

reconciliations = Table(
    "ll_reconciliations",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("gateway", String(64), nullable=False),
    Column("day", String(10), nullable=False),  # ISO date
    Column("status", String(16), nullable=False),  # succeeded | failed
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("summary", Text),  # JSON: counts and totals
    Column("report", Text),  # JSON: the whole report
    Column("error", Text),
)
Index("ix_ll_reconciliations_day", reconciliations.c.gateway, reconciliations.c.day)

settled = Table(
    "ll_settled",
    metadata,
    Column("gateway", String(64), primary_key=True),
    Column("transaction_id", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("day", String(10), nullable=False),
    Column("batch_id", String(64), nullable=False),
)
Index("ix_ll_settled_day", settled.c.gateway, settled.c.day)
