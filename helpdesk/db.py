"""Database access: plain URLs in, async engines out, Alembic migrations at start.

``sqlite:///var/helpdesk.db`` becomes ``sqlite+aiosqlite`` (WAL, foreign keys, busy
timeout); ``postgresql://...`` becomes ``postgresql+asyncpg``. Migrations run under an
advisory lock on PostgreSQL so that several workers may start at once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from helpdesk.files import create_private_file, tighten

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every worker of this app.
_MIGRATION_LOCK_ID = 0x6D61646F


def async_url(url: str) -> str:
    """Pick the async driver for a plain database URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
        if parsed.database and parsed.database != ":memory:":
            prepare_sqlite_file(Path(parsed.database))
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database URL: {url!r} (use sqlite:/// or postgresql://)")
    return parsed.render_as_string(hide_password=False)


def prepare_sqlite_file(path: Path) -> None:
    """Create the database file 0640 (in 0750 folders) before SQLite opens it.

    SQLite creates a new database 0644 whatever the umask, and gives its ``-wal``, ``-shm``
    and ``-journal`` files the database file's mode: creating the file first decides all of
    them. Files left world-readable by earlier versions are tightened.
    """
    create_private_file(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    if make_url(url).get_backend_name() == "sqlite":
        # SQLite has one writer: with several pooled connections, a burst of submissions
        # waits on the file lock and times out ("database is locked"). One connection per
        # process queues them in the pool instead, in order.
        engine = create_async_engine(
            async_url(url), pool_size=1, max_overflow=0, pool_timeout=120, pool_pre_ping=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(async_url(url), pool_pre_ping=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending Alembic migration (idempotent).

    Raises:
        RuntimeError: on SQLite, when the migrated rows break a foreign key.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
        return
    database = engine.url.database
    if not database or database == ":memory:":
        await _migrate_sqlite(engine)
        return
    # Several processes starting at once on a new file (serve --workers, mail ingest) would
    # each create the tables: one at a time, under a lock file beside the database.
    descriptor = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        await _migrate_sqlite(engine)
    finally:
        os.close(descriptor)  # releases the lock


async def _migrate_sqlite(engine: AsyncEngine) -> None:
    # SQLite changes a column by copying the table, dropping the original and renaming the
    # copy: with foreign keys on, dropping a table other rows point at fails. SQLite's own
    # recipe (https://www.sqlite.org/lang_altertable.html#otheralter): keys off outside the
    # transaction, migrate, check every key, keys on again.
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        await connection.commit()
        try:
            async with connection.begin():
                await connection.run_sync(_upgrade)
                broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
        finally:
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            await connection.commit()


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Times are stored in UTC; SQLite hands them back naive."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
