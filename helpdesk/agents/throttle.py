"""Login throttling: failed attempts per account and per client address, with backoff.

A key (``account:<address typed>`` or ``client:<ip>``) may fail ``free`` times; each failure
after that doubles the wait before the next try (``base`` seconds, then twice that ...,
capped at ``max_wait``). Failures are forgotten ``window`` after the last one, and an
account's on a successful login. The address typed is the key whether an agent has it or
not, so throttling says nothing about which addresses exist.

Counted in the database (``login_failure``), so that every worker and machine shares the
count: several workers do not multiply an attacker's tries. Rows idle for longer than
``FORGET_AFTER`` are deleted by ``helpdesk.rate_limits.prune`` (run by the leader).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.db import as_utc, utcnow
from helpdesk.models import LoginFailure

#: Failures older than this are deleted (the longest ``window`` in use).
FORGET_AFTER = 3600.0
# The key column's size; longer keys (absurd addresses typed) are cut.
MAX_KEY = 300


class LoginThrottle:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        account_free: int = 5,
        client_free: int = 20,
        base: float = 30.0,
        max_wait: float = 900.0,
        window: float = FORGET_AFTER,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.free = {"account": account_free, "client": client_free}
        self.base = base
        self.max_wait = max_wait
        self.window = window
        self.clock = clock

    @staticmethod
    def keys(account: str, client: str) -> tuple[str, str]:
        return f"account:{account.strip().casefold()}"[:MAX_KEY], f"client:{client}"[:MAX_KEY]

    async def wait(self, *keys: str) -> float | None:
        """Seconds to wait before any of ``keys`` may try again; None when they may now."""
        now = self.clock()
        async with self.sessions() as session:
            rows = await session.execute(
                select(LoginFailure).where(col(LoginFailure.key).in_(keys))
            )
            found = list(rows.scalars())
        longest = 0.0
        for row in found:
            since = (now - as_utc(row.last_at)).total_seconds()
            if since > self.window:
                continue
            free = self.free[row.key.partition(":")[0]]
            if row.failures >= free:
                delay = min(self.base * 2 ** (row.failures - free), self.max_wait)
                longest = max(longest, delay - since)
        return longest if longest > 0 else None

    async def failed(self, *keys: str) -> None:
        from helpdesk.rate_limits import upsert

        now = self.clock()
        horizon = now - timedelta(seconds=self.window)
        async with self.sessions() as session:
            for key in keys:
                statement = (
                    upsert(session)(LoginFailure)
                    .values(key=key, failures=1, last_at=now)
                    .on_conflict_do_update(
                        index_elements=["key"],
                        set_={
                            # One statement: failures of several workers at once all count.
                            "failures": case(
                                (col(LoginFailure.last_at) < horizon, 1),
                                else_=col(LoginFailure.failures) + 1,
                            ),
                            "last_at": now,
                        },
                    )
                )
                await session.execute(statement)
            await session.commit()

    async def succeeded(self, key: str) -> None:
        async with self.sessions() as session:
            await session.execute(delete(LoginFailure).where(col(LoginFailure.key) == key))
            await session.commit()
