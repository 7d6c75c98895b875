"""mail loop: message trust, sender and mail id; inbound attempts and retry time

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:00:00

Messages get ``trust`` (only "verified" ones reach the customer), ``sender`` and
``mail_id`` (the Message-ID that carried them, for threading). Inbound mail gets
``attempts`` (processing runs started) and ``next_attempt_at`` (lease or retry time).
Existing rows stay as they were: messages verified, mail with no attempts counted.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "trust",
                sqlmodel.sql.sqltypes.AutoString(length=20),
                server_default="verified",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True)
        )
        batch_op.add_column(
            sa.Column("mail_id", sqlmodel.sql.sqltypes.AutoString(length=250), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_message_mail_id"), ["mail_id"], unique=False)

    with op.batch_alter_table("inbound_mail", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_mail", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")

    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_mail_id"))
        batch_op.drop_column("mail_id")
        batch_op.drop_column("sender")
        batch_op.drop_column("trust")
