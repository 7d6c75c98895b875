"""calendar: first-reply due time and first reply of tickets; satisfaction surveys (issue 11)

- ``ticket.first_reply_due_at``: when the first reply is due in the support calendar's
  business hours. Left NULL here: the calendar is the shop's ``data/shop.toml``, which a
  migration does not read; the app fills it in at start for tickets that have none
  (``TicketService.backfill_first_reply_due``), from their creation time.
- ``ticket.first_replied_at``: back-filled with each ticket's first agent reply (messages
  by ``agent``; notes are ``note`` and do not count).
- an index over both, for the queue's "overdue" and "due today".
- ``csat_response``: one survey per resolution of a ticket and the customer's answer.

Revision ID: 0007
Revises: 0006_console
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("first_reply_due_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("first_replied_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_ticket_first_reply", ["first_replied_at", "first_reply_due_at"], unique=False
        )
    op.execute(
        "UPDATE ticket SET first_replied_at = (SELECT MIN(message.created_at) FROM message"
        " WHERE message.ticket_id = ticket.id AND message.author = 'agent')"
    )

    op.create_table(
        "csat_response",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("rating", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("mailed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agent.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "resolution", name="uq_csat_response_ticket_resolution"),
    )
    with op.batch_alter_table("csat_response", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_csat_response_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_csat_response_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_csat_response_ticket_id"), ["ticket_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("csat_response", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_csat_response_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_csat_response_created_at"))
        batch_op.drop_index(batch_op.f("ix_csat_response_agent_id"))
    op.drop_table("csat_response")

    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_first_reply")
        batch_op.drop_column("first_replied_at")
        batch_op.drop_column("first_reply_due_at")
