"""``helpdesk.tickets.store``: queries over a session the caller opened."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from helpdesk.tickets import store
from tests.helpers import add_agent, submit_inquiry


@pytest.mark.parametrize(
    ("who", "found"),
    [
        ("sato@interiorltd.jp", "sato@interiorltd.jp"),
        ("SATO@interiorltd.jp", "sato@interiorltd.jp"),
        ("ｓａｔｏ＠ｉｎｔｅｒｉｏｒｌｔｄ．ｊｐ", "sato@interiorltd.jp"),  # NFKC
        ("佐藤 花子", "sato@interiorltd.jp"),
        ("佐藤", "sato@interiorltd.jp"),  # the only name starting with 佐藤
        ("鈴木", None),  # 鈴木 一郎 and 鈴木 次郎: which one is not guessed
        ("田中", None),
    ],
)
async def test_an_assignee_is_found_by_address_name_or_unique_prefix(
    app: Starlette, who: str, found: str | None
) -> None:
    await add_agent(app, "sato@interiorltd.jp", "佐藤 花子")
    await add_agent(app, "ichiro@interiorltd.jp", "鈴木 一郎")
    await add_agent(app, "jiro@interiorltd.jp", "鈴木 次郎")
    async with app.state.helpdesk.sessions() as session:
        agent = await store.find_agent(session, who=who)
    assert (agent.email if agent else None) == found


@pytest.mark.parametrize("who", ["%", "_%", "佐_"])
async def test_like_wildcards_in_a_name_match_no_one(app: Starlette, who: str) -> None:
    # With a single agent, a wildcard prefix would have found 佐藤 as "the only match".
    await add_agent(app, "sato@interiorltd.jp", "佐藤 花子")
    async with app.state.helpdesk.sessions() as session:
        assert await store.find_agent(session, who=who) is None


async def test_store_functions_use_the_callers_session(app: Starlette) -> None:
    ticket = await submit_inquiry(app)
    async with app.state.helpdesk.sessions() as session:
        assert await store.find_ticket(session, reference=ticket.reference) is not None
        assert await store.find_ticket(session, reference="HD-00-99999") is None
        locked = await store.lock_ticket(session, ticket_id=ticket.id)
        assert locked.reference == ticket.reference
        with pytest.raises(LookupError):
            await store.lock_ticket(session, ticket_id=ticket.id + 1000)
        [(first, attachments)] = await store.conversation(
            session, ticket_id=ticket.id, internal=False
        )
        assert first.body == "注文した商品がまだ届きません。" and attachments == []
        assert [e.kind for e in await store.ticket_events(session, ticket_id=ticket.id)] == [
            "created"
        ]
        # Nothing was written, so nothing is left to commit.
        assert not session.new and not session.dirty
