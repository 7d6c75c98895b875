"""ticket names, submission fingerprints, the origin of automatic mail (issue 7, hardening)

- ``ticket.customer_name``: the name given with each ticket, back-filled from the customer's
  name, with anything link-looking cut out (a name must never become a link in our mails).
- ``ticket.submission_fingerprint``, ``message.submission_fingerprint``: what a submission
  held; a repeated submission key must come with the same content.
- ``outbox.origin`` and an index on ``outbox.to_address``: the hourly cap on automatic mail
  counts per address and origin.

Revision ID: 0004
Revises: 0003_photos
"""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003_photos"
branch_labels = None
depends_on = None

# A frozen copy of the rule in ``helpdesk.tickets.text`` as of this revision (migrations do
# not import application code that may change later).
_DOMAIN = (
    r"(?<![\w.-])[^\W_](?:[\w-]*[^\W_])?(?:\.[\w-]+)*\.(?:[a-z]{2,63}|xn--[a-z0-9-]+)"
    r"(?![a-z0-9-])"
)
_LINKISH = re.compile(rf"://|www\.|@|{_DOMAIN}", re.IGNORECASE)
_LINK_TOKEN = re.compile(rf"\S*(?:://|www\.|@)\S*|{_DOMAIN}(?:[:/]\S*)?", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def _safe_name(name: str, email: str) -> str:
    for candidate in (name, email.partition("@")[0]):
        visible = (
            c
            for c in unicodedata.normalize("NFKC", candidate or "")
            if unicodedata.category(c) not in ("Cc", "Cf") and c not in "\u115f\u1160\u3164\uffa0"
        )
        text = _SPACES.sub(" ", "".join(visible)).strip()
        while _LINKISH.search(text):
            cut = _SPACES.sub(" ", _LINK_TOKEN.sub(" ", text)).strip()
            if cut == text:
                text = ""
                break
            text = cut
        if text:
            return text[:100]
    return "お客様"


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_name", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("submission_fingerprint", sa.String(length=64), nullable=True)
        )

    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT ticket.id, customer.name, customer.email FROM ticket"
            " JOIN customer ON customer.id = ticket.customer_id"
        )
    ).all()
    for ticket_id, name, email in rows:
        connection.execute(
            sa.text("UPDATE ticket SET customer_name = :name WHERE id = :id"),
            {"name": _safe_name(name, email), "id": ticket_id},
        )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.alter_column("customer_name", existing_type=sa.String(length=100), nullable=False)

    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("submission_fingerprint", sa.String(length=64), nullable=True)
        )

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=100), nullable=True))
        batch_op.create_index(batch_op.f("ix_outbox_to_address"), ["to_address"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_to_address"))
        batch_op.drop_column("origin")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("submission_fingerprint")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_column("submission_fingerprint")
        batch_op.drop_column("customer_name")
