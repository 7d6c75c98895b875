"""The whole story in Debian's chromium (issue 10 item 10): a customer on a phone files a
defect report with two photos; an admin writes a saved reply; agent A finds the ticket by
its order number, opens a photo full size, sees agent B on the page, inserts the saved
reply, is asked to confirm because B answered first, sends, and resolves the ticket; the
customer's status page and mail show A's answer. No console page breaks the CSP.
Screenshots of each step are kept in var/screenshots (e2e-*.png)."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from helpdesk.app import Helpdesk, create_app
from helpdesk.models import AgentRole
from helpdesk.settings import Settings
from tests import imaging
from tests.browsing import CHROMIUM, before_serving, chromium, served
from tests.helpers import PASSWORD, agent_with_password, free_port, inquiry

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed"),
]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 1000}
SATO = "sato@interiorltd.jp"  # agent A, an admin
TANAKA = "tanaka@interiorltd.jp"  # agent B
CUSTOMER = "hanako@example.jp"
ORDER = "#5827"
OTHER_ORDER = "#6001"
TEMPLATE = (
    "{お客様名} 様\n\n受付番号 {受付番号} の件、ご不便をおかけし申し訳ございません。"
    "交換品を本日発送いたしました。"
)
B_REPLY = "田中です。写真を確認しております。少々お待ちください。"


def prepare(settings: Settings) -> None:
    """Two agents with passwords, made through the accounts API as the console would."""

    async def work(helpdesk: Helpdesk) -> None:
        for email, name, role in (
            (SATO, "佐藤 花子", AgentRole.admin),
            (TANAKA, "田中 一郎", AgentRole.agent),
        ):
            await agent_with_password(helpdesk.accounts, email, name, role=role)
        # Another customer's ticket in the queue: the search has something to leave out.
        await inquiry(
            helpdesk.tickets, name="鈴木 太郎", email="taro@example.jp", order_number=OTHER_ORDER
        )

    before_serving(settings, work)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    port = free_port()
    var = Path(tmp_path_factory.mktemp("var"))
    settings = Settings(
        _env_file=None,
        var_dir=var,
        secret_key="console-e2e-browser-test",
        base_url=f"http://127.0.0.1:{port}",
    )
    prepare(settings)
    with served(create_app(settings), port):
        yield f"http://127.0.0.1:{port}", settings.mail_dir


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with chromium() as launched:
        yield launched


def shoot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"e2e-{name}.png"), full_page=True)


def fits_the_phone(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def watch(page: Any, problems: list[str]) -> None:
    """Collect CSP violations and uncaught script errors of ``page``."""
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"{page.url}: {m.text}")
            if "Content Security Policy" in m.text
            else None
        ),
    )


def log_in(browser: Any, base: str, email: str, problems: list[str]) -> tuple[Any, Any]:
    """A browser context of its own (its own cookies), logged in at /console/login."""
    context = browser.new_context(viewport=DESKTOP, locale="ja-JP", timezone_id="Asia/Tokyo")
    page = context.new_page()
    watch(page, problems)
    response = page.goto(f"{base}/console/login")
    assert response is not None and response.status == 200
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form.login-form button[type=submit]")
    page.wait_for_selector("table.queue")
    return context, page


def mails_to(folder: Path, address: str, containing: str) -> list[EmailMessage]:
    """The .eml files the server's outbox wrote to ``address`` whose text has ``containing``;
    waited for (the outbox sends in the background), never more than 30 seconds."""
    deadline = time.monotonic() + 30
    while True:
        found = []
        for path in sorted(folder.glob("*.eml")):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            assert isinstance(message, EmailMessage)
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            if address in str(message["To"]) and containing in text:
                found.append(message)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def test_a_defect_report_from_the_form_to_the_answer(  # type: ignore[no-untyped-def]
    server: tuple[str, Path], browser, tmp_path: Path
) -> None:
    base, mail_dir = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    # 1. The customer, on a phone, reports a defect with two photos.
    overall = tmp_path / "IMG_0001.jpg"
    overall.write_bytes(imaging.jpeg(1200, 900, gps=True))
    defect = tmp_path / "IMG_0002.jpg"
    defect.write_bytes(imaging.jpeg(1200, 900, color="red"))
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()
    customer_context = browser.new_context(viewport=PHONE, locale="ja-JP", timezone_id="Asia/Tokyo")
    customer = customer_context.new_page()
    watch(customer, problems)
    response = customer.goto(f"{base}/returns/new")
    assert response is not None and response.status == 200
    customer.check("input[name=kind][value=defect]")
    customer.fill("#name", "山田 花子")
    customer.fill("#email", CUSTOMER)
    customer.fill("#order_number", ORDER)
    customer.fill("#arrived_on", today)
    customer.fill("#description", "届いたスマホケースの角にひびが入っていました。")
    customer.set_input_files("#photo_overall", str(overall))
    customer.set_input_files("#photo_defect", str(defect))
    assert fits_the_phone(customer)
    shoot(customer, "1-customer-form")
    customer.click("form.ticket-form button[type=submit]")
    customer.wait_for_url("**/submitted?token=*")
    reference = customer.inner_text(".reference strong")
    assert re.fullmatch(r"HD-\d{2}-\d{5}", reference), reference
    customer.wait_for_function(
        "() => [...document.querySelectorAll('.received-photos img')]"
        ".every(i => i.naturalWidth > 0)"
    )
    assert customer.locator(".received-photos img").count() == 2
    shoot(customer, "1-customer-submitted")

    # 2. The admin (agent A) writes a saved reply with placeholders.
    sato_context, sato = log_in(browser, base, SATO, problems)
    sato.click("nav a:has-text('テンプレート')")
    sato.click("text=テンプレートを作成")
    sato.fill("#title", "不良品の交換品発送")
    sato.fill("#body", TEMPLATE)
    sato.click("form.saved-reply-edit button[type=submit]")
    sato.wait_for_selector("text=テンプレートを作成しました。")
    shoot(sato, "2-saved-reply")

    # Agent A finds the ticket by the order number typed into the queue's search box.
    sato.click("nav a:has-text('キュー')")
    sato.wait_for_selector("table.queue")
    assert "鈴木 太郎" in sato.inner_text("table.queue")  # both tickets before the search
    assert "山田 花子" in sato.inner_text("table.queue")
    sato.fill("#q", ORDER)
    sato.click("form.queue-filters button[type=submit]")
    sato.wait_for_url("**/console?*q=*")
    sato.wait_for_selector(f"table.queue a:has-text('{reference}')")
    assert sato.input_value("#q") == ORDER
    assert f"「{ORDER}」の検索結果です。" in sato.inner_text("main")
    assert sato.locator("table.queue tbody tr").count() == 1
    assert "山田 花子" in sato.inner_text("table.queue")
    assert "鈴木 太郎" not in sato.inner_text("table.queue")
    shoot(sato, "2-queue-search")
    sato.click(f"table.queue a:has-text('{reference}')")
    sato.wait_for_selector(".conversation")
    assert sato.url.endswith(f"/console/t/{reference}")
    assert "届いたスマホケースの角にひびが入っていました。" in sato.inner_text(".conversation")
    assert "5827" in sato.inner_text("main")

    # A thumbnail opens the photo full size.
    thumbnails = sato.locator(".conversation a:has(img)")
    assert thumbnails.count() == 2
    sato.wait_for_function(
        "() => [...document.querySelectorAll('.conversation a img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    href = thumbnails.first.get_attribute("href")
    assert href
    with sato_context.expect_page() as opened:
        thumbnails.first.click()
    photo = opened.value
    photo.wait_for_load_state()
    assert photo.url == base + href
    width = photo.evaluate("document.querySelector('img').naturalWidth")
    assert width == 1200  # full size, not the thumbnail
    photo.screenshot(path=str(SCREENSHOTS / "e2e-2-photo.png"))
    photo.close()
    full = sato.request.get(base + href)
    assert full.status == 200
    assert full.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(full.body())) as picture:
        assert picture.size == (1200, 900)
        assert not picture.getexif()  # the customer's GPS position went with the EXIF
    shoot(sato, "2-ticket")

    # 3. Agent B opens the same ticket; A sees B on the page.
    tanaka_context, tanaka = log_in(browser, base, TANAKA, problems)
    tanaka.goto(f"{base}/console/t/{reference}")
    tanaka.wait_for_selector(".conversation")
    assert "佐藤 花子 さん: 閲覧中" in tanaka.inner_text("#presence")
    sato.wait_for_selector("#presence li:has-text('田中 一郎 さん')", timeout=30_000)
    assert "ほかの担当者がこのチケットを開いています。" in sato.inner_text("#presence")
    assert "田中 一郎 さん: 閲覧中" in sato.inner_text("#presence")
    shoot(sato, "3-presence")

    # 4. A inserts the saved reply: the customer's name and the reference are filled in.
    sato.select_option("#saved-reply-select", label="不良品の交換品発送")
    sato.click("form.saved-reply-picker button[type=submit]")
    sato.locator(
        ".notice[role=status]", has_text="「不良品の交換品発送」を返信欄に挿入しました"
    ).wait_for()
    answer = sato.input_value("#reply-body")
    assert answer.startswith("山田 花子 様")
    assert f"受付番号 {reference} の件" in answer
    assert "{" not in answer
    shoot(sato, "4-saved-reply-inserted")

    # Meanwhile B answers first.
    tanaka.fill("#reply-body", B_REPLY)
    tanaka.click("form.reply-form button[type=submit]")
    tanaka.wait_for_selector("p.notice:has-text('返信を送信しました')")
    shoot(tanaka, "4-other-agent-replied")

    # A's send asks to confirm, shows B's answer and keeps A's text.
    sato.wait_for_selector("#ticket-changed:visible", timeout=30_000)
    sato.click("form.reply-form button[type=submit]")
    sato.wait_for_selector(".meanwhile")
    assert B_REPLY in sato.inner_text(".meanwhile")
    assert "まだ送信していません" in sato.inner_text(".meanwhile")
    assert sato.input_value("#reply-body") == answer
    assert sato.inner_text("form.reply-form button[type=submit]") == "確認して送信"
    assert sato.locator(".conversation .message.agent").count() == 1  # only B's so far
    shoot(sato, "4-confirm")
    sato.click("form.reply-form button[type=submit]")
    sato.wait_for_selector("p.notice:has-text('返信を送信しました')")
    assert sato.locator(".conversation .message.agent").count() == 2
    assert "交換品を本日発送いたしました。" in sato.inner_text(".conversation")

    # A resolves the ticket.
    sato.select_option("#status-select", "resolved")
    sato.click("form.status-form button[type=submit]")
    sato.wait_for_selector("p.notice:has-text('ステータスを変更しました。')")
    assert sato.eval_on_selector("#status-select", "s => s.value") == "resolved"
    assert "佐藤 花子がステータスを「" in sato.inner_text(".history")
    assert "」から「解決済み」に" in sato.inner_text(".history")
    shoot(sato, "4-resolved")

    # 5. The customer: the link of the confirmation mail opens the status page with A's answer.
    [confirmation] = mails_to(mail_dir, CUSTOMER, "以下の内容で受け付けました")
    match = re.search(rf"{re.escape(base)}/t/{reference}\?token=\S+", text_of(confirmation))
    assert match, text_of(confirmation)
    response = customer.goto(match[0])
    assert response is not None and response.status == 200
    assert customer.inner_text(".ticket-status") == "解決済み"
    conversation = customer.inner_text(".conversation")
    assert "交換品を本日発送いたしました。" in conversation
    assert f"受付番号 {reference} の件" in conversation
    assert "佐藤" not in conversation and "田中 一郎" not in conversation  # agents unnamed
    assert fits_the_phone(customer)
    shoot(customer, "5-status-page")

    # ... and the customer's mail holds it too.
    replies = mails_to(mail_dir, CUSTOMER, "交換品を本日発送いたしました。")
    assert len(replies) == 1  # sent once
    assert len(mails_to(mail_dir, CUSTOMER, B_REPLY)) == 1
    assert reference in str(replies[0]["Subject"])
    mail = text_of(replies[0])
    assert mail.startswith("山田 花子 様")
    assert f"受付番号 {reference} の件" in mail
    assert B_REPLY not in mail  # B's answer went in a mail of its own
    assert "/console" not in mail and "佐藤" not in mail  # nothing agent-only

    assert problems == []
    for context in (customer_context, sato_context, tanaka_context):
        context.close()
