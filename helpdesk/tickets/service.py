"""The ticket use cases: submit a ticket, add a customer's message, apply agents' commands.

Each use case is one transaction. Every change leaves an event in the audit trail and
queues its mail (``notify``) in that same transaction; commands arrive as data
(``commands``), so mail and the console share one set of rules.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from faq import ShopPolicy
from helpdesk.db import as_utc, utcnow
from helpdesk.models import (
    Agent,
    Attachment,
    Author,
    Customer,
    Message,
    Ticket,
    TicketEvent,
    TicketStatus,
    Trust,
)
from helpdesk.photos import StoredPhoto
from helpdesk.tickets import redact, store
from helpdesk.tickets.access import Signer, TicketAccess
from helpdesk.tickets.commands import (
    AcceptMessage,
    Actor,
    ActorRole,
    AddNote,
    Assign,
    Command,
    Reply,
    SetPriority,
    SetStatus,
)
from helpdesk.tickets.notify import AgentChange, Notifier
from helpdesk.tickets.rules import (
    REOPENED_BY_CUSTOMER,
    Submission,
    command_problems,
    first_message,
    is_email_address,
    subject_for,
    unknown_assignee,
)
from helpdesk.tickets.urls import TicketUrls

CONFLICT = (
    "ページを開いたあとに、このお問い合わせは更新されています。"
    "最新の内容を確認してから、もう一度操作してください。"
)
# The body stored for a message that has none (a bare "#note").
NO_BODY = "(本文なし)"


def not_acceptable(message_id: int) -> str:
    return (
        f"メッセージ {message_id} は、このチケットの未確認のメッセージではありません。"
        "担当者用ページの「未確認」のメッセージに表示された番号を指定してください。"
    )


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of ``TicketService.apply``: with problems, nothing changed."""

    problems: tuple[str, ...] = ()
    duplicate: bool = False  # the same submission key was applied before: nothing done again
    conflict: bool = False  # the ticket changed since ``expected_version``

    @property
    def ok(self) -> bool:
        return not self.problems


def version_of(ticket: Ticket) -> str:
    """The ticket's version for optimistic concurrency: changes with every update."""
    return as_utc(ticket.updated_at).isoformat()


@dataclass(slots=True)
class _Unit:
    """One ``apply``: the locked ticket and what the commands did so far."""

    session: AsyncSession
    ticket: Ticket
    actor: Actor
    submission_key: str | None
    assignees: dict[str, Agent]
    held: dict[int, Message]
    old_status: str
    status_commanded: bool = False
    reply: str | None = None
    internal: bool = False
    now: datetime = field(default_factory=utcnow)

    def event(self, kind: str, **data: Any) -> None:
        store.add_event(
            self.session, ticket_id=self.ticket.id, kind=kind, actor=self.actor.address, data=data
        )

    def message(self, author: Author, body: str) -> None:
        self.session.add(
            Message(
                ticket_id=self.ticket.id,  # type: ignore[arg-type]
                author=author,
                author_name=self.actor.name,
                body=body or NO_BODY,
                submission_key=self.submission_key,
                created_at=self.now,
            )
        )


async def _accept(unit: _Unit, command: AcceptMessage) -> None:
    """The held message becomes the customer's: shown to them, and the ticket opens again
    as it would have had the customer's own mail arrived."""
    message = unit.held[command.message_id]
    unit.event("message_accepted", message=message.id, trust=message.trust, sender=message.sender)
    message.trust = Trust.verified
    message.author = Author.customer
    if unit.ticket.status in REOPENED_BY_CUSTOMER:
        unit.event("status_changed", old=unit.ticket.status, new=TicketStatus.open)
        unit.ticket.status = TicketStatus.open


async def _assign(unit: _Unit, command: Assign) -> None:
    assignee = unit.assignees[command.who]
    if assignee.id != unit.ticket.assignee_id:
        unit.event("assigned", to=assignee.email)
        unit.ticket.assignee_id = assignee.id


async def _set_priority(unit: _Unit, command: SetPriority) -> None:
    if command.priority != unit.ticket.priority:
        unit.event("priority_changed", old=unit.ticket.priority, new=command.priority)
        unit.ticket.priority = command.priority


async def _set_status(unit: _Unit, command: SetStatus) -> None:
    unit.status_commanded = True
    if command.status != unit.ticket.status:
        unit.event("status_changed", old=unit.ticket.status, new=command.status)
        unit.ticket.status = command.status


async def _add_note(unit: _Unit, command: AddNote) -> None:
    unit.internal = True
    unit.message(Author.note, command.body)
    unit.event("note")


async def _reply(unit: _Unit, command: Reply) -> None:
    if not unit.status_commanded and unit.ticket.status == TicketStatus.new:
        unit.ticket.status = TicketStatus.open  # answered: the case is being handled
    unit.reply = command.body
    unit.message(Author.agent, command.body)
    unit.event("agent_reply")


# One handler per command, in the order they apply whatever order they came in: accepting
# a held message (which may reopen), the assignment, the priority, the status, then the
# message (which may depend on the status).
_HANDLERS: dict[type, Callable[[_Unit, Any], Awaitable[None]]] = {
    AcceptMessage: _accept,
    Assign: _assign,
    SetPriority: _set_priority,
    SetStatus: _set_status,
    AddNote: _add_note,
    Reply: _reply,
}
_ORDER = {kind: index for index, kind in enumerate(_HANDLERS)}


class TicketService:
    """Creates tickets and changes them; every change leaves an event in the audit trail."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        policy: ShopPolicy,
        secret_key: str,
        base_url: str,
        support_address: str,
        automatic_mail_limit: int = 10,
    ) -> None:
        self.sessions = sessions
        self.policy = policy
        self.support_address = support_address
        self.access = TicketAccess(Signer(secret_key), support_address=support_address)
        self.urls = TicketUrls(base_url, self.access)
        self.notify = Notifier(
            policy=policy,
            access=self.access,
            urls=self.urls,
            support_address=support_address,
            automatic_mail_limit=automatic_mail_limit,
        )

    # -- reading ---------------------------------------------------------------------------

    async def find(self, reference: str) -> Ticket | None:
        async with self.sessions() as session:
            return await store.find_ticket(session, reference=reference)

    async def open_for_customer(self, reference: str, token: str | None) -> Ticket | None:
        """The ticket when the token matches; None for a wrong token or reference alike."""
        ticket = await self.find(reference)
        return ticket if ticket is not None and self.access.check_token(ticket, token) else None

    async def open_for_agent(self, reference: str, key: str | None) -> Ticket | None:
        """The ticket when the agent key matches; None otherwise."""
        ticket = await self.find(reference)
        return ticket if ticket is not None and self.access.check_agent_key(ticket, key) else None

    async def details(self, ticket: Ticket) -> tuple[Customer, Agent | None, list[TicketEvent]]:
        async with self.sessions() as session:
            customer = await store.customer_by_id(session, customer_id=ticket.customer_id)
            agent = (
                await store.agent_by_id(session, agent_id=ticket.assignee_id)
                if ticket.assignee_id
                else None
            )
            events = await store.ticket_events(session, ticket_id=ticket.id)  # type: ignore[arg-type]
            return customer, agent, events

    async def conversation(
        self, ticket: Ticket, *, internal: bool = False
    ) -> list[tuple[Message, list[Attachment]]]:
        """The ticket's messages with their photos.

        For the customer (not ``internal``): only their verified messages and the agents'
        answers, as copies redacted for them (``redact.for_customer``); agents see all.
        """
        async with self.sessions() as session:
            found = await store.conversation(
                session,
                ticket_id=ticket.id,  # type: ignore[arg-type]
                internal=internal,
            )
        if internal:
            return found
        secrets = self.access.agent_secrets(ticket)
        return [
            (
                Message(
                    id=message.id,
                    ticket_id=message.ticket_id,
                    author=message.author,
                    body=redact.for_customer(message.body, secrets=secrets),
                    created_at=message.created_at,
                ),
                attachments,
            )
            for message, attachments in found
        ]

    async def attachment(
        self, ticket: Ticket, digest: str, *, internal: bool = False
    ) -> Attachment | None:
        """A photo of the ticket; for the customer, only one of a message they may see."""
        async with self.sessions() as session:
            return await store.find_attachment(
                session,
                ticket_id=ticket.id,  # type: ignore[arg-type]
                digest=digest,
                internal=internal,
            )

    # -- a new ticket ----------------------------------------------------------------------

    async def submit(
        self,
        submission: Submission,
        photos: Mapping[str, StoredPhoto],
        *,
        late: bool,
        submission_key: str | None = None,
        deflection: Mapping[str, list[str]] | None = None,
        channel: str = "web",
        confirm: bool = True,
        mail_id: str | None = None,
        subject: str | None = None,
    ) -> tuple[Ticket, bool]:
        """Create the ticket with its first message, photos, events and confirmation mail.

        Returns ``(ticket, created)``; a repeated ``submission_key`` (reload, double click)
        from the same e-mail address returns the first ticket with ``created`` False. Keys
        are scoped by address, so nobody reaches another person's ticket through a key.
        ``mail_id`` is the Message-ID of the mail the ticket was made from (our answers
        thread under it); ``subject`` replaces the subject made from the submission.
        """
        if submission_key:
            scope = f"{channel}:{submission.email}:{submission_key}"
            submission_key = hashlib.sha256(scope.encode()).hexdigest()
            if (ticket := await self._ticket_by_key(submission_key)) is not None:
                return ticket, False
        try:
            ticket = await self._create(
                submission,
                photos,
                late=late,
                submission_key=submission_key,
                deflection=deflection,
                channel=channel,
                confirm=confirm,
                mail_id=mail_id,
                subject=subject,
            )
            return ticket, True
        except IntegrityError:
            # Two submits raced on the same key: the other one won.
            if not submission_key:
                raise
            ticket = await self._ticket_by_key(submission_key)  # type: ignore[assignment]
            assert ticket is not None
            return ticket, False

    async def _ticket_by_key(self, key: str) -> Ticket | None:
        async with self.sessions() as session:
            return await store.ticket_by_submission_key(session, key=key)

    async def _create(
        self,
        submission: Submission,
        photos: Mapping[str, StoredPhoto],
        *,
        late: bool,
        submission_key: str | None,
        deflection: Mapping[str, list[str]] | None,
        channel: str,
        confirm: bool,
        mail_id: str | None,
        subject: str | None,
    ) -> Ticket:
        now = utcnow()
        system = Actor.system().address
        async with self.sessions() as session, session.begin():
            customer = await store.customer_for(
                session, email=submission.email, name=submission.name
            )
            ticket = Ticket(
                reference=f"pending-{secrets.token_hex(8)}",
                token_nonce=secrets.token_urlsafe(16),
                submission_key=submission_key,
                kind=submission.kind,
                customer_id=customer.id,  # type: ignore[arg-type]
                order_number=submission.order_number,
                arrived_on=submission.arrived_on,
                late=late,
                desired_variant=submission.desired_variant,
                category=submission.category,
                subject=(subject or subject_for(submission))[:200],
                created_at=now,
                updated_at=now,
            )
            session.add(ticket)
            await session.flush()
            # The id is unique across workers and databases; the reference is made from it.
            ticket.reference = f"HD-{self.policy.local(now):%y}-{ticket.id:05d}"
            message = Message(
                ticket_id=ticket.id,  # type: ignore[arg-type]
                author=Author.customer,
                author_name=submission.name,
                body=first_message(submission),
                sender=submission.email if mail_id else None,
                mail_id=mail_id,
                created_at=now,
            )
            session.add(message)
            await session.flush()
            attachments = store.add_attachments(
                session,
                ticket_id=ticket.id,  # type: ignore[arg-type]
                message_id=message.id,
                photos=photos,
            )

            def event(kind: str, actor: str, **data: Any) -> None:
                store.add_event(session, ticket_id=ticket.id, kind=kind, actor=actor, data=data)

            event("created", submission.email, channel=channel)
            if late:
                today = self.policy.local(now).date()
                days = (today - submission.arrived_on).days if submission.arrived_on else None
                event("flagged_late", system, days=days)
            for kind, ids in (deflection or {}).items():
                if ids:
                    event(f"deflection_{kind}", system, ids=ids)
            await self.notify.ticket_created(
                session,
                ticket,
                customer,
                submission,
                attachments,
                confirm=confirm,
            )
        return ticket

    # -- the customer writes again ---------------------------------------------------------

    async def add_customer_message(
        self,
        ticket: Ticket,
        body: str,
        photos: Mapping[str, StoredPhoto],
        *,
        submission_key: str | None = None,
        sender: str | None = None,
        sender_name: str | None = None,
        trust: Trust = Trust.verified,
        mail_id: str | None = None,
    ) -> Message:
        """Append a message on the customer's side of the ticket.

        A ``verified`` message is the customer's own: the agents hear of it and a waiting,
        resolved or closed ticket opens again. Any other ``trust`` holds the message for
        agents (「未確認」 with its ``sender``): the customer never sees it, nothing reopens,
        and the agents are told (once per sender for an unregistered one) until one of them
        accepts it (``AcceptMessage``).

        A repeated ``submission_key`` returns the message already stored.
        """
        if submission_key and (message := await self._message_by_key(submission_key)):
            return message
        try:
            return await self._add_customer_message(
                ticket, body, photos, submission_key, sender, sender_name, trust, mail_id
            )
        except IntegrityError:
            if not submission_key:
                raise
            message = await self._message_by_key(submission_key)
            assert message is not None
            return message

    async def _message_by_key(self, key: str) -> Message | None:
        async with self.sessions() as session:
            return await store.message_by_submission_key(session, key=key)

    async def _add_customer_message(
        self,
        ticket: Ticket,
        body: str,
        photos: Mapping[str, StoredPhoto],
        submission_key: str | None,
        sender: str | None,
        sender_name: str | None,
        trust: Trust,
        mail_id: str | None,
    ) -> Message:
        now = utcnow()
        async with self.sessions() as session, session.begin():
            current = await store.lock_ticket(session, ticket_id=ticket.id)  # type: ignore[arg-type]
            customer = await store.customer_by_id(session, customer_id=current.customer_id)
            verified = trust is Trust.verified
            message = Message(
                ticket_id=current.id,  # type: ignore[arg-type]
                author=Author.customer,
                author_name=(customer.name if verified else sender_name or sender or "")[:254],
                body=body or "(写真を追加しました)",
                submission_key=submission_key,
                trust=trust,
                sender=sender,
                mail_id=mail_id,
                created_at=now,
            )
            session.add(message)
            await session.flush()
            attachments = store.add_attachments(
                session,
                ticket_id=current.id,  # type: ignore[arg-type]
                message_id=message.id,
                photos={f"photo_{i + 1}": photo for i, photo in enumerate(photos.values())},
            )
            store.add_event(
                session,
                ticket_id=current.id,
                kind="customer_message" if verified else "message_held",
                actor=sender or customer.email,
                data={} if verified else {"message": message.id, "trust": trust},
            )
            await self.notify.customer_wrote(session, current, customer, message, attachments)
            if current.status in REOPENED_BY_CUSTOMER and verified:
                store.add_event(
                    session,
                    ticket_id=current.id,
                    kind="status_changed",
                    # Recorded as "customer" (not the address) since the first release.
                    actor=ActorRole.customer,
                    data={"old": current.status, "new": TicketStatus.open},
                )
                current.status = TicketStatus.open
            current.updated_at = now
        ticket.status, ticket.updated_at = current.status, current.updated_at
        return message

    # -- agents' commands ------------------------------------------------------------------

    async def apply(
        self,
        ticket: Ticket,
        actor: Actor,
        commands: Sequence[Command],
        *,
        submission_key: str | None = None,
        expected_version: str | None = None,
    ) -> ApplyResult:
        """Apply an agent's commands in one transaction, with the ticket row locked.

        Everything is checked first: with any problem (Japanese, for the agent: every one
        found) nothing changes. Commands apply in a fixed order (accepting a held message,
        assignment, priority, status, message), each leaving its event; then ``notify``
        queues what the customer is told: a reply (mentioning a new status), or a short
        status mail, or nothing for an internal note.

        ``submission_key`` makes a repeat (the same mail delivered twice) a no-op with
        ``duplicate`` set. ``expected_version`` (``version_of`` the ticket the agent saw)
        refuses the change with ``conflict`` set when the ticket changed since.

        Raises ``ValueError`` for a customer as the actor (customers write through
        ``add_customer_message``).
        """
        if actor.role is ActorRole.customer:
            raise ValueError("customers do not apply commands; use add_customer_message")
        commands = tuple(commands)
        async with self.sessions() as session, session.begin():
            current = await store.lock_ticket(session, ticket_id=ticket.id)  # type: ignore[arg-type]
            customer = await store.customer_by_id(session, customer_id=current.customer_id)
            assignees: dict[str, Agent] = {}
            held: dict[int, Message] = {}
            problems = command_problems(commands)
            problems += await self._lookups(session, current, commands, assignees, held)
            if problems:
                return ApplyResult(tuple(problems))
            if submission_key and await store.message_key_used(session, key=submission_key):
                return ApplyResult(duplicate=True)  # the same mail delivered twice
            if expected_version is not None and version_of(current) != expected_version:
                return ApplyResult((CONFLICT,), conflict=True)
            unit = _Unit(session, current, actor, submission_key, assignees, held, current.status)
            for command in sorted(commands, key=lambda c: _ORDER[type(c)]):
                await _HANDLERS[type(command)](unit, command)
            change = AgentChange(unit.old_status, reply=unit.reply, internal=unit.internal)
            await self.notify.agent_changed(session, current, customer, change)
            current.updated_at = unit.now
        ticket.status, ticket.priority = current.status, current.priority
        ticket.assignee_id, ticket.updated_at = current.assignee_id, current.updated_at
        return ApplyResult()

    async def problems(self, ticket: Ticket, commands: Sequence[Command]) -> list[str]:
        """Everything ``apply`` would refuse in ``commands``, changing nothing: a mail's
        every problem is told to the agent at once."""
        commands = tuple(commands)
        found = command_problems(commands)
        async with self.sessions() as session:
            found += await self._lookups(session, ticket, commands, {}, {})
        return found

    @staticmethod
    async def _lookups(
        session: AsyncSession,
        ticket: Ticket,
        commands: Sequence[Command],
        assignees: dict[str, Agent],
        held: dict[int, Message],
    ) -> list[str]:
        """Find what the commands name (agents, held messages); the problems if not found."""
        problems: list[str] = []
        for command in commands:
            if isinstance(command, Assign):
                agent = await store.find_agent(session, who=command.who)
                if agent is None:
                    problems.append(unknown_assignee(command.who))
                else:
                    assignees[command.who] = agent
            elif isinstance(command, AcceptMessage):
                message = await store.message_on_ticket(
                    session,
                    ticket_id=ticket.id,  # type: ignore[arg-type]
                    message_id=command.message_id,
                )
                if message is None or message.trust is Trust.verified:
                    problems.append(not_acceptable(command.message_id))
                else:
                    held[command.message_id] = message
        return problems

    # -- agents ----------------------------------------------------------------------------

    async def add_agent(self, email: str, name: str) -> Agent:
        """Register (or rename) the agent with this address; ``ValueError`` for a bad one."""
        email = email.strip().lower()
        if not is_email_address(email):
            raise ValueError(f"not an e-mail address: {email!r}")
        async with self.sessions() as session, session.begin():
            agent = await store.agent_by_email(session, email=email)
            if agent is None:
                agent = Agent(email=email, name=name.strip() or email)
                session.add(agent)
            else:
                agent.name = name.strip() or agent.name
        return agent

    async def agent_by_email(self, email: str) -> Agent | None:
        async with self.sessions() as session:
            return await store.agent_by_email(session, email=email)

    # -- the audit trail and the support inbox ---------------------------------------------

    async def record_event(self, ticket_id: int, kind: str, actor: str, **data: Any) -> None:
        async with self.sessions() as session, session.begin():
            store.add_event(session, ticket_id=ticket_id, kind=kind, actor=actor, data=data)

    async def queue_agent_error(self, agent: Agent, ticket: Ticket, problems: str) -> None:
        """Mail the agent why their reply's commands did nothing."""
        async with self.sessions() as session, session.begin():
            await self.notify.agent_error(session, agent, ticket, problems)
