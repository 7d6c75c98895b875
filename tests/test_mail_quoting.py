"""The mail loop with the agents' private link in it: an agent answers our real new-ticket
notification from 13 kinds of mailer (tests/quoting_styles.py), over SMTP to the app's own
receiver. What reaches the customer (the queued mail and the status page) carries every line
the agent typed, and never the agents' link nor their signed reply address."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib
import httpx
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select
from starlette.applications import Starlette

from helpdesk.mail.reply import parse_reply
from helpdesk.models import Message, Outbox, Ticket
from tests.quoting_styles import AGENT_TEXT, AGENT_WORDS, STYLES

AGENT = "sato@interiorltd.jp"
# The agents' link: the console's since issue 10, a capability key before.
AGENT_LINK = re.compile(r"/(?:agent|console)/t/|[?&]key=")
SIGNED_ADDRESS = re.compile(r"\+hd-\d{2}-\d+\.", re.IGNORECASE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def smtp_port(app: Starlette) -> AsyncIterator[int]:
    port = _free_port()
    app.state.helpdesk.settings.inbound_smtp_port = port
    await app.state.helpdesk.start_receiver()
    yield port


async def _rows(app: Starlette, model: type, *where: Any) -> list[Any]:
    async with app.state.helpdesk.sessions() as session:
        return list((await session.execute(select(model).where(*where))).scalars().all())


async def _open_ticket(app: Starlette, client: httpx.AsyncClient) -> tuple[Ticket, Outbox, str]:
    """A new ticket: its row, the notification the agents got, the customer's status URL."""
    response = await client.post(
        "/api/tickets",
        json={
            "kind": "inquiry",
            "category": "not_arrived",
            "name": "山田 花子",
            "email": "hanako@example.jp",
            "description": "注文した商品がまだ届きません。",
        },
    )
    assert response.status_code == 201, response.text
    [ticket] = await _rows(app, Ticket, Ticket.reference == response.json()["reference"])
    [notification] = await _rows(app, Outbox, Outbox.kind == "ticket_notification")
    [confirmation] = await _rows(app, Outbox, Outbox.kind == "ticket_confirmation")
    status = re.search(r"https?://\S+/t/\S+\?token=\S+", confirmation.text)
    assert status is not None
    return ticket, notification, status[0]


def test_the_styles_strip_to_the_agents_words_alone() -> None:
    notification = (
        "新しいお問い合わせが届きました。\n\n受付番号: HD-26-00001\n\n内容:\n"
        "注文した商品がまだ届きません。\n\n"
        "チケットを開く: https://shop.example/agent/t/HD-26-00001?key=abcDEF123\n"
    )
    sender = "support+hd-26-00001.aXXXX@shop.example"
    for name, style in STYLES.items():
        body = parse_reply(style(notification, sender, "[HD-26-00001] 新しいお問い合わせ")).body
        assert body == AGENT_TEXT, name


@pytest.mark.parametrize("style", STYLES, ids=STYLES.keys())
async def test_an_agents_reply_never_carries_the_agents_link_to_the_customer(
    app: Starlette, client: httpx.AsyncClient, smtp_port: int, style: str
) -> None:
    helpdesk = app.state.helpdesk
    await helpdesk.tickets.add_agent(AGENT, "佐藤")
    ticket, notification, status_url = await _open_ticket(app, client)
    signed = helpdesk.tickets.access.reply_address(ticket, agents=True)
    assert AGENT_LINK.search(notification.text) and SIGNED_ADDRESS.search(signed)

    reply = EmailMessage()
    reply["From"] = f"佐藤 <{AGENT}>"
    reply["To"] = signed
    reply["Subject"] = f"Re: {notification.subject}"
    reply["Message-ID"] = make_msgid(domain="interiorltd.jp")
    reply["In-Reply-To"] = f"<{notification.message_id}>"
    reply.set_content(STYLES[style](notification.text, signed, notification.subject))
    await aiosmtplib.send(reply, hostname="127.0.0.1", port=smtp_port, recipients=[signed])

    [sent] = await _rows(app, Outbox, Outbox.kind == "agent_reply")
    assert sent.to_address == "hanako@example.jp"
    for text in (sent.text, sent.html or ""):
        assert not AGENT_LINK.search(text), text
        assert not SIGNED_ADDRESS.search(text), text
        assert "新しいお問い合わせが届きました" not in text
    for line in filter(None, AGENT_WORDS):
        assert line in sent.text
    [stored] = await _rows(app, Message, Message.ticket_id == ticket.id, Message.author == "agent")
    assert stored.body == AGENT_TEXT

    page = await client.get(status_url.removeprefix("http://testserver"))
    assert page.status_code == 200
    shown = BeautifulSoup(page.text, "html.parser")
    links = [a.get("href", "") for a in shown.find_all("a")]
    assert not any(AGENT_LINK.search(str(href)) for href in links)
    assert not AGENT_LINK.search(shown.get_text()) and not SIGNED_ADDRESS.search(page.text)
    for line in filter(None, AGENT_WORDS):
        assert line in shown.get_text()
