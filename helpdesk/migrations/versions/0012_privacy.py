"""privacy (issue 12): requests and their erasure/export tasks, the privacy audit log,
and the indexes an erasure needs to stay as fast in a large database as in a small one.

- ``privacy_request``: a customer's confirmed request (a copy or an erasure) and the
  persisted task carrying it out (state, preview, progress, cursor, photo files left).
- ``privacy_audit``: privacy actions with ids, hashes and counts only.
- indexes on ``attachment.message_id``, ``message.sender``, ``inbound_mail.from_address``
  and ``envelope_from``, ``ticket_event.actor``: an erasure's queries use indexes only.

Revision ID: 0008_privacy
Revises: 0008_kbedit
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_privacy"
down_revision = "0008_kbedit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("preview", sa.Text(), nullable=False),
        sa.Column("progress", sa.Text(), nullable=False),
        sa.Column("cursor", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pending_digests", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("export_file", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.create_index("ix_privacy_request_state", ["state"], unique=False)
        batch_op.create_index("ix_privacy_request_customer_id", ["customer_id"], unique=False)
        batch_op.create_index("ix_privacy_request_ticket_id", ["ticket_id"], unique=False)

    op.create_table(
        "privacy_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("subject_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("privacy_audit", schema=None) as batch_op:
        batch_op.create_index("ix_privacy_audit_action", ["action"], unique=False)
        batch_op.create_index("ix_privacy_audit_subject_hash", ["subject_hash"], unique=False)

    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.create_index("ix_attachment_message_id", ["message_id"], unique=False)
    with op.batch_alter_table("inbound_mail", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_mail_from_address", ["from_address"], unique=False)
        batch_op.create_index("ix_inbound_mail_envelope_from", ["envelope_from"], unique=False)
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_sender", ["sender"], unique=False)
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_event_actor", ["actor"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_event_actor")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_sender")
    with op.batch_alter_table("inbound_mail", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_mail_envelope_from")
        batch_op.drop_index("ix_inbound_mail_from_address")
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_index("ix_attachment_message_id")
    op.drop_table("privacy_audit")
    op.drop_table("privacy_request")
