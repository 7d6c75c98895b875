"""Rate limits counted in the database, shared by every worker (issue 13)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk import db
from helpdesk.models import RateCounter
from helpdesk.rate_limits import SharedRateLimiter, prune


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # a multiple of 60 and 600

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.create_engine(database_url)
    await db.migrate(engine)
    yield db.session_factory(engine)
    await engine.dispose()


async def test_the_limit_holds_and_waiting_as_told_gets_through(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    limiter = SharedRateLimiter(sessions, 3, 60, scope="s", clock=clock)
    assert [await limiter.hit("203.0.113.5") for _ in range(3)] == [None, None, None]
    assert await limiter.peek("203.0.113.5") is not None
    wait = await limiter.hit("203.0.113.5")
    assert wait is not None and 0 < wait <= 120
    assert await limiter.hit("198.51.100.7") is None  # another client is not affected
    clock.now += wait
    assert await limiter.peek("203.0.113.5") is None
    assert await limiter.hit("203.0.113.5") is None


async def test_a_burst_across_a_window_boundary_gets_no_more_than_the_limit(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    limiter = SharedRateLimiter(sessions, 10, 60, scope="s", clock=clock)
    clock.now += 59  # the end of one window
    allowed = sum([await limiter.hit("k") is None for _ in range(10)])
    clock.now += 2  # the start of the next
    allowed += sum([await limiter.hit("k") is None for _ in range(10)])
    assert allowed == 10


async def test_workers_share_the_count_and_never_overshoot(sessions) -> None:  # type: ignore[no-untyped-def]
    """Four limiters (four workers) hitting at once: exactly the limit gets through."""
    clock = Clock()
    workers = [SharedRateLimiter(sessions, 5, 600, scope="s", clock=clock) for _ in range(4)]
    answers = await asyncio.gather(*(workers[n % 4].hit("k") for n in range(20)))
    assert sum(answer is None for answer in answers) == 5
    assert [await w.peek("k") is not None for w in workers] == [True] * 4


async def test_scopes_count_apart_and_old_counters_are_pruned(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    submissions = SharedRateLimiter(sessions, 1, 60, scope="submission", clock=clock)
    votes = SharedRateLimiter(sessions, 1, 60, scope="feedback", clock=clock)
    assert await submissions.hit("k") is None
    assert await votes.hit("k") is None
    assert await submissions.hit("k") is not None
    later = datetime.fromtimestamp(clock.now + 121, UTC)
    assert await prune(sessions, now=later) == 2
    async with sessions() as session:
        left = (await session.execute(select(func.count()).select_from(RateCounter))).scalar()
    assert left == 0
