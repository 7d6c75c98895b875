"""Saved replies and approvals in Debian's chromium (issue 10 #6, #7): an admin writes a
saved reply (a wrong placeholder told in Japanese, nothing typed lost), an agent inserts it
on a ticket, the admin approves a part-timer's held reply; no page breaks the CSP.
Screenshots are kept in var/screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpdesk.app import Helpdesk, create_app
from helpdesk.models import AgentRole
from helpdesk.settings import Settings
from helpdesk.tickets import Actor, Channel, Reply
from tests.browsing import CHROMIUM, before_serving, chromium, served
from tests.helpers import PASSWORD, agent_with_password, free_port, inquiry

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed"),
]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
HELD = "山田様、明日発送しまーす。"


def prepare(settings: Settings) -> str:
    """An admin, a part-timer whose reply waits for approval; the ticket's reference."""

    async def work(helpdesk: Helpdesk) -> str:
        accounts = helpdesk.accounts
        boss = await agent_with_password(
            accounts, "boss@interiorltd.jp", "店長", role=AgentRole.admin
        )
        arbeit, _ = await accounts.add("arbeit@interiorltd.jp", "バイト")
        arbeit = await accounts.set_needs_approval(arbeit.id, True, by=boss)
        ticket = await inquiry(helpdesk.tickets)
        result = await helpdesk.tickets.apply(
            ticket, Actor.agent(arbeit, channel=Channel.web), [Reply(HELD)]
        )
        assert result.awaiting_approval is not None
        return str(ticket.reference)

    return before_serving(settings, work)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    port = free_port()
    settings = Settings(
        _env_file=None,
        var_dir=Path(tmp_path_factory.mktemp("var")),
        secret_key="replies-browser-test",
        base_url=f"http://127.0.0.1:{port}",
    )
    reference = prepare(settings)
    with served(create_app(settings), port):
        yield f"http://127.0.0.1:{port}", reference


def test_saved_replies_and_approval_in_a_browser(server) -> None:  # type: ignore[no-untyped-def]
    base, reference = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="ja-JP")
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "console",
            lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.goto(f"{base}/console/login")
        page.fill("#email", "boss@interiorltd.jp")
        page.fill("#password", PASSWORD)
        page.click("form.login-form button[type=submit]")
        page.wait_for_selector("table.queue")

        # A saved reply: a misspelt placeholder is refused, what was typed stays.
        page.click("nav a:has-text('テンプレート')")
        page.click("text=テンプレートを作成")
        page.fill("#title", "発送のご案内")
        page.fill("#body", "{お客さま名} 様\n\n{受付番号} の商品は {発送予定日} に発送いたします。")
        page.click("form.saved-reply-edit button[type=submit]")
        assert "{お客さま名} は使えません" in page.inner_text(".error-summary")
        assert page.input_value("#title") == "発送のご案内"
        page.screenshot(path=str(SCREENSHOTS / "saved-reply-refused.png"), full_page=True)
        page.fill("#body", "{お客様名} 様\n\n{受付番号} の商品は {発送予定日} に発送いたします。")
        page.click("form.saved-reply-edit button[type=submit]")
        page.wait_for_selector("text=テンプレートを作成しました。")
        page.screenshot(path=str(SCREENSHOTS / "saved-replies.png"), full_page=True)

        # On the ticket: 「挿入」 puts it in, rendered for this customer.
        page.goto(f"{base}/console/t/{reference}")
        page.select_option("select[name=reply]", label="発送のご案内")
        page.click("form.saved-reply-picker button[type=submit]")
        notice = page.locator(
            ".notice[role=status]", has_text="「発送のご案内」を返信欄に挿入しました"
        )
        notice.wait_for()
        box = page.input_value("form.reply-form textarea[name=body]")
        assert box.startswith("山田 花子 様") and f"{reference} の商品は" in box
        assert "{" not in box  # every placeholder filled in
        assert "承認待ち" in page.inner_text(".approval-replies")
        page.screenshot(path=str(SCREENSHOTS / "saved-reply-inserted.png"), full_page=True)

        # The part-timer's held reply: edited and approved, once.
        page.click("nav a:has-text('承認待ち')")
        assert HELD in page.input_value(".approval textarea[name=body]")
        page.screenshot(path=str(SCREENSHOTS / "approvals.png"), full_page=True)
        page.fill(
            ".approval textarea[name=body]", "山田 花子 様\n\nご注文の商品は明日発送いたします。"
        )
        page.click("button[value=edit]")
        page.wait_for_selector("text=返信を承認し、お客様に送信しました。")
        assert page.locator(".approval").count() == 0
        page.goto(f"{base}/console/t/{reference}")
        assert "承認済み・送信しました(修正あり)" in page.inner_text(".approval-replies")
        assert "ご注文の商品は明日発送いたします。" in page.inner_text(".conversation")
        page.screenshot(path=str(SCREENSHOTS / "approval-sent.png"), full_page=True)
        assert problems == []
