"""queue and search: the console's queue indexes, spam, and the tickets' full-text index

- ``ticket.last_customer_at`` / ``ticket.last_replied_at``: the customer's latest verified
  message and the agents' latest reply (back-filled from the messages), for the queue's
  "waiting on the customer" and "customer replied".
- ``ticket.spam``: marked as spam by an agent.
- indexes for the queue: (status, created_at, id), (created_at, id),
  (assignee_id, created_at, id), and (created_at, id) of unfinished tickets only (a partial
  index: the default queue).
- ``ticket_search``: one search document per ticket (``helpdesk.tickets.search``). On
  SQLite an FTS5 virtual table (rowid = ticket id); on PostgreSQL a table holding a
  ``tsvector`` with a GIN index. Neither is a model (SQLModel cannot describe them);
  ``tests/test_migrations_schema.py`` leaves them out of the comparison. Filled when the
  app starts for tickets that have no document (``TicketService.backfill_search``) and
  rebuilt by ``main.py tickets reindex``.

Revision ID: 0008_queue
Revises: 0008_ticketpage
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_queue"
down_revision = "0008_ticketpage"
branch_labels = None
depends_on = None

# helpdesk.models.ACTIVE_STATUS_SQL when this was written (the default queue's condition).
ACTIVE = "status IN ('new', 'open', 'pending')"


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_customer_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("last_replied_at", sa.DateTime(timezone=True)))
        batch_op.add_column(
            sa.Column("spam", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_ticket_spam"), ["spam"], unique=False)
        batch_op.create_index("ix_ticket_queue", ["status", "created_at", "id"], unique=False)
        batch_op.create_index("ix_ticket_created", ["created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_ticket_active",
            ["created_at", "id"],
            unique=False,
            sqlite_where=sa.text(ACTIVE),
            postgresql_where=sa.text(ACTIVE),
        )
        batch_op.create_index(
            "ix_ticket_assignee_queue", ["assignee_id", "created_at", "id"], unique=False
        )
    op.execute(
        "UPDATE ticket SET"
        " last_customer_at = (SELECT MAX(message.created_at) FROM message"
        " WHERE message.ticket_id = ticket.id AND message.author = 'customer'"
        " AND message.trust = 'verified'),"
        " last_replied_at = (SELECT MAX(message.created_at) FROM message"
        " WHERE message.ticket_id = ticket.id AND message.author = 'agent')"
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE ticket_search USING fts5(terms,"
            " tokenize = \"unicode61 remove_diacritics 0 tokenchars '-@._+'\")"
        )
    else:
        op.execute(
            "CREATE TABLE ticket_search (ticket_id INTEGER PRIMARY KEY"
            " REFERENCES ticket (id) ON DELETE CASCADE, document TSVECTOR NOT NULL)"
        )
        op.execute("CREATE INDEX ix_ticket_search_document ON ticket_search USING gin (document)")


def downgrade() -> None:
    op.execute("DROP TABLE ticket_search")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_assignee_queue")
        batch_op.drop_index("ix_ticket_active")
        batch_op.drop_index("ix_ticket_created")
        batch_op.drop_index("ix_ticket_queue")
        batch_op.drop_index(batch_op.f("ix_ticket_spam"))
        batch_op.drop_column("spam")
        batch_op.drop_column("last_replied_at")
        batch_op.drop_column("last_customer_at")
