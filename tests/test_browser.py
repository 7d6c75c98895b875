"""What a person sees: the chat page in Debian's chromium, driven by Playwright."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from helpdesk.app import create_app
from helpdesk.settings import Settings
from tests.helpers import free_port

CHROMIUM = shutil.which("chromium")
REQUIRED = os.environ.get("HELPDESK_REQUIRE_BROWSER") == "1"

if not CHROMIUM and REQUIRED:
    raise RuntimeError("HELPDESK_REQUIRE_BROWSER=1 but Debian's chromium is not installed")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed"),
]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var = tmp_path_factory.mktemp("var")
    app = create_app(Settings(_env_file=None, var_dir=Path(var), secret_key="browser-test"))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_chat_answers_and_keeps_the_conversation(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="ja-JP")
    page.goto(f"{server}/faq/ask")
    page.fill("#q", "領収書はもらえますか")
    page.click("form.search button[type=submit]")
    page.wait_for_selector(".bubble.bot .answer-text")
    assert "領収書の発行は行なっておりません" in page.inner_text(".bubble.bot .answer-text")
    assert page.url.endswith("/faq/ask")  # answered in place, no reload

    page.fill("#q", "明日は晴れますか")
    page.click("form.search button[type=submit]")
    page.wait_for_selector("text=お問い合わせフォーム")
    users = page.locator(".bubble.user").all_inner_texts()
    assert users == ["領収書はもらえますか", "明日は晴れますか"]

    page.locator("button.vote", has_text="はい").first.click()
    page.wait_for_selector("text=ご意見ありがとうございます。")
    page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
    page.close()


def test_faq_works_without_javascript(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(java_script_enabled=False, locale="ja-JP")
    page = context.new_page()
    page.goto(f"{server}/faq/ask")
    page.fill("#q", "ラッピングできますか")
    page.click("form.search button[type=submit]")
    page.wait_for_load_state()
    assert "q=" in page.url
    assert "ラッピングのサービスは行なっておりません" in page.inner_text(".answer-text")
    page.click("form.feedback button[value=yes]")
    assert "ご意見ありがとうございます" in page.inner_text(".thanks")
    context.close()


def test_contact_form_suggests_answers_and_submits(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="ja-JP")
    page.goto(f"{server}/contact")
    page.select_option("#category", "invoice")
    page.fill("#name", "佐藤 一郎")
    page.fill("#email", "ichiro@example.jp")
    page.type("#description", "GMO後払いの請求書を再発行してほしい", delay=20)
    page.wait_for_selector("#deflection li a")
    suggestion = page.locator("#deflection li a").first
    assert "再発行" in suggestion.inner_text()
    with page.context.expect_page() as opened:
        suggestion.click()
    opened.value.close()
    assert page.input_value("input[name=deflection_followed]").startswith("payment-")
    page.click("form.ticket-form button[type=submit]")
    page.wait_for_selector(".reference strong")
    assert page.inner_text(".reference strong").startswith("HD-")


def test_returns_form_errors_keep_what_was_typed(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="ja-JP")
    page.goto(f"{server}/returns/new")
    page.check("input[name=kind][value=exchange]")
    assert page.is_hidden("#field-photo_overall")  # an exchange needs no photos
    page.fill("#name", "山田 花子")
    page.click("form.ticket-form button[type=submit]")
    page.wait_for_selector("#error-summary")
    assert "メールアドレスを入力してください。" in page.inner_text("#error-summary")
    assert page.input_value("#name") == "山田 花子"
    assert page.is_checked("input[name=kind][value=exchange]")
    page.screenshot(path=str(tmp_path / "returns-errors.png"), full_page=True)
