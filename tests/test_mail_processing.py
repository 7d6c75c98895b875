"""How received mail is processed: counted runs, retries, reprocessing, the raw kept clean.

Issue 7: a message that killed the process stayed ``received`` and was run again at every
start (item 2); a temporary failure after the SMTP 250 was final (item 10); photos kept
GPS, camera and owner in ``inbound_mail.raw`` (item 11).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.applications import Starlette

from helpdesk.db import as_utc, utcnow
from helpdesk.mail.decode import parse_message
from helpdesk.mail.inbound import MAX_STARTS, RETRY_DELAYS, header_message_id, is_temporary
from helpdesk.models import Attachment, InboundMail, Message, Outbox, Ticket
from helpdesk.settings import ROOT
from tests import imaging
from tests.helpers import (
    SUPPORT,
    MailLoop,
    api_inquiry,
    mail,
    reply_address,
    rows,
    the_ticket,
)

CORPUS = Path(__file__).parent / "mail_corpus"
GPS = 0x8825
MAKE = 0x010F


def with_photo(message: EmailMessage, data: bytes, filename: str = "写真.jpg") -> EmailMessage:
    message.add_attachment(data, maintype="image", subtype="jpeg", filename=filename)
    return message


async def expire(app: Starlette) -> None:
    """Time passes: every lease and retry time is over."""
    async with app.state.helpdesk.sessions() as session:
        await session.execute(
            update(InboundMail).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()


# -- a message that kills the process ---------------------------------------------------------


def _worker(database_url: str, media: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.inbound_worker", database_url, str(media), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_message_that_kills_the_process_is_parked_after_two_runs(
    app: Starlette, database_url: str, tmp_path: Path
) -> None:
    poison = with_photo(
        mail("hanako@example.jp", SUPPORT, "写真です", "壊れた写真です"),
        imaging.jpeg(),
        "poison.jpg",
    )
    eml = tmp_path / "poison.eml"
    eml.write_bytes(poison.as_bytes())
    media = tmp_path / "media"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _worker(database_url, media, *args)

    first = await asyncio.to_thread(run, "receive", str(eml))
    assert first.returncode == -signal.SIGKILL, first.stderr
    [row] = await rows(app, InboundMail)
    assert (row.status, row.attempts) == ("received", 1)  # counted before it ran

    # The sending server saw the connection drop and sends the message again: the copy is
    # kept, and starts nothing (the worker survives it).
    copy = await asyncio.to_thread(run, "receive", str(eml))
    assert copy.returncode == 0, copy.stderr
    assert copy.stdout.startswith("ignored") and f"受信番号 {row.id}" in copy.stdout

    await expire(app)  # the lease of the killed run ends
    second = await asyncio.to_thread(run, "due")
    assert second.returncode == -signal.SIGKILL, second.stderr
    [row, _] = await rows(app, InboundMail)
    assert (row.status, row.attempts) == ("received", MAX_STARTS)

    await expire(app)
    parked = await asyncio.to_thread(run, "due")
    assert (parked.returncode, parked.stdout.strip()) == (0, "1"), parked.stderr
    [row, _] = await rows(app, InboundMail)
    assert row.status == "failed" and "処理中に停止したため自動では処理しません" in row.outcome
    assert f"main.py mail reprocess {row.id}" in row.outcome
    [told] = [o for o in await rows(app, Outbox) if o.kind == "inbound_failed"]
    assert told.to_address == SUPPORT and "処理中に停止" in told.text

    await expire(app)
    after = await asyncio.to_thread(run, "due")
    assert (after.returncode, after.stdout.strip()) == (0, "0"), after.stderr
    assert await rows(app, Ticket) == []


async def test_a_copy_of_a_processed_message_is_kept_and_starts_nothing(
    app: Starlette, mail_loop: MailLoop
) -> None:
    message = mail("ichiro@example.jp", SUPPORT, "質問", "ラッピングはできますか")
    await mail_loop.send(message)
    await mail_loop.send(message)
    first, copy = await rows(app, InboundMail)
    assert (first.status, first.attempts) == ("processed", 1)
    assert (copy.status, copy.attempts) == ("ignored", 0)
    assert copy.ticket_id == first.ticket_id and len(await rows(app, Ticket)) == 1


# -- temporary and permanent failures ------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "temporary"),
    [
        (OperationalError("SELECT 1", {}, Exception("database is locked")), True),
        (DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True), True),
        (PermissionError(13, "Permission denied"), True),
        (OSError(30, "Read-only file system"), True),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (IntegrityError("INSERT", {}, Exception("unique")), False),
        (DBAPIError("SELECT 1", {}, Exception("syntax")), False),
        (ValueError("bad"), False),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), False),
        (KeyError("x"), False),
    ],
)
def test_which_failures_are_temporary(error: BaseException, temporary: bool) -> None:
    assert is_temporary(error) is temporary


def block_media(app: Starlette, tmp_path: Path) -> Path:
    """Make the media folder unusable (a file stands where its parent should be: chmod
    would not stop a test running as root); returns the folder to restore."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    photos = app.state.helpdesk.photos
    original, photos.root = photos.root, blocker / "media"
    return Path(original)


async def test_a_temporary_failure_is_retried_not_final(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop, tmp_path: Path
) -> None:
    created = await api_inquiry(client)
    address = await reply_address(app, created["reference"])
    media = block_media(app, tmp_path)
    reply = with_photo(mail("hanako@example.jp", address, "Re:", "写真を送ります"), imaging.jpeg())
    await mail_loop.send(reply, to=[address])

    [row] = await rows(app, InboundMail)
    assert row.status == "retry" and "一時的な問題" in row.outcome
    assert utcnow() < as_utc(row.next_attempt_at) <= utcnow() + RETRY_DELAYS[0]
    assert not [o for o in await rows(app, Outbox) if o.kind == "inbound_failed"]
    assert await app.state.helpdesk.inbound.process_due() == 0  # not due yet

    app.state.helpdesk.photos.root = media  # the folder is back
    await expire(app)
    assert await app.state.helpdesk.inbound.process_due() == 1
    [row] = await rows(app, InboundMail)
    assert (row.status, row.attempts) == ("processed", 2)
    ticket = await the_ticket(app, created["reference"])
    [*_, message] = await rows(app, Message, Message.ticket_id == ticket.id)
    assert message.body == "写真を送ります"
    assert len(await rows(app, Attachment, Attachment.message_id == message.id)) == 1


async def test_temporary_failures_that_last_end_as_failed_for_agents(
    app: Starlette, mail_loop: MailLoop, tmp_path: Path
) -> None:
    block_media(app, tmp_path)
    message = with_photo(mail("taro@example.jp", SUPPORT, "写真", "見てください"), imaging.jpeg())
    await mail_loop.send(message)
    for _ in RETRY_DELAYS:
        await expire(app)
        assert await app.state.helpdesk.inbound.process_due() == 1
    [row] = await rows(app, InboundMail)
    assert (row.status, row.attempts) == ("failed", len(RETRY_DELAYS) + 1)
    assert f"main.py mail reprocess {row.id}" in row.outcome
    [told] = [o for o in await rows(app, Outbox) if o.kind == "inbound_failed"]
    assert told.to_address == SUPPORT
    assert message["Message-ID"].encode() in row.raw  # kept whole for reprocessing


async def test_the_periodic_pass_retries_by_itself(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    import helpdesk.app

    raw = mail("taro@example.jp", SUPPORT, "質問", "ラッピングはできますか").as_bytes()
    async with app.state.helpdesk.sessions() as session:
        session.add(InboundMail(raw=raw, status="retry", attempts=1, next_attempt_at=utcnow()))
        await session.commit()
    monkeypatch.setattr(helpdesk.app, "INBOUND_PASS_INTERVAL", 0.05)
    app.state.helpdesk.start_inbound_pass()
    for _ in range(200):
        if [r.status for r in await rows(app, InboundMail)] == ["processed"]:
            break
        await asyncio.sleep(0.05)
    assert [r.status for r in await rows(app, InboundMail)] == ["processed"]
    assert len(await rows(app, Ticket)) == 1


def test_reprocess_command(tmp_path: Path) -> None:
    env = {**os.environ, "HELPDESK_VAR_DIR": str(tmp_path / "var")}
    env.pop("HELPDESK_DATABASE_URL", None)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")

    def main(*args: str, media: Path | None = None) -> subprocess.CompletedProcess[str]:
        run_env = {**env, "HELPDESK_MEDIA_DIR": str(media)} if media else env
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args],
            input=raw if args[:2] == ("mail", "ingest") else None,
            capture_output=True,
            text=args[:2] != ("mail", "ingest"),
            cwd=ROOT,
            env=run_env,
            timeout=120,
        )

    raw = with_photo(
        mail("taro@example.jp", SUPPORT, "写真", "見てください"), imaging.jpeg()
    ).as_bytes()
    ingested = main("mail", "ingest", media=blocker / "media")
    assert ingested.returncode == 0 and ingested.stdout.startswith(b"retry")
    assert "retry" in main("mail", "status").stdout

    done = main("mail", "reprocess", "1")
    assert done.returncode == 0 and done.stdout.startswith("inbound #1 processed"), done.stderr
    again = main("mail", "reprocess", "1")
    assert again.returncode == 1 and "処理済み" in again.stderr and "--force" in again.stderr
    forced = main("mail", "reprocess", "1", "--force")
    assert forced.returncode == 0, forced.stderr
    missing = main("mail", "reprocess", "99")
    assert missing.returncode == 1 and "ありません" in missing.stderr


# -- the raw mail kept -----------------------------------------------------------------------


def image_parts(raw: bytes) -> list[bytes]:
    message = message_from_bytes(raw, policy=policy.default)
    return [
        part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "image" and not part.is_multipart()
    ]


async def test_the_raw_mail_keeps_no_gps(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    created = await api_inquiry(client)
    address = await reply_address(app, created["reference"])
    photo = imaging.jpeg(gps=True)
    assert GPS in Image.open(io.BytesIO(photo)).getexif()  # what the phone sent
    sent = with_photo(mail("hanako@example.jp", address, "Re:", "傷の写真です"), photo)
    await mail_loop.send(sent, to=[address])
    await mail_loop.send(sent, to=[address])  # and a copy, sent again by the server

    first, copy = await rows(app, InboundMail)
    assert first.status == "processed" and copy.status == "ignored"
    [kept] = image_parts(first.raw)
    exif = Image.open(io.BytesIO(kept)).getexif()
    assert GPS not in exif and MAKE not in exif
    [attachment] = await rows(app, Attachment, Attachment.message_id.is_not(None))
    assert kept == app.state.helpdesk.photos.open(attachment.digest)  # the cleaned photo
    assert image_parts(copy.raw) == [] and b"Apple" not in copy.raw
    # The rest of the message is as it came: it still reads the same.
    assert parse_message(first.raw).text == parse_message(sent.as_bytes()).text
    assert parse_message(first.raw).message_id == sent["Message-ID"].strip("<>")


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.eml")), ids=lambda p: p.name)
def test_the_message_id_read_from_the_header_is_the_parsers(path: Path) -> None:
    raw = path.read_bytes()
    assert header_message_id(raw) == parse_message(raw).message_id
