"""Inbound mail end to end: real SMTP to the app's own receiver, threading, agent commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from helpdesk.models import InboundMail, Message, Outbox, Ticket, TicketEvent
from helpdesk.settings import ROOT
from tests import imaging
from tests.helpers import (
    SUPPORT,
    add_agent,
    api_inquiry,
    deliver,
    free_port,
    mail,
    reply_address,
    rows,
    the_ticket,
)

CORPUS = Path(__file__).parent / "mail_corpus"


@pytest.fixture
async def smtp_port(app: Starlette) -> AsyncIterator[int]:
    """The app's own SMTP receiver, listening on loopback."""
    port = free_port()
    app.state.helpdesk.settings.inbound_smtp_port = port
    await app.state.helpdesk.start_receiver()
    yield port


@pytest.fixture
async def agent_thread(app: Starlette, client: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    """A registered agent 佐藤, an open ticket, and the agents' signed reply address."""
    await add_agent(app)
    created = await api_inquiry(client)
    return created, await reply_address(app, created["reference"], agents=True)


async def test_mail_from_a_stranger_opens_an_inquiry(app: Starlette, smtp_port: int) -> None:
    message = mail(
        "佐藤 一郎 <ichiro@example.jp>",
        SUPPORT,
        "請求書について",
        "GMO後払いの請求書を再発行してください。",
    )
    await deliver(smtp_port, message)
    [inbound] = await rows(app, InboundMail)
    assert inbound.status == "processed"
    assert message["Message-ID"].encode() in inbound.raw  # the raw message is kept
    [ticket] = await rows(app, Ticket)
    assert ticket.kind == "inquiry" and inbound.ticket_id == ticket.id
    [first] = await rows(app, Message)
    assert "件名: 請求書について" in first.body and "再発行してください" in first.body
    kinds = sorted(o.kind for o in await rows(app, Outbox))
    assert kinds == ["ticket_confirmation", "ticket_notification"]
    confirmation = next(o for o in await rows(app, Outbox) if o.kind == "ticket_confirmation")
    assert confirmation.to_address == "ichiro@example.jp"
    assert confirmation.in_reply_to == message["Message-ID"].strip("<>")


async def test_customer_reply_threads_by_signed_address_and_reopens(
    app: Starlette, client: httpx.AsyncClient, smtp_port: int
) -> None:
    created = await api_inquiry(client)
    reference = created["reference"]
    async with app.state.helpdesk.sessions() as session:
        ticket = (await session.execute(select(Ticket))).scalar_one()
        ticket.status = "resolved"
        await session.commit()
    address = await reply_address(app, reference)
    body = (
        "まだ届いていません。\n\n"
        "2026年11月24日(火) 15:00 COCO case <admin@interiorltd.jp>:\n> 以前のメール\n"
    )
    message = mail("hanako@example.jp", address, f"Re: [{reference}] お問い合わせ", body)
    message.add_attachment(
        imaging.jpeg(gps=True), maintype="image", subtype="jpeg", filename="写真.jpg"
    )
    await deliver(smtp_port, message, to=[address])
    ticket = await the_ticket(app, reference)
    assert ticket.status == "open"
    messages = await rows(app, Message, Message.ticket_id == ticket.id)
    assert messages[-1].body == "まだ届いていません。" and messages[-1].author == "customer"
    notice = next(o for o in await rows(app, Outbox) if o.kind == "customer_reply")
    assert notice.to_address == SUPPORT and "まだ届いていません。" in notice.text
    assert len(json.loads(notice.attachments)) == 1
    # The same message delivered twice adds nothing.
    await deliver(smtp_port, message, to=[address])
    assert len(await rows(app, Message, Message.ticket_id == ticket.id)) == len(messages)


async def test_forged_reply_address_does_not_thread(
    app: Starlette, client: httpx.AsyncClient, smtp_port: int
) -> None:
    created = await api_inquiry(client)
    forged = f"admin+{created['reference'].lower()}.aaaaaaaaaaaa@interiorltd.jp"
    await deliver(smtp_port, mail("mallory@example.jp", forged, "hi", "hello"), to=[forged])
    assert len(await rows(app, Ticket)) == 2  # a new inquiry, not a message on the ticket


async def test_reply_threads_by_in_reply_to_and_by_subject(
    app: Starlette, client: httpx.AsyncClient, smtp_port: int
) -> None:
    created = await api_inquiry(client)
    reference = created["reference"]
    confirmation = next(o for o in await rows(app, Outbox) if o.kind == "ticket_confirmation")
    by_id = mail(
        "hanako@example.jp",
        SUPPORT,
        "Re: ありがとうございます",
        "追記です。",
        In_Reply_To=f"<{confirmation.message_id}>",
    )
    await deliver(smtp_port, by_id)
    by_subject = mail("hanako@example.jp", SUPPORT, f"Re: [{reference}] 受付", "もう一つ追記です。")
    await deliver(smtp_port, by_subject)
    stranger = mail("other@example.jp", SUPPORT, f"[{reference}] 便乗", "他人です。")
    await deliver(smtp_port, stranger)
    ticket = await the_ticket(app, reference)
    bodies = [m.body for m in await rows(app, Message, Message.ticket_id == ticket.id)]
    assert bodies[1:] == ["追記です。", "もう一つ追記です。"]
    assert len(await rows(app, Ticket)) == 2  # the stranger got a ticket of their own


async def test_agent_reply_with_commands_reaches_the_customer(
    app: Starlette, client: httpx.AsyncClient, smtp_port: int
) -> None:
    await add_agent(app, name="佐藤 花子")
    created = await api_inquiry(client)
    reference = created["reference"]
    address = await reply_address(app, reference, agents=True)
    body = (
        "#status resolved\n#priority high\n＃担当 佐藤\n\n"
        "お待たせいたしました。本日発送いたしました。\n\n"
        "-- \n佐藤\n\n"
        "On Tue, Nov 24, 2026 at 3:00 PM COCO case <admin@interiorltd.jp> wrote:\n"
        "> 注文した商品がまだ届きません。\n"
    )
    await deliver(
        smtp_port,
        mail("Sato <sato@interiorltd.jp>", address, f"Re: [{reference}]", body),
        to=[address],
    )
    ticket = await the_ticket(app, reference)
    assert (ticket.status, ticket.priority) == ("resolved", "high")
    assert ticket.assignee_id is not None
    messages = await rows(app, Message, Message.ticket_id == ticket.id)
    assert messages[-1].author == "agent"
    assert messages[-1].body == "お待たせいたしました。本日発送いたしました。"
    reply = next(o for o in await rows(app, Outbox) if o.kind == "agent_reply")
    assert reply.to_address == "hanako@example.jp" and not reply.automatic
    assert "お待たせいたしました。本日発送いたしました。" in reply.text
    assert "解決済み" in reply.text and "#status" not in reply.text
    assert reply.reply_to == await reply_address(app, reference)  # the customer's address
    events = {e.kind for e in await rows(app, TicketEvent, TicketEvent.ticket_id == ticket.id)}
    assert {"status_changed", "priority_changed", "assigned", "agent_reply"} <= events


async def test_agent_note_stays_internal(
    app: Starlette,
    client: httpx.AsyncClient,
    smtp_port: int,
    agent_thread: tuple[dict[str, Any], str],
) -> None:
    created, address = agent_thread
    await deliver(
        smtp_port,
        mail("sato@interiorltd.jp", address, "Re:", "#メモ\n在庫を確認中です。"),
        to=[address],
    )
    ticket = await the_ticket(app, created["reference"])
    [note] = await rows(app, Message, Message.ticket_id == ticket.id, Message.author == "note")
    assert note.body == "在庫を確認中です。"
    assert not [
        o
        for o in await rows(app, Outbox)
        if o.to_address == "hanako@example.jp" and o.kind != "ticket_confirmation"
    ]
    status = await client.get(
        httpx.URL(created["status_url"]).path,
        params=dict(httpx.URL(created["status_url"]).params),
        headers={"Accept": "application/json"},
    )
    assert "在庫を確認中" not in status.text


async def test_unknown_command_earns_the_agent_an_error_and_nothing_else(
    app: Starlette,
    client: httpx.AsyncClient,
    smtp_port: int,
    agent_thread: tuple[dict[str, Any], str],
) -> None:
    created, address = agent_thread
    body = "#statu resolved\n\nお客様への返信本文"
    await deliver(smtp_port, mail("sato@interiorltd.jp", address, "Re:", body), to=[address])
    ticket = await the_ticket(app, created["reference"])
    assert ticket.status == "new"
    outbox = await rows(app, Outbox)
    [error] = [o for o in outbox if o.kind == "agent_error"]
    assert error.to_address == "sato@interiorltd.jp" and "#statu" in error.text
    assert not [o for o in outbox if o.kind in ("agent_reply", "status_changed")]
    assert len(await rows(app, Message, Message.ticket_id == ticket.id)) == 1


async def test_unknown_assignee_is_an_error(
    app: Starlette,
    client: httpx.AsyncClient,
    smtp_port: int,
    agent_thread: tuple[dict[str, Any], str],
) -> None:
    _, address = agent_thread
    await deliver(
        smtp_port, mail("sato@interiorltd.jp", address, "Re:", "#担当 鈴木\n\n本文"), to=[address]
    )
    [error] = [o for o in await rows(app, Outbox) if o.kind == "agent_error"]
    assert "鈴木" in error.text
    assert not [o for o in await rows(app, Outbox) if o.kind == "agent_reply"]


async def test_automatic_mail_is_never_answered(
    app: Starlette, client: httpx.AsyncClient, smtp_port: int
) -> None:
    vacation = mail(
        "someone@example.jp",
        SUPPORT,
        "自動応答: 不在です",
        "不在です。",
        Auto_Submitted="auto-replied",
    )
    bulk = mail("news@example.jp", SUPPORT, "セール情報", "広告", Precedence="bulk")
    daemon = mail("MAILER-DAEMON@example.jp", SUPPORT, "failure", "x")
    for message in (vacation, bulk, daemon):
        await deliver(smtp_port, message)
    assert await rows(app, Ticket) == []
    assert await rows(app, Outbox) == []
    assert {m.status for m in await rows(app, InboundMail)} == {"ignored"}
    created = await api_inquiry(client)
    address = await reply_address(app, created["reference"])
    await deliver(
        smtp_port,
        mail("hanako@example.jp", address, "自動応答", "不在です", Auto_Submitted="auto-replied"),
        to=[address],
    )
    ticket = await the_ticket(app, created["reference"])
    events = [e.kind for e in await rows(app, TicketEvent, TicketEvent.ticket_id == ticket.id)]
    assert "auto_reply_received" in events
    assert not [o for o in await rows(app, Outbox) if o.kind == "customer_reply"]


async def test_delivery_report_is_recorded_on_the_ticket(
    app: Starlette, client: httpx.AsyncClient, smtp_port: int
) -> None:
    created = await api_inquiry(client)
    confirmation = next(o for o in await rows(app, Outbox) if o.kind == "ticket_confirmation")
    dsn = (
        "From: MAILER-DAEMON@mx.example.jp\r\nTo: admin@interiorltd.jp\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.jp>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.jp\r\n\r\n"
        "Final-Recipient: rfc822; hanako@example.jp\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{confirmation.message_id}>\r\nSubject: x\r\n"
        "--B--\r\n"
    ).encode()
    await deliver(smtp_port, dsn)
    ticket = await the_ticket(app, created["reference"])
    [event] = await rows(
        app, TicketEvent, TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "delivery_failed"
    )
    data = json.loads(event.data)
    assert data["to"] == "hanako@example.jp"
    assert data["failures"][0]["status"] == "5.1.1"
    assert len(await rows(app, Ticket)) == 1


async def test_unparseable_mail_is_kept_for_agents(app: Starlette, smtp_port: int) -> None:
    await app.state.helpdesk.inbound.receive(b"\x00\x01 not a mail at all")
    [row] = await rows(app, InboundMail)
    assert row.status == "failed" and row.raw == b"\x00\x01 not a mail at all"
    assert "解析できません" in row.outcome
    [report] = await rows(app, Outbox)
    assert report.kind == "inbound_failed" and report.to_address == SUPPORT
    assert f"受信番号 {row.id}" in report.subject and "not a mail at all" in report.text


async def test_automatic_mail_per_address_is_capped(app: Starlette, smtp_port: int) -> None:
    app.state.helpdesk.tickets.notify.automatic_mail_limit = 2
    for index in range(4):
        await deliver(smtp_port, mail("loop@example.jp", SUPPORT, f"質問{index}", "こんにちは"))
    confirmations = [o for o in await rows(app, Outbox) if o.kind == "ticket_confirmation"]
    assert len(confirmations) == 2
    assert len(await rows(app, Ticket)) == 4  # every mail is still a ticket for the agents
    suppressed = await rows(app, TicketEvent, TicketEvent.kind == "mail_suppressed")
    assert len(suppressed) == 2


@pytest.mark.parametrize(
    "name", ["02-iso2022jp-nec-chars.eml", "03-sjis-labelled-cp932.eml", "14-euc-jp.eml"]
)
async def test_japanese_corpus_mail_becomes_a_readable_ticket(
    app: Starlette, smtp_port: int, name: str
) -> None:
    import tomllib

    expected = tomllib.loads((CORPUS / "expected.toml").read_text(encoding="utf-8"))
    case = expected[name]
    await deliver(smtp_port, (CORPUS / name).read_bytes())
    [message] = await rows(app, Message)
    for fragment in case["text_contains"][:3]:
        assert fragment in message.body
    assert "\ufffd" not in message.body


def test_mail_ingest_from_standard_input(tmp_path: Path) -> None:
    env = {**os.environ, "HELPDESK_VAR_DIR": str(tmp_path / "var")}
    env.pop("HELPDESK_DATABASE_URL", None)
    raw = mail(
        "taro@example.jp", SUPPORT, "ラッピングについて", "ギフト包装はできますか"
    ).as_bytes()
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "mail", "ingest"],
        input=raw,
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"processed" in result.stdout
    empty = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "mail", "ingest"],
        input=b"",
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert empty.returncode == 65  # EX_DATAERR
    # With no SMTP host, the queued confirmation and notification become .eml files.
    sent = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "mail", "send-queued"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert sent.returncode == 0 and "handled 2" in sent.stdout
    files = sorted((tmp_path / "var" / "mail").glob("*.eml"))
    assert len(files) == 2
    import email as email_module
    import email.policy as email_policy

    subjects = {
        email_module.message_from_bytes(f.read_bytes(), policy=email_policy.default)["Subject"]
        for f in files
    }
    # The confirmation answers the customer's mail, under the ticket's subject form.
    assert any(s.startswith("Re: [HD-") and s.endswith("] ラッピングについて") for s in subjects)
    status = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "mail", "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert "sent 2" in status.stdout


def test_agent_add_command(tmp_path: Path) -> None:
    env = {**os.environ, "HELPDESK_VAR_DIR": str(tmp_path / "var")}
    env.pop("HELPDESK_DATABASE_URL", None)
    ok = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "agent",
            "add",
            "Sato@Example.jp",
            "--name",
            "佐藤",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0 and "sato@example.jp" in ok.stdout
    bad = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "agent", "add", "not-an-address", "--name", "x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 1


async def test_commands_need_the_agents_address_not_just_an_agents_from(
    app: Starlette, client: httpx.AsyncClient, smtp_port: int
) -> None:
    await add_agent(app)
    created = await api_inquiry(client)
    customer_address = await reply_address(app, created["reference"])
    forged = mail(
        "Sato <SATO@interiorltd.jp>", customer_address, "Re:", "#note\n返金先を変更してよい"
    )
    await deliver(smtp_port, forged, to=[customer_address])
    ticket = await the_ticket(app, created["reference"])
    messages = await rows(app, Message, Message.ticket_id == ticket.id)
    assert [m.author for m in messages] == ["customer", "customer"]  # no internal note
    # Held for agents as a third party's, never the customer's.
    assert (messages[-1].trust, messages[-1].sender) == ("third_party", "sato@interiorltd.jp")
    notice = next(o for o in await rows(app, Outbox) if o.kind == "customer_reply")
    assert "未確認" in notice.subject and "sato@interiorltd.jp" in notice.subject


async def test_agents_auto_reply_is_not_passed_to_the_customer(
    app: Starlette,
    client: httpx.AsyncClient,
    smtp_port: int,
    agent_thread: tuple[dict[str, Any], str],
) -> None:
    created, address = agent_thread
    vacation = mail(
        "sato@interiorltd.jp",
        address,
        "不在",
        "ただいま休暇中です。",
        Auto_Submitted="auto-replied",
    )
    await deliver(smtp_port, vacation, to=[address])
    ticket = await the_ticket(app, created["reference"])
    assert ticket.status == "new"
    assert not [o for o in await rows(app, Outbox) if o.kind == "agent_reply"]


async def test_mail_interrupted_after_storing_is_processed_later(app: Starlette) -> None:
    from datetime import timedelta

    from helpdesk.db import utcnow

    raw = mail("taro@example.jp", SUPPORT, "質問", "ラッピングはできますか").as_bytes()
    async with app.state.helpdesk.sessions() as session:
        session.add(InboundMail(raw=raw, received_at=utcnow() - timedelta(minutes=10)))
        session.add(InboundMail(raw=raw, received_at=utcnow()))  # may still be in progress
        await session.commit()
    assert await app.state.helpdesk.inbound.process_due() == 1
    statuses = sorted(r.status for r in await rows(app, InboundMail))
    assert statuses == ["processed", "received"]
    assert len(await rows(app, Ticket)) == 1
