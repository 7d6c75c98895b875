"""What a person sees, in Debian's chromium driven by Playwright: the chat and the forms."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from helpdesk.app import create_app
from helpdesk.settings import Settings
from tests import imaging
from tests.browsing import CHROMIUM, chromium, served
from tests.helpers import free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var = tmp_path_factory.mktemp("var")
    app = create_app(Settings(_env_file=None, var_dir=Path(var), secret_key="browser-test"))
    port = free_port()
    with served(app, port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with chromium() as launched:
        yield launched


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

    # The earlier answer has folded to its question; it opens again to vote on it.
    page.locator("details.exchange summary", has_text="領収書はもらえますか").click()
    page.locator("form.feedback button[value=yes]").first.click()
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
    suggests: list[str] = []
    page.on("request", lambda r: suggests.append(r.url) if "/api/faq/suggest" in r.url else None)
    page.goto(f"{server}/contact")
    page.select_option("#category", "invoice")
    page.fill("#name", "佐藤 一郎")
    page.fill("#email", "ichiro@example.jp")
    page.type("#description", "GMO後払いの請求書を再発行してほしい", delay=20)
    page.wait_for_selector("#deflection li a")
    # Until the form has shown suggestions, it asks with first=1 (counted once, insights).
    assert suggests and "first=1" in suggests[0]
    with page.expect_request(lambda r: "/api/faq/suggest" in r.url) as again:
        page.type("#description", "です", delay=20)
    assert "first=1" not in again.value.url
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


# -- the returns form on a phone (issue 8, items 2 and 8) -----------------------------------------

PHONE = {"width": 390, "height": 844}


def _phone(browser, **options):  # type: ignore[no-untyped-def]
    return browser.new_context(viewport=PHONE, locale="ja-JP", timezone_id="Asia/Tokyo", **options)


def _summary_links(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        "#error-summary a", "links => links.map(a => a.getAttribute('href'))"
    )


def _shown(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    """Loaded and drawn: an <img> whose picture arrived."""
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")  # type: ignore[no-any-return]


def test_returns_form_reports_every_problem_in_one_round_on_a_phone(  # type: ignore[no-untyped-def]
    server: str, browser, tmp_path: Path
) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(imaging.PDF)
    heic = tmp_path / "IMG_4830.HEIC"
    heic.write_bytes(imaging.heic(1200, 900))
    big = tmp_path / "IMG_9999.jpg"
    big.write_bytes(b"\xff\xd8" + os.urandom(11 * 1024 * 1024))
    defect = tmp_path / "IMG_0002.jpg"
    defect.write_bytes(imaging.noisy_jpeg(0.4))
    arrived = (datetime.now(ZoneInfo("Asia/Tokyo")).date() - timedelta(days=6)).isoformat()

    context = _phone(browser)
    page = context.new_page()
    page.goto(f"{server}/returns/new?kind=defect")
    page.fill("#name", "山田 花子")
    page.fill("#email", "hanako@")
    page.fill("#order_number", "#1234")
    page.fill("#arrived_on", arrived)
    assert page.is_visible("#confirm_late")  # the late notice shows as the date is entered
    assert "到着から6日" in page.inner_text("#late-warning")
    page.fill("#description", "ケースの角にひびが入っていました。")
    page.set_input_files("#photo_overall", str(pdf))
    # Checked as soon as it is chosen, before anything is sent.
    assert "JPEG・PNG・WebP・HEIC" in page.inner_text("#field-photo_overall .client-error")
    page.screenshot(path=str(tmp_path / "1-filled-in.png"), full_page=True)

    page.click("form.ticket-form button[type=submit]")
    page.wait_for_selector("#error-summary")
    # One round: the address, the tick, the PDF and the missing photo, in the fields' order.
    assert _summary_links(page) == ["#email", "#confirm_late", "#photo_overall", "#photo_defect"]
    for name in ("email", "confirm_late", "photo_overall", "photo_defect"):
        assert page.is_visible(f"#{name}-error"), name
    assert page.input_value("#name") == "山田 花子"
    assert page.input_value("#arrived_on") == arrived
    assert page.input_value("#description") == "ケースの角にひびが入っていました。"
    assert page.url.endswith("/returns/new?kind=defect")  # answered in place
    page.screenshot(path=str(tmp_path / "2-one-round.png"), full_page=True)

    # Fixed, but the second photo forgotten: the accepted one shows as a thumbnail.
    page.fill("#email", "hanako@example.jp")
    page.check("#confirm_late")
    page.set_input_files("#photo_overall", str(heic))
    page.click("form.ticket-form button[type=submit]")
    page.wait_for_selector("#photo_overall-kept img")
    assert _summary_links(page) == ["#photo_defect"]
    assert "IMG_4830.jpg" in page.inner_text("#photo_overall-kept")  # converted, renamed
    page.wait_for_function(
        "() => document.querySelector('#photo_overall-kept img').naturalWidth > 0"
    )
    assert page.is_checked("#confirm_late")
    page.locator("#field-photo_overall").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "3-thumbnail.png"), full_page=True)

    # A photo over the limit is refused before upload; a good one is previewed.
    page.set_input_files("#photo_defect", str(big))
    assert "大きすぎます" in page.inner_text("#field-photo_defect .client-error")
    page.set_input_files("#photo_defect", str(defect))
    assert page.is_hidden("#field-photo_defect .client-error")
    page.wait_for_function(
        "() => document.querySelector('#field-photo_defect .photo-preview img').naturalWidth > 0"
    )

    # On a slow connection the upload shows its progress.
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 100,
            "downloadThroughput": 400_000,
            "uploadThroughput": 80_000,
        },
    )
    page.click("form.ticket-form button[type=submit]")
    page.wait_for_selector(".upload-progress:not([hidden])")
    page.wait_for_function("() => document.querySelector('.upload-progress progress').value > 0")
    assert page.is_disabled("form.ticket-form button[type=submit]")  # no double submit
    assert "送信中" in page.inner_text(".upload-status")
    page.locator(".upload-progress").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "4-progress.png"))
    page.wait_for_url("**/submitted?token=*", timeout=60_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    assert page.inner_text(".reference strong").startswith("HD-")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.received-photos img')]"
        ".every(i => i.naturalWidth > 0)"
    )
    assert page.locator(".received-photos img").count() == 2
    assert "IMG_4830.jpg" in page.inner_text(".received-photos")
    assert "3日を過ぎてのご連絡として承りました" in page.inner_text(".warning")
    page.screenshot(path=str(tmp_path / "5-submitted.png"), full_page=True)
    context.close()


def test_a_request_over_the_limit_without_javascript_loses_nothing(  # type: ignore[no-untyped-def]
    server: str, browser, tmp_path: Path
) -> None:
    big = tmp_path / "IMG_1000.jpg"
    big.write_bytes(b"\xff\xd8" + os.urandom(12 * 1024 * 1024))
    context = _phone(browser, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server}/returns/new?kind=defect")
    page.fill("#name", "山田 花子")
    page.fill("#description", "ひびが入っていました")
    page.set_input_files("#photo_overall", str(big))
    page.set_input_files("#photo_defect", str(big))
    page.click("form.ticket-form button[type=submit]")
    page.wait_for_selector("h1")
    assert page.inner_text("h1") == "送信データが大きすぎます"
    assert "写真は1枚10MBまでです" in page.inner_text("main")
    assert "「戻る」" in page.inner_text(".back-hint")
    links = page.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))")
    assert links == ["/"]  # nothing that would open the form empty
    page.screenshot(path=str(tmp_path / "413.png"), full_page=True)
    # The browser's back button: the form as it was, files chosen included.
    page.go_back()
    page.wait_for_selector("form.ticket-form")
    assert page.input_value("#name") == "山田 花子"
    assert page.input_value("#description") == "ひびが入っていました"
    assert page.is_checked("input[name=kind][value=defect]")
    assert page.evaluate("document.querySelector('#photo_overall').files.length") == 1
    context.close()


def test_the_contact_form_leads_to_the_returns_form_with_what_was_typed(  # type: ignore[no-untyped-def]
    server: str, browser, tmp_path: Path
) -> None:
    context = _phone(browser)
    page = context.new_page()
    page.goto(f"{server}/")
    page.click(".cards a[href='/contact']")
    page.fill("#name", "佐藤 一郎")
    page.fill("#email", "ichiro@example.jp")
    page.select_option("#category", "returns")
    assert page.is_visible("#returns-topic-hint")
    assert page.inner_text("form.ticket-form button[type=submit]") == "返品・交換のフォームへ進む"
    page.click("form.ticket-form button[type=submit]")
    page.wait_for_selector("form.ticket-form[data-form=returns]")
    assert page.url.endswith("/returns/new")
    assert page.input_value("#name") == "佐藤 一郎"
    assert page.input_value("#email") == "ichiro@example.jp"
    assert "引き継ぎました" in page.inner_text("#notice")
    page.check("input[name=kind][value=exchange]")
    assert page.is_hidden("#field-photo_overall")
    assert page.is_visible("#desired_variant")
    assert page.inner_text("#field-description .badge") == "任意"
    page.screenshot(path=str(tmp_path / "carried.png"), full_page=True)
    context.close()


@pytest.mark.parametrize(
    ("path", "button"),
    [("/faq", "form.search button"), ("/contact", "form.ticket-form button[type=submit]")],
)
def test_buttons_do_not_wrap_on_a_small_phone(  # type: ignore[no-untyped-def]
    server: str, browser, path: str, button: str
) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 640}, locale="ja-JP")
    page = context.new_page()
    page.goto(f"{server}{path}")
    lines = page.eval_on_selector(
        button,
        "b => { const r = document.createRange(); r.selectNodeContents(b); "
        "return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }",
    )
    assert lines == 1
    context.close()


def test_an_expired_page_is_sent_again_with_its_photos(  # type: ignore[no-untyped-def]
    server: str, browser, tmp_path: Path
) -> None:
    overall = tmp_path / "IMG_0001.jpg"
    overall.write_bytes(imaging.jpeg(800, 600))
    defect = tmp_path / "IMG_0002.jpg"
    defect.write_bytes(imaging.jpeg(800, 600, color="red"))
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()
    context = _phone(browser)
    page = context.new_page()
    page.goto(f"{server}/returns/new?kind=wrong_item")
    page.fill("#name", "山田 花子")
    page.fill("#email", "hanako@example.jp")
    page.fill("#order_number", "#4321")
    page.fill("#arrived_on", today)
    page.fill("#description", "黒を注文したのに白が届きました。")
    page.set_input_files("#photo_overall", str(overall))
    page.set_input_files("#photo_defect", str(defect))
    # The cookie the page's token was made for is gone (cleared, or the tab restored later):
    # the server refuses without looking at the photos, and the script sends them again.
    context.clear_cookies()
    answers: list[int] = []
    page.on(
        "response",
        lambda r: answers.append(r.status) if r.request.method == "POST" else None,
    )
    page.click("form.ticket-form button[type=submit]")
    page.wait_for_url("**/submitted?token=*")
    assert answers[0] == 403 and answers[-1] == 303  # refused once, then sent again
    page.wait_for_function(
        "() => [...document.querySelectorAll('.received-photos img')]"
        ".every(i => i.naturalWidth > 0)"
    )
    assert page.locator(".received-photos img").count() == 2
    context.close()
