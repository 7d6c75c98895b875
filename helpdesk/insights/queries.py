"""The figures of the insights page for a date range.

Closed days are read from the rollups (``helpdesk.insights.rollup``; rolled up first when
missing), the days not closed yet are counted live; CSAT comes from the survey results
(``store.csat_by_kind``/``csat_by_agent``) and the overdue count from the queue's own
condition (``store.overdue_condition``), both over indexed columns.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from faq.calendar import BusinessCalendar
from helpdesk.insights.period import Period
from helpdesk.insights.rollup import (
    Tally,
    TicketCounts,
    closed_before,
    ensure_rolled,
    tally,
)
from helpdesk.models import (
    Agent,
    FaqDaily,
    InsightGap,
    InsightReplyTime,
    InsightTickets,
    Ticket,
    TicketKind,
)
from helpdesk.tickets import store
from helpdesk.tickets.store import CsatTally

KINDS = tuple(kind.value for kind in TicketKind)
TOP_GAPS = 10


def percentile(histogram: Mapping[int, int], share: float) -> int | None:
    """The nearest-rank percentile of a histogram (value -> how many): the smallest value
    with at least ``share`` of all at or below it. None when empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: the ranks add up to the total")


@dataclass(frozen=True, slots=True)
class ReplyTimes:
    """First-reply times in minutes (business minutes with a support calendar)."""

    count: int
    median: int | None
    p90: int | None

    @classmethod
    def of(cls, histogram: Mapping[int, int]) -> ReplyTimes:
        return cls(sum(histogram.values()), percentile(histogram, 0.5), percentile(histogram, 0.9))


@dataclass(frozen=True, slots=True)
class FaqDay:
    asked: int = 0
    answered: int = 0
    suggested: int = 0


@dataclass(frozen=True, slots=True)
class GapGroup:
    key: str
    sample: str
    count: int
    last_day: date


@dataclass(frozen=True, slots=True)
class AgentCsat:
    name: str
    tally: CsatTally


@dataclass(slots=True)
class Insights:
    period: Period
    #: Business minutes (True) or plain minutes (no support calendar).
    business_hours: bool
    tickets: dict[date, dict[str, TicketCounts]] = field(default_factory=dict)
    by_kind: dict[str, TicketCounts] = field(default_factory=dict)
    reply_by_kind: dict[str, ReplyTimes] = field(default_factory=dict)
    reply: ReplyTimes = ReplyTimes(0, None, None)
    faq: dict[date, FaqDay] = field(default_factory=dict)
    gaps: list[GapGroup] = field(default_factory=list)
    csat_kinds: list[CsatTally] = field(default_factory=list)
    csat_agents: list[AgentCsat] = field(default_factory=list)
    overdue_now: int = 0

    def created_on(self, day: date) -> int:
        return sum(c.created for c in self.tickets.get(day, {}).values())

    @property
    def total(self) -> TicketCounts:
        total = TicketCounts()
        for counts in self.by_kind.values():
            total.add(counts)
        return total

    @property
    def faq_total(self) -> FaqDay:
        days = self.faq.values()
        return FaqDay(
            sum(d.asked for d in days),
            sum(d.answered for d in days),
            sum(d.suggested for d in days),
        )

    @property
    def not_sent_after_suggestions(self) -> int:
        """Forms that showed FAQ answers and were not sent (deflected, it seems)."""
        return max(self.faq_total.suggested - self.total.sent_after_suggestions, 0)

    @property
    def deflection_rate(self) -> float | None:
        shown = self.faq_total.suggested
        return self.not_sent_after_suggestions / shown if shown else None


async def insights(
    sessions: async_sessionmaker[AsyncSession],
    *,
    period: Period,
    now: datetime,
    timezone: ZoneInfo,
    calendar: BusinessCalendar | None,
) -> Insights:
    """Every figure of the page for ``period`` at ``now``."""
    open_from = closed_before(now, timezone)
    closed_last = min(period.last, open_from - timedelta(days=1))
    if period.first <= closed_last:
        await ensure_rolled(
            sessions, first=period.first, last=closed_last, timezone=timezone, calendar=calendar
        )
    found = Insights(period=period, business_hours=calendar is not None)
    histograms: dict[str, Counter[int]] = {kind: Counter() for kind in KINDS}
    live = Tally()
    async with sessions() as session:
        if period.first <= closed_last:
            await _read_rolled(session, found, histograms, period.first, closed_last)
        if period.last >= open_from:
            live = await tally(
                session,
                first=max(period.first, open_from),
                last=period.last,
                timezone=timezone,
                calendar=calendar,
            )
            for (day, kind), counts in live.tickets.items():
                found.tickets.setdefault(day, {}).setdefault(kind, TicketCounts()).add(counts)
            for (_day, kind, minutes), n in live.reply_minutes.items():
                histograms.setdefault(kind, Counter())[minutes] += n
        for by_day in found.tickets.values():
            for kind, counts in by_day.items():
                found.by_kind.setdefault(kind, TicketCounts()).add(counts)
        everything: Counter[int] = Counter()
        for kind, histogram in histograms.items():
            found.reply_by_kind[kind] = ReplyTimes.of(histogram)
            everything.update(histogram)
        found.reply = ReplyTimes.of(everything)
        found.faq = await _faq_days(session, period)
        found.gaps = await _top_gaps(session, period, closed_last, live)
        start, end = period.bounds(timezone)
        found.csat_kinds = await store.csat_by_kind(session, start=start, end=end)
        found.csat_agents = await _with_names(
            session, await store.csat_by_agent(session, start=start, end=end)
        )
        overdue = await session.execute(
            select(func.count()).select_from(Ticket).where(store.overdue_condition(now))
        )
        found.overdue_now = int(overdue.scalar_one())
    return found


async def _read_rolled(
    session: AsyncSession,
    found: Insights,
    histograms: dict[str, Counter[int]],
    first: date,
    last: date,
) -> None:
    rows = await session.execute(
        select(
            col(InsightTickets.day),
            col(InsightTickets.kind),
            col(InsightTickets.created),
            col(InsightTickets.sent_after_suggestions),
            col(InsightTickets.replied),
            col(InsightTickets.replied_late),
        ).where(col(InsightTickets.day) >= first, col(InsightTickets.day) <= last)
    )
    for day, kind, created, suggested, replied, late in rows.all():
        found.tickets.setdefault(day, {})[kind] = TicketCounts(created, suggested, replied, late)
    times = await session.execute(
        select(
            col(InsightReplyTime.kind),
            col(InsightReplyTime.minutes),
            func.sum(col(InsightReplyTime.count)),
        )
        .where(col(InsightReplyTime.day) >= first, col(InsightReplyTime.day) <= last)
        .group_by(col(InsightReplyTime.kind), col(InsightReplyTime.minutes))
    )
    for kind, minutes, n in times.all():
        histograms.setdefault(kind, Counter())[int(minutes)] += int(n)


async def _faq_days(session: AsyncSession, period: Period) -> dict[date, FaqDay]:
    rows = await session.execute(
        select(FaqDaily).where(col(FaqDaily.day) >= period.first, col(FaqDaily.day) <= period.last)
    )
    return {r.day: FaqDay(r.asked, r.answered, r.suggested) for r in rows.scalars().all()}


async def _top_gaps(
    session: AsyncSession, period: Period, closed_last: date, live: Tally
) -> list[GapGroup]:
    """The most asked unanswered groups of the range: the rolled-up days' top groups and
    every group of the live days, each with its whole count (so the top is exact)."""
    totals: dict[str, GapGroup] = {}

    def add(key: str, count: int, sample: str, last_day: date) -> None:
        seen = totals.get(key)
        if seen is None:
            totals[key] = GapGroup(key, sample, count, last_day)
        elif last_day >= seen.last_day:
            totals[key] = GapGroup(key, sample, seen.count + count, last_day)
        else:
            totals[key] = GapGroup(key, seen.sample, seen.count + count, seen.last_day)

    if period.first <= closed_last:
        in_range = (col(InsightGap.day) >= period.first) & (col(InsightGap.day) <= closed_last)
        summed = (
            select(
                col(InsightGap.key),
                func.sum(col(InsightGap.count)),
                func.max(col(InsightGap.sample)),
                func.max(col(InsightGap.day)),
            )
            .where(in_range)
            .group_by(col(InsightGap.key))
        )
        top = summed.order_by(func.sum(col(InsightGap.count)).desc(), col(InsightGap.key)).limit(
            TOP_GAPS
        )
        rows = list((await session.execute(top)).all())
        live_keys = sorted({key for (_day, key) in live.gaps} - {row[0] for row in rows})
        if live_keys:
            rows += list(
                (await session.execute(summed.where(col(InsightGap.key).in_(live_keys)))).all()
            )
        for key, count, sample, last_day in rows:
            add(key, int(count), sample, last_day)
    for (day, key), count in sorted(live.gaps.items()):
        add(key, count, live.gap_samples[(day, key)], day)
    groups = list(totals.values())
    groups.sort(key=lambda g: (-g.count, g.key))
    return groups[:TOP_GAPS]


async def _with_names(session: AsyncSession, tallies: list[CsatTally]) -> list[AgentCsat]:
    ids = [t.key for t in tallies if t.key is not None]
    names: dict[int, str] = {}
    if ids:
        found = await session.execute(
            select(col(Agent.id), col(Agent.name)).where(col(Agent.id).in_(ids))
        )
        names = {agent_id: name for agent_id, name in found.all() if agent_id is not None}
    return [
        AgentCsat(names.get(t.key, f"担当者 {t.key}") if t.key is not None else "担当者なし", t)
        for t in tallies
    ]
