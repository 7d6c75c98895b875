"""production runtime: leader heartbeat, daily job runs, shared rate limits (issue 13)

- ``leader_heartbeat``: the process running background work reports itself here
  (``/readyz`` checks that it is recent).
- ``job_run``: one row per daily job and day, inserted before the job runs.
- ``rate_counter``: rate-limit hits per key and fixed window, shared by workers.
- ``login_failure``: failed logins per key, shared by workers.

Revision ID: 0008_prod
Revises: 0008_replies
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_prod"
down_revision = "0008_replies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leader_heartbeat",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "job_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "day", name="uq_job_run_name_day"),
    )
    op.create_table(
        "rate_counter",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start"),
    )
    op.create_index("ix_rate_counter_expires_at", "rate_counter", ["expires_at"])
    op.create_table(
        "login_failure",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_login_failure_last_at", "login_failure", ["last_at"])


def downgrade() -> None:
    op.drop_index("ix_login_failure_last_at", table_name="login_failure")
    op.drop_table("login_failure")
    op.drop_index("ix_rate_counter_expires_at", table_name="rate_counter")
    op.drop_table("rate_counter")
    op.drop_table("job_run")
    op.drop_table("leader_heartbeat")
