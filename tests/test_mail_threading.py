"""Threads that hold (issue 8, item 4), over real SMTP.

Every mail to the customer about a ticket carries In-Reply-To (the latest mail of the
conversation, ours or theirs) and References (its first and last ten), under one subject
form: 「[HD-26-00042] 件名」, 「Re: 」 once the conversation has begun. The customer's answer
to any of them threads by those ids (even sent to the shop's plain address) and reopens.
"""

from __future__ import annotations

from email.message import EmailMessage

import httpx
from starlette.applications import Starlette

from helpdesk.models import Message, Outbox, Ticket, TicketStatus, Trust
from helpdesk.tickets import Actor, Reply, SetStatus
from helpdesk.tickets.notify import REFERENCES_KEPT, customer_subject, thread_headers
from tests.helpers import (
    SUPPORT,
    MailLoop,
    add_agent,
    api_defect,
    mail,
    rows,
    submit_inquiry,
    text_of,
    the_ticket,
)

CUSTOMER = "hanako@example.jp"


def ids(message: EmailMessage, header: str) -> list[str]:
    return [i.strip("<>") for i in str(message.get(header, "")).split()]


async def test_every_customer_mail_threads_and_the_answer_reopens(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    agent = await add_agent(app)
    created = await api_defect(client, app)
    reference = created["reference"]
    ticket = await the_ticket(app, reference)
    await mail_loop.drain()
    [confirmation] = mail_loop.to(CUSTOMER)
    subject = f"[{reference}] 不良品(注文番号 #1234)"
    assert str(confirmation["Subject"]) == subject
    assert "In-Reply-To" not in confirmation and "References" not in confirmation

    # The agent answers and resolves.
    [notification] = mail_loop.to(SUPPORT)
    answer = "#status resolved\n\n交換品を発送いたしました。"
    await mail_loop.send(mail_loop.answer(notification, f"佐藤 <{agent.email}>", answer))
    await mail_loop.drain()
    [_, reply] = mail_loop.to(CUSTOMER)
    assert str(reply["Subject"]) == f"Re: {subject}"
    assert ids(reply, "In-Reply-To") == ids(confirmation, "Message-ID")
    assert ids(reply, "References") == ids(confirmation, "Message-ID")

    # The customer answers it, to the shop's plain address (their mailer dropped the
    # Reply-To): our Message-ID threads it, and the resolved ticket opens again.
    assert (await the_ticket(app, reference)).status == TicketStatus.resolved
    theirs = mail(
        f"山田 花子 <{CUSTOMER}>",
        SUPPORT,
        f"Re: {reply['Subject']}",
        "届いた商品も傷がありました。",
        In_Reply_To=str(reply["Message-ID"]),
        References=f"{confirmation['Message-ID']} {reply['Message-ID']}",
    )
    await mail_loop.send(theirs)
    assert (await the_ticket(app, reference)).status == TicketStatus.open
    [*_, message] = await rows(app, Message, Message.ticket_id == ticket.id)
    assert message.trust == Trust.verified and message.body == "届いた商品も傷がありました。"

    # The next mail to the customer follows their answer.
    result = await app.state.helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel="web"), [SetStatus(TicketStatus.pending)]
    )
    assert result.ok
    await mail_loop.drain()
    status_mail = mail_loop.to(CUSTOMER)[-1]
    assert str(status_mail["Subject"]) == f"Re: {subject}"
    assert "お客様のご返信待ち" in text_of(status_mail)
    assert ids(status_mail, "In-Reply-To") == ids(theirs, "Message-ID")
    assert ids(status_mail, "References") == [
        *ids(confirmation, "Message-ID"),
        *ids(reply, "Message-ID"),
        *ids(theirs, "Message-ID"),
    ]


async def test_a_ticket_made_by_mail_answers_under_the_customers_subject(
    app: Starlette, mail_loop: MailLoop
) -> None:
    first = mail(f"山田 <{CUSTOMER}>", SUPPORT, "Fwd: Re: 請求書の再発行", "再発行をお願いします")
    await mail_loop.send(first)
    await mail_loop.drain()
    [confirmation] = mail_loop.to(CUSTOMER)
    [ticket] = await rows(app, Ticket)
    assert ticket.subject == "請求書の再発行"
    assert str(confirmation["Subject"]) == f"Re: [{ticket.reference}] 請求書の再発行"
    assert ids(confirmation, "In-Reply-To") == ids(first, "Message-ID")
    assert ids(confirmation, "References") == ids(first, "Message-ID")


async def test_references_keep_the_first_and_the_last_ten(app: Starlette) -> None:
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    actor = Actor.agent(agent, channel="web")
    for number in range(15):
        assert (await app.state.helpdesk.tickets.apply(ticket, actor, [Reply(f"{number}")])).ok
    mails = [
        o
        for o in await rows(app, Outbox, Outbox.ticket_id == ticket.id)
        if o.to_address == CUSTOMER
    ]
    assert len(mails) == 16
    last, earlier = mails[-1], [m.message_id for m in mails[:-1]]
    assert last.in_reply_to == earlier[-1]
    assert last.references.split() == [earlier[0], *earlier[-REFERENCES_KEPT:]]
    assert {m.subject for m in mails[1:]} == {f"Re: {customer_subject(ticket, reply=False)}"}


def test_thread_headers() -> None:
    assert thread_headers([]) == (None, [])
    assert thread_headers(["a"]) == ("a", ["a"])
    many = [f"m{i}" for i in range(20)]
    assert thread_headers(many) == ("m19", ["m0", *many[-REFERENCES_KEPT:]])


async def test_an_agent_whose_mailer_ignores_reply_to_still_acts(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    """Answers sent to the shop's plain address thread by our Message-ID: a notification
    to the agents' inbox, or an error mail to an agent, is the agents' channel."""
    agent = await add_agent(app)
    created = await api_defect(client, app)
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    wrong = mail(
        agent.email, SUPPORT, "Re:", "#statu resolved", In_Reply_To=notification["Message-ID"]
    )
    await mail_loop.send(wrong)
    await mail_loop.drain()
    [error] = mail_loop.to(agent.email)
    fixed = mail(
        agent.email,
        SUPPORT,
        "Re:",
        "#status resolved\n\n発送しました。",
        In_Reply_To=error["Message-ID"],
    )
    await mail_loop.send(fixed)
    assert (await the_ticket(app, created["reference"])).status == TicketStatus.resolved
    await mail_loop.drain()
    assert "発送しました。" in text_of(mail_loop.to(CUSTOMER)[-1])
