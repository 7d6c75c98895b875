"""The FAQ over HTTP: the search API, the pages, feedback and the gap log."""

from __future__ import annotations

import re

import httpx
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select
from starlette.applications import Starlette

from helpdesk.models import FaqFeedback, FaqGap
from tests.helpers import csrf_token


def soup(response: httpx.Response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


async def test_api_search_answers_with_the_documented_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/faq/search", params={"q": "領収書はもらえますか", "limit": 5})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"query", "answered", "answer", "searched_as", "contact_url", "results"}
    assert body["query"] == "領収書はもらえますか"
    assert body["answered"] is True
    assert body["searched_as"] is None
    assert set(body["answer"]) == {"id", "question", "answer", "html"}
    assert "領収書の発行は行なっておりません" in body["answer"]["answer"]
    assert body["answer"]["html"] == "<p>領収書の発行は行なっておりません。</p>"
    assert body["contact_url"].startswith("http://testserver/contact?q=")
    assert 1 <= len(body["results"]) <= 5
    assert body["results"][0]["id"] == body["answer"]["id"]
    assert set(body["results"][0]) == {"id", "question", "answer", "score"}
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


async def test_api_shipping_answer_gives_a_concrete_date(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    policy = app.state.helpdesk.faq.policy
    before = policy.shipping_notice("ship_date")
    body = (await client.get("/api/faq/search", params={"q": "いつ発送されますか"})).json()
    after = policy.shipping_notice("ship_date")  # the same, unless a cutoff passed meanwhile
    assert body["answered"]
    text = body["answer"]["answer"]
    # The computed part first, with the dates the shop's rules give now, then the shop's text.
    assert re.fullmatch(
        r"今ご注文いただくと \d{1,2}月\d{1,2}日\([月火水木金土日]\) に発送します。"
        r"代金引換は \d{1,2}月\d{1,2}日\([月火水木金土日]\) の発送です。",
        before,
    )
    assert text.startswith(before) or text.startswith(after)
    assert "16時" in text or "最短当日" in text
    assert body["answer"]["html"].startswith('<p class="supplement">今ご注文いただくと ')


async def test_api_out_of_scope_is_not_answered(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/faq/search", params={"q": "明日は晴れますか"})).json()
    assert body["answered"] is False and body["answer"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "質問を入力してください。"),
        ({"q": "   "}, "質問を入力してください。"),
        ({"q": "\x00\x01\x1b"}, "質問を入力してください。"),
        ({"q": "あ" * 201}, "200文字以内"),
        ({"q": "領収書", "limit": "abc"}, "limit"),
        ({"q": "領収書", "limit": "50"}, "limit"),
    ],
)
async def test_api_refuses_bad_queries_in_japanese(
    client: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    response = await client.get("/api/faq/search", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    "query", ["株価\x00\x1b", "😀🙏🎉", "あ" * 200, "<script>alert(1)</script>"]
)
async def test_api_odd_but_valid_queries_get_a_clear_answer(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get("/api/faq/search", params={"q": query})
    assert response.status_code == 200
    assert response.json()["answered"] is False


async def test_faq_page_is_japanese_and_lists_categories(client: httpx.AsyncClient) -> None:
    response = await client.get("/faq")
    assert response.status_code == 200
    page = soup(response)
    assert page.html["lang"] == "ja"
    summaries = [s.get_text() for s in page.select("details summary")]
    assert {"セール商品", "発送/お届け", "決済方法", "その他"} <= set(summaries)
    assert page.select_one("form.search input[name=q]") is not None
    assert not page.select("link[href^=http], script[src^=http]")  # no CDN, no web font


async def test_faq_search_without_javascript(client: httpx.AsyncClient) -> None:
    page = soup(await client.get("/faq", params={"q": "ラッピングできますか"}))
    assert "ラッピングのサービスは行なっておりません" in page.select_one(".answer-text").get_text()
    assert page.select_one("form.feedback legend").get_text() == "この回答は役に立ちましたか？"


async def test_chat_page_offers_the_contact_form_when_nothing_fits(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/faq/ask", params={"q": "株価を教えて"})
    page = soup(response)
    assert page.select_one(".bubble.user").get_text() == "株価を教えて"
    not_found = page.select_one(".not-found")
    assert "このご質問への回答がありませんでした" in not_found.h2.get_text()
    link = not_found.select_one(".contact-offer a")
    assert link["href"] == "/contact?q=%E6%A0%AA%E4%BE%A1%E3%82%92%E6%95%99%E3%81%88%E3%81%A6"


async def test_empty_query_on_the_page_says_what_is_missing(client: httpx.AsyncClient) -> None:
    response = await client.get("/faq/ask", params={"q": ""})
    assert response.status_code == 400
    assert soup(response).select_one("#q-error").get_text() == "質問を入力してください。"


async def test_entry_page_and_unknown_entry(client: httpx.AsyncClient) -> None:
    page = soup(await client.get("/faq/other-receipt"))
    assert page.h1.get_text() == "領収書は発行してもらえますか？"
    assert "領収書の発行は行なっておりません" in page.select_one(".answer-text").get_text()
    missing = await client.get("/faq/no-such-entry")
    assert missing.status_code == 404
    assert "見つかりませんでした" in missing.text


async def test_feedback_is_stored(client: httpx.AsyncClient, app: Starlette) -> None:
    token = await csrf_token(client)
    response = await client.post(
        "/faq/other-receipt/feedback",
        data={"helpful": "no", "q": "領収書 090-1234-5678", "csrf_token": token},
    )
    assert response.status_code == 303
    thanks = soup(await client.get(response.headers["location"]))
    assert "ご意見ありがとうございます" in thanks.select_one(".thanks").get_text()
    json_vote = await client.post(
        "/faq/other-receipt/feedback",
        data={"helpful": "yes"},
        headers={"Accept": "application/json", "X-CSRF-Token": token},
    )
    assert json_vote.json()["ok"] is True
    bad = await client.post(
        "/faq/other-receipt/feedback",
        data={"helpful": "maybe", "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert bad.status_code == 400
    async with app.state.helpdesk.sessions() as session:
        votes = (await session.execute(select(FaqFeedback))).scalars().all()
    assert sorted(v.helpful for v in votes) == [False, True]
    assert all(v.entry_id == "other-receipt" for v in votes)
    assert any(v.query == "領収書 [電話番号]" for v in votes)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
    ids=["no-token", "cross-origin", "cross-site"],
)
async def test_a_vote_without_the_pages_token_is_refused_and_not_counted(
    client: httpx.AsyncClient, app: Starlette, headers: dict[str, str]
) -> None:
    """Issue 10, #9: the vote form was the one form without CSRF protection."""
    await csrf_token(client)  # the cookie alone proves nothing
    for accept in ("text/html", "application/json"):
        response = await client.post(
            "/faq/other-receipt/feedback",
            data={"helpful": "no"},
            headers={**headers, "Accept": accept},
        )
        assert response.status_code == 403
    async with app.state.helpdesk.sessions() as session:
        assert (await session.execute(select(FaqFeedback))).scalars().all() == []


async def test_gaps_are_logged_with_personal_data_masked(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    await client.get("/api/faq/search", params={"q": "taro@example.jp 090-1234-5678 #12345 株価"})
    await client.get("/api/faq/search", params={"q": "領収書はもらえますか"})  # answered: not a gap
    gaps = await app.state.helpdesk.faq.gaps()
    assert [g.query for g in gaps] == ["[メール] [電話番号] [注文番号] 株価"]
    async with app.state.helpdesk.sessions() as session:
        rows = (await session.execute(select(FaqGap))).scalars().all()
    assert len(rows) == 1 and "example.jp" not in rows[0].query


async def test_privacy_page_renders_the_policy(client: httpx.AsyncClient) -> None:
    page = soup(await client.get("/privacy"))
    text = page.select_one("article.policy").get_text()
    assert "admin@interiorltd.jp" in text and "30日" in text


async def test_feedback_votes_are_capped_per_address(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    app.state.helpdesk.feedback_limiter = app.state.helpdesk.rate_limiter(3, 600, scope="t")
    token = await csrf_token(client)
    for _ in range(5):
        response = await client.post(
            "/faq/other-receipt/feedback",
            data={"helpful": "no", "csrf_token": token},
            headers={"Accept": "application/json"},
        )
        assert response.json()["ok"] is True
    async with app.state.helpdesk.sessions() as session:
        votes = (await session.execute(select(FaqFeedback))).scalars().all()
    assert len(votes) == 3


async def test_not_sure_carries_the_question_over_to_the_contact_form(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    question = "PayPayで払えますか"
    page = soup(await client.get("/faq/ask", params={"q": question}))
    assert page.select_one(".answer.not-found") is not None
    suggestions = [a["href"] for a in page.select(".not-found .suggestions a")]
    assert suggestions and suggestions[0].startswith("/faq/payment-cod-cash-only?q=")
    contact = page.select_one(".not-found .contact-offer a")["href"]
    form = soup(await client.get(contact))
    assert form.select_one("textarea#description").get_text() == question
    await app.state.helpdesk.faq.flush_gaps()
    assert [g.query for g in await app.state.helpdesk.faq.gaps()] == [question]


async def test_contact_form_without_a_carried_question_is_empty(client: httpx.AsyncClient) -> None:
    form = soup(await client.get("/contact"))
    assert form.select_one("textarea#description").get_text() == ""


async def test_a_long_answer_puts_the_date_first_and_folds_what_was_not_asked(
    client: httpx.AsyncClient,
) -> None:
    page = soup(await client.get("/faq", params={"q": "代引きはいつ発送されますか"}))
    answer = page.select_one("section.answer")
    first = answer.h2.find_next_sibling()
    assert "supplement" in first["class"]
    assert first.get_text().startswith("今ご注文いただくと ")
    marked = [m.get_text() for m in answer.select(".answer-text mark")]
    assert any("代金引換" in text for text in marked)
    folded = answer.select(".answer-text details.fold")
    assert folded and all(d.get("open") is None for d in folded)
    assert folded[0].summary.get_text() == "続きを表示"
    # Nothing is lost: the whole text is on the page, part of it folded.
    assert "土日祝日の配送業務はお休み" in answer.select_one(".answer-text").get_text()


async def test_a_short_answer_is_shown_whole(client: httpx.AsyncClient) -> None:
    page = soup(await client.get("/faq", params={"q": "領収書はもらえますか"}))
    text = page.select_one(".answer-text")
    assert not text.select("details, mark")
    assert text.get_text(strip=True) == "領収書の発行は行なっておりません。"


async def test_answers_link_to_the_returns_form_with_the_case_chosen(
    client: httpx.AsyncClient,
) -> None:
    page = soup(await client.get("/faq", params={"q": "不良品を返品したい"}))
    links = {a.get_text(): a["href"] for a in page.select(".answer-text a")}
    assert links["不良品"] == "/returns/new?kind=defect"
    assert links["誤発送"] == "/returns/new?kind=wrong_item"
    assert links["注文誤り(サイズ・カラー)"] == "/returns/new?kind=exchange"
    form = soup(await client.get(links["不良品"]))
    assert form.select_one("input[name=kind][value=defect]").has_attr("checked")


async def test_the_answer_says_what_was_searched(client: httpx.AsyncClient) -> None:
    page = soup(await client.get("/faq/ask", params={"q": "らっぴんぐ"}))
    assert page.select_one(".searched-as").get_text() == "『ラッピング』で検索しました。"
    body = (await client.get("/api/faq/search", params={"q": "らっぴんぐ"})).json()
    assert body["searched_as"] == "ラッピング" and body["answered"]


async def test_chat_fragment_is_the_exchange_the_page_shows(client: httpx.AsyncClient) -> None:
    response = await client.get("/faq/ask/answer", params={"q": "ラッピングできますか"})
    assert response.status_code == 200
    fragment = soup(response)
    exchange = fragment.select_one("details.exchange")
    assert exchange.has_attr("open")
    assert exchange.summary.get_text() == "ラッピングできますか"
    assert (
        "ラッピングのサービスは行なっておりません" in exchange.select_one(".answer-text").get_text()
    )
    assert fragment.select_one("form.feedback") is not None
    empty = await client.get("/faq/ask/answer", params={"q": " "})
    assert empty.status_code == 400
    assert soup(empty).select_one(".field-error").get_text() == "質問を入力してください。"
