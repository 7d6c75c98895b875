"""Full-text search over tickets on SQLite (FTS5) and PostgreSQL (tsvector + GIN)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette

from helpdesk.models import Agent, Ticket
from helpdesk.tickets import Actor, AddNote, Channel, Reply
from helpdesk.tickets.commands import Merge
from helpdesk.tickets.queue import ALL_CHOICE, QueueFilter
from helpdesk.tickets.search import identifier_terms, query_terms, text_terms
from tests.helpers import add_agent, rows, submit_inquiry


async def found(app: Starlette, q: str, agent: Agent, **filters: Any) -> list[str]:
    page = await app.state.helpdesk.tickets.queue(
        QueueFilter(status=ALL_CHOICE, q=q, **filters), agent=agent
    )
    return [ticket.reference for ticket, _ in page.rows]


async def three_tickets(app: Starlette) -> list[Ticket]:
    return [
        await submit_inquiry(
            app,
            name="山田 花子",
            email="hanako@example.jp",
            order_number="A-10023",
            description="届いたケースの角に傷がありました。交換できますか。",
        ),
        await submit_inquiry(
            app,
            name="佐々木 一郎",
            email="ichiro.sasaki@mail.example.com",
            order_number="B-20077",
            description="注文した商品がまだ届きません。",
        ),
        await submit_inquiry(
            app,
            name="山本 次郎",
            email="jiro@example.net",
            description="個人情報の削除をお願いします。",
        ),
    ]


async def test_search_finds_by_order_number_mail_name_and_words(app: Starlette) -> None:
    agent = await add_agent(app)
    hanako, ichiro, jiro = [t.reference for t in await three_tickets(app)]

    assert await found(app, "A-10023", agent) == [hanako]
    assert await found(app, "a-10023", agent) == [hanako]  # case folded
    assert await found(app, "Ｂ－２００７７", agent) == [ichiro]  # full-width typed
    assert await found(app, "hanako@example.jp", agent) == [hanako]
    assert await found(app, "hanako", agent) == [hanako]  # the address's start
    assert await found(app, "ichiro.sasaki@mail.example.com", agent) == [ichiro]
    assert await found(app, "山田", agent) == [hanako]  # the family name only
    assert await found(app, "花子", agent) == [hanako]
    assert await found(app, "山本", agent) == [jiro]
    assert await found(app, "傷", agent) == [hanako]  # 「傷がありました」
    assert await found(app, "届く", agent) == [hanako, ichiro]  # 届いた, 届きません
    assert await found(app, "情報", agent) == [jiro]  # a part of 個人情報
    assert await found(app, hanako, agent) == [hanako]  # the reference
    assert await found(app, "山田 傷", agent) == [hanako]  # every word must match
    assert await found(app, "山田 削除", agent) == []
    assert await found(app, "割れ", agent) == []
    # The index's own syntax typed into the box is searched as words, never run.
    for odd in ('"', "*", "OR", "NEAR(a b)", "傷 -山田", "'; DROP TABLE ticket; --", "、、 傷"):
        assert isinstance(await found(app, odd, agent), list)
    assert await found(app, "、、 傷", agent) == [hanako]  # punctuation alone is dropped


async def test_replies_and_notes_are_searchable_in_the_same_transaction(app: Starlette) -> None:
    agent = await add_agent(app)
    ticket, *_ = await three_tickets(app)
    tickets = app.state.helpdesk.tickets
    actor = Actor.agent(agent, channel=Channel.web)
    assert await found(app, "代替品", agent) == []
    result = await tickets.apply(ticket, actor, [Reply("代替品をお送りします。")])
    assert result.ok
    assert await found(app, "代替品", agent) == [ticket.reference]
    await tickets.apply(ticket, actor, [AddNote("倉庫に在庫確認済み")])
    assert await found(app, "倉庫", agent) == [ticket.reference]
    await tickets.add_customer_message(ticket, "ありがとうございます。箱も潰れていました。", {})
    assert await found(app, "潰れる", agent) == [ticket.reference]


async def test_the_documents_live_in_the_dialects_own_index(app: Starlette) -> None:
    await three_tickets(app)
    async with app.state.helpdesk.db.connect() as connection:
        if connection.dialect.name == "sqlite":
            sql = (
                await connection.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'ticket_search'")
                )
            ).scalar_one()
            assert "fts5" in sql.lower()
            plan = (
                await connection.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT rowid FROM ticket_search"
                        " WHERE ticket_search MATCH '\"傷\"'"
                    )
                )
            ).all()
            assert any("VIRTUAL TABLE INDEX" in str(row[-1]) for row in plan), plan
        else:
            kind = (
                await connection.execute(
                    text("SELECT pg_typeof(document)::text FROM ticket_search LIMIT 1")
                )
            ).scalar_one()
            assert kind == "tsvector"
            index = (
                await connection.execute(
                    text(
                        "SELECT indexdef FROM pg_indexes WHERE tablename = 'ticket_search'"
                        " AND indexdef LIKE '%gin%'"
                    )
                )
            ).scalar_one()
            assert "document" in index
            await connection.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                r[0]
                for r in (
                    await connection.execute(
                        text(
                            "EXPLAIN SELECT ticket_id FROM ticket_search"
                            " WHERE document @@ CAST('''傷''' AS tsquery)"
                        )
                    )
                ).all()
            )
            assert "ix_ticket_search_document" in plan, plan


async def test_reindex_and_backfill_rebuild_missing_documents(app: Starlette) -> None:
    agent = await add_agent(app)
    hanako, *_ = await three_tickets(app)
    async with app.state.helpdesk.sessions() as session, session.begin():
        await session.execute(text("DELETE FROM ticket_search"))
    assert await found(app, "傷", agent) == []
    assert await app.state.helpdesk.tickets.backfill_search() == 3
    assert await found(app, "傷", agent) == [hanako.reference]
    assert await app.state.helpdesk.tickets.backfill_search() == 0  # nothing missing now
    assert await app.state.helpdesk.tickets.backfill_search(everything=True) == 3
    assert await found(app, "傷", agent) == [hanako.reference]


async def test_search_is_combined_with_the_other_filters(app: Starlette) -> None:
    agent = await add_agent(app)
    hanako, ichiro, _ = await three_tickets(app)
    tickets = app.state.helpdesk.tickets
    await tickets.apply(ichiro, Actor.agent(agent, channel=Channel.web), [Reply("確認します")])
    assert await found(app, "届く", agent, flags=frozenset({"waiting"})) == [ichiro.reference]
    assert await found(app, "届く", agent, assignee="unassigned") == [
        hanako.reference,
        ichiro.reference,
    ]


def test_terms_of_documents_and_queries_meet() -> None:
    assert "傷" in text_terms("傷がありました")
    assert query_terms("傷が") == [("傷", False)]
    assert query_terms("HD-26-00001") == [("hd-26-00001", True)]
    assert query_terms("  ") == []
    names = identifier_terms(
        reference="HD-26-00001",
        order_number="＃１２３４",
        email="Hanako@Example.jp",
        name="山田 花子",
    )
    assert {"hd-26-00001", "#1234", "1234", "hanako@example.jp", "hanako", "山田", "花子"} <= names
    # Quotes and operators in a query are words, never the index's syntax.
    assert query_terms('"OR* AND') == [('"or*', True), ("and", True)]


async def test_a_merged_duplicates_words_find_the_ticket_it_joined(app: Starlette) -> None:
    agent = await add_agent(app)
    kept = await submit_inquiry(app, email="hanako@example.jp", description="配送について")
    duplicate = await submit_inquiry(
        app, email="hanako@example.jp", description="ストラップの金具が折れていました。"
    )
    assert await found(app, "金具", agent) == [duplicate.reference]

    result = await app.state.helpdesk.tickets.apply(
        duplicate, Actor.agent(agent, channel=Channel.web), [Merge(kept.reference)]
    )
    assert result.ok, result.problems
    assert set(await found(app, "金具", agent)) == {kept.reference, duplicate.reference}
    # The queue's "customer replied" sees the duplicate's message on the kept ticket.
    [joined] = await rows(app, Ticket, Ticket.id == kept.id)
    [merged] = await rows(app, Ticket, Ticket.id == duplicate.id)
    assert joined.last_customer_at is not None and merged.last_customer_at is not None
    assert joined.last_customer_at >= merged.last_customer_at
