"""kbedit: the knowledge base edited in the console, and its version (issue 11)

- ``faq_revision``: every saved state of an FAQ entry, a category or the synonyms, with
  who saved it and what changed; the latest revision of a key overrides ``data/``.
- ``faq_kb_version``: one row whose number every worker polls to rebuild its index.

Revision ID: 0008_kbedit
Revises: 0008_queue
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_kbedit"
down_revision = "0008_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "faq_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("changes", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("agent_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agent.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("faq_revision", schema=None) as batch_op:
        batch_op.create_index("ix_faq_revision_key", ["kind", "key", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_faq_revision_source"), ["source"], unique=False)

    version = op.create_table(
        "faq_kb_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(version.insert().values(id=1, version=0, updated_at=sa.func.current_timestamp()))


def downgrade() -> None:
    op.drop_table("faq_kb_version")
    with op.batch_alter_table("faq_revision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_faq_revision_source"))
        batch_op.drop_index("ix_faq_revision_key")
    op.drop_table("faq_revision")
