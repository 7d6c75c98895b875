"""Login throttling: free tries, then a doubling wait, per account and per client, counted
in the database so that every worker shares it (issue 13)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk import db
from helpdesk.agents.throttle import LoginThrottle
from helpdesk.models import LoginFailure
from helpdesk.rate_limits import prune


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.create_engine(database_url)
    await db.migrate(engine)
    yield db.session_factory(engine)
    await engine.dispose()


async def test_failures_past_the_free_ones_make_a_doubling_wait(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    throttle = LoginThrottle(
        sessions, account_free=3, client_free=100, base=30, max_wait=100, clock=clock
    )
    keys = LoginThrottle.keys(" Sato@Example.jp ", "203.0.113.5")
    assert keys == ("account:sato@example.jp", "client:203.0.113.5")
    for _ in range(3):
        assert await throttle.wait(*keys) is None
        await throttle.failed(*keys)
    assert await throttle.wait(*keys) == 30
    clock.advance(30)
    assert await throttle.wait(*keys) is None
    await throttle.failed(*keys)
    assert await throttle.wait(*keys) == 60
    await throttle.failed(*keys)
    await throttle.failed(*keys)
    assert await throttle.wait(*keys) == 100  # capped
    await throttle.succeeded(keys[0])
    assert await throttle.wait(*keys) is None


async def test_a_client_trying_many_accounts_is_throttled_too(sessions) -> None:  # type: ignore[no-untyped-def]
    throttle = LoginThrottle(sessions, account_free=5, client_free=3, clock=Clock())
    for number in range(3):
        await throttle.failed(*LoginThrottle.keys(f"user{number}@example.jp", "198.51.100.7"))
    fresh = LoginThrottle.keys("another@example.jp", "198.51.100.7")
    assert await throttle.wait(*fresh) is not None
    assert await throttle.wait(*LoginThrottle.keys("another@example.jp", "192.0.2.1")) is None


async def test_workers_share_the_count(sessions) -> None:  # type: ignore[no-untyped-def]
    """Two throttles (two workers) on one database: failures at once all count."""
    clock = Clock()
    first = LoginThrottle(sessions, account_free=4, client_free=100, clock=clock)
    second = LoginThrottle(sessions, account_free=4, client_free=100, clock=clock)
    keys = LoginThrottle.keys("a@example.jp", "192.0.2.1")
    await asyncio.gather(*(w.failed(*keys) for w in (first, second, first, second)))
    assert await first.wait(*keys) == 30
    assert await second.wait(*keys) == 30


async def test_failures_are_forgotten_and_pruned(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    throttle = LoginThrottle(sessions, account_free=1, window=600, clock=clock)
    keys = LoginThrottle.keys("a@example.jp", "192.0.2.1")
    await throttle.failed(*keys)
    assert await throttle.wait(*keys) is not None
    clock.advance(601)
    assert await throttle.wait(*keys) is None
    await throttle.failed(*keys)  # counts from one again after the window
    assert await throttle.wait(*keys) == 30
    assert await prune(sessions, now=clock.now + timedelta(hours=2)) == 2
    async with sessions() as session:
        left = (await session.execute(select(func.count()).select_from(LoginFailure))).scalar()
    assert left == 0
