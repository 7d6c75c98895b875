"""Ticket storage: plain async functions over a session the caller opened.

Keyword-only arguments; nothing here opens a session, begins or commits a transaction: the
service decides what one unit of work holds.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.db import as_utc
from helpdesk.models import (
    Agent,
    AgentRole,
    Attachment,
    Author,
    CsatRating,
    CsatResponse,
    Customer,
    HeldReply,
    Message,
    Outbox,
    OutboxStatus,
    PendingReply,
    PendingState,
    PresenceKind,
    Ticket,
    TicketEvent,
    TicketKind,
    TicketPresence,
    TicketStatus,
    Trust,
)
from helpdesk.photos import StoredPhoto

# Japan: "today" of the queue's due-today.
TOKYO = ZoneInfo("Asia/Tokyo")
# Statuses in which a ticket still waits for its first reply (a resolved or closed ticket
# is not overdue; one reopened without ever being answered is again).
AWAITING_STATUSES = (TicketStatus.new, TicketStatus.open, TicketStatus.pending)

# -- tickets -----------------------------------------------------------------------------------


async def find_ticket(session: AsyncSession, *, reference: str) -> Ticket | None:
    found = await session.execute(select(Ticket).where(col(Ticket.reference) == reference))
    return found.scalar_one_or_none()


async def lock_ticket(session: AsyncSession, *, ticket_id: int) -> Ticket:
    """The ticket row, locked until the transaction ends (``SELECT ... FOR UPDATE``).

    Raises ``LookupError`` when the ticket is gone.
    """
    ticket = await session.get(Ticket, ticket_id, with_for_update=True)
    if ticket is None:
        raise LookupError(f"ticket {ticket_id} not found")
    return ticket


async def ticket_by_submission_key(session: AsyncSession, *, key: str) -> Ticket | None:
    """The ticket a submission key already made, if any."""
    found = await session.execute(select(Ticket).where(col(Ticket.submission_key) == key))
    return found.scalar_one_or_none()


async def message_by_submission_key(session: AsyncSession, *, key: str) -> Message | None:
    """The message a submission key (a form's id, a mail's Message-ID) already made, if any."""
    found = await session.execute(select(Message).where(col(Message.submission_key) == key))
    return found.scalar_one_or_none()


async def active_admins(session: AsyncSession) -> list[Agent]:
    """The admins who may act (neither disabled nor removed), in the order they were added."""
    found = await session.execute(
        select(Agent)
        .where(
            col(Agent.role) == AgentRole.admin,
            col(Agent.disabled_at).is_(None),
            col(Agent.removed_at).is_(None),
        )
        .order_by(col(Agent.id))
    )
    return list(found.scalars().all())


async def pending_key_used(session: AsyncSession, *, key: str) -> bool:
    """Whether a held reply came with this submission key (the same mail twice)."""
    found = await session.execute(
        select(col(PendingReply.id)).where(col(PendingReply.submission_key) == key)
    )
    return found.first() is not None


async def pending_replies(
    session: AsyncSession, *, ticket_id: int | None, waiting: bool, limit: int
) -> list[tuple[PendingReply, Ticket, Agent]]:
    """Held replies (only those waiting when ``waiting``; of one ticket when ``ticket_id``)
    with their tickets and authors: oldest first when waiting, else newest first."""
    query = (
        select(PendingReply, Ticket, Agent)
        .join(Ticket, col(Ticket.id) == col(PendingReply.ticket_id))
        .join(Agent, col(Agent.id) == col(PendingReply.agent_id))
    )
    if ticket_id is not None:
        query = query.where(col(PendingReply.ticket_id) == ticket_id)
    if waiting:
        query = query.where(col(PendingReply.state) == PendingState.pending)
    order = col(PendingReply.id) if waiting else col(PendingReply.id).desc()
    found = await session.execute(query.order_by(order).limit(limit))
    return [(pending, ticket, agent) for pending, ticket, agent in found.all()]


async def message_key_used(session: AsyncSession, *, key: str) -> bool:
    found = await session.execute(select(col(Message.id)).where(col(Message.submission_key) == key))
    return found.first() is not None


# -- first-reply due times (the queue) ----------------------------------------------------------


def awaiting_first_reply() -> Any:
    """A condition: tickets with a due time, not answered yet, neither resolved nor closed."""
    return (
        col(Ticket.first_replied_at).is_(None)
        & col(Ticket.first_reply_due_at).is_not(None)
        & col(Ticket.status).in_(AWAITING_STATUSES)
    )


def overdue_condition(now: datetime) -> Any:
    """A condition: awaiting the first reply, and its due time has passed."""
    now = now.astimezone(UTC)  # stored in UTC: SQLite compares the text
    return awaiting_first_reply() & (col(Ticket.first_reply_due_at) <= now)


def due_today_condition(now: datetime, *, timezone: ZoneInfo = TOKYO) -> Any:
    """A condition: awaiting the first reply, due later today in Japan (not yet overdue)."""
    tomorrow = now.astimezone(timezone).date() + timedelta(days=1)
    end_of_day = datetime.combine(tomorrow, time(0), tzinfo=timezone).astimezone(UTC)
    now = now.astimezone(UTC)  # stored in UTC: SQLite compares the text
    return (
        awaiting_first_reply()
        & (col(Ticket.first_reply_due_at) > now)
        & (col(Ticket.first_reply_due_at) < end_of_day)
    )


async def overdue(session: AsyncSession, *, now: datetime, limit: int = 100) -> list[Ticket]:
    """Tickets whose first reply is overdue at ``now``, the longest overdue first."""
    query = (
        select(Ticket)
        .where(overdue_condition(now))
        .order_by(col(Ticket.first_reply_due_at), col(Ticket.id))
        .limit(limit)
    )
    return list((await session.execute(query)).scalars().all())


async def due_today(
    session: AsyncSession, *, now: datetime, timezone: ZoneInfo = TOKYO, limit: int = 100
) -> list[Ticket]:
    """Tickets whose first reply falls due later today (Japan's day), soonest first;
    overdue ones are in ``overdue``."""
    query = (
        select(Ticket)
        .where(due_today_condition(now, timezone=timezone))
        .order_by(col(Ticket.first_reply_due_at), col(Ticket.id))
        .limit(limit)
    )
    return list((await session.execute(query)).scalars().all())


async def tickets_without_due(
    session: AsyncSession, *, after_id: int = 0, limit: int
) -> list[tuple[int, datetime]]:
    """(id, created_at) of tickets after ``after_id`` that have no first-reply due time."""
    query = (
        select(col(Ticket.id), col(Ticket.created_at))
        .where(col(Ticket.first_reply_due_at).is_(None), col(Ticket.id) > after_id)
        .order_by(col(Ticket.id))
        .limit(limit)
    )
    return [(i, as_utc(c)) for i, c in (await session.execute(query)).all() if i is not None]


async def set_first_reply_due(session: AsyncSession, *, dues: Mapping[int, datetime]) -> None:
    """Store first-reply due times by ticket id (only where none is stored)."""
    for ticket_id, due in dues.items():
        await session.execute(
            update(Ticket)
            .where(col(Ticket.id) == ticket_id, col(Ticket.first_reply_due_at).is_(None))
            .values(first_reply_due_at=due)
        )


# -- spam ----------------------------------------------------------------------------------------


async def sender_is_spam(session: AsyncSession, *, email: str) -> bool:
    """Whether a ticket of this address is marked as spam (unmarking it clears this)."""
    found = await session.execute(
        select(col(Ticket.id))
        .join(Customer, col(Customer.id) == col(Ticket.customer_id))
        .where(col(Customer.email) == email.strip().lower(), col(Ticket.spam))
        .limit(1)
    )
    return found.first() is not None


# -- people ------------------------------------------------------------------------------------


async def customer_by_id(session: AsyncSession, *, customer_id: int) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise LookupError(f"customer {customer_id} not found")
    return customer


async def customer_for(session: AsyncSession, *, email: str, name: str) -> Customer:
    """The customer with this address, created with ``name`` if new (safe against a race)."""
    found = await session.execute(select(Customer).where(col(Customer.email) == email))
    customer = found.scalar_one_or_none()
    if customer is None:
        customer = Customer(email=email, name=name)
        try:
            async with session.begin_nested():
                session.add(customer)
        except IntegrityError:
            found = await session.execute(select(Customer).where(col(Customer.email) == email))
            customer = found.scalar_one()
    return customer


async def agent_by_email(session: AsyncSession, *, email: str) -> Agent | None:
    found = await session.execute(select(Agent).where(col(Agent.email) == email.lower()))
    return found.scalar_one_or_none()


async def agent_by_id(session: AsyncSession, *, agent_id: int) -> Agent | None:
    return await session.get(Agent, agent_id)


async def find_agent(session: AsyncSession, *, who: str) -> Agent | None:
    """The one active agent ``who`` names: an address or a full name, else a unique name
    prefix (disabled and removed agents are never assigned).

    「佐藤」 finds 「佐藤 花子」 when only one agent's name starts with it; None when no agent
    or several match.
    """
    who = unicodedata.normalize("NFKC", who).strip()
    active = col(Agent.disabled_at).is_(None) & col(Agent.removed_at).is_(None)
    found = await session.execute(
        select(Agent).where(active, (col(Agent.email) == who.lower()) | (col(Agent.name) == who))
    )
    agents = found.scalars().all()
    if len(agents) == 1:
        return agents[0]
    found = await session.execute(
        select(Agent).where(active, col(Agent.name).startswith(who, autoescape=True))
    )
    agents = found.scalars().all()
    return agents[0] if len(agents) == 1 else None


# -- what a ticket holds -----------------------------------------------------------------------


async def ticket_events(session: AsyncSession, *, ticket_id: int) -> list[TicketEvent]:
    found = await session.execute(
        select(TicketEvent)
        .where(col(TicketEvent.ticket_id) == ticket_id)
        .order_by(col(TicketEvent.id))
    )
    return list(found.scalars().all())


def _customer_visible() -> Any:
    """What the customer may see: their own verified messages and the agents' answers."""
    return col(Message.author).in_([Author.customer, Author.agent]) & (
        col(Message.trust) == Trust.verified
    )


async def conversation(
    session: AsyncSession, *, ticket_id: int, internal: bool
) -> list[tuple[Message, list[Attachment]]]:
    """Messages in order with their photos; internal notes and unverified messages only
    when ``internal``."""
    query = select(Message).where(col(Message.ticket_id) == ticket_id)
    if not internal:
        query = query.where(_customer_visible())
    messages = (await session.execute(query.order_by(col(Message.id)))).scalars().all()
    attachments = (
        (await session.execute(select(Attachment).where(col(Attachment.ticket_id) == ticket_id)))
        .scalars()
        .all()
    )
    by_message: dict[int | None, list[Attachment]] = {}
    for attachment in attachments:
        by_message.setdefault(attachment.message_id, []).append(attachment)
    return [(m, by_message.get(m.id, [])) for m in messages]


async def find_attachment(
    session: AsyncSession, *, ticket_id: int, digest: str, internal: bool = True
) -> Attachment | None:
    """The ticket's photo whose image or thumbnail has this digest; unless ``internal``,
    only a photo of a message the customer may see."""
    query = select(Attachment).where(
        col(Attachment.ticket_id) == ticket_id,
        (col(Attachment.digest) == digest) | (col(Attachment.thumb_digest) == digest),
    )
    if not internal:
        visible = select(col(Message.id)).where(
            col(Message.ticket_id) == ticket_id, _customer_visible()
        )
        query = query.where(col(Attachment.message_id).in_(visible))
    found = await session.execute(query)
    return found.scalars().first()


async def message_on_ticket(
    session: AsyncSession, *, ticket_id: int, message_id: int
) -> Message | None:
    """The message ``message_id`` if it is on this ticket."""
    message = await session.get(Message, message_id)
    return message if message is not None and message.ticket_id == ticket_id else None


async def event_exists(session: AsyncSession, *, kind: str, actor: str) -> bool:
    """Whether the audit trail holds an event of ``kind`` by ``actor`` (any ticket)."""
    found = await session.execute(
        select(col(TicketEvent.id)).where(
            col(TicketEvent.kind) == kind, col(TicketEvent.actor) == actor
        )
    )
    return found.first() is not None


def add_event(
    session: AsyncSession,
    *,
    ticket_id: int | None,
    kind: str,
    actor: str,
    data: Mapping[str, Any] | None = None,
    created_at: datetime | None = None,
) -> TicketEvent:
    """Add an entry to the audit trail (``data`` as JSON, Japanese kept readable);
    ``created_at``: the time of the change it records (now by default)."""
    event = TicketEvent(
        ticket_id=ticket_id,
        kind=kind,
        actor=actor,
        data=json.dumps(dict(data or {}), ensure_ascii=False),
    )
    if created_at is not None:
        event.created_at = created_at
    session.add(event)
    return event


def add_attachments(
    session: AsyncSession,
    *,
    ticket_id: int,
    message_id: int | None,
    photos: Mapping[str, StoredPhoto],
) -> list[Attachment]:
    """Attach cleaned photos (already in the media folder) to a message, by field name."""
    attachments = [
        Attachment(
            ticket_id=ticket_id,
            message_id=message_id,
            field=name,
            digest=photo.digest,
            thumb_digest=photo.thumb_digest,
            content_type=photo.content_type,
            size=photo.size,
            width=photo.width,
            height=photo.height,
            filename=photo.original_filename[:120],
        )
        for name, photo in photos.items()
    ]
    session.add_all(attachments)
    return attachments


# -- mail --------------------------------------------------------------------------------------


async def customer_thread(session: AsyncSession, *, ticket_id: int, email: str) -> list[str]:
    """The Message-IDs of the conversation by mail with the customer, oldest first: the
    mails we sent them about the ticket and their own verified mails on it."""
    sent = await session.execute(
        select(col(Outbox.created_at), col(Outbox.id), col(Outbox.message_id)).where(
            col(Outbox.ticket_id) == ticket_id, col(Outbox.to_address) == email
        )
    )
    received = await session.execute(
        select(col(Message.created_at), col(Message.id), col(Message.mail_id)).where(
            col(Message.ticket_id) == ticket_id,
            col(Message.author) == Author.customer,
            col(Message.trust) == Trust.verified,
            col(Message.mail_id).is_not(None),
        )
    )
    # At the same instant, the customer's mail came first (a ticket made from it, then
    # our confirmation).
    dated: list[tuple[datetime, int, int | None, str | None]] = [
        (as_utc(when), 1, number, mail_id) for when, number, mail_id in sent.all()
    ]
    dated += [(as_utc(when), 0, number, mail_id) for when, number, mail_id in received.all()]
    return [mail_id for *_, mail_id in sorted(dated) if mail_id]


async def automatic_mail_count(
    session: AsyncSession, *, to: str, since: datetime, origin: str | None = None
) -> int:
    """How many automatic mails were queued to ``to`` since ``since``.

    With ``origin``, only those of that origin (``col(Outbox.origin)``); mail queued before
    origins were recorded has none and counts for no origin.
    """
    query = select(func.count()).where(
        col(Outbox.to_address) == to, col(Outbox.automatic), col(Outbox.created_at) >= since
    )
    if origin is not None:
        query = query.where(col(Outbox.origin) == origin)
    return int((await session.execute(query)).scalar_one())


async def mail_queued(session: AsyncSession, *, ticket_id: int, kind: str) -> bool:
    """Whether a mail of ``kind`` was queued for the ticket."""
    found = await session.execute(
        select(col(Outbox.id))
        .where(col(Outbox.ticket_id) == ticket_id, col(Outbox.kind) == kind)
        .limit(1)
    )
    return found.first() is not None


# -- satisfaction surveys ----------------------------------------------------------------------


async def add_survey(
    session: AsyncSession, *, ticket: Ticket, agent_id: int | None, now: datetime
) -> CsatResponse:
    """The survey of the ticket's next resolution (1, 2, ...); the ticket row is locked."""
    found = await session.execute(
        select(func.max(col(CsatResponse.resolution))).where(
            col(CsatResponse.ticket_id) == ticket.id
        )
    )
    assert ticket.id is not None
    survey = CsatResponse(
        ticket_id=ticket.id,
        resolution=int(found.scalar_one() or 0) + 1,
        agent_id=agent_id,
        kind=ticket.kind,
        created_at=now,
    )
    session.add(survey)
    await session.flush()
    return survey


async def latest_survey(session: AsyncSession, *, ticket_id: int) -> CsatResponse | None:
    """The survey of the ticket's latest resolution, if it was ever resolved."""
    found = await session.execute(
        select(CsatResponse)
        .where(col(CsatResponse.ticket_id) == ticket_id)
        .order_by(col(CsatResponse.resolution).desc())
        .limit(1)
    )
    return found.scalar_one_or_none()


async def survey(session: AsyncSession, *, ticket_id: int, resolution: int) -> CsatResponse | None:
    found = await session.execute(
        select(CsatResponse).where(
            col(CsatResponse.ticket_id) == ticket_id, col(CsatResponse.resolution) == resolution
        )
    )
    return found.scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class CsatTally:
    """Satisfaction for one agent or kind: surveys sent, and the answers."""

    key: Any  # an agent id (None: nobody assigned, resolved without an agent) or a kind
    sent: int
    good: int
    improve: int

    @property
    def answered(self) -> int:
        return self.good + self.improve

    @property
    def score(self) -> float | None:
        """The share of 良かった among the answers (None without answers)."""
        return self.good / self.answered if self.answered else None


async def _csat_by(
    session: AsyncSession, column: Any, start: datetime, end: datetime
) -> list[CsatTally]:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    query = (
        select(
            column,
            func.count(),
            func.sum(case((col(CsatResponse.rating) == CsatRating.good, 1), else_=0)),
            func.sum(case((col(CsatResponse.rating) == CsatRating.improve, 1), else_=0)),
        )
        .where(col(CsatResponse.created_at) >= start, col(CsatResponse.created_at) < end)
        .group_by(column)
    )
    found = (await session.execute(query)).all()
    tallies = [CsatTally(key, int(n), int(good or 0), int(bad or 0)) for key, n, good, bad in found]
    return sorted(tallies, key=lambda t: (t.key is None, str(t.key)))


async def csat_by_agent(
    session: AsyncSession, *, start: datetime, end: datetime
) -> list[CsatTally]:
    """Satisfaction per agent (``key``: the agent's id) of tickets resolved in
    ``[start, end)``; an agent with no survey in the range is not listed."""
    return await _csat_by(session, col(CsatResponse.agent_id), start, end)


async def csat_by_kind(session: AsyncSession, *, start: datetime, end: datetime) -> list[CsatTally]:
    """Satisfaction per kind of ticket (``key``: a ``TicketKind``) resolved in
    ``[start, end)``."""
    tallies = await _csat_by(session, col(CsatResponse.kind), start, end)
    return [CsatTally(TicketKind(t.key), t.sent, t.good, t.improve) for t in tallies]


async def csat_comments(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    agent_ids: Sequence[int] | None = None,
    limit: int = 100,
) -> list[CsatResponse]:
    """Answers with a comment (already masked) of tickets resolved in ``[start, end)``,
    newest first; only these agents' when ``agent_ids`` is given."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    query = select(CsatResponse).where(
        col(CsatResponse.created_at) >= start,
        col(CsatResponse.created_at) < end,
        col(CsatResponse.comment).is_not(None),
    )
    if agent_ids is not None:
        query = query.where(col(CsatResponse.agent_id).in_(agent_ids))
    query = query.order_by(col(CsatResponse.created_at).desc(), col(CsatResponse.id).desc()).limit(
        limit
    )
    return list((await session.execute(query)).scalars().all())


# -- the ticket page: other tickets, merging, double handling ------------------------------------


async def customer_tickets(
    session: AsyncSession, *, customer_id: int, exclude: int, limit: int = 20
) -> list[Ticket]:
    """The customer's other tickets, newest first (merged duplicates left out)."""
    found = await session.execute(
        select(Ticket)
        .where(
            col(Ticket.customer_id) == customer_id,
            col(Ticket.id) != exclude,
            col(Ticket.merged_into_id).is_(None),
        )
        .order_by(col(Ticket.id).desc())
        .limit(limit)
    )
    return list(found.scalars().all())


async def merged_target(session: AsyncSession, *, ticket: Ticket, limit: int = 10) -> Ticket:
    """The ticket a merged one now lives in (following merges of merges); itself if none."""
    current = ticket
    for _ in range(limit):
        if current.merged_into_id is None:
            return current
        found = await session.get(Ticket, current.merged_into_id)
        if found is None:
            return current
        current = found
    return current


async def move_ticket_contents(session: AsyncSession, *, source_id: int, target_id: int) -> None:
    """Move a ticket's messages, photos, history, mail (sent and queued), replies held for
    a confirmation and replies awaiting approval (or decided) onto another ticket: what an
    agent answers by mail, confirms or approves is checked against, and sent on, the ticket
    that holds the conversation. Who had the old page open is forgotten."""
    for model in (Message, Attachment, TicketEvent, Outbox, HeldReply, PendingReply):
        await session.execute(
            update(model).where(col(model.ticket_id) == source_id).values(ticket_id=target_id)
        )
    await session.execute(delete(TicketPresence).where(col(TicketPresence.ticket_id) == source_id))


def _other_agents_replies(ticket_id: int, actor: str) -> Any:
    return (
        (col(Message.ticket_id) == ticket_id)
        & (col(Message.author) == Author.agent)
        & or_(col(Message.sender).is_(None), col(Message.sender) != actor)
    )


async def answered_meanwhile(
    session: AsyncSession, *, ticket_id: int, actor: str, since: datetime | None, unsent: bool
) -> list[Message]:
    """What makes a reply by ``actor`` a possible double answer (二重対応防止): other
    agents' replies and the customer's own messages written after ``since`` (when the agent
    saw the ticket) and, with ``unsent``, other agents' replies whose mail has not left yet
    (the reply mails of a ticket leave in order: those made after the last one that left)."""
    conditions = []
    if since is not None:
        customer = (
            (col(Message.ticket_id) == ticket_id)
            & (col(Message.author) == Author.customer)
            & (col(Message.trust) == Trust.verified)
        )
        conditions.append(
            (col(Message.created_at) > since)
            & or_(_other_agents_replies(ticket_id, actor), customer)
        )
    if unsent:
        waiting = await session.execute(
            select(func.count())
            .select_from(Outbox)
            .where(
                col(Outbox.ticket_id) == ticket_id,
                col(Outbox.kind) == "agent_reply",
                col(Outbox.status).in_([OutboxStatus.queued, OutboxStatus.sending]),
            )
        )
        if waiting.scalar_one():
            left = await session.execute(
                select(func.max(Outbox.created_at)).where(
                    col(Outbox.ticket_id) == ticket_id,
                    col(Outbox.kind) == "agent_reply",
                    col(Outbox.status).in_([OutboxStatus.sent, OutboxStatus.dead]),
                )
            )
            last_left = left.scalar_one_or_none()
            condition = _other_agents_replies(ticket_id, actor)
            if last_left is not None:
                condition = condition & (col(Message.created_at) > as_utc(last_left))
            conditions.append(condition)
    if not conditions:
        return []
    found = await session.execute(select(Message).where(or_(*conditions)).order_by(col(Message.id)))
    return list(found.scalars().all())


# Changes by someone else that make a reply a possible double answer: the ticket was
# resolved or closed, given to an agent, or merged away.
CHANGES_THAT_MATTER = ("status_changed", "assigned", "merged")


async def changed_meanwhile(
    session: AsyncSession, *, ticket_id: int, actor: str, since: datetime | None
) -> list[TicketEvent]:
    """Other agents' changes to the ticket since ``since`` that matter to a reply (its
    status, its assignee, a merge); the customer's reopening goes with their message."""
    if since is None:
        return []
    found = await session.execute(
        select(TicketEvent)
        .where(
            col(TicketEvent.ticket_id) == ticket_id,
            col(TicketEvent.kind).in_(CHANGES_THAT_MATTER),
            col(TicketEvent.created_at) > since,
            col(TicketEvent.actor).not_in([actor, "customer", "system"]),
        )
        .order_by(col(TicketEvent.id))
    )
    return list(found.scalars().all())


async def mail_sent_at(
    session: AsyncSession, *, ticket_id: int, ids: Sequence[str]
) -> datetime | None:
    """When the newest of our mails on this ticket among ``ids`` (a reply's In-Reply-To and
    References) was made: what the agent answering it had seen."""
    if not ids:
        return None
    found = await session.execute(
        select(func.max(Outbox.created_at)).where(
            col(Outbox.ticket_id) == ticket_id, col(Outbox.message_id).in_(list(ids))
        )
    )
    moment = found.scalar_one_or_none()
    return as_utc(moment) if moment is not None else None


async def pending_held_reply(
    session: AsyncSession, *, ticket_id: int, agent_id: int
) -> HeldReply | None:
    found = await session.execute(
        select(HeldReply)
        .where(
            col(HeldReply.ticket_id) == ticket_id,
            col(HeldReply.agent_id) == agent_id,
            col(HeldReply.released_at).is_(None),
        )
        .order_by(col(HeldReply.id).desc())
        .limit(1)
    )
    return found.scalar_one_or_none()


async def see_ticket(
    session: AsyncSession, *, ticket_id: int, agent_id: int, kind: PresenceKind, now: datetime
) -> None:
    """Record that the agent has the ticket open (viewing or typing) now."""
    found = await session.execute(
        update(TicketPresence)
        .where(col(TicketPresence.ticket_id) == ticket_id, col(TicketPresence.agent_id) == agent_id)
        .values(kind=kind, last_seen=now)
    )
    if getattr(found, "rowcount", 0):
        return
    try:
        async with session.begin_nested():
            session.add(
                TicketPresence(ticket_id=ticket_id, agent_id=agent_id, kind=kind, last_seen=now)
            )
    except IntegrityError:  # another request of the same agent made the row meanwhile
        await session.execute(
            update(TicketPresence)
            .where(
                col(TicketPresence.ticket_id) == ticket_id,
                col(TicketPresence.agent_id) == agent_id,
            )
            .values(kind=kind, last_seen=now)
        )


async def leave_ticket(session: AsyncSession, *, ticket_id: int, agent_id: int) -> None:
    await session.execute(
        delete(TicketPresence).where(
            col(TicketPresence.ticket_id) == ticket_id, col(TicketPresence.agent_id) == agent_id
        )
    )


async def present(
    session: AsyncSession, *, ticket_id: int, since: datetime, exclude: int | None = None
) -> list[tuple[Agent, PresenceKind, datetime]]:
    """The agents seen on the ticket since ``since`` (but ``exclude``), with what they do."""
    query = (
        select(Agent, col(TicketPresence.kind), col(TicketPresence.last_seen))
        .join(Agent, col(Agent.id) == col(TicketPresence.agent_id))
        .where(col(TicketPresence.ticket_id) == ticket_id, col(TicketPresence.last_seen) >= since)
        .order_by(col(TicketPresence.last_seen).desc())
    )
    if exclude is not None:
        query = query.where(col(TicketPresence.agent_id) != exclude)
    found = await session.execute(query)
    return [(agent, kind, as_utc(seen)) for agent, kind, seen in found.all()]
