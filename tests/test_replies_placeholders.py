"""Placeholders of saved replies (issue 10 #6): filled in from the ticket and the rules the
shop's pages state, a visible marker where a value cannot be known, never a made-up date."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from faq import ShopPolicy, load_policy
from helpdesk.replies.placeholders import (
    PLACEHOLDERS,
    TicketFacts,
    marker,
    placeholder_problems,
    render,
    unfilled,
    unknown_placeholders,
    values,
)
from helpdesk.settings import ROOT
from helpdesk.tickets import Reply
from helpdesk.tickets.rules import command_problems

TOKYO = ZoneInfo("Asia/Tokyo")
FACTS = TicketFacts(
    customer_name="山田 花子",
    reference="HD-26-00042",
    order_number="#1234",
    arrived_on=date(2026, 11, 28),
)


@pytest.fixture
def policy() -> ShopPolicy:
    return load_policy(ROOT / "data" / "shop.toml")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


def test_every_placeholder_is_filled_in_from_the_ticket(policy: ShopPolicy) -> None:
    body = (
        "{お客様名} 様\n受付番号 {受付番号}(ご注文 {注文番号})\n"
        "返品のご連絡は {返品期限} まで、交換品は ｛発送予定日｝ に発送します。"
    )
    text = render(body, values(FACTS, policy, now=at(2026, 12, 1, 10, 0)))
    assert text == (
        "山田 花子 様\n受付番号 HD-26-00042(ご注文 #1234)\n"
        # 商品到着後、3日以内 (data/shop.toml returns.window_days = 3): 11/28 + 3.
        "返品のご連絡は 12月1日(火) まで、交換品は 12月1日(火) に発送します。"
    )
    assert unfilled(text) == []


@pytest.mark.parametrize(
    ("now", "ships"),
    [
        (at(2026, 12, 1, 15, 59), "12月1日(火)"),  # 16時までのご注文 → 当日発送
        (at(2026, 12, 1, 16, 0), "12月2日(水)"),  # 16時以降のご注文 → 翌日発送
        (at(2026, 12, 4, 17, 0), "12月7日(月)"),  # Friday evening: 土日 are no shipping days
        (at(2026, 12, 5, 9, 0), "12月7日(月)"),  # a Saturday: the next business day
        (at(2027, 1, 9, 12, 0), "1月12日(火)"),  # Saturday before 成人の日 (Monday 1/11)
    ],
)
def test_the_ship_date_follows_the_shops_stated_rule(
    policy: ShopPolicy, now: datetime, ships: str
) -> None:
    assert values(FACTS, policy, now=now)["発送予定日"] == ships


def test_unknown_values_become_visible_markers_never_a_guess(policy: ShopPolicy) -> None:
    inquiry = TicketFacts(customer_name="山田 花子", reference="HD-26-00043")
    filled = values(inquiry, policy, now=at(2026, 12, 1, 10, 0))
    assert filled["注文番号"] == marker("注文番号") == "【要入力: 注文番号】"
    assert filled["返品期限"] == "【要入力: 返品期限】"
    text = render("ご注文 {注文番号} の返品期限は {返品期限} です。", filled)
    assert unfilled(text) == ["【要入力: 注文番号】", "【要入力: 返品期限】"]


def test_a_reply_with_a_marker_left_is_refused_before_it_is_sent() -> None:
    [problem] = command_problems([Reply("返品期限は【要入力: 返品期限】です。")])
    assert "【要入力: 返品期限】" in problem and "書き換えて" in problem
    assert command_problems([Reply("返品期限は12月1日(火)です。")]) == []


def test_unknown_placeholders_are_named_in_japanese() -> None:
    body = "{お客様名} 様 {お客さま名} {注文番号} ｛配送日｝ {お客さま名}"
    assert unknown_placeholders(body) == ["お客さま名", "配送日"]
    [problem] = placeholder_problems(body)
    assert problem.startswith("差し込み項目 {お客さま名}、{配送日} は使えません。")
    assert all(f"{{{name}}}" in problem for name in PLACEHOLDERS)
    assert placeholder_problems("{お客様名} 様、{受付番号} {発送予定日}") == []
    # Braces that hold no short name (code, JSON) are not placeholders.
    assert unknown_placeholders("{}\n{\n}") == []
