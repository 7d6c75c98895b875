"""Approval before sending (承認, issue 10 #7): the replies of an agent who needs approval,
from the console or by mail, wait in the command core until an admin approves (perhaps
edited) or rejects them; approved, they leave once, threaded and audited like any reply."""

from __future__ import annotations

import asyncio
import json

import httpx
from starlette.applications import Starlette

from helpdesk.db import utcnow
from helpdesk.models import (
    Agent,
    AgentRole,
    Author,
    Message,
    Outbox,
    PendingReply,
    PendingState,
    TicketEvent,
    TicketStatus,
)
from helpdesk.tickets import Actor, Assign, Channel, Reply, SetStatus
from helpdesk.tickets.service import OWN_REPLY, already_decided
from tests.helpers import (
    SUPPORT,
    MailLoop,
    api_inquiry,
    console_agent,
    rows,
    submit_inquiry,
    text_of,
    the_ticket,
)

CUSTOMER = "hanako@example.jp"
ANSWER = "お問い合わせの商品は明日発送いたします。"


async def part_timer(app: Starlette, email: str = "arbeit@interiorltd.jp") -> Agent:
    """An agent whose replies need approval (set by an admin, as the console does)."""
    accounts = app.state.helpdesk.accounts
    agent, _token = await accounts.add(email, "バイト")
    owner = await admin(app, "owner@interiorltd.jp")
    return await accounts.set_needs_approval(agent.id, True, by=owner)  # type: ignore[no-any-return]


async def admin(app: Starlette, email: str = "boss@interiorltd.jp") -> Agent:
    agent, _token = await app.state.helpdesk.accounts.add(email, "店長", role=AgentRole.admin)
    return agent  # type: ignore[no-any-return]


async def to_customer(app: Starlette) -> list[Outbox]:
    return await rows(app, Outbox, Outbox.to_address == CUSTOMER, Outbox.kind == "agent_reply")


async def agent_messages(app: Starlette) -> list[Message]:
    return await rows(app, Message, Message.author == Author.agent)


async def status_page(app: Starlette, client: httpx.AsyncClient, reference: str) -> str:
    ticket = await the_ticket(app, reference)
    token = app.state.helpdesk.tickets.access.access_token(ticket)
    response = await client.get(f"/t/{reference}", params={"token": token})
    assert response.status_code == 200
    return response.text


async def test_a_console_reply_waits_and_the_customer_sees_nothing(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    tickets = app.state.helpdesk.tickets
    agent = await part_timer(app)
    ticket = await submit_inquiry(app)
    result = await tickets.apply(
        ticket,
        Actor.agent(agent, channel=Channel.web),
        [Reply(ANSWER), SetStatus(TicketStatus.resolved), Assign(agent.email)],
    )
    assert result.ok and result.awaiting_approval is not None
    [pending] = await rows(app, PendingReply)
    assert (pending.id, pending.body, pending.state) == (
        result.awaiting_approval,
        ANSWER,
        PendingState.pending,
    )
    assert pending.status == TicketStatus.resolved  # waits with the reply that tells it
    # Nothing left: no message, no mail to the customer, the status unchanged; the
    # assignment (internal) applied.
    assert await agent_messages(app) == []
    assert await to_customer(app) == []
    assert (
        await rows(app, Outbox, Outbox.to_address == CUSTOMER, Outbox.kind != "ticket_confirmation")
        == []
    )
    current = await the_ticket(app, ticket.reference)
    assert current.status == TicketStatus.new and current.assignee_id == agent.id
    assert current.first_replied_at is None
    assert ANSWER not in await status_page(app, client, ticket.reference)
    [event] = await rows(app, TicketEvent, TicketEvent.kind == "reply_awaiting_approval")
    assert event.actor == agent.email and json.loads(event.data)["pending"] == pending.id
    # From the console the agent sees it on the page: no mail to them. The admins are told.
    assert await rows(app, Outbox, Outbox.to_address == agent.email) == []
    [told] = await rows(app, Outbox, Outbox.kind == "approval_requested")
    assert told.to_address == "owner@interiorltd.jp" and ANSWER in told.text
    assert "http://testserver/console/approvals" in told.text and "バイト" in told.subject


async def test_an_agent_who_needs_no_approval_replies_at_once(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    agent, _ = await app.state.helpdesk.accounts.add("sato@interiorltd.jp", "佐藤")
    ticket = await submit_inquiry(app)
    result = await tickets.apply(ticket, Actor.agent(agent, channel=Channel.web), [Reply(ANSWER)])
    assert result.ok and result.awaiting_approval is None
    assert len(await to_customer(app)) == 1 and await rows(app, PendingReply) == []


async def test_approval_sends_once_threaded_and_audited(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    tickets = app.state.helpdesk.tickets
    agent, boss = await part_timer(app), await admin(app)
    ticket = await submit_inquiry(app)
    held = await tickets.apply(
        ticket,
        Actor.agent(agent, channel=Channel.web),
        [Reply(ANSWER), SetStatus(TicketStatus.resolved)],
    )
    approved = await tickets.approve_reply(held.awaiting_approval, boss)
    assert approved.ok
    [mail] = await to_customer(app)
    assert ANSWER in mail.text and mail.in_reply_to  # threaded like any reply
    assert "解決済み" in mail.text  # the status set with it, told in the same mail
    [message] = await agent_messages(app)
    assert message.body == ANSWER and message.author_name == agent.name
    current = await the_ticket(app, ticket.reference)
    assert current.status == TicketStatus.resolved and current.first_replied_at is not None
    [pending] = await rows(app, PendingReply)
    assert pending.state == PendingState.approved and pending.decided_by == boss.email
    assert not pending.edited
    [reply_event] = await rows(app, TicketEvent, TicketEvent.kind == "agent_reply")
    assert reply_event.actor == agent.email  # the author's reply ...
    [approval] = await rows(app, TicketEvent, TicketEvent.kind == "reply_approved")
    assert approval.actor == boss.email  # ... approved by the admin
    assert json.loads(approval.data) == {
        "pending": pending.id,
        "author": agent.email,
        "edited": False,
    }
    assert ANSWER in await status_page(app, client, ticket.reference)
    [told] = await rows(app, Outbox, Outbox.to_address == agent.email)
    assert told.kind == "approval_approved" and "承認し、お客様に送信しました" in told.text

    # Approving again (a double click, another admin) sends nothing more.
    again = await tickets.approve_reply(pending.id, boss)
    assert again.problems == (already_decided(PendingState.approved),)
    assert len(await to_customer(app)) == 1 and len(await agent_messages(app)) == 1


async def test_two_approvals_at_once_send_once(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    agent, boss, other = (
        await part_timer(app),
        await admin(app),
        await admin(app, "vice@interiorltd.jp"),
    )
    ticket = await submit_inquiry(app)
    held = await tickets.apply(ticket, Actor.agent(agent, channel=Channel.web), [Reply(ANSWER)])
    results = await asyncio.gather(
        tickets.approve_reply(held.awaiting_approval, boss),
        tickets.approve_reply(held.awaiting_approval, other),
    )
    assert sorted(r.ok for r in results) == [False, True]
    assert len(await to_customer(app)) == 1 and len(await agent_messages(app)) == 1


async def test_edit_and_approve_sends_the_edited_text(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    agent, boss = await part_timer(app), await admin(app)
    ticket = await submit_inquiry(app)
    held = await tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), [Reply("明日発送しまーす")]
    )
    edited = "山田 花子 様\n\nご注文の商品は、明日発送いたします。"
    assert (await tickets.approve_reply(held.awaiting_approval, boss, body=edited)).ok
    [mail] = await to_customer(app)
    assert "ご注文の商品は、明日発送いたします。" in mail.text and "しまーす" not in mail.text
    [message] = await agent_messages(app)
    assert message.body == edited
    [pending] = await rows(app, PendingReply)
    assert pending.edited and pending.body == "明日発送しまーす"  # the original is kept
    [approval] = await rows(app, TicketEvent, TicketEvent.kind == "reply_approved")
    assert json.loads(approval.data)["edited"] is True


async def test_an_edit_is_checked_like_any_reply(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    agent, boss = await part_timer(app), await admin(app)
    ticket = await submit_inquiry(app)
    held = await tickets.apply(ticket, Actor.agent(agent, channel=Channel.web), [Reply(ANSWER)])
    empty = await tickets.approve_reply(held.awaiting_approval, boss, body="  ")
    assert empty.problems == ("お客様への返信の本文を入力してください。",)
    marked = await tickets.approve_reply(
        held.awaiting_approval, boss, body="返品期限は【要入力: 返品期限】です。"
    )
    assert "【要入力: 返品期限】" in marked.problems[0]
    assert await to_customer(app) == []
    [pending] = await rows(app, PendingReply)
    assert pending.state == PendingState.pending  # still waiting: nothing decided


async def test_reject_sends_nothing_and_tells_the_author(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    tickets = app.state.helpdesk.tickets
    agent, boss = await part_timer(app), await admin(app)
    ticket = await submit_inquiry(app)
    held = await tickets.apply(ticket, Actor.agent(agent, channel=Channel.web), [Reply(ANSWER)])
    assert (
        await tickets.reject_reply(held.awaiting_approval, boss, reason="発送日を確認してください")
    ).ok
    assert await to_customer(app) == [] and await agent_messages(app) == []
    assert ANSWER not in await status_page(app, client, ticket.reference)
    [pending] = await rows(app, PendingReply)
    assert pending.state == PendingState.rejected and pending.reason == "発送日を確認してください"
    [told] = await rows(app, Outbox, Outbox.to_address == agent.email)
    assert told.kind == "approval_rejected" and "発送日を確認してください" in told.text
    assert [
        e.actor for e in await rows(app, TicketEvent, TicketEvent.kind == "reply_rejected")
    ] == [boss.email]
    # Decided: it can be neither approved nor rejected again.
    late = await tickets.approve_reply(pending.id, boss)
    assert late.problems == (already_decided(PendingState.rejected),)
    assert await to_customer(app) == []


async def test_only_another_admin_decides(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    accounts = app.state.helpdesk.accounts
    boss = await admin(app)
    # An admin who needs approval does not approve their own reply.
    boss = await accounts.set_needs_approval(
        boss.id, True, by=await admin(app, "vice@interiorltd.jp")
    )
    colleague, _ = await accounts.add("sato@interiorltd.jp", "佐藤")
    ticket = await submit_inquiry(app)
    held = await tickets.apply(ticket, Actor.agent(boss, channel=Channel.web), [Reply(ANSWER)])
    assert (await tickets.approve_reply(held.awaiting_approval, boss)).problems == (OWN_REPLY,)
    refused = await tickets.approve_reply(held.awaiting_approval, colleague)
    assert refused.problems and "管理者だけ" in refused.problems[0]
    assert (await tickets.reject_reply(held.awaiting_approval, colleague)).problems
    assert await to_customer(app) == []


async def test_a_mailed_reply_waits_and_leaves_once_approved(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    agent = await part_timer(app)
    boss = await admin(app)
    created = await api_inquiry(client)
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    answer = mail_loop.answer(notification, agent.email, f"#ステータス 解決済み\n\n{ANSWER}")
    await mail_loop.send(answer)
    await mail_loop.send(answer)  # the same mail delivered twice waits once
    await mail_loop.drain()
    assert len(mail_loop.to(CUSTOMER)) == 1  # the confirmation only
    assert await to_customer(app) == []
    [told] = mail_loop.to(agent.email)
    assert "承認待ち" in told["Subject"] and ANSWER in text_of(told)
    [pending] = await rows(app, PendingReply)
    assert pending.channel == "mail" and pending.status == TicketStatus.resolved
    ticket = await the_ticket(app, created["reference"])
    assert ticket.status == TicketStatus.new
    assert ANSWER not in await status_page(app, client, ticket.reference)

    assert (await app.state.helpdesk.tickets.approve_reply(pending.id, boss)).ok
    assert (await app.state.helpdesk.tickets.approve_reply(pending.id, boss)).problems
    await mail_loop.drain()
    customer_mails = mail_loop.to(CUSTOMER)
    assert len(customer_mails) == 2 and ANSWER in text_of(customer_mails[-1])
    # In the customer's thread: an answer to the confirmation.
    assert customer_mails[-1]["In-Reply-To"] == customer_mails[0]["Message-ID"]
    assert (await the_ticket(app, ticket.reference)).status == TicketStatus.resolved
    assert ANSWER in await status_page(app, client, ticket.reference)
    assert "送信されました" in mail_loop.to(agent.email)[-1]["Subject"]


async def test_setting_who_needs_approval_is_for_admins_and_audited(app: Starlette) -> None:
    accounts = app.state.helpdesk.accounts
    agent = await console_agent(app)
    boss = await admin(app)
    from helpdesk.agents import AccountError

    try:
        await accounts.set_needs_approval(agent.id, True, by=agent)
    except AccountError as exc:
        assert "管理者だけ" in str(exc)
    else:
        raise AssertionError("a plain agent changed who needs approval")
    assert (await accounts.set_needs_approval(agent.id, True, by=boss)).needs_approval
    assert not (await accounts.set_needs_approval(agent.id, False, by=boss)).needs_approval
    await accounts.set_needs_approval(agent.id, False, by=boss)  # unchanged: no event
    kinds = [e.kind for e in await accounts.events() if e.kind.startswith("agent_approval")]
    assert kinds == ["agent_approval_lifted", "agent_approval_required"]


async def test_a_merged_ticket_takes_its_waiting_replies_along(app: Starlette) -> None:
    from helpdesk.tickets.commands import Merge

    tickets = app.state.helpdesk.tickets
    agent, boss = await part_timer(app), await admin(app)
    kept = await submit_inquiry(app)
    duplicate = await submit_inquiry(app, description="まだ届きません(2回目)")
    held = await tickets.apply(duplicate, Actor.agent(agent, channel=Channel.web), [Reply(ANSWER)])
    merged = await tickets.apply(
        duplicate, Actor.agent(boss, channel=Channel.web), [Merge(kept.reference)]
    )
    assert merged.ok, merged.problems
    [pending] = await rows(app, PendingReply)
    assert pending.ticket_id == kept.id
    # The merge came while the reply waited: the admin is shown it first (二重対応防止),
    # then approves it after all.
    asked = await tickets.approve_reply(held.awaiting_approval, boss)
    assert asked.conflict and [e.kind for e in asked.changes] == ["merged"]
    assert await to_customer(app) == []
    assert (await tickets.approve_reply(held.awaiting_approval, boss, seen_at=utcnow())).ok
    [mail] = await to_customer(app)
    assert mail.ticket_id == kept.id and f"[{kept.reference}]" in mail.subject
