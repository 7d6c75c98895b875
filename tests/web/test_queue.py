"""The console's queue (issue 10 item 3): default view, filters as bookmarkable query
parameters checked with Japanese messages, counts, keyset pages, the search box."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update
from starlette.applications import Starlette

from helpdesk.db import utcnow
from helpdesk.models import Ticket, TicketKind, TicketStatus
from helpdesk.tickets import Actor, Assign, Channel, Reply, SetStatus
from helpdesk.tickets.queue import PAGE_SIZE
from tests.helpers import add_agent, logged_in_client, rows, soup, submit_inquiry


def references(response: httpx.Response) -> list[str]:
    return [str(r["data-reference"]) for r in soup(response).select("tr.ticket-row")]


async def set_fields(app: Starlette, ticket: Ticket, **values: object) -> None:
    async with app.state.helpdesk.sessions() as session, session.begin():
        await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(**values))


async def test_the_default_queue_is_unfinished_tickets_oldest_first_with_counts(
    app: Starlette,
) -> None:
    first = await submit_inquiry(app, name="一番 古い", email="a@example.jp")
    second = await submit_inquiry(app, name="二番", email="b@example.jp")
    done = await submit_inquiry(app, name="解決 済", email="c@example.jp")
    agent = await add_agent(app)
    tickets = app.state.helpdesk.tickets
    actor = Actor.agent(agent, channel=Channel.web)
    await tickets.apply(done, actor, [SetStatus(TicketStatus.resolved)])
    await tickets.apply(second, actor, [SetStatus(TicketStatus.pending)])
    async with logged_in_client(app) as console:
        page = await console.get("/console")
        assert page.status_code == 200
        assert references(page) == [first.reference, second.reference]
        counts = soup(page).select_one(".queue-counts").get_text(" ", strip=True)
        assert "受付済み 1件" in counts and "お客様のご返信待ち 1件" in counts
        assert "対応中 0件" in counts
        # Japanese labels from helpdesk/tickets/labels.py
        cells = [td.get_text() for td in soup(page).select("tr.ticket-row td")]
        assert "受付済み" in cells and "お問い合わせ" in cells and "未割り当て" in cells

        resolved = await console.get("/console", params={"status": "resolved"})
        assert references(resolved) == [done.reference]
        everything = await console.get("/console?status=all")
        assert references(everything) == [first.reference, second.reference, done.reference]


async def test_filters_by_kind_assignee_late_and_conversation_state(app: Starlette) -> None:
    tanaka_ticket = await submit_inquiry(app, email="a@example.jp")
    sato_ticket = await submit_inquiry(app, email="b@example.jp")
    free = await submit_inquiry(app, email="c@example.jp")
    late = await submit_inquiry(app, email="d@example.jp")
    await set_fields(app, late, late=True, kind=TicketKind.defect)
    sato = await add_agent(app, "sato@interiorltd.jp", "佐藤")
    tickets = app.state.helpdesk.tickets
    async with logged_in_client(app) as console:
        [tanaka] = [a for a in await tickets.agents() if a.name == "田中"]
        actor = Actor.agent(tanaka, channel=Channel.web)
        await tickets.apply(tanaka_ticket, actor, [Assign("田中"), Reply("確認いたします。")])
        await tickets.apply(sato_ticket, actor, [Assign("佐藤"), Reply("お調べします。")])
        await tickets.add_customer_message(sato_ticket, "よろしくお願いします。", {})

        mine = await console.get("/console?assignee=mine")
        assert references(mine) == [tanaka_ticket.reference]
        named = await console.get(f"/console?assignee={sato.id}")
        assert references(named) == [sato_ticket.reference]
        unassigned = await console.get("/console?assignee=unassigned")
        assert references(unassigned) == [free.reference, late.reference]
        defects = await console.get("/console?kind=defect")
        assert references(defects) == [late.reference]
        late_returns = await console.get("/console?late=1")
        assert references(late_returns) == [late.reference]
        waiting = await console.get("/console?waiting=1")
        assert references(waiting) == [tanaka_ticket.reference]
        replied = await console.get("/console?replied=1")
        assert references(replied) == [sato_ticket.reference]
        both = await console.get("/console?replied=1&assignee=mine")
        assert references(both) == []
        # The form shows the filter it was opened with (a bookmark reopens the same view).
        page = soup(named)
        assert page.select_one("#assignee option[selected]").get_text() == "佐藤"


async def test_overdue_and_due_today(app: Starlette) -> None:
    overdue = await submit_inquiry(app, email="a@example.jp")
    today = await submit_inquiry(app, email="b@example.jp")
    later = await submit_inquiry(app, email="c@example.jp")
    now = utcnow()
    await set_fields(app, overdue, first_reply_due_at=now - timedelta(hours=1))
    await set_fields(app, today, first_reply_due_at=now + timedelta(minutes=1))
    await set_fields(app, later, first_reply_due_at=now + timedelta(days=3))
    async with logged_in_client(app) as console:
        page = await console.get("/console?overdue=1")
        assert references(page) == [overdue.reference]
        assert soup(page).select_one("tr.ticket-row .badge.overdue").get_text() == "返信期限超過"
        # "today" in Japan: a minute from now is today unless it is 23:59 there.
        due_today = references(await console.get("/console?due_today=1"))
        assert overdue.reference not in due_today and later.reference not in due_today


async def test_bad_filter_values_get_a_japanese_message_and_the_rest_still_applies(
    app: Starlette,
) -> None:
    ticket = await submit_inquiry(app)
    async with logged_in_client(app) as console:
        page = await console.get(
            "/console",
            params={
                "status": "bogus",
                "kind": "<script>",
                "assignee": "99999",
                "late": "maybe",
                "after": "x1",
                "q": "あ" * 201,
            },
        )
        assert page.status_code == 400
        alert = soup(page).select_one(".errors").get_text()
        assert "「bogus」は状況として選べません" in alert
        assert "「<script>」は種類として選べません" in alert
        assert "「99999」は担当者として選べません" in alert
        assert "「返品期限を過ぎた申請」の指定「maybe」が正しくありません" in alert
        assert "ページの指定が正しくありません" in alert
        assert "200文字以内" in alert
        assert "<script>" not in page.text.replace("&lt;script&gt;", "")
        fine = await console.get("/console", params={"status": "bogus"})
        assert references(fine) == [ticket.reference]  # the default status instead


async def test_keyset_pages_follow_each_other_without_gaps(app: Starlette) -> None:
    made = [await submit_inquiry(app, email=f"c{i}@example.jp") for i in range(PAGE_SIZE + 3)]
    same_time = utcnow() - timedelta(days=1)
    for ticket in made[:5]:  # equal creation times: the id breaks the tie
        await set_fields(app, ticket, created_at=same_time)
    async with logged_in_client(app) as console:
        first = await console.get("/console")
        assert references(first) == [t.reference for t in made[:PAGE_SIZE]]
        following = soup(first).select_one("a[rel=next]")["href"]
        second = await console.get(str(following))
        assert references(second) == [t.reference for t in made[PAGE_SIZE:]]
        assert soup(second).select_one("a[rel=next]") is None


async def test_the_search_box(app: Starlette) -> None:
    hanako = await submit_inquiry(app, description="ケースに傷がありました。", order_number="A-777")
    await submit_inquiry(app, name="鈴木 一郎", email="ichiro@example.jp")
    async with logged_in_client(app) as console:
        page = await console.get("/console", params={"q": "傷"})
        assert references(page) == [hanako.reference]
        assert soup(page).select_one("#q")["value"] == "傷"
        assert references(await console.get("/console", params={"q": "A-777"})) == [
            hanako.reference
        ]
        none = await console.get("/console", params={"q": "存在しない言葉"})
        assert references(none) == []
        assert "当てはまるお問い合わせはありません" in none.text


async def test_the_queue_wants_a_login(client: httpx.AsyncClient, app: Starlette) -> None:
    await submit_inquiry(app)
    response = await client.get("/console?q=hanako")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")
    assert await rows(app, Ticket)  # nothing listed to a stranger


def test_the_partial_index_and_the_queue_name_the_same_statuses() -> None:
    """``ix_ticket_active`` is used only for the very condition it was made with."""
    from helpdesk.models import ACTIVE_STATUS_SQL
    from helpdesk.tickets.queue import ACTIVE

    listed = ", ".join(f"'{status}'" for status in ACTIVE)
    assert f"status IN ({listed})" == ACTIVE_STATUS_SQL
