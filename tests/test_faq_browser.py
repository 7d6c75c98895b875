"""The FAQ chat as a customer sees it on a phone, in Debian's chromium (Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_browser import CHROMIUM, browser, server  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed"),
]

PHONE = {"width": 390, "height": 844}
QUESTIONS = [
    "領収書はもらえますか",
    "代引きはいつ発送されますか",
    "クレカ使える？",
    "ラッピンク",
    "送料はいくら？",
    "返品したい",
    "納品書は付いてきますか",
    "電話で問い合わせできますか",
    "銀行振り込みは使えますか",
    "メールが届きません",
    "後払いの請求書はいつ届く？",
    "セール品の価格はなぜ変わるのですか",
    "個人情報の削除を依頼したい",
    "在庫があったはずなのにキャンセルになった",
    "発送のタイミングを知りたい",
]


def ask(page, question: str, count: int) -> None:  # type: ignore[no-untyped-def]
    page.fill("#q", question)
    page.click(".chat-input button[type=submit]")
    page.wait_for_function(
        "n => document.querySelectorAll('#chat details.exchange').length === n"
        " && !document.querySelector('#chat .pending')",
        arg=count,
    )


def test_chat_on_a_phone_keeps_the_input_in_view_and_folds_older_exchanges(
    server: str,  # noqa: F811
    browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    page = browser.new_page(viewport=PHONE, locale="ja-JP")
    page.goto(f"{server}/faq/ask")
    for count, question in enumerate(QUESTIONS, start=1):
        ask(page, question, count)
        box = page.locator("#q").bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"]
    page.wait_for_timeout(500)  # the smooth scroll
    page.screenshot(path=str(tmp_path / "chat-15.png"))
    exchanges = page.locator("#chat details.exchange")
    assert exchanges.count() == len(QUESTIONS)
    opened = page.evaluate(
        "[...document.querySelectorAll('#chat details.exchange')].map(d => d.open)"
    )
    assert opened == [False] * (len(QUESTIONS) - 1) + [True]
    # Folded, fifteen exchanges stay short (the issue measured ~14,500 px unfolded).
    assert page.evaluate("document.documentElement.scrollHeight") < 5 * PHONE["height"]
    # An older answer opens again from its question.
    page.locator("#chat details.exchange summary", has_text="領収書はもらえますか").click()
    assert "領収書の発行は行なっておりません" in exchanges.nth(0).inner_text()
    page.close()


def test_long_answer_is_folded_and_opens_on_demand(server: str, browser) -> None:  # noqa: F811
    page = browser.new_page(viewport=PHONE, locale="ja-JP")
    page.goto(f"{server}/faq/ask")
    ask(page, "代引きはいつ発送されますか", 1)
    answer = page.locator("#chat .answer").last
    assert answer.locator(".supplement").inner_text().startswith("今ご注文いただくと ")
    assert "代金引換" in answer.locator("mark").first.inner_text()
    fold = answer.locator("details.fold").first
    assert not fold.evaluate("d => d.open")
    fold.locator("summary").click()
    assert fold.evaluate("d => d.open")
    page.close()


def test_not_sure_leads_to_the_contact_form_with_the_question(
    server: str,  # noqa: F811
    browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    page = browser.new_page(viewport=PHONE, locale="ja-JP")
    page.goto(f"{server}/faq/ask")
    ask(page, "PayPayで払えますか", 1)
    answer = page.locator("#chat .answer.not-found").last
    assert "このご質問への回答がありませんでした" in answer.inner_text()
    page.screenshot(path=str(tmp_path / "not-sure.png"))
    answer.locator(".contact-offer a").click()
    page.wait_for_selector("textarea#description")
    assert page.input_value("textarea#description") == "PayPayで払えますか"
    page.close()


def test_long_answer_folds_without_javascript(server: str, browser) -> None:  # noqa: F811
    context = browser.new_context(java_script_enabled=False, locale="ja-JP", viewport=PHONE)
    page = context.new_page()
    page.goto(f"{server}/faq/ask?q=代引きはいつ発送されますか")
    fold = page.locator(".answer-text details.fold").first
    assert not fold.evaluate("d => d.open")
    fold.locator("summary").click()
    assert fold.evaluate("d => d.open")
    context.close()
