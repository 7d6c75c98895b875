"""The ticket use cases: submit a ticket, add a customer's message, apply agents' commands.

Each use case is one transaction. Every change leaves an event in the audit trail and
queues its mail (``notify``) in that same transaction; commands arrive as data
(``commands``), so mail and the console share one set of rules.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from faq import ShopPolicy
from helpdesk.db import as_utc, utcnow
from helpdesk.metrics import TICKETS_CREATED
from helpdesk.models import (
    Agent,
    Attachment,
    Author,
    CsatResponse,
    Customer,
    HeldReply,
    Message,
    PendingReply,
    PendingState,
    PresenceKind,
    Ticket,
    TicketEvent,
    TicketStatus,
    Trust,
)
from helpdesk.photos import StoredPhoto
from helpdesk.privacy.masking import mask_card_numbers
from helpdesk.tickets import queue, redact, search, store
from helpdesk.tickets.access import Signer, TicketAccess
from helpdesk.tickets.addresses import AddressError, normalize_address
from helpdesk.tickets.commands import (
    AcceptMessage,
    Actor,
    ActorRole,
    AddNote,
    Assign,
    Channel,
    Command,
    Confirm,
    MarkSpam,
    Merge,
    Reply,
    SetPriority,
    SetStatus,
    from_data,
    to_data,
)
from helpdesk.tickets.csat import CsatService
from helpdesk.tickets.labels import event_sentence
from helpdesk.tickets.notify import AgentChange, Notifier
from helpdesk.tickets.rules import (
    MAX_NAME,
    REOPENED_BY_CUSTOMER,
    Submission,
    command_problems,
    first_message,
    message_fingerprint,
    subject_for,
    submission_fingerprint,
    unknown_assignee,
)
from helpdesk.tickets.text import name_from_mail
from helpdesk.tickets.urls import TicketUrls

CONFLICT = (
    "ページを開いたあとに、このお問い合わせは更新されています。"
    "最新の内容を確認してから、もう一度操作してください。"
)
# A reply refused because the ticket was answered meanwhile (二重対応防止).
ANSWERED_MEANWHILE = (
    "このページを開いたあとに、ほかの担当者の返信・対応またはお客様からのメッセージがありました。"
    "二重の回答を防ぐため、返信はまだ送信していません。"
)
APPROVED_MEANWHILE = (
    "この返信が承認を待つあいだに、ほかの担当者の返信・対応またはお客様からのメッセージが"
    "ありました。二重の回答を防ぐため、まだ送信していません。チケットを確認のうえ、送る場合は"
    "もう一度「承認して送信」を押してください。"
)
NOTHING_HELD = (
    "確認を待っている返信はありません(すでに送信したか、新しい返信に置き換えられました)。"
)
# How long a page's presence (viewing or typing) counts after its last refresh.
PRESENCE_SECONDS = 60
# The body stored for a message that has none (a bare "#note").
NO_BODY = "(本文なし)"
# Origins of automatic mail (``Outbox.origin``) other than a client's address.
MAIL_ORIGIN = "mail"
AGENTS_ORIGIN = "agents"
# Tickets given a first-reply due time per transaction when the app starts.
BACKFILL_BATCH = 500
# While no reply was sent and the due time has passed, the status page says this instead
# of a date gone by.
REPLY_LATE = (
    "ご返信が遅くなっており、申し訳ございません。順に対応しておりますので、"
    "いましばらくお待ちください。"
)


def without_card_numbers(submission: Submission) -> tuple[Submission, list[str]]:
    """The submission with card numbers removed from every field typed, and those fields."""
    changes: dict[str, Any] = {}
    for name in ("name", "description", "desired_variant", "order_number"):
        value = getattr(submission, name)
        if value:
            masked, found = mask_card_numbers(value)
            if found:
                changes[name] = masked
    return (replace(submission, **changes) if changes else submission), sorted(changes)


class SubmissionConflict(Exception):
    """A submission key came back with other content: nothing is made, nothing handed over.

    ``message`` is the Japanese sentence for the form or the API (HTTP 409).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


TICKET_KEY_CONFLICT = (
    "この送信キー(Idempotency-Key またはフォームの送信番号)は、内容の異なる別の送信に"
    "すでに使われています。内容をご確認のうえ、もう一度送信してください。"
)
MESSAGE_KEY_CONFLICT = (
    "このメッセージは、別の内容ですでに送信されています。"
    "内容をご確認のうえ、もう一度送信してください。"
)


def client_origin(client: str | None) -> str | None:
    """The ``Outbox.origin`` of mail a web or API client caused."""
    return f"client:{client}"[:100] if client else None


def message_key(ticket_id: int, key: str) -> str:
    """A message's submission key, scoped to its ticket: two tickets' keys never meet."""
    return hashlib.sha256(f"ticket:{ticket_id}:{key}".encode()).hexdigest()


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
    conflict: bool = False  # the ticket changed since ``expected_version`` or ``seen_at``
    # A reply refused (web) or held (mail) as a possible double answer: what came meanwhile.
    meanwhile: tuple[Message, ...] = ()
    changes: tuple[TicketEvent, ...] = ()  # and other agents' changes that matter
    held: bool = False  # a mailed reply was held and its agent asked to confirm it
    # The reply waits for an admin's approval (its ``PendingReply`` id): nothing was sent.
    awaiting_approval: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


PENDING_NOT_FOUND = "この承認待ちの返信は見つかりません。"
APPROVERS_ONLY = "返信を承認・差し戻しできるのは管理者だけです。"
OWN_REPLY = "ご自身の返信は承認・差し戻しできません。ほかの管理者に依頼してください。"


def already_decided(state: PendingState) -> str:
    done = "承認して送信" if state is PendingState.approved else "差し戻し"
    return f"この返信はすでに{done}されています。"


@dataclass(frozen=True, slots=True)
class _Approval:
    """``apply`` sends a held reply: ``by`` (an admin) approved it, perhaps ``edited``."""

    pending_id: int
    by: Agent
    edited: bool


def version_of(ticket: Ticket) -> str:
    """The ticket's version for optimistic concurrency: changes with every update."""
    return as_utc(ticket.updated_at).isoformat()


def seen_at_of(version: str) -> datetime | None:
    """The moment a ``version_of`` names (when the agent saw the ticket); None if garbled."""
    try:
        return as_utc(datetime.fromisoformat(version))
    except ValueError:
        return None


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
    merge_target: Ticket | None = None
    status_commanded: bool = False
    reply: str | None = None
    internal: bool = False
    resolved: bool = False  # the status became "resolved": a satisfaction survey goes out
    now: datetime = field(default_factory=utcnow)

    def event(self, kind: str, **data: Any) -> None:
        # At the change's own time, as its messages and the ticket's version (``version_of``).
        store.add_event(
            self.session,
            ticket_id=self.ticket.id,
            kind=kind,
            actor=self.actor.address,
            data=data,
            created_at=self.now,
        )

    def message(self, author: Author, body: str) -> None:
        self.session.add(
            Message(
                ticket_id=self.ticket.id,  # type: ignore[arg-type]
                author=author,
                author_name=self.actor.name,
                # Who wrote it: another agent's reply is told apart from one's own.
                sender=self.actor.address[:254],
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


async def _mark_spam(unit: _Unit, command: MarkSpam) -> None:
    if command.spam != unit.ticket.spam:
        unit.event("marked_spam" if command.spam else "unmarked_spam")
        unit.ticket.spam = command.spam


async def _set_status(unit: _Unit, command: SetStatus) -> None:
    unit.status_commanded = True
    if command.status != unit.ticket.status:
        unit.event("status_changed", old=unit.ticket.status, new=command.status)
        unit.ticket.status = command.status
        unit.resolved = command.status == TicketStatus.resolved


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
    unit.ticket.last_replied_at = unit.now
    if unit.ticket.first_replied_at is None:
        unit.ticket.first_replied_at = unit.now


async def _merge(unit: _Unit, command: Merge) -> None:
    """Everything of this ticket moves to the target; this one is closed, pointing there
    (its customer's link and mail replies lead there). The customer is not mailed."""
    target = unit.merge_target
    assert target is not None and target.id is not None and unit.ticket.id is not None
    await store.move_ticket_contents(unit.session, source_id=unit.ticket.id, target_id=target.id)
    store.add_event(
        unit.session,
        ticket_id=target.id,
        kind="merged",
        actor=unit.actor.address,
        data={"from": unit.ticket.reference},
        created_at=unit.now,
    )
    unit.event("merged_into", into=target.reference)
    if unit.ticket.status != TicketStatus.closed:
        unit.event("status_changed", old=unit.ticket.status, new=TicketStatus.closed)
        unit.ticket.status = TicketStatus.closed
    unit.ticket.merged_into_id = target.id
    unit.internal = True  # nothing is mailed for a merge
    target.updated_at = unit.now
    # The queue's "waiting on the customer" and "customer replied" see the moved messages.
    for name in ("last_customer_at", "last_replied_at"):
        moved, kept = getattr(unit.ticket, name), getattr(target, name)
        if moved is not None and (kept is None or as_utc(moved) > as_utc(kept)):
            setattr(target, name, moved)


def _with_held(held: HeldReply, commands: Sequence[Command]) -> tuple[Command, ...]:
    """The held reply's commands, each replaced by one of the same kind given with the
    confirmation (a new text replaces the held one), and the confirmation's others."""
    given = {type(command): command for command in commands if not isinstance(command, Confirm)}
    kept = [c for c in from_data(json.loads(held.commands)) if type(c) not in given]
    return (*kept, *given.values())


# One handler per command, in the order they apply whatever order they came in: accepting
# a held message (which may reopen), the assignment, the priority, the status, then the
# message (which may depend on the status).
_HANDLERS: dict[type, Callable[[_Unit, Any], Awaitable[None]]] = {
    AcceptMessage: _accept,
    Assign: _assign,
    SetPriority: _set_priority,
    MarkSpam: _mark_spam,
    SetStatus: _set_status,
    AddNote: _add_note,
    Reply: _reply,
    Merge: _merge,
}
_ORDER = {kind: index for index, kind in enumerate(_HANDLERS)}


class TicketService:
    """Creates tickets and changes them; every change leaves an event in the audit trail."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        policy: ShopPolicy | Callable[[], ShopPolicy],
        secret_key: str,
        base_url: str,
        support_address: str,
        automatic_mail_limit: int = 10,
        automatic_mail_address_limit: int = 50,
    ) -> None:
        self.sessions = sessions
        # The running app passes a function: edits of data/shop.toml apply without a restart.
        self._policy: Callable[[], ShopPolicy] = policy if callable(policy) else lambda: policy
        self.support_address = support_address
        self.access = TicketAccess(Signer(secret_key), support_address=support_address)
        self.urls = TicketUrls(base_url, self.access)
        self.csat = CsatService(sessions, access=self.access, urls=self.urls, policy=self._policy)
        self.notify = Notifier(
            policy=self._policy,
            csat=self.csat,
            access=self.access,
            urls=self.urls,
            support_address=support_address,
            automatic_mail_limit=automatic_mail_limit,
            automatic_mail_address_limit=automatic_mail_address_limit,
        )

    @property
    def policy(self) -> ShopPolicy:
        return self._policy()

    # -- reading ---------------------------------------------------------------------------

    async def find(self, reference: str) -> Ticket | None:
        async with self.sessions() as session:
            return await store.find_ticket(session, reference=reference)

    async def open_for_customer(self, reference: str, token: str | None) -> Ticket | None:
        """The ticket when the token matches; None for a wrong token or reference alike."""
        ticket = await self.find(reference)
        return ticket if ticket is not None and self.access.check_token(ticket, token) else None

    async def newest(self, *, limit: int = 50) -> list[tuple[Ticket, Agent | None]]:
        """The most recently created tickets with their assignees, newest first."""
        async with self.sessions() as session:
            found = await session.execute(
                select(Ticket, Agent)
                .outerjoin(Agent, col(Ticket.assignee_id) == col(Agent.id))
                .order_by(col(Ticket.id).desc())
                .limit(limit)
            )
            return [(ticket, agent) for ticket, agent in found.all()]

    async def queue(
        self, filters: queue.QueueFilter, *, agent: Agent, now: datetime | None = None
    ) -> queue.QueuePage:
        """One page of the console's queue (``helpdesk.tickets.queue``), searched by
        ``filters.q`` when given."""
        terms = await search.query_terms_async(filters.q) if filters.q else []
        async with self.sessions() as session:
            return await queue.queue_page(
                session, filters=filters, agent_id=agent.id, now=now or utcnow(), terms=terms
            )

    async def agents(self) -> list[Agent]:
        """Agents who may be assigned (neither disabled nor removed), by name."""
        async with self.sessions() as session:
            found = await session.execute(
                select(Agent)
                .where(col(Agent.disabled_at).is_(None), col(Agent.removed_at).is_(None))
                .order_by(col(Agent.name), col(Agent.id))
            )
            return list(found.scalars().all())

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

    async def customer_tickets(self, ticket: Ticket) -> list[Ticket]:
        """The same customer's other tickets, newest first."""
        async with self.sessions() as session:
            return await store.customer_tickets(
                session,
                customer_id=ticket.customer_id,
                exclude=ticket.id,  # type: ignore[arg-type]
            )

    async def latest_survey(self, ticket: Ticket) -> CsatResponse | None:
        async with self.sessions() as session:
            return await store.latest_survey(session, ticket_id=ticket.id)  # type: ignore[arg-type]

    async def following_merges(self, ticket: Ticket) -> Ticket:
        """The ticket a merged duplicate now lives in; the ticket itself when not merged."""
        if ticket.merged_into_id is None:
            return ticket
        async with self.sessions() as session:
            return await store.merged_target(session, ticket=ticket)

    async def messages_since(self, ticket: Ticket, seen_at: datetime | None) -> list[Message]:
        """What a reply made after ``seen_at`` would answer over (see ``apply``)."""
        async with self.sessions() as session:
            return await store.answered_meanwhile(
                session,
                ticket_id=ticket.id,  # type: ignore[arg-type]
                actor="",
                since=seen_at,
                unsent=False,
            )

    async def mail_seen_at(self, ticket: Ticket, ids: Sequence[str]) -> datetime | None:
        """When our mail on this ticket that a reply answers (In-Reply-To, References) was
        made: what the agent had seen of the ticket (``apply``'s ``seen_at``)."""
        async with self.sessions() as session:
            return await store.mail_sent_at(
                session,
                ticket_id=ticket.id,  # type: ignore[arg-type]
                ids=ids,
            )

    # -- who has the ticket open (二重対応防止) -----------------------------------------------

    async def see(
        self, ticket: Ticket, agent: Agent, kind: PresenceKind = PresenceKind.viewing
    ) -> list[tuple[Agent, PresenceKind, datetime]]:
        """Record that ``agent`` has the ticket open (``kind``); the other agents seen on it
        within ``PRESENCE_SECONDS``, with what they do and when they were last seen."""
        now = utcnow()
        async with self.sessions() as session, session.begin():
            await store.see_ticket(
                session,
                ticket_id=ticket.id,  # type: ignore[arg-type]
                agent_id=agent.id,  # type: ignore[arg-type]
                kind=kind,
                now=now,
            )
            return await store.present(
                session,
                ticket_id=ticket.id,  # type: ignore[arg-type]
                since=now - timedelta(seconds=PRESENCE_SECONDS),
                exclude=agent.id,
            )

    async def leave(self, ticket: Ticket, agent: Agent) -> None:
        async with self.sessions() as session, session.begin():
            await store.leave_ticket(
                session,
                ticket_id=ticket.id,  # type: ignore[arg-type]
                agent_id=agent.id,  # type: ignore[arg-type]
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
        client: str | None = None,
        mail_id: str | None = None,
        subject: str | None = None,
    ) -> tuple[Ticket, bool]:
        """Create the ticket with its first message, photos, events and confirmation mail.

        Returns ``(ticket, created)``; a repeated ``submission_key`` (reload, double click)
        from the same e-mail address with the same content returns the first ticket with
        ``created`` False. Keys are scoped by address, and a key that comes back with other
        content raises ``SubmissionConflict``: nobody reaches another submission's ticket
        through a key.

        ``client`` is the submitting client's address (``security.client_ip``): recorded in
        the audit trail, and the origin the confirmation is counted against. The address is
        normalized (``normalize_address``); one that is not valid (mail from
        ``"a b"@example.jp``) still makes a ticket, without a confirmation. The name is made
        safe for mails (``name_from_mail``: nothing link-looking), so mail and the forms
        share one rule. ``mail_id`` is the Message-ID of the mail the ticket was made from
        (our answers thread under it); ``subject`` replaces the subject made from the
        submission.

        Raises:
            SubmissionConflict: the key was used with other content.
        """
        unsendable = False
        try:
            email = normalize_address(submission.email)
        except AddressError:
            email, unsendable = submission.email.strip().lower(), True
        name = name_from_mail(submission.name, email, max_length=MAX_NAME)
        submission = replace(submission, email=email, name=name)
        submission, card_fields = without_card_numbers(submission)
        fingerprint = submission_fingerprint(submission, photos)
        if submission_key:
            scope = f"{channel}:{submission.email}:{submission_key}"
            submission_key = hashlib.sha256(scope.encode()).hexdigest()
            if (ticket := await self._ticket_by_key(submission_key, fingerprint)) is not None:
                return ticket, False
        try:
            ticket = await self._create(
                submission,
                photos,
                late=late,
                submission_key=submission_key,
                fingerprint=fingerprint,
                deflection=deflection,
                channel=channel,
                confirm=confirm,
                unsendable=unsendable,
                client=client,
                mail_id=mail_id,
                subject=subject,
            )
            if card_fields:
                await self.record_event(
                    ticket.id,  # type: ignore[arg-type]
                    "card_number_removed",
                    "system",
                    fields=card_fields,
                )
            return ticket, True
        except IntegrityError:
            # Two submits raced on the same key: the other one won.
            if not submission_key:
                raise
            ticket = await self._ticket_by_key(submission_key, fingerprint)
            assert ticket is not None
            return ticket, False

    async def _ticket_by_key(self, key: str, fingerprint: str) -> Ticket | None:
        """The ticket the key made, when it was made from the same content.

        Raises:
            SubmissionConflict: the key made a ticket from other content.
        """
        async with self.sessions() as session:
            ticket = await store.ticket_by_submission_key(session, key=key)
        if ticket is not None and ticket.submission_fingerprint != fingerprint:
            raise SubmissionConflict(TICKET_KEY_CONFLICT)
        return ticket

    async def confirmation_queued(self, ticket: Ticket) -> bool:
        """Whether the customer's confirmation of this ticket went into the outbox."""
        async with self.sessions() as session:
            return await store.mail_queued(
                session,
                ticket_id=ticket.id,  # type: ignore[arg-type]
                kind="ticket_confirmation",
            )

    async def _create(
        self,
        submission: Submission,
        photos: Mapping[str, StoredPhoto],
        *,
        late: bool,
        submission_key: str | None,
        fingerprint: str,
        deflection: Mapping[str, list[str]] | None,
        channel: str,
        confirm: bool,
        unsendable: bool,
        client: str | None,
        mail_id: str | None,
        subject: str | None,
    ) -> Ticket:
        now = utcnow()
        system = Actor.system().address
        body = first_message(submission)
        terms = await search.text_terms_async(submission.name, subject, body)
        async with self.sessions() as session, session.begin():
            customer = await store.customer_for(
                session, email=submission.email, name=submission.name
            )
            # A sender an agent marked as spam: the ticket is kept, hidden as spam, and
            # nobody is mailed (mail from them opens none: ``helpdesk.mail.inbound``).
            spam = await store.sender_is_spam(session, email=customer.email)
            ticket = Ticket(
                reference=f"pending-{secrets.token_hex(8)}",
                token_nonce=secrets.token_urlsafe(16),
                submission_key=submission_key,
                submission_fingerprint=fingerprint,
                kind=submission.kind,
                customer_id=customer.id,  # type: ignore[arg-type]
                customer_name=submission.name,
                order_number=submission.order_number,
                arrived_on=submission.arrived_on,
                late=late,
                desired_variant=submission.desired_variant,
                category=submission.category,
                subject=(subject or subject_for(submission))[:200],
                first_reply_due_at=self.policy.first_reply_due(now),
                last_customer_at=now,
                spam=spam,
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
                body=body,
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
            terms |= search.identifier_terms(
                reference=ticket.reference,
                order_number=ticket.order_number,
                email=customer.email,
                name=ticket.customer_name,
            )
            index = await search.session_index(session)
            await index.replace(session, ticket_id=ticket.id, terms=terms)  # type: ignore[arg-type]

            def event(kind: str, actor: str, **data: Any) -> None:
                store.add_event(session, ticket_id=ticket.id, kind=kind, actor=actor, data=data)

            event("created", submission.email, channel=channel, client=client)
            if late:
                today = self.policy.local(now).date()
                days = (today - submission.arrived_on).days if submission.arrived_on else None
                event("flagged_late", system, days=days)
            for kind, ids in (deflection or {}).items():
                if ids:
                    event(f"deflection_{kind}", system, ids=ids)
            if spam:
                event("spam_sender", system)
                return ticket
            if confirm and unsendable:
                # Kept for the agents, but nothing is mailed to an address we do not accept.
                event("mail_suppressed", system, to=submission.email, reason="invalid_address")
            await self.notify.ticket_created(
                session,
                ticket,
                customer,
                submission,
                attachments,
                confirm=confirm and not unsendable,
                origin=MAIL_ORIGIN if channel == "mail" else client_origin(client),
            )
        TICKETS_CREATED.labels(str(submission.kind), channel).inc()
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
        client: str | None = None,
        sender_name: str | None = None,
        trust: Trust = Trust.verified,
        mail_id: str | None = None,
    ) -> Message:
        """Append a message on the customer's side of the ticket.

        A ``verified`` message is the customer's own: the agents hear of it and a waiting,
        resolved or closed ticket opens again. Any other ``trust`` holds the message for
        agents (「未確認」 with its ``sender``): the customer never sees it, nothing reopens,
        and the agents are told (once per sender for an unregistered one) until one of them
        accepts it (``AcceptMessage``). ``client`` is the web client's address, recorded in
        the audit trail.

        A repeated ``submission_key`` on this ticket with the same content returns the
        message already stored; keys are scoped to the ticket, so another ticket's key never
        swallows this message.

        Raises:
            SubmissionConflict: the key was used on this ticket for another message.
        """
        # A card number is never stored: the customer sees why in its place.
        body, card_number = mask_card_numbers(body)
        fingerprint = message_fingerprint(body, photos, sender)
        if submission_key:
            submission_key = message_key(ticket.id, submission_key)  # type: ignore[arg-type]
            if message := await self._message_by_key(submission_key, fingerprint):
                return message
        try:
            message = await self._add_customer_message(
                ticket,
                body,
                photos,
                submission_key,
                sender,
                fingerprint,
                client,
                sender_name,
                trust,
                mail_id,
            )
            if card_number:
                await self.record_event(
                    ticket.id,  # type: ignore[arg-type]
                    "card_number_removed",
                    "system",
                    message=message.id,
                )
            return message
        except IntegrityError:
            if not submission_key:
                raise
            message = await self._message_by_key(submission_key, fingerprint)
            assert message is not None
            return message

    async def _message_by_key(self, key: str, fingerprint: str) -> Message | None:
        async with self.sessions() as session:
            message = await store.message_by_submission_key(session, key=key)
        if message is not None and message.submission_fingerprint != fingerprint:
            raise SubmissionConflict(MESSAGE_KEY_CONFLICT)
        return message

    async def _add_customer_message(
        self,
        ticket: Ticket,
        body: str,
        photos: Mapping[str, StoredPhoto],
        submission_key: str | None,
        sender: str | None,
        fingerprint: str,
        client: str | None,
        sender_name: str | None,
        trust: Trust,
        mail_id: str | None,
    ) -> Message:
        now = utcnow()
        terms = await search.text_terms_async(body)
        async with self.sessions() as session, session.begin():
            current = await store.lock_ticket(session, ticket_id=ticket.id)  # type: ignore[arg-type]
            customer = await store.customer_by_id(session, customer_id=current.customer_id)
            verified = trust is Trust.verified
            index = await search.session_index(session)
            await index.add(session, ticket_id=current.id, terms=terms)  # type: ignore[arg-type]
            message = Message(
                ticket_id=current.id,  # type: ignore[arg-type]
                author=Author.customer,
                author_name=(current.customer_name if verified else sender_name or sender or "")[
                    :254
                ],
                body=body or "(写真を追加しました)",
                submission_key=submission_key,
                submission_fingerprint=fingerprint,
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
                data=(
                    ({} if verified else {"message": message.id, "trust": trust})
                    | ({"client": client} if client else {})
                    | ({"spam": True} if current.spam else {})
                ),
            )
            if verified:
                current.last_customer_at = now
            if not current.spam:
                # On a spam ticket the message is kept, but nobody is told and nothing
                # reopens (an agent may unmark the ticket).
                await self.notify.customer_wrote(session, current, customer, message, attachments)
            if current.status in REOPENED_BY_CUSTOMER and verified and not current.spam:
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
        seen_at: datetime | None = None,
        approval: _Approval | None = None,
    ) -> ApplyResult:
        """Apply an agent's commands in one transaction, with the ticket row locked.

        Everything is checked first: with any problem (Japanese, for the agent: every one
        found) nothing changes. Commands apply in a fixed order (accepting a held message,
        assignment, priority, status, message, merge), each leaving its event; then
        ``notify`` queues what the customer is told: a reply (mentioning a new status), or a
        short status mail, or nothing for an internal note or a merge.

        ``submission_key`` makes a repeat (the same mail delivered twice) a no-op with
        ``duplicate`` set. ``expected_version`` (``version_of`` the ticket the agent saw)
        refuses the change with ``conflict`` set when the ticket changed since.

        The reply of an agent who needs approval (``Agent.needs_approval``), from any
        channel, does not leave: it is stored as a ``PendingReply`` (with the status set
        along with it, which the reply mail would tell) and ``awaiting_approval`` is set;
        the other commands apply, and the admins are mailed. ``approve_reply`` later applies
        it through here (``approval``, the ticket locked), once.

        No double answer (二重対応防止): a ``Reply`` is not sent when, since ``seen_at``
        (when the agent saw the ticket: the page's version, the notification a mail
        answers), another agent replied or the customer wrote, nor (by mail, where the agent
        cannot see it) while another agent's reply still waits in the outbox. In the
        console the result has ``conflict`` and ``meanwhile`` (the page asks to confirm,
        with a newer ``seen_at``); by mail the reply is held (``HeldReply``) and the agent
        mailed what came meanwhile, to answer with ``#confirm`` (``Confirm``), which sends
        the held reply (its text replaced by a reply given with it) unless yet more came.

        Raises ``ValueError`` for a customer as the actor (customers write through
        ``add_customer_message``).
        """
        if actor.role is ActorRole.customer:
            raise ValueError("customers do not apply commands; use add_customer_message")
        if submission_key:
            submission_key = message_key(ticket.id, submission_key)  # type: ignore[arg-type]
        commands = tuple(commands)
        terms = await search.text_terms_async(
            *(c.body for c in commands if isinstance(c, Reply | AddNote))
        )
        async with self.sessions() as session, session.begin():
            current = await store.lock_ticket(session, ticket_id=ticket.id)  # type: ignore[arg-type]
            customer = await store.customer_by_id(session, customer_id=current.customer_id)
            assignees: dict[str, Agent] = {}
            held: dict[int, Message] = {}
            unsent = actor.channel is Channel.mail
            confirmed: HeldReply | None = None
            if any(isinstance(command, Confirm) for command in commands):
                confirmed = await self._held_for(session, current, actor)
                if confirmed is None:
                    return ApplyResult((NOTHING_HELD,))
                commands = _with_held(confirmed, commands)
                # Only what came after the agent was told of the other answer counts now.
                seen_at, unsent = as_utc(confirmed.created_at), False
            problems = command_problems(commands)
            problems += await self._lookups(session, current, commands, assignees, held)
            targets = await self._merge_targets(session, current, customer, commands)
            problems += [problem for problem in targets if isinstance(problem, str)]
            if problems:
                return ApplyResult(tuple(problems))
            if submission_key and (
                await store.message_key_used(session, key=submission_key)
                or await store.pending_key_used(session, key=submission_key)
            ):
                return ApplyResult(duplicate=True)  # the same mail delivered twice
            if expected_version is not None and version_of(current) != expected_version:
                return ApplyResult((CONFLICT,), conflict=True)
            if any(isinstance(command, Reply) for command in commands):
                meanwhile = await store.answered_meanwhile(
                    session,
                    ticket_id=current.id,  # type: ignore[arg-type]
                    actor=actor.address,
                    since=seen_at,
                    unsent=unsent,
                )
                changes = await store.changed_meanwhile(
                    session,
                    ticket_id=current.id,  # type: ignore[arg-type]
                    actor=actor.address,
                    since=seen_at,
                )
                if meanwhile or changes:
                    if actor.channel is Channel.mail and actor.agent_id is not None:
                        await self._hold(session, current, actor, commands, meanwhile, changes)
                        return ApplyResult(
                            conflict=True,
                            held=True,
                            meanwhile=tuple(meanwhile),
                            changes=tuple(changes),
                        )
                    return ApplyResult(
                        (ANSWERED_MEANWHILE,),
                        conflict=True,
                        meanwhile=tuple(meanwhile),
                        changes=tuple(changes),
                    )
            pending: PendingReply | None = None
            if approval is not None:
                if problem := await self._take_approval(session, current, actor, approval):
                    return ApplyResult((problem,))
            elif any(isinstance(c, Reply) for c in commands) and await self._needs_approval(
                session, actor
            ):
                pending = await self._hold_for_approval(
                    session, current, actor, commands, submission_key
                )
                commands = tuple(c for c in commands if not isinstance(c, Reply | SetStatus))
            unit = _Unit(session, current, actor, submission_key, assignees, held, current.status)
            unit.merge_target = next((t for t in targets if isinstance(t, Ticket)), None)
            if confirmed is not None:
                confirmed.released_at = unit.now
            for command in sorted(commands, key=lambda c: _ORDER[type(c)]):
                await _HANDLERS[type(command)](unit, command)
            if terms:
                index = await search.session_index(session)
                await index.add(session, ticket_id=current.id, terms=terms)  # type: ignore[arg-type]
            survey: CsatResponse | None = None
            if unit.resolved:
                # Credited to the assignee, else to the agent who resolved it.
                survey = await store.add_survey(
                    session,
                    ticket=current,
                    agent_id=current.assignee_id or actor.agent_id,
                    now=unit.now,
                )
            change = AgentChange(
                unit.old_status, reply=unit.reply, internal=unit.internal, survey=survey
            )
            mail = await self.notify.agent_changed(
                session, current, customer, change, origin=AGENTS_ORIGIN
            )
            if survey is not None:
                survey.mailed = mail is not None
            current.updated_at = unit.now
        if unit.merge_target is not None:
            # The moved messages become searchable under the ticket they joined.
            await self.reindex(unit.merge_target.id)  # type: ignore[arg-type]
        ticket.status, ticket.priority = current.status, current.priority
        ticket.assignee_id, ticket.updated_at = current.assignee_id, current.updated_at
        ticket.first_replied_at = current.first_replied_at
        ticket.merged_into_id = current.merged_into_id
        ticket.last_replied_at, ticket.spam = current.last_replied_at, current.spam
        return ApplyResult(awaiting_approval=pending.id if pending is not None else None)

    @staticmethod
    async def _held_for(session: AsyncSession, ticket: Ticket, actor: Actor) -> HeldReply | None:
        if actor.agent_id is None:
            return None
        return await store.pending_held_reply(
            session,
            ticket_id=ticket.id,  # type: ignore[arg-type]
            agent_id=actor.agent_id,
        )

    async def _hold(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: Actor,
        commands: Sequence[Command],
        meanwhile: Sequence[Message],
        changes: Sequence[TicketEvent],
    ) -> None:
        """Keep a mailed reply instead of sending it, and mail its agent what came
        meanwhile; an earlier reply of theirs still held is replaced by this one."""
        assert actor.agent_id is not None
        now = utcnow()
        earlier = await self._held_for(session, ticket, actor)
        if earlier is not None:
            earlier.released_at = now
        session.add(
            HeldReply(
                ticket_id=ticket.id,  # type: ignore[arg-type]
                agent_id=actor.agent_id,
                commands=json.dumps(to_data(commands), ensure_ascii=False),
                created_at=now,
            )
        )
        store.add_event(session, ticket_id=ticket.id, kind="reply_held", actor=actor.address)
        agent = await store.agent_by_id(session, agent_id=actor.agent_id)
        assert agent is not None
        reply = next((c.body for c in commands if isinstance(c, Reply)), "")
        said = []
        for event in changes:
            by = await store.agent_by_email(session, email=event.actor)
            said.append(event_sentence(event, who=by.name if by else event.actor))
        await self.notify.reply_held(session, agent, ticket, meanwhile, reply, changes=said)

    @staticmethod
    async def _merge_targets(
        session: AsyncSession, ticket: Ticket, customer: Customer, commands: Sequence[Command]
    ) -> list[Ticket | str]:
        """The locked target of a ``Merge``, or the problem with it (Japanese)."""
        found: list[Ticket | str] = []
        for command in commands:
            if not isinstance(command, Merge) or not command.into.strip():
                continue
            reference = command.into.strip().upper()
            target = await store.find_ticket(session, reference=reference)
            if ticket.merged_into_id is not None:
                found.append("このチケットは、すでに別のチケットに統合されています。")
            elif target is None:
                found.append(f"統合先のチケット「{command.into.strip()}」が見つかりません。")
            elif target.id == ticket.id:
                found.append("同じチケットには統合できません。統合先の受付番号を確かめてください。")
            elif target.merged_into_id is not None:
                found.append(
                    f"統合先の {target.reference} は、すでに別のチケットに統合されています。"
                )
            elif target.customer_id != customer.id:
                found.append(
                    "お客様(メールアドレス)が異なるチケットには統合できません。"
                    "統合できるのは、同じお客様の重複したお問い合わせだけです。"
                )
            else:
                found.append(await store.lock_ticket(session, ticket_id=target.id))  # type: ignore[arg-type]
        return found

    # -- approval before sending -----------------------------------------------------------

    @staticmethod
    async def _needs_approval(session: AsyncSession, actor: Actor) -> bool:
        if actor.role is not ActorRole.agent or actor.agent_id is None:
            return False
        agent = await store.agent_by_id(session, agent_id=actor.agent_id)
        return agent is not None and agent.needs_approval

    async def _hold_for_approval(
        self,
        session: AsyncSession,
        ticket: Ticket,
        actor: Actor,
        commands: Sequence[Command],
        submission_key: str | None,
    ) -> PendingReply:
        """Keep the reply (and the status set with it) for an admin; tell the admins, and
        the author when they wrote by mail (in the console the ticket page shows it)."""
        reply = next(c for c in commands if isinstance(c, Reply))
        status = next((c.status for c in commands if isinstance(c, SetStatus)), None)
        assert actor.agent_id is not None
        pending = PendingReply(
            ticket_id=ticket.id,  # type: ignore[arg-type]
            agent_id=actor.agent_id,
            body=reply.body,
            status=status,
            channel=actor.channel,
            submission_key=submission_key,
        )
        session.add(pending)
        await session.flush()
        store.add_event(
            session,
            ticket_id=ticket.id,
            kind="reply_awaiting_approval",
            actor=actor.address,
            data={"pending": pending.id, "channel": actor.channel},
        )
        author = await store.agent_by_id(session, agent_id=actor.agent_id)
        if actor.channel is Channel.mail:  # the console shows it on the ticket page
            await self.notify.agent_notice(
                session, author, ticket, "approval_waiting", pending=pending
            )
        for admin in await store.active_admins(session):
            if admin.id != actor.agent_id:
                await self.notify.agent_notice(
                    session, admin, ticket, "approval_requested", pending=pending, by=author
                )
        return pending

    async def _take_approval(
        self, session: AsyncSession, ticket: Ticket, actor: Actor, approval: _Approval
    ) -> str | None:
        """Mark the held reply approved (the ticket is locked: one approval wins); the
        problem instead when it is not waiting any more."""
        pending = await session.get(PendingReply, approval.pending_id, with_for_update=True)
        if pending is None or pending.ticket_id != ticket.id:
            return PENDING_NOT_FOUND
        if pending.state is not PendingState.pending:
            return already_decided(pending.state)
        pending.state, pending.edited = PendingState.approved, approval.edited
        pending.decided_by, pending.decided_at = approval.by.email, utcnow()
        store.add_event(
            session,
            ticket_id=ticket.id,
            kind="reply_approved",
            actor=approval.by.email,
            data={"pending": pending.id, "author": actor.address, "edited": approval.edited},
        )
        author = await store.agent_by_id(session, agent_id=pending.agent_id)
        await self.notify.agent_notice(
            session, author, ticket, "approval_approved", pending=pending, by=approval.by
        )
        return None

    async def _decidable(
        self, pending_id: int, admin: Agent
    ) -> tuple[PendingReply, Ticket, Agent] | str:
        """The held reply, its ticket and author, or why ``admin`` may not decide on it."""
        if not admin.is_admin:
            return APPROVERS_ONLY
        async with self.sessions() as session:
            pending = await session.get(PendingReply, pending_id)
            if pending is None:
                return PENDING_NOT_FOUND
            ticket = await session.get(Ticket, pending.ticket_id)
            author = await store.agent_by_id(session, agent_id=pending.agent_id)
        if ticket is None or author is None:
            return PENDING_NOT_FOUND
        if author.id == admin.id:
            return OWN_REPLY
        if pending.state is not PendingState.pending:
            return already_decided(pending.state)
        return pending, ticket, author

    async def approve_reply(
        self,
        pending_id: int,
        admin: Agent,
        *,
        body: str | None = None,
        channel: Channel = Channel.web,
        seen_at: datetime | None = None,
    ) -> ApplyResult:
        """Send a held reply, as written or with ``body`` (the admin's edit), through
        ``apply``: threaded, audited (``agent_reply`` by its author, ``reply_approved`` by
        the admin) and mailed like any reply, and the author told. Sent once: a second
        approval (a double click, two admins) gets a problem and sends nothing.

        No double answer: when another agent answered, or the customer wrote, while the
        reply waited (since it was written, or since ``seen_at``: when the admin was shown
        what came meanwhile), nothing is sent and the result has ``conflict`` set, the
        reply still waiting."""
        found = await self._decidable(pending_id, admin)
        if isinstance(found, str):
            return ApplyResult((found,))
        pending, ticket, author = found
        text = pending.body if body is None else body
        commands: list[Command] = [Reply(text)]
        if pending.status is not None:
            commands.append(SetStatus(pending.status))
        result = await self.apply(
            ticket,
            Actor(ActorRole.agent, author.email, channel, author.name, author.id),
            commands,
            submission_key=f"approval:{pending_id}",
            seen_at=seen_at or as_utc(pending.created_at),
            approval=_Approval(pending_id, admin, edited=text != pending.body),
        )
        if result.duplicate:  # approved by a parallel request meanwhile: sent by that one
            return ApplyResult((already_decided(PendingState.approved),), duplicate=True)
        if result.conflict:
            return ApplyResult(
                (APPROVED_MEANWHILE,),
                conflict=True,
                meanwhile=result.meanwhile,
                changes=result.changes,
            )
        return result

    async def reject_reply(self, pending_id: int, admin: Agent, *, reason: str = "") -> ApplyResult:
        """Reject a held reply: nothing is sent; the author is told (with ``reason``)."""
        found = await self._decidable(pending_id, admin)
        if isinstance(found, str):
            return ApplyResult((found,))
        _pending, ticket, author = found
        async with self.sessions() as session, session.begin():
            current = await store.lock_ticket(session, ticket_id=ticket.id)  # type: ignore[arg-type]
            pending = await session.get(PendingReply, pending_id, with_for_update=True)
            assert pending is not None
            if pending.state is not PendingState.pending:
                return ApplyResult((already_decided(pending.state),))
            pending.state, pending.reason = PendingState.rejected, reason.strip() or None
            pending.decided_by, pending.decided_at = admin.email, utcnow()
            store.add_event(
                session,
                ticket_id=current.id,
                kind="reply_rejected",
                actor=admin.email,
                data={"pending": pending.id, "author": author.email},
            )
            await self.notify.agent_notice(
                session, author, current, "approval_rejected", pending=pending, by=admin
            )
        return ApplyResult()

    async def replies_awaiting_approval(
        self, *, ticket: Ticket | None = None, waiting: bool = True, limit: int = 200
    ) -> list[tuple[PendingReply, Ticket, Agent]]:
        """Held replies with their tickets and authors: the waiting ones, oldest first (the
        admins' list), or every one of ``ticket`` newest first (its page)."""
        async with self.sessions() as session:
            return await store.pending_replies(
                session,
                ticket_id=ticket.id if ticket is not None else None,
                waiting=waiting,
                limit=limit,
            )

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

    # -- first-reply due times ---------------------------------------------------------------

    def reply_promise(self, ticket: Ticket, *, now: datetime | None = None) -> str | None:
        """What the customer's pages say about the first reply while none was sent:
        「12月3日(木)までにご返信いたします」, or an apology once that time has passed; None
        after the first reply, for a resolved or closed ticket, or without a due time."""
        due = ticket.first_reply_due_at
        if due is None or ticket.first_replied_at is not None:
            return None
        if ticket.status not in store.AWAITING_STATUSES:
            return None
        if as_utc(due) < (now or utcnow()):
            return REPLY_LATE
        return self.policy.reply_promise(as_utc(due))

    async def backfill_first_reply_due(self) -> int:
        """Give every ticket without one its first-reply due time, computed from its
        creation time by the support calendar (tickets made before the calendar existed,
        or while ``[support]`` was not set); how many got one. Idempotent; several workers
        starting at once compute the same times."""
        policy = self.policy
        if policy.support is None:
            return 0
        done, after_id = 0, 0
        while True:
            async with self.sessions() as session, session.begin():
                found = await store.tickets_without_due(
                    session, after_id=after_id, limit=BACKFILL_BATCH
                )
                dues = {
                    ticket_id: due
                    for ticket_id, created_at in found
                    if (due := policy.first_reply_due(created_at)) is not None
                }
                await store.set_first_reply_due(session, dues=dues)
            done += len(dues)
            if len(found) < BACKFILL_BATCH:
                return done
            after_id = found[-1][0]

    # -- the search index --------------------------------------------------------------------

    async def reindex(self, ticket_id: int) -> None:
        """Rebuild the ticket's search document from what it holds now (after a merge
        moved messages, or to repair it)."""
        async with self.sessions() as session:
            document = await search.ticket_document(session, ticket_id=ticket_id)
        terms = await asyncio.to_thread(search.document_terms, document)
        async with self.sessions() as session, session.begin():
            await store.lock_ticket(session, ticket_id=ticket_id)
            index = await search.session_index(session)
            await index.replace(session, ticket_id=ticket_id, terms=terms)

    async def backfill_search(self, *, everything: bool = False) -> int:
        """Give every ticket without a search document one (tickets made before the index
        existed), or rebuild every document (``everything``); how many were written."""
        done, after_id = 0, 0
        while True:
            async with self.sessions() as session:
                if everything:
                    found = await session.execute(
                        select(col(Ticket.id))
                        .where(col(Ticket.id) > after_id)
                        .order_by(col(Ticket.id))
                        .limit(BACKFILL_BATCH)
                    )
                    ids = [i for i in found.scalars().all() if i is not None]
                else:
                    index = await search.session_index(session)
                    ids = await index.unindexed(session, after_id=after_id, limit=BACKFILL_BATCH)
            for ticket_id in ids:
                await self.reindex(ticket_id)
            done += len(ids)
            if len(ids) < BACKFILL_BATCH:
                return done
            after_id = ids[-1]

    # -- agents ----------------------------------------------------------------------------

    async def add_agent(self, email: str, name: str) -> Agent:
        """Register (or rename) the agent with this address.

        Raises:
            ValueError: (``AddressError``) for an address ``normalize_address`` refuses.
        """
        email = normalize_address(email)
        async with self.sessions() as session, session.begin():
            agent = await store.agent_by_email(session, email=email)
            if agent is None:
                agent = Agent(email=email, name=name.strip() or email)
                session.add(agent)
            else:
                agent.name = name.strip() or agent.name
        return agent

    async def is_spam_sender(self, email: str) -> bool:
        """Whether an agent marked a ticket of this address as spam (and did not unmark it)."""
        async with self.sessions() as session:
            return await store.sender_is_spam(session, email=email)

    async def agent_by_email(self, email: str) -> Agent | None:
        """The active agent with this address: a disabled or removed agent acts no more
        (by mail either)."""
        async with self.sessions() as session:
            agent = await store.agent_by_email(session, email=email)
        return agent if agent is not None and agent.active else None

    # -- the customer's link ---------------------------------------------------------------

    async def revoke_customer_link(self, ticket: Ticket, actor: Actor) -> Ticket:
        """Revoke the customer's status link (and its photo links) and mail them a new one.

        The token is an HMAC over the reference and the ticket's ``token_nonce``: a new
        nonce makes every link sent before open nothing. The customer is told in the same
        transaction (``customer_link`` mail, not counted as automatic: an agent decided).
        Reply addresses are not changed: they name the ticket for threading, and what a
        reply may do is decided by who sent it (see ``helpdesk.mail.inbound``).
        """
        async with self.sessions() as session, session.begin():
            current = await store.lock_ticket(session, ticket_id=ticket.id)  # type: ignore[arg-type]
            customer = await store.customer_by_id(session, customer_id=current.customer_id)
            current.token_nonce = secrets.token_urlsafe(16)
            current.updated_at = utcnow()
            store.add_event(
                session, ticket_id=current.id, kind="customer_link_revoked", actor=actor.address
            )
            await self.notify.to_customer(
                session,
                current,
                customer,
                "customer_link",
                automatic=False,
                origin=AGENTS_ORIGIN,
                status_url=self.urls.status_url(current),
            )
        ticket.token_nonce, ticket.updated_at = current.token_nonce, current.updated_at
        return current

    # -- the audit trail and the support inbox ---------------------------------------------

    async def record_event(self, ticket_id: int, kind: str, actor: str, **data: Any) -> None:
        async with self.sessions() as session, session.begin():
            store.add_event(session, ticket_id=ticket_id, kind=kind, actor=actor, data=data)

    async def queue_agent_error(self, agent: Agent, ticket: Ticket, problems: str) -> None:
        """Mail the agent why their reply's commands did nothing."""
        async with self.sessions() as session, session.begin():
            await self.notify.agent_error(session, agent, ticket, problems)
