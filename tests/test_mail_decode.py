"""Japanese inbound mail decoding: the corpus in tests/mail_corpus plus one unit test per trap."""

from __future__ import annotations

import base64
import hashlib
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from helpdesk.mail.decode import (
    MailParseError,
    decode_bytes,
    decode_header_value,
    html_to_text,
    normalize_japanese,
    parse_message,
)

CORPUS = Path(__file__).parent / "mail_corpus"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads(
    (CORPUS / "expected.toml").read_text(encoding="utf-8")
)


def _b(charset: str, data: bytes) -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode('ascii')}?="


# ---------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------


def test_corpus_and_expectations_match() -> None:
    files = {path.name for path in CORPUS.glob("*.eml")}
    assert files == set(EXPECTED)
    assert len(files) >= 16


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message(name: str) -> None:
    expected = EXPECTED[name]
    mail = parse_message((CORPUS / name).read_bytes())

    assert mail.subject == expected["subject"]
    assert mail.from_address == expected["from_address"]
    assert mail.from_name == expected["from_name"]
    for needle in expected["text_contains"]:
        assert needle in mail.text, f"{needle!r} missing from:\n{mail.text}"
    for needle in expected["text_excludes"]:
        assert needle not in mail.text, f"{needle!r} found in:\n{mail.text}"
    assert "\ufffd" not in mail.subject + mail.from_name
    assert "\r" not in mail.text

    got = [(a.filename, a.content_type, len(a.data)) for a in mail.attachments]
    want = [(a["filename"], a["content_type"], a["size"]) for a in expected["attachments"]]
    assert got == want
    for attachment, wanted in zip(mail.attachments, expected["attachments"], strict=True):
        assert hashlib.sha256(attachment.data).hexdigest() == wanted["sha256"]

    assert mail.auto_submitted == expected.get("auto_submitted")
    assert mail.precedence == expected.get("precedence")
    assert mail.is_delivery_report == expected.get("is_delivery_report", False)
    assert [list(s) for s in mail.delivery_status] == expected.get("delivery_status", [])
    assert mail.in_reply_to == expected.get("in_reply_to")
    if "references" in expected:
        assert list(mail.references) == expected["references"]
    if "message_id" in expected:
        assert mail.message_id == expected["message_id"]
    else:
        assert mail.message_id and "<" not in mail.message_id
    if "date" in expected:
        assert mail.date == datetime.fromisoformat(expected["date"])
    assert mail.date is not None and mail.date.utcoffset() is not None
    for key in ("to", "cc", "reply_to"):
        if key in expected:
            assert list(getattr(mail, key)) == expected[key]
    for key, value in expected.get("headers", {}).items():
        assert mail.headers[key] == value
    if "html_contains" in expected:
        assert mail.html is not None
        for needle in expected["html_contains"]:
            assert needle in mail.html
    if "same_text_as" in expected:
        other = parse_message((CORPUS / expected["same_text_as"]).read_bytes())
        assert other.text == mail.text


def test_corpus_forwarded_message_is_a_parseable_mail() -> None:
    mail = parse_message((CORPUS / "21-forward-rfc822.eml").read_bytes())
    (forwarded,) = mail.attachments
    inner = parse_message(forwarded.data)
    assert inner.subject == "ご注文の確認 #1234"
    assert "注文番号：#1234" in inner.text
    assert [a.filename for a in inner.attachments] == ["item.jpg"]


# ---------------------------------------------------------------------------
# decode_bytes: charset labels and codecs
# ---------------------------------------------------------------------------

NEC_AND_IBM = "①②㈱№≒∵Ⅲ髙﨑ⅰ"


def test_iso2022jp_with_nec_and_ibm_extensions() -> None:
    # CP50221: NEC row 13 (0x2D..) and NEC-selected IBM extensions (0x79-0x7C) inside ESC $ B.
    data = b'\x1b$B-!-"-j-b"b"h-7|byu|q\x1b(B'
    with pytest.raises(UnicodeDecodeError):
        data.decode("iso2022_jp")  # what the stdlib does
    assert decode_bytes(data, "ISO-2022-JP") == NEC_AND_IBM
    assert decode_bytes(data, "csISO2022JP") == NEC_AND_IBM
    assert decode_bytes(data, "iso-2022-jp-ms") == NEC_AND_IBM


def test_iso2022jp_halfwidth_katakana_and_jis_roman() -> None:
    assert decode_bytes(b"\x1b(I;2=^\x1b(B OK \x1b(Jabc\x1b(B", "iso-2022-jp") == "ｻｲｽﾞ OK abc"
    # SO/SI (JIS7) half-width katakana
    assert decode_bytes(b"\x0e;2=^\x0f!", "iso-2022-jp") == "ｻｲｽﾞ!"


def test_iso2022jp1_jis_x_0212() -> None:
    assert decode_bytes(b"\x1b$(D0!l?\x1b(B", "ISO-2022-JP-1") == "丂鷗"
    # ISO-2022-JP-MS (libiconv): IBM extensions from JIS X 0212 0x7321
    assert decode_bytes(b'\x1b$(Ds!s"\x1b(B', "iso-2022-jp") == "ⅰⅱ"


def test_iso2022jp_without_final_escape_and_state_across_lines() -> None:
    assert decode_bytes(b'\x1b$B$"\n$$', "iso-2022-jp") == "あ\nい"


def test_iso2022jp_label_on_8bit_bytes_falls_back_to_detection() -> None:
    assert decode_bytes("返品".encode(), "iso-2022-jp") == "返品"
    assert decode_bytes("返品".encode("cp932"), "iso-2022-jp") == "返品"


@pytest.mark.parametrize(
    "label", ["Shift_JIS", "shift-jis", "SJIS", "x-sjis", "Windows-31J", "MS932", "cp932"]
)
def test_shift_jis_labels_are_cp932(label: str) -> None:
    data = "①㈱髙～".encode("cp932") + b"\xfb\xfc"  # 髙 also at its IBM code
    with pytest.raises(UnicodeDecodeError):
        data.decode("shift_jis")
    assert decode_bytes(data, label) == "①㈱髙～髙"


def test_euc_jp_with_nec_row_13_and_jis_x_0212() -> None:
    data = "注文".encode("euc_jp") + b"\xad\xa1\xad\xea" + b"\x8f\xb0\xa1" + b"\xa1\xc1"
    with pytest.raises(UnicodeDecodeError):
        data.decode("euc_jp")
    assert decode_bytes(data, "EUC-JP") == "注文①㈱丂～"
    assert decode_bytes(data, "x-euc-jp") == "注文①㈱丂～"


def test_eucjp_ms_ibm_extensions() -> None:
    assert decode_bytes(b"\x8f\xf3\xf3\x8f\xf3\xf4", "euc-jp") == "ⅰⅱ"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("お問い合わせ〜".encode(), "お問い合わせ～"),
        ("ご注文ありがとうございます①".encode("cp932"), "ご注文ありがとうございます①"),
        ("ご注文ありがとうございます".encode("euc_jp"), "ご注文ありがとうございます"),
        ("返品".encode("iso2022_jp"), "返品"),
        (b"plain ascii", "plain ascii"),
        (b"", ""),
        (b"caf\xe9 au lait", "café au lait"),
    ],
)
def test_detection_without_charset(data: bytes, expected: str) -> None:
    assert decode_bytes(data, None) == expected
    assert decode_bytes(data, "x-no-such-charset") == expected


def test_mislabelled_utf8_label_with_cp932_bytes() -> None:
    assert decode_bytes("返品のお願い".encode("cp932"), "utf-8") == "返品のお願い"
    assert decode_bytes("返品のお願い".encode(), "us-ascii") == "返品のお願い"
    assert decode_bytes("返品のお願い".encode(), "iso-8859-1") == "返品のお願い"


def test_undecodable_bytes_are_replaced_not_raised() -> None:
    text = decode_bytes(b"\xe3\x81\x82\xe3\x81", "utf-8")
    assert text.startswith("あ")
    assert "\ufffd" in text


def test_wave_dash_same_text_through_both_mappings() -> None:
    jis = b'\x1b$B!A!]!B!q!r"L!=\x1b(B'  # 〜 − ‖ ¢ £ ¬ ―
    sjis = b"\x81\x60\x81\x7c\x81\x61\x81\x91\x81\x92\x81\xca\x81\x5c"
    assert jis.decode("iso2022_jp") == "〜−‖¢£¬―"  # the JIS mapping
    assert sjis.decode("cp932") == "～－∥￠￡￢―"  # the Microsoft mapping
    assert decode_bytes(jis, "iso-2022-jp") == "～－∥￠￡￢―"
    assert decode_bytes(sjis, "shift_jis") == "～－∥￠￡￢―"
    assert decode_bytes("〜−‖¢£¬―".encode("euc_jp"), "euc-jp") == "～－∥￠￡￢―"


# ---------------------------------------------------------------------------
# normalize_japanese
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jis", "microsoft"),
    [("〜", "～"), ("−", "－"), ("‖", "∥"), ("¢", "￠"), ("£", "￡"), ("¬", "￢"), ("—", "―")],
)
def test_normalize_japanese(jis: str, microsoft: str) -> None:
    assert normalize_japanese(f"10:00{jis}18:00") == f"10:00{microsoft}18:00"
    assert normalize_japanese(microsoft) == microsoft


def test_normalize_japanese_leaves_everything_else() -> None:
    text = "ｶﾀｶﾅ ＡＢＣ ① ㈱ 髙 - ~ | 〒"
    assert normalize_japanese(text) == text


# ---------------------------------------------------------------------------
# decode_header_value
# ---------------------------------------------------------------------------


def test_header_utf8_word_split_mid_character() -> None:
    data = "返品について".encode()
    value = f"{_b('UTF-8', data[:4])}\r\n {_b('utf-8', data[4:])}"
    assert decode_header_value(value) == "返品について"


def test_header_iso2022jp_word_split_mid_character() -> None:
    data = "返品".encode("iso2022_jp")  # ESC $ B 4x ( J ESC ( B
    value = f"{_b('ISO-2022-JP', data[:4])} {_b('ISO-2022-JP', data[4:])}"
    assert decode_header_value(value) == "返品"


def test_header_words_with_nec_chars_and_text_around() -> None:
    value = "Re: " + _b("iso-2022-jp", b"\x1b$B-j|b\x1b(B") + " [#1234]"
    assert decode_header_value(value) == "Re: ㈱髙 [#1234]"


def test_header_bad_padding_and_unknown_charset() -> None:
    unpadded = base64.b64encode("返品".encode()).decode().rstrip("=")
    assert decode_header_value(f"=?UTF-8?B?{unpadded}?=") == "返品"
    assert decode_header_value(_b("x-unknown", "至急".encode("cp932"))) == "至急"
    assert decode_header_value("=?UTF-8?Q?=E8=BF=94=E5=93=81_OK?=") == "返品 OK"


@pytest.mark.parametrize("codec", ["utf-8", "cp932", "euc_jp", "iso2022_jp"])
def test_header_raw_bytes(codec: str) -> None:
    raw = "小林 ゆうこ <yuko@example.jp>".encode(codec)
    assert decode_header_value(raw) == "小林 ゆうこ <yuko@example.jp>"
    assert decode_header_value(raw.decode("ascii", "surrogateescape")) == (
        "小林 ゆうこ <yuko@example.jp>"
    )


def test_header_unfolding() -> None:
    assert decode_header_value("Order\r\n #1234\r\n\tok") == "Order #1234 ok"


# ---------------------------------------------------------------------------
# html_to_text
# ---------------------------------------------------------------------------


def test_html_to_text() -> None:
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body>"
        "<p>注文&amp;返品</p><p>一行目<br>二行目</p><script>alert(1)</script>"
        "<blockquote>引用</blockquote><ul><li>A</li><li>B</li></ul>"
        '<p><a href="https://shop.example.jp/o/1">注文詳細</a></p></body></html>'
    )
    assert html_to_text(html) == (
        "注文&返品\n\n一行目\n二行目\n\n> 引用\n\n・A\n・B\n\n注文詳細 (https://shop.example.jp/o/1)"
    )


# ---------------------------------------------------------------------------
# parse_message: structure and robustness
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   \r\n", b"hello world\r\n\r\nnot a mail"])
def test_not_a_mail(raw: bytes) -> None:
    with pytest.raises(MailParseError):
        parse_message(raw)


def test_not_bytes() -> None:
    with pytest.raises(TypeError):
        parse_message("Subject: x\n\nbody")  # type: ignore[arg-type]


def test_broken_mime_never_raises() -> None:
    raw = (
        b"Subject: =?bogus?B?!!!?=\r\nDate: not a date\r\nFrom: <>\r\n"
        b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
        b"--zz\r\nContent-Type: text/plain; charset=bogus\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\n!!!not base64\r\n"
        b"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe broken \x82\xa0\r\n"
        b"--zz\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01"
    )
    mail = parse_message(raw)
    assert mail.date is None
    assert mail.from_address == ""
    assert mail.attachments[0].filename == "attachment-1.bin"


def test_alternative_with_empty_plain_falls_back_to_html() -> None:
    raw = (
        b"From: a@example.jp\r\nSubject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n"
        b"\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>\xe8\xbf\x94\xe5\x93\x81</p>\r\n"
        b"--b--\r\n"
    )
    mail = parse_message(raw)
    assert mail.text == "返品"
    assert mail.html == "<p>返品</p>"


def test_naive_date_is_utc_and_headers_are_decoded() -> None:
    raw = (
        b"From: =?UTF-8?B?5L2Q6Jek?= <Sato@Example.JP>\r\n"
        b"To: a@example.jp, =?UTF-8?B?6Yi05pyo?= <B@example.jp>\r\n"
        b"Date: Mon, 1 Apr 2024 09:00:00 -0000\r\n"
        b"Message-ID: <abc@example.jp>\r\nReferences: <r1@x> <r2@x>\r\n"
        b"Subject: =?UTF-8?B?44OG44K544OI?=\r\n\r\nbody\r\n"
    )
    mail = parse_message(raw)
    assert mail.date == datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
    assert (mail.from_name, mail.from_address) == ("佐藤", "sato@example.jp")
    assert mail.to == ("a@example.jp", "b@example.jp")
    assert mail.references == ("r1@x", "r2@x")
    assert mail.headers["subject"] == "テスト"
    assert mail.text == "body"


def test_raw_8bit_filename() -> None:
    name = "写真①.jpg".encode("cp932")
    raw = (
        b"From: a@example.jp\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        b'--b\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename="'
        + name
        + b'"\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4A==\r\n--b--\r\n'
    )
    mail = parse_message(raw)
    assert [a.filename for a in mail.attachments] == ["写真①.jpg"]


# ---------------------------------------------------------------------------
# Leftovers from other projects' fixtures (issue 8, item 6) and malformed From forms
# ---------------------------------------------------------------------------


def _mail(headers: str, body: bytes = b"body\r\n") -> bytes:
    return headers.replace("\n", "\r\n").encode("utf-8") + b"\r\n" + body


def test_au_emoji_in_iso2022jp_become_unicode_emoji() -> None:
    # au sends its emoji as JIS codes in rows 0x75-0x7C; EmojiSources.txt maps KDDI's codes.
    raw = (
        b"From: taro@ezweb.ne.jp\r\nSubject: =?iso-2022-jp?B?GyRCQmpMPnZeGyhC?=\r\n"
        b"Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n"
        b"\x1b$BK\\J8\x1b(B\x1b$Bu:\x1b(B\r\n"
    )
    mail = parse_message(raw)
    assert mail.subject == "題名\U0001f3a4"  # 🎤, not the kanji 泫
    assert mail.text == "本文\u26a0"  # ⚠ (au's "danger" sign)


def test_rows_79_to_7c_stay_ibm_kanji_unless_the_sender_is_au() -> None:
    # CP50221 puts NEC-selected IBM extensions (髙) there; only au mail means emoji.
    body = b"\x1b$By|\x1b(B"  # JIS 0x797C
    windows = parse_message(
        b"From: a@example.jp\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n" + body
    )
    assert windows.text == decode_bytes(body, "iso-2022-jp")
    assert not any(ord(c) >= 0x1F000 for c in windows.text)


def test_raw_8bit_header_is_read_in_the_charset_the_mail_declares() -> None:
    raw = (
        b'From: "=?Windows-1252?B?Rm9ybWHn428=?=" <info@example.com>\r\n'
        b"Subject: Forma\xe7\xe3o de Ver\xe3o\r\n\r\nTEST\r\n"
    )
    assert parse_message(raw).subject == "Formação de Verão"  # not Forma鈬o


def test_a_stray_byte_in_an_rfc2231_name_keeps_the_next_letter() -> None:
    raw = _mail(
        "From: a@example.jp\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: text/plain\n\nhi\n--b\n"
        "Content-Type: application/octet-stream; name*=iso-2022-jp'ja'Dij%8aat.mp3\n\n"
        "data\n--b--\n"
    )
    [attachment] = parse_message(raw).attachments
    assert attachment.filename.startswith("Dij") and attachment.filename.endswith("at.mp3")
    assert len(attachment.filename) == len("Dij?at.mp3")


def test_the_file_parameter_names_an_attachment() -> None:
    raw = _mail(
        "From: a@example.jp\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: text/plain\n\nhi\n--b\n"
        'Content-Type: application/octet-stream; file="ATTACHMENT.EXE"\n\ndata\n--b--\n'
    )
    assert [a.filename for a in parse_message(raw).attachments] == ["ATTACHMENT.EXE"]


def test_a_boundary_folded_over_two_header_lines() -> None:
    raw = _mail(
        'From: a@example.jp\nContent-Type: multipart/mixed; boundary="foo\n bar"\n\n'
        "--foo bar\nContent-Type: text/plain\n\nhello\n"
        "--foo bar\nContent-Type: application/pdf; name=a.pdf\n\npdf\n--foo bar--\n"
    )
    mail = parse_message(raw)
    assert mail.text == "hello" and [a.filename for a in mail.attachments] == ["a.pdf"]


def test_a_boundary_that_is_another_plus_two_dashes() -> None:
    raw = _mail(
        'From: a@example.jp\nContent-Type: multipart/mixed; boundary="a--"\n\n--a--\n'
        'Content-Type: multipart/mixed; boundary="a----"\n\n--a----\n'
        "Content-Type: text/plain\n\nthe body\n--a------\n--a----\n"
    )
    assert parse_message(raw).text == "the body"  # the stdlib alone: ""


def test_a_header_name_with_a_space_before_the_colon() -> None:
    raw = _mail("Fro :Multi Sender <multi@example.test>\nSubject: Sprint 3\n")
    mail = parse_message(raw)
    assert mail.subject == "Sprint 3"


@pytest.mark.parametrize(
    ("header", "address", "name"),
    [
        pytest.param(
            _b("utf-8", "山田 花子 <hanako@example.jp>".encode()),
            "hanako@example.jp",
            "山田 花子",
            id="one-encoded-word-with-name-and-address",
        ),
        pytest.param(
            "=?utf-8?q?=E5=B1=B1=E7=94=B0_<hanako@example.jp>?=",
            "hanako@example.jp",
            "山田",
            id="q-encoded-word-with-address",
        ),
        pytest.param(
            "Yamada, Hanako <hanako@example.jp>",
            "hanako@example.jp",
            "Yamada, Hanako",
            id="unquoted-comma",
        ),
        pytest.param(
            '"山田 花子" <hanako@example.jp', "hanako@example.jp", "山田 花子", id="no-gt"
        ),
        pytest.param('"hanako@example.jp"', "hanako@example.jp", "", id="quoted-address"),
        pytest.param("山田 花子 hanako@example.jp", "hanako@example.jp", "山田 花子", id="bare"),
        pytest.param("山田花子", "", "山田花子", id="name-only"),
        # RFC 5322 allows a quoted local part: the parser passes it on, validators judge it.
        pytest.param('"a b"@example.jp', '"a b"@example.jp', "", id="quoted-local-part"),
    ],
)
def test_malformed_from_forms_still_yield_the_address(header: str, address: str, name: str) -> None:
    mail = parse_message(_mail(f"From: {header}\nTo: support@example.jp\nSubject: t\n"))
    assert (mail.from_address, mail.from_name) == (address, name)
