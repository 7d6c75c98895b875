"""The promised reply date: in the confirmation mail, on the submitted and status pages."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from helpdesk.app import create_app
from helpdesk.models import Outbox, Ticket
from helpdesk.settings import ROOT, Settings
from helpdesk.tickets import Actor, AddNote, Reply
from tests.helpers import add_agent, form_state, logged_in_client, rows, soup, the_ticket

TOKYO = ZoneInfo("Asia/Tokyo")
PROMISE = "12月3日(木)までにご返信いたします"
HOURS = (
    "サポートの対応時間は平日 10:00〜17:00 です。祝日、年末年始(12月29日〜1月4日)、"
    "お盆(8月13日〜8月16日)はお休みをいただいております。"
)
CONTACT = {
    "kind": "inquiry",
    "category": "not_arrived",
    "name": "山田 花子",
    "email": "hanako@example.jp",
    "description": "注文した商品がまだ届きません。",
}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The service's clock: Wednesday 2 December 2026, 11:30 in Japan (``clock[0]``)."""
    now = [datetime(2026, 12, 2, 11, 30, tzinfo=TOKYO)]
    monkeypatch.setattr("helpdesk.tickets.service.utcnow", lambda: now[0].astimezone(UTC))
    return now


async def _contact(client: httpx.AsyncClient) -> tuple[str, str]:
    """Send the contact form; (the reference, the submitted page's path)."""
    state = await form_state(client, "/contact")
    response = await client.post("/contact", data={**state, **CONTACT})
    assert response.status_code == 303, soup(response).select(".field-error")
    submitted = response.headers["location"]
    return submitted.split("/")[2], submitted


async def test_the_confirmation_mail_promises_the_day(
    client: httpx.AsyncClient, app: Starlette, clock: list[datetime]
) -> None:
    reference, _ = await _contact(client)
    [mail] = await rows(app, Outbox, Outbox.kind == "ticket_confirmation")
    lines = mail.text.splitlines()
    flow = lines.index("今後の流れ:")
    assert lines[flow + 1] == f"お問い合わせ内容を確認のうえ、担当者より{PROMISE}。"
    assert lines[flow + 2] == HOURS
    html = soup(mail.html)
    assert html.select_one(".reply-promise strong").get_text() == PROMISE
    assert html.select_one(".reply-promise").get_text() == (
        f"お問い合わせ内容を確認のうえ、担当者より{PROMISE}。"
    )
    assert html.select_one(".support-hours").get_text() == HOURS
    # The agents are told the due time itself.
    [notice] = await rows(app, Outbox, Outbox.kind == "ticket_notification")
    assert "初回返信の期限: 2026年12月03日 11:30(木)" in notice.text
    assert soup(notice.html).find("th", string="初回返信の期限").find_next("td").get_text() == (
        "2026年12月03日 11:30(木)"
    )
    ticket = await the_ticket(app, reference)
    assert ticket.first_reply_due_at is not None


async def test_the_submitted_page_promises_the_day(
    client: httpx.AsyncClient, clock: list[datetime]
) -> None:
    _, submitted = await _contact(client)
    page = soup(await client.get(submitted))
    assert page.html["lang"] == "ja"
    assert page.select_one(".reply-promise strong").get_text() == PROMISE
    assert page.select_one(".reply-promise").get_text() == f"担当者より{PROMISE}。"
    assert page.select_one(".support-hours").get_text() == HOURS


async def test_the_status_page_promises_until_the_first_reply(
    client: httpx.AsyncClient, app: Starlette, clock: list[datetime]
) -> None:
    reference, submitted = await _contact(client)
    status_path = soup(await client.get(submitted)).find("a", string="対応状況のページを開く")
    path = status_path["href"]

    def promise(page: httpx.Response) -> str | None:
        found = soup(page).select_one("dd.reply-promise")
        if found is None:
            return None
        label = found.find_previous_sibling("dt")
        assert label is not None and label.get_text() == "ご返信の予定"
        return str(found.get_text())

    assert promise(await client.get(path)) == PROMISE
    # A day after it was due (Friday), with no reply yet: an apology, not a past date.
    clock[0] = datetime(2026, 12, 4, 12, 0, tzinfo=TOKYO)
    assert promise(await client.get(path)).startswith(
        "ご返信が遅くなっており、申し訳ございません。"
    )  # type: ignore[union-attr]

    tickets = app.state.helpdesk.tickets
    agent = await add_agent(app)
    ticket = await the_ticket(app, reference)
    await tickets.apply(ticket, Actor.agent(agent, channel="web"), [AddNote("確認中")])
    assert promise(await client.get(path)) is not None  # a note is no reply
    agents_page = tickets.urls.agent(ticket)
    async with logged_in_client(app) as console:
        due = soup(await console.get(agents_page)).select_one("dd.first-reply-due").get_text()
        assert due == "2026年12月03日 11:30(木)"
        await tickets.apply(
            ticket, Actor.agent(agent, channel="web"), [Reply("お待たせしました。")]
        )
        assert promise(await client.get(path)) is None
        due = soup(await console.get(agents_page)).select_one("dd.first-reply-due").get_text()
        assert due.startswith("2026年12月03日 11:30(木)(返信済み: ")


@pytest.fixture
async def app_without_support(tmp_path: Path, database_url: str) -> AsyncIterator[Starlette]:
    """The app over a shop.toml without ``[support]``: the owner set no support hours."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    text = (data / "shop.toml").read_text(encoding="utf-8")
    (data / "shop.toml").write_text(text[: text.index("[support]")], encoding="utf-8")
    settings = Settings(
        _env_file=None,
        var_dir=tmp_path / "var",
        data_dir=data,
        database_url=database_url,
        secret_key="test-secret-key-not-for-production",
        base_url="http://testserver",
        submission_rate="1000/1m",
    )
    application = create_app(settings)
    await application.state.helpdesk.startup()
    yield application
    await application.state.helpdesk.shutdown()


async def test_without_support_hours_nothing_is_promised(
    app_without_support: Starlette, clock: list[datetime]
) -> None:
    transport = httpx.ASGITransport(app=app_without_support)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        _, submitted = await _contact(client)
        page = soup(await client.get(submitted))
    assert page.select_one(".reply-promise") is None and page.select_one(".support-hours") is None
    [mail] = await rows(app_without_support, Outbox, Outbox.kind == "ticket_confirmation")
    assert "までにご返信いたします" not in mail.text
    assert "担当者より次のお手続きをご案内いたします。" in mail.text
    [ticket] = await rows(app_without_support, Ticket)
    assert ticket.first_reply_due_at is None
