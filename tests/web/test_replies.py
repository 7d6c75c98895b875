"""The console's saved replies and approvals (issue 10 #6, #7): admins edit saved replies,
agents read and insert them (without script), admins approve, edit or reject held replies
and set who needs approval."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from starlette.applications import Starlette

from faq.calendar import format_date
from helpdesk.models import Outbox, PendingReply, PendingState, SavedReply, TicketEvent
from helpdesk.replies.saved import SavedReplyIn
from helpdesk.tickets import Actor, Channel, Reply
from tests.helpers import (
    api_defect,
    console_agent,
    logged_in_client,
    rows,
    soup,
    submit_inquiry,
    the_ticket,
    today,
)

BODY = (
    "{お客様名} 様\n\nご注文 {注文番号}(受付番号 {受付番号})の返品は {返品期限} までに"
    "ご連絡ください。"
)


def csrf(page: httpx.Response, selector: str = "form") -> str:
    field = soup(page).select_one(f"{selector} input[name=csrf_token]")
    assert field is not None, page.text
    return str(field["value"])


async def test_admins_create_edit_and_delete_saved_replies(app: Starlette) -> None:
    async with logged_in_client(app, admin=True) as console:
        form = await console.get("/console/replies/new")
        assert form.status_code == 200 and soup(form).html["lang"] == "ja"
        token = csrf(form, "form.saved-reply-edit")

        # An unknown placeholder: refused in Japanese, everything typed kept.
        typed = {
            "csrf_token": token,
            "title": "返品のご案内",
            "category": "返品",
            "body": "{お客さま名} 様",
        }
        refused = await console.post("/console/replies/new", data=typed)
        assert refused.status_code == 422
        page = soup(refused)
        assert (
            "差し込み項目 {お客さま名} は使えません" in page.select_one(".error-summary").get_text()
        )
        assert page.select_one("textarea[name=body]").get_text() == "{お客さま名} 様"
        assert page.select_one("input[name=title]")["value"] == "返品のご案内"
        assert page.select_one("input[name=category]")["value"] == "返品"
        assert await rows(app, SavedReply) == []

        created = await console.post("/console/replies/new", data={**typed, "body": BODY})
        assert created.status_code == 303
        listed = await console.get(created.headers["location"])
        assert "テンプレートを作成しました。" in soup(listed).select_one(".notice").get_text()
        [saved] = await rows(app, SavedReply)
        assert (saved.title, saved.category, saved.updated_by) == (
            "返品のご案内",
            "返品",
            "admin@example.jp",
        )
        item = soup(listed).select_one(f"#saved-reply-{saved.id}")
        assert item.select_one(".title").get_text() == "返品のご案内"

        taken = await console.post("/console/replies/new", data={**typed, "body": "こんにちは"})
        assert taken.status_code == 422 and "同じ題名" in taken.text

        edit = await console.get(f"/console/replies/{saved.id}")
        assert soup(edit).select_one("textarea[name=body]").get_text() == BODY
        changed = await console.post(
            f"/console/replies/{saved.id}",
            data={
                "csrf_token": token,
                "title": "返品のご案内(改)",
                "body": BODY + "\nよろしくお願いいたします。",
            },
        )
        assert changed.status_code == 303
        [saved] = await rows(app, SavedReply)
        assert saved.title == "返品のご案内(改)" and saved.category is None

        deleted = await console.post(
            f"/console/replies/{saved.id}/delete", data={"csrf_token": token}
        )
        assert deleted.status_code == 303 and await rows(app, SavedReply) == []
        assert (await console.get(f"/console/replies/{saved.id}")).status_code == 404
        huge = "9" * 30  # no row has it; never an overflow in the database
        assert (await console.get(f"/console/replies/{huge}")).status_code == 404
        gone = await console.post(f"/console/replies/{huge}/delete", data={"csrf_token": token})
        assert gone.status_code == 404
    kinds = [
        e.kind for e in await rows(app, TicketEvent, TicketEvent.kind.startswith("saved_reply"))
    ]
    assert kinds == ["saved_reply_created", "saved_reply_updated", "saved_reply_deleted"]


async def test_agents_read_saved_replies_and_change_none(app: Starlette) -> None:
    boss = await console_agent(app, "boss@interiorltd.jp", "店長", admin=True)
    await app.state.helpdesk.saved_replies.save(SavedReplyIn("お詫び", BODY, "不良品"), by=boss)
    async with logged_in_client(app) as console:
        page = await console.get("/console/replies")
        assert page.status_code == 200
        [item] = soup(page).select(".saved-reply")
        assert item.select_one(".body").get_text() == BODY
        assert item.select("form.delete-reply") == [] and "編集" not in item.get_text()
        token = csrf(page, "form.logout")
        refused = await console.post(
            "/console/replies/new", data={"csrf_token": token, "title": "x", "body": "y"}
        )
        assert refused.status_code == 403
    assert len(await rows(app, SavedReply)) == 1


async def test_a_saved_reply_is_inserted_rendered_for_the_ticket_without_script(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    boss = await console_agent(app, "boss@interiorltd.jp", "店長", admin=True)
    saved = await app.state.helpdesk.saved_replies.save(SavedReplyIn("返品", BODY), by=boss)
    arrived = today(app) - timedelta(days=2)
    created = await api_defect(client, app, arrived_on=arrived.isoformat())
    reference = created["reference"]
    ticket = await the_ticket(app, reference)
    async with logged_in_client(app) as console:
        page = soup(await console.get(f"/console/t/{reference}"))
        picker = page.select_one("form.saved-reply-picker")
        assert picker["method"] == "get" and picker["action"] == f"/console/t/{reference}"
        option = picker.select_one(f"select[name=reply] option[value='{saved.id}']")
        deadline = format_date(arrived + timedelta(days=3))  # 商品到着後、3日以内
        expected = (
            f"山田 花子 様\n\nご注文 #1234(受付番号 {reference})の返品は {deadline} までに"
            "ご連絡ください。"
        )
        assert option["data-text"] == expected  # for the script: inserted in place
        assert page.select_one("script[src='/static/saved-replies.js']") is not None

        chosen = soup(await console.get(f"/console/t/{reference}", params={"reply": saved.id}))
        assert (
            "「返品」を返信欄に挿入しました"
            in chosen.select_one(".saved-reply-inserted").get_text()
        )
        selected = chosen.select_one("select[name=reply] option[selected]")
        assert selected["value"] == str(saved.id)
        for wrong in ("999", "²", "1" * 5000, "x"):
            missing = await console.get(f"/console/t/{reference}", params={"reply": wrong})
            assert missing.status_code == 200, wrong
            error = soup(missing).select_one(".saved-replies .error-summary")
            assert "見つかりません" in error.get_text(), wrong
    assert app.state.helpdesk.saved_replies.render_for(saved, ticket) == expected


async def test_an_inquiry_without_an_order_number_gets_markers(app: Starlette) -> None:
    boss = await console_agent(app, "boss@interiorltd.jp", "店長", admin=True)
    saved = await app.state.helpdesk.saved_replies.save(SavedReplyIn("返品", BODY), by=boss)
    ticket = await submit_inquiry(app)
    async with logged_in_client(app) as console:
        page = soup(await console.get(f"/console/t/{ticket.reference}", params={"reply": saved.id}))
    text = page.select_one(f"option[value='{saved.id}']")["data-text"]
    assert "【要入力: 注文番号】" in text and "【要入力: 返品期限】" in text
    assert "書き換えてから送信してください" in page.select_one(".saved-reply-inserted").get_text()


async def held_reply(
    app: Starlette, body: str = "明日発送いたします。"
) -> tuple[PendingReply, str]:
    accounts = app.state.helpdesk.accounts
    owner = await console_agent(app, "owner@interiorltd.jp", "オーナー", admin=True)
    agent = await console_agent(app, "arbeit@interiorltd.jp", "バイト")
    agent = await accounts.set_needs_approval(agent.id, True, by=owner)
    ticket = await submit_inquiry(app)
    result = await app.state.helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), [Reply(body)]
    )
    [pending] = await rows(app, PendingReply, PendingReply.id == result.awaiting_approval)
    return pending, ticket.reference


async def customer_replies(app: Starlette) -> list[Outbox]:
    return await rows(app, Outbox, Outbox.kind == "agent_reply")


async def test_admins_approve_from_the_list_once_however_often_they_click(app: Starlette) -> None:
    pending, reference = await held_reply(app)
    async with logged_in_client(app, admin=True) as console:
        page = await console.get("/console/approvals")
        item = soup(page).select_one(f"#approval-{pending.id}")
        assert item.select_one("textarea[name=body]").get_text() == "明日発送いたします。"
        assert "バイト" in item.select_one(".meta").get_text()
        token = csrf(page, f"#approval-{pending.id} form.approve-form")
        form = {"csrf_token": token, "action": "approve", "body": "ignored unless edited"}
        first = await console.post(f"/console/approvals/{pending.id}/approve", data=form)
        second = await console.post(f"/console/approvals/{pending.id}/approve", data=form)
        assert first.status_code == second.status_code == 303
        assert (
            "送信しました"
            in soup(await console.get(first.headers["location"])).select_one(".notice").get_text()
        )
        again = soup(await console.get(second.headers["location"]))
        assert "すでに承認して送信されています" in again.select_one(".notice").get_text()
        assert again.select(".approval") == []
        ticket_page = soup(await console.get(f"/console/t/{reference}"))
        state = ticket_page.select_one(f"#approval-reply-{pending.id} .approval-state").get_text()
        assert "承認済み・送信しました" in state
    [mail] = await customer_replies(app)
    assert "明日発送いたします。" in mail.text and "ignored" not in mail.text


async def test_an_answer_while_the_reply_waited_is_shown_before_it_is_sent(
    app: Starlette,
) -> None:
    pending, reference = await held_reply(app)
    tickets = app.state.helpdesk.tickets
    tanaka = await tickets.add_agent("tanaka@example.jp", "田中")
    ticket = await tickets.find(reference)
    assert (
        await tickets.apply(ticket, Actor.agent(tanaka, channel=Channel.web), [Reply("田中です")])
    ).ok
    async with logged_in_client(app, admin=True) as console:
        page = await console.get("/console/approvals")
        token = csrf(page, f"#approval-{pending.id} form.approve-form")
        form = {"csrf_token": token, "action": "approve", "body": ""}
        asked = await console.post(f"/console/approvals/{pending.id}/approve", data=form)
        assert asked.status_code == 409
        item = soup(asked).select_one(f"#approval-{pending.id}")
        assert "承認を待つあいだに" in item.select_one(".error-summary").get_text()
        seen_at = item.select_one("form.approve-form input[name=seen_at]")["value"]
        assert len(await customer_replies(app)) == 1  # 田中's only
        form["csrf_token"] = csrf(asked, f"#approval-{pending.id} form.approve-form")
        sent = await console.post(
            f"/console/approvals/{pending.id}/approve", data={**form, "seen_at": seen_at}
        )
        assert sent.status_code == 303
    assert [m for m in await customer_replies(app) if "明日発送いたします。" in m.text] != []
    assert len(await customer_replies(app)) == 2


async def test_admins_edit_and_approve_or_reject_from_the_list(app: Starlette) -> None:
    pending, _reference = await held_reply(app)
    async with logged_in_client(app, admin=True) as console:
        page = await console.get("/console/approvals")
        token = csrf(page, f"#approval-{pending.id} form.approve-form")
        url = f"/console/approvals/{pending.id}/approve"
        empty = await console.post(url, data={"csrf_token": token, "action": "edit", "body": ""})
        assert empty.status_code == 422
        item = soup(empty).select_one(f"#approval-{pending.id}")
        assert "本文を入力してください" in item.select_one(".error-summary").get_text()
        edited = "山田 花子 様\r\n\r\nご注文の商品は明日発送いたします。"
        done = await console.post(url, data={"csrf_token": token, "action": "edit", "body": edited})
        assert done.status_code == 303
    [mail] = await customer_replies(app)
    assert "ご注文の商品は明日発送いたします。" in mail.text
    [pending] = await rows(app, PendingReply)
    assert pending.state == PendingState.approved and pending.edited

    other, _ = await held_reply_for_another_ticket(app)
    async with logged_in_client(app, admin=True) as console:
        page = await console.get("/console/approvals")
        token = csrf(page, f"#approval-{other.id} form.reject-form")
        rejected = await console.post(
            f"/console/approvals/{other.id}/reject",
            data={"csrf_token": token, "reason": "敬語を直してください"},
        )
        assert rejected.status_code == 303
        assert soup(await console.get("/console/approvals")).select(".approval") == []
    assert len(await customer_replies(app)) == 1
    [other] = await rows(app, PendingReply, PendingReply.id == other.id)
    assert other.state == PendingState.rejected and other.reason == "敬語を直してください"


async def held_reply_for_another_ticket(app: Starlette) -> tuple[PendingReply, str]:
    [agent] = [a for a in await app.state.helpdesk.accounts.agents() if a.needs_approval]
    ticket = await submit_inquiry(app, email="taro@example.jp", name="山田 太郎")
    result = await app.state.helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), [Reply("確認します")]
    )
    [pending] = await rows(app, PendingReply, PendingReply.id == result.awaiting_approval)
    return pending, ticket.reference


async def test_admins_set_who_needs_approval_on_the_agents_page(app: Starlette) -> None:
    agent = await console_agent(app)
    async with logged_in_client(app, admin=True) as console:
        page = await console.get("/console/agents")
        form = f"form.approval-toggle[action='/console/agents/{agent.id}/approval']"
        assert soup(page).select_one(f"{form} input[name=needs_approval]")["value"] == "1"
        token = csrf(page, form)
        forged = await console.post(
            f"/console/agents/{agent.id}/approval", data={"needs_approval": "1"}
        )
        assert forged.status_code == 403
        done = await console.post(
            f"/console/agents/{agent.id}/approval",
            data={"csrf_token": token, "needs_approval": "1"},
        )
        assert done.status_code == 303
        after = soup(await console.get(done.headers["location"]))
        assert "承認を待ってから送信" in after.select_one(".notice").get_text()
        assert after.select_one(f"{form} input[name=needs_approval]")["value"] == "0"
        gone = await console.post(
            "/console/agents/999/approval", data={"csrf_token": token, "needs_approval": "1"}
        )
        assert gone.status_code == 404
    [event] = await rows(app, TicketEvent, TicketEvent.kind == "agent_approval_required")
    assert event.actor == "admin@example.jp" and json.loads(event.data) == {"agent": agent.email}
    async with logged_in_client(app) as console:  # a plain agent may not
        page = await console.get("/console")
        refused = await console.post(
            f"/console/agents/{agent.id}/approval",
            data={"csrf_token": csrf(page, "form.logout"), "needs_approval": "0"},
        )
        assert refused.status_code == 403


async def test_inserting_without_script_fills_the_reply_box_and_the_reply_waits(
    app: Starlette,
) -> None:
    """The whole way in the console: ?reply=ID puts the rendered text in the reply box; an
    agent who needs approval sends it, and it waits (nothing to the customer), saying so."""
    owner = await console_agent(app, "owner@interiorltd.jp", "オーナー", admin=True)
    saved = await app.state.helpdesk.saved_replies.save(SavedReplyIn("お詫び", BODY), by=owner)
    ticket = await submit_inquiry(app)
    async with logged_in_client(app) as console:  # 田中
        [tanaka] = [a for a in await app.state.helpdesk.accounts.agents() if a.name == "田中"]
        await app.state.helpdesk.accounts.set_needs_approval(tanaka.id, True, by=owner)
        page = soup(await console.get(f"/console/t/{ticket.reference}", params={"reply": saved.id}))
        box = page.select_one("form.reply-form textarea[name=body]")
        text = box.get_text()
        assert text.startswith("山田 花子 様") and "【要入力: 注文番号】" in text
        # Sent with the marker left: refused, the text kept for the agent to finish.
        fields = {
            str(f["name"]): str(f.get("value", ""))
            for f in page.select("form.reply-form input[type=hidden]")
        }
        url = f"/console/t/{ticket.reference}/reply"
        refused = await console.post(url, data={**fields, "body": text})
        assert refused.status_code == 422
        assert "【要入力: 注文番号】" in soup(refused).select_one(".error-summary").get_text()
        finished = text.replace("【要入力: 注文番号】", "#1234").replace(
            "【要入力: 返品期限】", "12月4日(金)"
        )
        sent = await console.post(url, data={**fields, "body": finished})
        assert sent.status_code == 303, sent.text
        after = soup(await console.get(sent.headers["location"]))
        assert "承認待ち" in after.select_one(".notice").get_text()
        state = after.select_one(".approval-reply .approval-state").get_text()
        assert "承認待ち(お客様にはまだ送信していません)" in state
    assert await customer_replies(app) == []
    [pending] = await rows(app, PendingReply)
    assert pending.body == finished and pending.channel == "web"
