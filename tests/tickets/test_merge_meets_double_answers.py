"""Where merging and approval meet the double-answer rule (二重対応防止): a mailed reply to a
merged duplicate's notification, a reply held for a confirmation when its ticket is merged,
and a reply approved after someone else answered while it waited."""

from __future__ import annotations

from datetime import timedelta

from starlette.applications import Starlette

from helpdesk.db import utcnow
from helpdesk.models import Outbox
from helpdesk.tickets import Actor, Channel, Reply
from helpdesk.tickets.commands import Confirm, Merge
from helpdesk.tickets.service import APPROVED_MEANWHILE
from tests.helpers import SUPPORT, rows, submit_inquiry
from tests.test_approval import admin, part_timer

CUSTOMER = "hanako@example.jp"


async def _answers(app: Starlette) -> list[Outbox]:
    return await rows(app, Outbox, Outbox.to_address == CUSTOMER, Outbox.kind == "agent_reply")


async def test_a_mailed_reply_to_a_merged_duplicates_notification_is_held(
    app: Starlette,
) -> None:
    # 田中 answers the duplicate in the console and merges it; 佐藤 answers the duplicate's
    # notification by mail, which lands on the kept ticket: 田中 answered after that
    # notification, so 佐藤's reply is held, not a second answer.
    tickets = app.state.helpdesk.tickets
    kept = await submit_inquiry(app)
    duplicate = await submit_inquiry(app, description="まだ届きません(2回目)")
    [notification] = await rows(
        app, Outbox, Outbox.ticket_id == duplicate.id, Outbox.to_address == SUPPORT
    )
    sato = await tickets.add_agent("sato@example.jp", "佐藤")
    tanaka = await tickets.add_agent("tanaka@example.jp", "田中")
    web = Actor.agent(tanaka, channel=Channel.web)
    assert (await tickets.apply(duplicate, web, [Reply("田中です。発送しました。")])).ok
    assert (await tickets.apply(duplicate, web, [Merge(kept.reference)])).ok
    target = await tickets.find(kept.reference)
    seen = await tickets.mail_seen_at(target, [notification.message_id])
    assert seen is not None  # the notification's mail moved with the duplicate
    result = await tickets.apply(
        target, Actor.agent(sato, channel=Channel.mail), [Reply("佐藤です。")], seen_at=seen
    )
    assert result.held
    assert len(await _answers(app)) == 1


async def test_a_reply_held_for_confirmation_survives_a_merge(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    kept = await submit_inquiry(app)
    duplicate = await submit_inquiry(app, description="まだ届きません(2回目)")
    sato = await tickets.add_agent("sato@example.jp", "佐藤")
    tanaka = await tickets.add_agent("tanaka@example.jp", "田中")
    seen = utcnow() - timedelta(seconds=5)
    web = Actor.agent(tanaka, channel=Channel.web)
    assert (await tickets.apply(duplicate, web, [Reply("田中です")])).ok
    held = await tickets.apply(
        duplicate, Actor.agent(sato, channel=Channel.mail), [Reply("佐藤です")], seen_at=seen
    )
    assert held.held
    assert (await tickets.apply(duplicate, web, [Merge(kept.reference)])).ok
    # 佐藤's #confirm arrives on the kept ticket (mail follows merges) and finds the held
    # reply there; the merge itself came after 佐藤 was told, so it is held once more with
    # the merge shown, and the next #confirm sends it, once.
    target = await tickets.find(kept.reference)
    mail = Actor.agent(sato, channel=Channel.mail)
    confirmed = await tickets.apply(target, mail, [Confirm()])
    assert confirmed.problems == () and confirmed.held
    assert [e.kind for e in confirmed.changes] == ["merged"]
    confirmed = await tickets.apply(target, mail, [Confirm()])
    assert confirmed.ok and not confirmed.held, confirmed.problems
    assert [m for m in await _answers(app) if "佐藤です" in m.text] != []
    assert len(await _answers(app)) == 2


async def test_a_reply_approved_after_another_answer_asks_first(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    arbeit, boss = await part_timer(app), await admin(app)
    ticket = await submit_inquiry(app)
    waiting = await tickets.apply(
        ticket, Actor.agent(arbeit, channel=Channel.web), [Reply("バイトの回答です")]
    )
    assert waiting.awaiting_approval
    tanaka = await tickets.add_agent("tanaka@example.jp", "田中")
    web = Actor.agent(tanaka, channel=Channel.web)
    assert (await tickets.apply(ticket, web, [Reply("田中の回答です")])).ok

    asked = await tickets.approve_reply(waiting.awaiting_approval, boss)
    assert asked.conflict and asked.problems == (APPROVED_MEANWHILE,)
    assert [m.body for m in asked.meanwhile] == ["田中の回答です"]
    assert len(await _answers(app)) == 1  # 田中's only; the reply still waits
    # The admin has seen what came meanwhile and approves again: it is sent, once.
    sent = await tickets.approve_reply(waiting.awaiting_approval, boss, seen_at=utcnow())
    assert sent.ok, sent.problems
    assert len(await _answers(app)) == 2
    again = await tickets.approve_reply(waiting.awaiting_approval, boss, seen_at=utcnow())
    assert not again.ok and len(await _answers(app)) == 2
