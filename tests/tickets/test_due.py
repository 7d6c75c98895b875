"""First-reply due times on tickets: set at submit, answered by a reply, the queue's filters."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from faq.calendar import ClosedPeriod
from helpdesk.db import as_utc
from helpdesk.models import Ticket, TicketStatus
from helpdesk.tickets import Actor, AddNote, Reply, SetStatus, store
from tests.helpers import add_agent, submit_inquiry, the_ticket

TOKYO = ZoneInfo("Asia/Tokyo")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The service's clock for new tickets: set ``clock[0]`` to the moment wanted."""
    now = [jst(2026, 12, 2, 11, 30)]
    monkeypatch.setattr("helpdesk.tickets.service.utcnow", lambda: now[0].astimezone(UTC))
    return now


async def test_a_new_ticket_is_due_one_business_day_later(
    app: Starlette, clock: list[datetime]
) -> None:
    ticket = await submit_inquiry(app)
    stored = await the_ticket(app, ticket.reference)
    # Wednesday 11:30 + 7 business hours of 10:00-17:00 = Thursday 11:30.
    assert as_utc(stored.first_reply_due_at) == jst(2026, 12, 3, 11, 30)  # type: ignore[arg-type]
    assert stored.first_replied_at is None

    clock[0] = jst(2026, 12, 28, 18, 0)  # after closing, before 年末年始
    later = await the_ticket(app, (await submit_inquiry(app)).reference)
    assert as_utc(later.first_reply_due_at) == jst(2027, 1, 5, 17, 0)  # type: ignore[arg-type]


async def test_the_first_reply_is_a_reply_not_a_note(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    agent = await add_agent(app)
    actor = Actor.agent(agent, channel="web")
    ticket = await submit_inquiry(app)

    assert (await tickets.apply(ticket, actor, [AddNote("在庫を確認中です。")])).ok
    assert (await tickets.apply(ticket, actor, [SetStatus(TicketStatus.pending)])).ok
    assert (await the_ticket(app, ticket.reference)).first_replied_at is None

    before = datetime.now(UTC)
    assert (await tickets.apply(ticket, actor, [Reply("お待たせいたしました。")])).ok
    first = (await the_ticket(app, ticket.reference)).first_replied_at
    assert first is not None and before <= as_utc(first) <= datetime.now(UTC)
    assert as_utc(ticket.first_replied_at) == as_utc(first)  # the caller's ticket too

    assert (await tickets.apply(ticket, actor, [Reply("追ってご連絡します。")])).ok
    assert (await the_ticket(app, ticket.reference)).first_replied_at == first


async def test_a_reply_by_mail_is_a_first_reply(app: Starlette) -> None:
    from tests.tickets.test_service import by_mail

    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    await by_mail(app, ticket, agent, "#メモ\n確認中です。")
    assert (await the_ticket(app, ticket.reference)).first_replied_at is None
    await by_mail(app, ticket, agent, "お待たせいたしました。本日発送いたしました。")
    assert (await the_ticket(app, ticket.reference)).first_replied_at is not None


async def _set(app: Starlette, ticket: Ticket, **values: object) -> None:
    """Change stored columns; times are stored in UTC, as the app stores them."""
    values = {k: v.astimezone(UTC) if isinstance(v, datetime) else v for k, v in values.items()}
    async with app.state.helpdesk.sessions() as session, session.begin():
        await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(**values))


async def test_overdue_and_due_today_in_japans_day(app: Starlette) -> None:
    # 00:30 on Thursday 3 December in Japan is still Wednesday in UTC.
    now = jst(2026, 12, 3, 0, 30)
    made = {name: await submit_inquiry(app) for name in "abcdefgh"}
    dues = {
        "a": jst(2026, 12, 2, 17, 0),  # overdue since last evening
        "b": jst(2026, 12, 3, 0, 30),  # due this very moment: overdue
        "c": jst(2026, 12, 3, 16, 0),  # later today in Japan (tomorrow in UTC)
        "d": jst(2026, 12, 3, 23, 59),  # the last minute of Japan's day
        "e": jst(2026, 12, 4, 0, 0),  # tomorrow
        "f": jst(2026, 12, 1, 12, 0),  # overdue, but answered
        "g": jst(2026, 12, 1, 12, 0),  # overdue, but resolved
        "h": jst(2026, 12, 3, 12, 0),  # due today, but closed
    }
    for name, due in dues.items():
        await _set(app, made[name], first_reply_due_at=due)
    await _set(app, made["f"], first_replied_at=jst(2026, 12, 1, 11, 0))
    await _set(app, made["g"], status=TicketStatus.resolved)
    await _set(app, made["h"], status=TicketStatus.closed)
    # A ticket reopened without ever being answered waits again.
    await _set(app, made["a"], status=TicketStatus.open)

    async with app.state.helpdesk.sessions() as session:
        overdue = await store.overdue(session, now=now)
        today = await store.due_today(session, now=now)
    by_id = {ticket.id: name for name, ticket in made.items()}
    assert [by_id[t.id] for t in overdue] == ["a", "b"]
    assert [by_id[t.id] for t in today] == ["c", "d"]


async def test_tickets_without_a_due_time_get_one_at_start(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    old, kept = await submit_inquiry(app), await submit_inquiry(app)
    created = jst(2026, 11, 27, 15, 0)  # a Friday afternoon
    await _set(app, old, first_reply_due_at=None, created_at=created)
    await _set(app, kept, first_reply_due_at=jst(2026, 12, 1, 10, 0))

    assert await tickets.backfill_first_reply_due() == 1
    assert as_utc((await the_ticket(app, old.reference)).first_reply_due_at) == jst(  # type: ignore[arg-type]
        2026, 11, 30, 15, 0
    )
    assert as_utc((await the_ticket(app, kept.reference)).first_reply_due_at) == jst(  # type: ignore[arg-type]
        2026, 12, 1, 10, 0
    )
    assert await tickets.backfill_first_reply_due() == 0


async def test_the_backfill_goes_in_batches(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("helpdesk.tickets.service.BACKFILL_BATCH", 2)
    made = [await submit_inquiry(app) for _ in range(5)]
    for ticket in made:
        await _set(app, ticket, first_reply_due_at=None)
    assert await app.state.helpdesk.tickets.backfill_first_reply_due() == 5
    for ticket in made:
        assert (await the_ticket(app, ticket.reference)).first_reply_due_at is not None


async def test_the_backfill_ends_when_no_due_time_can_be_computed(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A calendar closed for years gives no due times: the tickets stay without, and the
    start goes on (no endless loop over the same batch)."""
    tickets = app.state.helpdesk.tickets
    policy = tickets.policy
    years = (ClosedPeriod("休業", "2020-01-01", "2040-12-31"),)
    shut = dataclasses.replace(
        policy, support=dataclasses.replace(policy.support, closed_periods=years)
    )
    monkeypatch.setattr("helpdesk.tickets.service.BACKFILL_BATCH", 2)
    made = [await submit_inquiry(app) for _ in range(5)]
    for ticket in made:
        await _set(app, ticket, first_reply_due_at=None)
    monkeypatch.setattr(tickets, "_policy", lambda: shut)
    assert await asyncio.wait_for(tickets.backfill_first_reply_due(), timeout=30) == 0
    # New tickets are still accepted, with no due time and nothing promised.
    late = await the_ticket(app, (await submit_inquiry(app)).reference)
    assert late.first_reply_due_at is None and tickets.reply_promise(late) is None


def test_an_overdue_condition_is_usable_with_other_filters() -> None:
    """The queue combines the conditions with its own (SQL, no database needed)."""
    condition = store.overdue_condition(datetime(2026, 12, 3, tzinfo=UTC)) & (
        Ticket.assignee_id == 1  # type: ignore[comparison-overlap]
    )
    sql = str(condition.compile(compile_kwargs={"literal_binds": False}))
    assert "first_replied_at IS NULL" in sql and "assignee_id" in sql
