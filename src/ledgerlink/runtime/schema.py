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

# What the inbox's identifiers may hold: PostgreSQL enforces it, so intake checks it first.
EVENT_ID_LENGTH, EVENT_TYPE_LENGTH, PARTITION_KEY_LENGTH = 255, 128, 255

inbox = Table(
    "ll_inbox",
    metadata,
    Column("seq", _big_id, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("event_id", String(EVENT_ID_LENGTH), nullable=False),
    Column("event_type", String(EVENT_TYPE_LENGTH), nullable=False),
    Column("partition_key", String(PARTITION_KEY_LENGTH), nullable=False),
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

# What settled on each day, one row per gateway and day: the day's (transaction id, kind, batch id) as one Arrow
# IPC blob (zstd). A large day is a million lines; a row each cost seconds to write and read back, the blob
# about a megabyte and tens of milliseconds. (``ll_settled`` above is what earlier versions wrote: still read.)
settled_days = Table(
    "ll_settled_days",
    metadata,
    Column("gateway", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),  # ISO date
    Column("lines", Integer, nullable=False),  # rows in ``keys_arrow``
    Column("keys_arrow", LargeBinary, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

# The audit log: append-only (nothing here updates or deletes a row). ``key`` is optional and unique, so work
# that may run twice (a retried flow step) writes its entry once; entries a person causes carry none.
audit = Table(
    "ll_audit",
    metadata,
    Column("seq", _big_id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False),  # who: "admin:<token name>", "cli:<user>", "cybersource", ...
    Column("action", String(128), nullable=False),  # what, dotted: "review.accepted"
    Column("target", String(255), nullable=False),  # which record: "review:cybersource:7093..."
    Column("details", Text),  # JSON object
    Column("key", String(255)),
    UniqueConstraint("key", name="uq_ll_audit_key"),
)
Index("ix_ll_audit_target_seq", audit.c.target, audit.c.seq)

# Payments held for fraud review and what was decided (see flows/fraud_review.py).
review_cases = Table(
    "ll_review_cases",
    metadata,
    Column("key", String(255), primary_key=True),  # review:<gateway>:<payment id>
    Column("gateway", String(64), nullable=False),
    Column("payment_id", String(128), nullable=False),
    Column("partition_key", String(255), nullable=False),
    Column("order_reference", String(255)),
    Column("status", String(16), nullable=False),  # open | accepted | rejected
    Column("score", Float),  # our model's score, 0..1: the queue's order
    Column("amount", String(64), nullable=False),  # decimal text
    Column("currency", String(3), nullable=False),
    Column("opened_at", Float, nullable=False),
    Column("decided_at", Float),
    Column("settled_at", Float),
    Column("document", Text, nullable=False),  # JSON of the whole ReviewCase
)
Index("ix_ll_review_cases_status_score", review_cases.c.status, review_cases.c.score)

# Every authorisation the risk model scored, by customer: its score and the history later payments are compared
# with. ``customer_key`` is a digest (of the email or the token), never the email itself.
risk_scores = Table(
    "ll_risk_scores",
    metadata,
    Column("gateway", String(64), primary_key=True),
    Column("payment_id", String(128), primary_key=True),
    Column("customer_key", String(64), nullable=False),
    Column("observed_at", Float, nullable=False),  # when the payment was made
    Column("amount", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("country", String(2)),
    Column("score", Float, nullable=False),
    Column("model", String(64), nullable=False),
    Column("document", Text, nullable=False),  # JSON of the RiskScore (factors)
)
Index("ix_ll_risk_scores_customer", risk_scores.c.customer_key, risk_scores.c.observed_at)

# Customer notices waiting for the sender (runtime/notifications.py): stored once per key, delivered with retries.
notifications = Table(
    "ll_notifications",
    metadata,
    Column("key", String(255), primary_key=True),  # the flow's business key: enqueueing twice stores it once
    Column("channel", String(32), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("category", String(64)),
    Column("reference", String(255)),
    Column("status", String(16), nullable=False),  # pending | sending | sent | dead
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("available_at", Float, nullable=False),  # pending: when to try; sending: when the claim lapses
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("last_error", Text),  # JSON evidence of the last failure
)
Index("ix_ll_notifications_status_available", notifications.c.status, notifications.c.available_at)

# Retries of declined card charges (subscriptions' dunning), to keep within the networks' cap per card per window.
card_retries = Table(
    "ll_card_retries",
    metadata,
    Column("key", String(255), primary_key=True),  # the retry's business key (subscription, period, attempt)
    Column("card", String(128), nullable=False),  # the token charged (never a card number)
    Column("attempted_at", Float, nullable=False),  # business time
)
Index("ix_ll_card_retries_card_at", card_retries.c.card, card_retries.c.attempted_at)

# Named API tokens for the admin API and the console (runtime/tokens.py). Only a SHA-256 digest of each token is
# kept; the token itself is shown once, when it is made. A revoked token keeps its row (and its name), so the
# audit log's "admin:<name>" always means one token.
api_tokens = Table(
    "ll_api_tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),  # viewer | operator | admin
    Column("digest", String(64), nullable=False),  # hex SHA-256 of the token
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("revoked_at", Float),
    Column("revoked_by", String(255)),
    UniqueConstraint("digest", name="uq_ll_api_tokens_digest"),
)

# Flow control shared by every process (runtime/flow_control.py). One circuit breaker per external endpoint
# ("<system>/<operation>"), changed by compare-and-set on ``version``; processes add their outcome counts every
# ``runtime.breakers.sync_seconds``, not per call.
breakers = Table(
    "ll_breakers",
    metadata,
    Column("endpoint", String(160), primary_key=True),
    Column("state", String(16), nullable=False),  # closed | open | half_open
    Column("changed_at", Float, nullable=False),
    Column("window_start", Float, nullable=False),
    Column("calls", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("probes", Integer, nullable=False),
    Column("probe_successes", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Token buckets per rate-limit key (a system, or one endpoint) and the "not before" a 429 set for the whole
# fleet. A take is one atomic UPDATE ... RETURNING (``granted`` is what that UPDATE handed out).
rate_limits = Table(
    "ll_rate_limits",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("granted", Integer, nullable=False),
    Column("paused_until", Float, nullable=False),
)
