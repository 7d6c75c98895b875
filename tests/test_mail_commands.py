"""Mails that read well (issue 8, item 7): the words agents type, one error mail saying it
once, and one greeting.

The command parser is at the top of ``helpdesk/mail/reply.py``; its stripping half and its
own tests (``test_mail_reply.py``) belong to the mail parsing work.
"""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from helpdesk.mail.compose import opens_with_greeting
from helpdesk.mail.reply import CommandError, format_errors, parse_reply
from helpdesk.models import Outbox, TicketStatus
from helpdesk.tickets import AcceptMessage, Reply, SetStatus
from tests.helpers import SUPPORT, MailLoop, add_agent, api_inquiry, rows, text_of, the_ticket


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("完了", TicketStatus.closed),
        ("完了済み", TicketStatus.closed),
        ("完了済", TicketStatus.closed),
        ("クローズ", TicketStatus.closed),
        ("クローズ済み", TicketStatus.closed),
        ("対応済み", TicketStatus.resolved),
        ("対応済", TicketStatus.resolved),
        ("解決", TicketStatus.resolved),
        ("解決済み", TicketStatus.resolved),
        ("解決 済み", TicketStatus.resolved),
        ("「解決済み」", TicketStatus.resolved),
        ("保留", TicketStatus.pending),
        ("返信待ち", TicketStatus.pending),
        ("お客様のご返信待ち", TicketStatus.pending),
        ("対応中", TicketStatus.open),
        ("オープン", TicketStatus.open),
        ("ｵｰﾌﾟﾝ", TicketStatus.open),
        ("再オープン", TicketStatus.open),
        ("Resolved", TicketStatus.resolved),
        ("close", TicketStatus.closed),
    ],
)
def test_the_status_words_agents_type(word: str, status: TicketStatus) -> None:
    parsed = parse_reply(f"#ステータス {word}\n\n発送しました。")
    assert parsed.errors == ()
    assert parsed.commands == (SetStatus(status), Reply("発送しました。"))


@pytest.mark.parametrize(
    ("line", "number"),
    [("#承認 12", 12), ("＃承認　１２", 12), ("#accept #7", 7), ("#承認: No.3", 3)],
)
def test_accepting_a_held_message_by_its_number(line: str, number: int) -> None:
    assert parse_reply(line).commands == (AcceptMessage(number),)


@pytest.mark.parametrize("line", ["#承認", "#承認 山田さんのメール"])
def test_accepting_needs_a_number(line: str) -> None:
    [error] = parse_reply(line).errors
    assert "番号を指定してください" in error.message


def test_format_errors_says_it_once_and_lists_each_problem_once() -> None:
    error = CommandError(1, "#statu x", "「#statu」は不明なコマンドです。")
    text = format_errors([error, "担当者「鈴木」が見つかりません。", error])
    assert text.count("お客様へのメールは送信していません") == 1
    assert text.count("・1行目「#statu x」") == 1
    assert "・担当者「鈴木」が見つかりません。" in text


async def test_one_error_mail_lists_every_problem_once(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    agent = await add_agent(app)
    created = await api_inquiry(client)
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    body = "#statu resolved\n#担当 鈴木\n#ステータス 完了済み\n\n発送いたしました。"
    await mail_loop.send(mail_loop.answer(notification, agent.email, body))
    assert await mail_loop.drain() == 1
    [error] = mail_loop.to(agent.email)
    text = text_of(error)
    # Said once (the template said it again before), then each problem once.
    assert text.count("お客様へのメールは送信していません") == 1
    assert text.count("処理できませんでした") + text.count("実行できませんでした") == 1
    assert text.count("「#statu」は不明なコマンドです") == 1
    assert text.count("担当者「鈴木」が見つかりません") == 1
    assert "完了済み" not in text.split("使えるコマンド")[0]  # an accepted word is no error
    ticket = await the_ticket(app, created["reference"])
    assert ticket.status == TicketStatus.new
    assert len(mail_loop.to("hanako@example.jp")) == 1  # the confirmation only

    # The agent answers the error mail with the commands put right: they apply.
    fixed = "#ステータス 完了済み\n#担当 佐藤\n\n発送いたしました。"
    await mail_loop.send(mail_loop.answer(error, agent.email, fixed))
    ticket = await the_ticket(app, created["reference"])
    assert (ticket.status, ticket.assignee_id) == (TicketStatus.closed, agent.id)
    await mail_loop.drain()
    assert "発送いたしました。" in text_of(mail_loop.to("hanako@example.jp")[-1])


@pytest.mark.parametrize(
    ("body", "greets"),
    [
        ("山田 花子 様\n\nお待たせしました。", True),
        ("山田様、いつもありがとうございます。", True),
        ("山田花子様\nお待たせしました。", True),
        ("\n  山田 花子 さま\n", True),
        ("Hanako Yamada 様", True),
        ("お客様各位", True),
        ("お客様の商品について確認しました。", False),
        ("お待たせしました。山田様のご注文は発送済みです。", False),
        ("お世話になっております。", False),
    ],
)
def test_a_body_that_greets_already(body: str, greets: bool) -> None:
    assert opens_with_greeting(body) is greets


@pytest.mark.parametrize(
    ("answer", "greetings"),
    [("山田 花子 様\n\nお待たせいたしました。", 1), ("お待たせいたしました。", 1)],
)
async def test_the_customer_is_greeted_once(
    app: Starlette,
    client: httpx.AsyncClient,
    mail_loop: MailLoop,
    answer: str,
    greetings: int,
) -> None:
    agent = await add_agent(app)
    await api_inquiry(client)
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    await mail_loop.send(mail_loop.answer(notification, agent.email, answer))
    await mail_loop.drain()
    [reply] = [o for o in await rows(app, Outbox) if o.kind == "agent_reply"]
    assert reply.text.count("山田 花子 様") == greetings
    assert reply.text.lstrip().startswith("山田 花子 様")


@pytest.mark.parametrize("line", ["#confirm", "＃送信", "#送信確認", "#Confirm"])
def test_the_confirmation_of_a_held_reply(line: str) -> None:
    from helpdesk.tickets.commands import Confirm

    assert parse_reply(line).commands == (Confirm(),)
    with_text = parse_reply(f"{line}\n\n書き直した本文です。")
    assert with_text.commands == (Confirm(), Reply("書き直した本文です。"))


def test_merging_by_mail_names_the_target() -> None:
    from helpdesk.tickets.commands import Merge

    assert parse_reply("#統合 HD-26-00012").commands == (Merge("HD-26-00012"),)
    [error] = parse_reply("#merge").errors
    assert "受付番号を指定してください" in error.message
