"""Strangers never reach the customer (issue 8, item 3; issue 7, item 12), over real SMTP.

A message not known to be the customer's is held for agents as 「未確認」 with its sender:
never on the customer's page, JSON or mail, running no command, reopening nothing, until an
agent accepts it (``AcceptMessage``, by mail 「#承認 N」).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from helpdesk.models import Message, Outbox, Ticket, TicketEvent, TicketStatus, Trust
from helpdesk.tickets import AcceptMessage, Actor, Reply
from helpdesk.tickets.service import not_acceptable
from tests import imaging
from tests.helpers import (
    SUPPORT,
    MailLoop,
    add_agent,
    api_inquiry,
    logged_in_client,
    mail,
    reply_address,
    rows,
    soup,
    submit_inquiry,
    text_of,
    the_ticket,
)

CUSTOMER = "hanako@example.jp"


async def set_status(app: Starlette, ticket: Ticket, status: TicketStatus) -> None:
    async with app.state.helpdesk.sessions() as session:
        stored = await session.get(Ticket, ticket.id)
        stored.status = status
        await session.commit()


async def customer_view(client: httpx.AsyncClient, created: dict[str, Any]) -> tuple[str, str]:
    """What the customer reads: their status page (its status and conversation) and its
    JSON, as text."""
    url = httpx.URL(created["status_url"])
    page = await client.get(url.path, params=dict(url.params))
    as_json = await client.get(
        url.path, params=dict(url.params), headers={"Accept": "application/json"}
    )
    assert page.status_code == as_json.status_code == 200
    shown = soup(page)
    return str(shown.select_one("dl.status")) + str(shown.select_one(".conversation")), (
        as_json.text
    )


async def agents_page(app: Starlette, client: httpx.AsyncClient, reference: str) -> Any:
    """The ticket in the console, as a logged-in agent sees it."""
    ticket = await the_ticket(app, reference)
    async with logged_in_client(app) as console:
        return soup(await console.get(app.state.helpdesk.tickets.urls.agent(ticket)))


async def test_an_unregistered_colleagues_reply_is_held_and_runs_no_command(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    await add_agent(app)  # 佐藤 is registered; 鈴木, who answers, is not
    created = await api_inquiry(client)
    reference = created["reference"]
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    body = "#担当 佐藤\n#ステータス 保留\n\n山田様、お問い合わせの件は確認中です。"
    await mail_loop.send(mail_loop.answer(notification, "鈴木 <suzuki@interiorltd.jp>", body))

    ticket = await the_ticket(app, reference)
    assert (ticket.status, ticket.assignee_id) == (TicketStatus.new, None)  # no command ran
    [_, held] = await rows(app, Message, Message.ticket_id == ticket.id)
    assert (held.trust, held.sender) == (Trust.unregistered, "suzuki@interiorltd.jp")
    assert "#担当 佐藤" in held.body  # kept as sent, for the agents
    page, as_json = await customer_view(client, created)
    for text in (page, as_json):
        assert "確認中です" not in text and "#担当" not in text and "suzuki" not in text
    assert await mail_loop.drain() == 1  # the agents are told; the customer gets nothing
    assert len(mail_loop.to(CUSTOMER)) == 1  # the confirmation only
    told = mail_loop.to(SUPPORT)[-1]
    assert "suzuki@interiorltd.jp" in str(told["Subject"])
    assert "main.py agent add suzuki@interiorltd.jp" in text_of(told)

    # The agents see it, marked, with its sender: never as the customer's.
    [marked] = (await agents_page(app, client, reference)).select(".message.unverified")
    assert "未確認: suzuki@interiorltd.jp" in marked.select_one(".meta").get_text()
    assert "お客様" not in marked.select_one(".meta").get_text()

    # Told once per sender, not per message.
    again = mail_loop.answer(notification, "suzuki@interiorltd.jp", "#ステータス 完了")
    await mail_loop.send(again)
    assert len(await rows(app, Message, Message.ticket_id == ticket.id)) == 3
    assert await mail_loop.drain() == 0
    assert (await the_ticket(app, reference)).status == TicketStatus.new


async def test_a_forged_from_with_the_subject_tag_is_held_until_an_agent_accepts_it(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    await add_agent(app)
    created = await api_inquiry(client)
    reference = created["reference"]
    ticket = await the_ticket(app, reference)
    await set_status(app, ticket, TicketStatus.closed)
    await mail_loop.drain()
    before = await customer_view(client, created)

    # Anyone can write the customer's address in From and the reference in the subject.
    forged = mail(CUSTOMER, SUPPORT, f"Re: [{reference}] 返金先", "返金は次の口座にお願いします。")
    await mail_loop.send(forged)
    [_, held] = await rows(app, Message, Message.ticket_id == ticket.id)
    assert held.trust == Trust.weak_thread
    assert (await the_ticket(app, reference)).status == TicketStatus.closed  # not reopened
    assert await customer_view(client, created) == before  # nothing the customer sees changed
    assert await mail_loop.drain() == 1
    [notice] = [m for m in mail_loop.to(SUPPORT) if "未確認" in str(m["Subject"])]
    assert f"#承認 {held.id}" in text_of(notice) and "返金は次の口座に" in text_of(notice)

    # An agent accepts it by answering the notice: the customer's message now, reopened.
    await mail_loop.send(mail_loop.answer(notice, "佐藤 <sato@interiorltd.jp>", f"#承認 {held.id}"))
    accepted = (await rows(app, Message, Message.id == held.id))[0]
    assert accepted.trust == Trust.verified
    assert (await the_ticket(app, reference)).status == TicketStatus.open
    page, as_json = await customer_view(client, created)
    assert "返金は次の口座に" in page and "返金は次の口座に" in as_json
    events = [e.kind for e in await rows(app, TicketEvent, TicketEvent.ticket_id == ticket.id)]
    assert "message_held" in events and "message_accepted" in events


async def test_someone_else_on_the_customers_address_is_a_third_party(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    created = await api_inquiry(client)
    ticket = await the_ticket(app, created["reference"])
    await set_status(app, ticket, TicketStatus.resolved)
    address = await reply_address(app, created["reference"])
    message = mail("夫 <taro@example.jp>", address, "Re: 件名", "妻に代わって連絡します。")
    message.add_attachment(
        imaging.jpeg(gps=True), maintype="image", subtype="jpeg", filename="写真.jpg"
    )
    await mail_loop.send(message, to=[address])
    [_, held] = await rows(app, Message, Message.ticket_id == ticket.id)
    assert (held.trust, held.sender, held.author_name) == (
        Trust.third_party,
        "taro@example.jp",
        "夫",
    )
    assert (await the_ticket(app, created["reference"])).status == TicketStatus.resolved
    page, as_json = await customer_view(client, created)
    assert "妻に代わって" not in page and "妻に代わって" not in as_json
    # Its photo is the agents' to see, not served on the customer's side.
    conversation = await app.state.helpdesk.tickets.conversation(ticket, internal=True)
    [photo] = conversation[-1][1]
    urls = app.state.helpdesk.tickets.urls
    assert (await client.get(urls.photo(ticket, photo.digest))).status_code == 404
    assert (await client.get(urls.agent_photo(ticket, photo.digest))).status_code == 303
    async with logged_in_client(app) as console:
        assert (await console.get(urls.agent_photo(ticket, photo.digest))).status_code == 200


async def test_the_customers_own_mail_is_verified_and_reopens(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    created = await api_inquiry(client)
    ticket = await the_ticket(app, created["reference"])
    await set_status(app, ticket, TicketStatus.resolved)
    address = await reply_address(app, created["reference"])
    answer = mail(f"山田 <{CUSTOMER}>", address, "Re:", "まだ届きません。")
    await mail_loop.send(answer, to=[address])
    [_, message] = await rows(app, Message, Message.ticket_id == ticket.id)
    assert message.trust == Trust.verified and message.author_name == "山田 花子"
    assert (await the_ticket(app, created["reference"])).status == TicketStatus.open
    assert "まだ届きません。" in (await customer_view(client, created))[0]


async def test_accepting_through_the_core_checks_what_it_accepts(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    other = await submit_inquiry(app, email="ichiro@example.jp")
    await set_status(app, ticket, TicketStatus.pending)
    held = await tickets.add_customer_message(
        ticket, "追記です", {}, sender=CUSTOMER, trust=Trust.weak_thread
    )
    [first] = await rows(app, Message, Message.ticket_id == ticket.id, Message.id != held.id)
    [elsewhere] = await rows(app, Message, Message.ticket_id == other.id)
    actor = Actor.agent(agent, channel="web")

    for wrong in (first.id, elsewhere.id, 999_999):
        result = await tickets.apply(ticket, actor, [AcceptMessage(wrong)])
        assert result.problems == (not_acceptable(wrong),)
    result = await tickets.apply(ticket, actor, [AcceptMessage(held.id), Reply("承知しました。")])
    assert result.ok
    assert (await the_ticket(app, ticket.reference)).status == TicketStatus.open
    [accepted] = await rows(app, Message, Message.id == held.id)
    assert accepted.trust == Trust.verified
    assert [o.kind for o in await rows(app, Outbox, Outbox.ticket_id == ticket.id)][-1] == (
        "agent_reply"
    )
    again = await tickets.apply(ticket, actor, [AcceptMessage(held.id)])
    assert again.problems == (not_acceptable(held.id),)  # accepted once


@pytest.mark.parametrize(
    ("via", "sender", "is_agent", "act", "trust"),
    [
        ("agents_address", "sato@interiorltd.jp", True, "agent", "verified"),
        ("our_mail_to_agents", "sato@interiorltd.jp", True, "agent", "verified"),
        ("agents_address", "suzuki@interiorltd.jp", False, "customer", "unregistered"),
        ("agents_address", CUSTOMER, False, "customer", "unregistered"),
        ("customer_address", CUSTOMER, False, "customer", "verified"),
        ("customer_address", "HANAKO@Example.jp", False, "customer", "verified"),
        ("our_mail_to_customer", CUSTOMER, False, "customer", "verified"),
        ("customer_address", "sato@interiorltd.jp", True, "customer", "third_party"),
        ("our_mail_to_customer", "taro@example.jp", False, "customer", "third_party"),
        ("subject", CUSTOMER, False, "customer", "weak_thread"),
        ("other_mail", CUSTOMER, False, "customer", "weak_thread"),
        ("other_mail", "taro@example.jp", False, "customer", "third_party"),
    ],
)
def test_what_a_mail_may_do_follows_how_it_came_and_who_sent_it(
    via: str, sender: str, is_agent: bool, act: str, trust: str
) -> None:
    from helpdesk.mail.inbound import Via, decide

    decision = decide(Via(via), sender=sender, customer_email=CUSTOMER, is_agent=is_agent)
    assert (decision.act, decision.trust) == (act, trust)
