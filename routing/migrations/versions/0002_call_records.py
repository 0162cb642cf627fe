"""Finished calls, one row each, written by the live adapters (the KPIs' source). No PHI columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "call_records",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("tree", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("ended_at", _ts(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(64)),
        sa.Column("agent_id", sa.String(64)),
        sa.Column("queued_at", _ts()),
        sa.Column("answered_at", _ts()),
        sa.Column("agent_ended_at", _ts()),
        sa.Column("ended_by", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_call_records"),
    )
    op.create_index("ix_call_records_started_at", "call_records", ["started_at"])


def downgrade() -> None:
    op.drop_table("call_records")
