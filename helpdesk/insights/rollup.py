"""Daily rollups: what happened on each day (in Japan), counted once the day is over.

``tally`` counts a span of days from the tickets and gaps themselves (indexed ranges of
``ticket.created_at``, ``ticket.first_replied_at`` and ``faq_gap.created_at``); the page
uses it live for the days not closed yet (today, and yesterday for ``GRACE`` after
midnight). ``ensure_rolled`` stores the tally of closed days not stored yet, with a row in
``insight_day`` per day, so that each closed day is counted once and a page of any range
reads at most a few rows per day, however many tickets there are.

A closed day's rollup stays right: tickets are never deleted and never change kind, and
what is counted (a creation, a first reply, a gap) belongs to the day it happened.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from faq import ShopPolicy
from faq.calendar import BusinessCalendar
from helpdesk.db import as_utc, utcnow
from helpdesk.insights.period import day_start
from helpdesk.models import (
    FaqGap,
    InsightDay,
    InsightGap,
    InsightReplyTime,
    InsightTickets,
    Ticket,
    TicketEvent,
)

# A day is rolled up this long after its midnight: tickets and gaps stamped just before
# midnight (gaps are written about a second later) are in by then.
GRACE = timedelta(minutes=10)
# The ticket event that says FAQ answers were suggested on the form that made the ticket.
DEFLECTION_EVENT = "deflection_shown"
GAP_KEY_LENGTH = 200
# The job of ``serve`` (``roll_up_periodically``): how far back, when first, how often.
# It starts a while after the start, so that a short-lived app (a test) never runs it.
ROLLUP_DAYS = 366
ROLLUP_DELAY_SECONDS = 120.0
ROLLUP_INTERVAL_SECONDS = 3600.0

log = logging.getLogger(__name__)


# Remembered: the same questions come back again and again.
@functools.lru_cache(maxsize=65536)
def gap_key(query: str) -> str:
    """The text a gap query is grouped by: NFKC, case folded, katakana as hiragana,
    without spaces, punctuation and symbols (「送料は?」「送料は？」「 送料 は 」 meet).

    Deliberately simple: grouping by meaning (readings, synonyms) is the knowledge-base
    editor's (issue 11 item 4).
    """
    text = unicodedata.normalize("NFKC", query).casefold()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "PSZC":
            continue
        if "ァ" <= char <= "ヶ":
            char = chr(ord(char) - 0x60)
        kept.append(char)
    return "".join(kept)[:GAP_KEY_LENGTH]


def minutes_bucket(minutes: int) -> int:
    """First-reply minutes as kept in the histogram: to the minute under an hour, to 5
    minutes under 8 hours, to 15 minutes under 40 hours, else to the hour (rounded down).
    Percentiles are exact to this step."""
    minutes = max(minutes, 0)
    for limit, step in ((60, 1), (480, 5), (2400, 15)):
        if minutes < limit:
            return minutes - minutes % step
    return minutes - minutes % 60


@dataclass(slots=True)
class TicketCounts:
    created: int = 0
    sent_after_suggestions: int = 0
    replied: int = 0
    replied_late: int = 0

    def add(self, other: TicketCounts) -> None:
        self.created += other.created
        self.sent_after_suggestions += other.sent_after_suggestions
        self.replied += other.replied
        self.replied_late += other.replied_late


@dataclass(slots=True)
class Tally:
    """What happened on some days: by (day, kind), and gaps by (day, key)."""

    tickets: dict[tuple[date, str], TicketCounts] = field(default_factory=dict)
    reply_minutes: Counter[tuple[date, str, int]] = field(default_factory=Counter)
    gaps: Counter[tuple[date, str]] = field(default_factory=Counter)
    gap_samples: dict[tuple[date, str], str] = field(default_factory=dict)

    def counts(self, day: date, kind: str) -> TicketCounts:
        key = (day, kind)
        found = self.tickets.get(key)
        if found is None:
            found = self.tickets[key] = TicketCounts()
        return found


def reply_minutes(
    calendar: BusinessCalendar | None, created_at: datetime, replied_at: datetime
) -> int:
    """Minutes from a ticket's arrival to its first reply: business minutes of the support
    calendar (nights and closed days do not count), or plain minutes without one."""
    if calendar is None:
        waited = replied_at - created_at
    else:
        waited = calendar.business_time_between(created_at, replied_at)
    return max(int(waited.total_seconds() // 60), 0)


async def tally(
    session: AsyncSession,
    *,
    first: date,
    last: date,
    timezone: ZoneInfo,
    calendar: BusinessCalendar | None,
) -> Tally:
    """Count the days ``first`` to ``last`` (both included, in ``timezone``)."""
    start, end = day_start(first, timezone), day_start(last + timedelta(days=1), timezone)
    found = Tally()

    def day_of(moment: datetime) -> date:
        return as_utc(moment).astimezone(timezone).date()

    created = await session.execute(
        select(col(Ticket.created_at), col(Ticket.kind)).where(
            col(Ticket.created_at) >= start, col(Ticket.created_at) < end
        )
    )
    for created_at, kind in created.all():
        found.counts(day_of(created_at), str(kind)).created += 1
    # From the day's tickets to their events (by ticket id): never through the index of
    # event kinds, which holds every deflection ever (SQLite's planner picks it for a join).
    suggested = (
        select(col(TicketEvent.id))
        .where(
            col(TicketEvent.ticket_id) == col(Ticket.id),
            col(TicketEvent.kind) == DEFLECTION_EVENT,
        )
        .exists()
    )
    deflected = await session.execute(
        select(col(Ticket.created_at), col(Ticket.kind)).where(
            col(Ticket.created_at) >= start, col(Ticket.created_at) < end, suggested
        )
    )
    for created_at, kind in deflected.all():
        found.counts(day_of(created_at), str(kind)).sent_after_suggestions += 1
    replied = await session.execute(
        select(
            col(Ticket.kind),
            col(Ticket.created_at),
            col(Ticket.first_replied_at),
            col(Ticket.first_reply_due_at),
        ).where(col(Ticket.first_replied_at) >= start, col(Ticket.first_replied_at) < end)
    )
    for kind, created_at, first_replied_at, due_at in replied.all():
        assert first_replied_at is not None  # the range says so
        replied_at = as_utc(first_replied_at)
        day = day_of(replied_at)
        counts = found.counts(day, str(kind))
        counts.replied += 1
        if due_at is not None and replied_at > as_utc(due_at):
            counts.replied_late += 1
        minutes = reply_minutes(calendar, as_utc(created_at), replied_at)
        found.reply_minutes[(day, str(kind), minutes_bucket(minutes))] += 1
    gaps = await session.execute(
        select(col(FaqGap.query), col(FaqGap.created_at)).where(
            col(FaqGap.created_at) >= start, col(FaqGap.created_at) < end
        )
    )
    for query, created_at in gaps.all():
        key = (day_of(created_at), gap_key(query))
        if not key[1]:
            continue
        found.gaps[key] += 1
        found.gap_samples.setdefault(key, query[:500])
    return found


def closed_before(now: datetime, timezone: ZoneInfo) -> date:
    """The first day that is not closed yet at ``now`` (today, or yesterday just after
    midnight): days before it are rolled up."""
    return (now - GRACE).astimezone(timezone).date()


async def rolled_days(session: AsyncSession, *, first: date, last: date) -> set[date]:
    found = await session.execute(
        select(col(InsightDay.day)).where(col(InsightDay.day) >= first, col(InsightDay.day) <= last)
    )
    return set(found.scalars().all())


async def ensure_rolled(
    sessions: async_sessionmaker[AsyncSession],
    *,
    first: date,
    last: date,
    timezone: ZoneInfo,
    calendar: BusinessCalendar | None,
) -> int:
    """Roll up the days ``first`` to ``last`` (closed days: the caller makes sure) that
    are not rolled up yet; returns how many were. Another worker doing the same days at
    the same moment wins, and this one leaves them to it."""
    async with sessions() as session:
        missing = sorted(
            set(_days(first, last)) - await rolled_days(session, first=first, last=last)
        )
        if not missing:
            return 0
        counted = await tally(
            session, first=missing[0], last=missing[-1], timezone=timezone, calendar=calendar
        )
        await session.rollback()  # end the reading transaction before writing
        wanted = set(missing)
        try:
            async with session.begin():
                now = utcnow()
                await session.execute(
                    insert(InsightDay), [{"day": day, "rolled_at": now} for day in missing]
                )
                await _insert(session, InsightTickets, _ticket_rows(counted, wanted))
                await _insert(session, InsightReplyTime, _reply_rows(counted, wanted))
                await _insert(session, InsightGap, _gap_rows(counted, wanted))
        except IntegrityError:
            log.info("insights: days %s..%s rolled up by another worker", missing[0], missing[-1])
            return 0
    return len(missing)


async def forget(sessions: async_sessionmaker[AsyncSession], *, first: date, last: date) -> None:
    """Drop the rollups of ``first`` to ``last``: they are computed again when next needed
    (``main.py insights rollup --rebuild``, after restoring or importing old rows)."""
    async with sessions() as session, session.begin():
        for model in (InsightTickets, InsightReplyTime, InsightGap, InsightDay):
            day = col(model.day)
            await session.execute(delete(model).where(day >= first, day <= last))


async def roll_up_closed_days(
    sessions: async_sessionmaker[AsyncSession],
    *,
    days: int,
    now: datetime,
    timezone: ZoneInfo,
    calendar: BusinessCalendar | None,
    rebuild: bool = False,
) -> int:
    """Roll up the closed days of the last ``days`` days (all of them again when
    ``rebuild``); returns how many days were rolled up."""
    last = closed_before(now, timezone) - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    if rebuild:
        await forget(sessions, first=first, last=last)
    return await ensure_rolled(
        sessions, first=first, last=last, timezone=timezone, calendar=calendar
    )


async def roll_up_periodically(
    sessions: async_sessionmaker[AsyncSession],
    policy: Callable[[], ShopPolicy],
    *,
    days: int = ROLLUP_DAYS,
    delay: float = ROLLUP_DELAY_SECONDS,
    interval: float = ROLLUP_INTERVAL_SECONDS,
) -> None:
    """The rollup job of ``serve``: after ``delay``, and then every ``interval`` seconds,
    roll up the closed days of the last ``days`` days not rolled up yet, so that the page
    rarely counts a closed day itself. Until cancelled; several workers may run it."""
    await asyncio.sleep(delay)
    while True:
        try:
            shop = policy()
            await roll_up_closed_days(
                sessions, days=days, now=utcnow(), timezone=shop.timezone, calendar=shop.support
            )
        except Exception:  # try again at the next round
            log.exception("insights: could not roll up the closed days")
        await asyncio.sleep(interval)


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


async def _insert(session: AsyncSession, model: type, rows: list[dict[str, object]]) -> None:
    if rows:  # Core inserts of the table: many rows, no ORM bookkeeping
        await session.execute(insert(model.__table__), rows)  # type: ignore[attr-defined]


def _ticket_rows(counted: Tally, days: set[date]) -> list[dict[str, object]]:
    return [
        {
            "day": day,
            "kind": kind,
            "created": c.created,
            "sent_after_suggestions": c.sent_after_suggestions,
            "replied": c.replied,
            "replied_late": c.replied_late,
        }
        for (day, kind), c in counted.tickets.items()
        if day in days
    ]


def _reply_rows(counted: Tally, days: set[date]) -> list[dict[str, object]]:
    return [
        {"day": day, "kind": kind, "minutes": minutes, "count": n}
        for (day, kind, minutes), n in counted.reply_minutes.items()
        if day in days
    ]


def _gap_rows(counted: Tally, days: set[date]) -> list[dict[str, object]]:
    return [
        {"day": day, "key": key, "count": n, "sample": counted.gap_samples[(day, key)]}
        for (day, key), n in counted.gaps.items()
        if day in days
    ]
