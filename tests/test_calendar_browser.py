"""What a customer sees on a phone, in Debian's chromium: the promised reply date after
sending the contact form, and the satisfaction survey a resolution mail links to."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpdesk.app import create_app
from helpdesk.models import CsatResponse, Outbox, TicketStatus
from helpdesk.settings import Settings
from helpdesk.tickets import Actor, Reply, SetStatus
from tests.browsing import CHROMIUM, chromium, served
from tests.helpers import free_port, rows

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed"),
]
PHONE = {"width": 390, "height": 844}


def _settings(var: Path, base_url: str) -> Settings:
    return Settings(_env_file=None, var_dir=var, secret_key="browser-test", base_url=base_url)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    var = tmp_path_factory.mktemp("var")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    app = create_app(_settings(var, base_url))
    with served(app, port):
        yield base_url, var


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with chromium() as launched:
        yield launched


def _beside_the_server(var: Path, base_url: str, work: Any) -> Any:
    """Run ``await work(app)`` with a second app over the server's database (an agent's
    console would), in a thread of its own: Playwright's loop stays untouched."""
    result: list[Any] = []

    async def run() -> None:
        app = create_app(_settings(var, base_url))
        await app.state.helpdesk.startup()
        try:
            result.append(await work(app))
        finally:
            await app.state.helpdesk.shutdown()

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    thread.join(timeout=60)
    assert result, "the work beside the server did not finish"
    return result[0]


def _fits_the_phone(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_the_promise_and_the_survey_on_a_phone(  # type: ignore[no-untyped-def]
    server: tuple[str, Path], browser, tmp_path: Path
) -> None:
    base_url, var = server
    page = browser.new_page(viewport=PHONE, locale="ja-JP")
    page.goto(f"{base_url}/contact")
    page.select_option("#category", "not_arrived")
    page.fill("#name", "山田 花子")
    page.fill("#email", "hanako@example.jp")
    page.fill("#description", "注文した商品がまだ届きません。")
    page.click("form.ticket-form button[type=submit]")
    page.wait_for_selector(".reply-promise")
    promise = page.inner_text(".reply-promise strong")
    assert re.fullmatch(r"\d{1,2}月\d{1,2}日\([月火水木金]\)までにご返信いたします", promise)
    assert "サポートの対応時間は平日 10:00〜17:00 です。" in page.inner_text(".support-hours")
    assert _fits_the_phone(page)
    page.screenshot(path=str(tmp_path / "submitted.png"), full_page=True)
    reference = page.inner_text(".reference strong")

    async def resolve(app: Any) -> str:
        tickets = app.state.helpdesk.tickets
        agent = await tickets.add_agent("sato@interiorltd.jp", "佐藤")
        ticket = await tickets.find(reference)
        commands = [SetStatus(TicketStatus.resolved), Reply("本日、再発送いたしました。")]
        assert (await tickets.apply(ticket, Actor.agent(agent, channel="web"), commands)).ok
        [mail] = await rows(app, Outbox, Outbox.kind == "agent_reply")
        return str(re.search(r"http://\S+/csat/1\?\S+v=good", mail.text)[0])  # type: ignore[index]

    link = _beside_the_server(var, base_url, resolve)
    page.goto(link)
    page.wait_for_selector("form.csat")
    assert page.is_checked("input[name=rating][value=good]")
    assert _fits_the_phone(page)
    page.screenshot(path=str(tmp_path / "csat.png"), full_page=True)

    page.fill("#comment", "早く対応していただき助かりました。")
    page.click("form.csat button[type=submit]")
    page.wait_for_selector(".thanks")
    assert "ご回答ありがとうございました" in page.inner_text(".thanks")
    page.screenshot(path=str(tmp_path / "csat-thanks.png"), full_page=True)
    page.close()

    async def answers(app: Any) -> list[tuple[str | None, str | None]]:
        return [(r.rating, r.comment) for r in await rows(app, CsatResponse)]

    assert _beside_the_server(var, base_url, answers) == [
        ("good", "早く対応していただき助かりました。")
    ]
