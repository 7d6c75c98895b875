"""What mail each change to a ticket queues, to whom, threaded how.

Mail is written to the outbox in the caller's transaction (sent later by the outbox sender),
so a change and its mail are stored together or not at all. Customers get the confirmation,
agents' replies and status changes; the support inbox gets new tickets, customers' messages
and failures, with the agents' signed reply address. An internal note tells the customer
nothing.

Automatic mail to one address is capped per hour (RFC 3834: no mail storms), counted per
origin: whoever caused the mail (a web or API client by its address, inbound mail, the
agents). So one client filing tickets for someone else's address uses up its own allowance,
never the customer's: the customer's own confirmation still goes out (issue 7, #8). A
second, higher cap over all origins together stops a flood from many clients at once.

Every mail to a customer goes through ``to_customer``, the one place that
- threads it: In-Reply-To the latest mail of the conversation (ours or the customer's),
  References its first and last ten, and one subject form (``customer_subject``);
- redacts it: nothing agent-only (links, keys, the agents' address, a quoted
  notification) is left in its subject, text or HTML (``redact.for_customer``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.utils import make_msgid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from faq import ShopPolicy
from faq.calendar import format_date
from helpdesk.clock import jst
from helpdesk.db import utcnow
from helpdesk.mail.compose import compose, opens_with_greeting
from helpdesk.mail.outbox import claim_dead_mail_to_report
from helpdesk.models import (
    Agent,
    Attachment,
    CsatResponse,
    Customer,
    InboundMail,
    Message,
    Outbox,
    Ticket,
    TicketStatus,
    Trust,
)
from helpdesk.tickets import redact, store
from helpdesk.tickets.access import TicketAccess
from helpdesk.tickets.commands import Actor
from helpdesk.tickets.csat import CsatService
from helpdesk.tickets.labels import (
    INQUIRY_CATEGORIES,
    KIND_LABELS,
    PHOTO_FIELDS,
    STATUS_LABELS,
    trust_label,
)
from helpdesk.tickets.rules import Submission
from helpdesk.tickets.urls import TicketUrls

# References carry the first mail of the conversation and the latest ones (RFC 5322 3.6.4
# asks for the whole chain; mail clients need the root and the recent part of it).
REFERENCES_KEPT = 10
# The audit-trail event that records the agents were told about an unregistered sender.
UNREGISTERED_TOLD = "unregistered_sender_told"


def customer_subject(ticket: Ticket, *, reply: bool) -> str:
    """The one subject form of a ticket's mails to its customer: 「[HD-26-00042] 件名」,
    with 「Re: 」 once the conversation has begun."""
    return f"{'Re: ' if reply else ''}[{ticket.reference}] {ticket.subject}"


def thread_headers(thread: Sequence[str]) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) for a mail following the conversation ``thread`` (its
    Message-IDs, oldest first): the latest, and the first with the last ten."""
    if not thread:
        return None, []
    references = list(dict.fromkeys([thread[0], *thread[-REFERENCES_KEPT:]]))
    return thread[-1], references


@dataclass(frozen=True, slots=True)
class AgentChange:
    """What an agent's commands did, as far as the customer may hear of it."""

    old_status: str
    reply: str | None = None  # the text of a Reply command
    internal: bool = False  # an AddNote: the whole change stays internal
    survey: CsatResponse | None = None  # resolved: the mail carries this survey's links


@dataclass(frozen=True, slots=True)
class CustomerRedactor:
    """``redact`` with a ticket's own agent key and agents' address (``compose``'s hook)."""

    secrets: tuple[str, ...] = ()

    def text(self, value: str) -> str:
        return redact.for_customer(value, secrets=self.secrets)

    def html(self, value: str) -> str:
        return redact.html_for_customer(value, secrets=self.secrets)


class Notifier:
    def __init__(
        self,
        *,
        policy: ShopPolicy | Callable[[], ShopPolicy],
        access: TicketAccess,
        urls: TicketUrls,
        support_address: str,
        csat: CsatService | None = None,
        automatic_mail_limit: int = 10,
        automatic_mail_address_limit: int = 50,
    ) -> None:
        self._policy: Callable[[], ShopPolicy] = policy if callable(policy) else lambda: policy
        self.csat = csat
        self.access = access
        self.urls = urls
        self.support_address = support_address
        # Per address and origin, per hour.
        self.automatic_mail_limit = automatic_mail_limit
        # Per address, all origins together, per hour.
        self.automatic_mail_address_limit = automatic_mail_address_limit

    @property
    def policy(self) -> ShopPolicy:
        return self._policy()

    def redactor(self, ticket: Ticket | None) -> CustomerRedactor:
        return CustomerRedactor(self.access.agent_secrets(ticket) if ticket else ())

    # -- what each change sends -----------------------------------------------------------

    async def ticket_created(
        self,
        session: AsyncSession,
        ticket: Ticket,
        customer: Customer,
        submission: Submission,
        attachments: Sequence[Attachment],
        *,
        confirm: bool = True,
        origin: str | None = None,
    ) -> bool:
        """The customer's confirmation (unless ``confirm`` is False) and the agents' notice.

        The confirmation promises the first reply by the day it is due
        (「12月3日(木)までにご返信いたします」) and says the support hours, when the shop
        sets a support calendar. ``origin`` is who submitted (see ``_queue``). Returns
        whether the confirmation was queued.
        """
        policy = self.policy
        due = ticket.first_reply_due_at
        context = {
            "customer": customer,
            "submission": submission,
            "kind_label": KIND_LABELS[submission.kind],
            "category_label": INQUIRY_CATEGORIES.get(submission.category or ""),
            "status_url": self.urls.status_url(ticket),
            "attachments": attachments,
            "photo_labels": PHOTO_FIELDS,
            "reply_promise": policy.reply_promise(due) if due is not None else None,
            "reply_due": jst(due) if due is not None else None,
            "support_hours": policy.support.summary() if policy.support else None,
        }
        confirmation = None
        if confirm:
            confirmation = await self.to_customer(
                session,
                ticket,
                customer,
                "ticket_confirmation",
                origin=origin,
                **context,  # type: ignore[arg-type]
            )
        await self.tell_agents(
            session,
            ticket,
            "ticket_notification",
            attach=attachments,
            agent_url=self.urls.agent_url(ticket),
            **context,
        )
        return confirmation is not None

    async def customer_wrote(
        self,
        session: AsyncSession,
        ticket: Ticket,
        customer: Customer,
        message: Message,
        attachments: Sequence[Attachment],
    ) -> None:
        """The agents hear of a message on the ticket: the customer's; or one held as
        unverified, with why and how to accept it; or, from an unregistered address on the
        agents' address, once per sender (issue 8: no mail per message to a shared inbox)."""
        if message.trust is Trust.unregistered:
            sender = message.sender or ""
            if await store.event_exists(session, kind=UNREGISTERED_TOLD, actor=sender):
                return
            store.add_event(
                session, ticket_id=ticket.id, kind=UNREGISTERED_TOLD, actor=sender, data={}
            )
            kind = "unregistered_sender"
        else:
            kind = "customer_reply"
        await self.tell_agents(
            session,
            ticket,
            kind,
            attach=attachments,
            customer=customer,
            message=message,
            trust_label=trust_label(message.trust),
            body=message.body,
            agent_url=self.urls.agent_url(ticket),
        )

    async def agent_changed(
        self,
        session: AsyncSession,
        ticket: Ticket,
        customer: Customer,
        change: AgentChange,
        *,
        origin: str | None = None,
    ) -> Outbox | None:
        """The customer gets the agent's reply (mentioning a new status), or a short status
        mail when the status alone changed (to anything but "open"); a note sends nothing.
        The mail of a resolution carries its satisfaction survey's two links.
        """
        changed = ticket.status != change.old_status and ticket.status != TicketStatus.open
        if change.internal or not (change.reply or changed):
            return None
        body = change.reply or ""
        survey = None
        if change.survey is not None and self.csat is not None:
            survey = {
                "links": self.csat.links(ticket, change.survey),
                "last_day": format_date(self.csat.last_day(change.survey)),
            }
        return await self.to_customer(
            session,
            ticket,
            customer,
            "agent_reply" if change.reply else "status_changed",
            automatic=not change.reply,
            origin=origin,
            body=body,
            greeted=opens_with_greeting(body),
            status_label=STATUS_LABELS[ticket.status] if changed else None,
            status_url=self.urls.status_url(ticket),
            survey=survey,
        )

    async def agent_error(
        self, session: AsyncSession, agent: Agent, ticket: Ticket, problems: str
    ) -> None:
        """Tell the agent why their mailed commands did nothing (``problems``: the whole
        explanation, said once). Answering it with the commands put right applies them."""
        await self._queue(
            session,
            ticket=ticket,
            kind="agent_error",
            to=agent.email,
            reply_to=self.access.reply_address(ticket, agents=True),
            agent=agent,
            problems=problems,
        )

    async def reply_held(
        self,
        session: AsyncSession,
        agent: Agent,
        ticket: Ticket,
        meanwhile: Sequence[Message],
        reply: str,
        *,
        changes: Sequence[str] = (),
    ) -> None:
        """Tell the agent their mailed reply was held (二重対応防止): what came meanwhile,
        their text, and how to send it after all (``#confirm``)."""
        await self._queue(
            session,
            ticket=ticket,
            kind="reply_held",
            to=agent.email,
            reply_to=self.access.reply_address(ticket, agents=True),
            agent=agent,
            meanwhile=meanwhile,
            changes=changes,
            reply=reply,
            agent_url=self.urls.agent_url(ticket),
        )

    async def inbound_failed(
        self, session: AsyncSession, row: InboundMail, problem: str, preview: str
    ) -> None:
        """Tell the support inbox about a received mail that could not be processed."""
        await self.tell_agents(
            session, None, "inbound_failed", row=row, problem=problem, preview=preview
        )

    # -- the outbox -------------------------------------------------------------------------

    def new_message_id(self) -> str:
        return make_msgid(domain=self.support_address.rpartition("@")[2]).strip("<>")

    async def to_customer(
        self,
        session: AsyncSession,
        ticket: Ticket,
        to: Customer,
        kind: str,
        *,
        automatic: bool = True,
        origin: str | None = None,
        **context: Any,
    ) -> Outbox | None:
        """Queue the mail ``kind`` to the ticket's customer: threaded, with the one subject
        form, redacted, and with the customer's signed reply address."""
        thread = await store.customer_thread(
            session,
            ticket_id=ticket.id,  # type: ignore[arg-type]
            email=to.email,
        )
        in_reply_to, references = thread_headers(thread)
        context.setdefault("customer", to)
        return await self._queue(
            session,
            ticket=ticket,
            kind=kind,
            to=to.email,
            automatic=automatic,
            origin=origin,
            reply_to=self.access.reply_address(ticket),
            in_reply_to=in_reply_to,
            references=references,
            redactor=self.redactor(ticket),
            subject=customer_subject(ticket, reply=bool(thread)),
            **context,
        )

    async def tell_agents(
        self,
        session: AsyncSession,
        ticket: Ticket | None,
        kind: str,
        attach: Sequence[Attachment] = (),
        **context: Any,
    ) -> None:
        """Mail the support inbox; replies to it come back on the agents' signed address.

        Mail that the outbox gave up on since the last such mail is listed at its end, so
        agents hear of it with the next event (issue 7, #9), once.
        """
        dead_mail = await claim_dead_mail_to_report(session)
        await self._queue(
            session,
            ticket=ticket,
            kind=kind,
            to=self.support_address,
            automatic=False,
            reply_to=self.access.reply_address(ticket, agents=True) if ticket else None,
            attach=attach,
            dead_mail=dead_mail,
            **context,
        )

    async def _queue(
        self,
        session: AsyncSession,
        *,
        ticket: Ticket | None,
        kind: str,
        to: str,
        automatic: bool = True,
        origin: str | None = None,
        reply_to: str | None = None,
        in_reply_to: str | None = None,
        references: Sequence[str] = (),
        attach: Sequence[Attachment] = (),
        redactor: CustomerRedactor | None = None,
        **context: Any,
    ) -> Outbox | None:
        """Compose the mail ``kind`` (``templates/mail/{kind}.txt``) into the outbox, in the
        caller's transaction.

        Automatic mail to one address is capped per hour, per ``origin`` (who caused it:
        ``"client:ADDRESS"``, ``"mail"``, ``"agents"``) and over all origins together; the
        mail skipped is recorded on the ticket instead (``mail_suppressed``) and None
        returned.
        """
        if automatic and await self._over_cap(session, to, origin):
            if ticket is not None:
                store.add_event(
                    session,
                    ticket_id=ticket.id,
                    kind="mail_suppressed",
                    actor=Actor.system().address,
                    data={"to": to, "mail": kind, "origin": origin},
                )
            return None
        mail = compose(kind, redact=redactor, ticket=ticket, policy=self.policy, **context)
        row = Outbox(
            ticket_id=ticket.id if ticket else None,
            kind=kind,
            to_address=to,
            subject=mail.subject,
            text=mail.text,
            html=mail.html,
            message_id=self.new_message_id(),
            reply_to=reply_to,
            in_reply_to=in_reply_to,
            references=" ".join(references) or None,
            attachments=json.dumps(
                [
                    {"digest": a.digest, "filename": a.filename, "content_type": a.content_type}
                    for a in attach
                ]
            ),
            automatic=automatic,
            origin=origin,
        )
        session.add(row)
        return row

    async def _over_cap(self, session: AsyncSession, to: str, origin: str | None) -> bool:
        since = utcnow() - timedelta(hours=1)
        if origin is None:
            # Nobody in particular caused it: the per-address allowance applies as a whole.
            count = await store.automatic_mail_count(session, to=to, since=since)
            return count >= self.automatic_mail_limit
        mine = await store.automatic_mail_count(session, to=to, since=since, origin=origin)
        if mine >= self.automatic_mail_limit:
            return True
        everyone = await store.automatic_mail_count(session, to=to, since=since)
        return everyone >= self.automatic_mail_address_limit
