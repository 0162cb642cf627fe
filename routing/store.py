"""The router's durable state: SQLAlchemy Core over SQLite (default) or PostgreSQL.

The router is pure and keeps its index in memory; this store is what survives a
restart. The engine hands it the decisions of one routing step at a time
(:meth:`Store.apply`) and commits them in ONE write transaction, so a step is
either wholly on disk or not at all. :meth:`Store.snapshot` gives back everything
``Router.restore`` needs: agents' states, waiting calls in queue order with their
original ``since`` and ``seq`` (time waited is unchanged by a restart), the
reservations that were ringing, and the next sequence number.

Concurrency, the pitfall in ARCHITECTURE.md:

- aiosqlite's driver, left to itself, does not BEGIN before a SELECT, so two
  read-modify-write tasks both read the old value and one update is lost. Here
  the driver manages no transactions (``isolation_level=None``) and a ``begin``
  listener emits ``BEGIN IMMEDIATE`` for writes: the write lock is taken before
  the first read of a write transaction. Reads get a plain ``BEGIN`` (a
  consistent WAL snapshot that never blocks the writer).
- One writer per Store, every write through ``_write``. On SQLite that is one thread
  running each write transaction whole on a sync pysqlite connection (same settings),
  in submission order: one hop from the event loop per transaction instead of ~3 per
  statement through aiosqlite. On PostgreSQL it is the async engine under an
  ``asyncio.Lock``, and the read of a read-modify-write takes ``FOR UPDATE``. The
  SQLite ``busy_timeout`` makes writers in other processes (or other Store objects)
  wait their turn instead of failing with "database is locked".
- Reads (aiosqlite / asyncpg) run concurrently with each other and with the writer.
- A batch becomes a handful of ``executemany`` statements (Core, no ORM), not one per decision.

PHI: ``waiting_calls.callback_number`` holds patients' phone numbers. They never go
into log lines or error messages (``hide_parameters=True`` keeps SQLAlchemy from
printing bound values into its exceptions); :func:`mask_number` shows the last 4 digits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple, Self

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agents.state import AgentState, Status
from ivr.errors import IvrError
from routing.model import (
    AgentChanged,
    CallLeft,
    CallQueued,
    Decision,
    Offer,
    Overflowed,
    QueueFailed,
    Reservation,
    WaitingCall,
)

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_SQLITE_FILE = "ivr-state.db"
# pg_advisory_xact_lock key: two processes starting at once migrate one after the other.
_PG_MIGRATION_LOCK = 0x1B5_0001


# ====================================================================== errors


class StoreError(IvrError):
    """Something went wrong storing or reading routing state."""

    error_id = "E-STORE"


class StoreUnavailable(StoreError):
    """The database cannot be reached or stayed locked past ``busy_timeout``; retrying later may work."""

    error_id = "E-STORE-UNAVAILABLE"


class StoreClosed(StoreError):
    error_id = "E-STORE-CLOSED"


class InvalidRecord(StoreError):
    """A decision the store cannot keep as given (a naive datetime, an unknown decision type)."""

    error_id = "E-STORE-INVALID"


class StoreIntegrityError(StoreError):
    """The database refused a batch for a constraint other than double assignment (e.g. an Offer for a call
    that was never queued, or for an agent with no state row)."""

    error_id = "E-STORE-INTEGRITY"


class MigrationFailed(StoreError):
    error_id = "E-STORE-MIGRATION"


class DoubleAssignment(StoreError):
    """The database refused an Offer: the agent already holds another call, or the call already rings another agent.

    ``details``: ``call`` and ``agent`` of the refused offer, and ``held_call`` / ``held_agent``: what was
    already reserved. The whole batch was rolled back.
    """

    error_id = "E-ROUTING-DOUBLE-ASSIGNMENT"


def mask_number(number: str | None) -> str | None:
    """A phone number fit for logs and messages: only its last 4 digits (``***0123``)."""
    if number is None:
        return None
    digits = [c for c in number if c.isdigit()]
    return "***" + "".join(digits[-4:]) if digits else "***"


# ====================================================================== schema


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in, aware UTC out.

    PostgreSQL stores ``TIMESTAMP WITH TIME ZONE``. SQLite has no time zones: the value is
    stored as naive UTC text (fixed width, so text order is time order) and UTC is attached
    again on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: the store keeps aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Auto-increment ids: BIGINT on PostgreSQL; INTEGER PRIMARY KEY (the rowid) on SQLite.
EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON()  # JSON, not JSONB, on PostgreSQL: keeps explanations' key order as written; never queried inside
STATUSES = tuple(s.value for s in Status)
CALL_EVENT_KINDS = ("left", "queue_failed", "overflowed")

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


agent_states_t = sa.Table(
    "agent_states", metadata,  # each agent's live state (who the agents are is agents.yaml)
    sa.Column("agent_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("since", UTCDateTime()),
    sa.Column("reason", sa.String(32)),
    sa.Column("call_id", sa.String(128)),
    sa.Column("idle_since", UTCDateTime()),
    sa.Column("missed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint(f"status IN ({_in(STATUSES)})", name="status"),
    sa.CheckConstraint("missed >= 0 AND calls >= 0", name="counters"),
)

agent_events_t = sa.Table(
    "agent_events", metadata,
    sa.Column("id", EventId, primary_key=True, autoincrement=True),
    sa.Column("agent_id", sa.String(64),
              sa.ForeignKey("agent_states.agent_id", deferrable=True, initially="DEFERRED"), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=False),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("call_id", sa.String(128)),
    sa.Column("cause", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index(None, "agent_id", "at"),
    sa.Index(None, "at"),
)

waiting_calls_t = sa.Table(
    "waiting_calls", metadata,
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skills", Json, nullable=False),
    sa.Column("language", sa.String(16)),
    sa.Column("preferred_agent", sa.String(64)),
    sa.Column("callback_number", sa.String(32)),  # PHI: never logged
    sa.Column("entered_queue_at", UTCDateTime()),
    sa.Column("offered_to", sa.String(64)),
    sa.Index(None, "queue", "priority", "since", "seq"),
)

reservations_t = sa.Table(
    "reservations", metadata,
    # call_id primary key + agent_id UNIQUE: the database itself refuses a call ringing two agents
    # or an agent holding two calls, whatever the code above it does.
    sa.Column("call_id", sa.String(128),
              sa.ForeignKey("waiting_calls.call_id", ondelete="CASCADE", deferrable=True, initially="DEFERRED"),
              primary_key=True),
    sa.Column("agent_id", sa.String(64),
              sa.ForeignKey("agent_states.agent_id", deferrable=True, initially="DEFERRED"), nullable=False),
    sa.Column("offered_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("agent_id"),
)

routing_decisions_t = sa.Table(
    "routing_decisions", metadata,
    sa.Column("id", EventId, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), nullable=False),
    sa.Column("agent_id", sa.String(64), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("explanation", Json, nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index(None, "call_id", "id"),
)

call_events_t = sa.Table(
    "call_events", metadata,
    sa.Column("id", EventId, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("why", sa.String(32), nullable=False),
    sa.Column("to_queue", sa.String(64)),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(f"kind IN ({_in(CALL_EVENT_KINDS)})", name="kind"),
    sa.Index(None, "call_id", "id"),
)

call_records_t = sa.Table(
    # One row per finished call, written by the live adapters: what the KPIs are computed from. No PHI:
    # neither the caller's number nor anything they typed; ``node`` is the tree node the call ended at.
    "call_records", metadata,
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("tree", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # asterisk, twilio, simulator
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # the interpreter's outcome kind, or fallback
    sa.Column("node", sa.String(128), nullable=False),
    sa.Column("queue", sa.String(64)),
    sa.Column("agent_id", sa.String(64)),
    sa.Column("queued_at", UTCDateTime()),
    sa.Column("answered_at", UTCDateTime()),  # when an agent answered
    sa.Column("agent_ended_at", UTCDateTime()),
    sa.Column("ended_by", sa.String(16), nullable=False),  # caller, agent, engine, fallback, asterisk
    sa.Index(None, "started_at"),
)

router_meta_t = sa.Table(
    "router_meta", metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

TABLES = ("agent_states", "agent_events", "waiting_calls", "reservations", "routing_decisions", "call_events",
          "router_meta", "call_records")


# ====================================================================== values handed back


class Snapshot(NamedTuple):
    """Everything needed to rebuild the router after a restart (``Router.restore(*snapshot[:3], now, next_seq)``)."""

    agents: dict[str, AgentState]
    waiting: list[WaitingCall]  # queue order: -priority, since, seq
    reservations: list[Reservation]
    next_seq: int


class AgentEvent(NamedTuple):
    id: int
    agent_id: str
    from_status: str
    to_status: str
    reason: str | None
    call_id: str | None
    cause: str
    at: datetime


class CallEvent(NamedTuple):
    """``kind``: left (``why`` = answered, abandoned, timeout, ...), queue_failed (``why`` = the outcome) or
    overflowed (``to_queue`` set)."""

    id: int
    call_id: str
    queue: str
    kind: str
    why: str
    to_queue: str | None
    at: datetime


class CallRecord(NamedTuple):
    """A finished call as the KPIs see it (one row of ``call_records``); times are aware UTC."""

    call_id: str
    tree: str
    channel: str
    started_at: datetime
    ended_at: datetime
    outcome: str
    node: str
    ended_by: str
    queue: str | None = None
    agent_id: str | None = None
    queued_at: datetime | None = None
    answered_at: datetime | None = None
    agent_ended_at: datetime | None = None


# ====================================================================== engine


def default_url() -> str:
    """``DATABASE_URL``, else a SQLite file at ``IVR_DB_PATH`` (default ``./ivr-state.db``)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    path = Path(os.environ.get("IVR_DB_PATH") or DEFAULT_SQLITE_FILE).expanduser().resolve()
    return URL.create("sqlite+aiosqlite", database=str(path)).render_as_string(hide_password=False)


def _async_url(url: str | URL) -> URL:
    """Accept plain ``sqlite:///`` / ``postgresql://`` / ``postgres://`` and pick the asyncio driver."""
    u = make_url(url)
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
    if u.drivername in drivers:
        u = u.set(drivername=drivers[u.drivername])
    return u


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _engine_kw(u: URL) -> dict[str, Any]:
    kw: dict[str, Any] = {"hide_parameters": True, "json_serializer": _json_dumps}
    if u.get_backend_name() == "sqlite":
        # The driver must not manage transactions: the `begin` listener below emits them.
        kw["connect_args"] = {"isolation_level": None}
    return kw


def make_engine(url: str | URL) -> AsyncEngine:
    """The async engine with this store's settings (reads, migrations; all writes on PostgreSQL)."""
    u = _async_url(url)
    engine = create_async_engine(u, **_engine_kw(u))
    if u.get_backend_name() == "sqlite":
        _sqlite_setup(engine.sync_engine, writer=False)
    return engine


def _make_sqlite_writer(url: str | URL) -> sa.Engine:
    """SQLite's writer: a sync pysqlite engine with one connection, used only by the store's writer thread.

    A write transaction then costs ONE hop from the event loop to that thread, however many statements
    it has, instead of three hops per statement through aiosqlite (cursor, execute, close) plus commit:
    a one-change transaction takes about a third of the time (benchmarks/bench_store.py).
    """
    u = _async_url(url).set(drivername="sqlite+pysqlite")
    engine = sa.create_engine(u, pool_size=1, max_overflow=0, **_engine_kw(u))
    _sqlite_setup(engine, writer=True)
    return engine


def _sqlite_setup(sync: sa.Engine, *, writer: bool) -> None:
    @event.listens_for(sync, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # First, so that even switching to WAL waits for a busy database rather than failing at once.
        # 5 s: a writer in another process holds the lock for milliseconds per batch.
        cur.execute("PRAGMA busy_timeout=5000")
        # WAL: readers never block the writer and the writer never blocks readers; a commit appends
        # to the log instead of rewriting pages. The mode is kept in the file, so only the first
        # connection to a new file switches it. Two processes doing that at once can be refused at
        # once (SQLite skips the busy handler where waiting could deadlock): then the other one has
        # just switched it, which the second look sees.
        for attempt in range(3):
            cur.execute("PRAGMA journal_mode")
            if str(cur.fetchone()[0]).lower() == "wal":
                break
            try:
                cur.execute("PRAGMA journal_mode=WAL")
            except Exception as exc:  # the driver's OperationalError: "database is locked"
                if "locked" not in str(exc).lower() or attempt == 2:
                    raise
        else:  # e.g. a network filesystem: still correct (BEGIN IMMEDIATE, busy_timeout), only less concurrent
            log.warning("SQLite could not switch the routing store to WAL; readers will wait for the writer")
        # NORMAL in WAL mode: a commit is durable against the process dying (SIGKILL, crash: the
        # WAL is in the OS's hands) and the database never corrupts; only a power cut or kernel
        # crash can lose the last commits before the next checkpoint. FULL would fsync on every
        # commit and cap the write rate at the disk's fsync rate, for little gain here: after a
        # power cut every live call is gone anyway, and the router settles state on restore.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(sync, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writes take the write lock before their first statement (so the read of a read-modify-write
        # is inside it: no lost update); reads start a deferred transaction, a consistent WAL snapshot.
        if writer or conn.get_execution_options().get("ivr_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _dialect_insert(dialect: str) -> Callable[..., Any]:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


# ====================================================================== migrations


def alembic_config(connection: sa.Connection | None = None, url: str | None = None) -> Any:
    """An Alembic Config built in code, pointing at ``routing/migrations`` (no ini file needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade_to_head(sync_conn: sa.Connection) -> None:
    from alembic import command

    if sync_conn.dialect.name == "postgresql":
        sync_conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    command.upgrade(alembic_config(sync_conn), "head")


# ====================================================================== the store


def _utc(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecord(f"{what} must be a timezone-aware datetime (got a naive or non-datetime value); "
                            "attach a zone, e.g. datetime.now(timezone.utc)", details={"field": what})
    return value.astimezone(UTC)


class _Plan:
    """A batch of decisions turned into row lists, ready for a few executemany statements."""

    __slots__ = ("agent_events", "agents", "call_changes", "call_events", "call_runs", "decisions", "max_seq")

    def __init__(self) -> None:
        self.agents: dict[str, dict[str, Any]] = {}  # last state per agent wins
        self.agent_events: list[dict[str, Any]] = []
        # Runs of consecutive call-state changes of one kind, kept in order: queued/offer/left touch
        # the same rows (waiting_calls, reservations), so their order matters; everything else commutes
        # (other tables, and foreign keys are checked at commit).
        self.call_runs: list[tuple[type, list[Any]]] = []
        self.decisions: list[dict[str, Any]] = []
        self.call_events: list[dict[str, Any]] = []
        self.max_seq: int | None = None
        self.call_changes: list[Any] = []  # CallQueued/Offer/CallLeft in order, to explain a refused offer

    def run(self, kind: type, item: Any) -> None:
        if self.call_runs and self.call_runs[-1][0] is kind:
            self.call_runs[-1][1].append(item)
        else:
            self.call_runs.append((kind, [item]))


def _compile(decisions: Sequence[Decision], at: datetime | None) -> _Plan:
    """Pure: validate the batch and turn it into rows. Times missing from a decision (Offer, QueueFailed,
    Overflowed carry none) come from the same step: the call's CallLeft / CallQueued, the reserved agent's
    AgentChanged, else ``at``, else the latest time in the batch, else now."""
    call_time: dict[str, datetime] = {}
    latest: datetime | None = None
    for d in decisions:
        t = None
        if isinstance(d, AgentChanged):
            t = _utc(d.state.since, "AgentChanged.state.since")
            if t is not None and d.state.call_id and d.state.status is Status.RESERVED:
                call_time[d.state.call_id] = t
        elif isinstance(d, CallLeft):
            t = _utc(d.at, "CallLeft.at")
            call_time[d.call_id] = t  # type: ignore[assignment]
        elif isinstance(d, CallQueued):
            t = _utc(d.call.entered_queue_at, "WaitingCall.entered_queue_at")
            if t is not None:
                call_time.setdefault(d.call.call_id, t)
        if t is not None and (latest is None or t > latest):
            latest = t
    batch_at = _utc(at, "at") or latest or datetime.now(UTC)

    p = _Plan()
    for d in decisions:
        if isinstance(d, AgentChanged):
            st = d.state
            if not isinstance(st.status, Status):
                raise InvalidRecord("AgentChanged.state.status must be an agents.state.Status",
                                    details={"agent": st.agent_id})
            since = _utc(st.since, "AgentChanged.state.since")
            p.agents[st.agent_id] = {
                "agent_id": st.agent_id, "status": st.status.value, "since": since, "reason": st.reason,
                "call_id": st.call_id, "idle_since": _utc(st.idle_since, "AgentChanged.state.idle_since"),
                "missed": st.missed, "calls": st.calls,
            }
            p.agent_events.append({
                "agent_id": st.agent_id, "from_status": str(getattr(d.previous, "value", d.previous)),
                "to_status": st.status.value, "reason": st.reason, "call_id": st.call_id, "cause": d.cause,
                "at": since or batch_at,
            })
        elif isinstance(d, CallQueued):
            c = d.call
            row = {
                "call_id": c.call_id, "queue": c.queue, "since": _utc(c.since, "WaitingCall.since"), "seq": c.seq,
                "priority": c.priority, "skills": [[s, lvl] for s, lvl in c.skills], "language": c.language,
                "preferred_agent": c.preferred_agent, "callback_number": c.callback_number,
                "entered_queue_at": _utc(c.entered_queue_at, "WaitingCall.entered_queue_at"),
                "offered_to": c.offered_to,
            }
            if row["since"] is None:
                raise InvalidRecord("WaitingCall.since is required", details={"call": c.call_id})
            p.run(CallQueued, row)
            p.call_changes.append(d)
            p.max_seq = c.seq if p.max_seq is None else max(p.max_seq, c.seq)
        elif isinstance(d, Offer):
            when = call_time.get(d.call_id, batch_at)
            p.run(Offer, {"call_id": d.call_id, "agent_id": d.agent_id, "offered_at": when,
                          "expires_at": _utc(d.expires_at, "Offer.expires_at")})
            p.call_changes.append(d)
            p.decisions.append({"call_id": d.call_id, "agent_id": d.agent_id, "queue": d.queue,
                                "explanation": dict(d.explanation), "at": when})
        elif isinstance(d, CallLeft):
            p.run(CallLeft, d.call_id)
            p.call_changes.append(d)
            p.call_events.append({"call_id": d.call_id, "queue": d.queue, "kind": "left", "why": d.why,
                                  "to_queue": None, "at": _utc(d.at, "CallLeft.at")})
        elif isinstance(d, QueueFailed):
            p.call_events.append({"call_id": d.call_id, "queue": d.queue, "kind": "queue_failed", "why": d.outcome,
                                  "to_queue": None, "at": call_time.get(d.call_id, batch_at)})
        elif isinstance(d, Overflowed):
            p.call_events.append({"call_id": d.call_id, "queue": d.from_queue, "kind": "overflowed",
                                  "why": "overflowed", "to_queue": d.to_queue,
                                  "at": call_time.get(d.call_id, batch_at)})
        else:
            raise InvalidRecord(f"the store does not know decision type {type(d).__name__}",
                                details={"type": type(d).__name__})
    return p


class Store:
    """Durable routing state. Open with ``await Store.open(url)``; one Store per process is the intent."""

    def __init__(self, engine: AsyncEngine, sqlite_writer: sa.Engine | None = None) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        # PostgreSQL: a snapshot's several SELECTs must see one moment. SQLite: BEGIN under WAL already does.
        self._reader = (engine.execution_options(isolation_level="REPEATABLE READ")
                        if self._dialect == "postgresql" else engine)
        # The one writer. SQLite: a single thread running whole transactions on `sqlite_writer`, in
        # submission order. PostgreSQL: the async engine under an asyncio.Lock.
        self._sqlite_writer = sqlite_writer
        self._async_writer = engine.execution_options(ivr_write=True)  # BEGIN IMMEDIATE if ever used on SQLite
        self._thread = (ThreadPoolExecutor(1, thread_name_prefix="ivr-store-writer")
                        if sqlite_writer is not None else None)
        self._lock = asyncio.Lock()
        self._closed = False
        self._build_statements()

    # ------------------------------------------------------------------ open / close

    @classmethod
    async def open(cls, url: str | None = None) -> Store:
        """Connect (``url`` None: :func:`default_url`), bring the schema to the Alembic head, and return the store."""
        raw = url or default_url()
        try:
            u = _async_url(raw)
            if u.get_backend_name() == "sqlite" and (not u.database or u.database == ":memory:"
                                                     or "mode=memory" in str(u)):
                raise StoreError("the routing store needs a SQLite file, not an in-memory database: its writer "
                                 "and readers use separate connections (and state must survive a restart)",
                                 details={"url": _safe_url(raw)})
            engine = make_engine(u)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot use database URL {_safe_url(raw)}: {exc.__class__.__name__}",
                             details={"url": _safe_url(raw)}) from exc
        try:
            async with engine.execution_options(ivr_write=True).begin() as conn:
                await conn.run_sync(_upgrade_to_head)
        except (DBAPIError, OSError) as exc:  # asyncpg reports a refused connection as a plain OSError
            await engine.dispose()
            cause = type(getattr(exc, "orig", None) or exc).__name__
            raise StoreUnavailable(f"cannot open the routing store at {_safe_url(raw)} ({cause}); "
                                   "check the URL, that the server runs, and permissions",
                                   details={"url": _safe_url(raw)}) from exc
        except Exception as exc:
            await engine.dispose()
            raise MigrationFailed(f"bringing the routing store at {_safe_url(raw)} to the latest schema failed "
                                  f"({type(exc).__name__})", details={"url": _safe_url(raw)}) from exc
        except BaseException:
            await engine.dispose()
            raise
        writer = _make_sqlite_writer(raw) if engine.dialect.name == "sqlite" else None
        log.info("routing store open at %s (schema %s)", _safe_url(raw), head_revision())
        return cls(engine, writer)

    async def close(self) -> None:
        """Finish the writes already handed over, then release every connection."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._sqlite_writer is not None:
            await asyncio.wrap_future(self._thread.submit(self._sqlite_writer.dispose))  # after queued writes
            self._thread.shutdown(wait=False)
        else:
            async with self._lock:
                pass
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def dialect(self) -> str:
        return self._dialect

    @property
    def engine(self) -> AsyncEngine:
        """The async engine, for tests and tooling that read the tables directly. Writes belong in
        :meth:`apply` / :meth:`update_agent`: anything else bypasses the one writer."""
        return self._engine

    # ------------------------------------------------------------------ writes

    async def apply(self, decisions: Sequence[Decision], *, at: datetime | None = None) -> None:
        """Persist one batch (one routing step) in ONE write transaction: all of it or, on error, none of it.

        ``at`` is the step's time, used for decisions that carry none (Offer, QueueFailed, Overflowed) when
        the batch itself does not say (see :func:`_compile`). Raises :class:`DoubleAssignment` when the
        database refuses an Offer, :class:`StoreIntegrityError`, :class:`InvalidRecord`,
        :class:`StoreUnavailable`.
        """
        if not decisions:
            return
        plan = _compile(decisions, at)
        await self._write(lambda conn: self._execute(conn, plan), plan)

    async def record_call(self, record: CallRecord) -> None:
        """Write a finished call's record (written again for the same call id, the newer record wins)."""
        row = record._asdict()
        for k in ("started_at", "ended_at", "queued_at", "answered_at", "agent_ended_at"):
            _utc(row[k], k)

        def body(conn: sa.Connection) -> None:
            conn.execute(self._upsert_call_record, row)

        await self._write(body, None)

    async def call_records(self, call_id: str | None = None) -> list[CallRecord]:
        """Finished calls, oldest first (or the one ``call_id``)."""
        t = call_records_t
        q = sa.select(*(t.c[f] for f in CallRecord._fields)).order_by(t.c.started_at, t.c.call_id)
        if call_id is not None:
            q = q.where(t.c.call_id == call_id)
        return [CallRecord(*r) for r in await self._read(q)]

    async def set_agent_state(self, state: AgentState, previous: str, cause: str) -> None:
        """Record one agent state change (same as ``apply([AgentChanged(state, previous, cause)])``)."""
        await self.apply([AgentChanged(state, previous, cause)])

    async def update_agent(self, agent_id: str, change: Callable[[AgentState], AgentState], *,
                           cause: str) -> AgentState:
        """Read-modify-write of one agent inside one write transaction; returns the new state.

        ``change`` gets the stored state (``AgentState(agent_id)`` when there is none) and returns the new one;
        keep it pure and quick (on SQLite it runs on the writer thread). The read happens after
        ``BEGIN IMMEDIATE`` (SQLite) / with ``FOR UPDATE`` (PostgreSQL), by the store's one writer, so
        concurrent updates from tasks, Store objects or processes are never lost.
        """

        def body(conn: sa.Connection) -> AgentState:
            row = conn.execute(self._select_agent_for_update, {"agent_id": agent_id}).first()
            old = _agent_from_row(row) if row is not None else AgentState(agent_id)
            new = change(old)
            if new.agent_id != agent_id:
                raise InvalidRecord("update_agent's change must keep the agent id", details={"agent": agent_id})
            self._execute(conn, _compile([AgentChanged(new, old.status.value, cause)], None))
            return new

        return await self._write(body, None)

    async def _write(self, body: Callable[[sa.Connection], Any], plan: _Plan | None) -> Any:
        """The one write path: one transaction running ``body`` (sync Core on a sync connection), errors translated.

        Shielded: once handed over, a write runs to its commit or rollback even if the caller is cancelled
        (a statement in a driver thread cannot be interrupted halfway anyway); the caller still sees the cancel.
        """
        self._check_open()
        if self._thread is not None:
            fut: asyncio.Future[Any] = asyncio.wrap_future(self._thread.submit(self._write_sqlite, body, plan))
        else:
            fut = asyncio.ensure_future(self._write_async(body, plan))
        fut.add_done_callback(_retrieve)
        return await asyncio.shield(fut)

    def _write_sqlite(self, body: Callable[[sa.Connection], Any], plan: _Plan | None) -> Any:
        """On the writer thread: BEGIN IMMEDIATE, body, COMMIT (or ROLLBACK): one hop from the event loop."""
        assert self._sqlite_writer is not None
        try:
            with self._sqlite_writer.begin() as conn:
                return body(conn)
        except IntegrityError as exc:
            held = None
            if plan is not None and _is_double_assignment(exc):
                try:
                    with self._sqlite_writer.connect() as conn:
                        held = _held_reservations(conn, plan)
                except SQLAlchemyError:
                    pass
            raise _integrity_error(exc, plan, held) from exc
        except DBAPIError as exc:
            raise _unavailable(exc, "writing routing state") from exc
        except sa.exc.StatementError as exc:  # a bound value failed its column type's processing
            raise InvalidRecord(f"a value could not be stored ({type(exc.orig).__name__})") from exc

    async def _write_async(self, body: Callable[[sa.Connection], Any], plan: _Plan | None) -> Any:
        async with self._lock:
            try:
                async with self._async_writer.begin() as conn:
                    return await conn.run_sync(body)
            except IntegrityError as exc:
                held = None
                if plan is not None and _is_double_assignment(exc):
                    try:
                        async with self._engine.connect() as conn:
                            held = await conn.run_sync(_held_reservations, plan)
                    except SQLAlchemyError:
                        pass
                raise _integrity_error(exc, plan, held) from exc
            except DBAPIError as exc:
                raise _unavailable(exc, "writing routing state") from exc
            except sa.exc.StatementError as exc:
                raise InvalidRecord(f"a value could not be stored ({type(exc.orig).__name__})") from exc

    def _execute(self, conn: sa.Connection, p: _Plan) -> None:
        """A compiled batch as a few executemany statements (sync Core: run on the writer thread or via run_sync)."""
        if p.agents:
            conn.execute(self._upsert_agent, list(p.agents.values()))
        if p.agent_events:
            conn.execute(self._insert_agent_event, p.agent_events)
        for kind, items in p.call_runs:
            if kind is CallQueued:
                last = {row["call_id"]: row for row in items}  # one upsert per row in one statement
                conn.execute(self._upsert_waiting, list(last.values()))
                conn.execute(self._delete_reservations, {"ids": list(last)})
            elif kind is Offer:
                conn.execute(self._insert_reservation, items)
                conn.execute(self._set_offered_to, [{"b_call": r["call_id"], "b_agent": r["agent_id"]} for r in items])
            else:  # CallLeft
                ids = list(dict.fromkeys(items))
                conn.execute(self._delete_reservations, {"ids": ids})
                conn.execute(self._delete_waiting, {"ids": ids})
        if p.decisions:
            conn.execute(self._insert_decision, p.decisions)
        if p.call_events:
            conn.execute(self._insert_call_event, p.call_events)
        if p.max_seq is not None:
            conn.execute(self._bump_seq, {"key": "next_seq", "value": p.max_seq + 1})

    # ------------------------------------------------------------------ reads

    async def snapshot(self) -> Snapshot:
        """Agents, waiting calls (queue order), reservations and the next sequence number, from one consistent read."""
        self._check_open()
        try:
            async with self._reader.connect() as conn, conn.begin():
                agent_rows = (await conn.execute(sa.select(agent_states_t).order_by(agent_states_t.c.agent_id))).all()
                w = waiting_calls_t
                call_rows = (await conn.execute(
                    sa.select(w).order_by(w.c.priority.desc(), w.c.since, w.c.seq, w.c.call_id))).all()
                r = reservations_t
                res_rows = (await conn.execute(sa.select(r).order_by(r.c.offered_at, r.c.call_id))).all()
                meta = (await conn.execute(sa.select(router_meta_t.c.value)
                                           .where(router_meta_t.c.key == "next_seq"))).scalar()
        except DBAPIError as exc:
            raise _unavailable(exc, "reading the routing snapshot") from exc
        agents = {row.agent_id: _agent_from_row(row) for row in agent_rows}
        waiting = [WaitingCall(
            row.call_id, row.queue, row.since, row.seq, row.priority,
            tuple((str(s), int(lvl)) for s, lvl in (row.skills or ())), row.language, row.preferred_agent,
            row.callback_number, row.entered_queue_at, row.offered_to) for row in call_rows]
        reservations = [Reservation(row.call_id, row.agent_id, row.offered_at, row.expires_at) for row in res_rows]
        next_seq = max([meta or 0] + [c.seq + 1 for c in waiting])
        return Snapshot(agents, waiting, reservations, next_seq)

    async def agent_events(self, agent_id: str | None = None, since: datetime | None = None) -> list[AgentEvent]:
        """Every recorded transition, oldest first (optionally of one agent, at or after ``since``)."""
        t = agent_events_t
        q = sa.select(t).order_by(t.c.id)
        if agent_id is not None:
            q = q.where(t.c.agent_id == agent_id)
        if since is not None:
            q = q.where(t.c.at >= _utc(since, "since"))
        rows = await self._read(q)
        return [AgentEvent(r.id, r.agent_id, r.from_status, r.to_status, r.reason, r.call_id, r.cause, r.at)
                for r in rows]

    async def call_events(self, call_id: str | None = None) -> list[CallEvent]:
        t = call_events_t
        q = sa.select(t).order_by(t.c.id)
        if call_id is not None:
            q = q.where(t.c.call_id == call_id)
        rows = await self._read(q)
        return [CallEvent(r.id, r.call_id, r.queue, r.kind, r.why, r.to_queue, r.at) for r in rows]

    async def explanations(self, call_id: str) -> list[dict[str, Any]]:
        """The routing explanation recorded with each Offer of ``call_id``, in order."""
        t = routing_decisions_t
        rows = await self._read(sa.select(t.c.explanation).where(t.c.call_id == call_id).order_by(t.c.id))
        return [r.explanation for r in rows]

    async def _read(self, query: sa.Select[Any]) -> list[Any]:
        self._check_open()
        try:
            async with self._engine.connect() as conn:
                return list((await conn.execute(query)).all())
        except DBAPIError as exc:
            raise _unavailable(exc, "reading routing state") from exc

    # ------------------------------------------------------------------ statements, built once

    def _build_statements(self) -> None:
        ins = _dialect_insert(self._dialect)
        a = ins(agent_states_t)
        self._upsert_agent = a.on_conflict_do_update(
            index_elements=[agent_states_t.c.agent_id],
            set_={c.name: a.excluded[c.name] for c in agent_states_t.c if c.name != "agent_id"})
        self._insert_agent_event = sa.insert(agent_events_t)
        w = ins(waiting_calls_t)
        self._upsert_waiting = w.on_conflict_do_update(
            index_elements=[waiting_calls_t.c.call_id],
            set_={c.name: w.excluded[c.name] for c in waiting_calls_t.c if c.name != "call_id"})
        self._delete_reservations = sa.delete(reservations_t).where(
            reservations_t.c.call_id.in_(sa.bindparam("ids", expanding=True)))
        self._delete_waiting = sa.delete(waiting_calls_t).where(
            waiting_calls_t.c.call_id.in_(sa.bindparam("ids", expanding=True)))
        self._insert_reservation = sa.insert(reservations_t)
        self._set_offered_to = (sa.update(waiting_calls_t)
                                .where(waiting_calls_t.c.call_id == sa.bindparam("b_call"))
                                .values(offered_to=sa.bindparam("b_agent")))
        self._insert_decision = sa.insert(routing_decisions_t)
        self._insert_call_event = sa.insert(call_events_t)
        cr = ins(call_records_t)
        self._upsert_call_record = cr.on_conflict_do_update(
            index_elements=[call_records_t.c.call_id],
            set_={c.name: cr.excluded[c.name] for c in call_records_t.c if c.name != "call_id"})
        m = ins(router_meta_t)
        self._bump_seq = m.on_conflict_do_update(
            index_elements=[router_meta_t.c.key],
            set_={"value": sa.case((m.excluded.value > router_meta_t.c.value, m.excluded.value),
                                   else_=router_meta_t.c.value)})
        self._select_agent_for_update = (sa.select(agent_states_t)
                                         .where(agent_states_t.c.agent_id == sa.bindparam("agent_id"))
                                         .with_for_update())

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the routing store is closed; open a new one with Store.open()")


def _is_double_assignment(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "reservations" in text and ("unique" in text or "duplicate key" in text)


def _held_reservations(conn: sa.Connection, plan: _Plan) -> tuple[dict[str, str], dict[str, str]]:
    """The reservations the database holds now for the calls and agents of the batch's offers."""
    offers = [d for d in plan.call_changes if isinstance(d, Offer)]
    t = reservations_t
    rows = conn.execute(sa.select(t.c.call_id, t.c.agent_id).where(sa.or_(
        t.c.call_id.in_([o.call_id for o in offers]), t.c.agent_id.in_([o.agent_id for o in offers]))))
    by_call: dict[str, str] = {}
    by_agent: dict[str, str] = {}
    for call_id, agent_id in rows:
        by_call[call_id], by_agent[agent_id] = agent_id, call_id
    return by_call, by_agent


def _integrity_error(exc: IntegrityError, plan: _Plan | None,
                     held: tuple[dict[str, str], dict[str, str]] | None) -> StoreError:
    """Translate a refused batch. For a double assignment, name the offer: replay the batch's call-state
    changes over the reservations held before it (``held``) to find the first offer that collides."""
    text = str(exc.orig).lower()
    if plan is None or not _is_double_assignment(exc):
        kind = "foreign key" if "foreign key" in text else "constraint"
        return StoreIntegrityError(
            f"the database refused the batch ({kind} failed: {_constraint_hint(text)}); nothing was written. "
            "An Offer needs its call queued (CallQueued) and its agent known (AgentChanged) first",
            details={"constraint": _constraint_hint(text)})
    by_call, by_agent = (dict(held[0]), dict(held[1])) if held else ({}, {})
    for d in plan.call_changes:
        if isinstance(d, (CallQueued, CallLeft)):
            cid = d.call.call_id if isinstance(d, CallQueued) else d.call_id
            was = by_call.pop(cid, None)
            if was is not None:
                by_agent.pop(was, None)
            continue
        if d.call_id in by_call or d.agent_id in by_agent:
            held_agent = by_call.get(d.call_id)
            held_call = by_agent.get(d.agent_id)
            why = (f"agent {d.agent_id} already holds call {held_call}" if held_call is not None
                   else f"call {d.call_id} is already ringing agent {held_agent}")
            return DoubleAssignment(
                f"the database refused offering call {d.call_id} to agent {d.agent_id}: {why}; "
                "the whole batch was rolled back",
                details={"call": d.call_id, "agent": d.agent_id, "held_call": held_call, "held_agent": held_agent})
        by_call[d.call_id], by_agent[d.agent_id] = d.agent_id, d.call_id
    first = next((d for d in plan.call_changes if isinstance(d, Offer)), None)
    return DoubleAssignment(
        "the database refused an offer: an agent would hold two calls or a call ring two agents; "
        "the whole batch was rolled back",
        details={"call": first.call_id if first else None, "agent": first.agent_id if first else None})


def _agent_from_row(row: Any) -> AgentState:
    return AgentState(row.agent_id, Status(row.status), row.since, row.reason, row.call_id, row.idle_since,
                      row.missed, row.calls)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """A shielded write whose caller was cancelled still reports its failure (by error id only: no PHI)."""
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.debug("routing store write ended with %s", getattr(exc, "error_id", type(exc).__name__))


def _unavailable(exc: DBAPIError, doing: str) -> StoreUnavailable:
    reason = "the database stayed locked past busy_timeout" if "locked" in str(exc.orig).lower() \
        else f"{type(exc.orig).__name__}"
    return StoreUnavailable(f"{doing} failed: {reason}; the batch was not written", details={"cause": reason})


def _constraint_hint(text: str) -> str:
    """The constraint or table named in a driver message, without any values it may quote."""
    for marker in ("constraint failed:", 'constraint "'):
        if marker in text:
            return text.split(marker, 1)[1].split("\n", 1)[0].strip().strip('"').split('"')[0][:80]
    return "unknown"


def _safe_url(url: str | URL) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"
