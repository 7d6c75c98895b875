"""Inbound mail: stored raw first, then parsed, threaded onto a ticket and acted on.

Threading, in this order: a signed reply address (the customer's
``support+hd-26-00042.sig@shop`` or the agents' ``...a<sig>``); then In-Reply-To/References
against the Message-IDs we sent (to the customer or to the agents' inbox) or received;
then ``[HD-26-00042]`` in the subject when the sender is the ticket's customer. Anything
else from a person becomes a new inquiry. Automatic mail (RFC 3834) is kept but never
answered; delivery reports are recorded on the ticket whose mail bounced.

What a threaded mail may do depends on how it came and who sent it (``decide``, issues 7
and 8): only a registered agent on the agents' channel runs commands and answers; only the
customer's own address, on their signed address or under one of our mails to them, writes
as the customer. Everything else is held for agents as unverified (``Trust``): never shown
or sent to the customer, reopening nothing, until an agent accepts it.

Every message is processed at most a few times (issue 7): a run is counted and committed
before it starts, so a message that kills the process is parked as failed for agents after
its second start instead of being run at every restart; a copy sent again with the same
Message-ID starts nothing. A temporary failure (database, media folder, timeout) is
retried with backoff by the periodic pass (``process_due``); a permanent one is failed and
the agents are told. Once processed, the raw mail is kept without the photos' metadata.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.db import as_utc, utcnow
from helpdesk.mail.decode import MailParseError, ParsedMail, parse_message_async
from helpdesk.mail.reply import CommandError, format_errors, parse_reply, strip_quoted
from helpdesk.mail.stored import CleanImage, original_digest, without_image_metadata
from helpdesk.models import (
    Agent,
    Customer,
    InboundMail,
    InboundStatus,
    Outbox,
    Ticket,
    TicketKind,
    Trust,
)
from helpdesk.photos import PhotoError, PhotoStore, StoredPhoto
from helpdesk.privacy.masking import mask_card_numbers
from helpdesk.tickets import Actor, AddNote, Channel, Submission, TicketService, store
from helpdesk.tickets.labels import trust_label
from helpdesk.tickets.rules import clean_line, clean_text

log = logging.getLogger(__name__)

_SUBJECT_REFERENCE = re.compile(r"\[(HD-\d{2}-\d+)\]", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_HEADER_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.M)
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|fw|fwd|aw|wg|tr|sv|vs|返信|転送)\s*[:：]\s*)+", re.I)
_DAEMONS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply")
MAX_PHOTOS_PER_MAIL = 5
# How long one processing run may take: a message still "received" after this was
# interrupted (the process died or was stopped while processing it).
LEASE = timedelta(minutes=5)
# A message interrupted after this many runs is not run again automatically (issue 7: a
# message that kills the process would otherwise kill it at every restart).
MAX_STARTS = 2
# Waits before the next run after a temporary failure; after the last, the message fails.
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
)
# Recording an outcome is retried briefly: a database blip there would repeat the run.
RECORD_RETRIES = (0.2, 1.0, 3.0)
# The forms' limit on a description, applied to mail too.
MAX_MAIL_TEXT = 5000
SPAM_SENDER = "迷惑メールに指定された差出人のため、チケットにしません(メールは保存しています)"
PARKED = (
    "処理中に停止したため自動では処理しません({attempts}回目の処理が途中で止まりました)。"
    "内容を確認し、処理してよければ main.py mail reprocess {id} を実行してください。"
)


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


def is_temporary(error: BaseException) -> bool:
    """Whether a failure may pass by itself: the database unreachable or busy, the media
    folder not writable, a timeout. Bad mail and our own bugs are permanent."""
    if isinstance(error, IntegrityError):
        return False
    if isinstance(error, OperationalError | InterfaceError):
        return True
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated)
    return isinstance(error, OSError | TimeoutError | ConnectionError)


# -- how a mail reached its ticket, and what it may do -----------------------------------------


class Via(StrEnum):
    customer_address = "customer_address"  # the customer's signed reply address
    agents_address = "agents_address"  # the agents' signed reply address
    our_mail_to_customer = "our_mail_to_customer"  # In-Reply-To/References: ours, to them
    our_mail_to_agents = "our_mail_to_agents"  # ... ours, to the agents' inbox
    other_mail = "other_mail"  # ... a mail received on the ticket, or ours to someone else
    subject = "subject"  # [HD-26-00042] in the subject, from the customer's address


@dataclass(frozen=True, slots=True)
class Thread:
    ticket: Ticket
    via: Via
    customer_email: str


class Act(StrEnum):
    agent = "agent"  # a registered agent's commands and answer
    customer = "customer"  # a message on the customer's side (verified or held)


@dataclass(frozen=True, slots=True)
class Decision:
    act: Act
    trust: Trust = Trust.verified


def decide(via: Via, *, sender: str, customer_email: str, is_agent: bool) -> Decision:
    """What a mail threaded ``via`` from ``sender`` may do (pure: the rules in one place).

    - The agents' channel: a registered agent acts; anyone else is held as unregistered
      (no command runs, however the mail is written).
    - Otherwise, a sender other than the customer is held as a third party.
    - The customer's address on their signed address or under our mail to them is the
      customer; threaded only by subject (or by ids we did not make), it is held: anyone
      can write a reference in a subject and a From header (issue 7, item 12).
    """
    if via in (Via.agents_address, Via.our_mail_to_agents):
        return Decision(Act.agent) if is_agent else Decision(Act.customer, Trust.unregistered)
    if sender.lower() != customer_email.lower():
        return Decision(Act.customer, Trust.third_party)
    if via in (Via.customer_address, Via.our_mail_to_customer):
        return Decision(Act.customer)
    return Decision(Act.customer, Trust.weak_thread)


@dataclass(slots=True)
class _Run:
    """What one processing run kept: the photos stored, by the digest of the bytes sent."""

    photos: dict[str, StoredPhoto] = field(default_factory=dict)
    #: The mail's subject or text held a card number: its raw copy is not kept once it is
    #: processed (the ticket keeps the text with the number removed).
    card_number: bool = False


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

    # -- receiving and running -------------------------------------------------------------

    async def receive(
        self, raw: bytes, *, envelope_from: str | None = None, envelope_to: Sequence[str] = ()
    ) -> InboundMail:
        """Store ``raw``, then process it. Only a failure to store raises.

        A copy of a message already stored (the same Message-ID: a sending server that saw
        the connection drop sends again) is kept as ignored and starts nothing.
        """
        message_id = header_message_id(raw)
        now = utcnow()
        async with self.sessions() as session, session.begin():
            original = await self._first_copy(session, message_id) if message_id else None
            row = InboundMail(
                raw=raw,
                envelope_from=(envelope_from or "")[:254] or None,
                envelope_to=" ".join(envelope_to) or None,
                message_id=message_id,
                received_at=now,
            )
            if original is None:
                # The first run starts now: counted and committed before it does.
                row.attempts, row.next_attempt_at = 1, now + LEASE
            else:
                row.status = InboundStatus.ignored
                row.outcome = f"受信番号 {original.id} と同じメール(再送)のため、処理していません"
                row.ticket_id = original.ticket_id
            session.add(row)
        if original is not None:
            await self._forget_images(row.id, row.raw, _Run())  # type: ignore[arg-type]
            return row
        try:
            return await self._run(row)
        except Exception:  # stored: the periodic pass runs it again once the lease ends
            log.exception("inbound mail %s: the outcome could not be recorded", row.id)
            return row

    async def process_due(self) -> int:
        """The periodic pass: run again the messages interrupted (their lease ended) and
        those waiting after a temporary failure; park those interrupted ``MAX_STARTS``
        times. Returns how many messages it handled."""
        now = utcnow()
        async with self.sessions() as session:
            found = await session.execute(
                select(col(InboundMail.id), col(InboundMail.status), col(InboundMail.attempts))
                .where(
                    or_(
                        and_(
                            col(InboundMail.status) == InboundStatus.received,
                            or_(
                                col(InboundMail.next_attempt_at) < now,
                                # Stored before attempts were counted.
                                and_(
                                    col(InboundMail.next_attempt_at).is_(None),
                                    col(InboundMail.received_at) < now - LEASE,
                                ),
                            ),
                        ),
                        and_(
                            col(InboundMail.status) == InboundStatus.retry,
                            col(InboundMail.next_attempt_at) <= now,
                        ),
                    )
                )
                .order_by(col(InboundMail.id))
            )
            due = found.all()
        handled = 0
        for row_id, status, attempts in due:
            if status == InboundStatus.received and attempts >= MAX_STARTS:
                handled += await self._park(row_id, attempts)  # type: ignore[arg-type]
                continue
            row = await self._claim(row_id, status=status, attempts=attempts)  # type: ignore[arg-type]
            if row is not None:
                await self._run(row)
                handled += 1
        return handled

    async def release_leases(self, *, claimed_before: datetime) -> int:
        """Make due now the messages whose run began before ``claimed_before`` and has not
        ended ("received", still leased); returns how many.

        For a new leader (``helpdesk.leader``): its predecessor died or stopped while
        processing them (the receiver runs in the leader), so they need not wait out their
        5-minute lease; the next ``process_due`` runs them (a counted start, as after an
        expired lease: a message that kills every leader is still parked after
        ``MAX_STARTS``). Runs begun since (leases ending after ``claimed_before + LEASE``)
        are left alone. A run that had applied its changes before the process died adds
        nothing the second time (the submission keys).
        """
        now = utcnow()
        horizon = as_utc(claimed_before) + LEASE
        async with self.sessions() as session, session.begin():
            released = await session.execute(
                update(InboundMail)
                .where(
                    col(InboundMail.status) == InboundStatus.received,
                    col(InboundMail.next_attempt_at) > now,
                    col(InboundMail.next_attempt_at) < horizon,
                )
                .values(next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )
        return int(released.rowcount or 0)  # type: ignore[attr-defined]

    async def reprocess(self, inbound_id: int, *, force: bool = False) -> InboundMail:
        """Run one stored message again, for an agent (``main.py mail reprocess ID``).

        Raises ``LookupError`` for no such message, ``ValueError`` (Japanese) when it is
        processed already (unless ``force``: the submission keys still add nothing twice)
        or being processed right now.
        """
        async with self.sessions() as session:
            row = await session.get(InboundMail, inbound_id)
        if row is None:
            raise LookupError(f"受信番号 {inbound_id} のメールはありません。")
        if row.status == InboundStatus.processed and not force:
            raise ValueError(
                f"受信番号 {inbound_id} は処理済みです。"
                "もう一度処理するには --force を付けてください。"
            )
        leased = row.next_attempt_at is not None and as_utc(row.next_attempt_at) > utcnow()
        if row.status == InboundStatus.received and leased and not force:
            raise ValueError(f"受信番号 {inbound_id} はいま処理中です。")
        claimed = await self._claim(inbound_id, status=row.status, attempts=row.attempts)
        if claimed is None:
            raise ValueError(f"受信番号 {inbound_id} は別の処理と重なりました。")
        return await self._run(claimed)

    async def _first_copy(self, session: AsyncSession, message_id: str) -> InboundMail | None:
        found = await session.execute(
            select(InboundMail)
            .where(col(InboundMail.message_id) == message_id)
            .order_by(col(InboundMail.id))
            .limit(1)
        )
        return found.scalar_one_or_none()

    async def _claim(self, row_id: int, *, status: str, attempts: int) -> InboundMail | None:
        """Start a run: count it and take the lease, unless another worker did first."""
        async with self.sessions() as session, session.begin():
            claimed = await session.execute(
                update(InboundMail)
                .where(
                    col(InboundMail.id) == row_id,
                    col(InboundMail.status) == status,
                    col(InboundMail.attempts) == attempts,
                )
                .values(
                    status=InboundStatus.received,
                    attempts=attempts + 1,
                    next_attempt_at=utcnow() + LEASE,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return await session.get(InboundMail, row_id, populate_existing=True)

    async def _park(self, row_id: int, attempts: int) -> int:
        """Fail a message interrupted ``MAX_STARTS`` times, and tell the agents."""
        text = PARKED.format(attempts=attempts, id=row_id)
        async with self.sessions() as session, session.begin():
            parked = await session.execute(
                update(InboundMail)
                .where(
                    col(InboundMail.id) == row_id,
                    col(InboundMail.status) == InboundStatus.received,
                    col(InboundMail.attempts) == attempts,
                )
                .values(status=InboundStatus.failed, outcome=text, next_attempt_at=None)
            )
            if parked.rowcount != 1:  # type: ignore[attr-defined]
                return 0
            row = await session.get(InboundMail, row_id, populate_existing=True)
            assert row is not None
            await self.tickets.notify.inbound_failed(session, row, text, _preview(row.raw))
        log.error("inbound mail %s parked after %d interrupted runs", row_id, attempts)
        return 1

    async def _run(self, row: InboundMail) -> InboundMail:
        """One counted run of a claimed message, and its outcome recorded."""
        run = _Run()
        envelope_to = (row.envelope_to or "").split()
        try:
            outcome = await self._process(row, envelope_to, run)
        except Exception as exc:  # kept for agents, never dropped
            if is_temporary(exc):
                log.warning("inbound mail %s: temporary failure: %r", row.id, exc)
                text = f"一時的な問題で処理できませんでした: {exc!r}"
                outcome = Outcome(InboundStatus.retry, text)
            else:
                log.exception("inbound mail %s could not be processed", row.id)
                outcome = Outcome(InboundStatus.failed, f"処理できませんでした: {exc!r}")
        retry_at: datetime | None = None
        if outcome.status is InboundStatus.retry:
            if row.attempts > len(RETRY_DELAYS):
                outcome = Outcome(
                    InboundStatus.failed,
                    f"一時的な問題が{row.attempts}回続いたため、処理を止めました。"
                    f"原因を取り除いてから main.py mail reprocess {row.id} を実行してください。"
                    f"(最後の問題: {outcome.text})",
                )
            else:
                retry_at = utcnow() + RETRY_DELAYS[max(row.attempts - 1, 0)]
        outcome = replace(outcome, text=outcome.text[:2000])
        await self._record(row, outcome, retry_at, forget_raw=run.card_number)
        if outcome.status in (InboundStatus.processed, InboundStatus.ignored):
            await self._forget_images(row.id, row.raw, run)  # type: ignore[arg-type]
        row.status, row.outcome, row.ticket_id = outcome.status, outcome.text, outcome.ticket_id
        row.next_attempt_at = retry_at
        return row

    async def _record(
        self,
        row: InboundMail,
        outcome: Outcome,
        retry_at: datetime | None,
        *,
        forget_raw: bool = False,
    ) -> None:
        """Store the outcome (and tell the agents of a failure) in one transaction; with
        ``forget_raw`` (a card number in the mail), a processed mail's raw copy is emptied."""
        for delay in (*RECORD_RETRIES, None):
            try:
                async with self.sessions() as session, session.begin():
                    stored = await session.get(InboundMail, row.id)
                    assert stored is not None
                    stored.status = outcome.status
                    stored.outcome = outcome.text
                    stored.ticket_id = outcome.ticket_id
                    stored.message_id = row.message_id
                    stored.from_address = row.from_address
                    stored.subject = row.subject
                    stored.next_attempt_at = retry_at
                    if forget_raw and outcome.status in (
                        InboundStatus.processed,
                        InboundStatus.ignored,
                    ):
                        stored.raw = b""
                    if outcome.status is InboundStatus.failed:
                        await self.tickets.notify.inbound_failed(
                            session, stored, outcome.text, _preview(stored.raw)
                        )
                return
            except Exception as exc:
                if delay is None or not is_temporary(exc):
                    raise
                await asyncio.sleep(delay)

    async def _forget_images(self, row_id: int, raw: bytes, run: _Run) -> None:
        """Keep the raw mail with its images cleaned of GPS, serial numbers and names."""
        try:
            cleaned = {
                digest: CleanImage(
                    await asyncio.to_thread(self.photos.open, photo.digest), photo.content_type
                )
                for digest, photo in run.photos.items()
            }
            kept = await asyncio.to_thread(without_image_metadata, raw, cleaned)
            if kept is None:
                return
            async with self.sessions() as session, session.begin():
                stored = await session.get(InboundMail, row_id)
                assert stored is not None
                stored.raw = kept
        except Exception:
            log.exception("inbound mail %s: could not clean the images of the raw mail", row_id)

    # -- processing ------------------------------------------------------------------------

    async def _process(self, row: InboundMail, envelope_to: Sequence[str], run: _Run) -> Outcome:
        try:
            mail = await parse_message_async(row.raw)  # off the event loop
        except MailParseError as exc:
            return Outcome(InboundStatus.failed, f"メールとして解析できません: {exc}")
        row.message_id = (mail.message_id or "")[:250] or None
        row.from_address = mail.from_address[:254] or None
        if len(mail.from_address) > 254:
            return Outcome(InboundStatus.failed, "差出人のアドレスが長すぎます")
        row.subject = mail.subject
        if mask_card_numbers(f"{mail.subject or ''}\n{mail.text}")[1]:
            run.card_number = True
            row.subject = mask_card_numbers(mail.subject or "")[0] or None
        if row.message_id and await self._already_processed(row):
            return Outcome(InboundStatus.ignored, "同じメールをすでに処理しています")
        if mail.from_address == self.tickets.support_address.lower():
            return Outcome(InboundStatus.ignored, "自分自身からのメール(ループ防止)")
        if mail.is_delivery_report:
            return await self._bounce(mail, row.raw)

        thread = await self._thread(mail, envelope_to)
        automatic = is_automatic(mail)
        if thread is None:
            if automatic:
                return Outcome(InboundStatus.ignored, "自動送信のメールのため、チケットにしません")
            if await self.tickets.is_spam_sender(mail.from_address):
                # Kept here (raw, with its outcome) for agents; no ticket, no mail.
                return Outcome(InboundStatus.ignored, SPAM_SENDER)
            if len(mail.text) > MAX_MAIL_TEXT:
                mail = replace(mail, text=mail.text[:MAX_MAIL_TEXT] + "\n(以下省略)")
            return await self._new_inquiry(mail, run)
        ticket = thread.ticket
        if automatic:
            # An out-of-office reply, from a customer or an agent alike, is never passed on.
            await self.tickets.record_event(
                ticket.id,  # type: ignore[arg-type]
                "auto_reply_received",
                mail.from_address,
                subject=mail.subject,
            )
            return Outcome(InboundStatus.ignored, "自動返信を記録しました", ticket.id)

        agent = await self.tickets.agent_by_email(mail.from_address)
        decision = decide(
            thread.via,
            sender=mail.from_address,
            customer_email=thread.customer_email,
            is_agent=agent is not None,
        )
        if decision.act is Act.agent:
            assert agent is not None
            return await self._agent_reply(mail, ticket, agent)
        photos, notes = await self._photos(mail, run)
        body = "\n\n".join(filter(None, [await asyncio.to_thread(strip_quoted, mail.text), *notes]))
        await self.tickets.add_customer_message(
            ticket,
            body[:MAX_MAIL_TEXT],
            {f"photo_{i + 1}": p for i, p in enumerate(photos)},
            submission_key=_mail_key(mail),
            sender=mail.from_address,
            sender_name=clean_line(mail.from_name)[:100] or None,
            trust=decision.trust,
            mail_id=row.message_id,
        )
        if decision.trust is Trust.verified:
            return Outcome(InboundStatus.processed, "お客様の返信を追加しました", ticket.id)
        held = f"未確認のメッセージとして担当者に回しました: {trust_label(decision.trust)}"
        return Outcome(InboundStatus.processed, held, ticket.id)

    # -- threading -----------------------------------------------------------------------

    async def _thread(self, mail: ParsedMail, envelope_to: Sequence[str]) -> Thread | None:
        signed = self._signed_reference([*envelope_to, *mail.to, *mail.cc, *_delivered_to(mail)])
        if signed is not None:
            reference, for_agents = signed
            ticket = await self.tickets.find(reference)
            if ticket is not None:
                via = Via.agents_address if for_agents else Via.customer_address
                return await self._following_merges(await self._with_customer(ticket, via))
        thread = await self._thread_by_ids(mail) or await self._thread_by_subject(mail)
        return await self._following_merges(thread)

    async def _following_merges(self, thread: Thread | None) -> Thread | None:
        """A merged duplicate's mail goes on in the ticket it was merged into (the same
        customer: only their duplicates are merged)."""
        if thread is None or thread.ticket.merged_into_id is None:
            return thread
        return replace(thread, ticket=await self.tickets.following_merges(thread.ticket))

    async def _with_customer(self, ticket: Ticket, via: Via) -> Thread:
        async with self.sessions() as session:
            customer = await session.get(Customer, ticket.customer_id)
        assert customer is not None
        return Thread(ticket, via, customer.email)

    def _signed_reference(self, addresses: Iterable[str]) -> tuple[str, bool] | None:
        for address in addresses:
            reference = self.tickets.access.ticket_from_reply_address(address)
            if reference:
                return reference
        return None

    async def _thread_by_ids(self, mail: ParsedMail) -> Thread | None:
        """The ticket of the first id (In-Reply-To, then References from the latest) that is
        one of our mails, else of a mail received on a ticket."""
        ids = [i for i in (mail.in_reply_to, *reversed(mail.references)) if i]
        if not ids:
            return None
        async with self.sessions() as session:
            sent = await session.execute(
                select(col(Outbox.message_id), col(Outbox.to_address), Ticket, col(Customer.email))
                .join(Ticket, col(Ticket.id) == col(Outbox.ticket_id))
                .join(Customer, col(Customer.id) == col(Ticket.customer_id))
                .where(col(Outbox.message_id).in_(ids))
            )
            ours = {mid: (to, ticket, email) for mid, to, ticket, email in sent.all()}
            for mail_id in ids:
                if mail_id in ours:
                    to, ticket, email = ours[mail_id]
                    if to.lower() == email.lower():
                        return Thread(ticket, Via.our_mail_to_customer, email)
                    if to.lower() == self.tickets.support_address.lower() or (
                        await store.agent_by_email(session, email=to)
                    ):
                        return Thread(ticket, Via.our_mail_to_agents, email)
                    return Thread(ticket, Via.other_mail, email)
            received = await session.execute(
                select(col(InboundMail.message_id), Ticket, col(Customer.email))
                .join(Ticket, col(Ticket.id) == col(InboundMail.ticket_id))
                .join(Customer, col(Customer.id) == col(Ticket.customer_id))
                .where(col(InboundMail.message_id).in_(ids))
            )
            theirs = {mid: (ticket, email) for mid, ticket, email in received.all()}
            for mail_id in ids:
                if mail_id in theirs:
                    ticket, email = theirs[mail_id]
                    return Thread(ticket, Via.other_mail, email)
        return None

    async def _thread_by_subject(self, mail: ParsedMail) -> Thread | None:
        match = _SUBJECT_REFERENCE.search(mail.subject)
        if not match:
            return None
        async with self.sessions() as session:
            found = await session.execute(
                select(Ticket)
                .join(Customer, col(Customer.id) == col(Ticket.customer_id))
                .where(
                    col(Ticket.reference) == match[1].upper(),
                    col(Customer.email) == mail.from_address,
                )
            )
            ticket = found.scalar_one_or_none()
        return Thread(ticket, Via.subject, mail.from_address) if ticket else None

    async def _already_processed(self, row: InboundMail) -> bool:
        async with self.sessions() as session:
            found = await session.execute(
                select(col(InboundMail.id)).where(
                    col(InboundMail.message_id) == row.message_id,
                    col(InboundMail.id) != row.id,
                    col(InboundMail.status) == InboundStatus.processed,
                )
            )
            return found.first() is not None

    # -- actions -------------------------------------------------------------------------

    async def _agent_reply(self, mail: ParsedMail, ticket: Ticket, agent: Agent) -> Outcome:
        """The agent's commands and text, applied as the console would apply them."""
        parsed = await asyncio.to_thread(parse_reply, mail.text)
        problems: list[CommandError | str] = [*parsed.errors]
        if parsed.errors:
            # Everything wrong is told at once, the lines' and the commands' alike.
            problems += await self.tickets.problems(ticket, parsed.commands)
        else:
            # What the agent had seen: the mail of ours their reply answers (二重対応防止).
            ids = [i for i in (mail.in_reply_to, *mail.references) if i]
            result = await self.tickets.apply(
                ticket,
                Actor.agent(agent, channel=Channel.mail),
                parsed.commands,
                submission_key=_mail_key(mail),
                seen_at=await self.tickets.mail_seen_at(ticket, ids),
            )
            problems += result.problems
            if result.held:
                return Outcome(
                    InboundStatus.processed,
                    "ほかの対応と重なるため返信を保留し、担当者に確認を依頼しました",
                    ticket.id,
                )
        if problems:
            await self.tickets.queue_agent_error(agent, ticket, format_errors(problems))
            return Outcome(
                InboundStatus.processed, "コマンドの誤りを担当者に返信しました", ticket.id
            )
        note = any(isinstance(command, AddNote) for command in parsed.commands)
        done = "社内メモを追加しました" if note else "担当者の返信を処理しました"
        if not parsed.errors and result.awaiting_approval is not None:
            done = "担当者の返信を承認待ちにしました(お客様には未送信)"
        return Outcome(InboundStatus.processed, done, ticket.id)

    async def _new_inquiry(self, mail: ParsedMail, run: _Run) -> Outcome:
        photos, notes = await self._photos(mail, run)
        text = await asyncio.to_thread(strip_quoted, mail.text) or mail.text.strip()
        description = "\n\n".join(
            filter(None, [f"件名: {mail.subject}" if mail.subject else "", text, *notes])
        )
        submission = Submission(
            kind=TicketKind.inquiry,
            name=(clean_line(mail.from_name) or mail.from_address.partition("@")[0])[:100],
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
            mail_id=(mail.message_id or "")[:250] or None,
            subject=ticket_subject(mail.subject),
        )
        return Outcome(InboundStatus.processed, "新しいお問い合わせにしました", ticket.id)

    async def _bounce(self, mail: ParsedMail, raw: bytes) -> Outcome:
        ids = _MESSAGE_ID.findall(raw.decode("latin-1"))
        async with self.sessions() as session:
            found = await session.execute(
                select(Outbox).where(
                    col(Outbox.message_id).in_(ids), col(Outbox.ticket_id).is_not(None)
                )
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

    async def _photos(self, mail: ParsedMail, run: _Run) -> tuple[list[StoredPhoto], list[str]]:
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
                photo = await self.photos.process_async(
                    attachment.data,
                    filename=attachment.filename,
                    field_label=attachment.filename,
                )
            except PhotoError as exc:
                notes.append(f"(添付ファイル「{attachment.filename}」: {exc.message})")
                continue
            photos.append(photo)
            run.photos[original_digest(attachment.data)] = photo
        return photos, notes


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID in the header of ``raw``, read without parsing the message (as
    ``parse_message`` reads it: the first ``<...>``, else the first word)."""
    head = raw[:65536]
    end = re.search(rb"\r?\n\r?\n", head)
    match = _HEADER_MESSAGE_ID.search(head[: end.start()] if end else head)
    if not match:
        return None
    value = re.sub(r"\s+", " ", match[1].decode("ascii", "replace")).strip()
    found = re.search(r"<([^<>\s]+)>", value)
    message_id = found[1] if found else next(iter(value.strip("<>").split()), "")
    return message_id[:250] or None


def ticket_subject(subject: str) -> str | None:
    """A ticket's subject from a mail's: without 「Re:」「Fwd:」 or a reference tag."""
    subject = _SUBJECT_REFERENCE.sub("", clean_line(subject))
    subject = _REPLY_PREFIX.sub("", subject).strip()
    return subject[:200] or None


def _preview(raw: bytes) -> str:
    return clean_text(raw[:4000].decode("utf-8", errors="replace"))


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
