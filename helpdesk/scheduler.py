"""Daily jobs, run once a day across the whole deployment, by the leader.

To add a job (retention purges, reports ...), register a coroutine function taking the
app's ``Helpdesk`` in ``register_jobs`` below (or on ``helpdesk.scheduler`` before the
leader starts)::

    async def purge_old_tickets(helpdesk: Helpdesk) -> None:
        async with helpdesk.sessions() as session: ...

    scheduler.register_daily("purge-old-tickets", purge_old_tickets, hour=3)

The job runs once per day (Asia/Tokyo), at the first check after ``hour``:00 (a leader
that starts later that day runs it at once). Before running, the scheduler inserts a
``job_run`` row for (name, day); the unique key lets only one process in, so two leaders
overlapping in a handover never both run it. A run that fails is recorded (``error``) and
is not retried that day: jobs should be idempotent and catch up the next day (a purge of
"older than N days" does). A run cut off by a crash stays unfinished (``finished_at``
NULL) and is likewise not repeated that day.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.db import utcnow
from helpdesk.models import JobRun

if TYPE_CHECKING:
    from helpdesk.app import Helpdesk

log = logging.getLogger("helpdesk.scheduler")
TOKYO = ZoneInfo("Asia/Tokyo")
#: Seconds between looks at the clock.
CHECK_INTERVAL = 60.0

JobFunction = Callable[["Helpdesk"], Awaitable[object]]


@dataclass(frozen=True)
class DailyJob:
    name: str
    run: JobFunction
    hour: int  # Asia/Tokyo


class Scheduler:
    """Holds the daily jobs; ``run_due`` runs those due now (called by the leader)."""

    def __init__(self) -> None:
        self.jobs: dict[str, DailyJob] = {}

    def register_daily(self, name: str, run: JobFunction, *, hour: int = 3) -> None:
        """Run ``await run(helpdesk)`` once a day after ``hour``:00 Asia/Tokyo.

        Raises:
            ValueError: for a name already registered or an hour outside 0-23.
        """
        if name in self.jobs:
            raise ValueError(f"a daily job named {name!r} is already registered")
        if not 0 <= hour <= 23:
            raise ValueError(f"hour must be 0-23, got {hour}")
        self.jobs[name] = DailyJob(name, run, hour)

    async def run_due(
        self, helpdesk: Helpdesk, *, holder: str, now: datetime | None = None
    ) -> list[str]:
        """Run every job due now and not yet run today; return the names of those run."""
        assert helpdesk.sessions is not None
        local = (now or utcnow()).astimezone(TOKYO)
        ran = []
        for job in self.jobs.values():
            if local.hour < job.hour:
                continue
            run_id = await claim(helpdesk.sessions, job.name, local.date(), holder)
            if run_id is None:
                continue
            ran.append(job.name)
            log.info("daily job %s: started", job.name)
            error = None
            try:
                await job.run(helpdesk)
            except Exception as exc:
                log.exception("daily job %s failed", job.name)
                error = f"{type(exc).__name__}: {exc}"
            await finish(helpdesk.sessions, run_id, error)
        return ran

    async def run_forever(self, helpdesk: Helpdesk, *, holder: str) -> None:
        while True:
            try:
                await self.run_due(helpdesk, holder=holder)
            except Exception:
                log.exception("daily jobs: could not check what is due")
            await asyncio.sleep(CHECK_INTERVAL)


async def claim(
    sessions: async_sessionmaker[AsyncSession], name: str, day: date, holder: str
) -> int | None:
    """Insert the run of ``name`` on ``day``; None when one exists (someone ran it)."""
    async with sessions() as session:
        row = JobRun(name=name, day=day, holder=holder)
        session.add(row)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return None
        return row.id


async def finish(
    sessions: async_sessionmaker[AsyncSession], run_id: int, error: str | None
) -> None:
    async with sessions() as session:
        row = await session.get(JobRun, run_id)
        assert row is not None
        row.finished_at, row.error = utcnow(), error
        await session.commit()


def register_jobs(scheduler: Scheduler) -> None:
    """The app's daily jobs: register new ones here."""
    scheduler.register_daily("purge", _purge, hour=3)


async def _purge(helpdesk: Helpdesk) -> None:
    """The retention periods of data/shop.toml applied (``main.py purge`` by hand)."""
    report = await helpdesk.purge()
    log.info("daily purge: %s", dict(report.counts))
