"""job_run.attempts: a daily job cut off by a crash is run again by the next leader (issue 13)

Revision ID: 0008_jobretry
Revises: 0008_prod
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_jobretry"
down_revision = "0008_prod"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_run") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("job_run") as batch:
        batch.drop_column("attempts")
