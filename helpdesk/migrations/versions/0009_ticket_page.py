"""ticket page: merged tickets, who has a ticket open, mailed replies held (issue 10)

- ``ticket.merged_into_id``: a duplicate merged into another ticket points at it.
- ``ticket_presence``: one row per ticket and agent with the page open (viewing or typing).
- ``held_reply``: an agent's mailed reply held because another agent answered meanwhile.

Revision ID: 0008_ticketpage
Revises: 0008_insights
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_ticketpage"
down_revision = "0008_insights"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_ticket_merged_into_id_ticket", "ticket", ["merged_into_id"], ["id"]
        )

    op.create_table(
        "ticket_presence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agent.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "agent_id", name="uq_ticket_presence"),
    )
    with op.batch_alter_table("ticket_presence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_presence_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "held_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("commands", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agent.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("held_reply", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_held_reply_ticket_id"), ["ticket_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("held_reply", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_held_reply_ticket_id"))
    op.drop_table("held_reply")
    with op.batch_alter_table("ticket_presence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_presence_ticket_id"))
    op.drop_table("ticket_presence")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_constraint("fk_ticket_merged_into_id_ticket", type_="foreignkey")
        batch_op.drop_column("merged_into_id")
