"""The migrations build exactly the tables the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from starlette.applications import Starlette

# The tickets' search index (migration 0008, ``helpdesk.tickets.search``) is no model:
# SQLModel cannot describe an FTS5 virtual table (with its shadow tables
# ticket_search_data, _idx, _content, _docsize, _config) nor a tsvector column. It is
# left out here and checked by tests/tickets/test_search.py on both databases.
SEARCH_TABLES = frozenset(
    {"ticket_search"}
    | {f"ticket_search_{s}" for s in ("data", "idx", "content", "docsize", "config")}
)


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table not in SEARCH_TABLES


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": _include}
    )
    return list(compare_metadata(context, SQLModel.metadata))


async def test_the_migrated_schema_matches_the_models(app: Starlette) -> None:
    async with app.state.helpdesk.db.connect() as connection:
        assert await connection.run_sync(_differences) == []


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from helpdesk.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_rows_stored_before_the_mail_loop_migration_keep_their_meaning(
    database_url: str,
) -> None:
    from sqlalchemy import text

    from helpdesk.db import create_engine, migrate

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, "0002")
            now = datetime(2026, 11, 24, 10, tzinfo=UTC)
            await connection.execute(
                text(
                    "INSERT INTO customer (id, email, name, created_at) "
                    "VALUES (1, 'hanako@example.jp', '山田 花子', :now)"
                ),
                {"now": now},
            )
            await connection.execute(
                text(
                    "INSERT INTO ticket (id, reference, token_nonce, kind, status, priority, "
                    "customer_id, late, subject, created_at, updated_at) VALUES (1, "
                    "'HD-26-00001', 'n', 'inquiry', 'open', 'normal', 1, false, '件名', "
                    ":now, :now)"
                ),
                {"now": now},
            )
            await connection.execute(
                text(
                    "INSERT INTO message (id, ticket_id, author, body, created_at) "
                    "VALUES (1, 1, 'customer', '届きません', :now)"
                ),
                {"now": now},
            )
            await connection.execute(
                text(
                    "INSERT INTO inbound_mail (id, raw, status, received_at) "
                    "VALUES (1, :raw, 'received', :now)"
                ),
                {"raw": b"From: a@b.jp\r\n\r\nx", "now": now},
            )
        # The upgrade a server runs at start, on a database holding rows that point at the
        # tables the migrations rebuild (SQLite copies a table to change a column).
        await migrate(engine)
        async with engine.connect() as connection:
            if connection.dialect.name == "sqlite":  # keys checked again after the upgrade
                assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            message = (await connection.execute(text("SELECT trust FROM message"))).one()
            inbound = (
                await connection.execute(text("SELECT attempts, next_attempt_at FROM inbound_mail"))
            ).one()
        assert tuple(message) == ("verified",)  # shown to the customer, as before
        assert tuple(inbound) == (0, None)  # never run: picked up by the periodic pass
    finally:
        await engine.dispose()
