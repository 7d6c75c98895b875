"""``helpdesk.tickets.text``: nothing invisible in short fields, names that never link."""

from __future__ import annotations

import pytest

from helpdesk.tickets.text import clean_line, clean_text, looks_like_link, name_from_mail

# Issue 7, #17: characters that display nothing, or display the rest in another order.
SPOOFS = {
    "right-to-left override": ("山田\u202e郎太", "山田郎太"),  # shown as 山田太郎
    "left-to-right override": ("山田\u202d花子", "山田花子"),
    "isolates": ("\u2066山田\u2069 \u2067花子\u2069", "山田 花子"),
    "marks": ("\u200f山田\u200e花子", "山田花子"),
    "zero-width space": ("山\u200b田 花\u200b子", "山田 花子"),
    "zero-width joiner": ("山\u200d田", "山田"),
    "zero-width non-joiner": ("山\u200c田", "山田"),
    "word joiner": ("山\u2060田", "山田"),
    "byte order mark": ("\ufeff山田", "山田"),
    "soft hyphen": ("山\u00ad田", "山田"),
    "Hangul filler": ("\u3164山田\u3164", "山田"),
    "halfwidth Hangul filler": ("山田\uffa0花子", "山田花子"),
    "Hangul choseong filler": ("\u115f山田\u1160", "山田"),
    "combining grapheme joiner": ("山\u034f田", "山田"),
    "braille blank": ("山田\u2800花子", "山田花子"),
    "Mongolian vowel separator": ("山\u180e田", "山田"),
    "tag characters": ("山田\U000e0041\U000e0042", "山田"),
    "variation selectors": ("山田\ufe0f\ufe0e花子", "山田花子"),
    "private use": ("山田\ue000", "山田"),
    "unassigned": ("山田\U000effff", "山田"),
    "control characters": ("山田\x00\x1b\x7f\x85花子", "山田花子"),
    "runs of spaces": ("山田\u3000\u3000 花子", "山田 花子"),
}


@pytest.mark.parametrize(("typed", "stored"), SPOOFS.values(), ids=SPOOFS.keys())
def test_short_fields_keep_nothing_invisible(typed: str, stored: str) -> None:
    assert clean_line(typed) == stored


def test_a_name_of_invisible_characters_is_empty() -> None:
    assert clean_line("\u3164\u200b\u202e\u2800\ufeff") == ""


def test_an_ideographic_variation_selector_stays_after_its_kanji_only() -> None:
    tsuji = "辻\U000e0100"  # 一点しんにょう: the customer's own spelling
    assert clean_line(f"{tsuji} 花子") == f"{tsuji} 花子"
    assert clean_line("a\U000e0100 \U000e0100花子") == "a 花子"


def test_long_text_keeps_lines_width_and_emoji_sequences() -> None:
    family = "👨\u200d👩\u200d👧"
    flag = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # Scotland
    heart = "❤\ufe0f"
    thumbs = "👍🏽"
    text = f"ＡＢＣ\n\t{family}{flag}{heart}{thumbs} 辻\U000e0100"
    assert clean_text(text) == text


def test_long_text_drops_what_hides_or_reorders_text() -> None:
    assert clean_text("返品\u202eします\u202c") == "返品します"
    assert clean_text("a\u200bb\ufeffc\u2066d\u2069e\u3164f") == "abcdef"
    # A joiner between letters, a stray tag, a doubled or leading selector: gone.
    assert clean_text("\ufe0f山\u200d田\U000e0041 ❤\ufe0f\ufe0f") == "山田 ❤\ufe0f"
    assert clean_text("1行目\u20282行目\u20293行目") == "1行目\n2行目\n\n3行目"


@pytest.mark.parametrize(
    "name",
    [
        "【重要】お支払い情報の再登録が必要です http://evil.example/login",
        "hxxp://evil.example",  # any scheme
        "www.evil-example.jp",
        "evil.example/login",
        "お支払いevil.com",
        "ＥＶＩＬ．ｃｏｍ",  # full width, as NFKC sees it
        "taro@example.jp",
        "taro＠example.jp",
        "例え.jp",
        "evil.xn--wgv71a",
    ],
)
def test_link_looking_names(name: str) -> None:
    assert looks_like_link(clean_line(name))


@pytest.mark.parametrize(
    "name",
    ["山田 花子", "J.R. Smith", "Dr.山田", "O'Brien", "Jean-Luc", "ヤマダ.ハナコ", "山田 花子."],
)
def test_ordinary_names_are_not_links(name: str) -> None:
    assert not looks_like_link(name)


@pytest.mark.parametrize(
    ("display", "address", "name"),
    [
        ("山田 花子", "hanako@example.jp", "山田 花子"),
        ("【重要】再登録 http://evil.example/login", "x@example.jp", "【重要】再登録"),
        ("http://evil.example/login", "hanako@example.jp", "hanako"),
        ("evil.example", "hanako@example.jp", "hanako"),
        ("", "taro.yamada@example.jp", "お客様"),  # the local part looks like a domain
        ("\u202e\u3164", "hanako@example.jp", "hanako"),
        ("山田\u202e郎太", "hanako@example.jp", "山田郎太"),
    ],
)
def test_names_from_mail_are_cleaned_and_never_links(display: str, address: str, name: str) -> None:
    assert name_from_mail(display, address) == name
