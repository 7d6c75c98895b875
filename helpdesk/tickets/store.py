"""Ticket storage: plain async functions over a session the caller opened.

Keyword-only arguments; nothing here opens a session, begins or commits a transaction: the
service decides what one unit of work holds.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.db import as_utc
from helpdesk.models import (
    Agent,
    Attachment,
    Author,
    Customer,
    Message,
    Outbox,
    Ticket,
    TicketEvent,
    Trust,
)
from helpdesk.photos import StoredPhoto

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


async def message_key_used(session: AsyncSession, *, key: str) -> bool:
    found = await session.execute(select(col(Message.id)).where(col(Message.submission_key) == key))
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
) -> TicketEvent:
    """Add an entry to the audit trail (``data`` as JSON, Japanese kept readable)."""
    event = TicketEvent(
        ticket_id=ticket_id,
        kind=kind,
        actor=actor,
        data=json.dumps(dict(data or {}), ensure_ascii=False),
    )
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
    dated = [(as_utc(when), 1, number, mail_id) for when, number, mail_id in sent.all()]
    dated += [(as_utc(when), 0, number, mail_id) for when, number, mail_id in received.all()]  # type: ignore[misc]
    return [mail_id for *_, mail_id in sorted(dated)]


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
