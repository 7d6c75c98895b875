"""Spam (issue 10 item 8): an agent marks a ticket as spam in the queue (or by #spam);
its sender's later mail is kept but opens no ticket and sends no mail; reversible."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from helpdesk.mail.inbound import SPAM_SENDER
from helpdesk.mail.reply import parse_reply
from helpdesk.models import (
    InboundMail,
    InboundStatus,
    Message,
    Outbox,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from helpdesk.tickets import Actor, Channel, MarkSpam, Reply
from tests.helpers import (
    SUPPORT,
    MailLoop,
    add_agent,
    api_inquiry,
    logged_in_client,
    mail,
    rows,
    soup,
    the_ticket,
)

SPAMMER = "Cheap Pills <offers@spam.example>"


async def press_spam_button(console: httpx.AsyncClient, reference: str, path: str) -> str:
    """Press the queue row's spam button (either way) on the page at ``path``; the page
    it leads back to."""
    page = soup(await console.get(path))
    [row] = [r for r in page.select("tr.ticket-row") if r["data-reference"] == reference]
    form = row.select_one("form")
    data = {i["name"]: i.get("value", "") for i in form.select("input[type=hidden]")}
    response = await console.post(str(form["action"]), data=data)
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


async def test_a_spam_senders_later_mail_is_kept_but_opens_no_ticket_and_sends_nothing(
    app: Starlette, mail_loop: MailLoop
) -> None:
    await mail_loop.send(mail(SPAMMER, SUPPORT, "今だけ90%オフ", "このリンクから購入できます。"))
    [ticket] = await rows(app, Ticket)
    assert await mail_loop.drain() == 2  # the confirmation and the agents' notice, as usual
    [confirmation] = mail_loop.to("offers@spam.example")

    async with logged_in_client(app) as console:
        back = await press_spam_button(console, ticket.reference, "/console")
        assert back.startswith("/console?") and "done=spam" in back
        after = soup(await console.get(back))
        assert ticket.reference in after.select_one(".notice").get_text()
        assert after.select("tr.ticket-row") == []  # hidden from the default queue
        shown = soup(await console.get("/console?spam=1&status=all"))
        [row] = shown.select("tr.ticket-row")
        assert row["data-reference"] == ticket.reference
        assert row.select_one(".badge.spam").get_text() == "迷惑メール"

    marked = await the_ticket(app, ticket.reference)
    assert marked.spam and marked.status == TicketStatus.new
    [event] = await rows(app, TicketEvent, TicketEvent.kind == "marked_spam")
    assert (event.ticket_id, event.actor) == (ticket.id, "tanaka@example.jp")

    # A new mail from the same sender: stored, no ticket, nothing sent.
    again = mail(SPAMMER, SUPPORT, "再送: 今だけ90%オフ", "まだ間に合います。")
    await mail_loop.send(again)
    assert len(await rows(app, Ticket)) == 1
    kept = await rows(app, InboundMail, InboundMail.subject == "再送: 今だけ90%オフ")
    assert [(m.status, m.outcome) for m in kept] == [(InboundStatus.ignored, SPAM_SENDER)]
    assert kept[0].message_id == str(again["Message-ID"]).strip("<>")
    assert str(again["Message-ID"]).encode() in kept[0].raw  # the raw mail as received
    # A reply in the thread of our confirmation: kept on the ticket, nobody told.
    await mail_loop.send(
        mail_loop.answer(confirmation, SPAMMER, "返信です。クリックしてください。")
    )
    messages = await rows(app, Message, Message.ticket_id == ticket.id)
    assert messages[-1].body.startswith("返信です")
    assert (await the_ticket(app, ticket.reference)).status == TicketStatus.new  # no reopen
    assert await mail_loop.drain() == 0

    # Reversible: unmarked, the sender's mail opens a ticket again.
    async with logged_in_client(app) as console:
        back = await press_spam_button(console, ticket.reference, "/console?spam=1&status=all")
        assert "done=unspam" in back
        assert ticket.reference in [
            r["data-reference"] for r in soup(await console.get("/console")).select("tr.ticket-row")
        ]
    assert not (await the_ticket(app, ticket.reference)).spam
    assert [e.kind for e in await rows(app, TicketEvent, TicketEvent.kind.like("%spam"))] == [
        "marked_spam",
        "unmarked_spam",
    ]
    await mail_loop.send(mail(SPAMMER, SUPPORT, "三通目", "本当のお問い合わせです。"))
    assert len(await rows(app, Ticket)) == 2
    assert await mail_loop.drain() == 2


async def test_an_agent_marks_spam_by_mail(app: Starlette, mail_loop: MailLoop) -> None:
    await add_agent(app)
    await mail_loop.send(mail(SPAMMER, SUPPORT, "広告", "広告です。"))
    [ticket] = await rows(app, Ticket)
    await mail_loop.drain()
    [notice] = mail_loop.to(SUPPORT)
    await mail_loop.send(mail_loop.answer(notice, "佐藤 <sato@interiorltd.jp>", "#迷惑メール"))
    assert (await the_ticket(app, ticket.reference)).spam
    assert await mail_loop.drain() == 0  # the spammer is told nothing
    assert (
        mail_loop.to("offers@spam.example")[-1]["Subject"]
        == (mail_loop.to("offers@spam.example")[0]["Subject"])
    )  # only the first confirmation ever went out
    await mail_loop.send(mail_loop.answer(notice, "佐藤 <sato@interiorltd.jp>", "#spam off"))
    assert not (await the_ticket(app, ticket.reference)).spam


def test_the_spam_command_words() -> None:
    assert parse_reply("#spam").commands == (MarkSpam(True),)
    assert parse_reply("#迷惑メール\n\n本文").commands == (MarkSpam(True), Reply("本文"))
    assert parse_reply("#spam off").commands == (MarkSpam(False),)
    assert parse_reply("#迷惑メール 解除").commands == (MarkSpam(False),)
    [error] = parse_reply("#spam maybe").errors
    assert "maybe" in error.message


async def test_a_form_from_a_spam_sender_is_kept_hidden_and_mails_nobody(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    agent = await add_agent(app)
    first = await api_inquiry(client, email="offers@spam.example")
    ticket = await the_ticket(app, first["reference"])
    before = len(await rows(app, Outbox))
    await app.state.helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), [MarkSpam()]
    )
    assert len(await rows(app, Outbox)) == before  # marking tells nobody
    second = await api_inquiry(client, email="offers@spam.example")
    again = await the_ticket(app, second["reference"])
    assert again.spam
    assert len(await rows(app, Outbox)) == before
    assert [e.kind for e in await rows(app, TicketEvent, TicketEvent.ticket_id == again.id)] == [
        "created",
        "spam_sender",
    ]
