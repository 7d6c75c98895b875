"""Rollups of closed days: counted once, by one worker, and again only when asked."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from starlette.applications import Starlette

from helpdesk.insights.rollup import ensure_rolled, roll_up_closed_days, roll_up_periodically
from helpdesk.models import InsightDay, InsightTickets, Ticket
from tests.helpers import rows, submit_inquiry
from tests.test_cli import run

TOKYO = ZoneInfo("Asia/Tokyo")


async def _ticket_on(app: Starlette, moment: str) -> None:
    ticket = await submit_inquiry(app, email=f"{moment[:10]}@example.jp")
    created = datetime.fromisoformat(moment).replace(tzinfo=TOKYO).astimezone(UTC)
    async with app.state.helpdesk.sessions() as session:
        await session.execute(
            update(Ticket).where(Ticket.id == ticket.id).values(created_at=created)
        )
        await session.commit()


async def _roll(app: Starlette, first: date, last: date) -> int:
    policy = app.state.helpdesk.faq.policy
    return await ensure_rolled(
        app.state.helpdesk.sessions,
        first=first,
        last=last,
        timezone=TOKYO,
        calendar=policy.support,
    )


async def test_a_closed_day_is_rolled_up_once_even_by_two_workers_at_once(app: Starlette) -> None:
    await _ticket_on(app, "2026-11-02 23:59")  # the 2nd in Japan, the 2nd in UTC too
    await _ticket_on(app, "2026-11-03 00:01")  # the 3rd in Japan, still the 2nd in UTC
    first, last = date(2026, 11, 1), date(2026, 11, 5)
    done = await asyncio.gather(_roll(app, first, last), _roll(app, first, last))
    assert sorted(done) == [0, 5]  # one did the five days, the other left them to it
    assert await _roll(app, first, last) == 0
    counted = {(r.day, r.kind): r.created for r in await rows(app, InsightTickets)}
    assert counted == {(date(2026, 11, 2), "inquiry"): 1, (date(2026, 11, 3), "inquiry"): 1}
    # Only the days missing are counted when a longer range is asked for.
    assert await _roll(app, date(2026, 10, 30), last) == 2


async def test_rebuild_counts_the_days_again(app: Starlette) -> None:
    helpdesk = app.state.helpdesk
    now = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)  # 12:00 in Japan
    await _ticket_on(app, "2026-11-05 12:00")

    async def roll(rebuild: bool) -> int:
        return await roll_up_closed_days(
            helpdesk.sessions, days=7, now=now, timezone=TOKYO, calendar=None, rebuild=rebuild
        )

    assert await roll(False) == 7  # the 3rd to the 9th: today (the 10th) is not closed
    await _ticket_on(app, "2026-11-05 13:00")  # a row restored into a closed day
    assert await roll(False) == 0
    [row] = await rows(app, InsightTickets)
    assert row.created == 1
    assert await roll(True) == 7
    [row] = await rows(app, InsightTickets)
    assert row.created == 2
    async with helpdesk.sessions() as session:
        days = (
            await session.execute(select(func.min(InsightDay.day), func.max(InsightDay.day)))
        ).one()
    assert tuple(days) == (date(2026, 11, 3), date(2026, 11, 9))


def test_the_rollup_command(tmp_path: Path) -> None:
    env = {"HELPDESK_VAR_DIR": str(tmp_path / "var"), "HELPDESK_SECRET_KEY": "x" * 32}
    first = run("insights", "rollup", "--days", "3", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "3 days rolled up"
    again = run("insights", "rollup", "--days", "3", env=env)
    assert again.stdout.strip() == "0 days rolled up"
    rebuilt = run("insights", "rollup", "--days", "3", "--rebuild", env=env)
    assert rebuilt.stdout.strip() == "3 days rolled up"


async def test_the_job_rolls_up_the_closed_days_in_the_background(app: Starlette) -> None:
    helpdesk = app.state.helpdesk
    job = asyncio.create_task(
        roll_up_periodically(
            helpdesk.sessions, lambda: helpdesk.faq.policy, days=10, delay=0, interval=0.05
        )
    )
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            if len(await rows(app, InsightDay)) == 10:
                break
    finally:
        job.cancel()
    today = helpdesk.faq.policy.local(datetime.now(UTC)).date()
    days = sorted(r.day for r in await rows(app, InsightDay))
    assert len(days) == 10 and days[-1] < today
