"""Database tables. Times are stored in UTC (see ``helpdesk.db.utcnow``)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow


def _created_at() -> datetime:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


# A customer's "was this answer helpful?" vote under one FAQ answer.
class FaqFeedback(SQLModel, table=True):
    __tablename__ = "faq_feedback"

    id: int | None = Field(default=None, primary_key=True)
    entry_id: str = Field(max_length=100, index=True)
    helpful: bool
    query: str | None = Field(default=None, max_length=500)
    created_at: datetime = _created_at()


# A query the bot could not answer with confidence, with personal data masked.
class FaqGap(SQLModel, table=True):
    __tablename__ = "faq_gap"
    # Insights read the gaps of a day (``helpdesk.insights.rollup``).
    __table_args__ = (Index("ix_faq_gap_created_at", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    query: str = Field(max_length=500)
    confidence: float
    best_entry_id: str | None = Field(default=None, max_length=100)
    created_at: datetime = _created_at()


# -- the knowledge base as edited in the console (issue 11) ------------------------------------


# One saved state of an FAQ entry, a category or the shop's synonyms, made in the console.
# The latest revision of a key overrides ``data/faq`` (and ``data/synonyms.toml``); the
# files stay the starting point of a fresh install. Rows are never changed or deleted.
class FaqRevision(SQLModel, table=True):
    __tablename__ = "faq_revision"
    __table_args__ = (Index("ix_faq_revision_key", "kind", "key", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    # "entry" (key: the entry's id), "category" (key: its name in the files, or the name it
    # was created with) or "synonyms" (key: "synonyms").
    kind: str = Field(max_length=20)
    key: str = Field(max_length=100)
    # "published", "draft" or "retired" (a category or the synonyms: published or retired).
    status: str = Field(max_length=20)
    # The whole state as JSON (an entry as in the TOML files; a category's name and
    # position; the synonym groups).
    data: str = Field(sa_column=Column(Text, nullable=False))
    # What changed since the previous state, for people: field names.
    changes: str = Field(default="", max_length=500)
    agent_id: int | None = Field(default=None, foreign_key="agent.id")
    agent_name: str = Field(max_length=100)
    # The gap group this change answers (``helpdesk.faq_gaps``), or the ticket it came from.
    source: str | None = Field(default=None, max_length=200, index=True)
    created_at: datetime = _created_at()


# The knowledge base's version: bumped with every revision, read by every worker every
# few seconds to know when to rebuild its index. One row (id 1).
class FaqKbVersion(SQLModel, table=True):
    __tablename__ = "faq_kb_version"

    id: int = Field(default=1, primary_key=True)
    version: int = Field(default=0)
    updated_at: datetime = _created_at()


class StrEnumType(TypeDecorator[Any]):
    """A ``StrEnum`` kept as its value in a plain VARCHAR column, read back as the enum.

    The column is the same as a string column (no migration, SQLite and PostgreSQL alike);
    a value outside the enum is refused on write (``ValueError``) instead of being stored.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


# -- tickets -------------------------------------------------------------------------------


class TicketKind(StrEnum):
    defect = "defect"  # ① 不良品
    wrong_item = "wrong_item"  # ① 誤発送
    exchange = "exchange"  # ② 注文誤り (size or colour)
    inquiry = "inquiry"  # everything else, through the general contact form


class TicketStatus(StrEnum):
    new = "new"
    open = "open"
    pending = "pending"
    resolved = "resolved"
    closed = "closed"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Author(StrEnum):
    customer = "customer"
    agent = "agent"
    note = "note"  # internal note: never shown to the customer
    system = "system"


class Trust(StrEnum):
    """Whether a message is known to come from the ticket's customer (issues 7 and 8).

    Only ``verified`` messages reach the customer's page or mail, or reopen a ticket; the
    others are held for agents, marked 「未確認」 with their sender, until an agent accepts
    one (``AcceptMessage``).
    """

    verified = "verified"  # the form, the status page, our signed address or our thread
    weak_thread = "weak_thread"  # the customer's From, threaded by subject (or by ids not ours)
    third_party = "third_party"  # someone other than the customer wrote on the ticket
    unregistered = "unregistered"  # an unregistered address answered on the agents' address


# A person who wrote to the shop; one row per e-mail address. The name is the one given
# first; each ticket keeps the name given with it (``Ticket.customer_name``).
class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=100)
    created_at: datetime = _created_at()


class AgentRole(StrEnum):
    agent = "agent"
    admin = "admin"  # also manages agents and the shop's settings in the console


# A support agent: acts by e-mail and, once a password is set, in the console. A removed
# agent's row stays (marked ``removed_at``) so that the audit trail keeps its meaning.
class Agent(SQLModel, table=True):
    __tablename__ = "agent"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=100)
    role: AgentRole = Field(
        default=AgentRole.agent,
        sa_type=StrEnumType(AgentRole, 20),
        sa_column_kwargs={"server_default": AgentRole.agent.value},
    )
    # argon2id (``helpdesk.agents.passwords``); None until the agent sets one.
    password_hash: str | None = Field(default=None, max_length=255)
    # The one-time link to set a password: SHA-256 of its random token (never the token).
    password_token_hash: str | None = Field(default=None, max_length=64, unique=True)
    password_token_expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Part of every session cookie: bumped on a password change, disabling or removal, so
    # that every session signed before ends at once.
    session_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    disabled_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    removed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Replies of this agent wait for another agent's approval (the approval feature).
    needs_approval: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = _created_at()

    @property
    def active(self) -> bool:
        """May act (by mail or in the console): neither disabled nor removed."""
        return self.disabled_at is None and self.removed_at is None

    @property
    def is_admin(self) -> bool:
        return self.role is AgentRole.admin


def _moment() -> Any:
    """An optional time (UTC), such as when something first happened."""
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


# The statuses of unfinished tickets, as SQL: the queue's condition and its partial index
# must be written alike (a database uses a partial index only for the very same condition).
ACTIVE_STATUS_SQL = "status IN ('new', 'open', 'pending')"


# One case: a return, a defect, an exchange or an inquiry.
class Ticket(SQLModel, table=True):
    __tablename__ = "ticket"
    # The queue's "overdue" and "due today": tickets not answered yet, by due time.
    __table_args__ = (
        Index("ix_ticket_first_reply", "first_replied_at", "first_reply_due_at"),
        # Insights: the tickets created in a day (and their kind), read from the index alone.
        Index("ix_ticket_created_kind", "created_at", "kind"),
        # Insights: how many are overdue now, read from the index alone, without visiting
        # the tickets closed without a reply (spam, duplicates), which only grow.
        Index("ix_ticket_awaiting", "status", "first_replied_at", "first_reply_due_at"),
        # The console's queue: by status, oldest first (keyset pagination on created_at, id).
        Index("ix_ticket_queue", "status", "created_at", "id"),
        Index("ix_ticket_created", "created_at", "id"),
        # The default queue (new, open, pending): a partial index, so that the oldest
        # unfinished tickets are found without stepping over the finished ones before them.
        Index(
            "ix_ticket_active",
            "created_at",
            "id",
            sqlite_where=text(ACTIVE_STATUS_SQL),
            postgresql_where=text(ACTIVE_STATUS_SQL),
        ),
        Index("ix_ticket_assignee_queue", "assignee_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=32, unique=True, index=True)
    # Random per ticket; the customer's access token is an HMAC over reference and nonce.
    token_nonce: str = Field(max_length=64)
    # The form's one-time submission id: a double submit finds the first ticket.
    submission_key: str | None = Field(default=None, max_length=64, unique=True)
    # What the submission held (``rules.submission_fingerprint``): a repeated key must match.
    submission_fingerprint: str | None = Field(default=None, max_length=64)
    kind: TicketKind = Field(sa_type=StrEnumType(TicketKind, 20), index=True)
    status: TicketStatus = Field(
        default=TicketStatus.new, sa_type=StrEnumType(TicketStatus, 20), index=True
    )
    priority: Priority = Field(default=Priority.normal, sa_type=StrEnumType(Priority, 20))
    customer_id: int = Field(foreign_key="customer.id", index=True)
    # The name given with this ticket: mails and pages of the ticket use it, never the name
    # someone else once gave for the same address.
    customer_name: str = Field(max_length=100)
    assignee_id: int | None = Field(default=None, foreign_key="agent.id")
    order_number: str | None = Field(default=None, max_length=50)
    arrived_on: date | None = None
    late: bool = False
    desired_variant: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=40)
    subject: str = Field(max_length=200)
    # When the first reply is due, in the support calendar's business hours (data/shop.toml
    # [support]); None without a support calendar.
    first_reply_due_at: datetime | None = _moment()
    # When an agent's first reply to the customer was made (notes do not count).
    first_replied_at: datetime | None = _moment()
    # Set when the ticket was merged into another (a duplicate): its messages, photos and
    # history moved there; its customer's links and mail lead there.
    merged_into_id: int | None = Field(default=None, foreign_key="ticket.id")
    # The customer's latest verified message and the agents' latest reply: the queue's
    # "waiting on the customer" and "customer replied" compare them.
    last_customer_at: datetime | None = _moment()
    last_replied_at: datetime | None = _moment()
    # Marked as spam by an agent: hidden from the queue; its sender's later mail is kept
    # but opens no ticket and sends no mail (``TicketService``, ``helpdesk.mail.inbound``).
    spam: bool = Field(default=False, index=True, sa_column_kwargs={"server_default": false()})
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()


class PresenceKind(StrEnum):
    viewing = "viewing"  # has the ticket page open
    typing = "typing"  # is writing a reply or a note on it


# Who has a ticket open in the console (二重対応防止): one row per ticket and agent,
# refreshed by the page while it stays open; rows older than a minute mean nothing.
class TicketPresence(SQLModel, table=True):
    __tablename__ = "ticket_presence"
    __table_args__ = (UniqueConstraint("ticket_id", "agent_id", name="uq_ticket_presence"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    agent_id: int = Field(foreign_key="agent.id")
    kind: PresenceKind = Field(sa_type=StrEnumType(PresenceKind, 20))
    last_seen: datetime = _created_at()


# An agent's mailed reply held because another agent answered the customer meanwhile
# (二重対応防止): the agent was mailed the other answer and confirms with ``#confirm``.
# ``commands`` is the JSON of the held commands (``commands.to_data``).
class HeldReply(SQLModel, table=True):
    __tablename__ = "held_reply"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    agent_id: int = Field(foreign_key="agent.id")
    commands: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _created_at()
    # When it was sent after a confirmation, or set aside by a newer held reply.
    released_at: datetime | None = _moment()


# What was said on a ticket, by whom; notes stay internal.
class Message(SQLModel, table=True):
    __tablename__ = "message"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    author: Author = Field(sa_type=StrEnumType(Author, 20))
    author_name: str | None = Field(default=None, max_length=254)
    body: str = Field(sa_column=Column(Text, nullable=False))
    # A form's one-time id (or an e-mail's Message-ID), hashed with the ticket's id so that
    # keys of different tickets never meet: a repeated submit adds nothing.
    submission_key: str | None = Field(default=None, max_length=250, unique=True)
    # What the message held (``rules.message_fingerprint``): a repeated key must match.
    submission_fingerprint: str | None = Field(default=None, max_length=64)
    trust: Trust = Field(
        default=Trust.verified,
        sa_type=StrEnumType(Trust, 20),
        sa_column_kwargs={"server_default": Trust.verified.value},
    )
    # The address a mailed message came from (who wrote an unverified one). Indexed: an
    # erasure finds what an address wrote on other customers' tickets.
    sender: str | None = Field(default=None, max_length=254, index=True)
    # The Message-ID of the mail that carried it: customers' mails thread our answers.
    mail_id: str | None = Field(default=None, max_length=250, index=True)
    created_at: datetime = _created_at()

    @property
    def verified(self) -> bool:
        return self.trust is Trust.verified


# A cleaned photo (content-addressed in the media folder) on a ticket or a message.
class Attachment(SQLModel, table=True):
    __tablename__ = "attachment"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    # Indexed: erasing a message finds its photos without reading the whole table.
    message_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    field: str = Field(max_length=40)
    # Indexed: the photo sweep asks which stored files are still referenced.
    digest: str = Field(max_length=64, index=True)
    thumb_digest: str = Field(max_length=64, index=True)
    content_type: str = Field(max_length=50)
    size: int
    width: int
    height: int
    filename: str = Field(max_length=120)
    created_at: datetime = _created_at()


# The audit trail: every change to a ticket, who made it and when.
class TicketEvent(SQLModel, table=True):
    __tablename__ = "ticket_event"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    kind: str = Field(max_length=40, index=True)
    # Indexed: an erasure finds the events a customer's address made on no ticket.
    actor: str = Field(max_length=254, index=True)
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    created_at: datetime = _created_at()


class CsatRating(StrEnum):
    good = "good"  # 良かった
    improve = "improve"  # 改善してほしい


# A satisfaction survey sent when a ticket was resolved, and the customer's answer once
# given (``rating`` None: not answered). One per resolution: a ticket reopened and resolved
# again gets a fresh one. ``agent_id`` and ``kind`` are as they were at the resolution.
class CsatResponse(SQLModel, table=True):
    __tablename__ = "csat_response"
    __table_args__ = (
        UniqueConstraint("ticket_id", "resolution", name="uq_csat_response_ticket_resolution"),
        # Insights: CSAT per kind and agent over a range, read from the index alone.
        Index("ix_csat_response_tally", "created_at", "kind", "agent_id", "rating"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    # 1 for the ticket's first resolution, 2 after it was reopened and resolved again ...
    resolution: int
    # The assignee at the resolution, else the agent who resolved it.
    agent_id: int | None = Field(default=None, foreign_key="agent.id", index=True)
    kind: TicketKind = Field(sa_type=StrEnumType(TicketKind, 20))
    rating: CsatRating | None = Field(default=None, sa_type=StrEnumType(CsatRating, 20))
    # The customer's optional comment, with addresses, phone and order numbers masked:
    # personal data (the privacy inventory lists it).
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Whether the mail carrying the survey was queued (the hourly cap may have held it).
    mailed: bool = True
    # When the ticket was resolved (the survey sent); results are counted by it.
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True),
    )
    answered_at: datetime | None = _moment()


# -- mail ------------------------------------------------------------------------------------


class OutboxStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    dead = "dead"  # gave up after repeated failures; agents see it


# The transactional outbox: a mail is written with the change that causes it, sent later.
class Outbox(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    kind: str = Field(max_length=40)
    to_address: str = Field(max_length=254, index=True)
    subject: str = Field(max_length=300)
    text: str = Field(sa_column=Column(Text, nullable=False))
    html: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    message_id: str = Field(max_length=250, unique=True)
    reply_to: str | None = Field(default=None, max_length=254)
    in_reply_to: str | None = Field(default=None, max_length=250)
    references: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # JSON list of {"digest", "filename", "content_type"} of cleaned photos to attach.
    attachments: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    automatic: bool = True
    # Who caused an automatic mail ("client:203.0.113.5", "mail", "agents"): the hourly cap
    # counts per address and origin, so nobody spends another's confirmations.
    origin: str | None = Field(default=None, max_length=100)
    status: str = Field(default=OutboxStatus.queued, max_length=20, index=True)
    attempts: int = 0
    next_attempt_at: datetime = _created_at()
    # While a sender holds the row ("sending"), others leave it alone until this time.
    lease_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # When the row became dead, and when agents were told about it (in a notification).
    dead_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    dead_reported_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    created_at: datetime = _created_at()


class InboundStatus(StrEnum):
    received = "received"  # stored, being processed (``next_attempt_at``: until when)
    retry = "retry"  # failed for a temporary cause: processed again at ``next_attempt_at``
    processed = "processed"
    ignored = "ignored"  # automatic mail, loops: kept but not acted on
    failed = "failed"  # could not be parsed or applied: agents look at it


# Every message received, stored raw before it is parsed: nothing is ever dropped.
class InboundMail(SQLModel, table=True):
    __tablename__ = "inbound_mail"

    id: int | None = Field(default=None, primary_key=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Indexed, as ``from_address``: for an erasure.
    envelope_from: str | None = Field(default=None, max_length=254, index=True)
    envelope_to: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    message_id: str | None = Field(default=None, max_length=250, index=True)
    # Indexed: an erasure finds the mail an address sent that reached no ticket.
    from_address: str | None = Field(default=None, max_length=254, index=True)
    subject: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default=InboundStatus.received, max_length=20, index=True)
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    # Processing runs started, counted (and committed) before each one: a message that
    # kills the process is not run again and again (issue 7).
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # "received": the lease of the run in progress; "retry": when to try again.
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    received_at: datetime = _created_at()


# -- replies: saved replies and approval ----------------------------------------------------


# A saved reply (テンプレート): text agents insert in the reply box, with placeholders such as
# {お客様名} filled in from the ticket (``helpdesk.replies.placeholders``). Admins edit them.
class SavedReply(SQLModel, table=True):
    __tablename__ = "saved_reply"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=100, unique=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    category: str | None = Field(default=None, max_length=40)
    # The address of the agent who saved it last.
    updated_by: str = Field(max_length=254)
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()


class PendingState(StrEnum):
    pending = "pending"  # waiting for an admin
    approved = "approved"  # sent (through ``TicketService.apply``)
    rejected = "rejected"  # never sent


# A reply of an agent who needs approval (``Agent.needs_approval``): kept here, not sent and
# not shown to the customer, until an admin approves (perhaps edited) or rejects it.
class PendingReply(SQLModel, table=True):
    __tablename__ = "pending_reply"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    # The status the agent set with the reply: it waits with it (the reply mail says it).
    status: TicketStatus | None = Field(default=None, sa_type=StrEnumType(TicketStatus, 20))
    channel: str = Field(max_length=20)
    state: PendingState = Field(
        default=PendingState.pending, sa_type=StrEnumType(PendingState, 20), index=True
    )
    # The mail's submission key (``service.message_key``): the same mail twice waits once.
    submission_key: str | None = Field(default=None, max_length=250, unique=True)
    decided_by: str | None = Field(default=None, max_length=254)
    decided_at: datetime | None = _moment()
    # Approved with the admin's edits (the message sent holds the text as sent).
    edited: bool = False
    # Why an admin rejected it, told to the agent.
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _created_at()


# -- insights (helpdesk/insights) --------------------------------------------------------------


# The FAQ's questions of one day in Japan, counted as they are asked (the questions
# themselves are not kept, only the gaps are): cheap counters, added to in batches.
class FaqDaily(SQLModel, table=True):
    __tablename__ = "faq_daily"

    day: date = Field(primary_key=True)
    # Questions asked (FAQ pages, the chat, the search API; not the forms' suggestions).
    asked: int = 0
    # ... of which the bot answered with confidence.
    answered: int = 0
    # Ticket forms on which FAQ answers were suggested (counted once per form).
    suggested: int = 0


# A day (in Japan) whose rollups below are complete: closed days are computed once, by
# ``helpdesk.insights.rollup`` (tickets are never deleted and never change kind, and the
# facts counted, a creation and a first reply, belong to the day they happened).
class InsightDay(SQLModel, table=True):
    __tablename__ = "insight_day"

    day: date = Field(primary_key=True)
    rolled_at: datetime = _created_at()


# Tickets of one day and kind: created that day, first replied that day.
class InsightTickets(SQLModel, table=True):
    __tablename__ = "insight_tickets"

    day: date = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=20)
    created: int = 0
    # Created that day with FAQ answers suggested on the form, and sent all the same.
    sent_after_suggestions: int = 0
    # First replies made that day ...
    replied: int = 0
    # ... of which after their due time.
    replied_late: int = 0


# First replies of one day and kind by their time in business minutes (a histogram, see
# ``helpdesk.insights.queries.minutes_bucket``): percentiles over any range of days.
class InsightReplyTime(SQLModel, table=True):
    __tablename__ = "insight_reply_time"

    day: date = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=20)
    minutes: int = Field(primary_key=True)
    count: int = 0


# Unanswered FAQ questions of one day, grouped by their normalized text.
class InsightGap(SQLModel, table=True):
    __tablename__ = "insight_gap"
    # The range's counts of a few groups (today's), without reading every group's rows.
    __table_args__ = (Index("ix_insight_gap_key_day", "key", "day", "count"),)

    day: date = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=200)
    count: int = 0
    # One of the questions as asked (masked), shown for the group.
    sample: str = Field(max_length=500)


# -- privacy (issue 12) ----------------------------------------------------------------------


class PrivacyRequestKind(StrEnum):
    export = "export"  # a copy of the customer's data (a ZIP mailed as a link)
    erasure = "erasure"  # the customer's data erased (helpdesk.privacy.erasure)


class PrivacyRequestState(StrEnum):
    pending = "pending"  # confirmed by the customer (or made by an agent), not carried out
    running = "running"  # being carried out: a crash leaves it here, and it is resumed
    done = "done"
    failed = "failed"  # an export that could not be built (an erasure is resumed instead)


# A customer's request about their data, confirmed through the link mailed to the address,
# and the persisted task that carries it out: its preview, its progress (``cursor``: the
# last ticket id done; ``pending_digests``: photo files still to delete) and its counts.
# It holds no personal data itself: the customer's id, the request's own ticket, numbers.
class PrivacyRequest(SQLModel, table=True):
    __tablename__ = "privacy_request"

    id: int | None = Field(default=None, primary_key=True)
    kind: PrivacyRequestKind = Field(sa_type=StrEnumType(PrivacyRequestKind, 20))
    state: PrivacyRequestState = Field(
        default=PrivacyRequestState.pending,
        sa_type=StrEnumType(PrivacyRequestState, 20),
        index=True,
    )
    customer_id: int = Field(foreign_key="customer.id", index=True)
    # The ticket agents follow the request on (category "privacy").
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    # When it must be carried out by: the shop policy's deletion_days after it was made.
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # JSON counts: what will go (the preview), what went (the progress, then the result).
    preview: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    progress: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    cursor: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # JSON list of photo digests whose rows are gone and whose files may still be deleted.
    pending_digests: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # An export's ZIP under var/exports (its name: random); deleted when the link expires.
    export_file: str | None = Field(default=None, max_length=100)
    expires_at: datetime | None = _moment()
    started_at: datetime | None = _moment()
    finished_at: datetime | None = _moment()
    created_at: datetime = _created_at()


# The privacy audit log: every privacy action, who made it and on what, with no personal
# data: ids, an HMAC of the address (``helpdesk.privacy.audit.subject_hash``) and counts.
class PrivacyAudit(SQLModel, table=True):
    __tablename__ = "privacy_audit"

    id: int | None = Field(default=None, primary_key=True)
    action: str = Field(max_length=40, index=True)
    # "agent:<id>", "customer", "system"
    actor: str = Field(max_length=40)
    subject_hash: str | None = Field(default=None, max_length=64, index=True)
    customer_id: int | None = None
    ticket_id: int | None = None
    request_id: int | None = None
    # JSON: counts and field names only.
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    created_at: datetime = _created_at()


# Production runtime (issue 13): the leader's heartbeat, daily job runs, shared rate limits.


# The process running the deployment's background work, as it last reported itself.
class LeaderHeartbeat(SQLModel, table=True):
    __tablename__ = "leader_heartbeat"

    name: str = Field(primary_key=True, max_length=40)
    holder: str = Field(max_length=200)  # "host:pid"
    since: datetime = _created_at()
    heartbeat_at: datetime = _created_at()


# One run of a daily job on one day (Asia/Tokyo): inserted before the job runs, so two
# leaders in a handover never both run it (the unique key decides).
class JobRun(SQLModel, table=True):
    __tablename__ = "job_run"
    __table_args__ = (UniqueConstraint("name", "day", name="uq_job_run_name_day"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    day: date
    holder: str = Field(max_length=200)
    started_at: datetime = _created_at()
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Runs started: a run cut off by a crash is taken over once by the next leader.
    attempts: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


# Rate-limit hits per key in fixed windows, shared by every worker.
class RateCounter(SQLModel, table=True):
    __tablename__ = "rate_counter"

    key: str = Field(primary_key=True, max_length=200)
    window_start: int = Field(primary_key=True)  # Unix seconds, a multiple of the window
    hits: int = 0
    expires_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )


# Failed logins per key (``account:...``, ``client:...``), shared by every worker.
class LoginFailure(SQLModel, table=True):
    __tablename__ = "login_failure"

    key: str = Field(primary_key=True, max_length=300)
    failures: int = 0
    last_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
