"""``TicketService.apply``: agents' commands through mail and the console alike."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest
from starlette.applications import Starlette

from helpdesk.mail.reply import parse_reply
from helpdesk.models import (
    Agent,
    CsatResponse,
    Message,
    Outbox,
    Priority,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from helpdesk.tickets import (
    Actor,
    AddNote,
    Assign,
    Command,
    Reply,
    SetPriority,
    SetStatus,
    version_of,
)
from helpdesk.tickets.service import CONFLICT
from tests.helpers import SUPPORT, add_agent, mail, rows, submit_inquiry, the_ticket

# Mails that make tickets: only what the agents' commands queue is compared.
CREATION_MAILS = ("ticket_confirmation", "ticket_notification")


async def state(app: Starlette, ticket: Ticket) -> dict[str, Any]:
    """What an agent's change leaves, with this ticket's reference, links and addresses
    replaced by placeholders so that two tickets' states compare."""
    tickets = app.state.helpdesk.tickets
    current = await the_ticket(app, ticket.reference)
    placeholders = {
        tickets.access.reply_address(current, agents=True): "{agents_address}",
        tickets.access.reply_address(current): "{reply_address}",
        tickets.urls.status_url(current): "{status_url}",
        tickets.urls.agent_url(current): "{agent_url}",
        current.reference: "{reference}",
    }

    def plain(text: str | None) -> str | None:
        for value, placeholder in placeholders.items():
            text = text.replace(value, placeholder) if text else text
        return text

    # A resolution's survey links are signed per ticket: compared by rating (replaced
    # before the reference they hold).
    surveys: dict[str, str] = {}
    for survey in await rows(app, CsatResponse, CsatResponse.ticket_id == current.id):
        for rating, link in tickets.csat.links(current, survey).items():
            surveys[link] = surveys[html.escape(link)] = f"{{csat_{survey.resolution}_{rating}}}"
    placeholders = {**surveys, **placeholders}
    events = await rows(app, TicketEvent, TicketEvent.ticket_id == current.id)
    messages = await rows(app, Message, Message.ticket_id == current.id)
    mails = await rows(app, Outbox, Outbox.ticket_id == current.id)
    # Threading headers name earlier mails of the ticket: by kind, not by their random ids.
    placeholders.update({m.message_id: f"{{{m.kind}}}" for m in mails})
    return {
        "ticket": (current.status, current.priority, current.assignee_id),
        "events": [(e.kind, e.actor, json.loads(e.data)) for e in events],
        "messages": [(m.author, m.author_name, m.body) for m in messages],
        "mails": [
            (
                m.kind,
                m.to_address,
                plain(m.subject),
                plain(m.text),
                plain(m.html),
                m.automatic,
                plain(m.reply_to),
                plain(m.in_reply_to),
                plain(m.references),
                m.attachments,
            )
            for m in mails
            if m.kind not in CREATION_MAILS
        ],
    }


async def by_mail(app: Starlette, ticket: Ticket, agent: Agent, body: str) -> None:
    """The agent answers the ticket's notification from their mailbox."""
    address = app.state.helpdesk.tickets.access.reply_address(ticket, agents=True)
    message = mail(f"{agent.name} <{agent.email}>", address, f"Re: [{ticket.reference}]", body)
    row = await app.state.helpdesk.inbound.receive(message.as_bytes(), envelope_to=[address])
    assert row.status == "processed", row.outcome


SAME_CASES = [
    pytest.param(
        "#status resolved\n#priority high\n＃担当 佐藤\n\n"
        "お待たせいたしました。本日発送いたしました。",
        [
            SetStatus(TicketStatus.resolved),
            SetPriority(Priority.high),
            Assign("佐藤"),
            Reply("お待たせいたしました。本日発送いたしました。"),
        ],
        ["assigned", "priority_changed", "status_changed", "agent_reply"],
        ["agent_reply"],
        TicketStatus.resolved,
        id="reply-with-commands",
    ),
    pytest.param(
        "本日発送いたしました。",
        [Reply("本日発送いたしました。")],
        ["agent_reply"],  # answered: new becomes open, without an event, as ever
        ["agent_reply"],
        TicketStatus.open,
        id="plain-reply",
    ),
    pytest.param(
        "#メモ\n在庫を確認中です。",
        [AddNote("在庫を確認中です。")],
        ["note"],
        [],
        TicketStatus.new,
        id="note",
    ),
    pytest.param(
        "#note\n#status pending",
        [AddNote(""), SetStatus(TicketStatus.pending)],
        ["status_changed", "note"],
        [],  # a note keeps the whole change internal
        TicketStatus.pending,
        id="note-with-status",
    ),
    pytest.param(
        "#状態 保留",
        [SetStatus(TicketStatus.pending)],
        ["status_changed"],
        ["status_changed"],
        TicketStatus.pending,
        id="status-only",
    ),
]


@pytest.mark.parametrize(("body", "commands", "event_kinds", "mail_kinds", "status"), SAME_CASES)
async def test_mail_and_console_apply_the_same_commands_the_same_way(
    app: Starlette,
    body: str,
    commands: list[Command],
    event_kinds: list[str],
    mail_kinds: list[str],
    status: TicketStatus,
) -> None:
    agent = await add_agent(app, name="佐藤 花子")
    assert parse_reply(body).commands == tuple(commands)
    through_mail = await submit_inquiry(app)
    through_console = await submit_inquiry(app)

    await by_mail(app, through_mail, agent, body)
    result = await app.state.helpdesk.tickets.apply(
        through_console, Actor.agent(agent, channel="web"), commands
    )

    assert result.ok and not result.duplicate
    mailed, clicked = await state(app, through_mail), await state(app, through_console)
    assert mailed == clicked
    assert [kind for kind, *_ in clicked["events"][1:]] == event_kinds
    assert all(actor == agent.email for _, actor, _ in clicked["events"][1:])
    assert [m[0] for m in clicked["mails"]] == mail_kinds
    assert clicked["ticket"][0] == status


async def test_an_unknown_assignee_changes_nothing_through_either_channel(app: Starlette) -> None:
    agent = await add_agent(app)
    commands = [SetStatus(TicketStatus.resolved), Assign("鈴木"), Reply("本文")]
    through_mail = await submit_inquiry(app)
    through_console = await submit_inquiry(app)
    before = await state(app, through_console)

    await by_mail(app, through_mail, agent, "#status resolved\n#担当 鈴木\n\n本文")
    result = await app.state.helpdesk.tickets.apply(
        through_console, Actor.agent(agent, channel="web"), commands
    )

    assert result.problems == (
        "担当者「鈴木」が見つかりません。登録済みのメールアドレスか名前を指定してください。",
    )
    assert await state(app, through_console) == before
    mailed = await state(app, through_mail)
    # By mail, the agent is told why; nothing else happened.
    [error] = [m for m in mailed["mails"] if m[0] == "agent_error"]
    assert error[1] == agent.email and result.problems[0] in error[3]
    assert {**mailed, "mails": []} == {**before, "mails": []}


async def test_commands_apply_in_one_order_whatever_order_they_come_in(app: Starlette) -> None:
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    result = await app.state.helpdesk.tickets.apply(
        ticket,
        Actor.agent(agent, channel="web"),
        [
            Reply("ご連絡ありがとうございます。"),
            SetStatus(TicketStatus.pending),
            SetPriority(Priority.urgent),
            Assign(agent.email),
        ],
    )
    assert result.ok
    events = await rows(app, TicketEvent, TicketEvent.ticket_id == ticket.id)
    assert [e.kind for e in events] == [
        "created",
        "assigned",
        "priority_changed",
        "status_changed",
        "agent_reply",
    ]
    assert [json.loads(e.data) for e in events[2:4]] == [
        {"old": "normal", "new": "urgent"},
        {"old": "new", "new": "pending"},
    ]
    current = await the_ticket(app, ticket.reference)
    assert (current.status, current.priority, current.assignee_id) == (
        TicketStatus.pending,
        Priority.urgent,
        agent.id,
    )
    assert (ticket.status, ticket.priority, ticket.assignee_id) == (
        current.status,
        current.priority,
        current.assignee_id,
    )
    [reply] = await rows(app, Outbox, Outbox.kind == "agent_reply")
    assert "お客様のご返信待ち" in reply.text  # the reply mentions the new status


async def test_a_repeated_submission_key_applies_once(app: Starlette) -> None:
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    actor = Actor.agent(agent, channel="web")
    commands = [Reply("一度だけ届きます。")]
    first = await app.state.helpdesk.tickets.apply(ticket, actor, commands, submission_key="k1")
    again = await app.state.helpdesk.tickets.apply(ticket, actor, commands, submission_key="k1")
    assert first.ok and not first.duplicate
    assert again.ok and again.duplicate
    assert len(await rows(app, Message, Message.author == "agent")) == 1
    assert len(await rows(app, Outbox, Outbox.kind == "agent_reply")) == 1


async def test_a_change_made_on_a_stale_page_is_refused(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    seen = version_of(ticket)
    # The customer writes while the agent's page is open.
    await tickets.add_customer_message(ticket, "追記です。", {})
    stale = await tickets.apply(
        ticket,
        Actor.agent(agent, channel="web"),
        [Reply("行き違いの返信")],
        expected_version=seen,
    )
    assert stale.conflict and stale.problems == (CONFLICT,)
    assert not await rows(app, Message, Message.author == "agent")
    fresh = await tickets.apply(
        ticket,
        Actor.agent(agent, channel="web"),
        [Reply("追記を拝見しました。")],
        expected_version=version_of(await the_ticket(app, ticket.reference)),
    )
    assert fresh.ok and not fresh.conflict
    assert version_of(ticket) != seen


@pytest.mark.parametrize(
    ("commands", "problem"),
    [
        (
            [SetStatus(TicketStatus.open), SetStatus(TicketStatus.closed)],
            "「ステータスの変更」は1回だけ指定してください。",
        ),
        (
            [Reply("お客様へ"), AddNote("社内向け")],
            "お客様への返信と社内メモは、別々に送ってください。",
        ),
        ([Reply("  ")], "お客様への返信の本文を入力してください。"),
    ],
)
async def test_command_lists_that_cannot_be_meant_change_nothing(
    app: Starlette, commands: list[Command], problem: str
) -> None:
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    before = await state(app, ticket)
    result = await app.state.helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel="web"), commands
    )
    assert result.problems == (problem,)
    assert await state(app, ticket) == before


async def test_setting_the_status_back_to_open_sends_the_customer_nothing(
    app: Starlette,
) -> None:
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    actor = Actor.agent(agent, channel="web")
    await app.state.helpdesk.tickets.apply(ticket, actor, [SetStatus(TicketStatus.resolved)])
    await app.state.helpdesk.tickets.apply(ticket, actor, [SetStatus(TicketStatus.open)])
    mails = [m.kind for m in await rows(app, Outbox, Outbox.to_address == "hanako@example.jp")]
    assert mails == ["ticket_confirmation", "status_changed"]
    events = await rows(app, TicketEvent, TicketEvent.kind == "status_changed")
    assert [json.loads(e.data)["new"] for e in events] == ["resolved", "open"]


async def test_customers_write_messages_they_do_not_apply_commands(app: Starlette) -> None:
    ticket = await submit_inquiry(app)
    customer = Actor.customer("hanako@example.jp", channel="web")
    with pytest.raises(ValueError, match="add_customer_message"):
        await app.state.helpdesk.tickets.apply(ticket, customer, [SetStatus(TicketStatus.closed)])


async def test_a_customer_message_reopens_and_is_told_to_the_agents(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    await tickets.apply(ticket, Actor.agent(agent, channel="mail"), [SetStatus("resolved")])
    await tickets.add_customer_message(ticket, "まだ届いていません。", {})
    assert ticket.status == TicketStatus.open
    events = await rows(app, TicketEvent, TicketEvent.ticket_id == ticket.id)
    assert [(e.kind, e.actor) for e in events[-2:]] == [
        ("customer_message", "hanako@example.jp"),
        ("status_changed", "customer"),
    ]
    [notice] = await rows(app, Outbox, Outbox.kind == "customer_reply")
    assert notice.to_address == SUPPORT and "まだ届いていません。" in notice.text
    assert notice.reply_to == tickets.access.reply_address(ticket, agents=True)
