"""Agent replies by e-mail: command lines, quoted originals and signatures of real mail clients."""

from __future__ import annotations

import pytest

from helpdesk.mail.reply import (
    AddNote,
    Assign,
    Command,
    CommandError,
    ParsedReply,
    Priority,
    Reply,
    SetPriority,
    SetStatus,
    Status,
    format_errors,
    parse_reply,
    strip_quoted,
)


def mail(*lines: str) -> str:
    """A decoded plain-text body, one argument per line (keeps trailing spaces visible)."""
    return "\n".join(lines) + "\n"


ANSWER = ("山田様", "", "お問い合わせありがとうございます。", "交換品を本日発送いたしました。")
ANSWER_TEXT = "\n".join(ANSWER)
CUSTOMER_QUOTE = (
    "> 先日注文した椅子の脚が折れていました。",
    "> 交換をお願いできますか。",
    ">",
    "> 山田 太郎",
)


# -- strip_quoted: one realistic reply per client -----------------------------------------------

CLIENT_REPLIES = {
    "gmail-en": mail(
        *ANSWER,
        "",
        "On Tue, Nov 24, 2026 at 3:00 PM 山田 <a@b.jp> wrote:",
        "",
        *CUSTOMER_QUOTE,
    ),
    "gmail-en-wrapped-before-address": mail(
        *ANSWER,
        "",
        "On Tue, Nov 24, 2026 at 3:00 PM 山田 太郎 <",
        "taro.yamada@example.jp> wrote:",
        "",
        *CUSTOMER_QUOTE,
    ),
    "gmail-en-wrapped-before-wrote": mail(
        *ANSWER,
        "",
        "On Tue, Nov 24, 2026 at 3:00 PM 山田 太郎 <taro.yamada@example.jp>",
        "wrote:",
        "",
        *CUSTOMER_QUOTE,
    ),
    "gmail-ja": mail(
        *ANSWER,
        "",
        "2026年11月24日(火) 15:00 山田太郎 <taro@example.jp>:",
        "",
        *CUSTOMER_QUOTE,
    ),
    "gmail-ja-no-name": mail(
        *ANSWER,
        "",
        "2026年11月24日(火) 15:00 <taro@example.jp>:",
        "",
        *CUSTOMER_QUOTE,
    ),
    "gmail-ja-full-width-colon-and-wrapped": mail(
        *ANSWER,
        "",
        "2026年11月24日(火) 15:00 山田太郎 <",
        "taro@example.jp>：",
        "",
        *CUSTOMER_QUOTE,
    ),
    "outlook-original-message": mail(
        *ANSWER,
        "",
        "-----Original Message-----",
        "From: 山田 太郎 <taro@example.jp>",
        "Sent: Tuesday, November 24, 2026 3:00 PM",
        "To: support@interiorltd.jp",
        "Subject: 椅子の脚が折れていました",
        "",
        "先日注文した椅子の脚が折れていました。",
        "交換をお願いできますか。",
    ),
    "outlook-ja-original-message": mail(
        *ANSWER,
        "",
        "-----元のメッセージ-----",
        "差出人: 山田 太郎 <taro@example.jp>",
        "送信日時: 2026年11月24日 15:00",
        "宛先: support@interiorltd.jp",
        "件名: 椅子の脚が折れていました",
        "",
        "先日注文した椅子の脚が折れていました。",
    ),
    "outlook-en-header-block-under-rule": mail(
        *ANSWER,
        "",
        "________________________________",
        "From: 山田 太郎 <taro@example.jp>",
        "Sent: Tuesday, November 24, 2026 15:00",
        "To: support@interiorltd.jp <support@interiorltd.jp>",
        "Subject: Re: [#1234] 椅子の脚が折れていました",
        "",
        "先日注文した椅子の脚が折れていました。",
        "交換をお願いできますか。",
    ),
    "outlook-ja-header-block-under-rule": mail(
        *ANSWER,
        "",
        "________________________________",
        "差出人: 山田 太郎 <taro@example.jp>",
        "送信日時: 2026年11月24日 15:00",
        "宛先: support@interiorltd.jp <support@interiorltd.jp>",
        "件名: Re: [#1234] 椅子の脚が折れていました",
        "",
        "先日注文した椅子の脚が折れていました。",
    ),
    "outlook-ja-header-block-no-rule": mail(
        *ANSWER,
        "",
        "差出人: 山田 太郎 <taro@example.jp>",
        "送信日時: 2026年11月24日 15:00",
        "宛先: support@interiorltd.jp",
        "件名: 椅子の脚が折れていました",
        "",
        "先日注文した椅子の脚が折れていました。",
    ),
    "apple-mail-ja": mail(
        *ANSWER,
        "",
        "2026/11/24 15:00、山田太郎 <taro@example.jp>のメール:",
        "",
        *CUSTOMER_QUOTE,
    ),
    "iphone-ja-with-footer": mail(
        *ANSWER,
        "",
        "iPhoneから送信",
        "",
        "2026/11/24 15:00、山田太郎 <taro@example.jp>のメール:",
        "",
        *CUSTOMER_QUOTE,
    ),
    "apple-mail-en": mail(
        *ANSWER,
        "",
        "Sent from my iPhone",
        "",
        "On 2026/11/24, at 15:00, 山田太郎 <taro@example.jp> wrote:",
        "",
        *CUSTOMER_QUOTE,
    ),
    "thunderbird-en": mail(
        *ANSWER,
        "",
        "On 2026/11/24 15:00, 山田 wrote:",
        *CUSTOMER_QUOTE,
    ),
    "thunderbird-ja": mail(
        *ANSWER,
        "",
        "2026/11/24 15:00 山田 wrote:",
        *CUSTOMER_QUOTE,
    ),
    "android-gmail": mail(
        *ANSWER,
        "",
        "Android で Gmail から送信",
        "",
        "2026年11月24日(火) 15:00 山田太郎 <taro@example.jp>:",
        *CUSTOMER_QUOTE,
    ),
    "full-width-quotes-only": mail(
        *ANSWER,
        "",
        "＞ 先日注文した椅子の脚が折れていました。",
        "＞ 交換をお願いできますか。",
    ),
    "crlf-line-endings": mail(
        *ANSWER,
        "",
        "On Tue, Nov 24, 2026 at 3:00 PM 山田 <a@b.jp> wrote:",
        *CUSTOMER_QUOTE,
    ).replace("\n", "\r\n"),
}


@pytest.mark.parametrize("text", CLIENT_REPLIES.values(), ids=CLIENT_REPLIES.keys())
def test_strip_quoted_keeps_only_the_new_text(text: str) -> None:
    assert strip_quoted(text) == ANSWER_TEXT


@pytest.mark.parametrize(
    "attribution",
    [
        ("On Tue, Nov 24, 2026 at 3:00 PM 山田 <a@b.jp> wrote:",),
        ("On Tue, Nov 24, 2026 at 3:00 PM 山田 <", "a@b.jp> wrote:"),
        ("2026年11月24日(火) 15:00 山田太郎 <taro@example.jp>:",),
        ("2026年11月24日(火) 15:00 <taro@example.jp>:",),
        ("2026/11/24 15:00、山田太郎 <taro@example.jp>のメール:",),
        ("On 2026/11/24, at 15:00, 山田太郎 <taro@example.jp> wrote:",),
        ("On 2026/11/24 15:00, 山田 wrote:",),
        ("2026/11/24 15:00 山田 wrote:",),
        ("-----Original Message-----",),
        ("-----元のメッセージ-----",),
    ],
)
def test_an_attribution_cuts_the_original_even_when_it_is_not_quoted(
    attribution: tuple[str, ...],
) -> None:
    # Some clients (and forwarding setups) append the original without ">" marks.
    text = mail("承知しました。", "", *attribution, "先日注文した椅子の脚が折れていました。")
    assert strip_quoted(text) == "承知しました。"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            mail(*ANSWER, "", "-- ", "株式会社インテリア 佐藤", "support@interiorltd.jp"),
            ANSWER_TEXT,
            id="dash-dash-space",
        ),
        pytest.param(
            mail(*ANSWER, "--", "佐藤 花子"),
            ANSWER_TEXT,
            id="dash-dash",
        ),
        pytest.param(mail(*ANSWER, "", "Sent from my iPhone"), ANSWER_TEXT, id="sent-from-iphone"),
        pytest.param(mail(*ANSWER, "", "iPhoneから送信"), ANSWER_TEXT, id="iphone-ja"),
        pytest.param(
            mail(*ANSWER, "", "Android で Gmail から送信"), ANSWER_TEXT, id="android-gmail-ja"
        ),
        pytest.param(
            mail(
                *ANSWER,
                "",
                "━━━━━━━━━━━━━━━━━━━━━━",
                "株式会社インテリア カスタマーサポート",
                "佐藤 花子",
                "TEL: 03-1234-5678（平日10:00〜18:00）",
                "Mail: support@interiorltd.jp",
                "━━━━━━━━━━━━━━━━━━━━━━",
            ),
            ANSWER_TEXT,
            id="heavy-rule-box",
        ),
        pytest.param(
            mail(
                *ANSWER,
                "",
                "──────────────────",
                "インテリア窓口 佐藤",
                "〒100-0001 東京都千代田区千代田1-1-1",
                "https://interiorltd.jp/",
            ),
            ANSWER_TEXT,
            id="light-rule-open",
        ),
        pytest.param(
            mail(
                *ANSWER,
                "＝＝＝＝＝＝＝＝＝＝＝＝",
                "(株)インテリア 佐藤",
                "03-1234-5678",
                "＝＝＝＝＝＝＝＝＝＝＝＝",
            ),
            ANSWER_TEXT,
            id="full-width-equals",
        ),
        pytest.param(
            mail(
                *ANSWER,
                "",
                "-----",
                "佐藤 花子 / 株式会社インテリア",
                "sato@interiorltd.jp",
                "",
                "2026年11月24日(火) 15:00 山田太郎 <taro@example.jp>:",
                *CUSTOMER_QUOTE,
            ),
            ANSWER_TEXT,
            id="five-dashes-then-quote",
        ),
    ],
)
def test_strip_quoted_removes_signatures(text: str, expected: str) -> None:
    assert strip_quoted(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            mail(
                "ご注文内容は以下の通りです。",
                "──────────",
                "チェア（ナチュラル） × 1",
                "──────────",
                "到着まで今しばらくお待ちください。",
            ),
            id="rules-around-order-details",
        ),
        pytest.param(
            mail(
                "返品の手順をご案内します。",
                "━━━━━━━━━━",
                "1. 商品を箱に入れてください。",
                "2. 同封の伝票を貼ってください。",
            ),
            id="rule-before-instructions",
        ),
        pytest.param(
            mail(
                "返品の手順をご案内します。",
                "━━━━━━━━━━",
                "下記の住所へ着払いでお送りください。",
                "〒100-0001 東京都千代田区千代田1-1-1 インテリア返品係",
                "━━━━━━━━━━",
                "ご不便をおかけして申し訳ございません。",
            ),
            id="boxed-return-address-in-the-text",
        ),
        pytest.param(
            mail(
                "ご注文内容を確認しました。",
                "──────────",
                "チェア（ナチュラル） × 1",
                "テーブル（オーク） × 1",
            ),
            id="rule-before-order-lines-at-the-end",
        ),
    ],
)
def test_a_rule_inside_the_text_is_not_a_signature(text: str) -> None:
    assert strip_quoted(text) == text.rstrip("\n")


def test_interleaved_quotes_are_removed_and_the_answers_kept() -> None:
    text = mail(
        "山田様",
        "",
        "> 交換はできますか。",
        "",
        "はい、交換いたします。",
        "> 送料はかかりますか。",
        "送料は当店が負担いたします。",
        "",
        "よろしくお願いいたします。",
        "",
        "2026年11月24日(火) 15:00 山田太郎 <taro@example.jp>:",
        "> 交換はできますか。",
        "> 送料はかかりますか。",
    )
    assert strip_quoted(text) == (
        "山田様\n\nはい、交換いたします。\n送料は当店が負担いたします。\n\nよろしくお願いいたします。"
    )


def test_bottom_posted_reply_keeps_the_text_below_the_quote() -> None:
    text = mail(
        "On 2026/11/24 15:00, 山田 wrote:",
        "> 交換はできますか。",
        "",
        "はい、交換いたします。",
        "-- ",
        "佐藤",
    )
    assert strip_quoted(text) == "はい、交換いたします。"


def test_unknown_client_attribution_above_a_quote_is_removed() -> None:
    text = mail("承知しました。", "", "山田太郎 <taro@example.jp> さんは書きました:", "> 質問です")
    assert strip_quoted(text) == "承知しました。"


@pytest.mark.parametrize(
    "text",
    [
        mail("On Tue, Nov 24, 2026 at 3:00 PM 山田 <a@b.jp> wrote:", *CUSTOMER_QUOTE),
        mail("", "＞ 交換をお願いできますか。", "＞", ""),
        mail("", "", ""),
        "",
    ],
)
def test_only_quoted_text_gives_an_empty_body(text: str) -> None:
    assert strip_quoted(text) == ""


def test_internal_line_breaks_are_kept_and_outer_blank_lines_trimmed() -> None:
    text = "\n\n  \n一行目\n\n\n三段落目\n  インデント\n\n\n"
    assert strip_quoted(text) == "一行目\n\n\n三段落目\n  インデント"


# -- parse_reply: commands ---------------------------------------------------------------------

REPLY_TAIL = (
    "",
    "2026年11月24日(火) 15:00 山田太郎 <taro@example.jp>:",
    *CUSTOMER_QUOTE,
)


@pytest.mark.parametrize(
    ("head", "commands"),
    [
        (["#status resolved"], [SetStatus(Status.resolved)]),
        (["#status pending"], [SetStatus(Status.pending)]),
        (["#status closed"], [SetStatus(Status.closed)]),
        (["#status open"], [SetStatus(Status.open)]),
        (["#status: resolved"], [SetStatus(Status.resolved)]),
        (["#status=resolved"], [SetStatus(Status.resolved)]),
        (["#Status RESOLVED"], [SetStatus(Status.resolved)]),
        (["   #status\tresolved"], [SetStatus(Status.resolved)]),
        (["＃ｓｔａｔｕｓ　ｒｅｓｏｌｖｅｄ"], [SetStatus(Status.resolved)]),
        (["#ステータス 解決済み"], [SetStatus(Status.resolved)]),
        (["#状態 解決"], [SetStatus(Status.resolved)]),
        (["#状態 保留"], [SetStatus(Status.pending)]),
        (["#状態 保留中"], [SetStatus(Status.pending)]),
        (["#状態 返信待ち"], [SetStatus(Status.pending)]),
        (["#状態 完了"], [SetStatus(Status.closed)]),
        (["#状態 クローズ"], [SetStatus(Status.closed)]),
        (["#状態 終了"], [SetStatus(Status.closed)]),
        (["#状態 対応中"], [SetStatus(Status.open)]),
        (["#状態 オープン"], [SetStatus(Status.open)]),
        (["#状態 再開"], [SetStatus(Status.open)]),
        (["＃ステータス：解決済み。"], [SetStatus(Status.resolved)]),
        (["#assign sato@interiorltd.jp"], [Assign("sato@interiorltd.jp")]),
        (["#assign: 佐藤 花子"], [Assign("佐藤 花子")]),
        (["#担当 佐藤"], [Assign("佐藤")]),
        (["#担当者＝ｓａｔｏ＠ｉｎｔｅｒｉｏｒｌｔｄ．ｊｐ"], [Assign("sato@interiorltd.jp")]),
        (["#priority low"], [SetPriority(Priority.low)]),
        (["#priority normal"], [SetPriority(Priority.normal)]),
        (["#priority High"], [SetPriority(Priority.high)]),
        (["#priority=urgent"], [SetPriority(Priority.urgent)]),
        (["#優先度 低"], [SetPriority(Priority.low)]),
        (["#優先度 通常"], [SetPriority(Priority.normal)]),
        (["#優先度 普通"], [SetPriority(Priority.normal)]),
        (["#優先度 高"], [SetPriority(Priority.high)]),
        (["＃優先度　緊急"], [SetPriority(Priority.urgent)]),
        (
            ["#status pending", "", "#assign sato@interiorltd.jp", "", "#priority high"],
            [
                SetStatus(Status.pending),
                Assign("sato@interiorltd.jp"),
                SetPriority(Priority.high),
            ],
        ),
        (["", "#状態 保留中", "#担当 佐藤"], [SetStatus(Status.pending), Assign("佐藤")]),
    ],
)
def test_command_forms(head: list[str], commands: list[Command]) -> None:
    parsed = parse_reply(mail(*head, "", *ANSWER, *REPLY_TAIL))
    # The text for the customer is the last command: a reply.
    assert parsed == ParsedReply(
        commands=(*commands, Reply(ANSWER_TEXT)), errors=(), body=ANSWER_TEXT
    )


def test_full_width_japanese_status_command() -> None:
    parsed = parse_reply(
        mail("＃ステータス　解決済み", "", "ご確認ありがとうございました。", "", "iPhoneから送信")
    )
    text = "ご確認ありがとうございました。"
    assert parsed == ParsedReply(
        commands=(SetStatus(Status.resolved), Reply(text)), errors=(), body=text
    )


def test_a_reply_without_commands_is_all_body() -> None:
    parsed = parse_reply(CLIENT_REPLIES["outlook-ja-header-block-under-rule"])
    assert parsed == ParsedReply(commands=(Reply(ANSWER_TEXT),), errors=(), body=ANSWER_TEXT)


def test_commands_only_give_an_empty_body() -> None:
    parsed = parse_reply(mail("#status closed", "", "On 2026/11/24 15:00, 山田 wrote:", "> 了解"))
    # No text: no reply, only the status change.
    assert parsed == ParsedReply(commands=(SetStatus(Status.closed),), errors=(), body="")


@pytest.mark.parametrize("note", ["#note", "#NOTE", "#メモ", "#ノート", "＃内部メモ", "#note:"])
def test_note_makes_the_reply_an_internal_note(note: str) -> None:
    parsed = parse_reply(
        mail(note, "お客様に電話で確認しました。", "明日再送します。", "", "-- ", "佐藤")
    )
    text = "お客様に電話で確認しました。\n明日再送します。"
    # The whole text is the note; nothing is a reply to the customer.
    assert parsed == ParsedReply(commands=(AddNote(text),), errors=(), body=text)


@pytest.mark.parametrize(
    ("first_line", "note_start"),
    [
        ("#note 電話で確認済み。", "電話で確認済み。"),
        ("#メモ：ｶﾀｶﾅのまま残します", "ｶﾀｶﾅのまま残します"),
        ("　＃ノート　＃1234 は再送対象", "＃1234 は再送対象"),
    ],
)
def test_text_after_note_on_the_same_line_starts_the_note(first_line: str, note_start: str) -> None:
    parsed = parse_reply(
        mail("#assign 佐藤", first_line, "#status resolved", "明日再送します。", *REPLY_TAIL)
    )
    # The note text ends the command block: the "#status" line below it is part of the note.
    text = f"{note_start}\n#status resolved\n明日再送します。"
    assert parsed == ParsedReply(commands=(Assign("佐藤"), AddNote(text)), errors=(), body=text)


@pytest.mark.parametrize("order_line", ["#1234の注文について", "＃１２３４の件、発送済みです。"])
def test_an_order_number_line_is_body_text(order_line: str) -> None:
    parsed = parse_reply(
        mail("#priority high", order_line, "#status resolved", "よろしくお願いいたします。")
    )
    text = f"{order_line}\n#status resolved\nよろしくお願いいたします。"
    assert parsed == ParsedReply(
        commands=(SetPriority(Priority.high), Reply(text)), errors=(), body=text
    )


def test_commands_after_the_first_body_line_are_body_text() -> None:
    parsed = parse_reply(mail("承知しました。", "#status resolved", "#note"))
    text = "承知しました。\n#status resolved\n#note"
    assert parsed == ParsedReply(commands=(Reply(text),), errors=(), body=text)


# -- parse_reply: errors -----------------------------------------------------------------------

STATUS_VALUES = "open（対応中）, pending（保留）, resolved（解決済み）, closed（完了）"
KNOWN = "使えるコマンド: #status, #assign, #priority, #note, #spam"
PRIORITY_VALUES = "low（低）, normal（通常）, high（高）, urgent（緊急）"


@pytest.mark.parametrize(
    ("head", "errors", "commands"),
    [
        pytest.param(
            ["#statu resolved"],
            [
                CommandError(
                    1,
                    "#statu resolved",
                    f"「#statu」は不明なコマンドです。{KNOWN}",
                )
            ],
            [],
            id="unknown-command",
        ),
        pytest.param(
            ["#status resolved", "", "＃　期限 明日"],
            [
                CommandError(
                    3,
                    "＃　期限 明日",
                    f"「#期限」は不明なコマンドです。{KNOWN}",
                )
            ],
            [SetStatus(Status.resolved)],
            id="unknown-japanese-command-after-a-good-one",
        ),
        pytest.param(
            ["#status done"],
            [
                CommandError(
                    1,
                    "#status done",
                    f"「done」は「#status」に指定できない値です。使える値: {STATUS_VALUES}",
                )
            ],
            [],
            id="bad-status",
        ),
        pytest.param(
            ["#状態：解決しました"],
            [
                CommandError(
                    1,
                    "#状態：解決しました",
                    f"「解決しました」は「#状態」に指定できない値です。使える値: {STATUS_VALUES}",
                )
            ],
            [],
            id="bad-japanese-status",
        ),
        pytest.param(
            ["#status"],
            [
                CommandError(
                    1,
                    "#status",
                    f"「#status」にはステータスを指定してください。使える値: {STATUS_VALUES}",
                )
            ],
            [],
            id="missing-status",
        ),
        pytest.param(
            ["#assign sato", "#優先度 最高"],
            [
                CommandError(
                    2,
                    "#優先度 最高",
                    f"「最高」は「#優先度」に指定できない値です。使える値: {PRIORITY_VALUES}",
                )
            ],
            [Assign("sato")],
            id="bad-priority",
        ),
        pytest.param(
            ["#priority"],
            [
                CommandError(
                    1,
                    "#priority",
                    f"「#priority」には優先度を指定してください。使える値: {PRIORITY_VALUES}",
                )
            ],
            [],
            id="missing-priority",
        ),
        pytest.param(
            ["#担当者"],
            [
                CommandError(
                    1,
                    "#担当者",
                    "「#担当者」には担当者のメールアドレスまたは名前を指定してください。",
                )
            ],
            [],
            id="missing-assignee",
        ),
        pytest.param(
            ["#status pending", "#状態 解決済み"],
            [
                CommandError(
                    2,
                    "#状態 解決済み",
                    "「#状態」が2回以上指定されています。1回だけにしてください。",
                )
            ],
            [SetStatus(Status.pending)],
            id="status-twice",
        ),
    ],
)
def test_command_errors(
    head: list[str], errors: list[CommandError], commands: list[Command]
) -> None:
    parsed = parse_reply(mail(*head, "", *ANSWER, *REPLY_TAIL))
    assert parsed == ParsedReply(
        commands=(*commands, Reply(ANSWER_TEXT)), errors=tuple(errors), body=ANSWER_TEXT
    )


def test_format_errors_lists_each_line_for_the_agent() -> None:
    parsed = parse_reply(mail("#statu resolved", "#priority 最高", "本文です。"))
    text = format_errors(parsed.errors)
    assert "お客様へのメールは送信していません" in text
    assert "・1行目「#statu resolved」: 「#statu」は不明なコマンドです。" in text
    second = "・2行目「#priority 最高」: 「最高」は「#priority」に指定できない値です。"
    assert f"{second}使える値: {PRIORITY_VALUES}" in text


# -- issue 8: no word of the writer's lost; attributions in many languages ------------------------

WORDS = ("Hi,", "Thanks, the replacement is on its way.")
HISTORY = ("Earlier message that must go.",)


@pytest.mark.parametrize(
    "attribution",
    [
        pytest.param(("Le 4 janv. 2016 19:03, Neil <info@example.org> a écrit :",), id="fr"),
        pytest.param(("Le lun. 15 nov. 2021 à 19:42, John <john@acme.com>", "a écrit :"), id="fr2"),
        pytest.param(("Am 13.12.2017 21:11 schrieb John <j@example.de>:",), id="de"),
        pytest.param(
            ("Max <m@example.de> schrieb am Fr., 28.", "Apr. 2017 um 11:53 Uhr:"), id="de-gmail"
        ),
        pytest.param(("Op 12 december 2016 19:05 schreef Jan <", "jan@example.nl>:"), id="nl"),
        pytest.param(("Il giovedì 8 dicembre 2016, Dino <d@example.it>", "ha scritto:"), id="it"),
        pytest.param(("In data 11 ottobre 2017 21:11:31 Dino <d@e.it> ha scritto:",), id="it2"),
        pytest.param(("El jueves, 21 de noviembre de 2013, Pablo escribió:",), id="es"),
        pytest.param(("Em 10 de julho de 2017 às 16:32:35, John (", "j@e.com) escreveu:"), id="pt"),
        pytest.param(("понедельник, 6 октября 2014 г. пользователь lidel написал:",), id="ru"),
        pytest.param(("W dniu 2017-01-09 11:59:39 użytkownik Jan <j@e.pl> napisał:",), id="pl"),
        pytest.param(("Dnia 27 grudnia 2016 12:08 Jan <j@e.pl> napisał(a):",), id="pl2"),
        pytest.param(("2016年11月24日 下午3:00，山田 <a@b.jp> 写道：",), id="zh"),
        pytest.param(("2016년 11월 24일 (목) 오후 3:00, 山田 <a@b.jp>님이 작성:",), id="ko"),
        pytest.param(("2026/11/24 15:00、山田 <a@b.jp>のメール:",), id="ja-apple"),
        pytest.param(("Den 15. jun. 2016 kl. 20.42 skrev Jeff <info@example.org>:",), id="no"),
        pytest.param(("pe 20. lokakuuta 2017 klo 17.50 John", "<j@test.com> kirjoitti:"), id="fi"),
        pytest.param(
            ("On Wed, 14 Nov 2018 08:14:43 -0200 John <john@doe.com> wrote",), id="no-colon"
        ),
        pytest.param(
            ("---- On Wed, 24 Feb 2021 14:02:50 +0530 john@gmail.com wrote ----",), id="zoho"
        ),
        pytest.param(("Some One <info@example.org> wrote:",), id="name-address-no-date"),
        pytest.param(("On Wed, Dec 9, Mister Example", "<mr@example.com>", "wrote:"), id="3-lines"),
    ],
)
@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted"])
def test_attributions_in_many_languages(attribution: tuple[str, ...], quoted: bool) -> None:
    history = tuple(f"> {line}" for line in HISTORY) if quoted else HISTORY
    text = mail(*WORDS, "", *attribution, "", *history)
    assert strip_quoted(text) == "\n".join(WORDS)


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(
            (
                "-----Ursprüngliche Nachricht-----",
                "Von: A <a@b.de>",
                "Gesendet: Donnerstag, 23. März 2023 17:11",
                "An: B <b@c.de>",
                "Betreff: AW: Frage",
            ),
            id="de",
        ),
        pytest.param(
            (
                "De : A<mailto:a@b.fr>",
                "Envoyé le :jeudi 15 décembre 2016 09:35",
                "À : b@c.fr",
                "Objet :Question",
            ),
            id="fr",
        ),
        pytest.param(
            (
                "-----Mensaje original-----",
                'De: "Miguel" <foo@bar.es>',
                "Enviado: 16/02/2016 14:53",
                "Para: x@y.es",
                "Asunto: Pregunta",
            ),
            id="es",
        ),
        pytest.param(
            (
                "Da: A <a@b.it>",
                "Inviato: martedì 3 gennaio 2017 10:35",
                "A: b@c.it",
                "Oggetto: Domanda",
            ),
            id="it",
        ),
        pytest.param(
            (
                "Van: A [mailto:a@b.nl]",
                "Verzonden: maandag 5 december 2016 17:00",
                "Aan: b@c.nl",
                "Onderwerp: Vraag",
            ),
            id="nl",
        ),
        pytest.param(
            (
                "De: A <a@b.pt>",
                "Enviada em: 5 de dezembro de 2016 17:00",
                "Para: b@c.pt",
                "Assunto: Pergunta",
            ),
            id="pt",
        ),
        pytest.param(
            (
                "От: A <a@b.ru>",
                "Отправлено: 5 декабря 2016 г. 17:00",
                "Кому: b@c.ru",
                "Тема: Вопрос",
            ),
            id="ru",
        ),
        pytest.param(
            ("Od: A <a@b.pl>", "Wysłano: 5 grudnia 2016 17:00", "Do: b@c.pl", "Temat: Pytanie"),
            id="pl",
        ),
        pytest.param(
            (
                "发件人: A <a@b.cn>",
                "发送时间: 2026年11月24日 15:00",
                "收件人: b@c.cn",
                "主题: 问题",
            ),
            id="zh",
        ),
        pytest.param(
            (
                "寄件者: A <a@b.tw>",
                "寄件日期: 2026年11月24日 15:00",
                "收件者: b@c.tw",
                "主旨: 問題",
            ),
            id="zh-tw",
        ),
        pytest.param(
            (
                "보낸 사람: A <a@b.kr>",
                "보낸 날짜: 2026년 11월 24일 오후 3:00",
                "받는 사람: b@c.kr",
                "제목: 질문",
            ),
            id="ko",
        ),
        pytest.param(
            (
                "________________________________",
                "From: A <a@b.com>",
                "Sent: Tuesday, November 24, 2026 3:00 PM",
                "To: b@c.com",
                "Subject: Question",
            ),
            id="en",
        ),
        pytest.param(
            (
                "-------- Message d'origine --------",
                "De : A B C <abc@abc.org>",
                "Date : 23/06/24  10:46  (GMT+01:00)",
                "À : abc@abc.be Objet : Message",
            ),
            id="fr-dashes",
        ),
    ],
)
def test_outlook_header_blocks_in_many_languages(block: tuple[str, ...]) -> None:
    text = mail(*WORDS, "", *block, "", *HISTORY)
    assert strip_quoted(text) == "\n".join(WORDS)


def test_the_line_right_above_an_attribution_is_kept() -> None:
    text = mail(
        "Hi,",
        "On Tue, 2011-03-01 at 18:02 +0530, Abhishek Kona wrote:",
        "> Hi folks",
        "",
        "You can list the keys.",
    )
    assert strip_quoted(text) == "Hi,\n\nYou can list the keys."


def test_text_between_blank_lines_before_an_attribution_is_kept() -> None:
    text = mail(
        "Ensuring this is not greedy.",
        "",
        "On this day",
        "",
        "I wrote something",
        "",
        "On 28 Jan 2016, at 19:04, Some One wrote:",
        "",
        "> Anything interesting?",
    )
    assert (
        strip_quoted(text)
        == mail("Ensuring this is not greedy.", "", "On this day", "", "I wrote something").strip()
    )


def test_an_attribution_on_top_of_unquoted_text_keeps_the_text() -> None:
    text = mail(
        'On 8 May 2017 17:34, "Andy" <andy@example.co.uk> wrote:',
        "",
        "It should be:",
        "",
        "    2.0 && 2.0 + 12.0",
    )
    assert strip_quoted(text) == "It should be:\n\n    2.0 && 2.0 + 12.0"


@pytest.mark.parametrize(
    "marker",
    [
        "---------- Forwarded message ----------",
        "--------転送メッセージ--------",
        "Begin forwarded message:",
        "-------- Message transféré --------",
    ],
)
def test_a_mail_that_is_only_a_forward_keeps_the_forwarded_text(marker: str) -> None:
    text = mail(
        marker,
        "From: Some One <foo@bar.com>",
        "Date: Thu, Jan 28, 2016 at 4:00 PM",
        "Subject: Some subject that",
        "spans over 2 lines",
        "To: info@example.org",
        "",
        "",
        "This is a forwarded email. And just that.",
    )
    assert strip_quoted(text) == "This is a forwarded email. And just that."


def test_a_forward_below_the_writers_words_goes() -> None:
    text = mail(
        "転送します。",
        "",
        "--------転送メッセージ--------",
        "件名: 注文",
        "差出人: a@b.jp",
        "",
        "元のメール",
    )
    assert strip_quoted(text) == "転送します。"


def test_an_inline_reply_below_a_quote_is_kept() -> None:
    text = mail(
        "This is a line before the embedded email.",
        "On Tue, 2011-03-01 at 18:02 +0530, Some One wrote:",
        "> Hello",
        "",
        "This is some text",
        "",
        "C>",
        "C> another part of the embedded email.",
    )
    assert strip_quoted(text) == "This is a line before the embedded email.\n\nThis is some text"


def test_a_quoted_line_wrapped_by_the_mailer_stays_quoted() -> None:
    text = mail(
        "Answer.",
        "",
        "> Lorem ipsum dolor sit amet, consectetur adipiscing elit. Nullam d",
        "ignissim odio?",
        ">",
        "> Short question?",
        "Yes, it is.",
        "> Next",
    )
    assert strip_quoted(text) == "Answer.\n\nYes, it is."


def _render(template: str, **context: object) -> str:
    from jinja2 import Environment, FileSystemLoader

    from helpdesk.settings import ROOT

    env = Environment(loader=FileSystemLoader(ROOT / "templates" / "mail"), autoescape=False)
    env.filters["jst"] = str
    rendered = env.get_template(template).render(**context)
    return rendered.split("\n", 1)[1]  # without the "Subject:" line


TICKET = {"reference": "HD-26-00001", "subject": "届かない", "customer_name": "山田 花子"}


@pytest.mark.parametrize(
    ("template", "context"),
    [
        (
            "ticket_notification.txt",
            {
                "ticket": {**TICKET, "late": False},
                "kind_label": "お問い合わせ",
                "customer": {"name": "山田 花子", "email": "hanako@example.jp"},
                "submission": {"description": "届きません。"},
                "agent_url": "https://shop.example/agent/t/HD-26-00001?key=abc",
                "policy": {},
            },
        ),
        (
            "customer_reply.txt",
            {
                "ticket": TICKET,
                "customer": {"name": "山田 花子", "email": "hanako@example.jp"},
                "message": {"verified": True, "sender": "hanako@example.jp", "id": 7},
                "body": "まだ届きません。",
                "agent_url": "https://shop.example/agent/t/HD-26-00001?key=abc",
            },
        ),
        (
            "customer_reply.txt",
            {
                "ticket": TICKET,
                "customer": {"name": "山田 花子", "email": "hanako@example.jp"},
                "message": {"verified": False, "sender": "someone@example.com", "id": 8},
                "trust_label": "お客様以外のアドレスから",
                "body": "別の人です。",
                "agent_url": "https://shop.example/agent/t/HD-26-00001?key=abc",
            },
        ),
        (
            "unregistered_sender.txt",
            {
                "ticket": TICKET,
                "customer": {"name": "山田 花子", "email": "hanako@example.jp"},
                "message": {"verified": False, "sender": "colleague@example.jp", "id": 9},
                "body": "#担当 佐藤\n対応します。",
                "agent_url": "https://shop.example/agent/t/HD-26-00001?key=abc",
            },
        ),
    ],
)
def test_our_own_notifications_pasted_without_a_marker_go(template: str, context: dict) -> None:
    pasted = _render(template, **context)
    assert "/agent/t/" in pasted
    parsed = parse_reply(mail("#status resolved", "", *ANSWER, "", pasted))
    assert parsed.body == ANSWER_TEXT
