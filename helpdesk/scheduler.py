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
"older than N days" does). A run cut off by a crash (``finished_at`` NULL, another holder)
is taken over by the next leader, once ``takeover_after`` seconds have passed since it was
elected (a predecessor that is alive but cut off has stopped by then); once only
(``MAX_ATTEMPTS``), so that a job that kills its process does not kill every leader after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.leader import HANDOVER_GRACE
from helpdesk.models import JobRun

if TYPE_CHECKING:
    from helpdesk.app import Helpdesk

log = logging.getLogger("helpdesk.scheduler")
TOKYO = ZoneInfo("Asia/Tokyo")
#: Seconds between looks at the clock.
CHECK_INTERVAL = 60.0
#: Runs of one job on one day, the first included: one takeover after a crash.
MAX_ATTEMPTS = 2

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
        self,
        helpdesk: Helpdesk,
        *,
        holder: str,
        now: datetime | None = None,
        take_over: bool = False,
    ) -> list[str]:
        """Run every job due now and not yet run today (and, with ``take_over``, every run
        of today another process left unfinished); return the names of those run."""
        assert helpdesk.sessions is not None
        local = (now or utcnow()).astimezone(TOKYO)
        ran = []
        for job in self.jobs.values():
            if local.hour < job.hour:
                continue
            run_id = await claim(
                helpdesk.sessions, job.name, local.date(), holder, take_over=take_over
            )
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

    async def run_forever(
        self, helpdesk: Helpdesk, *, holder: str, takeover_after: float = HANDOVER_GRACE
    ) -> None:
        """Run what is due every ``CHECK_INTERVAL`` seconds, from the election on."""
        elected = time.monotonic()
        while True:
            try:
                take_over = time.monotonic() - elected >= takeover_after
                await self.run_due(helpdesk, holder=holder, take_over=take_over)
            except Exception:
                log.exception("daily jobs: could not check what is due")
            await asyncio.sleep(CHECK_INTERVAL)


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    day: date,
    holder: str,
    *,
    take_over: bool = False,
) -> int | None:
    """Insert the run of ``name`` on ``day``; None when one exists (someone ran it, or
    runs it). With ``take_over``, an unfinished run of another holder, with attempts left,
    becomes this holder's (compare-and-set: one taker)."""
    async with sessions() as session:
        row = JobRun(name=name, day=day, holder=holder)
        session.add(row)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
        else:
            return row.id
        if not take_over:
            return None
        left = (
            await session.execute(
                select(JobRun).where(
                    col(JobRun.name) == name,
                    col(JobRun.day) == day,
                    col(JobRun.finished_at).is_(None),
                    col(JobRun.holder) != holder,
                    col(JobRun.attempts) < MAX_ATTEMPTS,
                )
            )
        ).scalar_one_or_none()
        if left is None:
            return None
        taken = cast(
            CursorResult[Any],
            await session.execute(
                update(JobRun)
                .where(
                    col(JobRun.id) == left.id,
                    col(JobRun.holder) == left.holder,
                    col(JobRun.attempts) == left.attempts,
                    col(JobRun.finished_at).is_(None),
                )
                .values(holder=holder, started_at=utcnow(), attempts=left.attempts + 1)
            ),
        )
        await session.commit()
        if taken.rowcount != 1:
            return None
        log.warning(
            "daily job %s: %s left today's run unfinished; running it again", name, left.holder
        )
        return left.id


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
