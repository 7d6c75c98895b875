"""Sending the outbox: MIME building, transports (SMTP or a folder) and the sender loop.

Rows are written by the ticket service in the same transaction as the change that causes
them (the transactional outbox); this module only reads and sends them. Several senders
(tasks or processes) may run against one database: a row is *claimed* with a lease before it
is sent, so two senders never send the same row, and a sender that dies holding rows only
delays them until the lease expires.

Delivery is at-least-once: the one window left is between the server's "250 OK" and our
commit of ``status='sent'`` (see ``OutboxSender.send_one``). Every attempt carries the same
Message-ID, so the rare duplicate is recognisable by the receiving side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from zoneinfo import ZoneInfo

import aiosmtplib
from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from helpdesk.db import as_utc, utcnow
from helpdesk.files import FILE_MODE, private_dir
from helpdesk.models import Outbox, OutboxStatus, TicketEvent

if TYPE_CHECKING:
    from helpdesk.photos import PhotoStore

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "tls"]

# SMTP policy (CRLF, 78-column folding, RFC 2047 for non-ASCII headers, 7-bit output), except
# that headers we set pre-folded with ``set_raw`` are kept as they are: a long msg-id in
# In-Reply-To or References (Outlook's are often over 78 characters) would otherwise be
# turned into an RFC 2047 encoded word, which no client matches when threading.
POLICY = SMTP_POLICY.clone(refold_source="none")
# The Date header is written in Japan time: that is what customers and agents read.
TOKYO = ZoneInfo("Asia/Tokyo")
# Recorded on the row and in the dead-letter event; SMTP replies are short, tracebacks not.
MAX_ERROR_LENGTH = 1000
# A claimed row is sent only while at least this share of its lease is left; otherwise it is
# handed back, so that a slow batch never sends a row whose lease another sender could take.
LEASE_SAFETY_SHARE = 0.5
#: How long a sender holds the rows it claims (a dead sender's rows wait this long).
LEASE_SECONDS = 300.0
# Committing "sent" is retried briefly: giving up there means sending the mail twice.
SENT_COMMIT_RETRIES = (0.2, 1.0, 3.0)
# A doubtful 5xx (see DoubtfulError) is tried this many times in all, the first retry after
# this many seconds (greylisting servers want a few minutes), doubling: dead after ~35 min.
DOUBTFUL_ATTEMPTS = 4
DOUBTFUL_DELAY = 300.0

_QUEUED = OutboxStatus.queued.value
_SENDING = OutboxStatus.sending.value
_SENT = OutboxStatus.sent.value
_DEAD = OutboxStatus.dead.value
_MSG_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+")  # no <, >, space
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


# -- errors ------------------------------------------------------------------------------------


#: Mail kinds whose address and text are removed from the outbox as soon as they are sent.
SCRUBBED_WHEN_SENT = frozenset({"privacy_erased"})
SCRUBBED_ADDRESS = "erased@erased.invalid"


class SendError(Exception):
    """A message was not sent; ``str(error)`` is recorded as the row's ``last_error``."""


class TransientError(SendError):
    """Worth trying again later: 4xx replies, connection problems, timeouts."""


class PermanentError(SendError):
    """Will never succeed as it is: 5xx replies, a message that cannot be built."""


class DoubtfulError(PermanentError):
    """A 5xx reply that providers are known to send for passing conditions (a full
    mailbox, greylisting, rate limits, spam-filter moods): tried a few more times, with
    backoff, before the row is dead."""


# Enhanced status codes (RFC 3463) that are about the address or the message itself: these
# will not change by waiting. 5.1.x bad address, 5.3.4 too big, 5.5.x protocol, 5.6.x content.
_FINAL_STATUS = re.compile(r"\b5\.(?:1\.\d{1,3}|3\.4|5\.\d{1,3}|6\.\d{1,3})\b")
_FINAL_TEXT = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient)|does not exist|"
    r"recipient address rejected: user|address rejected|invalid recipient|"
    r"mailbox not found|unrouteable address",
    re.IGNORECASE,
)
# Wording of passing conditions, whatever the code says (some providers answer 550 to them).
_PASSING_TEXT = re.compile(
    r"greylist|graylist|try again|temporar|quota|mailbox (?:is )?full|over ?quota|"
    r"insufficient (?:system )?storage|exceeded storage|rate limit|too many|throttl|"
    r"later|busy|deferred",
    re.IGNORECASE,
)


def classify_reply(code: int, text: str, what: str) -> SendError:
    """The error for an SMTP reply: transient for 4xx, permanent for a 5xx that names a bad
    address or message (5.1.x, 5.3.4, 5.5.x, 5.6.x, "user unknown"), doubtful for any other
    5xx (quota, greylisting and policy refusals that providers misreport as permanent)."""
    detail = f"{what}: {code} {text}".strip()
    if not 500 <= code < 600:
        return TransientError(detail)
    if _PASSING_TEXT.search(text):
        return DoubtfulError(detail)
    if _FINAL_STATUS.search(text) or _FINAL_TEXT.search(text):
        return PermanentError(detail)
    return DoubtfulError(detail)


# -- building ----------------------------------------------------------------------------------


def _ascii_address(address: str) -> str:
    """``address`` with an internationalized domain in its ASCII (punycode) form.

    Raises ``ValueError`` for a non-ASCII local part (that needs SMTPUTF8, not supported).
    """
    address = address.strip()
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        raise ValueError(f"address needs SMTPUTF8, which is not supported: {address!r}")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise ValueError(f"invalid domain in address {address!r}: {exc}") from None


def recipient(row: Outbox) -> str:
    """The envelope recipient of ``row`` (the same as its To header).

    Raises ``ValueError`` for an address that cannot be sent to without SMTPUTF8.
    """
    return _ascii_address(row.to_address)


def _msg_ids(value: str | None) -> list[str]:
    """Well-formed ids (without ``<>``) in a space-separated list; anything else is dropped."""
    ids = (token.strip("<>") for token in (value or "").split())
    return [token for token in ids if _MSG_ID.fullmatch(token)]


def _fold_ids(ids: Sequence[str]) -> str:
    """``<a> <b> ...`` folded at 78 columns between ids, never inside one (RFC 5322 3.6.4)."""
    lines: list[str] = []
    current = ""
    for token in (f"<{msg_id}>" for msg_id in ids):
        # "References: " is 12 characters; continuation lines start with one space.
        if current and len(current) + 1 + len(token) > 78 - 12:
            lines.append(current)
            current = token
        else:
            current = f"{current} {token}" if current else token
    lines.append(current)
    return "\n ".join(lines)


def _set_text(part: EmailMessage, text: str, subtype: str) -> None:
    # base64 keeps Japanese text 7-bit clean for any relay at a third of QP's size;
    # ASCII text is left to the library (7bit, or quoted-printable for very long lines).
    cte = None if text.isascii() else "base64"
    part.set_content(text, subtype=subtype, charset="utf-8", cte=cte)


def build_message(
    row: Outbox,
    *,
    from_address: str,
    from_name: str,
    photos: PhotoStore | None,
    date: datetime | None = None,
) -> EmailMessage:
    """The MIME message for ``row``, as sent (``date`` defaults to now).

    text/plain alone, or multipart/alternative with the HTML; photos make it
    multipart/mixed. Headers are 7-bit: RFC 2047 for the subject and display name, RFC 2231
    for attachment file names, punycode for an internationalized domain.

    Raises ``ValueError`` for a header value with a line break, a malformed Message-ID or an
    address that needs SMTPUTF8, ``KeyError`` for a photo no longer stored (or attachments
    without a photo store), and ``OSError`` when the photo store cannot be read.
    """
    message_id = row.message_id.strip().strip("<>")
    if not _MSG_ID.fullmatch(message_id):
        raise ValueError(f"malformed Message-ID: {row.message_id!r}")
    message = EmailMessage(policy=POLICY)
    message["From"] = Address(display_name=from_name, addr_spec=_ascii_address(from_address))
    message["To"] = recipient(row)
    message["Subject"] = row.subject
    message["Date"] = format_datetime(as_utc(date or utcnow()).astimezone(TOKYO))
    message["Message-ID"] = f"<{message_id}>"
    if row.reply_to:
        message["Reply-To"] = _ascii_address(row.reply_to)
    in_reply_to = _msg_ids(row.in_reply_to)[:1]
    if in_reply_to:
        message.set_raw("In-Reply-To", _fold_ids(in_reply_to))
    references = _msg_ids(row.references)
    if references:
        message.set_raw("References", _fold_ids(references))
    if row.automatic:
        # RFC 3834: auto-responders must not answer; the second is Exchange's equivalent.
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
    _set_text(message, row.text, "plain")
    if row.html:
        html = EmailMessage(policy=POLICY)
        _set_text(html, row.html, "html")
        message.make_alternative()
        message.attach(html)
    for item in json.loads(row.attachments or "[]"):
        if photos is None:
            raise KeyError(f"no photo store for attachment {item.get('digest')!r}")
        data = photos.open(str(item["digest"]))
        content_type = str(item.get("content_type") or "").lower()
        if not _MIME_TYPE.fullmatch(content_type):
            content_type = "application/octet-stream"
        maintype, _, subtype = content_type.partition("/")
        filename = str(item.get("filename") or "photo")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # the library repeats it on parts it adds
    return message


def message_bytes(message: EmailMessage, *, linesep: str = "\r\n") -> bytes:
    """``message`` serialized with its own policy (keeps pre-folded msg-id headers)."""
    return message.as_bytes(policy=message.policy.clone(linesep=linesep))


# -- transports --------------------------------------------------------------------------------


class Transport(Protocol):
    async def send(self, message: EmailMessage, *, sender: str, recipients: list[str]) -> None:
        """Hand ``message`` over; raises ``TransientError`` or ``PermanentError``."""
        ...


class SmtpTransport:
    """Sends through an SMTP server (the shop's provider), one connection per message."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        security: Security = "starttls",
        timeout: float = 30,
        local_hostname: str | None = None,
    ) -> None:
        if security not in ("none", "starttls", "tls"):
            raise ValueError(f"security must be none, starttls or tls, not {security!r}")
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.security = security
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._quitting: set[asyncio.Task[None]] = set()

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username or None,
            password=self.password if self.username else None,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )

    async def send(self, message: EmailMessage, *, sender: str, recipients: list[str]) -> None:
        """Raises ``PermanentError`` for 5xx replies and ``TransientError`` for the rest."""
        # Serialized here, not by aiosmtplib: its own flattening would refold msg-id headers.
        data = message_bytes(message)
        client = self._client()
        delivered = False
        try:
            await client.connect()
            refused, _reply = await client.sendmail(sender, recipients, data)
            delivered = True
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # One recipient per message: its reply decides.
            refusals = [classify_reply(e.code, e.message, e.recipient) for e in exc.recipients]
            detail = "; ".join(str(refusal) for refusal in refusals)
            error: SendError
            if not refusals or any(isinstance(r, TransientError) for r in refusals):
                error = TransientError(f"recipient refused: {detail}")
            elif any(isinstance(r, DoubtfulError) for r in refusals):
                error = DoubtfulError(f"recipient refused: {detail}")
            else:
                error = PermanentError(f"recipient refused: {detail}")
            raise error from exc
        except aiosmtplib.SMTPSenderRefused as exc:
            raise classify_reply(exc.code, exc.message, "sender refused") from exc
        except aiosmtplib.SMTPDataError as exc:
            raise classify_reply(exc.code, exc.message, "message refused") from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            # A configuration problem, not this message's: retried, never dead at once.
            raise TransientError(f"authentication failed: {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise classify_reply(exc.code, exc.message, "SMTP error") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Connection refused or lost, timeouts, TLS failures, STARTTLS not offered.
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if delivered:
                # The server has said 250: the message is delivered, and the caller must
                # record that before anything else (OutboxSender.send_one), not after one
                # more round trip. The polite QUIT follows in the background; a failing one,
                # or none at all if the process dies, changes nothing for the message.
                task = asyncio.create_task(self._quit(client))
                self._quitting.add(task)
                task.add_done_callback(self._quitting.discard)
            elif client.is_connected:
                await self._quit(client)
        if refused:  # only with several recipients, some refused: the others have it
            log.warning("some recipients refused %s: %s", message["Message-ID"], refused)

    @staticmethod
    async def _quit(client: aiosmtplib.SMTP) -> None:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
        except asyncio.CancelledError:  # the loop is closing (mail send-queued ends)
            client.close()
            raise


class DirectoryTransport:
    """Writes each message to ``folder`` as an ``.eml`` file: the default without SMTP."""

    def __init__(self, folder: Path, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.folder = Path(folder)
        self.clock = clock

    def filename(self, message: EmailMessage) -> str:
        """``20261124T060000123456Z-<message id, sanitized>.eml``: sorts by time."""
        stamp = as_utc(self.clock()).strftime("%Y%m%dT%H%M%S%fZ")
        message_id = str(message.get("Message-ID", "")).strip().strip("<>")
        safe = _UNSAFE_FILE_CHARS.sub("_", message_id).strip("._")[:120] or "message"
        return f"{stamp}-{safe}.eml"

    def _write(self, name: str, data: bytes) -> None:
        private_dir(self.folder)
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".mail-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                os.fchmod(file.fileno(), FILE_MODE)
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.folder / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    async def send(self, message: EmailMessage, *, sender: str, recipients: list[str]) -> None:
        """Raises ``TransientError`` when the file cannot be written (disk full, permissions)."""
        data = message_bytes(message, linesep="\n")
        try:
            await asyncio.to_thread(self._write, self.filename(message), data)
        except OSError as exc:
            raise TransientError(f"cannot write to {self.folder}: {exc}") from exc


def transport_from_settings(
    *,
    smtp_host: str | None,
    smtp_port: int = 587,
    smtp_username: str | None = None,
    smtp_password: str | None = None,
    smtp_security: str = "starttls",
    mail_dir: Path,
) -> Transport:
    """SMTP when a host is set, otherwise ``.eml`` files in ``mail_dir``.

    Raises ``ValueError`` for a security mode other than none, starttls or tls.
    """
    if not smtp_host:
        return DirectoryTransport(mail_dir)
    if smtp_security not in ("none", "starttls", "tls"):
        raise ValueError(f"smtp_security must be none, starttls or tls, not {smtp_security!r}")
    return SmtpTransport(
        smtp_host,
        smtp_port,
        username=smtp_username,
        password=smtp_password,
        security=cast(Security, smtp_security),
    )


# -- dead mail: requeueing, and telling agents -------------------------------------------------


@dataclass(frozen=True)
class DeadMail:
    """A mail given up on, as agents are told about it."""

    outbox_id: int
    ticket_id: int | None
    #: The mail's template ("ticket_confirmation", "ticket_notification", "agent_reply"...).
    kind: str
    to_address: str
    subject: str
    attempts: int
    #: The last failure, as the provider worded it.
    error: str
    dead_at: datetime | None


def _dead_mail(row: Outbox) -> DeadMail:
    assert row.id is not None
    return DeadMail(
        outbox_id=row.id,
        ticket_id=row.ticket_id,
        kind=row.kind,
        to_address=row.to_address,
        subject=row.subject,
        attempts=row.attempts,
        error=row.last_error or "",
        dead_at=as_utc(row.dead_at) if row.dead_at else None,
    )


def _unreported() -> ColumnElement[bool]:
    return and_(col(Outbox.status) == _DEAD, col(Outbox.dead_reported_at).is_(None))


async def unreported_dead_mail(session: AsyncSession, *, limit: int = 50) -> list[DeadMail]:
    """Dead mail agents have not been told about yet, oldest first (nothing is marked)."""
    rows = await session.execute(
        select(Outbox)
        .where(_unreported())
        .order_by(col(Outbox.dead_at), col(Outbox.id))
        .limit(limit)
    )
    return [_dead_mail(row) for row in rows.scalars()]


async def claim_dead_mail_to_report(
    session: AsyncSession, *, now: datetime | None = None, limit: int = 50
) -> list[DeadMail]:
    """Dead mail agents have not been told about, marked as told, in the caller's transaction.

    For the agents' notification of the next event: call it in the transaction that queues
    the notification and list what it returns there. If that transaction rolls back, the
    mail stays unreported; two notifications queued at once never list the same mail
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a compare-and-set update on SQLite).
    """
    when = as_utc(now or utcnow())
    candidates = (
        select(col(Outbox.id))
        .where(_unreported())
        .order_by(col(Outbox.dead_at), col(Outbox.id))
        .limit(limit)
    )
    dialect = (await session.connection()).dialect.name
    claimed: list[int] = []
    if dialect == "postgresql":
        claimed = list(
            (await session.execute(candidates.with_for_update(skip_locked=True))).scalars()  # type: ignore[arg-type]
        )
        if claimed:
            await session.execute(
                update(Outbox).where(col(Outbox.id).in_(claimed)).values(dead_reported_at=when),
                execution_options={"synchronize_session": False},
            )
    else:
        for row_id in list((await session.execute(candidates)).scalars()):
            result = cast(
                CursorResult[Any],
                await session.execute(
                    update(Outbox)
                    .where(col(Outbox.id) == row_id, _unreported())
                    .values(dead_reported_at=when),
                    execution_options={"synchronize_session": False},
                ),
            )
            if result.rowcount == 1:
                claimed.append(row_id)  # type: ignore[arg-type]
    if not claimed:
        return []
    rows = await session.execute(
        select(Outbox)
        .where(col(Outbox.id).in_(claimed))
        .order_by(col(Outbox.dead_at), col(Outbox.id))
        .execution_options(populate_existing=True)
    )
    return [_dead_mail(row) for row in rows.scalars()]


async def release_leases(
    sessions: async_sessionmaker[AsyncSession], *, claimed_before: datetime, lease_seconds: float
) -> int:
    """Make due again the rows a previous sender claimed before ``claimed_before`` and
    still holds ("sending"); returns how many.

    For a new leader (``helpdesk.leader``): the previous one is dead or has stopped its
    sender, so its leases need not run their full length. Rows this process claimed since
    (leases ending after ``claimed_before + lease_seconds``) are left alone; a row whose mail
    the previous sender had handed to the server just before dying is sent again, with the
    same Message-ID (at-least-once, as after an expired lease).
    """
    now = utcnow()
    horizon = as_utc(claimed_before) + timedelta(seconds=lease_seconds)
    async with sessions() as session:
        result = cast(
            CursorResult[Any],
            await session.execute(
                update(Outbox)
                .where(
                    col(Outbox.status) == _SENDING,
                    col(Outbox.lease_until) > now,
                    col(Outbox.lease_until) < horizon,
                )
                .values(lease_until=now),
                execution_options={"synchronize_session": False},
            ),
        )
        await session.commit()
    return int(result.rowcount or 0)


async def requeue_dead(
    session: AsyncSession,
    *,
    ids: Sequence[int] | None = None,
    now: datetime | None = None,
    actor: str = "system",
) -> list[Outbox]:
    """Put dead mail back in the queue (``main.py mail retry``), in the caller's transaction.

    All dead rows, or those of ``ids``; rows that are not dead are left alone (a sent mail
    is never sent again, a queued one is already waiting). Attempts count from zero again,
    the mail is due at once, and a ``mail_requeued`` event is recorded on its ticket.
    Returns the rows requeued; the caller commits.
    """
    when = as_utc(now or utcnow())
    query = select(col(Outbox.id)).where(col(Outbox.status) == _DEAD).order_by(col(Outbox.id))
    if ids is not None:
        query = query.where(col(Outbox.id).in_(list(ids)))
    requeued: list[int] = []
    for row_id in list((await session.execute(query)).scalars()):
        result = cast(
            CursorResult[Any],
            await session.execute(
                update(Outbox)
                .where(col(Outbox.id) == row_id, col(Outbox.status) == _DEAD)
                .values(
                    status=_QUEUED,
                    attempts=0,
                    next_attempt_at=when,
                    lease_until=None,
                    dead_at=None,
                    dead_reported_at=None,
                ),
                execution_options={"synchronize_session": False},
            ),
        )
        if result.rowcount == 1:
            requeued.append(row_id)  # type: ignore[arg-type]
    if not requeued:
        return []
    rows = list(
        (
            await session.execute(
                select(Outbox)
                .where(col(Outbox.id).in_(requeued))
                .order_by(col(Outbox.id))
                .execution_options(populate_existing=True)
            )
        ).scalars()
    )
    for row in rows:
        if row.ticket_id is not None:
            data = {"outbox_id": row.id, "mail": row.kind, "to": row.to_address}
            session.add(
                TicketEvent(
                    ticket_id=row.ticket_id,
                    kind="mail_requeued",
                    actor=actor,
                    data=json.dumps(data, ensure_ascii=False),
                    created_at=when,
                )
            )
    return rows


# -- the sender --------------------------------------------------------------------------------


def _due(now: datetime) -> ColumnElement[bool]:
    """Rows to send now: queued and due, or "sending" under a lease that has expired."""
    return or_(
        and_(col(Outbox.status) == _QUEUED, col(Outbox.next_attempt_at) <= now),
        and_(
            col(Outbox.status) == _SENDING,
            or_(col(Outbox.lease_until).is_(None), col(Outbox.lease_until) < now),
        ),
    )


def _error_text(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:MAX_ERROR_LENGTH]


class OutboxSender:
    """Claims due outbox rows, sends them through ``transport`` and records the outcome.

    Failures are retried with exponential backoff (``base_delay`` doubling up to
    ``max_delay``, plus up to 10 % jitter); after ``max_attempts`` failed attempts, or at
    once for a permanent failure, the row is ``dead`` and a ``mail_dead`` event is recorded
    on its ticket. A doubtful 5xx (``DoubtfulError``: quota, greylisting...) is tried
    ``doubtful_attempts`` times in all, ``doubtful_delay`` apart at first and doubling (5,
    10, 20 minutes...), greylisting servers accepting a retry after a few minutes.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        transport: Transport,
        *,
        from_address: str,
        from_name: str,
        photos: PhotoStore | None = None,
        max_attempts: int = 6,
        base_delay: float = 60.0,
        max_delay: float = 3600.0,
        lease_seconds: float = LEASE_SECONDS,
        batch: int = 20,
        clock: Callable[[], datetime] = utcnow,
        jitter: float = 0.1,
        doubtful_attempts: int = DOUBTFUL_ATTEMPTS,
        doubtful_delay: float = DOUBTFUL_DELAY,
    ) -> None:
        if max_attempts < 1 or batch < 1 or lease_seconds <= 0:
            raise ValueError("max_attempts and batch must be at least 1, lease_seconds positive")
        self.sessions = sessions
        self.transport = transport
        self.from_address = from_address
        self.from_name = from_name
        self.photos = photos
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease_seconds = lease_seconds
        self.batch = batch
        self.clock = clock
        self.jitter = jitter
        self.doubtful_attempts = doubtful_attempts
        self.doubtful_delay = doubtful_delay
        self._random = random.Random()
        self._wake = asyncio.Event()
        self._dialect = ""  # the database's, known from the first claim

    def now(self) -> datetime:
        # Always UTC: SQLite stores times as text without a zone and compares them as text.
        return as_utc(self.clock())

    def retry_delay(self, attempts: int, *, doubtful: bool = False) -> float:
        """Seconds to wait after the ``attempts``-th failure, before jitter."""
        base = max(self.base_delay, self.doubtful_delay) if doubtful else self.base_delay
        return min(base * 2 ** max(attempts - 1, 0), self.max_delay)

    # -- claiming ------------------------------------------------------------------------

    async def claim(self) -> list[Outbox]:
        """Lease up to ``batch`` due rows to this sender; returns them, detached.

        On PostgreSQL, ``SELECT ... FOR UPDATE SKIP LOCKED`` and the update run in one
        transaction, so concurrent senders take disjoint rows. SQLite has one writer at a
        time, so a compare-and-set ``UPDATE`` per candidate is enough: only the sender whose
        update still finds the row due (rowcount 1) owns it.
        """
        now = self.now()
        until = now + timedelta(seconds=self.lease_seconds)
        order = (col(Outbox.next_attempt_at), col(Outbox.id))
        candidates = select(col(Outbox.id)).where(_due(now)).order_by(*order).limit(self.batch)
        claimed: list[int] = []
        async with self.sessions() as session:
            dialect = self._dialect = (await session.connection()).dialect.name
            if dialect == "postgresql":
                ids = list(
                    (await session.execute(candidates.with_for_update(skip_locked=True))).scalars()
                )
                if ids:
                    await session.execute(
                        update(Outbox)
                        .where(col(Outbox.id).in_(ids))
                        .values(status=_SENDING, lease_until=until),
                        execution_options={"synchronize_session": False},
                    )
                claimed = ids  # type: ignore[assignment]
            else:
                # The SELECT runs outside any write transaction; each UPDATE re-checks.
                for row_id in list((await session.execute(candidates)).scalars()):
                    result = cast(
                        CursorResult[Any],
                        await session.execute(
                            update(Outbox)
                            .where(col(Outbox.id) == row_id, _due(now))
                            .values(status=_SENDING, lease_until=until),
                            execution_options={"synchronize_session": False},
                        ),
                    )
                    if result.rowcount == 1:
                        claimed.append(row_id)  # type: ignore[arg-type]
            await session.commit()
        if not claimed:
            return []
        async with self.sessions() as session:
            result_rows = await session.execute(
                select(Outbox).where(col(Outbox.id).in_(claimed)).order_by(*order)
            )
            return list(result_rows.scalars())

    # -- sending -------------------------------------------------------------------------

    async def send_one(self, row: Outbox) -> str:
        """Send a claimed row and record the outcome; returns the row's new status.

        A row whose lease is mostly spent is handed back to the queue unsent ("queued"); a
        failure found after the lease was lost to another sender returns "sending".
        Exceptions other than database errors are recorded on the row, never raised.
        """
        now = self.now()
        lease = row.lease_until
        if lease is not None and as_utc(lease) - now < timedelta(
            seconds=self.lease_seconds * LEASE_SAFETY_SHARE
        ):
            await self._update(row, status=_QUEUED, lease_until=None)
            return _QUEUED
        error: SendError
        try:
            message = await asyncio.to_thread(
                build_message,
                row,
                from_address=self.from_address,
                from_name=self.from_name,
                photos=self.photos,
                date=now,
            )
            to = recipient(row)
        except (KeyError, ValueError, TypeError, UnicodeError) as exc:
            error = PermanentError(f"cannot build the message: {type(exc).__name__}: {exc}")
        except OSError as exc:
            error = TransientError(f"cannot read an attachment: {exc}")
        else:
            # The connection that records "sent" is checked out (and pinged) before the mail
            # goes, in autocommit: after the server's 250, one UPDATE leaves this process at
            # once, and the database commits it even if the process dies the next moment.
            # What remains is the time from the 250 to that write, a fraction of a
            # millisecond in a process that does nothing else (helpdesk/worker.py). A crash
            # inside it leaves the row "sending", and the mail is sent again, with the same
            # Message-ID, once the lease is released: no protocol can make the server's
            # acceptance and our record atomic. (SQLite: see _connection_to_record_sent.)
            async with self._connection_to_record_sent() as connection:
                try:
                    await self.transport.send(
                        message, sender=_ascii_address(self.from_address), recipients=[to]
                    )
                except SendError as exc:
                    error = exc
                except Exception as exc:  # a bug in a transport must not stop the queue
                    log.exception("transport failed on outbox row %s", row.id)
                    error = TransientError(f"{type(exc).__name__}: {exc}")
                else:
                    await self._mark_sent(row, connection)
                    return _SENT
        return await self._mark_failed(row, error)

    async def _update(
        self, row: Outbox, *, event: TicketEvent | None = None, **values: Any
    ) -> bool:
        """Apply ``values`` to ``row`` if this sender still holds its lease (the fence).

        A sender that lost its lease (it was slower than ``lease_seconds`` and another took
        the row) writes nothing: the row's state belongs to the new holder.
        """
        async with self.sessions() as session:
            if await self._fenced_update(await session.connection(), row, values) != 1:
                await session.rollback()
                log.warning("outbox row %s: lease lost, outcome not recorded: %s", row.id, values)
                return False
            if event is not None:
                session.add(event)
            await session.commit()
        for name, value in values.items():
            setattr(row, name, value)
        return True

    @contextlib.asynccontextmanager
    async def _connection_to_record_sent(self) -> AsyncIterator[AsyncConnection | None]:
        """An autocommit connection, checked out for the time of one send (PostgreSQL).

        None on SQLite: a process has one connection there (``helpdesk.db``), which must not
        wait on an SMTP server, and a commit is durable only once the library call returns
        in this process, so holding it would not shorten the window anyway.
        """
        if self._dialect != "postgresql":
            yield None
            return
        async with self.sessions() as session:
            yield await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})

    @staticmethod
    async def _fenced_update(
        connection: AsyncConnection, row: Outbox, values: dict[str, Any]
    ) -> int:
        """``UPDATE`` the row with ``values`` if its lease is still ``row``'s; the rowcount."""
        result = await connection.execute(
            update(Outbox)
            .where(
                col(Outbox.id) == row.id,
                col(Outbox.status) == _SENDING,
                col(Outbox.lease_until) == row.lease_until,
            )
            .values(**values)
        )
        return int(result.rowcount)

    async def _mark_sent(self, row: Outbox, connection: AsyncConnection | None = None) -> None:
        """Record a mail the server accepted: on ``connection`` (autocommit) first, then,
        if that fails, in fresh sessions a few times over."""
        values: dict[str, Any] = {
            "status": _SENT,
            "sent_at": self.now(),
            "lease_until": None,
            "attempts": row.attempts + 1,
        }
        if row.kind in SCRUBBED_WHEN_SENT:
            # The mail telling a customer their data was erased names them: once sent, the
            # row keeps that a mail went, not to whom nor what it said (issue 12).
            values.update(to_address=SCRUBBED_ADDRESS, subject="", text="", html=None)
        if connection is not None:
            try:
                if await self._fenced_update(connection, row, values) == 1:
                    for name, value in values.items():
                        setattr(row, name, value)
                else:
                    log.warning("outbox row %s: lease lost, sent but not recorded", row.id)
                return
            except DBAPIError:
                log.warning("outbox row %s: could not record it sent; trying again", row.id)
        for pause in (*SENT_COMMIT_RETRIES, None):
            try:
                await self._update(row, **values)
                return
            except DBAPIError:
                if pause is None:
                    log.exception("outbox row %s sent but not marked: it may be sent again", row.id)
                    raise
                await asyncio.sleep(pause)

    def _gives_up(self, error: SendError, attempts: int) -> bool:
        if attempts >= self.max_attempts:
            return True
        if isinstance(error, DoubtfulError):
            return attempts >= self.doubtful_attempts
        return isinstance(error, PermanentError)

    async def _mark_failed(self, row: Outbox, error: SendError) -> str:
        attempts = row.attempts + 1
        now = self.now()
        if self._gives_up(error, attempts):
            log.warning("outbox row %s is dead after %d attempts: %s", row.id, attempts, error)
            event = None
            if row.ticket_id is not None:
                data = {
                    "outbox_id": row.id,
                    "mail": row.kind,
                    "to": row.to_address,
                    "message_id": row.message_id,
                    "attempts": attempts,
                    "error": _error_text(error),
                }
                event = TicketEvent(
                    ticket_id=row.ticket_id,
                    kind="mail_dead",
                    actor="system",
                    data=json.dumps(data, ensure_ascii=False),
                    created_at=now,
                )
            recorded = await self._update(
                row,
                event=event,
                status=_DEAD,
                attempts=attempts,
                lease_until=None,
                last_error=_error_text(error),
                dead_at=now,
                dead_reported_at=None,
            )
            return _DEAD if recorded else _SENDING
        delay = self.retry_delay(attempts, doubtful=isinstance(error, DoubtfulError))
        delay += delay * self.jitter * self._random.random()
        log.info(
            "outbox row %s: attempt %d failed, retry in %.0fs: %s", row.id, attempts, delay, error
        )
        recorded = await self._update(
            row,
            status=_QUEUED,
            attempts=attempts,
            lease_until=None,
            next_attempt_at=now + timedelta(seconds=delay),
            last_error=_error_text(error),
        )
        return _QUEUED if recorded else _SENDING

    # -- loops ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim one batch and send it, one row after the other; returns the rows handled."""
        rows = await self.claim()
        for row in rows:
            await self.send_one(row)
        return len(rows)

    async def drain(self) -> int:
        """Send everything due now (``mail send-queued``); returns the rows handled.

        Rows waiting for a retry later, and rows leased by another live sender, are left.
        """
        total = 0
        while handled := await self.run_once():
            total += handled
        return total

    def wake(self) -> None:
        """Look at the queue now rather than after the idle interval (after queueing mail)."""
        self._wake.set()

    async def run_forever(
        self, *, idle_interval: float = 2.0, stop: asyncio.Event | None = None
    ) -> None:
        """Send until ``stop`` is set (or the task is cancelled).

        Database errors are logged and retried after ``idle_interval``; a cancelled sender
        leaves its claimed rows to be taken again when their leases expire.
        """
        stop = stop or asyncio.Event()
        while not stop.is_set():
            self._wake.clear()  # before looking: a wake() during run_once is not lost
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("outbox sender: could not process the queue")
                handled = 0
            if handled:
                continue
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(
                    waits, timeout=idle_interval, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiting in waits:
                    waiting.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
