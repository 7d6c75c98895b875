"""Two agents on the same ticket in Debian's chromium (二重対応防止, issue 10 item 5): the
second sees the first one's presence, then that the first is typing; after the first one's
reply the second one's reply is not sent but asks to confirm, with the other answer shown
and the text kept. Screenshots are kept in var/screenshots."""

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
SATO = "sato@interiorltd.jp"
TANAKA = "tanaka@interiorltd.jp"


def prepare(settings: Settings) -> str:
    """Two agents with passwords and a ticket; the ticket's console path."""

    async def work(helpdesk: Helpdesk) -> str:
        for email, name in ((SATO, "佐藤 花子"), (TANAKA, "田中 一郎")):
            await agent_with_password(helpdesk.accounts, email, name)
        ticket = await inquiry(helpdesk.tickets)
        return str(helpdesk.tickets.urls.agent(ticket))

    return before_serving(settings, work)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    port = free_port()
    settings = Settings(
        _env_file=None,
        var_dir=Path(tmp_path_factory.mktemp("var")),
        secret_key="ticket-page-browser-test",
        base_url=f"http://127.0.0.1:{port}",
    )
    path = prepare(settings)
    with served(create_app(settings), port):
        yield f"http://127.0.0.1:{port}", path


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with chromium() as launched:
        yield launched


def open_as(browser, base: str, path: str, email: str, violations: list[str]):  # type: ignore[no-untyped-def]
    """A browser context of its own (its own cookies), logged in, on the ticket page."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP")
    page = context.new_page()
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(base + path)
    assert "/console/login" in page.url
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form.login-form button[type=submit]")
    page.wait_for_selector(".conversation")
    return context, page


def test_two_agents_on_one_ticket(server, browser) -> None:  # type: ignore[no-untyped-def]
    base, path = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    violations: list[str] = []
    tanaka_context, tanaka = open_as(browser, base, path, TANAKA, violations)
    sato_context, sato = open_as(browser, base, path, SATO, violations)
    # 佐藤 opened it second: 田中 is there (shown by the server, and by the script).
    assert "田中 一郎 さん: 閲覧中" in sato.inner_text("#presence")
    # 田中 sees 佐藤 at the script's first refresh (on load) or the next.
    tanaka.wait_for_selector("#presence li:has-text('佐藤 花子 さん')", timeout=15_000)

    # 佐藤 starts writing: 田中's page says so at its next refresh.
    sato.fill("#reply-body", "佐藤です。本日発送いたしました。")
    sato.type("#reply-body", " ")
    tanaka.wait_for_selector(
        "#presence li.presence-typing:has-text('佐藤 花子 さん: 返信を入力中')", timeout=15_000
    )
    tanaka.screenshot(path=str(SCREENSHOTS / "ticket-two-agents-presence.png"), full_page=True)

    # 田中 writes too, on the page opened before 佐藤's reply.
    tanaka.fill("#reply-body", "田中です。確認いたします。")
    sato.click("form.reply-form button[type=submit]")
    sato.wait_for_selector("p.notice:has-text('返信を送信しました')")
    assert "佐藤です。本日発送いたしました。" in sato.inner_text(".conversation")

    # 田中's page learns at its next refresh that the ticket changed.
    tanaka.wait_for_selector("#ticket-changed:visible", timeout=15_000)
    tanaka.click("form.reply-form button[type=submit]")
    tanaka.wait_for_selector(".meanwhile")
    assert "佐藤です。本日発送いたしました。" in tanaka.inner_text(".meanwhile")
    assert "まだ送信していません" in tanaka.inner_text(".meanwhile")
    assert tanaka.input_value("#reply-body") == "田中です。確認いたします。"
    assert tanaka.inner_text("form.reply-form button[type=submit]") == "確認して送信"
    tanaka.screenshot(path=str(SCREENSHOTS / "ticket-reply-conflict.png"), full_page=True)
    # Only 佐藤's answer was sent so far.
    assert tanaka.locator(".conversation .message.agent").count() == 1

    # Confirmed: sent.
    tanaka.click("form.reply-form button[type=submit]")
    tanaka.wait_for_selector("p.notice:has-text('返信を送信しました')")
    assert tanaka.locator(".conversation .message.agent").count() == 2
    assert "田中 一郎がお客様に返信しました。" in tanaka.inner_text(".history")
    tanaka.screenshot(path=str(SCREENSHOTS / "ticket-reply-confirmed.png"), full_page=True)
    assert violations == []
    tanaka_context.close()
    sato_context.close()
