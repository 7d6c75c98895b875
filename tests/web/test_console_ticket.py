"""The console's ticket page (issue 10, items 4 and 5): every field in Japanese, the
conversation with notes apart, the history in sentences, the customer's other tickets, the
forms (reply through the outbox, threaded; note; status, priority, assignee; merge), and no
double handling: who else has the ticket open, and a reply refused when another agent
answered after the page was opened."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from helpdesk.db import utcnow
from helpdesk.models import (
    Attachment,
    Author,
    CsatRating,
    CsatResponse,
    Message,
    Outbox,
    Priority,
    TicketEvent,
    TicketPresence,
    TicketStatus,
)
from helpdesk.tickets.commands import Actor, Channel, Reply, SetStatus
from helpdesk.tickets.labels import EVENT_KINDS
from tests.helpers import (
    api_defect,
    console_agent,
    log_in,
    rows,
    soup,
    submit_inquiry,
    the_ticket,
)

TANAKA = "tanaka@example.jp"
SATO = "sato@interiorltd.jp"


@asynccontextmanager
async def console(app: Starlette, email: str, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own, logged in as this (new) agent."""
    await console_agent(app, email, name)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await log_in(http, email)
        assert response.status_code == 303, response.text
        yield http


@pytest.fixture
async def tanaka(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with console(app, TANAKA, "田中") as http:
        yield http


@pytest.fixture
async def sato(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with console(app, SATO, "佐藤") as http:
        yield http


async def page_form(http: httpx.AsyncClient, reference: str, form: str) -> dict[str, str]:
    """The hidden fields of one of the page's forms (CSRF token, version ...)."""
    page = soup(await http.get(f"/console/t/{reference}"))
    return {
        str(field["name"]): str(field.get("value", ""))
        for field in page.select(f"form.{form} input[type=hidden]")
    }


async def post(
    http: httpx.AsyncClient, reference: str, action: str, form: str, **data: str
) -> httpx.Response:
    fields = await page_form(http, reference, form)
    return await http.post(f"/console/t/{reference}/{action}", data={**fields, **data})


def outbox_replies(mails: list[Outbox]) -> list[Outbox]:
    return [m for m in mails if m.kind == "agent_reply"]


async def test_the_page_shows_every_field_in_japanese(
    app: Starlette, client: httpx.AsyncClient, tanaka: httpx.AsyncClient
) -> None:
    created = await api_defect(client, app)
    reference = created["reference"]
    ticket = await the_ticket(app, reference)
    # As the returns form records the FAQ entries it showed before the submit.
    await app.state.helpdesk.tickets.record_event(
        ticket.id, "deflection_shown", "system", ids=["shipping-date"]
    )
    other = await submit_inquiry(app, email="hanako@example.jp")
    # A resolution with the customer's answer to the survey.
    agent = await app.state.helpdesk.tickets.agent_by_email(TANAKA)
    actor = Actor.agent(agent, channel=Channel.web)
    result = await app.state.helpdesk.tickets.apply(
        ticket, actor, [SetStatus(TicketStatus.resolved)]
    )
    assert result.ok
    async with app.state.helpdesk.sessions() as session, session.begin():
        await session.execute(
            update(CsatResponse)
            .where(CsatResponse.ticket_id == ticket.id)  # type: ignore[arg-type]
            .values(rating=CsatRating.good, answered_at=utcnow(), comment="丁寧でした")
        )
    response = await tanaka.get(f"/console/t/{reference}")
    assert response.status_code == 200
    page = soup(response)
    fields = {
        str(dt.get_text()): dd.get_text(" ", strip=True)
        for dt, dd in zip(
            page.select(".ticket-fields dt"), page.select(".ticket-fields dd"), strict=True
        )
    }
    ticket = await the_ticket(app, reference)
    assert fields["受付番号"] == reference
    assert fields["種類"] == "不良品"
    assert fields["状況"] == "解決済み"
    assert fields["優先度"] == "通常"
    assert fields["担当"] == "未割り当て"
    assert fields["お客様"] == "山田 花子 様"
    assert fields["メールアドレス"] == "hanako@example.jp"
    assert fields["注文番号"] == ticket.order_number == "#1234"
    assert fields["商品の到着日"].startswith(f"{ticket.arrived_on:%Y年%m月%d日}")
    assert fields["初回返信の期限"] not in ("", "設定なし") or ticket.first_reply_due_at is None
    assert (
        fields["満足度アンケート"].startswith("「良かった」")
        and "丁寧でした" in fields["満足度アンケート"]
    )
    # Photos: thumbnails linking to the full-size image, both served to the agent.
    attachments = await rows(app, Attachment, Attachment.ticket_id == ticket.id)
    links = page.select(".thumbs a")
    assert len(links) == len(attachments) == 2
    for link, attachment in zip(links, attachments, strict=True):
        assert link["href"].endswith(f"/photos/{attachment.digest}")
        thumb = link.select_one("img")
        assert thumb is not None and thumb["src"].endswith(f"/photos/{attachment.thumb_digest}")
        full = await tanaka.get(str(link["href"]))
        assert full.status_code == 200 and full.headers["content-type"].startswith("image/")
    # The customer's other tickets, linked.
    [link] = page.select(".other-tickets a")
    assert link["href"] == f"/console/t/{other.reference}"
    # The history: Japanese sentences, no raw kinds or JSON.
    history = [li.get_text(" ", strip=True) for li in page.select(".history li")]
    text = "\n".join(history)
    assert "お客様からAPIでお問い合わせを受け付けました。" in text
    assert "よくある質問を1件ご案内しました。" in text
    assert "田中がステータスを「受付済み」から「解決済み」に変更しました。" in text
    for raw in ("created", "status_changed", "deflection_shown", "{", "}"):
        assert raw not in text
    events = await rows(app, TicketEvent, TicketEvent.ticket_id == ticket.id)
    assert len(history) == len(events) and all(e.kind in EVENT_KINDS for e in events)


async def test_a_note_is_marked_internal_and_never_reaches_the_customer(
    app: Starlette, client: httpx.AsyncClient, tanaka: httpx.AsyncClient
) -> None:
    ticket = await submit_inquiry(app)
    response = await post(tanaka, ticket.reference, "note", "note-form", note="配送業者に確認中。")
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/t/{ticket.reference}?done=note"
    page = soup(await tanaka.get(response.headers["location"]))
    [note] = page.select(".conversation .message.note")
    assert "配送業者に確認中。" in note.get_text() and "お客様には表示されません" in note.get_text()
    assert "社内メモを追加しました" in page.select_one("p.notice").get_text()  # type: ignore[union-attr]
    status_page = await client.get(app.state.helpdesk.tickets.urls.status(ticket))
    assert status_page.status_code == 200
    assert "配送業者に確認中" not in status_page.text
    as_json = await client.get(
        app.state.helpdesk.tickets.urls.status(ticket), headers={"Accept": "application/json"}
    )
    assert all("配送業者" not in m["body"] for m in as_json.json()["messages"])
    assert outbox_replies(await rows(app, Outbox)) == []


async def test_a_reply_leaves_through_the_outbox_threaded_like_a_mail_reply(
    app: Starlette, tanaka: httpx.AsyncClient
) -> None:
    ticket = await submit_inquiry(app)
    [confirmation] = await rows(app, Outbox, Outbox.kind == "ticket_confirmation")
    response = await post(
        tanaka, ticket.reference, "reply", "reply-form", body="本日発送いたしました。"
    )
    assert response.status_code == 303, response.text
    [reply] = outbox_replies(await rows(app, Outbox))
    assert reply.to_address == "hanako@example.jp"
    assert "本日発送いたしました。" in reply.text
    # Threaded under the customer's thread, as a mailed agent reply is.
    assert reply.in_reply_to == confirmation.message_id
    assert confirmation.message_id in (reply.references or "")
    assert reply.reply_to == app.state.helpdesk.tickets.access.reply_address(ticket)
    [message] = await rows(app, Message, Message.author == Author.agent)
    assert (message.author_name, message.sender) == ("田中", TANAKA)
    [event] = await rows(app, TicketEvent, TicketEvent.kind == "agent_reply")
    assert event.actor == TANAKA
    assert (await the_ticket(app, ticket.reference)).status == TicketStatus.open


async def test_a_refused_form_comes_back_with_the_text_kept(
    app: Starlette, tanaka: httpx.AsyncClient
) -> None:
    ticket = await submit_inquiry(app)
    empty = await post(tanaka, ticket.reference, "reply", "reply-form", body=" \n ")
    assert empty.status_code == 422
    assert "返信の本文を入力してください。" in soup(empty).select_one(".error-summary").get_text()  # type: ignore[union-attr]
    long_text = "あ" * 20_001
    too_long = await post(tanaka, ticket.reference, "reply", "reply-form", body=long_text)
    assert too_long.status_code == 422
    assert soup(too_long).select_one("textarea[name=body]").get_text() == long_text  # type: ignore[union-attr]
    # An expired token: refused, what was typed kept.
    fields = await page_form(tanaka, ticket.reference, "reply-form")
    forged = {**fields, "csrf_token": "forged", "body": "送りたい返信"}
    refused = await tanaka.post(f"/console/t/{ticket.reference}/reply", data=forged)
    assert refused.status_code == 403
    assert soup(refused).select_one("textarea[name=body]").get_text() == "送りたい返信"  # type: ignore[union-attr]
    bad = await post(tanaka, ticket.reference, "status", "status-form", status="done")
    assert bad.status_code == 422 and "選択肢から選んでください" in bad.text
    nobody = await post(tanaka, ticket.reference, "assign", "assign-form", assignee="鈴木")
    assert nobody.status_code == 422 and "担当者「鈴木」が見つかりません" in nobody.text
    assert outbox_replies(await rows(app, Outbox)) == []


async def test_status_priority_and_assignee_are_the_mail_commands_audit_events(
    app: Starlette, tanaka: httpx.AsyncClient, sato: httpx.AsyncClient
) -> None:
    ticket = await submit_inquiry(app)
    for action, form, data in (
        ("status", "status-form", {"status": "pending"}),
        ("priority", "priority-form", {"priority": "urgent"}),
        ("assign", "assign-form", {"assignee": SATO}),
    ):
        response = await post(tanaka, ticket.reference, action, form, **data)
        assert response.status_code == 303, response.text
        assert response.headers["location"].endswith(f"?done={action}")
    current = await the_ticket(app, ticket.reference)
    sato_agent = await app.state.helpdesk.tickets.agent_by_email(SATO)
    assert (current.status, current.priority, current.assignee_id) == (
        TicketStatus.pending,
        Priority.urgent,
        sato_agent.id,
    )
    events = await rows(app, TicketEvent, TicketEvent.ticket_id == ticket.id)
    changes = [(e.kind, e.actor, json.loads(e.data)) for e in events[-3:]]
    assert changes == [
        ("status_changed", TANAKA, {"old": "new", "new": "pending"}),
        ("priority_changed", TANAKA, {"old": "normal", "new": "urgent"}),
        ("assigned", TANAKA, {"to": SATO}),
    ]
    page = soup(await tanaka.get(f"/console/t/{ticket.reference}"))
    assert page.select_one(".ticket-priority").get_text() == "緊急"  # type: ignore[union-attr]
    assert page.select_one(".ticket-assignee").get_text() == "佐藤"  # type: ignore[union-attr]
    text = page.select_one(".history").get_text()  # type: ignore[union-attr]
    assert "田中が優先度を「通常」から「緊急」に変更しました。" in text
    assert f"田中が担当者を {SATO} にしました。" in text
    # The customer hears of "pending" as by a mailed #status (a short status mail).
    assert [m.kind for m in await rows(app, Outbox, Outbox.to_address == "hanako@example.jp")] == [
        "ticket_confirmation",
        "status_changed",
    ]


async def test_merging_moves_everything_and_the_old_links_keep_working(
    app: Starlette, client: httpx.AsyncClient, tanaka: httpx.AsyncClient
) -> None:
    created = await api_defect(client, app)
    duplicate = await the_ticket(app, created["reference"])
    target = await submit_inquiry(app, email="hanako@example.jp")
    old_link = app.state.helpdesk.tickets.urls.status(duplicate)
    moved_messages = await rows(app, Message, Message.ticket_id == duplicate.id)
    moved_events = await rows(app, TicketEvent, TicketEvent.ticket_id == duplicate.id)
    # The customer has the old status page open, its message form filled in.
    old_page = soup(await client.get(old_link))
    old_form = {
        str(field["name"]): str(field.get("value", ""))
        for field in old_page.select("form[method=post] input[type=hidden]")
    }
    assert old_form.get("csrf_token")
    # Not confirmed: refused, the reference typed kept.
    unconfirmed = await post(
        tanaka, duplicate.reference, "merge", "merge-form", into=target.reference
    )
    assert unconfirmed.status_code == 422 and "元に戻せません" in unconfirmed.text
    assert soup(unconfirmed).select_one("#merge-into")["value"] == target.reference  # type: ignore[index]
    response = await post(
        tanaka,
        duplicate.reference,
        "merge",
        "merge-form",
        into=target.reference.lower(),
        confirm_merge="1",
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/console/t/{target.reference}?done=merged"
    # Messages, photos and history moved.
    messages = await rows(app, Message, Message.ticket_id == target.id)
    assert {m.id for m in moved_messages} <= {m.id for m in messages}
    assert await rows(app, Message, Message.ticket_id == duplicate.id) == []
    assert len(await rows(app, Attachment, Attachment.ticket_id == target.id)) == 2
    events = await rows(app, TicketEvent, TicketEvent.ticket_id == target.id)
    assert {e.id for e in moved_events} <= {e.id for e in events}
    assert events[-1].kind == "merged" and json.loads(events[-1].data) == {
        "from": duplicate.reference
    }
    old = await the_ticket(app, duplicate.reference)
    assert (old.merged_into_id, old.status) == (target.id, TicketStatus.closed)
    page = soup(await tanaka.get(f"/console/t/{target.reference}"))
    assert len(page.select(".thumbs a")) == 2
    assert f"田中がチケット {duplicate.reference} をこのチケットに統合しました。" in page.get_text()
    # The customer's old status link shows the merged ticket, photos included.
    redirected = await client.get(old_link)
    assert redirected.status_code == 303
    assert redirected.headers["location"] == app.state.helpdesk.tickets.urls.status(target)
    shown = await client.get(old_link, follow_redirects=True)
    assert shown.status_code == 200 and "ケースの角にひびが入っていました。" in shown.text
    [photo] = [a for a in await rows(app, Attachment) if a.field == "photo_overall"]
    old_photo = app.state.helpdesk.tickets.urls.photo(duplicate, photo.thumb_digest)
    assert (await client.get(old_photo)).status_code == 200
    # The message form of the old page, sent after the merge, reaches the merged ticket.
    old_messages = app.state.helpdesk.tickets.urls.messages(duplicate)
    sent = await client.post(old_messages, data={**old_form, "body": "追加の写真はありません。"})
    assert sent.status_code == 303, sent.text
    [added] = await rows(app, Message, Message.body == "追加の写真はありません。")
    assert added.ticket_id == target.id
    # The console's old page leads there too.
    console_old = await tanaka.get(f"/console/t/{duplicate.reference}")
    assert console_old.status_code == 303
    assert console_old.headers["location"].startswith(f"/console/t/{target.reference}")


async def test_only_the_same_customers_duplicates_merge(
    app: Starlette, tanaka: httpx.AsyncClient
) -> None:
    mine = await submit_inquiry(app)
    theirs = await submit_inquiry(app, email="taro@example.jp", name="鈴木 太郎")
    for into, problem in (
        (theirs.reference, "お客様(メールアドレス)が異なるチケットには統合できません"),
        (mine.reference, "同じチケットには統合できません"),
        ("HD-99-99999", "統合先のチケット「HD-99-99999」が見つかりません"),
    ):
        response = await post(
            tanaka, mine.reference, "merge", "merge-form", into=into, confirm_merge="1"
        )
        assert response.status_code == 422 and problem in response.text, into
    assert (await the_ticket(app, mine.reference)).merged_into_id is None
    assert await rows(app, Message, Message.ticket_id == theirs.id)


async def test_a_reply_after_another_agents_answer_asks_to_confirm(
    app: Starlette, tanaka: httpx.AsyncClient, sato: httpx.AsyncClient
) -> None:
    ticket = await submit_inquiry(app)
    # 田中 opens the page; 佐藤 answers meanwhile.
    opened = await page_form(tanaka, ticket.reference, "reply-form")
    answered = await post(sato, ticket.reference, "reply", "reply-form", body="佐藤の回答です。")
    assert answered.status_code == 303
    conflict = await tanaka.post(
        f"/console/t/{ticket.reference}/reply", data={**opened, "body": "田中の回答です。"}
    )
    assert conflict.status_code == 409
    page = soup(conflict)
    assert page.select_one("textarea[name=body]").get_text() == "田中の回答です。"  # type: ignore[union-attr]
    meanwhile = page.select_one(".meanwhile")
    assert meanwhile is not None and "佐藤の回答です。" in meanwhile.get_text()
    assert "まだ送信していません" in meanwhile.get_text()
    [only] = outbox_replies(await rows(app, Outbox))
    assert "佐藤の回答です。" in only.text
    # The re-rendered form carries the newer version: sending again is the confirmation.
    confirm = {
        str(f["name"]): str(f.get("value", ""))
        for f in page.select("form.reply-form input[type=hidden]")
    }
    assert confirm["version"] != opened["version"]
    sent = await tanaka.post(
        f"/console/t/{ticket.reference}/reply", data={**confirm, "body": "田中の回答です。"}
    )
    assert sent.status_code == 303
    assert len(outbox_replies(await rows(app, Outbox))) == 2


async def test_a_customer_message_after_the_page_opened_asks_to_confirm_too(
    app: Starlette, tanaka: httpx.AsyncClient
) -> None:
    ticket = await submit_inquiry(app)
    opened = await page_form(tanaka, ticket.reference, "reply-form")
    await app.state.helpdesk.tickets.add_customer_message(ticket, "追加の連絡です。", {})
    conflict = await tanaka.post(
        f"/console/t/{ticket.reference}/reply", data={**opened, "body": "ご連絡します。"}
    )
    assert conflict.status_code == 409 and "追加の連絡です。" in conflict.text
    # The agent's own note meanwhile is no reason to ask.
    opened = await page_form(tanaka, ticket.reference, "reply-form")
    assert (
        await post(tanaka, ticket.reference, "note", "note-form", note="メモ")
    ).status_code == 303
    sent = await tanaka.post(
        f"/console/t/{ticket.reference}/reply", data={**opened, "body": "ご連絡します。"}
    )
    assert sent.status_code == 303
    assert len(outbox_replies(await rows(app, Outbox))) == 1


async def test_another_agents_resolution_or_assignment_asks_to_confirm(
    app: Starlette, tanaka: httpx.AsyncClient, sato: httpx.AsyncClient
) -> None:
    ticket = await submit_inquiry(app)
    opened = await page_form(tanaka, ticket.reference, "reply-form")
    assert (
        await post(sato, ticket.reference, "assign", "assign-form", assignee=SATO)
    ).status_code == 303
    conflict = await tanaka.post(
        f"/console/t/{ticket.reference}/reply", data={**opened, "body": "田中です。"}
    )
    assert conflict.status_code == 409
    meanwhile = soup(conflict).select_one(".meanwhile")
    assert meanwhile is not None
    assert f"佐藤が担当者を {SATO} にしました。" in meanwhile.get_text()
    assert outbox_replies(await rows(app, Outbox)) == []
    # The agent's own changes are no reason to ask.
    opened = await page_form(tanaka, ticket.reference, "reply-form")
    assert (
        await post(tanaka, ticket.reference, "status", "status-form", status="pending")
    ).status_code == 303
    sent = await tanaka.post(
        f"/console/t/{ticket.reference}/reply", data={**opened, "body": "田中です。"}
    )
    assert sent.status_code == 303


async def test_a_double_submit_sends_one_reply(app: Starlette, tanaka: httpx.AsyncClient) -> None:
    ticket = await submit_inquiry(app)
    fields = await page_form(tanaka, ticket.reference, "reply-form")
    for _ in range(2):
        response = await tanaka.post(
            f"/console/t/{ticket.reference}/reply", data={**fields, "body": "一度だけ。"}
        )
        assert response.status_code == 303
    assert len(outbox_replies(await rows(app, Outbox))) == 1


async def presence(http: httpx.AsyncClient, reference: str, kind: str) -> httpx.Response:
    fields = await page_form(http, reference, "reply-form")
    return await http.post(
        f"/console/t/{reference}/presence",
        data={"kind": kind, "version": fields["version"]},
        headers={"X-CSRF-Token": fields["csrf_token"], "Accept": "application/json"},
    )


async def test_the_page_shows_who_else_has_the_ticket_open(
    app: Starlette, tanaka: httpx.AsyncClient, sato: httpx.AsyncClient
) -> None:
    ticket = await submit_inquiry(app)
    first = soup(await tanaka.get(f"/console/t/{ticket.reference}"))
    assert first.select(".presence-list li") == []  # nobody else yet
    # 佐藤 opens it (server-side, without JavaScript): sees 田中 viewing.
    page = soup(await sato.get(f"/console/t/{ticket.reference}"))
    [other] = page.select(".presence-list li")
    assert other.get_text() == "田中 さん: 閲覧中"
    # 田中 starts typing: 佐藤's next refresh says so.
    assert (await presence(tanaka, ticket.reference, "typing")).status_code == 200
    answer = await presence(sato, ticket.reference, "viewing")
    assert answer.status_code == 200
    body = answer.json()
    assert [(o["name"], o["kind"], o["label"]) for o in body["others"]] == [
        ("田中", "typing", "返信を入力中")
    ]
    # Stale presence (the page was closed without saying so) counts no more.
    async with app.state.helpdesk.sessions() as session, session.begin():
        await session.execute(
            update(TicketPresence).values(last_seen=utcnow() - timedelta(minutes=5))
        )
    assert (await presence(sato, ticket.reference, "viewing")).json()["others"] == []
    # Leaving removes the row at once.
    await presence(tanaka, ticket.reference, "viewing")
    assert (await presence(tanaka, ticket.reference, "left")).status_code == 200
    assert (await presence(sato, ticket.reference, "viewing")).json()["others"] == []
    bad = await presence(sato, ticket.reference, "dancing")
    assert bad.status_code == 422
    # The refresh tells a page opened before a change that the ticket changed.
    fields = await page_form(sato, ticket.reference, "reply-form")
    await app.state.helpdesk.tickets.add_customer_message(ticket, "追加です。", {})
    changed = await sato.post(
        f"/console/t/{ticket.reference}/presence",
        data={"kind": "viewing", "version": fields["version"]},
        headers={"X-CSRF-Token": fields["csrf_token"], "Accept": "application/json"},
    )
    assert changed.json()["changed"] is True


async def test_presence_needs_the_csrf_token_and_a_login(
    app: Starlette, client: httpx.AsyncClient, tanaka: httpx.AsyncClient
) -> None:
    ticket = await submit_inquiry(app)
    refused = await tanaka.post(
        f"/console/t/{ticket.reference}/presence",
        data={"kind": "viewing"},
        headers={"Accept": "application/json"},
    )
    assert refused.status_code == 403
    assert await rows(app, TicketPresence, TicketPresence.ticket_id == ticket.id) == []


async def test_replies_use_the_apply_of_mail(app: Starlette, tanaka: httpx.AsyncClient) -> None:
    """The web reply is ``apply`` with ``Reply``: the same refusal for an empty text."""
    ticket = await submit_inquiry(app)
    agent = await app.state.helpdesk.tickets.agent_by_email(TANAKA)
    result = await app.state.helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), [Reply(" ")]
    )
    assert result.problems == ("お客様への返信の本文を入力してください。",)
