"""Inbound mail: stored raw first, then parsed, threaded onto a ticket and acted on.

Threading, in this order: a signed reply address (``support+hd-26-00042.sig@shop``); then
In-Reply-To/References against the Message-IDs we sent or received; then ``[HD-26-00042]``
in the subject when the sender is the ticket's customer. Anything else from a person
becomes a new inquiry. Automatic mail (RFC 3834) is kept but never answered; delivery
reports are recorded on the ticket whose mail bounced.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.db import utcnow
from helpdesk.mail.decode import MailParseError, ParsedMail, parse_message_async
from helpdesk.mail.reply import format_errors, parse_reply, strip_quoted
from helpdesk.models import (
    Agent,
    Customer,
    InboundMail,
    InboundStatus,
    Outbox,
    Ticket,
    TicketKind,
)
from helpdesk.photos import PhotoError, PhotoStore, StoredPhoto
from helpdesk.tickets import Actor, AddNote, Channel, Submission, TicketService

log = logging.getLogger(__name__)

_SUBJECT_REFERENCE = re.compile(r"\[(HD-\d{2}-\d+)\]", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_DAEMONS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply")
MAX_PHOTOS_PER_MAIL = 5
# A message still "received" after this long was interrupted: it is processed again.
STUCK_AFTER = timedelta(minutes=5)
# The forms' limit on a description, applied to mail too.
MAX_MAIL_TEXT = 5000


@dataclass(frozen=True, slots=True)
class Outcome:
    status: InboundStatus
    text: str
    ticket_id: int | None = None


def is_automatic(mail: ParsedMail) -> bool:
    """RFC 3834 and common practice: mail that no one typed, and must not be answered."""
    if mail.auto_submitted and mail.auto_submitted.split(";")[0].strip() != "no":
        return True
    if (mail.precedence or "") in ("bulk", "junk", "list"):
        return True
    headers = {k.lower() for k in mail.headers}
    if headers & {"x-auto-response-suppress", "list-id", "list-unsubscribe", "x-autoreply"}:
        return True
    local = mail.from_address.partition("@")[0]
    return mail.is_delivery_report or not mail.from_address or local.startswith(_DAEMONS)


class InboundProcessor:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tickets: TicketService,
        photos: PhotoStore,
    ) -> None:
        self.sessions = sessions
        self.tickets = tickets
        self.photos = photos

    async def receive(
        self, raw: bytes, *, envelope_from: str | None = None, envelope_to: Sequence[str] = ()
    ) -> InboundMail:
        """Store ``raw``, then process it. Only a failure to store raises."""
        async with self.sessions() as session, session.begin():
            row = InboundMail(
                raw=raw,
                envelope_from=(envelope_from or "")[:254] or None,
                envelope_to=" ".join(envelope_to) or None,
                received_at=utcnow(),
            )
            session.add(row)
        return await self.process(row)

    async def process(self, row: InboundMail) -> InboundMail:
        """Process a stored message and record the outcome; never raises for bad mail."""
        envelope_to = (row.envelope_to or "").split()
        try:
            outcome = await self._process(row, envelope_to)
        except Exception as exc:  # kept for agents, never dropped
            log.exception("inbound mail %s could not be processed", row.id)
            outcome = Outcome(InboundStatus.failed, f"処理できませんでした: {exc!r}"[:2000])
        if outcome.status is InboundStatus.failed:
            await self.tickets.report_failed_mail(row, outcome.text)
        async with self.sessions() as session, session.begin():
            stored = await session.get(InboundMail, row.id)
            assert stored is not None
            stored.status = outcome.status
            stored.outcome = outcome.text
            stored.ticket_id = outcome.ticket_id
            stored.message_id = row.message_id
            stored.from_address = row.from_address
            stored.subject = row.subject
        row.status, row.outcome, row.ticket_id = outcome.status, outcome.text, outcome.ticket_id
        return row

    async def process_stuck(self, *, older_than: timedelta = STUCK_AFTER) -> int:
        """Process again the messages stored but never processed (a crash in between)."""
        since = utcnow() - older_than
        async with self.sessions() as session:
            found = await session.execute(
                select(InboundMail)
                .where(InboundMail.status == InboundStatus.received)
                .where(InboundMail.received_at < since)
                .order_by(InboundMail.id)
            )
            stuck = list(found.scalars().all())
        for row in stuck:
            await self.process(row)
        return len(stuck)

    async def _process(self, row: InboundMail, envelope_to: Sequence[str]) -> Outcome:
        try:
            mail = await parse_message_async(row.raw)  # off the event loop
        except MailParseError as exc:
            return Outcome(InboundStatus.failed, f"メールとして解析できません: {exc}")
        row.message_id = (mail.message_id or "")[:250] or None
        row.from_address = mail.from_address[:254] or None
        if len(mail.from_address) > 254:
            return Outcome(InboundStatus.failed, "差出人のアドレスが長すぎます")
        row.subject = mail.subject
        if row.message_id and await self._already_processed(row):
            return Outcome(InboundStatus.ignored, "同じメールをすでに処理しています")
        if mail.from_address == self.tickets.support_address.lower():
            return Outcome(InboundStatus.ignored, "自分自身からのメール(ループ防止)")
        if mail.is_delivery_report:
            return await self._bounce(mail, row.raw)

        signed = self._signed_reference([*envelope_to, *mail.to, *mail.cc, *_delivered_to(mail)])
        reference, for_agents = signed if signed else (None, False)
        ticket = await self.tickets.find(reference) if reference else None
        if ticket is None:
            ticket = await self._thread_by_ids(mail)
        if ticket is None:
            ticket = await self._thread_by_subject(mail)

        automatic = is_automatic(mail)
        if ticket is None:
            if automatic:
                return Outcome(InboundStatus.ignored, "自動送信のメールのため、チケットにしません")
            if len(mail.text) > MAX_MAIL_TEXT:
                mail = replace(mail, text=mail.text[:MAX_MAIL_TEXT] + "\n(以下省略)")
            return await self._new_inquiry(mail)
        if automatic:
            # An out-of-office reply, from a customer or an agent alike, is never passed on.
            await self.tickets.record_event(
                ticket.id, "auto_reply_received", mail.from_address, subject=mail.subject
            )
            return Outcome(InboundStatus.ignored, "自動返信を記録しました", ticket.id)

        agent = await self.tickets.agent_by_email(mail.from_address)
        if agent is not None and for_agents:
            return await self._agent_reply(mail, ticket, agent)
        photos, notes = await self._photos(mail)
        body = "\n\n".join(filter(None, [await asyncio.to_thread(strip_quoted, mail.text), *notes]))
        await self.tickets.add_customer_message(
            ticket,
            body[:MAX_MAIL_TEXT],
            {f"photo_{i + 1}": p for i, p in enumerate(photos)},
            submission_key=_mail_key(mail),
            sender=mail.from_address,
        )
        return Outcome(InboundStatus.processed, "お客様の返信を追加しました", ticket.id)

    # -- threading -----------------------------------------------------------------------

    def _signed_reference(self, addresses: Iterable[str]) -> tuple[str, bool] | None:
        for address in addresses:
            reference = self.tickets.access.ticket_from_reply_address(address)
            if reference:
                return reference
        return None

    async def _thread_by_ids(self, mail: ParsedMail) -> Ticket | None:
        ids = [i for i in (mail.in_reply_to, *reversed(mail.references)) if i]
        if not ids:
            return None
        async with self.sessions() as session:
            sent = await session.execute(
                select(Outbox.ticket_id).where(
                    Outbox.message_id.in_(ids), Outbox.ticket_id.is_not(None)
                )
            )
            ticket_id = sent.scalars().first()
            if ticket_id is None:
                received = await session.execute(
                    select(InboundMail.ticket_id).where(
                        InboundMail.message_id.in_(ids), InboundMail.ticket_id.is_not(None)
                    )
                )
                ticket_id = received.scalars().first()
            return await session.get(Ticket, ticket_id) if ticket_id else None

    async def _thread_by_subject(self, mail: ParsedMail) -> Ticket | None:
        match = _SUBJECT_REFERENCE.search(mail.subject)
        if not match:
            return None
        async with self.sessions() as session:
            found = await session.execute(
                select(Ticket)
                .join(Customer, Customer.id == Ticket.customer_id)
                .where(
                    Ticket.reference == match[1].upper(),
                    Customer.email == mail.from_address,
                )
            )
            return found.scalar_one_or_none()

    async def _already_processed(self, row: InboundMail) -> bool:
        async with self.sessions() as session:
            found = await session.execute(
                select(InboundMail.id).where(
                    InboundMail.message_id == row.message_id,
                    InboundMail.id != row.id,
                    InboundMail.status == InboundStatus.processed,
                )
            )
            return found.first() is not None

    # -- actions -------------------------------------------------------------------------

    async def _agent_reply(self, mail: ParsedMail, ticket: Ticket, agent: Agent) -> Outcome:
        """The agent's commands and text, applied as the console would apply them."""
        parsed = await asyncio.to_thread(parse_reply, mail.text)
        if parsed.errors:
            await self.tickets.queue_agent_error(agent, ticket, format_errors(parsed.errors))
            return Outcome(
                InboundStatus.processed, "コマンドの誤りを担当者に返信しました", ticket.id
            )
        result = await self.tickets.apply(
            ticket,
            Actor.agent(agent, channel=Channel.mail),
            parsed.commands,
            submission_key=_mail_key(mail),
            in_reply_to=await self._last_customer_message_id(ticket),
        )
        if result.problems:
            await self.tickets.queue_agent_error(agent, ticket, "\n".join(result.problems))
            return Outcome(
                InboundStatus.processed, "コマンドの誤りを担当者に返信しました", ticket.id
            )
        note = any(isinstance(command, AddNote) for command in parsed.commands)
        done = "社内メモを追加しました" if note else "担当者の返信を処理しました"
        return Outcome(InboundStatus.processed, done, ticket.id)

    async def _last_customer_message_id(self, ticket: Ticket) -> str | None:
        async with self.sessions() as session:
            found = await session.execute(
                select(InboundMail.message_id)
                .join(Customer, Customer.email == InboundMail.from_address)
                .where(InboundMail.ticket_id == ticket.id, Customer.id == ticket.customer_id)
                .order_by(InboundMail.id.desc())
            )
            return found.scalars().first()

    async def _new_inquiry(self, mail: ParsedMail) -> Outcome:
        photos, notes = await self._photos(mail)
        text = await asyncio.to_thread(strip_quoted, mail.text) or mail.text.strip()
        description = "\n\n".join(
            filter(None, [f"件名: {mail.subject}" if mail.subject else "", text, *notes])
        )
        submission = Submission(
            kind=TicketKind.inquiry,
            name=(mail.from_name or mail.from_address.partition("@")[0])[:100],
            email=mail.from_address,
            description=description or "(本文なし)",
            category="other",
        )
        ticket, _ = await self.tickets.submit(
            submission,
            {f"photo_{i + 1}": p for i, p in enumerate(photos)},
            late=False,
            submission_key=_mail_key(mail),
            channel="mail",
            in_reply_to=mail.message_id,
        )
        return Outcome(InboundStatus.processed, "新しいお問い合わせにしました", ticket.id)

    async def _bounce(self, mail: ParsedMail, raw: bytes) -> Outcome:
        ids = _MESSAGE_ID.findall(raw.decode("latin-1"))
        async with self.sessions() as session:
            found = await session.execute(
                select(Outbox).where(Outbox.message_id.in_(ids), Outbox.ticket_id.is_not(None))
            )
            bounced = found.scalars().first()
        if bounced is None:
            return Outcome(InboundStatus.ignored, "不達通知ですが、元のメールが見つかりません")
        failures = [
            {"recipient": s.recipient, "action": s.action, "status": s.status}
            for s in mail.delivery_status
        ]
        await self.tickets.record_event(
            bounced.ticket_id,  # type: ignore[arg-type]
            "delivery_failed",
            mail.from_address or "mailer-daemon",
            to=bounced.to_address,
            mail=bounced.kind,
            failures=failures,
        )
        return Outcome(InboundStatus.processed, "不達を記録しました", bounced.ticket_id)

    async def _photos(self, mail: ParsedMail) -> tuple[list[StoredPhoto], list[str]]:
        photos: list[StoredPhoto] = []
        notes: list[str] = []
        for attachment in mail.attachments:
            if (
                not attachment.content_type.startswith("image/")
                or len(photos) >= MAX_PHOTOS_PER_MAIL
            ):
                notes.append(f"(添付ファイル「{attachment.filename}」は保存していません)")
                continue
            try:
                photos.append(
                    await self.photos.process_async(
                        attachment.data,
                        filename=attachment.filename,
                        field_label=attachment.filename,
                    )
                )
            except PhotoError as exc:
                notes.append(f"(添付ファイル「{attachment.filename}」: {exc.message})")
        return photos, notes


def _mail_key(mail: ParsedMail) -> str | None:
    """A fixed-length key per Message-ID: the same mail delivered twice is added once."""
    if not mail.message_id:
        return None
    return "mail:" + hashlib.sha256(mail.message_id.encode()).hexdigest()[:40]


def _delivered_to(mail: ParsedMail) -> list[str]:
    return [
        value.strip().strip("<>")
        for name, value in mail.headers.items()
        if name.lower() in ("delivered-to", "x-original-to", "envelope-to")
    ]
