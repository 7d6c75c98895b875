"""Leadership: which one process runs the deployment's background work.

Several web workers (``serve --workers N``, or several machines) share one database; the
outbox sender, the inbound SMTP receiver, the interrupted-mail pass, the photo sweep and
the daily jobs must run in exactly one of them. Each process is a candidate:

- **PostgreSQL**: a candidate tries ``pg_try_advisory_lock`` on a connection of its own,
  every ``retry_interval`` seconds. The process holding the lock leads. The lock is
  session-level: it lasts as long as that connection, and PostgreSQL releases it the moment
  the connection ends, so when the leader dies (even by SIGKILL) another candidate takes
  the lock within ``retry_interval`` seconds. The leader checks every ``check_interval``
  seconds that its connection still holds the lock (``pg_locks``); when the check fails or
  times out it stops its background work at once and becomes a candidate again, so that two
  leaders never work side by side for longer than one check.
- **SQLite**: the database is a file on one machine, so an exclusive ``flock`` on
  ``var/leader.lock`` decides; the kernel releases it when the process dies. A single
  ``serve`` (``tasks.py run``) is the leader at once, with no setup.

The leader writes a heartbeat row (``leader_heartbeat``) at each check; ``/readyz`` reports
background work as not alive when it is older than ``STALE_AFTER`` seconds.

The work itself is not this module's business: ``on_elected`` starts it and ``on_deposed``
stops it (``helpdesk.app.Helpdesk``). Work that must never run twice keeps its own guard in
the database as well (the outbox's leases, inbound mail's leases, ``job_run``), so even a
handover that overlaps for a moment loses or doubles nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from helpdesk.db import async_url, utcnow
from helpdesk.models import LeaderHeartbeat

log = logging.getLogger("helpdesk.leader")

# Any constant works; the same for every process of this app, and not the migration lock's.
LEADER_LOCK_ID = 0x6D61646C
#: The one leadership the app has (a row of ``leader_heartbeat``).
NAME = "background"
#: A heartbeat older than this means nobody is running the background work.
STALE_AFTER = 30.0
#: Seconds between a leader's checks that it still holds the lock.
CHECK_INTERVAL = 5.0
#: Seconds a new leader waits before taking over what its predecessor left half done (the
#: outbox rows and inbound mail it had claimed, a daily job it had started): three checks,
#: so that a predecessor alive but cut off from the database has stopped by then.
HANDOVER_GRACE = 3 * CHECK_INTERVAL

Callback = Callable[[], Awaitable[None]]


def holder_id() -> str:
    """This process, as the heartbeat names it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    """Campaigns for leadership until cancelled; see the module's docstring."""

    def __init__(
        self,
        database_url: str,
        *,
        lock_path: Path,
        sessions: async_sessionmaker[AsyncSession],
        on_elected: Callback,
        on_deposed: Callback,
        retry_interval: float = 2.0,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.database_url = database_url
        self.lock_path = lock_path
        self.sessions = sessions
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.retry_interval = retry_interval
        self.check_interval = check_interval
        self.holder = holder_id()
        self.is_leader = False

    async def run(self) -> None:
        """Campaign, lead, and campaign again when leadership is lost (until cancelled)."""
        if make_url(self.database_url).get_backend_name() == "sqlite":
            await self._run_file_lock()
        else:
            await self._run_advisory_lock()

    # -- PostgreSQL --------------------------------------------------------------------

    async def _run_advisory_lock(self) -> None:
        # A connection of its own, outside the app's pool: the lock lives as long as it does.
        engine = create_async_engine(async_url(self.database_url), poolclass=NullPool)
        try:
            while True:
                try:
                    await self._campaign_on(engine)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("leadership: database connection lost (%s); trying again", exc)
                await asyncio.sleep(self.retry_interval)
        finally:
            await self._depose()
            await engine.dispose()

    async def _campaign_on(self, engine: AsyncEngine) -> None:
        connection = await asyncio.wait_for(engine.connect(), self.check_interval * 2)
        try:
            while not await self._try_lock(connection):
                await asyncio.sleep(self.retry_interval)
            await self._elect()
            while True:
                await asyncio.sleep(self.check_interval)
                if not await self._still_held(connection):
                    log.error("leadership: the advisory lock is no longer held")
                    return
                await self._heartbeat()
        finally:
            await self._depose()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    async def _try_lock(self, connection: AsyncConnection) -> bool:
        result = await asyncio.wait_for(
            connection.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": LEADER_LOCK_ID}),
            self.check_interval * 2,
        )
        got = bool(result.scalar())
        await connection.commit()
        return got

    async def _still_held(self, connection: AsyncConnection) -> bool:
        query = text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = pg_backend_pid() AND classid = 0 AND objid = :id"
        )
        try:
            result = await asyncio.wait_for(
                connection.execute(query, {"id": LEADER_LOCK_ID}), self.check_interval
            )
            held = bool(result.scalar())
            await connection.commit()
        except Exception as exc:  # TimeoutError included
            log.error("leadership: could not check the lock (%s)", exc)
            return False
        return held

    # -- SQLite ------------------------------------------------------------------------

    async def _run_file_lock(self) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(self.retry_interval)
            await self._elect()
            while True:
                await asyncio.sleep(self.check_interval)
                await self._heartbeat()
        finally:
            await self._depose()
            os.close(fd)  # releases the lock

    # -- both --------------------------------------------------------------------------

    async def _elect(self) -> None:
        self.is_leader = True
        log.info("leadership: %s runs the background work", self.holder)
        await self._heartbeat(since=True)
        await self.on_elected()

    async def _depose(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        log.warning("leadership: %s stops running the background work", self.holder)
        await self.on_deposed()

    async def _heartbeat(self, *, since: bool = False) -> None:
        try:
            # Shielded: a leadership cancelled mid-write (shutdown) must not leave the
            # session's connection checked out, holding SQLite's write lock.
            await asyncio.shield(write_heartbeat(self.sessions, self.holder, since=since))
        except Exception as exc:
            log.warning("leadership: could not write the heartbeat (%s)", exc)


async def write_heartbeat(
    sessions: async_sessionmaker[AsyncSession], holder: str, *, since: bool = False
) -> None:
    """Record that ``holder`` leads now (``since``: it has just been elected)."""
    now = utcnow()
    async with sessions() as session:
        row = await session.get(LeaderHeartbeat, NAME)
        if row is None:
            session.add(LeaderHeartbeat(name=NAME, holder=holder, since=now, heartbeat_at=now))
        else:
            if since or row.holder != holder:
                row.since = now
            row.holder, row.heartbeat_at = holder, now
        await session.commit()


async def read_heartbeat(sessions: async_sessionmaker[AsyncSession]) -> LeaderHeartbeat | None:
    async with sessions() as session:
        return await session.get(LeaderHeartbeat, NAME)
