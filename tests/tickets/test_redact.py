"""``helpdesk.tickets.redact``: nothing agent-only in what a customer reads (issue 8)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from helpdesk.mail.compose import compose
from helpdesk.settings import ROOT
from helpdesk.tickets import Signer, TicketAccess, TicketUrls
from helpdesk.tickets.redact import (
    AGENT_MAIL_MARKERS,
    REMOVED_ADDRESS,
    REMOVED_LINK,
    for_customer,
    html_for_customer,
)

SUPPORT = "admin@interiorltd.jp"
ACCESS = TicketAccess(Signer("test-secret-key"), support_address=SUPPORT)
URLS = TicketUrls("https://help.example.jp", ACCESS)
TICKET: Any = SimpleNamespace(reference="HD-26-00042", token_nonce="n0nce", subject="不良品")
AGENT_URL = URLS.agent_url(TICKET)
AGENT_KEY, AGENTS_ADDRESS = ACCESS.agent_secrets(TICKET)
CUSTOMER_ADDRESS = ACCESS.reply_address(TICKET)
STATUS_URL = URLS.status_url(TICKET)


def leaks(text: str) -> list[str]:
    """What of the agents' own is still in ``text``."""
    return [value for value in (AGENT_KEY, AGENTS_ADDRESS, "/agent/", "key=") if value in text]


def test_agents_link_key_and_address_go_customers_stay() -> None:
    text = (
        f"こちらをご確認ください: {AGENT_URL}\n"
        f"担当者用アドレス: {AGENTS_ADDRESS}\n"
        f"キー {AGENT_KEY} です。\n"
        f"お客様のページ: {STATUS_URL}\n"
        f"返信先: {CUSTOMER_ADDRESS}\n"
    )
    redacted = for_customer(text, secrets=ACCESS.agent_secrets(TICKET))
    assert leaks(redacted) == []
    assert REMOVED_LINK in redacted and REMOVED_ADDRESS in redacted
    # The customer's own link and address are theirs to keep.
    assert STATUS_URL in redacted and CUSTOMER_ADDRESS in redacted


def test_another_tickets_agents_link_and_address_go_without_knowing_the_ticket() -> None:
    other: Any = SimpleNamespace(reference="HD-26-00007", token_nonce="x")
    text = f"{URLS.agent_url(other)} / {ACCESS.reply_address(other, agents=True)}"
    assert for_customer(text) == f"{REMOVED_LINK} / {REMOVED_ADDRESS}"
    # A customer's reply address whose signature happens to begin with "a" is not taken.
    looks_alike = "admin+hd-26-00007.abcdefghijkl@interiorltd.jp"
    assert for_customer(looks_alike) == looks_alike


def test_a_link_followed_by_japanese_takes_only_the_link() -> None:
    redacted = for_customer(f"詳しくは{AGENT_URL}をご覧ください。")
    assert redacted == f"詳しくは{REMOVED_LINK}をご覧ください。"


def test_a_relative_agents_path_and_a_bare_key_parameter_go() -> None:
    redacted = for_customer("/agent/t/HD-26-00042?key=abcDEF123_- と key=zzzzzzzz")
    assert leaks(redacted) == [] and "abcDEF123" not in redacted and "zzzzzzzz" not in redacted


def test_html_links_and_escaped_parameters_go() -> None:
    html = f'<p><a href="{AGENT_URL}&amp;x=1">開く</a> <a href="{STATUS_URL}">状況</a></p>'
    redacted = html_for_customer(html, secrets=ACCESS.agent_secrets(TICKET))
    assert leaks(redacted) == [] and STATUS_URL in redacted


NOTIFICATION = (
    "新しいお問い合わせが届きました。\n\n受付番号: HD-26-00042\n\n内容:\n届きません\n\n"
    f"チケットを開く: {AGENT_URL}\n\n---- 返信のしかた ----\n"
    "このメールに返信すると、本文がお客様に届きます(引用部分と署名は取り除かれます)。"
)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "本日発送しました。\n\nCOCO case wrote:\n"
            + "\n".join(f"| {line}" for line in NOTIFICATION.splitlines()),
            id="pipe-quote-with-attribution",
        ),
        pytest.param(
            "本日発送しました。\n\n-----元のメール-----\n差出人: COCO case <admin@interiorltd.jp>\n"
            "件名: [HD-26-00042] 新しいお問い合わせ\n\n" + NOTIFICATION,
            id="pasted-under-a-header-block",
        ),
        pytest.param(
            "本日発送しました。\n\n"
            + "\n".join(f"    {line}" if line else "" for line in NOTIFICATION.splitlines()),
            id="indented",
        ),
    ],
)
def test_a_quoted_notification_goes_whole_the_answer_stays(text: str) -> None:
    redacted = for_customer(text)
    assert redacted == "本日発送しました。"


def test_a_bottom_posted_answer_below_the_quote_stays() -> None:
    quoted = "\n".join(f"> {line}" for line in NOTIFICATION.splitlines())
    text = f"2026/11/24 15:00 COCO case <{SUPPORT}>:\n{quoted}\n\n本日発送しました。"
    assert for_customer(text) == "本日発送しました。"


def test_the_agents_own_text_above_a_header_block_stays() -> None:
    text = (
        "ご確認ください。\n\n注文番号: 1234\n\n________________\nFrom: COCO case\n"
        "Sent: Tuesday\nTo: 佐藤\nSubject: x\n\n" + NOTIFICATION
    )
    assert for_customer(text) == "ご確認ください。\n\n注文番号: 1234"


def test_text_without_anything_of_the_agents_is_unchanged() -> None:
    text = "山田 花子 様\r\n\r\nお待たせしました。\n> お客様の引用\n\n"
    assert for_customer(text) == text


# -- the templates: every agents' mail is recognisable, no customer mail is touched ---------


def _context() -> dict[str, Any]:
    policy = SimpleNamespace(name="COCO case", url="https://cococase.jp", return_window_days=3)
    submission = SimpleNamespace(
        name="山田 花子",
        order_number="#1234",
        arrived_on=date(2026, 11, 24),
        desired_variant=None,
        description="ひびが入っていました",
    )
    return {
        "ticket": SimpleNamespace(
            reference="HD-26-00042", subject="不良品", late=False, customer_name="山田 花子"
        ),
        "policy": policy,
        "customer": SimpleNamespace(name="山田 花子", email="hanako@example.jp"),
        "submission": submission,
        "kind_label": "不良品",
        "category_label": None,
        "status_url": STATUS_URL,
        "agent_url": AGENT_URL,
        "attachments": [],
        "photo_labels": {},
        "body": "お待たせしました",
        "message": SimpleNamespace(id=3, verified=True, sender="x@example.jp", trust="verified"),
        "trust_label": "",
        "subject": "[HD-26-00042] 不良品",
        "greeted": False,
        "status_label": "解決済み",
        "agent": SimpleNamespace(name="佐藤", email="sato@interiorltd.jp"),
        "problems": "・1行目",
        # A reply held as a possible double answer (reply_held): what came meanwhile.
        "meanwhile": [
            SimpleNamespace(
                author="agent",
                author_name="田中",
                sender="tanaka@interiorltd.jp",
                created_at=datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
                body="本日発送しました。",
            )
        ],
        "reply": "佐藤です。確認します。",
        "changes": [
            "tanaka@interiorltd.jp がステータスを「対応中」から「解決済み」に変更しました。"
        ],
        "row": SimpleNamespace(id=7, envelope_from=None),
        "problem": "解析できません",
        "preview": "garbage",
        "dead_mail": [],
        # The promise of the confirmation and the survey of a resolution mail.
        "reply_promise": "12月3日(木)までにご返信いたします",
        "reply_due": "2026年12月03日 11:30(木)",
        "support_hours": "サポートの対応時間は平日 10:00〜17:00 です。",
        "survey": {
            "links": {
                rating: f"http://testserver/t/HD-26-00042/csat/1?e=20270102&s=abc-_9&v={rating}"
                for rating in ("good", "improve")
            },
            "last_day": "1月2日(土)",
        },
    }


CUSTOMER_TEMPLATES = ("ticket_confirmation", "agent_reply", "status_changed")


def _templates() -> list[str]:
    # Partials (``_dead_mail``) are parts of the others, not mails.
    return sorted(p.stem for p in (ROOT / "templates" / "mail").glob("[!_]*.txt"))


@pytest.mark.parametrize("name", _templates())
def test_agents_mails_carry_a_marker_customer_mails_none(name: str) -> None:
    mail = compose(name, **_context())
    marked = any(marker in mail.text for marker in AGENT_MAIL_MARKERS)
    if name in CUSTOMER_TEMPLATES:
        assert not marked
        assert for_customer(mail.text, secrets=ACCESS.agent_secrets(TICKET)) == mail.text
    elif AGENT_URL in mail.text:
        assert marked, f"{name} carries the agents' link: add a line of AGENT_MAIL_MARKERS"
