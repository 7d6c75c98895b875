"""Rate limits counted in the database, so that every worker (and machine) shares them.

``SharedRateLimiter`` has the interface the in-process ``security.RateLimiter`` had, made
async: ``await hit(key)`` records an attempt and answers None when allowed, else the
seconds until one is; ``await peek(key)`` answers the same without recording. It counts in
fixed windows (``rate_counter``: one row per key and window, incremented by one atomic
upsert that refuses beyond the limit) and decides with the sliding-window estimate
``current + previous × (share of the previous window still inside the last window_seconds)``
(rounded up),
so that a burst straddling two windows gets no more than the limit. Refused hits are not
counted: someone who waits as told gets through.

Rows older than two windows are deleted by ``prune`` (the leader runs it periodically).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.models import RateCounter

# Longest key stored (the column's size); longer keys are cut (they are addresses).
MAX_KEY = 200


def upsert(session: AsyncSession):  # type: ignore[no-untyped-def]
    """The dialect's INSERT with ON CONFLICT (both SQLite and PostgreSQL have it)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


class SharedRateLimiter:
    """At most ``limit`` hits per key within ``window_seconds``, across all workers."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        limit: int,
        window_seconds: float,
        *,
        scope: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        if window_seconds < 1:
            raise ValueError(f"window_seconds must be at least 1, got {window_seconds}")
        self.sessions = sessions
        self.limit = limit
        self.window = int(window_seconds)
        self.scope = scope
        self.clock = clock

    def _key(self, key: str) -> str:
        return f"{self.scope}:{key}"[:MAX_KEY]

    async def _counts(self, session: AsyncSession, key: str, start: int) -> tuple[int, int]:
        rows = await session.execute(
            select(col(RateCounter.window_start), col(RateCounter.hits)).where(
                col(RateCounter.key) == key,
                col(RateCounter.window_start).in_((start, start - self.window)),
            )
        )
        found = {int(start_): int(hits) for start_, hits in rows.all()}
        return found.get(start, 0), found.get(start - self.window, 0)

    def _wait(self, now: float, start: int, current: int, previous: int) -> float:
        """Seconds until ``current + ceil(previous × weight)`` drops below the limit, that
        is until ``previous × weight <= limit - 1 - current``."""
        frac = (now - start) / self.window
        room = self.limit - 1 - current
        if room >= 0 and previous:
            # Later in this window, as the previous window's weight falls.
            return max((1 - room / previous) - frac, 0.0) * self.window + 0.001
        # Into the next window, where this one is "previous".
        rest = (1 - frac) * self.window
        return rest + max(1 - (self.limit - 1) / max(current, 1), 0.0) * self.window + 0.001

    async def peek(self, key: str) -> float | None:
        """What ``hit`` would answer now, recording nothing."""
        now = self.clock()
        start = int(now // self.window * self.window)
        async with self.sessions() as session:
            current, previous = await self._counts(session, self._key(key), start)
        weight = 1 - (now - start) / self.window
        if current + math.ceil(previous * weight - 1e-9) < self.limit:
            return None
        return self._wait(now, start, current, previous)

    async def hit(self, key: str) -> float | None:
        """Record an attempt: None when allowed, else seconds until the next allowed one."""
        now = self.clock()
        start = int(now // self.window * self.window)
        stored = self._key(key)
        weight = 1 - (now - start) / self.window
        async with self.sessions() as session:
            current, previous = await self._counts(session, stored, start)
            # Allowed while current < cap; the previous window's share rounded up, so that
            # the estimate never lets more than the limit through.
            cap = self.limit - math.ceil(previous * weight - 1e-9)
            if current >= cap:
                return self._wait(now, start, current, previous)
            expires = datetime.fromtimestamp(start + 2 * self.window, UTC)
            insert = upsert(session)(RateCounter).values(
                key=stored, window_start=start, hits=1, expires_at=expires
            )
            # Atomic: of workers counting at once, those beyond the cap get no row back.
            statement = insert.on_conflict_do_update(
                index_elements=["key", "window_start"],
                set_={"hits": col(RateCounter.hits) + 1},
                where=col(RateCounter.hits) < cap,
            ).returning(col(RateCounter.hits))
            counted = (await session.execute(statement)).scalar_one_or_none()
            await session.commit()
        if counted is None:
            return self._wait(now, start, max(cap, current), previous)
        return None


async def prune(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None) -> int:
    """Delete counters and login failures nobody consults any more; return how many."""
    from helpdesk.agents.throttle import FORGET_AFTER
    from helpdesk.models import LoginFailure

    now = now or utcnow()
    async with sessions() as session:
        counters = await session.execute(
            delete(RateCounter).where(col(RateCounter.expires_at) < now)
        )
        failures = await session.execute(
            delete(LoginFailure).where(
                col(LoginFailure.last_at) < now - timedelta(seconds=FORGET_AFTER)
            )
        )
        await session.commit()
    return int(counters.rowcount or 0) + int(failures.rowcount or 0)  # type: ignore[attr-defined]
