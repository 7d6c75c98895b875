"""Migrations applied to a database that already holds tickets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from helpdesk import db
from helpdesk.app import create_app
from helpdesk.models import Ticket
from helpdesk.settings import Settings


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_ticket_names_are_back_filled_without_links(database_url: str) -> None:
    """0004: each ticket gets its customer's name, with link-looking parts cut out."""
    engine = db.create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0002")
            customers = [
                (1, "hanako@example.jp", "山田 花子"),
                (2, "victim@example.jp", "【重要】再登録が必要です http://evil.example/login"),
                (3, "taro@example.jp", "www.evil.example"),
                (4, "shop.example@example.jp", "\u202eevil.example"),
            ]
            for customer_id, email, name in customers:
                await connection.execute(
                    text(
                        "INSERT INTO customer (id, email, name, created_at)"
                        " VALUES (:id, :email, :name, CURRENT_TIMESTAMP)"
                    ),
                    {"id": customer_id, "email": email, "name": name},
                )
                await connection.execute(
                    text(
                        "INSERT INTO ticket (id, reference, token_nonce, kind, status, priority,"
                        " customer_id, late, subject, created_at, updated_at) VALUES (:id,"
                        " :reference, 'n', 'inquiry', 'new', 'normal', :id, false, '件名',"
                        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": customer_id, "reference": f"HD-26-0000{customer_id}"},
                )
        await db.migrate(engine)
        async with engine.connect() as connection:
            names = dict(
                (await connection.execute(text("SELECT id, customer_name FROM ticket"))).all()
            )
            origins = (await connection.execute(text("SELECT origin FROM outbox"))).all()
    finally:
        await engine.dispose()
    assert names == {
        1: "山田 花子",
        2: "【重要】再登録が必要です",
        3: "taro",  # nothing left of the name: the address's local part
        4: "お客様",  # nor of the local part
    }
    assert origins == []


async def test_first_replies_are_back_filled_and_due_times_computed_at_start(
    database_url: str, tmp_path: Path
) -> None:
    """0006: a ticket's first reply is its first agent message (not a note); tickets get
    their first-reply due time when the app starts, from their creation time."""
    engine = db.create_engine(database_url)
    created = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)  # Friday 15:00 in Japan
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0005")
            await connection.execute(
                text(
                    "INSERT INTO customer (id, email, name, created_at)"
                    " VALUES (1, 'hanako@example.jp', '山田 花子', :at)"
                ),
                {"at": created},
            )
            for ticket_id in (1, 2):
                await connection.execute(
                    text(
                        "INSERT INTO ticket (id, reference, token_nonce, kind, status, priority,"
                        " customer_id, customer_name, late, subject, created_at, updated_at)"
                        " VALUES (:id, :reference, 'n', 'inquiry', 'open', 'normal', 1,"
                        " '山田 花子', false, '件名', :at, :at)"
                    ),
                    {"id": ticket_id, "reference": f"HD-26-0000{ticket_id}", "at": created},
                )
            messages = [
                (1, "customer", created),
                (1, "note", created + timedelta(hours=1)),
                (1, "agent", created + timedelta(hours=2)),
                (1, "agent", created + timedelta(hours=3)),
                (2, "note", created + timedelta(hours=1)),
            ]
            for ticket_id, author, at in messages:
                await connection.execute(
                    text(
                        "INSERT INTO message (ticket_id, author, body, trust, created_at)"
                        " VALUES (:ticket, :author, '本文', 'verified', :at)"
                    ),
                    {"ticket": ticket_id, "author": author, "at": at},
                )
        await db.migrate(engine)
        async with engine.connect() as connection:
            columns = (Ticket.id, Ticket.first_replied_at, Ticket.first_reply_due_at)
            found = (await connection.execute(select(*columns).order_by(Ticket.id))).all()
    finally:
        await engine.dispose()
    replied = {ticket_id: at for ticket_id, at, _ in found}
    assert db.as_utc(replied[1]) == created + timedelta(hours=2)
    assert replied[2] is None
    assert [due for *_, due in found] == [None, None]  # the calendar is not the migration's

    settings = Settings(
        _env_file=None, var_dir=tmp_path / "var", database_url=database_url, secret_key="k"
    )
    app = create_app(settings)
    await app.state.helpdesk.startup()
    try:
        async with app.state.helpdesk.sessions() as session:
            dues = (await session.execute(select(Ticket.first_reply_due_at))).scalars().all()
    finally:
        await app.state.helpdesk.shutdown()
    # Friday 15:00 + 7 business hours: Monday 15:00 in Japan.
    assert [db.as_utc(due) for due in dues] == [datetime(2026, 11, 30, 6, 0, tzinfo=UTC)] * 2
