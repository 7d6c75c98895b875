"""console: agents' accounts (role, password, one-time link, sessions, disabling, removal)

Revision ID: 0006_console
Revises: 0005
Create Date: 2026-12-01 16:00:00

Agents get a ``role`` (agent or admin), an argon2 ``password_hash``, the hash and expiry of
their one-time password link, a ``session_version`` that ends their sessions when bumped,
``disabled_at``, ``removed_at`` and ``needs_approval``. Existing agents become plain agents
with no password (they act by mail as before until they are sent a link).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006_console"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "role",
                sqlmodel.sql.sqltypes.AutoString(length=20),
                server_default="agent",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "password_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("password_token_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("needs_approval", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_agent_password_token_hash"), ["password_token_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_agent_password_token_hash"), type_="unique")
        batch_op.drop_column("needs_approval")
        batch_op.drop_column("removed_at")
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("session_version")
        batch_op.drop_column("password_token_expires_at")
        batch_op.drop_column("password_token_hash")
        batch_op.drop_column("password_hash")
        batch_op.drop_column("role")
