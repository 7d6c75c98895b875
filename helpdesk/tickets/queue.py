"""The console's queue: which tickets, in which order, one page at a time.

Filters come from the page's query string (bookmarkable) and are checked here
(``parse_filters``: a wrong value is a Japanese message, never an error page). Tickets are
listed oldest first (by ``created_at``, then id) with keyset pagination: the next page
starts after the last ticket shown (``after=<id>``), so a page costs the same however
many tickets came before it. Every filter is served by an index (migration 0008):
status, assignee and age by ``ix_ticket_queue`` / ``ix_ticket_assignee_queue``, the
words by the search index (``helpdesk.tickets.search``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import false, func, select, text, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.db import as_utc
from helpdesk.models import ACTIVE_STATUS_SQL, Agent, Ticket, TicketKind, TicketStatus
from helpdesk.tickets import search, store
from helpdesk.tickets.labels import (
    KIND_LABELS,
    QUEUE_ACTIVE_LABEL,
    QUEUE_ALL_LABEL,
    QUEUE_ASSIGNEE_LABELS,
    QUEUE_FLAG_HINTS,
    QUEUE_FLAG_LABELS,
    STATUS_LABELS,
)

PAGE_SIZE = 50
#: The statuses the queue shows unless another is chosen.
ACTIVE = (TicketStatus.new, TicketStatus.open, TicketStatus.pending)
ACTIVE_CHOICE = "active"
ALL_CHOICE = "all"
STATUS_CHOICES: dict[str, str] = {
    ACTIVE_CHOICE: QUEUE_ACTIVE_LABEL,
    **{str(status): label for status, label in STATUS_LABELS.items()},
    ALL_CHOICE: QUEUE_ALL_LABEL,
}
MINE, UNASSIGNED = "mine", "unassigned"
ASSIGNEE_CHOICES: dict[str, str] = {"": QUEUE_ALL_LABEL, **QUEUE_ASSIGNEE_LABELS}
#: The yes/no filters: name in the query string → label.
FLAG_LABELS = QUEUE_FLAG_LABELS
FLAG_HINTS = QUEUE_FLAG_HINTS
_TRUE = {"1", "on", "true", "yes"}


@dataclass(frozen=True, slots=True)
class QueueFilter:
    status: str = ACTIVE_CHOICE
    kind: str = ""
    assignee: str = ""  # "", "mine", "unassigned" or an agent's id
    flags: frozenset[str] = frozenset()
    q: str = ""
    after: int | None = None

    def params(self, **changes: Any) -> dict[str, str]:
        """The query-string parameters of this filter (defaults left out)."""
        current = replace(self, **changes)
        found: dict[str, str] = {}
        if current.status != ACTIVE_CHOICE:
            found["status"] = current.status
        if current.kind:
            found["kind"] = current.kind
        if current.assignee:
            found["assignee"] = current.assignee
        for flag in FLAG_LABELS:
            if flag in current.flags:
                found[flag] = "1"
        if current.q:
            found["q"] = current.q
        if current.after is not None:
            found["after"] = str(current.after)
        return found

    def url(self, base: str, **changes: Any) -> str:
        params = self.params(**changes)
        return f"{base}?{urlencode(params)}" if params else base


def parse_filters(
    params: Mapping[str, str], *, agent_ids: Sequence[int]
) -> tuple[QueueFilter, list[str]]:
    """The filter a query string asks for, and what was wrong with it (Japanese).

    A wrong value is dropped (its default used) and named in the messages; the rest of the
    filter still applies.
    """
    problems: list[str] = []
    status = params.get("status", "").strip() or ACTIVE_CHOICE
    if status not in STATUS_CHOICES:
        problems.append(f"「{status[:40]}」は状況として選べません。一覧から選んでください。")
        status = ACTIVE_CHOICE
    kind = params.get("kind", "").strip()
    if kind and kind not in KIND_LABELS:
        problems.append(f"「{kind[:40]}」は種類として選べません。一覧から選んでください。")
        kind = ""
    assignee = params.get("assignee", "").strip()
    named = assignee.isascii() and assignee.isdigit() and int(assignee) in agent_ids
    if assignee and assignee not in ASSIGNEE_CHOICES and not named:
        problems.append(f"「{assignee[:40]}」は担当者として選べません。一覧から選んでください。")
        assignee = ""
    flags = set()
    for flag, label in FLAG_LABELS.items():
        value = params.get(flag, "").strip().lower()
        if not value:
            continue
        if value in _TRUE:
            flags.add(flag)
        elif value not in {"0", "off", "false", "no"}:
            problems.append(f"「{label}」の指定「{value[:20]}」が正しくありません。")
    q = " ".join(params.get("q", "").split())
    if len(q) > search.MAX_QUERY_CHARS:
        problems.append(
            f"検索する言葉は{search.MAX_QUERY_CHARS}文字以内にしてください"
            f"(いまは{len(q)}文字です)。"
        )
        q = q[: search.MAX_QUERY_CHARS]
    after: int | None = None
    raw_after = params.get("after", "").strip()
    if raw_after:
        if raw_after.isascii() and raw_after.isdigit() and len(raw_after) <= 12:
            after = int(raw_after)
        else:
            problems.append("ページの指定が正しくありません。最初のページを表示しています。")
    return QueueFilter(status, kind, assignee, frozenset(flags), q, after), problems


@dataclass(slots=True)
class QueuePage:
    rows: list[tuple[Ticket, Agent | None]]
    next_after: int | None  # the ``after`` of the next page, None on the last one
    counts: dict[str, int] = field(default_factory=dict)  # active statuses, spam left out


def _active() -> Any:
    """New, open or pending: written as the partial index ``ix_ticket_active`` is (literal
    values, so that the database may use that index)."""
    return text(f"ticket.{ACTIVE_STATUS_SQL}")


def _conditions(
    filters: QueueFilter,
    *,
    agent_id: int | None,
    now: datetime,
    terms: Sequence[tuple[str, bool]],
    index: search.SearchIndex,
) -> list[Any]:
    found: list[Any] = []
    if filters.status == ACTIVE_CHOICE:
        found.append(_active())
    elif filters.status != ALL_CHOICE:
        found.append(col(Ticket.status) == TicketStatus(filters.status))
    if filters.kind:
        found.append(col(Ticket.kind) == TicketKind(filters.kind))
    if filters.assignee == MINE:
        found.append(col(Ticket.assignee_id) == agent_id)
    elif filters.assignee == UNASSIGNED:
        # Written so that no index on the assignee is chosen: nearly every finished ticket
        # is unassigned, and stepping through them in age order costs what history costs.
        found.append(func.coalesce(col(Ticket.assignee_id), 0) == 0)
    elif filters.assignee:
        found.append(col(Ticket.assignee_id) == int(filters.assignee))
    found.append(col(Ticket.spam) == (true() if "spam" in filters.flags else false()))
    flags = filters.flags
    if "late" in flags:
        found.append(col(Ticket.late) == true())
    replied_at, customer_at = col(Ticket.last_replied_at), col(Ticket.last_customer_at)
    if "waiting" in flags:
        found.append(
            replied_at.is_not(None) & (customer_at.is_(None) | (customer_at <= replied_at))
        )
    if "replied" in flags:
        found.append(replied_at.is_not(None) & (customer_at > replied_at))
    if "overdue" in flags:
        found.append(store.overdue_condition(now))
    if "due_today" in flags:
        found.append(store.due_today_condition(now))
    if terms:
        found.append(index.matching(terms))
    return found


async def queue_page(
    session: AsyncSession,
    *,
    filters: QueueFilter,
    agent_id: int | None,
    now: datetime,
    terms: Sequence[tuple[str, bool]] = (),
    limit: int = PAGE_SIZE,
) -> QueuePage:
    """One page of the queue, oldest first, with the active statuses' counts."""
    index = await search.session_index(session)
    conditions = _conditions(filters, agent_id=agent_id, now=now, terms=terms, index=index)
    if filters.after is not None:
        last = await session.get(Ticket, filters.after)
        if last is not None:
            created = as_utc(last.created_at)
            # A row comparison: both databases read it as a range of the (created_at, id)
            # indexes (an OR of two ranges would be merged and sorted again).
            conditions.append(
                tuple_(col(Ticket.created_at), col(Ticket.id)) > tuple_(created, last.id)
            )
    query = (
        select(Ticket, Agent)
        .outerjoin(Agent, col(Ticket.assignee_id) == col(Agent.id))
        .where(*conditions)
        .order_by(col(Ticket.created_at), col(Ticket.id))
        .limit(limit + 1)
    )
    rows: list[tuple[Ticket, Agent | None]] = [
        (ticket, agent) for ticket, agent in (await session.execute(query)).all()
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    counted = await session.execute(
        select(col(Ticket.status), func.count())
        .where(_active(), col(Ticket.spam) == false())
        .group_by(col(Ticket.status))
    )
    counts = {str(TicketStatus(status)): int(n) for status, n in counted.all()}
    return QueuePage(rows, rows[-1][0].id if more and rows else None, counts)
