"""replies: saved replies (テンプレート) and replies waiting for approval (issue 10 #6, #7)

- ``saved_reply``: texts agents insert in the reply box, with placeholders; admins edit them.
- ``pending_reply``: replies of agents who need approval (``agent.needs_approval``, added by
  0006), kept until an admin approves or rejects them; never in the outbox before.

Revision ID: 0008_replies
Revises: 0008_privacy
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_replies"
down_revision = "0008_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("title"),
    )
    op.create_table(
        "pending_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("submission_key", sqlmodel.sql.sqltypes.AutoString(length=250), nullable=True),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agent.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("submission_key"),
    )
    op.create_index("ix_pending_reply_agent_id", "pending_reply", ["agent_id"], unique=False)
    op.create_index("ix_pending_reply_state", "pending_reply", ["state"], unique=False)
    op.create_index("ix_pending_reply_ticket_id", "pending_reply", ["ticket_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_pending_reply_ticket_id", table_name="pending_reply")
    op.drop_index("ix_pending_reply_state", table_name="pending_reply")
    op.drop_index("ix_pending_reply_agent_id", table_name="pending_reply")
    op.drop_table("pending_reply")
    op.drop_table("saved_reply")
