"""No double answer by mail (二重対応防止, issue 10 item 5): an agent's mailed reply is held
while another agent's reply waits in the outbox, or when one was made after the mail the
agent answered; the agent is mailed the other answer and sends theirs with ``#confirm``.
The rule lives in ``TicketService.apply``, shared with the console."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from helpdesk.models import HeldReply, Outbox, OutboxStatus, TicketEvent
from helpdesk.tickets.commands import Actor, Assign, Channel, Merge, Reply
from tests.helpers import SUPPORT, MailLoop, add_agent, api_inquiry, rows, text_of, the_ticket

CUSTOMER = "hanako@example.jp"


async def _web_reply(app: Starlette, reference: str, body: str) -> None:
    """田中 answers in the console."""
    tickets = app.state.helpdesk.tickets
    tanaka = await tickets.add_agent("tanaka@example.jp", "田中")
    ticket = await the_ticket(app, reference)
    result = await tickets.apply(ticket, Actor.agent(tanaka, channel=Channel.web), [Reply(body)])
    assert result.ok


async def replies(app: Starlette) -> list[Outbox]:
    return await rows(app, Outbox, Outbox.kind == "agent_reply")


async def test_a_mailed_reply_while_another_waits_in_the_outbox_is_held_until_confirmed(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    sato = await add_agent(app)
    created = await api_inquiry(client)
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    await _web_reply(app, created["reference"], "田中です。本日発送しました。")
    [waiting] = await replies(app)
    assert waiting.status == OutboxStatus.queued  # not sent yet
    await mail_loop.send(mail_loop.answer(notification, sato.email, "佐藤です。確認します。"))
    # Held: no second answer queued; the agent is asked to confirm.
    assert len(await replies(app)) == 1
    [held] = await rows(app, HeldReply)
    assert held.released_at is None and held.agent_id == sato.id
    assert [e.actor for e in await rows(app, TicketEvent, TicketEvent.kind == "reply_held")] == [
        sato.email
    ]
    await mail_loop.drain()
    [notice] = mail_loop.to(sato.email)
    text = text_of(notice)
    assert "返信を保留しました" in str(notice["Subject"])
    assert "田中です。本日発送しました。" in text  # the other answer
    assert "佐藤です。確認します。" in text  # their own text, kept
    assert "#confirm" in text
    assert [text_of(m) for m in mail_loop.to(CUSTOMER) if "田中です" in text_of(m)]
    assert not [m for m in mail_loop.to(CUSTOMER) if "佐藤です" in text_of(m)]
    # Confirmed: the held reply leaves, once.
    await mail_loop.send(mail_loop.answer(notice, sato.email, "#confirm"))
    sent = await replies(app)
    assert len(sent) == 2 and "佐藤です。確認します。" in sent[-1].text
    [held] = await rows(app, HeldReply)
    assert held.released_at is not None
    # A second #confirm finds nothing held: told so, nothing sent.
    await mail_loop.send(mail_loop.answer(notice, sato.email, "#送信"))
    assert len(await replies(app)) == 2
    await mail_loop.drain()
    assert "確認を待っている返信はありません" in text_of(mail_loop.to(sato.email)[-1])


async def test_a_reply_sent_after_the_answered_notification_holds_too(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    sato = await add_agent(app)
    created = await api_inquiry(client)
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    await _web_reply(app, created["reference"], "田中です。発送済みです。")
    await mail_loop.drain()  # 田中's answer has left
    assert [r.status for r in await replies(app)] == [OutboxStatus.sent]
    await mail_loop.send(mail_loop.answer(notification, sato.email, "佐藤です。"))
    assert len(await replies(app)) == 1
    await mail_loop.drain()
    [notice] = mail_loop.to(sato.email)
    # Confirmed with a new text: that text leaves instead of the held one.
    body = "#confirm\n\n佐藤です。田中の案内に補足します。"
    await mail_loop.send(mail_loop.answer(notice, sato.email, body))
    sent = await replies(app)
    assert len(sent) == 2
    assert "田中の案内に補足します" in sent[-1].text and "佐藤です。\n" not in sent[-1].text


async def test_a_mailed_reply_with_nothing_new_leaves_at_once(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    sato = await add_agent(app)
    await api_inquiry(client)
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    await mail_loop.send(mail_loop.answer(notification, sato.email, "佐藤です。"))
    assert len(await replies(app)) == 1
    assert await rows(app, HeldReply) == []


async def test_the_confirmation_holds_again_when_yet_another_answer_came(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    sato = await add_agent(app)
    created = await api_inquiry(client)
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    await _web_reply(app, created["reference"], "田中です(1回目)。")
    await mail_loop.send(mail_loop.answer(notification, sato.email, "佐藤です。"))
    await mail_loop.drain()
    [notice] = mail_loop.to(sato.email)
    await _web_reply(app, created["reference"], "田中です(2回目)。")  # after the notice
    await mail_loop.send(mail_loop.answer(notice, sato.email, "#confirm"))
    assert len(await replies(app)) == 2  # 田中's two; 佐藤's still held
    await mail_loop.drain()
    again = mail_loop.to(sato.email)[-1]
    assert "田中です(2回目)。" in text_of(again) and "佐藤です。" in text_of(again)
    held = await rows(app, HeldReply)
    assert [h.released_at is None for h in held] == [False, True]


async def test_mail_to_a_merged_duplicate_goes_on_in_the_ticket_it_was_merged_into(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    sato = await add_agent(app)
    first = await api_inquiry(client)
    duplicate = await api_inquiry(client, description="二重に送ってしまいました。")
    await mail_loop.drain()
    confirmation = next(
        m for m in mail_loop.to(CUSTOMER) if duplicate["reference"] in str(m["Subject"])
    )
    tickets = app.state.helpdesk.tickets
    ticket = await the_ticket(app, duplicate["reference"])
    result = await tickets.apply(
        ticket, Actor.agent(sato, channel=Channel.mail), [Merge(first["reference"])]
    )
    assert result.ok
    await mail_loop.send(mail_loop.answer(confirmation, CUSTOMER, "写真を追加で送ります。"))
    target = await the_ticket(app, first["reference"])
    events = await rows(app, TicketEvent, TicketEvent.kind == "customer_message")
    assert [e.ticket_id for e in events] == [target.id]


async def test_a_mailed_reply_after_another_agent_took_the_ticket_is_held(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    sato = await add_agent(app)
    created = await api_inquiry(client)
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    tickets = app.state.helpdesk.tickets
    tanaka = await tickets.add_agent("tanaka@example.jp", "田中")
    ticket = await the_ticket(app, created["reference"])
    actor = Actor.agent(tanaka, channel=Channel.web)
    assert (await tickets.apply(ticket, actor, [Assign("田中")])).ok
    await mail_loop.send(mail_loop.answer(notification, sato.email, "佐藤です。"))
    assert await replies(app) == []
    await mail_loop.drain()
    [notice] = mail_loop.to(sato.email)
    assert "田中が担当者を tanaka@example.jp にしました。" in text_of(notice)
