"""insights: daily rollups, daily FAQ counters, indexes for a day's tickets and gaps (issue 11)

- ``faq_daily``: questions asked and answered per day (Japan), forms with suggestions.
- ``insight_day``: the days whose rollups are complete (closed days, computed once).
- ``insight_tickets``: tickets created and first replied per day and kind.
- ``insight_reply_time``: first replies per day and kind by business minutes (a histogram).
- ``insight_gap``: unanswered FAQ questions per day by normalized text.
- indexes for the insights' queries, so that they read indexes alone:
  ``ix_ticket_created_kind`` (ticket: created_at, kind), ``ix_ticket_awaiting`` (ticket:
  status, first_replied_at, first_reply_due_at: the overdue count), ``ix_faq_gap_created_at``
  and ``ix_csat_response_tally`` (csat_response: created_at, kind, agent_id, rating).

Nothing is back-filled here: the rollups of past days are computed by the app when a range
is first shown (``helpdesk.insights.rollup``); the FAQ's counters start from zero (the
questions were not counted before).

Revision ID: 0008_insights
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_insights"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "faq_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("asked", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("suggested", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "insight_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "insight_tickets",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("sent_after_suggestions", sa.Integer(), nullable=False),
        sa.Column("replied", sa.Integer(), nullable=False),
        sa.Column("replied_late", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "kind"),
    )
    op.create_table(
        "insight_reply_time",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "kind", "minutes"),
    )
    op.create_table(
        "insight_gap",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sample", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.PrimaryKeyConstraint("day", "key"),
    )
    with op.batch_alter_table("insight_gap", schema=None) as batch_op:
        batch_op.create_index("ix_insight_gap_key_day", ["key", "day", "count"], unique=False)
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_created_kind", ["created_at", "kind"], unique=False)
        batch_op.create_index(
            "ix_ticket_awaiting",
            ["status", "first_replied_at", "first_reply_due_at"],
            unique=False,
        )
    with op.batch_alter_table("faq_gap", schema=None) as batch_op:
        batch_op.create_index("ix_faq_gap_created_at", ["created_at"], unique=False)
    with op.batch_alter_table("csat_response", schema=None) as batch_op:
        batch_op.create_index(
            "ix_csat_response_tally", ["created_at", "kind", "agent_id", "rating"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("csat_response", schema=None) as batch_op:
        batch_op.drop_index("ix_csat_response_tally")
    with op.batch_alter_table("faq_gap", schema=None) as batch_op:
        batch_op.drop_index("ix_faq_gap_created_at")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_awaiting")
        batch_op.drop_index("ix_ticket_created_kind")
    with op.batch_alter_table("insight_gap", schema=None) as batch_op:
        batch_op.drop_index("ix_insight_gap_key_day")
    op.drop_table("insight_gap")
    op.drop_table("insight_reply_time")
    op.drop_table("insight_tickets")
    op.drop_table("insight_day")
    op.drop_table("faq_daily")
