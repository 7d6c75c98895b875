"""The whole mail loop over real SMTP on loopback: a ticket, its mails, an agent's reply."""

from __future__ import annotations

import email
import email.utils
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage

import aiosmtplib
import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from helpdesk.models import Ticket
from tests import imaging
from tests.helpers import SUPPORT, SmtpRecorder, add_agent, free_port, smtp_server, text_of


@pytest.fixture
def outbound_smtp() -> Iterator[tuple[SmtpRecorder, int]]:
    """The shop's outgoing SMTP server: records what the app sends."""
    with smtp_server() as server:
        yield server


@pytest.fixture
async def mail_app(app: Starlette, outbound_smtp: tuple[SmtpRecorder, int]) -> Starlette:
    settings = app.state.helpdesk.settings
    settings.smtp_host, settings.smtp_port, settings.smtp_security = (
        "127.0.0.1",
        outbound_smtp[1],
        "none",
    )
    settings.inbound_smtp_port = free_port()
    await app.state.helpdesk.start_receiver()
    return app


async def drain(app: Starlette) -> int:
    return await app.state.helpdesk.mail_sender().drain()


async def test_ticket_mails_and_an_agent_reply_over_smtp(
    mail_app: Starlette, client: httpx.AsyncClient, outbound_smtp: tuple[SmtpRecorder, int]
) -> None:
    recorder, _ = outbound_smtp
    helpdesk = mail_app.state.helpdesk
    await add_agent(mail_app)
    created = await client.post(
        "/api/tickets",
        data={
            "kind": "defect",
            "name": "山田 花子",
            "email": "hanako@example.jp",
            "order_number": "#1234",
            "arrived_on": date.today().isoformat(),
            "description": "ケースにひびが入っていました。",
        },
        files={
            "photo_overall": ("全体.jpg", imaging.jpeg(gps=True), "image/jpeg"),
            "photo_defect": ("ひび.heic", imaging.heic(), "image/heic"),
        },
    )
    reference = created.json()["reference"]
    assert await drain(mail_app) == 2

    [confirmation] = recorder.to("hanako@example.jp")
    # The first mail of the thread: the ticket's subject form, without "Re: ".
    assert confirmation["Subject"] == f"[{reference}] 不良品(注文番号 #1234)"
    assert confirmation["Auto-Submitted"] == "auto-generated"
    assert "受付番号" in text_of(confirmation)
    [notification] = recorder.to(SUPPORT)
    assert "Auto-Submitted" not in notification
    assert "ケースにひびが入っていました。" in text_of(notification)
    photos = [p for p in notification.iter_attachments() if p.get_content_type() == "image/jpeg"]
    assert len(photos) == 2 and photos[0].get_filename() == "全体.jpg"
    reply_to = str(notification["Reply-To"])
    assert reply_to.startswith(f"admin+{reference.lower()}.")

    # The agent answers from their mailbox, with commands on top.
    answer = EmailMessage()
    answer["From"] = "佐藤 <sato@interiorltd.jp>"
    answer["To"] = reply_to
    answer["Subject"] = f"Re: {notification['Subject']}"
    answer["In-Reply-To"] = notification["Message-ID"]
    answer["Message-ID"] = email.utils.make_msgid(domain="interiorltd.jp")
    answer.set_content(
        "#ステータス 保留\n\n交換品をお送りします。お手数ですが住所をご確認ください。\n\n"
        f"2026年11月24日(火) 15:00 COCO case <{SUPPORT}>:\n> 新しいお問い合わせが届きました。\n"
    )
    await aiosmtplib.send(answer, hostname="127.0.0.1", port=helpdesk.settings.inbound_smtp_port)
    assert await drain(mail_app) == 1
    [_, to_customer] = recorder.to("hanako@example.jp")
    body = text_of(to_customer)
    assert "交換品をお送りします。お手数ですが住所をご確認ください。" in body
    assert "#ステータス" not in body and "新しいお問い合わせが届きました" not in body
    assert "お客様のご返信待ち" in body
    customer_address = str(to_customer["Reply-To"])
    assert customer_address.startswith(f"admin+{reference.lower()}.")
    assert customer_address != reply_to  # customers never get the agents' address

    # The customer answers that mail; the ticket opens again and the agents hear of it.
    again = EmailMessage()
    again["From"] = "hanako@example.jp"
    again["To"] = str(to_customer["Reply-To"])
    again["Subject"] = f"Re: {to_customer['Subject']}"
    again["In-Reply-To"] = to_customer["Message-ID"]
    again["Message-ID"] = email.utils.make_msgid(domain="example.jp")
    again.set_content("住所は変わっていません。よろしくお願いします。")
    await aiosmtplib.send(again, hostname="127.0.0.1", port=helpdesk.settings.inbound_smtp_port)
    assert await drain(mail_app) == 1
    forwarded = recorder.to(SUPPORT)[-1]
    assert "住所は変わっていません。" in text_of(forwarded)
    async with helpdesk.sessions() as session:
        ticket = (await session.execute(select(Ticket))).scalar_one()
    assert ticket.status == "open"  # the customer answered: back with the agents


def test_every_mail_template_composes_text_and_html() -> None:
    from types import SimpleNamespace

    from helpdesk.mail.compose import compose
    from helpdesk.settings import ROOT

    policy = SimpleNamespace(name="COCO case", url="https://cococase.jp", return_window_days=3)
    ticket = SimpleNamespace(
        reference="HD-26-00001", subject="不良品", late=False, customer_name="山田 花子"
    )
    customer = SimpleNamespace(name="山田 花子", email="hanako@example.jp")
    submission = SimpleNamespace(
        name="山田 花子",
        order_number="#1234",
        arrived_on=date(2026, 11, 24),
        desired_variant=None,
        description="ひびが<b>入って</b>いました",
    )
    context = {
        "ticket": ticket,
        "policy": policy,
        "customer": customer,
        "submission": submission,
        "kind_label": "不良品",
        "category_label": None,
        "status_url": "http://testserver/t/HD-26-00001?token=x",
        "agent_url": "http://testserver/agent/t/HD-26-00001?key=y",
        "reply_address": "admin+hd-26-00001.abc@interiorltd.jp",
        "attachments": [],
        "photo_labels": {},
        "body": "お待たせしました <script>",
        "message": SimpleNamespace(
            id=3, verified=False, sender="ichiro@example.jp", trust="third_party"
        ),
        "trust_label": "お客様以外のアドレスからのメール",
        "subject": "Re: [HD-26-00001] 不良品",
        "greeted": False,
        "status_label": "解決済み",
        "agent": SimpleNamespace(name="佐藤", email="sato@interiorltd.jp"),
        "problems": "・1行目「#statu」: 不明なコマンドです。",
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
        "dead_mail": [
            SimpleNamespace(
                outbox_id=9,
                to_address="typo@exampel.jp",
                subject="<受付>",
                attempts=5,
                dead_at=None,
                error="550 mailbox full",
            )
        ],
        "reply_promise": "12月3日(木)までにご返信いたします",
        "reply_due": "2026年12月03日 11:30(木)",
        "support_hours": "サポートの対応時間は平日 10:00〜17:00 です。",
        "survey": {
            "links": {
                "good": "http://testserver/t/HD-26-00001/csat/1?e=20270102&s=x&v=good",
                "improve": "http://testserver/t/HD-26-00001/csat/1?e=20270102&s=x&v=improve",
            },
            "last_day": "1月2日(土)",
        },
    }
    # Partials (``_dead_mail``) are parts of the others, not mails.
    names = sorted(p.stem for p in (ROOT / "templates" / "mail").glob("[!_]*.txt"))
    assert len(names) >= 7
    for name in names:
        mail = compose(name, **context)
        assert mail.subject and "\n" not in mail.subject, name
        assert mail.text.strip(), name
        assert mail.html.lstrip().startswith("<!doctype html>"), name
        assert "<script>" not in mail.html and "<b>入って</b>" not in mail.html, name
        assert "<受付>" not in mail.html, name
