"""Erasing a customer's personal data: a persisted task that resumes after a crash.

An erasure is a ``PrivacyRequest`` of kind ``erasure``. ``Erasure.run`` carries it out in
steps, each one transaction that also records its progress on the request:

1. ``tickets``: the customer's tickets in batches, in id order; each batch deletes the
   tickets' messages, attachments, mails (outbox, inbound) and anonymizes the tickets, their
   events and satisfaction comments (``helpdesk.privacy.inventory`` says what, column by
   column). The request's ``cursor`` is the last ticket id done; the photo digests whose
   rows went are added to ``pending_digests``.
2. ``address``: what the address left outside its tickets: messages it sent on other
   tickets (and their photos), mail to it or from it, events it made (on other tickets, or on none).
3. ``files``: the photo files of ``pending_digests`` that no attachment and no unsent mail
   still uses (another customer's ticket may share a file: it stays), the ``.eml`` files
   naming the address (``var/mail``, written when no SMTP host is set), the customer's
   export ZIPs.
4. ``customer``: the customer row becomes an anonymous placeholder; the request is done.

A crash leaves the request ``running`` with its progress: ``run`` again continues where it
stopped (``Erasure.resume`` runs every interrupted one; ``purge`` calls it). Every step is
idempotent, so a step interrupted before its commit is simply done again: an erasure is
never left half done once resumed, and nothing is erased twice in a way that matters.

What stays: the tickets as anonymous rows (kind, status, category, priority, dates,
assignee, rating), the event kinds and times, the request and the privacy audit entries
(ids, an HMAC of the address, counts).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.models import (
    Agent,
    Attachment,
    CsatResponse,
    Customer,
    HeldReply,
    InboundMail,
    LoginFailure,
    Message,
    Outbox,
    PendingReply,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestState,
    RateCounter,
    Ticket,
    TicketEvent,
)
from helpdesk.photo_sweep import referenced_digests
from helpdesk.photos import PhotoStore
from helpdesk.privacy import audit
from helpdesk.tickets import search

log = logging.getLogger(__name__)

#: What replaces a name, a subject or an actor that named the customer.
ERASED = "削除済み"
#: The anonymous placeholder address of an erased customer (``.invalid`` never resolves).
ERASED_DOMAIN = "erased.invalid"
#: Tickets per transaction: bounded memory and short locks, whatever the customer's size.
BATCH = 20
_CHUNK = 500

#: Called after each committed step with its name ("tickets", "address", "files"): the
#: tests raise in it to stand for a crash.
StepHook = Callable[[str], None]


def erased_address(customer_id: int) -> str:
    return f"erased-{customer_id}@{ERASED_DOMAIN}"


def is_erased(customer: Customer) -> bool:
    return customer.email.endswith("@" + ERASED_DOMAIN)


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _add(counts: dict[str, int], **more: int) -> None:
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value


def _addresses(email: str) -> list[str]:
    """The address as stored (lower-cased) and as it may have been typed elsewhere."""
    return sorted({email, email.lower(), email.strip()})


class Erasure:
    """Previews and carries out erasures (``PrivacyRequest`` of kind ``erasure``)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        photos: PhotoStore,
        *,
        secret_key: str,
        mail_dir: Path | None = None,
        exports_dir: Path | None = None,
        batch: int = BATCH,
    ) -> None:
        self.sessions = sessions
        self.photos = photos
        self.secret_key = secret_key
        self.mail_dir = mail_dir
        self.exports_dir = exports_dir
        self.batch = batch

    # -- the preview ------------------------------------------------------------------------

    async def preview(self, customer_id: int) -> dict[str, int]:
        """How many rows of each kind the erasure of ``customer_id`` removes or anonymizes."""
        async with self.sessions() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                raise LookupError(customer_id)
            addresses = _addresses(customer.email)
            tickets = select(col(Ticket.id)).where(col(Ticket.customer_id) == customer_id)

            async def number(query: Any) -> int:
                return int((await session.execute(query)).scalar_one())

            def counted(model: type, *where: Any) -> Any:
                return select(func.count()).select_from(model).where(*where)

            return {
                "tickets": await number(counted(Ticket, col(Ticket.customer_id) == customer_id)),
                "messages": await number(counted(Message, col(Message.ticket_id).in_(tickets)))
                + await number(
                    counted(
                        Message,
                        col(Message.sender).in_(addresses),
                        col(Message.ticket_id).not_in(tickets),
                    )
                ),
                "photos": await number(counted(Attachment, col(Attachment.ticket_id).in_(tickets))),
                "mails_sent": await number(
                    counted(
                        Outbox,
                        or_(
                            col(Outbox.ticket_id).in_(tickets),
                            col(Outbox.to_address).in_(addresses),
                        ),
                    )
                ),
                "mails_received": await number(
                    counted(
                        InboundMail,
                        or_(
                            col(InboundMail.ticket_id).in_(tickets),
                            col(InboundMail.from_address).in_(addresses),
                        ),
                    )
                ),
                "events": await number(
                    counted(TicketEvent, col(TicketEvent.ticket_id).in_(tickets))
                ),
                "survey_comments": await number(
                    counted(
                        CsatResponse,
                        col(CsatResponse.ticket_id).in_(tickets),
                        col(CsatResponse.comment).is_not(None),
                    )
                ),
            }

    async def create(
        self,
        customer_id: int,
        *,
        due_at: datetime,
        actor: str,
        ticket_id: int | None = None,
    ) -> PrivacyRequest:
        """A pending erasure of ``customer_id`` with its preview (not carried out yet)."""
        preview = await self.preview(customer_id)
        async with self.sessions() as session, session.begin():
            customer = await session.get(Customer, customer_id)
            assert customer is not None
            request = PrivacyRequest(
                kind=PrivacyRequestKind.erasure,
                customer_id=customer_id,
                ticket_id=ticket_id,
                due_at=due_at,
                preview=json.dumps(preview, sort_keys=True),
            )
            session.add(request)
            await session.flush()
            audit.record(
                session,
                "erasure_requested",
                actor=actor,
                subject=audit.subject_hash(self.secret_key, customer.email),
                customer_id=customer_id,
                ticket_id=ticket_id,
                request_id=request.id,
                data=preview,
            )
        return request

    # -- carrying it out --------------------------------------------------------------------

    async def run(
        self, request_id: int, *, actor: str = "system", after_step: StepHook | None = None
    ) -> PrivacyRequest:
        """Carry out (or resume) erasure ``request_id``; returns it ``done``."""
        async with self.sessions() as session, session.begin():
            request = await session.get(PrivacyRequest, request_id, with_for_update=True)
            if request is None or request.kind is not PrivacyRequestKind.erasure:
                raise LookupError(request_id)
            if request.state is PrivacyRequestState.done:
                return request
            request.state = PrivacyRequestState.running
            request.attempts += 1
            request.started_at = request.started_at or utcnow()
            customer = await session.get(Customer, request.customer_id)
            assert customer is not None
            email = customer.email
            agents = {
                a.lower() for a in (await session.execute(select(col(Agent.email)))).scalars()
            }
        step = after_step or (lambda _name: None)

        while await self._tickets_batch(request_id, email, agents):
            step("tickets")
        await self._address(request_id, email)
        step("address")
        await self._files(request_id, email)
        step("files")
        async with self.sessions() as session, session.begin():
            await (await search.session_index(session)).forget_replaced(session)
        return await self._finish(request_id, actor)

    async def resume(self, *, actor: str = "system") -> int:
        """Carry out every erasure a crash interrupted (left ``running``); how many."""
        async with self.sessions() as session:
            ids = (
                (
                    await session.execute(
                        select(col(PrivacyRequest.id)).where(
                            col(PrivacyRequest.kind) == PrivacyRequestKind.erasure.value,
                            col(PrivacyRequest.state) == PrivacyRequestState.running.value,
                        )
                    )
                )
                .scalars()
                .all()
            )
        for request_id in ids:
            if request_id is not None:
                await self.run(request_id, actor=actor)
        return len(ids)

    async def _load(self, session: AsyncSession, request_id: int) -> PrivacyRequest:
        request = await session.get(PrivacyRequest, request_id, with_for_update=True)
        assert request is not None
        return request

    @staticmethod
    def _progress(request: PrivacyRequest, **more: int) -> None:
        counts = json.loads(request.progress or "{}")
        _add(counts, **more)
        request.progress = json.dumps(counts, sort_keys=True)

    @staticmethod
    def _pend(request: PrivacyRequest, digests: Iterable[str]) -> None:
        pending = set(json.loads(request.pending_digests or "[]"))
        pending.update(digests)
        request.pending_digests = json.dumps(sorted(pending))

    async def _tickets_batch(self, request_id: int, email: str, agents: set[str]) -> bool:
        """Erase the next batch of the customer's tickets; False when none is left."""
        async with self.sessions() as session, session.begin():
            request = await self._load(session, request_id)
            ids = [
                int(value)
                for value in (
                    await session.execute(
                        select(col(Ticket.id))
                        .where(
                            col(Ticket.customer_id) == request.customer_id,
                            col(Ticket.id) > request.cursor,
                        )
                        .order_by(col(Ticket.id))
                        .limit(self.batch)
                    )
                ).scalars()
                if value is not None
            ]
            if not ids:
                return False
            counts, digests = await erase_tickets(session, ids, agents=agents)
            self._pend(request, digests)
            self._progress(request, **counts)
            request.cursor = ids[-1]
        return True

    async def _address(self, request_id: int, email: str) -> None:
        addresses = _addresses(email)
        async with self.sessions() as session, session.begin():
            request = await self._load(session, request_id)
            messages = list(
                (
                    await session.execute(
                        select(col(Message.id)).where(col(Message.sender).in_(addresses))
                    )
                ).scalars()
            )
            # Other tickets the address wrote on: their search documents lose its words.
            touched = set(
                (
                    await session.execute(
                        select(col(Message.ticket_id)).where(col(Message.sender).in_(addresses))
                    )
                ).scalars()
            )
            digests: set[str] = set()
            photos = 0
            for chunk in _chunks(messages):
                rows = await session.execute(
                    select(col(Attachment.digest), col(Attachment.thumb_digest)).where(
                        col(Attachment.message_id).in_(chunk)
                    )
                )
                for digest, thumb in rows:
                    digests.update((digest, thumb))
                    photos += 1
                await session.execute(
                    delete(Attachment).where(col(Attachment.message_id).in_(chunk))
                )
                await session.execute(delete(Message).where(col(Message.id).in_(chunk)))
            outbox = await session.execute(
                delete(Outbox).where(col(Outbox.to_address).in_(addresses))
            )
            inbound = await session.execute(
                delete(InboundMail).where(
                    or_(
                        col(InboundMail.from_address).in_(addresses),
                        col(InboundMail.envelope_from).in_(addresses),
                    )
                )
            )
            events = await session.execute(
                delete(TicketEvent).where(col(TicketEvent.actor).in_(addresses))
            )
            await _rebuild_search(session, sorted(touched))
            # Counters keyed by the address (rate limits, failed logins typed with it): they
            # would expire within the hour, but nothing waits for that.
            for address in addresses:
                await session.execute(
                    delete(RateCounter).where(col(RateCounter.key).endswith(f":{address}"))
                )
                await session.execute(
                    delete(LoginFailure).where(col(LoginFailure.key) == f"account:{address}")
                )
            self._pend(request, digests)
            self._progress(
                request,
                messages=len(messages),
                photos=photos,
                mails_sent=_rowcount(outbox),
                mails_received=_rowcount(inbound),
                events=_rowcount(events),
            )

    async def _files(self, request_id: int, email: str) -> None:
        async with self.sessions() as session:
            request = await session.get(PrivacyRequest, request_id)
            assert request is not None
            pending = set(json.loads(request.pending_digests or "[]"))
            still_used = await referenced_digests(session, pending) if pending else set()
        gone = sorted(pending - still_used)
        await asyncio.to_thread(self._delete_photos, gone)
        mail_files = await asyncio.to_thread(self._delete_mail_files, email)
        async with self.sessions() as session, session.begin():
            request = await self._load(session, request_id)
            request.pending_digests = "[]"
            self._progress(
                request,
                photo_files=len(gone),
                photo_files_kept=len(pending & still_used),
                mail_files=mail_files,
            )

    def _delete_photos(self, digests: Sequence[str]) -> None:
        for digest in digests:
            try:
                self.photos.delete(digest)
            except ValueError:
                log.warning("erasure: skipped a malformed photo digest")

    def _delete_mail_files(self, email: str) -> int:
        """Delete the ``.eml`` files naming ``email`` (read in bounded chunks)."""
        if self.mail_dir is None or not self.mail_dir.is_dir():
            return 0
        needles = {address.lower().encode() for address in _addresses(email)}
        deleted = 0
        for path in self.mail_dir.glob("*.eml"):
            if _file_mentions(path, needles):
                path.unlink(missing_ok=True)
                deleted += 1
        return deleted

    async def _finish(self, request_id: int, actor: str) -> PrivacyRequest:
        async with self.sessions() as session, session.begin():
            request = await self._load(session, request_id)
            customer = await session.get(Customer, request.customer_id)
            assert customer is not None
            subject = audit.subject_hash(self.secret_key, customer.email)
            # Copies of the customer's data waiting to be downloaded go too.
            exports = (
                (
                    await session.execute(
                        select(PrivacyRequest).where(
                            col(PrivacyRequest.customer_id) == customer.id,
                            col(PrivacyRequest.export_file).is_not(None),
                        )
                    )
                )
                .scalars()
                .all()
            )
            for export in exports:
                if self.exports_dir is not None and export.export_file:
                    (self.exports_dir / export.export_file).unlink(missing_ok=True)
                export.export_file = None
            if not is_erased(customer):
                customer.email = erased_address(customer.id)  # type: ignore[arg-type]
                customer.name = ERASED
            request.state = PrivacyRequestState.done
            request.finished_at = utcnow()
            counts = json.loads(request.progress or "{}")
            audit.record(
                session,
                "erasure_done",
                actor=actor,
                subject=subject,
                customer_id=customer.id,
                ticket_id=request.ticket_id,
                request_id=request.id,
                data=counts,
            )
        log.info("erasure %d done: %s", request_id, request.progress)
        return request


def _rowcount(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def _file_mentions(path: Path, needles: set[bytes], *, chunk: int = 1 << 16) -> bool:
    """Whether the file holds one of ``needles`` (ASCII, compared lower-cased)."""
    overlap = max(len(n) for n in needles) - 1 if needles else 0
    tail = b""
    try:
        with path.open("rb") as file:
            while block := file.read(chunk):
                window = (tail + block).lower()
                if any(needle in window for needle in needles):
                    return True
                tail = window[-overlap:] if overlap else b""
    except FileNotFoundError:
        return False
    return False


async def _rebuild_search(session: AsyncSession, ticket_ids: Sequence[int]) -> None:
    """Rebuild the tickets' search documents from what they hold now."""
    index = await search.session_index(session)
    for ticket_id in ticket_ids:
        document = await search.ticket_document(session, ticket_id=ticket_id)
        terms = await asyncio.to_thread(search.document_terms, document)
        await index.replace(session, ticket_id=ticket_id, terms=terms)


async def erase_tickets(
    session: AsyncSession, ids: Sequence[int], *, agents: set[str]
) -> tuple[dict[str, int], set[str]]:
    """Erase the personal data of tickets ``ids`` in the caller's transaction (also used by
    retention to anonymize old closed tickets): messages, photos, mails deleted; tickets,
    events and survey comments anonymized. Returns counts, and the digests of the photo
    files whose rows went (the caller deletes the files once nothing uses them)."""
    digests: set[str] = set()
    for digest, thumb in await session.execute(
        select(col(Attachment.digest), col(Attachment.thumb_digest)).where(
            col(Attachment.ticket_id).in_(ids)
        )
    ):
        digests.update((digest, thumb))
    photos = await session.execute(delete(Attachment).where(col(Attachment.ticket_id).in_(ids)))
    # Photos of other tickets attached to these tickets' messages: none are made today, but
    # the foreign key must hold whatever an older version did.
    await session.execute(
        delete(Attachment).where(
            col(Attachment.message_id).in_(
                select(col(Message.id)).where(col(Message.ticket_id).in_(ids))
            )
        )
    )
    messages = await session.execute(delete(Message).where(col(Message.ticket_id).in_(ids)))
    # Agents' mailed replies held (二重対応防止): their text was written to this customer.
    await session.execute(delete(HeldReply).where(col(HeldReply.ticket_id).in_(ids)))
    # Replies waiting for an admin's approval (sent or not): written to this customer.
    await session.execute(delete(PendingReply).where(col(PendingReply.ticket_id).in_(ids)))
    outbox = await session.execute(delete(Outbox).where(col(Outbox.ticket_id).in_(ids)))
    inbound = await session.execute(delete(InboundMail).where(col(InboundMail.ticket_id).in_(ids)))
    await session.execute(
        update(CsatResponse).where(col(CsatResponse.ticket_id).in_(ids)).values(comment=None)
    )
    events = await session.execute(
        update(TicketEvent).where(col(TicketEvent.ticket_id).in_(ids)).values(data="{}")
    )
    # Actors other than agents (the customer's address, a third party's): the system and
    # roles ("customer", "system") carry no "@".
    await session.execute(
        update(TicketEvent)
        .where(
            col(TicketEvent.ticket_id).in_(ids),
            col(TicketEvent.actor).contains("@"),
            func.lower(col(TicketEvent.actor)).not_in(sorted(agents)),
        )
        .values(actor=ERASED)
    )
    await session.execute(
        update(Ticket)
        .where(col(Ticket.id).in_(ids))
        .values(
            customer_name=ERASED,
            subject=ERASED,
            order_number=None,
            arrived_on=None,
            desired_variant=None,
            submission_key=None,
            submission_fingerprint=None,
        )
    )
    # A new nonce per ticket: every customer link of it stops working.
    for ticket_id in ids:
        await session.execute(
            update(Ticket)
            .where(col(Ticket.id) == ticket_id)
            .values(token_nonce=secrets.token_urlsafe(24))
        )
    # The full-text search documents held the name, address, order number and every word
    # of the messages: only the reference stays findable.
    index = await search.session_index(session)
    for erased, reference in await session.execute(
        select(col(Ticket.id), col(Ticket.reference)).where(col(Ticket.id).in_(ids))
    ):
        if erased is None:
            continue
        terms = search.identifier_terms(reference=reference, order_number=None, email="", name="")
        await index.replace(session, ticket_id=erased, terms=terms)
    counts = {
        "tickets": len(ids),
        "messages": _rowcount(messages),
        "photos": _rowcount(photos),
        "mails_sent": _rowcount(outbox),
        "mails_received": _rowcount(inbound),
        "events": _rowcount(events),
    }
    return counts, digests
