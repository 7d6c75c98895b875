"""``helpdesk.tickets.rules``: what a submission must hold, checked without a database."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from helpdesk.models import TicketKind
from helpdesk.tickets import AddNote, Assign, Reply, SetStatus, Submission
from helpdesk.tickets.rules import (
    clean_line,
    clean_text,
    command_problems,
    first_message,
    missing_photos,
    subject_for,
    validate_message,
    validate_submission,
)

TODAY = date(2026, 11, 24)
POLICY: Any = SimpleNamespace(return_window_days=3)


def check(**fields: str) -> Any:
    raw = {
        "kind": "defect",
        "name": "山田 花子",
        "email": "Hanako@Example.jp",
        "order_number": "＃１２３４",
        "arrived_on": TODAY.isoformat(),
        "description": "ケースの角にひびが入っていました。",
        **fields,
    }
    return validate_submission(raw, today=TODAY, policy=POLICY)


def test_a_defect_is_cleaned_into_a_submission() -> None:
    checked = check(name="\u3000山田\x00 花子 ", desired_variant="M")
    assert checked.errors == {} and not checked.late
    assert checked.submission == Submission(
        kind=TicketKind.defect,
        name="山田 花子",  # NFKC turned the ideographic space, the NUL is gone
        email="hanako@example.jp",
        order_number="#1234",
        arrived_on=TODAY,
        description="ケースの角にひびが入っていました。",
        desired_variant=None,  # only an exchange keeps the wanted variant
    )


def test_short_fields_drop_control_characters_long_text_keeps_lines_and_width() -> None:
    assert clean_line(" ＡＢ\x00\x07c\n ") == "ABc"
    assert clean_text("１行目\r\n\t2行目\x00\r3行目\x1b ") == "１行目\n\t2行目\n3行目"


@pytest.mark.parametrize(("days", "late"), [(0, False), (3, False), (4, True), (366, True)])
def test_late_is_past_the_shops_return_window(days: int, late: bool) -> None:
    checked = check(arrived_on=(TODAY - timedelta(days=days)).isoformat())
    assert checked.errors == {} and checked.late is late


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"kind": "refund"}, {"kind": "お問い合わせの種類を選んでください。"}),
        ({"name": "\x00 "}, {"name": "お名前を入力してください。"}),
        ({"name": "あ" * 101}, {"name": "お名前は100文字以内で入力してください。"}),
        (
            {"email": "a@" + "b" * 250 + ".jp"},
            {"email": "メールアドレスの形式が正しくありません(例: taro@example.jp)。"},
        ),
        ({"arrived_on": "2027-01-01"}, {"arrived_on": "到着日に未来の日付は指定できません。"}),
        (
            {"arrived_on": "2025-11-01"},
            {"arrived_on": "到着日をご確認ください(1年以上前の日付です)。"},
        ),
        (
            {"kind": "exchange", "description": ""},
            {"desired_variant": "交換を希望する機種・カラーを入力してください。"},
        ),
        (
            {"kind": "inquiry", "order_number": "", "arrived_on": "", "category": "refund"},
            {"category": "お問い合わせの内容を選んでください。"},
        ),
    ],
)
def test_each_problem_has_a_japanese_message_under_its_field(
    fields: dict[str, str], errors: dict[str, str]
) -> None:
    checked = check(**fields)
    assert checked.submission is None and checked.errors == errors


def test_an_inquiry_needs_no_order_and_is_titled_by_its_category() -> None:
    checked = check(kind="inquiry", order_number="", arrived_on="", category="invoice")
    assert checked.submission is not None
    assert subject_for(checked.submission) == "GMO後払いの請求書が届かない"
    assert subject_for(check().submission) == "不良品(注文番号 #1234)"


def test_the_first_message_holds_the_wanted_variant_or_the_kind() -> None:
    exchange = check(kind="exchange", description="", desired_variant="L / 黒").submission
    assert first_message(exchange) == "交換を希望する機種・カラー: L / 黒"
    assert first_message(check().submission) == "ケースの角にひびが入っていました。"


def test_defects_and_wrong_items_need_both_photos() -> None:
    assert set(missing_photos(TicketKind.wrong_item, {})) == {"photo_overall", "photo_defect"}
    assert missing_photos(TicketKind.exchange, {}) == {}


def test_a_message_is_limited_like_a_description() -> None:
    assert validate_message(" 追記\x00です ") == ("追記です", {})
    text, errors = validate_message("あ" * 5001)
    assert len(text) == 5001 and errors == {"body": "メッセージは5000文字以内で入力してください。"}


def test_command_lists_are_checked_before_anything_is_applied() -> None:
    assert command_problems([SetStatus("resolved"), Assign("佐藤"), Reply("本文")]) == []
    assert command_problems([AddNote("")]) == []  # a bare note is stored as "(本文なし)"
    assert command_problems([Assign("佐藤"), Assign("鈴木"), Reply("x"), AddNote("y")]) == [
        "「担当者の割り当て」は1回だけ指定してください。",
        "お客様への返信と社内メモは、別々に送ってください。",
    ]
