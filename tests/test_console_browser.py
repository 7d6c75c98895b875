"""The console as an agent sees it in Debian's chromium: a notification link asks for the
login, then opens the ticket; logout; and no page breaks the Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpdesk.app import Helpdesk, create_app
from helpdesk.settings import Settings
from tests.browsing import CHROMIUM, before_serving, chromium, served
from tests.helpers import PASSWORD, agent_with_password, free_port, inquiry

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed"),
]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


def prepare(settings: Settings) -> str:
    """An agent with a password and a ticket; the link of the ticket's notification."""

    async def work(helpdesk: Helpdesk) -> str:
        await agent_with_password(helpdesk.accounts, "sato@interiorltd.jp", "佐藤 花子")
        ticket = await inquiry(helpdesk.tickets)
        return str(helpdesk.tickets.urls.agent_url(ticket))

    return before_serving(settings, work)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    port = free_port()
    settings = Settings(
        _env_file=None,
        var_dir=Path(tmp_path_factory.mktemp("var")),
        secret_key="console-browser-test",
        base_url=f"http://127.0.0.1:{port}",
    )
    link = prepare(settings)
    with served(create_app(settings), port):
        yield f"http://127.0.0.1:{port}", link


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with chromium() as launched:
        yield launched


def test_a_notification_link_logs_in_then_opens_the_ticket(server, browser) -> None:  # type: ignore[no-untyped-def]
    base, link = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(link)
    assert "/console/login" in page.url  # nothing shown before the login
    assert page.locator("h1").inner_text() == "担当者ログイン"
    page.fill("#email", "sato@interiorltd.jp")
    page.fill("#password", "a wrong password")
    page.click("form.login-form button[type=submit]")
    assert "メールアドレスまたはパスワードが正しくありません" in page.inner_text(".error-summary")
    page.screenshot(path=str(SCREENSHOTS / "console-login-failed.png"), full_page=True)
    page.fill("#password", PASSWORD)
    page.click("form.login-form button[type=submit]")
    page.wait_for_selector(".conversation")
    assert page.url == link
    assert "注文した商品がまだ届きません" in page.inner_text(".conversation")
    assert "佐藤 花子" in page.inner_text(".agent-name")
    page.screenshot(path=str(SCREENSHOTS / "console-ticket.png"), full_page=True)

    page.click("nav a:has-text('キュー')")
    page.wait_for_selector("table.queue")
    assert "山田 花子" in page.inner_text("table.queue")
    page.screenshot(path=str(SCREENSHOTS / "console-queue.png"), full_page=True)

    page.click("form.logout button")
    page.wait_for_selector("text=ログアウトしました。")
    page.goto(link)
    assert "/console/login" in page.url
    page.screenshot(path=str(SCREENSHOTS / "console-logged-out.png"), full_page=True)

    # The customers' pages with scripts work under the policy too.
    for path in ("/faq/ask", "/returns/new", "/contact"):
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
    page.goto(base + "/faq/ask")
    page.fill("#q", "領収書はもらえますか")
    page.click("form.search button[type=submit]")
    page.wait_for_selector(".bubble.bot .answer-text")
    page.locator(".bubble.bot form.feedback button[value=yes]").first.click()
    page.wait_for_selector("text=ご意見ありがとうございます。")
    assert violations == []
    page.close()
