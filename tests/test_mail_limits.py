"""Untrusted mail is parsed with bounded memory and time, off the event loop (issue 7).

One test per finding, each failing on the code before the fix: HTML quote nesting that made
the text grow with depth x lines (finding 1), html.parser's quadratic rescans, deep MIME
nesting, the receiver's size limit and parsing on the event loop (finding 14). The memory
test runs the real parser in a child process (tests/mail_limits_child.py) and bounds its
peak RSS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from helpdesk.mail import decode, inbound
from helpdesk.mail.decode import MAX_QUOTE_DEPTH, html_to_text, parse_message
from helpdesk.models import InboundMail, Message
from helpdesk.photos import PhotoStore
from helpdesk.settings import ROOT
from tests import imaging
from tests.mail_limits_child import large_mail, worst_html, worst_html_mail

# Peak RSS of the child above its idle RSS, in MB. Measured: +0 (worst HTML) and +170
# (a 30 MB mail: the raw bytes, the parsed parts and the decoded attachments).
WORST_HTML_MAX_MB = 50
LARGE_MAIL_MAX_MB = 300


def _child(tmp_path: Path, raw: bytes) -> dict[str, Any]:
    path = tmp_path / "mail.eml"
    path.write_bytes(raw)
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "mail_limits_child.py"), str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_worst_html_mail_peak_memory(tmp_path: Path) -> None:
    found = _child(tmp_path, worst_html_mail())
    assert found["text_chars"] > 0
    assert found["peak_mb"] - found["idle_mb"] <= WORST_HTML_MAX_MB, found


def test_30_mb_mail_peak_memory(tmp_path: Path) -> None:
    found = _child(tmp_path, large_mail())
    assert found["mail_mb"] > 29 and found["attachments"] >= 5
    assert found["peak_mb"] - found["idle_mb"] <= LARGE_MAIL_MAX_MB, found


def test_html_quote_nesting_keeps_the_text_linear() -> None:
    html = "<blockquote>" * 3000 + "x<br>" * 3000
    text = html_to_text(html)
    lines = text.split("\n")
    assert lines.count("> " * MAX_QUOTE_DEPTH + "x") == 3000
    assert len(text) <= 4 * len(html)


def test_html_to_text_output_is_capped() -> None:
    text = html_to_text("<p>" + "あ" * 3_000_000 + "</p>")
    assert len(text) < 1_100_000 and text.endswith("(以下省略)")


@pytest.mark.parametrize(
    "html",
    [
        pytest.param("<a" * 100_000, id="unfinished-tags"),
        pytest.param("<!--" * 50_000, id="unfinished-comments"),
        pytest.param("</" * 100_000, id="unfinished-end-tags"),
        pytest.param("<a b='" * 50_000, id="unclosed-quotes"),
        pytest.param("<![CDATA[" * 30_000, id="unfinished-cdata"),
    ],
)
def test_html_to_text_is_linear_on_unfinished_constructs(html: str) -> None:
    # html.parser rescanned the rest of the input at each: minutes for these (2 s is 20x
    # what they take now; the bound only catches a quadratic again).
    started = time.perf_counter()
    html_to_text(html)
    assert time.perf_counter() - started < 2.0


def test_deep_mime_nesting_is_parsed_without_a_crash() -> None:
    head = b"From: a@b.jp\r\nSubject: nested\r\n"
    levels = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(3000)
    )
    mail = parse_message(head + levels + b"Content-Type: text/plain\r\n\r\nhello\r\n")
    assert mail.subject == "nested"  # before: RecursionError


# -- the receiver -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def small_receiver(app: Starlette) -> AsyncIterator[int]:
    """The app's receiver with a 1 MB limit."""
    port = _free_port()
    app.state.helpdesk.settings.inbound_smtp_port = port
    app.state.helpdesk.settings.inbound_max_mail_mb = 1
    await app.state.helpdesk.start_receiver()
    yield port


def _mail(body: str, *, size: int = 0, to: str = "support@interiorltd.jp") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "山田 花子 <hanako@example.jp>"
    message["To"] = to
    message["Subject"] = "お問い合わせ"
    message["Message-ID"] = f"<{time.time_ns()}@example.jp>"
    message.set_content(body)
    if size:
        message.add_attachment(os.urandom(size), maintype="application", subtype="pdf")
    return message


async def _rows(app: Starlette, model: type, *where: Any) -> list[Any]:
    async with app.state.helpdesk.sessions() as session:
        return list((await session.execute(select(model).where(*where))).scalars().all())


async def test_oversize_mail_gets_552_and_nothing_is_stored(
    app: Starlette, small_receiver: int
) -> None:
    big = _mail("大きな添付ファイルです。", size=1_500_000)
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await aiosmtplib.send(big, hostname="127.0.0.1", port=small_receiver)
    assert refused.value.code == 552
    assert await _rows(app, InboundMail) == []
    # Without SIZE in MAIL FROM, the limit is met during DATA: 552 at its end.
    reader, writer = await asyncio.open_connection("127.0.0.1", small_receiver)

    async def say(line: bytes) -> bytes:
        writer.write(line)
        await writer.drain()
        return await reader.readline()

    await reader.readline()
    writer.write(b"HELO example.jp\r\n")
    await reader.readline()
    assert (await say(b"MAIL FROM:<hanako@example.jp>\r\n")).startswith(b"250")
    assert (await say(b"RCPT TO:<support@interiorltd.jp>\r\n")).startswith(b"250")
    assert (await say(b"DATA\r\n")).startswith(b"354")
    head = b"From: hanako@example.jp\r\nSubject: big\r\n\r\n"
    answer = await say(head + (b"x" * 998 + b"\r\n") * 1200 + b".\r\n")
    assert answer.startswith(b"552"), answer
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()
    assert await _rows(app, InboundMail) == []
    # Under the limit, mail is still accepted.
    await aiosmtplib.send(_mail("小さなメールです。"), hostname="127.0.0.1", port=small_receiver)
    assert len(await _rows(app, InboundMail)) == 1


async def test_parsing_and_photo_cleaning_run_off_the_event_loop(
    app: Starlette,
    client: httpx.AsyncClient,
    small_receiver: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread = threading.get_ident()
    seen: dict[str, int] = {}

    def spy(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen[name] = threading.get_ident()
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(decode, "parse_message", spy("parse", decode.parse_message))
    monkeypatch.setattr(inbound, "strip_quoted", spy("strip", inbound.strip_quoted))
    monkeypatch.setattr(PhotoStore, "process", spy("photo", PhotoStore.process))

    created = await client.post(
        "/api/tickets",
        json={
            "kind": "inquiry",
            "category": "not_arrived",
            "name": "山田 花子",
            "email": "hanako@example.jp",
            "description": "まだ届きません。",
        },
    )
    assert created.status_code == 201
    helpdesk = app.state.helpdesk
    [ticket] = await _rows(app, inbound.Ticket)
    reply = _mail("写真を送ります。", to=helpdesk.tickets.access.reply_address(ticket))
    reply.add_attachment(imaging.jpeg(), maintype="image", subtype="jpeg", filename="箱.jpg")
    await aiosmtplib.send(reply, hostname="127.0.0.1", port=small_receiver)

    messages = await _rows(app, Message, Message.ticket_id == ticket.id)
    assert messages[-1].body == "写真を送ります。"
    assert set(seen) == {"parse", "strip", "photo"}
    assert loop_thread not in seen.values(), seen


def test_worst_html_is_what_the_issue_describes() -> None:
    html = worst_html()
    assert html.count("<blockquote>") == 40_000 and html.count("x<br>") == 40_000


async def test_large_mail_is_parsed_in_a_worker_process() -> None:
    raw = large_mail(3)
    assert len(raw) >= decode.PROCESS_THRESHOLD_BYTES
    mail = await decode.parse_message_async(raw)
    assert decode._pool is not None  # the worker process, not a thread sharing the GIL
    assert mail == dataclasses.replace(parse_message(raw), headers=mail.headers)
    assert dict(mail.headers) == dict(parse_message(raw).headers)
    with pytest.raises(TypeError):
        mail.headers["subject"] = "x"  # type: ignore[index]


async def test_dot_stuffed_lines_and_pipelined_commands_survive_the_chunked_reader(
    app: Starlette, small_receiver: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", small_receiver)
    await reader.readline()
    for command in (
        b"HELO example.jp",
        b"MAIL FROM:<hanako@example.jp>",
        b"RCPT TO:<support@interiorltd.jp>",
        b"DATA",
    ):
        writer.write(command + b"\r\n")
        await writer.drain()
        await reader.readline()
    body = b"Subject: dots\r\nMessage-ID: <dots@example.jp>\r\n\r\n..\r\n..leading\r\nend\r\n"
    writer.write(body + b".\r\nQUIT\r\n")  # QUIT pipelined right behind the data
    await writer.drain()
    assert (await reader.readline()).startswith(b"250")
    assert (await reader.readline()).startswith(b"221")
    writer.close()
    [stored] = await _rows(app, InboundMail)
    assert stored.raw.endswith(b"\r\n.\r\n.leading\r\nend\r\n")
