"""The Markdown subset of answers: escaped text, links only to this site or https."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from faq import KnowledgeBaseError, SearchEngine
from faq.kb import entry_from_mapping
from faq.markup import allowed_link, link_problems, paragraphs, plain, render, render_answer
from helpdesk.settings import ROOT


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("/contact", True),
        ("/returns/new?kind=defect", True),
        ("https://cococase.jp/pages/guide", True),
        ("http://cococase.jp", False),
        ("//evil.example/x", False),
        ("/\\evil.example", False),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("mailto:admin@interiorltd.jp", False),
        ("contact", False),
        ("https://", False),
    ],
)
def test_links_go_to_this_site_or_https_only(url: str, allowed: bool) -> None:
    assert allowed_link(url) is allowed
    link = BeautifulSoup(render(f"[フォーム]({url})"), "html.parser").a
    if link is None:
        assert not allowed
    else:  # markdown-it may percent-encode the address first (/\ becomes /%5C): still a path
        href = link["href"]
        assert href.startswith("https://") or (href.startswith("/") and href[1] not in "/\\")


def test_text_is_escaped_and_never_html() -> None:
    html = str(render('<script>alert(1)</script> <a href="/x">x</a> & **現金のみ**'))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="/x">' not in html
    assert "&amp;" in html and "<strong>現金のみ</strong>" in html


def test_the_shops_text_stays_as_written() -> None:
    # Lines that Markdown would turn into lists, headings or quotes are the shop's text.
    text = (
        "1. 注文番号\n# 問題内容\n> 写真1枚\n・16時までのご注文 → 当日発送\n例)15日 13:41 に注文。"
    )
    assert plain(text) == text
    soup = BeautifulSoup(render_answer(text), "html.parser")
    assert [p.get_text("\n") for p in soup.find_all("p")] == [text]
    assert not soup.find_all(["ol", "ul", "h1", "blockquote"])


def test_plain_text_keeps_link_texts() -> None:
    assert plain("3日以内に[お問い合わせフォーム](/contact)へ") == "3日以内にお問い合わせフォームへ"


def test_paragraphs_split_sentences_but_not_inside_brackets() -> None:
    text = (
        "● 決済(コンビニ払いは入金後の発送です。)\n例)15日 にご注文。当日発送。\n\n土日は休みです。"
    )
    assert paragraphs(text) == [
        [["● 決済(コンビニ払いは入金後の発送です。)"], ["例)15日 にご注文。", "当日発送。"]],
        [["土日は休みです。"]],
    ]


def test_faq_check_refuses_links_that_would_not_be_links() -> None:
    raw = {"id": "x", "question": "q", "answer": "[ここ](javascript:alert(1))と[外](http://a.jp)"}
    with pytest.raises(KnowledgeBaseError) as caught:
        entry_from_mapping(raw, where="faq/x.toml: #1 ")
    assert len(caught.value.problems) == 2
    assert all("faq/x.toml" in p and "https://" in p for p in caught.value.problems)
    assert link_problems("[フォーム](/contact)") == []


def test_the_shops_answers_link_to_the_forms() -> None:
    engine = SearchEngine.from_directory(ROOT / "data")
    returns = BeautifulSoup(
        render_answer(engine.get("other-returns-exchange").answer), "html.parser"
    )
    hrefs = {a.get_text(): a["href"] for a in returns.find_all("a")}
    assert hrefs["不良品"] == "/returns/new?kind=defect"
    assert hrefs["誤発送"] == "/returns/new?kind=wrong_item"
    assert hrefs["注文誤り(サイズ・カラー)"] == "/returns/new?kind=exchange"
    assert hrefs["お問い合わせフォーム"] == "/returns/new"
    # Every mention of the shop's contact form links to it. The GMO invoice answer names
    # GMO's own contact form, whose address the shop's pages do not give: not linked.
    for entry in engine.entries:
        if entry.id == "payment-deferred-invoice-reissue":
            continue
        soup = BeautifulSoup(render_answer(entry.answer), "html.parser")
        for name in ("お問い合わせフォーム", "お問い合せフォーム", "カスタマーセンター"):
            for found in soup.find_all(string=lambda s, n=name: s and n in s):
                assert found.parent.name == "a", (entry.id, name)
