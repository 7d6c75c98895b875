"""The outbox sender: MIME building, real SMTP on loopback, retries, leases and crashes."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.db import as_utc, create_engine, migrate, session_factory, utcnow
from helpdesk.mail.outbox import (
    DirectoryTransport,
    DoubtfulError,
    OutboxSender,
    PermanentError,
    SmtpTransport,
    TransientError,
    build_message,
    claim_dead_mail_to_report,
    classify_reply,
    message_bytes,
    requeue_dead,
    transport_from_settings,
    unreported_dead_mail,
)
from helpdesk.models import Customer, Outbox, Ticket, TicketEvent
from helpdesk.photos import PhotoStore
from helpdesk.settings import ROOT
from tests import imaging

FROM_ADDRESS = "admin@interiorltd.jp"
FROM_NAME = "COCO case サポート"
SUBJECT = "【HD-26-00042】ご返品のお申し込みを承りました（株式会社インテリア・長い件名の確認）"
PHOTO_NAME = "不良箇所の写真（表面・キズ）.jpg"
# Outlook's Message-IDs are longer than a header line: they must stay msg-ids when folded.
OUTLOOK_ID = "TYCPR01MB1234567890ABCDEFGHIJKLMNOPQRSTUV@TYCPR01MB1234.jpnprd01.prod.outlook.com"
Sessions = async_sessionmaker[AsyncSession]


# -- helpers -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def outbox_row(n: int, **fields: Any) -> Outbox:
    values: dict[str, Any] = {
        "kind": "ticket_confirmation",
        "to_address": f"customer{n}@example.jp",
        "subject": f"お問い合わせを受け付けました（{n}）",
        "text": f"山田様\n\nお問い合わせ番号 {n} を受け付けました。\n",
        "message_id": f"outbox-test-{n}@interiorltd.jp",
    }
    values.update(fields)
    return Outbox(**values)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    """aiosmtpd handler: records what it accepts; can refuse, defer or stall deliveries."""

    def __init__(
        self,
        *,
        temporary_failures: int = 0,
        rcpt_reply: str | None = None,
        data_reply: str | None = None,
        block_at: int | None = None,
    ) -> None:
        self.temporary_failures = temporary_failures
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.block_at = block_at
        self.accepted: list[tuple[Envelope, bytes]] = []
        self.data_seen = 0
        # Set (in the server's thread) when the ``block_at``-th DATA arrived and waits.
        self.blocked = threading.Event()
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_seen += 1
        if self.data_seen == self.block_at:
            self._loop = asyncio.get_running_loop()
            self._release = asyncio.Event()
            self.blocked.set()
            await self._release.wait()
            return "451 4.3.0 Aborted, nothing was accepted"
        if self.data_seen <= self.temporary_failures:
            return "451 4.3.0 Temporary failure, try again later"
        if self.data_reply:
            return self.data_reply
        content: Any = envelope.original_content or envelope.content
        self.accepted.append((envelope, bytes(content)))
        return "250 2.0.0 OK queued"

    def release(self) -> None:
        """Let the stalled DATA answer (from the test's thread)."""
        assert self._loop is not None and self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    def message_ids(self) -> list[str]:
        return [str(parse(data)["Message-ID"]).strip("<>") for _, data in self.accepted]


@contextmanager
def smtp_server(handler: Recorder) -> Iterator[int]:
    """An aiosmtpd server on 127.0.0.1 (in its own thread); yields its port."""
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield session_factory(engine)
    await engine.dispose()


async def add_rows(sessions: Sessions, rows: list[Outbox]) -> list[Outbox]:
    async with sessions() as session:
        session.add_all(rows)
        await session.commit()
    return rows


async def all_rows(sessions: Sessions) -> list[Outbox]:
    async with sessions() as session:
        return list((await session.execute(select(Outbox).order_by(Outbox.id))).scalars())


async def make_ticket(sessions: Sessions) -> int:
    async with sessions() as session:
        customer = Customer(email="hanako@example.jp", name="山田 花子")
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        ticket = Ticket(
            reference="HD-26-00042",
            token_nonce="nonce",
            kind="inquiry",
            customer_id=customer.id,
            customer_name="山田 花子",
            subject="商品が届きません",
        )
        session.add(ticket)
        await session.commit()
        assert ticket.id is not None
        return ticket.id


def sender_for(sessions: Sessions, port: int, **options: Any) -> OutboxSender:
    transport = SmtpTransport("127.0.0.1", port, security="none", timeout=10)
    return OutboxSender(
        sessions, transport, from_address=FROM_ADDRESS, from_name=FROM_NAME, **options
    )


# -- building ----------------------------------------------------------------------------------


def test_build_message_headers_encode_japanese_and_decode_back_exactly() -> None:
    row = outbox_row(
        1,
        subject=SUBJECT,
        reply_to="admin+hd-26-00042.abcdef123456@interiorltd.jp",
        in_reply_to=OUTLOOK_ID,
        references=f"first@example.jp {OUTLOOK_ID}",
    )
    moment = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    raw = message_bytes(
        build_message(row, from_address=FROM_ADDRESS, from_name=FROM_NAME, photos=None, date=moment)
    )
    assert raw.isascii()  # 7-bit clean: any relay carries it
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n")[0]  # RFC 2047 in the header block
    parsed = parse(raw)
    assert parsed["Subject"] == SUBJECT
    [sender] = parsed["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (FROM_NAME, FROM_ADDRESS)
    assert parsed["To"] == "customer1@example.jp"
    assert parsed["Message-ID"] == "<outbox-test-1@interiorltd.jp>"
    assert parsed["Reply-To"] == "admin+hd-26-00042.abcdef123456@interiorltd.jp"
    # Long Outlook ids stay msg-ids (an encoded word here would break threading).
    assert parsed["In-Reply-To"] == f"<{row.in_reply_to}>"
    assert parsed["References"] == " ".join(f"<{i}>" for i in (row.references or "").split())
    assert b"In-Reply-To: <TYCPR01MB" in raw
    assert parsed["Date"].datetime == moment and parsed["Date"].endswith("+0900")
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    assert parsed.get_content().replace("\r\n", "\n") == row.text


def test_long_japanese_display_name_is_folded_into_valid_encoded_words() -> None:
    name = "株式会社インテリア・オンラインショップ お客様サポート窓口"
    row = outbox_row(1)
    raw = message_bytes(build_message(row, from_address=FROM_ADDRESS, from_name=name, photos=None))
    header = parse(raw)["From"]
    lines = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in lines)
    # Adjacent encoded words join without a space (RFC 2047 6.2), which decode_header does;
    # Python's address parser keeps the folding space, so it is not the reference here.
    from_lines = raw.split(b"From: ", 1)[1].split(b"\r\nTo:", 1)[0].decode()
    assert str(make_header(decode_header(from_lines))) == f"{name} <{FROM_ADDRESS}>"
    assert header.addresses[0].addr_spec == FROM_ADDRESS


def test_build_message_with_html_and_a_japanese_attachment(tmp_path: Path) -> None:
    photos = PhotoStore(tmp_path / "media")
    stored = photos.process(imaging.jpeg(), filename=PHOTO_NAME, field_label="写真")
    row = outbox_row(
        2,
        html="<p>山田様</p><p>お問い合わせを受け付けました。</p>",
        attachments=json.dumps(
            [{"digest": stored.digest, "filename": PHOTO_NAME, "content_type": "image/jpeg"}]
        ),
        automatic=False,
    )
    message = build_message(row, from_address=FROM_ADDRESS, from_name=FROM_NAME, photos=photos)
    raw = message_bytes(message)
    assert raw.isascii()
    parsed = parse(raw)
    assert "Auto-Submitted" not in parsed and "X-Auto-Response-Suppress" not in parsed
    assert parsed.get_content_type() == "multipart/mixed"
    body, attachment = parsed.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    text, html = body.iter_parts()
    assert text.get_content_type() == "text/plain" and text.get_content_charset() == "utf-8"
    assert html.get_content_type() == "text/html" and "山田様" in html.get_content()
    assert attachment.get_content_type() == "image/jpeg"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == PHOTO_NAME
    assert b"filename*0*=utf-8''" in raw  # RFC 2231, with continuations
    assert attachment.get_content() == photos.open(stored.digest)
    # MIME-Version once, at the top.
    assert raw.count(b"MIME-Version:") == 1


def test_build_message_refuses_what_it_cannot_send(tmp_path: Path) -> None:
    photos = PhotoStore(tmp_path / "media")
    missing = json.dumps([{"digest": "0" * 64, "filename": "a.jpg", "content_type": "image/jpeg"}])
    with pytest.raises(KeyError):
        build_message(
            outbox_row(1, attachments=missing),
            from_address=FROM_ADDRESS,
            from_name=FROM_NAME,
            photos=photos,
        )
    with pytest.raises(ValueError):
        build_message(
            outbox_row(1, subject="件名\r\nBcc: victim@example.jp"),
            from_address=FROM_ADDRESS,
            from_name=FROM_NAME,
            photos=None,
        )
    # An internationalized domain goes out as punycode.
    message = build_message(
        outbox_row(1, to_address="hanako@例え.jp"),
        from_address=FROM_ADDRESS,
        from_name=FROM_NAME,
        photos=None,
    )
    assert message["To"] == "hanako@xn--r8jz45g.jp"


# -- transports --------------------------------------------------------------------------------


async def test_directory_transport_writes_parseable_eml_files(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    transport = transport_from_settings(smtp_host=None, mail_dir=folder)
    assert isinstance(transport, DirectoryTransport)
    for n in (1, 2):
        message = build_message(
            outbox_row(n, subject=SUBJECT),
            from_address=FROM_ADDRESS,
            from_name=FROM_NAME,
            photos=None,
        )
        await transport.send(message, sender=FROM_ADDRESS, recipients=[f"customer{n}@example.jp"])
    files = sorted(folder.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]  # no temporary files left behind
    for n, path in enumerate(files, start=1):
        assert path.name.endswith(f"-outbox-test-{n}_interiorltd.jp.eml")
        parsed = parse(path.read_bytes())
        assert parsed["Subject"] == SUBJECT
        assert parsed["Message-ID"] == f"<outbox-test-{n}@interiorltd.jp>"


def test_transport_from_settings_picks_smtp_when_a_host_is_set(tmp_path: Path) -> None:
    transport = transport_from_settings(
        smtp_host="smtp.example.jp",
        smtp_port=465,
        smtp_username="user",
        smtp_password="secret",
        smtp_security="tls",
        mail_dir=tmp_path,
    )
    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port, transport.security) == ("smtp.example.jp", 465, "tls")
    with pytest.raises(ValueError):
        transport_from_settings(smtp_host="smtp.example.jp", smtp_security="ssl", mail_dir=tmp_path)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (Recorder(rcpt_reply="550 5.1.1 User unknown"), PermanentError),
        (Recorder(rcpt_reply="450 4.2.1 Mailbox busy"), TransientError),
        (Recorder(data_reply="552 5.3.4 Message too big"), PermanentError),
        (Recorder(temporary_failures=1), TransientError),
    ],
)
async def test_smtp_replies_map_to_permanent_or_transient(
    handler: Recorder, expected: type[Exception]
) -> None:
    message = build_message(
        outbox_row(1), from_address=FROM_ADDRESS, from_name=FROM_NAME, photos=None
    )
    with smtp_server(handler) as port:
        transport = SmtpTransport("127.0.0.1", port, security="none", timeout=10)
        with pytest.raises(expected):
            await transport.send(message, sender=FROM_ADDRESS, recipients=["a@example.jp"])
    assert handler.accepted == []


async def test_smtp_connection_refused_is_transient() -> None:
    message = build_message(
        outbox_row(1), from_address=FROM_ADDRESS, from_name=FROM_NAME, photos=None
    )
    transport = SmtpTransport("127.0.0.1", _free_port(), security="none", timeout=5)
    with pytest.raises(TransientError):
        await transport.send(message, sender=FROM_ADDRESS, recipients=["a@example.jp"])


# -- the sender --------------------------------------------------------------------------------


async def test_sender_delivers_queued_rows_once_over_smtp(sessions: Sessions) -> None:
    rows = await add_rows(sessions, [outbox_row(n, subject=SUBJECT) for n in range(5)])
    handler = Recorder()
    with smtp_server(handler) as port:
        sender = sender_for(sessions, port)
        assert await sender.drain() == 5
        assert await sender.drain() == 0
    assert sorted(handler.message_ids()) == sorted(r.message_id for r in rows)
    envelope, data = handler.accepted[0]
    assert envelope.mail_from == FROM_ADDRESS and envelope.rcpt_tos == ["customer0@example.jp"]
    assert parse(data)["Subject"] == SUBJECT
    for row in await all_rows(sessions):
        assert (row.status, row.attempts, row.lease_until) == ("sent", 1, None)
        assert row.sent_at is not None


async def test_temporary_failures_back_off_then_deliver(sessions: Sessions) -> None:
    [row] = await add_rows(sessions, [outbox_row(1)])
    clock = Clock()
    handler = Recorder(temporary_failures=2)
    with smtp_server(handler) as port:
        sender = sender_for(sessions, port, clock=clock, base_delay=60, max_delay=3600)
        for attempt, delay in ((1, 60), (2, 120)):
            assert await sender.run_once() == 1
            [stored] = await all_rows(sessions)
            assert (stored.status, stored.attempts, stored.lease_until) == ("queued", attempt, None)
            assert stored.last_error and "451" in stored.last_error
            wait = (as_utc(stored.next_attempt_at) - clock.now).total_seconds()
            assert delay <= wait <= delay * 1.1
            # Not due yet: nothing is sent before the backoff has passed.
            clock.advance(delay * 0.9)
            assert await sender.run_once() == 0
            clock.advance(delay * 0.25)
        assert await sender.run_once() == 1
    assert handler.message_ids() == [row.message_id]
    [stored] = await all_rows(sessions)
    assert (stored.status, stored.attempts) == ("sent", 3)


async def test_permanent_refusal_is_dead_at_once_and_visible_on_the_ticket(
    sessions: Sessions,
) -> None:
    ticket_id = await make_ticket(sessions)
    [row] = await add_rows(sessions, [outbox_row(1, ticket_id=ticket_id)])
    handler = Recorder(rcpt_reply="550 5.1.1 <customer1@example.jp>: User unknown")
    with smtp_server(handler) as port:
        assert await sender_for(sessions, port).drain() == 1
    [stored] = await all_rows(sessions)
    assert (stored.status, stored.attempts) == ("dead", 1)
    assert stored.last_error and "550 5.1.1" in stored.last_error
    async with sessions() as session:
        [event] = (await session.execute(select(TicketEvent))).scalars().all()
    assert (event.ticket_id, event.kind, event.actor) == (ticket_id, "mail_dead", "system")
    data = json.loads(event.data)
    assert data["message_id"] == row.message_id and "User unknown" in data["error"]


async def test_repeated_temporary_failures_end_dead_after_max_attempts(
    sessions: Sessions,
) -> None:
    await add_rows(sessions, [outbox_row(1)])  # no ticket: no event, still dead
    clock = Clock()
    handler = Recorder(temporary_failures=100)
    with smtp_server(handler) as port:
        sender = sender_for(sessions, port, clock=clock, max_attempts=3)
        for _ in range(3):
            assert await sender.run_once() == 1
            clock.advance(3600 * 1.2)
        assert await sender.run_once() == 0
    [stored] = await all_rows(sessions)
    assert (stored.status, stored.attempts) == ("dead", 3)
    async with sessions() as session:
        assert (await session.execute(select(TicketEvent))).scalars().all() == []


async def test_concurrent_claims_are_disjoint(sessions: Sessions, database_url: str) -> None:
    """Four "processes" (engines of their own) claim the same rows at the same moment."""
    engines = [create_engine(database_url) for _ in range(3)]
    try:
        port = _free_port()  # nothing is sent here
        senders = [sender_for(sessions, port, batch=30)]
        senders += [sender_for(session_factory(engine), port, batch=30) for engine in engines]
        # Connected before the race, so that the claims really overlap.
        assert await asyncio.gather(*(sender.claim() for sender in senders)) == [[]] * 4
        for round_ in range(5):
            rows = await add_rows(sessions, [outbox_row(100 * round_ + n) for n in range(30)])
            claims = await asyncio.gather(*(sender.claim() for sender in senders))
            ids = [row.id for claim in claims for row in claim]
            assert sorted(ids) == sorted(row.id for row in rows)  # each row exactly once
            assert all(r.status == "sending" and r.lease_until for c in claims for r in c)
    finally:
        for engine in engines:
            await engine.dispose()


async def test_two_senders_never_send_the_same_row(sessions: Sessions, database_url: str) -> None:
    handler = Recorder()
    other_engine = create_engine(database_url)
    try:
        with smtp_server(handler) as port:
            first = sender_for(sessions, port, batch=4)
            second = sender_for(session_factory(other_engine), port, batch=4)
            assert await second.claim() == []  # connected: the race starts at once
            rows = await add_rows(sessions, [outbox_row(n) for n in range(30)])
            handled = await asyncio.gather(first.drain(), second.drain())
    finally:
        await other_engine.dispose()
    assert sum(handled) == 30
    counts = Counter(handler.message_ids())
    assert set(counts) == {r.message_id for r in rows}
    assert set(counts.values()) == {1}
    assert {r.status for r in await all_rows(sessions)} == {"sent"}


async def test_expired_lease_is_taken_over_and_a_late_sender_is_fenced(
    sessions: Sessions,
) -> None:
    await add_rows(sessions, [outbox_row(1)])
    clock = Clock()
    handler = Recorder()
    with smtp_server(handler) as port:
        crashed = sender_for(sessions, port, clock=clock, lease_seconds=60)
        [held] = await crashed.claim()
        assert await sender_for(sessions, port, clock=clock).claim() == []  # leased
        clock.advance(61)
        survivor = sender_for(sessions, port, clock=clock, lease_seconds=60)
        assert await survivor.run_once() == 1
        # The first sender wakes up late: its lease is gone, so it may not record anything.
        assert not await crashed._update(held, status="queued", lease_until=None)
    assert len(handler.accepted) == 1
    [stored] = await all_rows(sessions)
    assert stored.status == "sent"


async def test_a_delivery_returns_at_the_250_without_waiting_for_the_quit() -> None:
    """The sender records a mail sent the moment the server has accepted it: the SMTP QUIT
    (here never answered) must not stand between the two (issue 13)."""
    quit_seen = asyncio.Event()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 test ESMTP\r\n")
        while line := await reader.readline():
            command = line[:4].upper()
            if command in (b"EHLO", b"HELO"):
                writer.write(b"250 test\r\n")
            elif command in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                writer.write(b"250 OK\r\n")
            elif command == b"DATA":
                writer.write(b"354 go ahead\r\n")
                while (await reader.readline()) not in (b".\r\n", b""):
                    pass
                writer.write(b"250 2.0.0 queued\r\n")
            elif command == b"QUIT":
                quit_seen.set()  # and never answer
            await writer.drain()
        writer.close()

    listener = await asyncio.start_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    transport = SmtpTransport("127.0.0.1", port, security="none", timeout=20)
    message = EmailMessage()
    message["Subject"] = "test"
    message["Message-ID"] = "<quit-test@interiorltd.jp>"
    message.set_content("本文")
    try:
        started = time.monotonic()
        await transport.send(message, sender="admin@interiorltd.jp", recipients=["a@example.jp"])
        assert time.monotonic() - started < 5  # not the 20 s QUIT timeout
        await asyncio.wait_for(quit_seen.wait(), 5)  # the QUIT still goes, afterwards
    finally:
        quitting = list(transport._quitting)
        for task in quitting:
            task.cancel()  # closes the connection
        await asyncio.gather(*quitting, return_exceptions=True)
        listener.close()
        await listener.wait_closed()


async def test_run_forever_sends_new_rows_and_stops(sessions: Sessions) -> None:
    handler = Recorder()
    with smtp_server(handler) as port:
        sender = sender_for(sessions, port)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run_forever(idle_interval=30, stop=stop))
        await asyncio.sleep(0.1)
        [row] = await add_rows(sessions, [outbox_row(1)])
        sender.wake()  # no need to wait for the 30 s idle interval
        for _ in range(100):
            if handler.accepted:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert handler.message_ids() == [row.message_id]


# -- crash and restart -------------------------------------------------------------------------


def _worker(database_url: str, port: int, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.outbox_worker", database_url, str(port), *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def test_a_killed_sender_loses_nothing_and_duplicates_nothing(
    sessions: Sessions, database_url: str
) -> None:
    rows = await add_rows(sessions, [outbox_row(n) for n in range(8)])
    lease = 1.0
    handler = Recorder(block_at=4)
    with smtp_server(handler) as port:
        first = _worker(database_url, port, "--lease", str(lease), "--batch", "20")
        blocked = await asyncio.to_thread(handler.blocked.wait, 60)
        first.send_signal(signal.SIGKILL)  # in the middle of DATA, holding its lease
        _, first_err = await asyncio.to_thread(first.communicate, timeout=30)
        killed_at = time.monotonic()
        assert blocked and first.returncode == -signal.SIGKILL, first_err.decode()
        handler.release()  # the stalled DATA now answers 451: nothing was accepted
        assert len(handler.accepted) == 3
        statuses = Counter(r.status for r in await all_rows(sessions))
        assert statuses["sent"] == 3 and statuses["sending"] >= 1  # the in-flight row, leased
        # Past the lease: the new worker takes over the in-flight row and the rest.
        await asyncio.sleep(max(0.0, killed_at + lease + 0.2 - time.monotonic()))
        second = _worker(database_url, port, "--lease", "30")
        out, err = await asyncio.to_thread(second.communicate, timeout=60)
        assert second.returncode == 0, err.decode()
        assert int(out) == 5
    counts = Counter(handler.message_ids())
    assert set(counts) == {r.message_id for r in rows}
    assert set(counts.values()) == {1}
    for row in await all_rows(sessions):
        assert row.status == "sent" and row.lease_until is None


async def test_a_sender_dying_as_it_records_a_mail_sent_does_not_send_it_again(
    sessions: Sessions, database_url: str
) -> None:
    """The record of a mail the server accepted is one autocommitted statement, written on a
    connection checked out before the mail went: once it has left the process, the
    database keeps it, whatever happens to the sender (issue 13: a worker killed in the
    load test sent a mail twice). SQLite commits inside the process: PostgreSQL only."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the statement outlives the process on a database server only")
    rows = await add_rows(sessions, [outbox_row(1), outbox_row(2), outbox_row(3)])
    handler = Recorder()
    with smtp_server(handler) as port:
        dying = _worker(database_url, port, "--lease", "1", "--die-once-recording-sent")
        _, err = await asyncio.to_thread(dying.communicate, timeout=60)
        assert dying.returncode == 3, err.decode()  # it died as planned
        await asyncio.sleep(1.2)  # past the lease: a row still "sending" would be taken
        second = _worker(database_url, port, "--lease", "30")
        out, err = await asyncio.to_thread(second.communicate, timeout=60)
        assert second.returncode == 0, err.decode()
    assert int(out) == 1  # the third, never sent by the first process
    assert Counter(handler.message_ids()) == Counter(r.message_id for r in rows)
    assert {(r.status, r.sent_at is not None) for r in await all_rows(sessions)} == {
        (
            "sent",
            True,
        )
    }


# -- permanent-looking failures, dead mail, requeueing (issue 7, finding 9) -------------------


class RefusingRecorder(Recorder):
    """Answers the first ``times`` DATA commands with ``reply``, then accepts."""

    def __init__(self, reply: str, times: int) -> None:
        super().__init__()
        self.reply = reply
        self.times = times

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_seen < self.times:
            self.data_seen += 1
            return self.reply
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (550, "5.1.1 <a@example.jp>: Recipient address rejected: User unknown", PermanentError),
        (550, "5.1.1 The email account that you tried to reach does not exist.", PermanentError),
        (553, "5.1.3 Bad recipient address syntax", PermanentError),
        (552, "5.3.4 Message size exceeds fixed limit", PermanentError),
        (552, "5.2.2 Mailbox full", DoubtfulError),
        (550, "5.2.2 The user's mailbox is over quota", DoubtfulError),
        (550, "Greylisted, please try again in 300 seconds", DoubtfulError),
        (554, "5.7.1 Message rejected as spam", DoubtfulError),
        (550, "Requested action not taken: mailbox unavailable", DoubtfulError),
        (421, "4.7.0 Try again later, closing connection", TransientError),
        (451, "4.3.0 Temporary failure", TransientError),
    ],
)
def test_replies_providers_misreport_are_doubtful_not_final(
    code: int, text: str, expected: type[Exception]
) -> None:
    error = classify_reply(code, text, "message refused")

    assert type(error) is expected
    assert str(code) in str(error) and text in str(error)


async def test_a_550_for_a_full_mailbox_is_retried_with_backoff_then_delivered(
    sessions: Sessions,
) -> None:
    # Before: one 550 made the mail dead after a single attempt.
    ticket_id = await make_ticket(sessions)
    [row] = await add_rows(sessions, [outbox_row(1, ticket_id=ticket_id)])
    clock = Clock()
    handler = RefusingRecorder("550 5.2.2 Mailbox full, try later", times=2)
    with smtp_server(handler) as port:
        sender = sender_for(sessions, port, clock=clock, base_delay=60, jitter=0)
        for attempt, delay in ((1, 300), (2, 600)):
            assert await sender.run_once() == 1
            [stored] = await all_rows(sessions)
            assert (stored.status, stored.attempts) == ("queued", attempt)
            assert stored.last_error and "550 5.2.2" in stored.last_error
            wait = (as_utc(stored.next_attempt_at) - clock.now).total_seconds()
            assert wait == pytest.approx(delay)  # greylisting wants minutes, not seconds
            clock.advance(delay * 0.9)
            assert await sender.run_once() == 0
            clock.advance(delay * 0.2)
        assert await sender.run_once() == 1
    assert handler.message_ids() == [row.message_id]
    [stored] = await all_rows(sessions)
    assert (stored.status, stored.attempts, stored.dead_at) == ("sent", 3, None)


async def test_a_doubtful_refusal_is_dead_after_a_few_attempts(sessions: Sessions) -> None:
    await add_rows(sessions, [outbox_row(1)])
    clock = Clock()
    handler = RefusingRecorder("554 5.7.1 Rejected by policy", times=100)
    with smtp_server(handler) as port:
        sender = sender_for(sessions, port, clock=clock, max_attempts=12, doubtful_attempts=3)
        for _ in range(3):
            assert await sender.run_once() == 1
            clock.advance(3600)
        assert await sender.run_once() == 0
    [stored] = await all_rows(sessions)
    assert (stored.status, stored.attempts) == ("dead", 3)
    assert stored.dead_at is not None and stored.dead_reported_at is None
    assert handler.accepted == []


async def dead_rows(sessions: Sessions, count: int, **fields: Any) -> list[Outbox]:
    now = utcnow()
    rows = [
        outbox_row(
            n, status="dead", attempts=1, last_error="550 5.7.1 refused", dead_at=now, **fields
        )
        for n in range(count)
    ]
    return await add_rows(sessions, rows)


async def test_mail_retry_requeues_dead_mail_and_never_sent_mail(sessions: Sessions) -> None:
    ticket_id = await make_ticket(sessions)
    dead = await dead_rows(sessions, 2, ticket_id=ticket_id)
    [sent] = await add_rows(sessions, [outbox_row(9, status="sent", attempts=1)])
    async with sessions() as session:
        assert await requeue_dead(session, ids=[sent.id]) == []  # never twice
        requeued = await requeue_dead(session, ids=[dead[0].id], actor="main.py")
        await session.commit()
    assert [row.id for row in requeued] == [dead[0].id]
    stored = {row.id: row for row in await all_rows(sessions)}
    first = stored[dead[0].id]
    assert (first.status, first.attempts, first.dead_at, first.lease_until) == (
        "queued",
        0,
        None,
        None,
    )
    assert first.last_error  # kept: what happened last time
    assert stored[dead[1].id].status == "dead" and stored[sent.id].status == "sent"
    async with sessions() as session:
        events = (await session.execute(select(TicketEvent))).scalars().all()
        assert [(e.kind, e.actor, json.loads(e.data)["outbox_id"]) for e in events] == [
            ("mail_requeued", "main.py", dead[0].id)
        ]
        rest = await requeue_dead(session)  # --dead: all of them
        await session.commit()
    assert [row.id for row in rest] == [dead[1].id]

    # Requeued mail is sent by the sender like any other.
    handler = Recorder()
    with smtp_server(handler) as port:
        assert await sender_for(sessions, port).drain() == 2
    assert sorted(handler.message_ids()) == sorted(row.message_id for row in dead)


async def test_dead_mail_is_reported_to_agents_once(sessions: Sessions) -> None:
    rows = await dead_rows(sessions, 3)
    async with sessions() as session:
        assert [m.outbox_id for m in await unreported_dead_mail(session)] == [r.id for r in rows]
        claimed = await claim_dead_mail_to_report(session)
        await session.rollback()  # the notification was not queued: still unreported
    assert len(claimed) == 3
    async with sessions() as session:
        claimed = await claim_dead_mail_to_report(session)
        await session.commit()
    assert [m.outbox_id for m in claimed] == [r.id for r in rows]
    mail = claimed[0]
    assert (mail.kind, mail.to_address, mail.attempts) == (
        "ticket_confirmation",
        "customer0@example.jp",
        1,
    )
    assert "550 5.7.1" in mail.error and mail.dead_at is not None
    async with sessions() as session:
        assert await claim_dead_mail_to_report(session) == []
        assert await unreported_dead_mail(session) == []
        # Requeued, then dead again: reported again.
        await requeue_dead(session, ids=[rows[0].id])
        await session.commit()
    handler = RefusingRecorder("550 5.1.1 User unknown", times=10)
    with smtp_server(handler) as port:
        assert await sender_for(sessions, port).drain() == 1
    async with sessions() as session:
        again = await claim_dead_mail_to_report(session)
        await session.commit()
    assert [m.outbox_id for m in again] == [rows[0].id]


async def test_two_notifications_at_once_never_list_the_same_dead_mail(
    sessions: Sessions,
) -> None:
    await dead_rows(sessions, 6)

    async def claim() -> list[int]:
        async with sessions() as session:
            found = await claim_dead_mail_to_report(session, limit=4)
            await asyncio.sleep(0.05)
            await session.commit()
        return [m.outbox_id for m in found]

    first, second = await asyncio.gather(claim(), claim())
    assert not set(first) & set(second)
    assert len(first) + len(second) == 6
