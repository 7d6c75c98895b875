"""The knowledge base edited in the console (issue 11 items 1, 3 and 4): entries and
categories saved as revisions over data/, validation in Japanese that keeps what was typed,
why a question matches, gaps grouped by meaning turned into answers, and a resolved ticket
turned into a draft."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from helpdesk.db import utcnow
from helpdesk.models import FaqGap, FaqKbVersion, FaqRevision, TicketStatus
from helpdesk.tickets import Actor, Reply, SetStatus
from tests.helpers import add_agent, logged_in_client, rows, soup, submit_inquiry


async def _csrf(http: httpx.AsyncClient, path: str) -> str:
    page = soup(await http.get(path))
    field = page.select_one("main form input[name=csrf_token]")
    assert field is not None, page
    return str(field["value"])


def _entry_data(csrf: str, **fields: str) -> dict[str, str]:
    data = {
        "csrf_token": csrf,
        "id": "shipping-overseas",
        "question": "海外へ発送できますか？",
        "alternatives": "海外発送はしていますか\n外国に送ってもらえますか",
        "category": "発送/お届け",
        "tags": "海外、国外",
        "answer": "申し訳ございませんが、海外への発送は承っておりません。",
        "status": "published",
    }
    return {**data, **fields}


async def _published(app: Starlette, entry_id: str) -> bool:
    faq = app.state.helpdesk.faq
    await faq.reload_if_changed()
    return faq.engine.get(entry_id) is not None


async def test_an_admin_creates_an_entry_and_the_bot_answers_with_it(app: Starlette) -> None:
    async with logged_in_client(app, admin=True) as admin:
        page = await admin.get("/console/faq")
        assert page.status_code == 200 and soup(page).html["lang"] == "ja"
        assert soup(page).select_one("tr.entry[data-id=shipping-lead-time]") is not None
        before = app.state.helpdesk.faq.engine.ask("海外に発送してもらえますか")
        assert not (before.answered and before.entry.id == "shipping-overseas")

        csrf = await _csrf(admin, "/console/faq/new")
        response = await admin.post("/console/faq/new", data=_entry_data(csrf))
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/console/faq/e/shipping-overseas?done=saved"

    [revision] = await rows(app, FaqRevision)
    assert (revision.kind, revision.key, revision.status) == (
        "entry",
        "shipping-overseas",
        "published",
    )
    assert revision.agent_name == "管理 太郎" and revision.changes == "新規作成"
    [version] = await rows(app, FaqKbVersion)
    assert version.version == 1
    assert await _published(app, "shipping-overseas")
    answer = app.state.helpdesk.faq.engine.ask("海外に発送してもらえますか")
    assert answer.answered and answer.entry.id == "shipping-overseas"
    # The customers' page shows it, under its category.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as customer:
        page = await customer.get("/faq/shipping-overseas")
        assert page.status_code == 200 and "海外への発送は承っておりません" in page.text


async def test_a_refused_save_says_why_in_japanese_and_keeps_what_was_typed(
    app: Starlette,
) -> None:
    async with logged_in_client(app, admin=True) as admin:
        csrf = await _csrf(admin, "/console/faq/new")
        typed = _entry_data(
            csrf,
            id="Shipping Overseas",
            question="",
            answer="詳しくは[こちら](javascript:alert(1))をご覧ください。海外発送の説明文です。",
        )
        response = await admin.post("/console/faq/new", data=typed)
        assert response.status_code == 422
        page = soup(response)
        errors = [li.get_text() for li in page.select(".error-summary li")]
        assert any("IDは半角の英小文字" in e for e in errors)
        assert "質問を入力してください。" in errors
        assert any("リンク「こちら」" in e and "https://" in e for e in errors)
        # Nothing typed is lost.
        assert page.select_one("input[name=id]")["value"] == "Shipping Overseas"
        assert page.select_one("textarea[name=answer]").get_text() == typed["answer"]
        assert (
            "外国に送ってもらえますか" in page.select_one("textarea[name=alternatives]").get_text()
        )
        assert page.select_one("input[name=tags]")["value"] == "海外、国外"
        assert {"id", "question", "answer"} <= {
            f.select_one("[name]")["name"] for f in page.select(".field.invalid")
        }

        # An id in use, by a file's entry.
        taken = await admin.post("/console/faq/new", data=_entry_data(csrf, id="other-receipt"))
        assert taken.status_code == 422
        assert "すでに使われています" in soup(taken).select_one(".error-summary").get_text()
    assert await rows(app, FaqRevision) == []


async def test_edits_are_revisions_over_the_files_with_who_and_what_changed(
    app: Starlette,
) -> None:
    faq = app.state.helpdesk.faq
    original = faq.engine.get("other-receipt")
    async with logged_in_client(app, admin=True) as admin:
        page = soup(await admin.get("/console/faq/e/other-receipt"))
        form = page.select_one("form.faq-form")
        data = {
            field["name"]: field.get("value", "")
            for field in form.select("input[name]")
            if field.get("type") != "radio"
        }
        data["alternatives"] = form.select_one("textarea[name=alternatives]").get_text()
        data["answer"] = form.select_one("textarea[name=answer]").get_text()
        data["category"] = form.select_one("select[name=category] option[selected]")["value"]
        data["dynamic"] = ""
        data["status"] = "published"
        assert data["question"] == original.question and data["base"] == ""
        first = {**data, "alternatives": data["alternatives"] + "\n宛名を変えた領収書がほしい"}
        assert (await admin.post("/console/faq/e/other-receipt", data=first)).status_code == 303
        # A second admin's form, opened before the first save, is stale: refused, kept.
        stale = {**data, "answer": data["answer"] + "\n(追記)"}
        refused = await admin.post("/console/faq/e/other-receipt", data=stale)
        assert refused.status_code == 422
        assert "別の方が変更しました" in soup(refused).select_one(".error-summary").get_text()
        assert soup(refused).select_one("textarea[name=answer]").get_text().endswith("(追記)")

        page = soup(await admin.get("/console/faq/e/other-receipt"))
        base = page.select_one("form.faq-form input[name=base]")["value"]
        retire = await admin.post(
            "/console/faq/e/other-receipt/status",
            data={"csrf_token": data["csrf_token"], "status": "retired", "base": base},
        )
        assert retire.status_code == 303
        history = [
            li.get_text()
            for li in soup(await admin.get(retire.headers["location"])).select("ol.revisions li")
        ]
    revisions = await rows(app, FaqRevision)
    assert [r.status for r in revisions] == ["published", "retired"]
    assert revisions[0].changes == "言い換え" and revisions[1].changes == "状態"
    assert "管理 太郎" in history[0] and "非公開(廃止)" in history[0]
    assert not await _published(app, "other-receipt")  # retired: the bot no longer has it
    # The files are untouched: a fresh install still starts from them.
    from faq import load_entries
    from helpdesk.settings import ROOT

    assert any(e.id == "other-receipt" for e in load_entries(ROOT / "data" / "faq"))


async def test_categories_are_created_renamed_and_retired_only_when_empty(
    app: Starlette,
) -> None:
    async with logged_in_client(app, admin=True) as admin:
        csrf = await _csrf(admin, "/console/faq/categories")
        created = await admin.post(
            "/console/faq/categories", data={"csrf_token": csrf, "name": "ギフト", "position": "9"}
        )
        assert created.status_code == 303
        same = await admin.post(
            "/console/faq/categories", data={"csrf_token": csrf, "name": "ギフト"}
        )
        assert same.status_code == 422
        assert "すでにあります" in soup(same).select_one(".error-summary").get_text()
        busy = await admin.post(
            "/console/faq/categories",
            data={"csrf_token": csrf, "key": "決済方法", "name": "決済方法", "retired": "1"},
        )
        assert busy.status_code == 422
        assert "公開中の質問が" in soup(busy).select_one(".error-summary").get_text()
        renamed = await admin.post(
            "/console/faq/categories",
            data={"csrf_token": csrf, "key": "決済方法", "name": "お支払い", "position": "2"},
        )
        assert renamed.status_code == 303
    await app.state.helpdesk.faq.reload_if_changed()
    categories = app.state.helpdesk.faq.categories()
    assert "お支払い" in categories and "決済方法" not in categories
    assert all(e.category == "お支払い" for e in categories["お支払い"])


async def test_the_preview_shows_the_ranking_and_why_each_word_matched(app: Starlette) -> None:
    async with logged_in_client(app, admin=True) as admin:
        page = soup(await admin.get("/console/faq/preview", params={"q": "へんぴんできますか"}))
        assert "ボットは「" in page.select_one(".verdict h2").get_text()
        first = page.select_one("ol.ranking li.hit")
        assert first["data-id"] == "other-returns-exchange"
        [word] = first.select("tr.word")
        assert word.select_one(".how").get_text() == "読み"
        assert word.select_one(".matched").get_text().startswith("返品")

        page = soup(await admin.get("/console/faq/preview", params={"q": "ラッピンクできますか"}))
        hit = page.select_one("ol.ranking li.hit[data-id=other-wrapping]")
        assert hit.select_one("tr.word .how").get_text() == "入力ミス"
        assert "ラッピング" in hit.select_one("tr.word .matched").get_text()

        page = soup(await admin.get("/console/faq/preview", params={"q": "代金引換で払えますか"}))
        hows = {row.select_one(".how").get_text() for row in page.select("ol.ranking tr.word")}
        assert "そのまま" in hows

        unknown = soup(await admin.get("/console/faq/preview", params={"q": "宇宙旅行の予約"}))
        assert "回答せず" in unknown.select_one(".verdict h2").get_text()
        empty = await admin.get("/console/faq/preview", params={"q": " "})
        assert empty.status_code == 400 and "質問を入力してください" in empty.text


async def _log_gaps(app: Starlette, *queries: str) -> None:
    async with app.state.helpdesk.sessions() as session:
        for query in queries:
            session.add(
                FaqGap(
                    query=query,
                    confidence=0.1,
                    best_entry_id="other-returns-exchange",
                    created_at=utcnow(),
                )
            )
        await session.commit()


async def test_gaps_are_grouped_and_a_group_becomes_a_phrasing_a_synonym_or_an_entry(
    app: Starlette,
) -> None:
    await _log_gaps(
        app,
        "海外に発送できますか",
        "海外発送してますか",
        "海外に発送できますか",
        "かいがいにはっそうできますか",
        "ギフト包装はできますか",
        "ギフト包装できる？",
    )
    async with logged_in_client(app, admin=True) as admin:
        page = soup(await admin.get("/console/faq/gaps"))
        groups = page.select("section.gap-group")
        wordings = {frozenset(li.get_text() for li in g.select(".wordings li")): g for g in groups}
        overseas = wordings[frozenset({"海外に発送できますか(2件)", "海外発送してますか(1件)"})]
        gift = wordings[frozenset({"ギフト包装はできますか(1件)", "ギフト包装できる？(1件)"})]
        assert groups[0] is overseas  # the most asked first
        assert overseas.select_one("h2").get_text() == "「海外に発送できますか」3件"
        assert gift.select_one(".count").get_text() == "2件"
        # Spelt in kana, and not read as the indexed words: a group of its own.
        assert len(groups) == 3
        # New entry, prefilled from the group.
        link = overseas.select_one("a.new-entry")["href"]
        form = soup(await admin.get(link))
        assert form.select_one("input[name=question]")["value"] == "海外に発送できますか"
        assert form.select_one("textarea[name=alternatives]").get_text() == "海外発送してますか"
        source = form.select_one("input[name=source]")["value"]
        assert source == "gap:" + overseas["data-key"]

        # The other group as a phrasing of the wrapping entry.
        csrf = gift.select_one("form.phrasing-form input[name=csrf_token]")["value"]
        added = await admin.post(
            "/console/faq/gaps/phrasing",
            data={
                "csrf_token": csrf,
                "group": gift["data-key"],
                "phrasing": "ギフト包装はできますか",
                "entry_id": "other-wrapping",
            },
        )
        assert added.status_code == 303
        again = await admin.post(
            "/console/faq/gaps/phrasing",
            data={
                "csrf_token": csrf,
                "group": gift["data-key"],
                "phrasing": "ギフト包装はできますか",
                "entry_id": "other-wrapping",
            },
        )
        assert again.status_code == 422
        assert "すでに登録" in soup(again).select_one(".error-summary").get_text()
        # A synonym; a word with no content is refused in Japanese, what was typed kept.
        bad = await admin.post(
            "/console/faq/gaps/synonym",
            data={
                "csrf_token": csrf,
                "group": gift["data-key"],
                "word": "です",
                "same_as": "ラッピング",
            },
        )
        assert bad.status_code == 422
        page = soup(bad)
        assert "検索に使える言葉がありません" in page.select_one(".error-summary").get_text()
        kept = page.select_one(f"#gap-{gift['data-key']} form.synonym-form input[name=word]")
        assert kept["value"] == "です"
        good = await admin.post(
            "/console/faq/gaps/synonym",
            data={
                "csrf_token": csrf,
                "group": gift["data-key"],
                "word": "風呂敷",
                "same_as": "ラッピング",
            },
        )
        assert good.status_code == 303
        page = soup(await admin.get("/console/faq/gaps"))
        handled = page.select_one(f"#gap-{gift['data-key']}")
        assert (
            "handled" in handled["class"] and "対応済み" in handled.select_one(".dates").get_text()
        )
    faq = app.state.helpdesk.faq
    await faq.reload_if_changed()
    assert "ギフト包装はできますか" in faq.engine.get("other-wrapping").alternatives
    assert faq.engine.search("風呂敷")[0].entry.id == "other-wrapping"
    revisions = await rows(app, FaqRevision)
    assert [r.kind for r in revisions] == ["entry", "synonyms"]
    assert all(r.source == "gap:" + gift["data-key"] for r in revisions)


async def test_no_votes_are_shown_beside_the_gaps(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    faq = app.state.helpdesk.faq
    for _ in range(3):
        await faq.record_feedback("other-returns-exchange", False, "返品の送料は？")
    await faq.record_feedback("other-returns-exchange", True, None)
    await _log_gaps(app, "返品の送料はだれが払いますか")
    async with logged_in_client(app, admin=True) as admin:
        page = soup(await admin.get("/console/faq/gaps"))
        closest = page.select_one("section.gap-group .closest")
        assert closest.select_one(".no-votes").get_text() == "3"
        row = page.select_one("table.unhelpful tbody tr")
        assert row.select_one(".no-votes").get_text() == "3"
        listing = soup(await admin.get("/console/faq"))
        assert (
            listing.select_one("tr.entry[data-id=other-returns-exchange] .no-votes").get_text()
            == "3"
        )


async def test_a_resolved_ticket_becomes_a_draft_entry_with_the_agents_answer(
    app: Starlette,
) -> None:
    helpdesk = app.state.helpdesk
    agent = await add_agent(app)
    ticket = await submit_inquiry(
        app,
        category="other",
        description="ギフト用に名入れはできますか？\n連絡先は090-1234-5678です。",
    )
    answer = "名入れは承っておりません。ラッピングは無料で承ります。"
    result = await helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel="web"), [Reply(answer), SetStatus(TicketStatus.resolved)]
    )
    assert result.ok, result.problems
    async with logged_in_client(app, admin=True) as admin:
        page = soup(await admin.get(f"/console/t/{ticket.reference}"))
        form = page.select_one("form.faq-draft-form")
        assert form is not None
        response = await admin.post(
            form["action"], data={"csrf_token": form.select_one("input[name=csrf_token]")["value"]}
        )
        assert response.status_code == 303
        page = soup(await admin.get(response.headers["location"]))
        assert page.select_one(".entry-state .status").get_text() == "下書き"
        assert page.select_one("input#question")["value"] == "ギフト用に名入れはできますか？"
        assert page.select_one("textarea[name=answer]").get_text() == answer
    [revision] = await rows(app, FaqRevision)
    assert revision.status == "draft" and revision.source == f"ticket:{ticket.reference}"
    assert "090-1234-5678" not in revision.data
    # A draft is not served to customers.
    assert not await _published(app, revision.key)


async def test_an_open_ticket_is_not_turned_into_a_draft(app: Starlette) -> None:
    ticket = await submit_inquiry(app)
    async with logged_in_client(app, admin=True) as admin:
        page = soup(await admin.get(f"/console/t/{ticket.reference}"))
        assert page.select_one("form.faq-draft-form") is None
        csrf = page.select_one("form.logout input[name=csrf_token]")["value"]
        response = await admin.post(
            f"/console/t/{ticket.reference}/faq-draft", data={"csrf_token": csrf}
        )
        assert response.status_code == 422 and "解決済みのチケットだけ" in response.text
    assert await rows(app, FaqRevision) == []
