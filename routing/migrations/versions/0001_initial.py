"""The routing store: agents' live states and transitions, waiting calls, reservations, decisions, call events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Written by hand (not imported from routing.store) so that it keeps describing the schema of
revision 0001 whatever the models become later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'logged_out', 'ready', 'not_ready', 'reserved', 'on_call', 'wrap_up'"
CALL_EVENT_KINDS = "'left', 'queue_failed', 'overflowed'"


def _ts() -> sa.DateTime:
    """TIMESTAMP WITH TIME ZONE on PostgreSQL; on SQLite naive UTC text (the store re-attaches UTC)."""
    return sa.DateTime(timezone=True)


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid


def _json() -> sa.types.TypeEngine:
    return sa.JSON()  # json (not jsonb) on PostgreSQL: keeps key order as written


def upgrade() -> None:
    op.create_table(
        "agent_states",
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", _ts()),
        sa.Column("reason", sa.String(32)),
        sa.Column("call_id", sa.String(128)),
        sa.Column("idle_since", _ts()),
        sa.Column("missed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("agent_id", name="pk_agent_states"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_agent_states_status"),
        sa.CheckConstraint("missed >= 0 AND calls >= 0", name="ck_agent_states_counters"),
    )
    op.create_table(
        "agent_events",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32)),
        sa.Column("call_id", sa.String(128)),
        sa.Column("cause", sa.String(64), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_events"),
        sa.ForeignKeyConstraint(["agent_id"], ["agent_states.agent_id"], name="fk_agent_events_agent_id_agent_states",
                                deferrable=True, initially="DEFERRED"),
    )
    op.create_index("ix_agent_events_agent_id_at", "agent_events", ["agent_id", "at"])
    op.create_index("ix_agent_events_at", "agent_events", ["at"])
    op.create_table(
        "waiting_calls",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("since", _ts(), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skills", _json(), nullable=False),
        sa.Column("language", sa.String(16)),
        sa.Column("preferred_agent", sa.String(64)),
        sa.Column("callback_number", sa.String(32)),
        sa.Column("entered_queue_at", _ts()),
        sa.Column("offered_to", sa.String(64)),
        sa.PrimaryKeyConstraint("call_id", name="pk_waiting_calls"),
    )
    op.create_index("ix_waiting_calls_queue_priority_since_seq", "waiting_calls",
                    ["queue", "priority", "since", "seq"])
    op.create_table(
        "reservations",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("offered_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_reservations"),
        sa.UniqueConstraint("agent_id", name="uq_reservations_agent_id"),
        sa.ForeignKeyConstraint(["call_id"], ["waiting_calls.call_id"], name="fk_reservations_call_id_waiting_calls",
                                ondelete="CASCADE", deferrable=True, initially="DEFERRED"),
        sa.ForeignKeyConstraint(["agent_id"], ["agent_states.agent_id"], name="fk_reservations_agent_id_agent_states",
                                deferrable=True, initially="DEFERRED"),
    )
    op.create_table(
        "routing_decisions",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("explanation", _json(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routing_decisions"),
    )
    op.create_index("ix_routing_decisions_call_id_id", "routing_decisions", ["call_id", "id"])
    op.create_table(
        "call_events",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("why", sa.String(32), nullable=False),
        sa.Column("to_queue", sa.String(64)),
        sa.Column("at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_call_events"),
        sa.CheckConstraint(f"kind IN ({CALL_EVENT_KINDS})", name="ck_call_events_kind"),
    )
    op.create_index("ix_call_events_call_id_id", "call_events", ["call_id", "id"])
    op.create_table(
        "router_meta",
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_router_meta"),
    )


def downgrade() -> None:
    for table in ("router_meta", "call_events", "routing_decisions", "reservations", "waiting_calls",
                  "agent_events", "agent_states"):
        op.drop_table(table)
