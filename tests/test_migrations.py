"""Migrations applied to a database that already holds tickets."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from helpdesk import db


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
