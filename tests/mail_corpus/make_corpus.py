# ruff: noqa: E501  (the corpus is data: long header values and mail lines read better unwrapped)
"""Write the Japanese e-mail corpus (``*.eml``) and ``expected.toml``.

Run ``python tests/mail_corpus/make_corpus.py`` from the repository root.  Each
message covers one trap of Japanese mail decoding and is shaped like mail
from a real mailer.  All bytes are produced here with the stdlib codecs plus
small hand-written encoders (ISO-2022-JP escapes, CP51932/eucJP-ms EUC,
RFC 2047/2231), never with ``helpdesk.mail.decode``; the expectations are the
source texts, not what the decoder returns.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import quopri
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
CRLF = b"\r\n"
DEFAULT_EXCLUDES = ["\ufffd", "=?", "\x1b"]


# ---------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------


def sjis_to_jis(s1: int, s2: int) -> tuple[int, int]:
    """Shift_JIS bytes to a JIS X 0208 code (rows 1-94)."""
    row = (s1 - 0x81 if s1 <= 0x9F else s1 - 0xC1) * 2
    if s2 >= 0x9F:
        row += 1
        col = s2 - 0x9F
    else:
        col = s2 - 0x40 - (1 if s2 >= 0x80 else 0)
    return row + 0x21, col + 0x21


def _ibm_codes() -> dict[str, bytes]:
    """Characters CP932 has in the IBM extension block (0xFA40-0xFC4B), to their bytes."""
    codes: dict[str, bytes] = {}
    for s1 in (0xFA, 0xFB, 0xFC):
        for s2 in [*range(0x40, 0x7F), *range(0x80, 0xFD)]:
            try:
                char = bytes((s1, s2)).decode("cp932")
            except UnicodeDecodeError:
                continue
            codes.setdefault(char, bytes((s1, s2)))
    return codes


IBM = _ibm_codes()


def windows_cp932(text: str) -> bytes:
    """CP932 the way Windows writes it: IBM extension kanji at 0xFA-0xFC (Python picks 0xED/0xEE)."""
    out = bytearray()
    for char in text:
        data = char.encode("cp932")
        if data[:1] in (b"\xed", b"\xee") and char in IBM:
            data = IBM[char]
        out += data
    return bytes(out)


def iso2022jp(text: str, *, kana: bool = False) -> bytes:
    """ISO-2022-JP as CP50221 writes it (NEC row 13 and NEC-selected IBM rows in ESC $ B).

    JIS X 0212 characters (not in CP932) go out as ISO-2022-JP-1 ``ESC $ ( D``.
    With ``kana``, half-width katakana use ``ESC ( I``.  Every line returns to ASCII.
    """
    out = bytearray()
    for number, line in enumerate(text.split("\n")):
        if number:
            out += CRLF
        mode = "ascii"
        for char in line:
            if ord(char) < 0x80:
                want, data = "ascii", char.encode("ascii")
            else:
                try:
                    sjis = char.encode("cp932")
                except UnicodeEncodeError:
                    euc = char.encode("euc_jp")
                    assert len(euc) == 3 and euc[0] == 0x8F, char
                    want, data = "x0212", bytes((euc[1] & 0x7F, euc[2] & 0x7F))
                else:
                    if len(sjis) == 1:
                        assert kana, char
                        want, data = "kana", bytes((sjis[0] - 0x80,))
                    else:
                        want, data = "x0208", bytes(sjis_to_jis(sjis[0], sjis[1]))
            if want != mode:
                out += {
                    "ascii": b"\x1b(B",
                    "x0208": b"\x1b$B",
                    "x0212": b"\x1b$(D",
                    "kana": b"\x1b(I",
                }[want]
                mode = want
            out += data
        if mode != "ascii":
            out += b"\x1b(B"
    return bytes(out)


# eucJP-ms puts the IBM extensions neither JIS X 0208 nor JIS X 0212 has from 0x8FF3F3,
# small roman numerals first (as in the WHATWG/eucJP-ms tables).
EUCJP_MS_EXTRA = {"ⅰ": b"\x8f\xf3\xf3", "ⅱ": b"\x8f\xf3\xf4", "ⅲ": b"\x8f\xf3\xf5"}


def eucjp(text: str) -> bytes:
    """EUC-JP as CP51932/eucJP-ms write it: NEC row 13 in G1 row 13, 0212 with 0x8F."""
    out = bytearray()
    for char in text:
        if char == "\n":
            out += b"\n"
            continue
        if char in EUCJP_MS_EXTRA:
            out += EUCJP_MS_EXTRA[char]
            continue
        try:
            out += char.encode("euc_jp")
        except UnicodeEncodeError:
            sjis = char.encode("cp932")
            j1, j2 = sjis_to_jis(sjis[0], sjis[1])
            out += bytes((j1 | 0x80, j2 | 0x80))
    return bytes(out)


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def b_word(charset: str, data: bytes) -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode('ascii')}?="


def q_word(charset: str, data: bytes) -> str:
    encoded = "".join(
        chr(b) if chr(b).isascii() and chr(b).isalnum() else ("_" if b == 0x20 else f"={b:02X}")
        for b in data
    )
    return f"=?{charset}?Q?{encoded}?="


def encode_words(text: str, charset: str, *, chunk: int = 10) -> str:
    """Well-formed encoded words, each holding whole characters, folded."""
    words = []
    for start in range(0, len(text), chunk):
        piece = text[start : start + chunk]
        if charset.upper() == "ISO-2022-JP":
            data = iso2022jp(piece)
        elif charset.upper() in ("SHIFT_JIS", "WINDOWS-31J"):
            data = windows_cp932(piece)
        elif charset.upper() == "EUC-JP":
            data = eucjp(piece)
        else:
            data = piece.encode(charset)
        words.append(b_word(charset, data))
    return "\r\n ".join(words)


def split_words(data: bytes, charset: str, cuts: Iterable[int]) -> str:
    """Encoded words cut at the given byte offsets, wherever they fall."""
    points = [0, *cuts, len(data)]
    return "\r\n ".join(b_word(charset, data[a:b]) for a, b in itertools.pairwise(points))


def rfc2231(value: bytes, charset: str, *, name: str, pieces: int = 1) -> str:
    quoted = urllib.parse.quote_from_bytes(value, safe="")
    if pieces == 1:
        return f"{name}*={charset}''{quoted}"
    size = -(-len(quoted) // pieces)
    parts = []
    position = 0
    for index in range(pieces):
        piece = quoted[position : position + size]
        # Never split a %XX escape.
        while piece.endswith("%") or piece[-2:-1] == "%":
            piece = piece[:-1]
        position += len(piece)
        if index == pieces - 1:
            piece += quoted[position:]
        prefix = f"{charset}''" if index == 0 else ""
        parts.append(f"{name}*{index}*={prefix}{piece}")
    return ";\r\n ".join(parts)


def b64_body(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


def qp_body(data: bytes) -> bytes:
    return quopri.encodestring(data.replace(CRLF, b"\n")).replace(b"\n", CRLF)


def jpeg(seed: int) -> bytes:
    """A small real JPEG: a mug with a crack, as a customer's phone would send."""
    image = Image.new("RGB", (64, 48), (238, 232, 220))
    draw = ImageDraw.Draw(image)
    draw.ellipse((14, 8, 46, 42), fill=(250, 250, 250), outline=(90, 90, 90))
    draw.arc((40, 18, 56, 32), 270, 90, fill=(90, 90, 90), width=3)
    draw.line((24 + seed, 12, 30, 26, 26 + seed, 38), fill=(60, 40, 30), width=2)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75, optimize=False, progressive=False)
    return buffer.getvalue()


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


# ---------------------------------------------------------------------------
# Message assembly
# ---------------------------------------------------------------------------

Header = tuple[str, str]


def received(by: str, source: str, when: str) -> Header:
    return (
        "Received",
        f"from {source}\r\n\tby {by} (Postfix) with ESMTPS id 4V{hashlib.md5(when.encode()).hexdigest()[:8].upper()}\r\n"
        f"\tfor <support@shop.example.jp>; {when}",
    )


def message(headers: list[Header], body: bytes) -> bytes:
    lines = [f"{name}: {value}".encode("utf-8", "surrogateescape") for name, value in headers]
    return CRLF.join(lines) + CRLF + CRLF + body


def part(headers: list[Header], body: bytes) -> bytes:
    return message(headers, body)


def multipart(boundary: str, parts: list[bytes], preamble: bytes = b"") -> bytes:
    out = bytearray(preamble)
    for item in parts:
        out += b"--" + boundary.encode() + CRLF + item + CRLF
    out += b"--" + boundary.encode() + b"--" + CRLF
    return bytes(out)


@dataclass
class Case:
    name: str
    trap: str
    raw: bytes
    subject: str
    from_address: str
    from_name: str
    text_contains: list[str]
    text_excludes: list[str] = field(default_factory=list)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


CASES: list[Case] = []


def add(case: Case) -> None:
    CASES.append(case)


# ---------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------

SHOP = "support@shop.example.jp"
SIGN_SHOP = "はなまる雑貨店 サポート窓口"


def build() -> None:
    # 01 -----------------------------------------------------------------
    subject = "ご注文 #1234 の返品について"
    body = (
        "はなまる雑貨店 ご担当者様\n\n"
        "いつもお世話になっております。佐藤と申します。\n"
        "先日注文した商品（注文番号 #1234）について、返品をお願いしたく\n"
        "ご連絡いたしました。\n\n"
        "届いた北欧風マグカップの色が、サイトの写真と大きく異なっていました。\n"
        "未使用ですので、返品・返金の手続きを教えていただけますでしょうか。\n\n"
        "よろしくお願いいたします。\n\n"
        "--\n佐藤 花子\nsato.hanako@example.ne.jp\n"
    )
    add(
        Case(
            "01-iso2022jp-plain.eml",
            "plain ISO-2022-JP 7bit (Becky!): subject and body in ESC $ B",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "becky.example.ne.jp",
                        "Mon, 1 Apr 2024 09:12:03 +0900 (JST)",
                    ),
                    ("Date", "Mon, 01 Apr 2024 09:12:01 +0900"),
                    (
                        "From",
                        f"{encode_words('佐藤 花子', 'ISO-2022-JP')} <Sato.Hanako@example.ne.jp>",
                    ),
                    ("To", SHOP),
                    ("Subject", encode_words(subject, "ISO-2022-JP")),
                    ("Message-Id", "<20240401091201.5E1A.4F2B8C3D@example.ne.jp>"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/plain; charset=ISO-2022-JP"),
                    ("Content-Transfer-Encoding", "7bit"),
                    ("X-Mailer", "Becky! ver. 2.81.05 [ja]"),
                ],
                iso2022jp(body),
            ),
            subject,
            "sato.hanako@example.ne.jp",
            "佐藤 花子",
            ["注文番号 #1234", "返品・返金の手続き", "北欧風マグカップ"],
            extra={
                "message_id": "20240401091201.5E1A.4F2B8C3D@example.ne.jp",
                "date": "2024-04-01T00:12:01+00:00",
                "to": [SHOP],
            },
        )
    )

    # 02 -----------------------------------------------------------------
    subject = "【至急】㈱髙橋商事 ご注文№1234 の件①"
    body = (
        "はなまる雑貨店 御中\n\n"
        "㈱髙橋商事 総務部の山﨑です。\n"
        "ご注文№1234 について、以下の点をご確認ください。\n\n"
        "① 納品書の宛名は「㈱髙橋商事」でお願いします（「高橋」ではありません）。\n"
        "② 数量は約 10 個 ≒ 1 ケースです。\n"
        "③ ∵ 年度末のため、3月末までの納品を希望します。\n"
        "ⅰ）請求書は別送でお願いします。\n"
        "ⅱ）担当：山﨑 № 03-1234-5678\n\n"
        "山﨑 拓郎\n"
    )
    add(
        Case(
            "02-iso2022jp-nec-chars.eml",
            "ISO-2022-JP from Outlook (CP50221) with NEC row 13 and IBM extensions in ESC $ B",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "mail.takahashi.example.co.jp",
                        "Tue, 2 Apr 2024 11:00:05 +0900",
                    ),
                    (
                        "From",
                        f'"{encode_words("山﨑 拓郎", "ISO-2022-JP")}" <t-yamasaki@takahashi.example.co.jp>',
                    ),
                    ("To", f"{encode_words('はなまる雑貨店', 'ISO-2022-JP')} <{SHOP}>"),
                    ("Cc", "somu@takahashi.example.co.jp"),
                    ("Subject", encode_words(subject, "ISO-2022-JP", chunk=8)),
                    ("Date", "Tue, 2 Apr 2024 11:00:01 +0900"),
                    ("Message-ID", "<000001da84a1$1c2b3d40$54579bc0$@takahashi.example.co.jp>"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", 'text/plain;\r\n\tcharset="iso-2022-jp"'),
                    ("Content-Transfer-Encoding", "7bit"),
                    ("X-Mailer", "Microsoft Outlook 16.0"),
                    ("Thread-Index", "AdqEoRpk2y5yGm1RRnG3Yd0i3bXkOw=="),
                    ("Content-Language", "ja"),
                ],
                iso2022jp(body),
            ),
            subject,
            "t-yamasaki@takahashi.example.co.jp",
            "山﨑 拓郎",
            [
                "㈱髙橋商事",
                "山﨑",
                "ご注文№1234",
                "① 納品書",
                "② 数量",
                "③ ∵",
                "≒ 1 ケース",
                "ⅰ）",
                "ⅱ）",
            ],
            extra={"cc": ["somu@takahashi.example.co.jp"]},
        )
    )

    # 03 -----------------------------------------------------------------
    subject = "①返品のお願い（注文#1234）"
    body = (
        "ご担当者様\n\n"
        "注文#1234 の髙田です。\n"
        "届いた商品に不具合がありましたので、返品をお願いします。\n\n"
        "①電源が入らない\n"
        "②付属のケーブルが入っていない\n\n"
        "受付時間は 9:00～18:00 と伺いましたので、その時間にお電話もします。\n"
        "㈱髙田工務店 髙田 一郎\n"
    )
    add(
        Case(
            "03-sjis-labelled-cp932.eml",
            "charset=Shift_JIS whose bytes are CP932 (① ～ ㈱ and 髙 at 0xFBFC); stdlib shift_jis fails",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "smtp.example.ne.jp",
                        "Wed, 3 Apr 2024 20:31:44 +0900",
                    ),
                    ("Message-ID", "<5F3A2B1C.7020409@example.ne.jp>"),
                    ("Date", "Wed, 03 Apr 2024 20:31:40 +0900"),
                    (
                        "From",
                        f"{b_word('Shift_JIS', windows_cp932('髙田 一郎'))} <takada@example.ne.jp>",
                    ),
                    ("MIME-Version", "1.0"),
                    ("To", SHOP),
                    ("Subject", b_word("Shift_JIS", windows_cp932(subject))),
                    ("Content-Type", "text/plain; charset=Shift_JIS"),
                    ("Content-Transfer-Encoding", "8bit"),
                    ("X-Mailer", "Microsoft Outlook Express 6.00.2900.5931"),
                ],
                windows_cp932(crlf(body)),
            ),
            subject,
            "takada@example.ne.jp",
            "髙田 一郎",
            ["髙田です", "①電源", "②付属", "9:00～18:00", "㈱髙田工務店"],
        )
    )

    # 04 -----------------------------------------------------------------
    subject = "【はなまる雑貨店】お問い合わせを受け付けました ～返品受付～"
    body = (
        "以下の内容でお問い合わせを受け付けました。\n\n"
        "お名前：鈴木 一郎 様\n"
        "注文番号：#1234\n"
        "お問い合わせ種別：返品・交換\n"
        "内容：サイズ違い（Ｍ→Ｌ）の交換を希望します。\n"
        "会社名：㈱スズキ\n"
        "受付日時：2024年4月4日 10:05～\n"
    )
    add(
        Case(
            "04-windows-31j-label.eml",
            "JavaMail label Windows-31J (no Python codec of that name; it is CP932), base64 body",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "app01.shop.example.jp",
                        "Thu, 4 Apr 2024 10:05:12 +0900",
                    ),
                    ("Date", "Thu, 4 Apr 2024 10:05:11 +0900 (JST)"),
                    (
                        "From",
                        f"{b_word('Windows-31J', windows_cp932('はなまる雑貨店 問い合わせフォーム'))} <form@shop.example.jp>",
                    ),
                    ("Reply-To", "Ichiro.Suzuki@example.com"),
                    ("To", SHOP),
                    ("Message-ID", "<1227412305.15.1712192711046@app01.shop.example.jp>"),
                    ("Subject", b_word("Windows-31J", windows_cp932(subject))),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/plain; charset=Windows-31J"),
                    ("Content-Transfer-Encoding", "base64"),
                    ("X-Mailer", "JavaMail 1.6.2"),
                ],
                b64_body(windows_cp932(crlf(body))),
            ),
            subject,
            "form@shop.example.jp",
            "はなまる雑貨店 問い合わせフォーム",
            ["注文番号：#1234", "（Ｍ→Ｌ）", "㈱スズキ", "10:05～"],
            extra={"reply_to": ["ichiro.suzuki@example.com"]},
        )
    )

    # 05 / 06: the same text through the JIS and the Microsoft mapping -------
    wave_body = (
        "お世話になっております。\n"
        "営業時間は平日 10:00〜18:00 とのことですが、土日の対応は可能でしょうか。\n"
        "返金額は 3,980円 − 送料 500円 ＝ 3,480円 で合っていますか。\n"
        "型番：AB‖CD／価格表示：¢ £ ¬ の記号が文字化けしていました。\n"
        "―― 以上、よろしくお願いします。\n"
    )
    canonical = [
        "10:00～18:00",
        "3,980円 － 送料",
        "AB∥CD",
        "￠ ￡ ￢",
        "―― 以上",
    ]
    jis_forms = ["〜", "−", "‖", "¢", "£", "¬"]
    add(
        Case(
            "05-wave-dash-iso2022.eml",
            "iPhone Mail ISO-2022-JP: 〜 − ‖ ¢ £ ¬ (JIS mapping) normalize to the Microsoft forms",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "iphone.example.ne.jp",
                        "Fri, 5 Apr 2024 08:01:00 +0900",
                    ),
                    ("Content-Type", "text/plain;\r\n\tcharset=iso-2022-jp"),
                    ("Content-Transfer-Encoding", "7bit"),
                    (
                        "From",
                        f"{encode_words('伊藤 美咲', 'ISO-2022-JP')} <misaki.ito@example.ne.jp>",
                    ),
                    ("Mime-Version", "1.0 (1.0)"),
                    ("Date", "Fri, 5 Apr 2024 08:00:58 +0900"),
                    ("Subject", encode_words("営業時間と返金額について", "ISO-2022-JP")),
                    ("Message-Id", "<3A9F1C2E-7B44-4E0A-9D51-0C6E2F1A8B77@example.ne.jp>"),
                    ("To", SHOP),
                    ("X-Mailer", "iPhone Mail (21E236)"),
                ],
                iso2022jp(wave_body),
            ),
            "営業時間と返金額について",
            "misaki.ito@example.ne.jp",
            "伊藤 美咲",
            canonical,
            jis_forms,
            extra={"same_text_as": "06-wave-dash-cp932.eml"},
        )
    )
    add(
        Case(
            "06-wave-dash-cp932.eml",
            "Windows Shift_JIS (CP932 bytes) with ～ － ∥ ￠ ￡ ￢: same text as 05 after decoding",
            message(
                [
                    received(
                        "mx1.shop.example.jp", "pc.example.ne.jp", "Fri, 5 Apr 2024 08:10:00 +0900"
                    ),
                    (
                        "From",
                        f"{b_word('shift_jis', windows_cp932('伊藤 美咲'))} <misaki.ito@example.ne.jp>",
                    ),
                    ("To", SHOP),
                    ("Subject", b_word("shift_jis", windows_cp932("営業時間と返金額について"))),
                    ("Date", "Fri, 5 Apr 2024 08:09:55 +0900"),
                    ("Message-ID", "<001201da86f0$aa11bb20$fe333160$@example.ne.jp>"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", 'text/plain; charset="shift_jis"'),
                    ("Content-Transfer-Encoding", "8bit"),
                    ("X-Mailer", "Microsoft Office Outlook 12.0"),
                ],
                # The CP932 encoder maps 〜 − ‖ ¢ £ ¬ to the bytes Windows writes for ～ － ∥ ￠ ￡ ￢.
                windows_cp932(crlf(wave_body)),
            ),
            "営業時間と返金額について",
            "misaki.ito@example.ne.jp",
            "伊藤 美咲",
            canonical,
            jis_forms,
        )
    )

    # 07 -----------------------------------------------------------------
    subject = "【返品希望】注文番号#1234 マグカップが割れていました"
    data = subject.encode("utf-8")
    add(
        Case(
            "07-subject-split-utf8.eml",
            "UTF-8 subject cut into encoded words in the middle of characters (PHP mb_send_mail style)",
            message(
                [
                    received(
                        "mx1.shop.example.jp", "www.example.com", "Sat, 6 Apr 2024 13:13:13 +0900"
                    ),
                    ("To", SHOP),
                    ("Subject", split_words(data, "UTF-8", [7, 23, 40, 61])),
                    (
                        "From",
                        f"{split_words('渡辺 健太'.encode(), 'UTF-8', [4])} <kenta.watanabe@example.com>",
                    ),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/plain; charset=UTF-8"),
                    ("Content-Transfer-Encoding", "8bit"),
                    ("Message-ID", "<a1b2c3d4e5f6@www.example.com>"),
                    ("Date", "Sat, 06 Apr 2024 13:13:10 +0900"),
                    ("X-Mailer", "PHP/7.4.33"),
                ],
                crlf(
                    "本日届いたマグカップが割れていました。写真が必要でしたらお送りします。\n"
                ).encode(),
            ),
            subject,
            "kenta.watanabe@example.com",
            "渡辺 健太",
            ["マグカップが割れていました"],
        )
    )

    # 08 -----------------------------------------------------------------
    subject = "注文#1234 配送先住所の変更のお願い"
    data = iso2022jp(subject)
    # Cut between the two bytes of a kanji and inside an escape-free run.
    add(
        Case(
            "08-subject-split-iso2022jp.eml",
            "ISO-2022-JP subject split into encoded words between the two bytes of a JIS character",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "mail.example.ne.jp",
                        "Sun, 7 Apr 2024 18:00:00 +0900",
                    ),
                    ("Date", "Sun, 7 Apr 2024 18:00:00 +0900"),
                    (
                        "From",
                        f"{split_words(iso2022jp('中村 さくら'), 'ISO-2022-JP', [6])} <sakura@example.ne.jp>",
                    ),
                    ("To", SHOP),
                    ("Subject", split_words(data, "ISO-2022-JP", [4, 14, 21])),
                    ("Message-ID", "<20240407180000.sakura@example.ne.jp>"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/plain; charset=ISO-2022-JP"),
                    ("Content-Transfer-Encoding", "7bit"),
                    ("X-Mailer", "Sylpheed 3.7.0 (GTK+ 2.24.32; x86_64-pc-linux-gnu)"),
                ],
                iso2022jp(
                    "配送先を以下の住所に変更してください。\n〒150-0001 東京都渋谷区神宮前1-2-3\n"
                ),
            ),
            subject,
            "sakura@example.ne.jp",
            "中村 さくら",
            ["〒150-0001 東京都渋谷区神宮前1-2-3"],
        )
    )

    # 09 -----------------------------------------------------------------
    good = "返品の件"
    unpadded = base64.b64encode(good.encode()).decode().rstrip("=")
    add(
        Case(
            "09-broken-encoded-word.eml",
            "bad base64 padding, unknown charset label, raw 8-bit CP932 and UTF-8 header bytes",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "keitai.example.ne.jp",
                        "Mon, 8 Apr 2024 07:45:00 +0900",
                    ),
                    ("Date", "Mon, 8 Apr 2024 07:44:58 +0900"),
                    # Raw CP932 display name, no encoded word (old keitai gateway).
                    (
                        "From",
                        windows_cp932("小林 ゆうこ").decode("ascii", "surrogateescape")
                        + " <yuko.k@keitai.example.ne.jp>",
                    ),
                    ("To", SHOP),
                    (
                        "Subject",
                        f"=?UTF-8?B?{unpadded}?= "
                        + q_word("x-unknown", "（注文 #1234）".encode())
                        + " "
                        + b_word("x-user-defined", "至急".encode("cp932")),
                    ),
                    (
                        "X-Order-Note",
                        "配達は午前中希望".encode().decode("ascii", "surrogateescape"),
                    ),
                    ("Message-ID", "<k0bayashi.20240408074458@keitai.example.ne.jp>"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/plain; charset=Shift_JIS"),
                    ("Content-Transfer-Encoding", "8bit"),
                ],
                windows_cp932(crlf("返品したいです。どうすればいいですか？\n")),
            ),
            "返品の件（注文 #1234）至急",
            "yuko.k@keitai.example.ne.jp",
            "小林 ゆうこ",
            ["返品したいです。どうすればいいですか？"],
            extra={"headers": {"x-order-note": "配達は午前中希望"}},
        )
    )

    # 10 -----------------------------------------------------------------
    photo = jpeg(0)
    pdf_name = "返品申請書_注文1234_佐々木.pdf"
    photo_name = "破損写真①.jpg"
    body = (
        "はなまる雑貨店 サポート窓口 御中\n\n"
        "返品申請書と破損した商品の写真を添付します。ご確認ください。詳しい状況は次のとおりです。箱を開けた時点で取っ手の部分にひびが入っていました。\n\n"
        "佐々木\n"
    )
    # format=flowed: the long line is soft-wrapped after a space.
    flowed = body.replace("ご確認ください。", "ご確認ください。 \n")
    add(
        Case(
            "10-rfc2231-filename.eml",
            "Thunderbird: RFC 2231 filename*0*= continuations (UTF-8) and filename*=ISO-2022-JP'', format=flowed",
            message(
                [
                    received(
                        "mx1.shop.example.jp", "tb.example.com", "Tue, 9 Apr 2024 21:02:00 +0900"
                    ),
                    (
                        "Content-Type",
                        'multipart/mixed; boundary="------------aB3dE5fG7hI9jK1lM3nO5pQ7"',
                    ),
                    ("Message-ID", "<5c1e9f7a-3b2d-4c8e-9f01-2a3b4c5d6e7f@example.com>"),
                    ("Date", "Tue, 9 Apr 2024 21:01:58 +0900"),
                    ("MIME-Version", "1.0"),
                    ("User-Agent", "Mozilla Thunderbird"),
                    ("Content-Language", "ja"),
                    ("To", SHOP),
                    ("From", f"{encode_words('佐々木 翔', 'UTF-8')} <sho.sasaki@example.com>"),
                    ("Subject", encode_words("Re: 返品申請書の送付", "UTF-8")),
                    ("In-Reply-To", "<ticket-1234.1@shop.example.jp>"),
                    (
                        "References",
                        "<ticket-1234.0@shop.example.jp>\r\n <ticket-1234.1@shop.example.jp>",
                    ),
                ],
                multipart(
                    "------------aB3dE5fG7hI9jK1lM3nO5pQ7",
                    [
                        part(
                            [
                                ("Content-Type", "text/plain; charset=UTF-8; format=flowed"),
                                ("Content-Transfer-Encoding", "8bit"),
                            ],
                            crlf(flowed).encode(),
                        ),
                        part(
                            [
                                (
                                    "Content-Type",
                                    "application/pdf;\r\n "
                                    + rfc2231(pdf_name.encode(), "UTF-8", name="name", pieces=3),
                                ),
                                (
                                    "Content-Disposition",
                                    "attachment;\r\n "
                                    + rfc2231(
                                        pdf_name.encode(), "UTF-8", name="filename", pieces=3
                                    ),
                                ),
                                ("Content-Transfer-Encoding", "base64"),
                            ],
                            b64_body(PDF),
                        ),
                        part(
                            [
                                ("Content-Type", "image/jpeg"),
                                (
                                    "Content-Disposition",
                                    "attachment; "
                                    + rfc2231(
                                        iso2022jp(photo_name), "ISO-2022-JP", name="filename"
                                    ),
                                ),
                                ("Content-Transfer-Encoding", "base64"),
                            ],
                            b64_body(photo),
                        ),
                    ],
                    b"This is a multi-part message in MIME format.\r\n",
                ),
            ),
            "Re: 返品申請書の送付",
            "sho.sasaki@example.com",
            "佐々木 翔",
            ["ご確認ください。 詳しい状況は次のとおりです。", "ひびが入っていました。"],
            attachments=[(pdf_name, "application/pdf", PDF), (photo_name, "image/jpeg", photo)],
            extra={
                "in_reply_to": "ticket-1234.1@shop.example.jp",
                "references": ["ticket-1234.0@shop.example.jp", "ticket-1234.1@shop.example.jp"],
            },
        )
    )

    # 11 -----------------------------------------------------------------
    photo = jpeg(3)
    photo_name = "不良箇所の写真①_注文1234.jpg"
    encoded = iso2022jp(photo_name)
    add(
        Case(
            "11-encoded-word-filename.eml",
            "RFC 2047 encoded words inside quoted name=/filename= (Outlook Express/Becky!), folded in the quotes",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "becky.example.ne.jp",
                        "Wed, 10 Apr 2024 12:00:00 +0900",
                    ),
                    ("Date", "Wed, 10 Apr 2024 11:59:57 +0900"),
                    (
                        "From",
                        f"{encode_words('加藤 真由美', 'ISO-2022-JP')} <mayumi@example.ne.jp>",
                    ),
                    ("To", SHOP),
                    ("Subject", encode_words("不良品の写真を送ります（#1234）", "ISO-2022-JP")),
                    ("Message-Id", "<20240410115957.8C3E.2A1B3C4D@example.ne.jp>"),
                    ("MIME-Version", "1.0"),
                    (
                        "Content-Type",
                        'multipart/mixed;\r\n boundary="----_=_NextPart_000_0005_01DA8B12.34567890"',
                    ),
                    ("X-Mailer", "Becky! ver. 2.75.02 [ja]"),
                ],
                multipart(
                    "----_=_NextPart_000_0005_01DA8B12.34567890",
                    [
                        part(
                            [
                                ("Content-Type", "text/plain; charset=ISO-2022-JP"),
                                ("Content-Transfer-Encoding", "7bit"),
                            ],
                            iso2022jp("不良箇所の写真を添付します。\n底の部分に傷がありました。\n"),
                        ),
                        part(
                            [
                                (
                                    "Content-Type",
                                    f'image/jpeg;\r\n name="{split_words(encoded, "ISO-2022-JP", [len(encoded) // 2 + 1])}"',
                                ),
                                ("Content-Transfer-Encoding", "base64"),
                                (
                                    "Content-Disposition",
                                    f'attachment;\r\n filename="{split_words(encoded, "ISO-2022-JP", [len(encoded) // 2 + 1])}"',
                                ),
                            ],
                            b64_body(photo),
                        ),
                    ],
                ),
            ),
            "不良品の写真を送ります（#1234）",
            "mayumi@example.ne.jp",
            "加藤 真由美",
            ["底の部分に傷がありました。"],
            attachments=[(photo_name, "image/jpeg", photo)],
        )
    )

    # 12 -----------------------------------------------------------------
    body = (
        "お世話になっております。\n"
        "注文番号 #1234 の商品ですが、髙島屋の紙袋に入れて返送しました。\n"
        "伝票番号は ① 1234-5678-9012 です。\n"
        "到着まで 2～3 日かかると思います。\n\n"
        "髙島 聡子\n"
    )
    add(
        Case(
            "12-outlook-no-charset.eml",
            "Outlook body in CP932 with Content-Type: text/plain and no charset at all (detection)",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "outlook.example.co.jp",
                        "Thu, 11 Apr 2024 16:20:00 +0900",
                    ),
                    (
                        "From",
                        f"{encode_words('髙島 聡子', 'ISO-2022-JP')} <s.takashima@example.co.jp>",
                    ),
                    ("To", f'"{SHOP}" <{SHOP}>'),
                    ("Subject", encode_words("返送のご連絡（注文 #1234）", "ISO-2022-JP")),
                    ("Date", "Thu, 11 Apr 2024 16:19:48 +0900"),
                    (
                        "Message-ID",
                        "<TYCP286MB1234ABCD5678EF90@TYCP286MB1234.JPNP286.PROD.OUTLOOK.COM>",
                    ),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/plain"),
                    ("Content-Transfer-Encoding", "8bit"),
                    ("X-Mailer", "Microsoft Outlook 16.0"),
                ],
                windows_cp932(crlf(body)),
            ),
            "返送のご連絡（注文 #1234）",
            "s.takashima@example.co.jp",
            "髙島 聡子",
            ["髙島屋の紙袋", "① 1234-5678-9012", "2～3 日"],
        )
    )

    # 13 -----------------------------------------------------------------
    body = (
        "お問い合わせフォームより\n\n"
        "お名前: 木村 大輔\n"
        "ご注文番号: #1234\n"
        "内容: 受け取り日時を 4/13 14時〜16時 に変更できますか？ — 不在が多いためです。\n"
    )
    add(
        Case(
            "13-utf8-8bit-no-charset.eml",
            "raw 8-bit UTF-8 body and subject with no MIME headers at all (contact-form script)",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "web01.shop.example.jp",
                        "Fri, 12 Apr 2024 09:00:00 +0900",
                    ),
                    ("To", SHOP),
                    (
                        "Subject",
                        "【お問い合わせ】受け取り日時の変更".encode().decode(
                            "ascii", "surrogateescape"
                        ),
                    ),
                    ("From", "daisuke.kimura@example.com"),
                    ("Date", "Fri, 12 Apr 2024 09:00:00 +0900"),
                    ("Message-ID", "<20240412000000.ABCDEF@web01.shop.example.jp>"),
                ],
                crlf(body).encode(),
            ),
            "【お問い合わせ】受け取り日時の変更",
            "daisuke.kimura@example.com",
            "",
            ["14時～16時", "？ ― 不在"],
            ["〜", "—"],
        )
    )

    # 14 -----------------------------------------------------------------
    body = (
        "はなまる雑貨店 様\n\n"
        "先日の注文 #1234 の件で連絡します。\n"
        "① 箱がつぶれていました\n"
        "② 中身は無事でした\n"
        "念のため、交換は不要です。配送業者〜貴店間でご確認ください。\n"
        "連絡先：㈱森田 森田 拓也\n"
    )
    add(
        Case(
            "14-euc-jp.eml",
            "EUC-JP (Mew) with NEC row 13 (① ㈱ at 0xADxx, CP51932/eucJP-ms) where euc_jp fails; 〜",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "unix.example.ac.jp",
                        "Sat, 13 Apr 2024 23:59:00 +0900",
                    ),
                    ("Date", "Sat, 13 Apr 2024 23:58:30 +0900 (JST)"),
                    ("Message-Id", "<20240413.235830.123456789.morita@example.ac.jp>"),
                    ("To", SHOP),
                    ("Subject", b_word("EUC-JP", eucjp("①箱つぶれの件（注文 #1234）"))),
                    ("From", f"{b_word('EUC-JP', eucjp('森田 拓也'))} <morita@example.ac.jp>"),
                    ("Mime-Version", "1.0"),
                    ("Content-Type", "Text/Plain; charset=EUC-JP"),
                    ("Content-Transfer-Encoding", "8bit"),
                    ("X-Mailer", "Mew version 6.8 on Emacs 27.1"),
                ],
                eucjp(body).replace(b"\n", CRLF),
            ),
            "①箱つぶれの件（注文 #1234）",
            "morita@example.ac.jp",
            "森田 拓也",
            ["① 箱がつぶれていました", "② 中身は無事", "配送業者～貴店間", "㈱森田"],
        )
    )

    # 15 -----------------------------------------------------------------
    body = "森鷗外の全集（注文 #1234）について、丂の字が欠けていました。\n交換をお願いします。\n"
    add(
        Case(
            "15-jisx0212-iso2022jp1.eml",
            "ISO-2022-JP-1: JIS X 0212 characters (鷗 丂) in ESC $ ( D, subject and body",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "emacs.example.ac.jp",
                        "Sun, 14 Apr 2024 10:00:00 +0900",
                    ),
                    ("Date", "Sun, 14 Apr 2024 09:59:59 +0900"),
                    ("From", f"{encode_words('小池 鷗', 'ISO-2022-JP')} <koike@example.ac.jp>"),
                    ("To", SHOP),
                    ("Subject", b_word("ISO-2022-JP-1", iso2022jp("森鷗外全集の落丁"))),
                    ("Message-Id", "<87o7a0xyz1.fsf@example.ac.jp>"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/plain; charset=ISO-2022-JP-1"),
                    ("Content-Transfer-Encoding", "7bit"),
                    ("User-Agent", "Wanderlust/2.15.9 (Almost Unreal) Emacs/28.2 Mule/6.0"),
                ],
                iso2022jp(body),
            ),
            "森鷗外全集の落丁",
            "koike@example.ac.jp",
            "小池 鷗",
            ["森鷗外の全集", "丂の字"],
        )
    )

    # 16 -----------------------------------------------------------------
    body = "鷗のマグカップ（ⅰ）とⅱ、ⅲ の3点を注文しましたが、丂柄が届きました。\n"
    add(
        Case(
            "16-jisx0212-eucjp.eml",
            "EUC-JP with JIS X 0212 (0x8F: 鷗 丂) and eucJP-ms IBM extensions ⅰⅱⅲ at 0x8FF3F3",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "linux.example.ne.jp",
                        "Mon, 15 Apr 2024 12:00:00 +0900",
                    ),
                    ("Date", "Mon, 15 Apr 2024 12:00:00 +0900"),
                    ("From", "Ryo Ogawa <ogawa@example.ne.jp>"),
                    ("To", SHOP),
                    ("Subject", b_word("EUC-JP", eucjp("注文内容の相違（ⅰ）"))),
                    ("Message-ID", "<20240415120000.GA1234@linux.example.ne.jp>"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/plain; charset=euc-jp"),
                    ("Content-Transfer-Encoding", "8bit"),
                    ("User-Agent", "Mutt/1.5.21 (2010-09-15)"),
                ],
                eucjp(body).replace(b"\n", CRLF),
            ),
            "注文内容の相違（ⅰ）",
            "ogawa@example.ne.jp",
            "Ryo Ogawa",
            ["鷗のマグカップ（ⅰ）とⅱ、ⅲ", "丂柄"],
        )
    )

    # 17 -----------------------------------------------------------------
    body = (
        "こんにちは。注文番号 #1234 の件です。返品の送料はどちらの負担になりますか？"
        "届いたお皿の縁が少し欠けていました〜。写真も撮ってあります。\n\n"
        "吉田\n"
    )
    qp = qp_body(crlf(body).encode())
    assert b"=\r\n" in qp  # soft line breaks that cut through UTF-8 sequences
    add(
        Case(
            "17-quoted-printable-utf8.eml",
            "Apple Mail UTF-8 quoted-printable with soft line breaks in the middle of characters",
            message(
                [
                    received(
                        "mx1.shop.example.jp", "mac.example.com", "Tue, 16 Apr 2024 19:19:19 +0900"
                    ),
                    ("From", f"{encode_words('吉田 結衣', 'UTF-8')} <yui.yoshida@example.com>"),
                    ("Content-Type", "text/plain;\r\n\tcharset=utf-8"),
                    ("Content-Transfer-Encoding", "quoted-printable"),
                    ("Mime-Version", "1.0 (Mac OS X Mail 16.0 \\(3774.500.171.1.1\\))"),
                    ("Subject", encode_words("返品送料について", "UTF-8")),
                    ("Message-Id", "<8E2C6F0A-1D3B-4A5C-9E7F-112233445566@example.com>"),
                    ("Date", "Tue, 16 Apr 2024 19:19:15 +0900"),
                    ("To", SHOP),
                    ("X-Mailer", "Apple Mail (2.3774.500.171.1.1)"),
                ],
                qp,
            ),
            "返品送料について",
            "yui.yoshida@example.com",
            "吉田 結衣",
            ["返品の送料はどちらの負担になりますか？届いたお皿の縁", "欠けていました～。"],
        )
    )

    # 18 -----------------------------------------------------------------
    body = "ｻｲｽﾞ交換希望です。\n注文#1234のＴシャツ、Ｍ→Ｌでお願いします。\n"
    add(
        Case(
            "18-base64-iso2022jp.eml",
            "keitai mail: ISO-2022-JP in base64 with half-width katakana (ESC ( I)",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "mfsmax.docomo.example.ne.jp",
                        "Wed, 17 Apr 2024 07:07:07 +0900",
                    ),
                    ("Date", "Wed, 17 Apr 2024 07:07:05 +0900"),
                    ("From", "hiro-0123@docomo.example.ne.jp"),
                    ("To", SHOP),
                    ("Subject", b_word("ISO-2022-JP", iso2022jp("ｻｲｽﾞ交換", kana=True))),
                    ("Message-ID", "<dcm.20240417070705.0123@docomo.example.ne.jp>"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", 'text/plain; charset="ISO-2022-JP"'),
                    ("Content-Transfer-Encoding", "base64"),
                    ("X-Mailer", "docomo SP mode mail"),
                ],
                b64_body(iso2022jp(body, kana=True)),
            ),
            "ｻｲｽﾞ交換",
            "hiro-0123@docomo.example.ne.jp",
            "",
            ["ｻｲｽﾞ交換希望です。", "Ｍ→Ｌ"],
        )
    )

    # 19 -----------------------------------------------------------------
    html = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>お問い合わせ</title>\n'
        "<style>p { margin: 0 } .x { color: red }</style>\n"
        "<script>window.tracking = 'do not show';</script></head>\n"
        "<body><div>はなまる雑貨店 御中</div>\n<div><br></div>\n"
        "<p>注文番号&nbsp;#1234&nbsp;の返品について、<b>至急</b>ご連絡ください。</p>\n"
        "<p>商品A &amp; 商品B の2点です。&lt;未開封&gt;です。&#9312;&#x2461;</p>\n"
        "<table><tr><td>商品名</td><td>数量</td></tr><tr><td>マグカップ</td><td>2</td></tr></table>\n"
        "<p>よろしくお願いします。<br>\n山本</p></body></html>\n"
    )
    add(
        Case(
            "19-html-only.eml",
            "HTML-only mail: script/style dropped, entities decoded, paragraphs and <br> kept",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "webmail.example.jp",
                        "Thu, 18 Apr 2024 15:00:00 +0900",
                    ),
                    ("Date", "Thu, 18 Apr 2024 15:00:00 +0900"),
                    ("From", f"{encode_words('山本 陽菜', 'UTF-8')} <hina.yamamoto@example.jp>"),
                    ("To", SHOP),
                    ("Subject", encode_words("返品について（HTMLメール）", "UTF-8")),
                    ("Message-ID", "<1713420000.123456.webmail@example.jp>"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/html; charset=UTF-8"),
                    ("Content-Transfer-Encoding", "base64"),
                    ("X-Mailer", "WebMail 3.0"),
                ],
                b64_body(crlf(html).encode()),
            ),
            "返品について（HTMLメール）",
            "hina.yamamoto@example.jp",
            "山本 陽菜",
            [
                "はなまる雑貨店 御中",
                "注文番号 #1234 の返品について、至急ご連絡ください。",
                "商品A & 商品B の2点です。<未開封>です。①②",
                "マグカップ  2",
                "よろしくお願いします。\n山本",
            ],
            ["tracking", "color: red", "<p>", "&amp;", "お問い合わせ"],
            extra={"html_contains": ["<table>"]},
        )
    )

    # 20 -----------------------------------------------------------------
    plain = (
        "ご担当者様\n\n"
        "注文 #1234 の交換品を受け取りました。ありがとうございました。\n"
        "注文詳細: https://shop.example.jp/orders/1234\n\n"
        "松本\n"
    )
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-2022-jp">'
        "<style><!-- p.MsoNormal {margin:0mm;} --></style></head>"
        '<body lang="JA"><div class="WordSection1"><p class="MsoNormal">ご担当者様</p>'
        '<p class="MsoNormal">注文 #1234 の交換品を受け取りました。ありがとうございました。</p>'
        '<p class="MsoNormal"><a href="https://shop.example.jp/orders/1234">注文詳細</a></p>'
        '<p class="MsoNormal">松本</p></div></body></html>'
    )
    add(
        Case(
            "20-multipart-alternative.eml",
            "Outlook multipart/alternative (ISO-2022-JP plain + QP HTML): text/plain is preferred",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "outlook.example.co.jp",
                        "Fri, 19 Apr 2024 10:30:00 +0900",
                    ),
                    (
                        "From",
                        f"{encode_words('松本 亮', 'ISO-2022-JP')} <r.matsumoto@example.co.jp>",
                    ),
                    ("To", SHOP),
                    ("Subject", encode_words("交換品を受け取りました", "ISO-2022-JP")),
                    ("Date", "Fri, 19 Apr 2024 10:29:59 +0900"),
                    (
                        "Message-ID",
                        "<OS3P286MB0001A1B2C3D4E5F6@OS3P286MB0001.JPNP286.PROD.OUTLOOK.COM>",
                    ),
                    ("Accept-Language", "ja-JP, en-US"),
                    ("Content-Language", "ja-JP"),
                    (
                        "Content-Type",
                        'multipart/alternative;\r\n\tboundary="_000_OS3P286MB0001A1B2_"',
                    ),
                    ("MIME-Version", "1.0"),
                ],
                multipart(
                    "_000_OS3P286MB0001A1B2_",
                    [
                        part(
                            [
                                ("Content-Type", 'text/plain; charset="iso-2022-jp"'),
                                ("Content-Transfer-Encoding", "7bit"),
                            ],
                            iso2022jp(plain),
                        ),
                        part(
                            [
                                ("Content-Type", 'text/html; charset="iso-2022-jp"'),
                                ("Content-Transfer-Encoding", "quoted-printable"),
                            ],
                            qp_body(iso2022jp(html)),
                        ),
                    ],
                ),
            ),
            "交換品を受け取りました",
            "r.matsumoto@example.co.jp",
            "松本 亮",
            ["注文詳細: https://shop.example.jp/orders/1234", "ありがとうございました。"],
            ["注文詳細 (https://", "MsoNormal"],
            extra={"html_contains": ['<a href="https://shop.example.jp/orders/1234">注文詳細</a>']},
        )
    )

    # 21 -----------------------------------------------------------------
    inner_photo = jpeg(6)
    inner = message(
        [
            ("Return-Path", "<support@shop.example.jp>"),
            ("From", f"{encode_words('はなまる雑貨店', 'ISO-2022-JP')} <{SHOP}>"),
            ("To", "aoki@example.com"),
            ("Subject", encode_words("ご注文の確認 #1234", "ISO-2022-JP")),
            ("Date", "Mon, 25 Mar 2024 12:00:00 +0900"),
            ("Message-ID", "<order-1234@shop.example.jp>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", 'multipart/mixed; boundary="inner-boundary-1234"'),
        ],
        multipart(
            "inner-boundary-1234",
            [
                part(
                    [
                        ("Content-Type", "text/plain; charset=ISO-2022-JP"),
                        ("Content-Transfer-Encoding", "7bit"),
                    ],
                    iso2022jp("ご注文ありがとうございます。\n注文番号：#1234\n"),
                ),
                part(
                    [
                        ("Content-Type", 'image/jpeg; name="item.jpg"'),
                        ("Content-Disposition", 'attachment; filename="item.jpg"'),
                        ("Content-Transfer-Encoding", "base64"),
                    ],
                    b64_body(inner_photo),
                ),
            ],
        ),
    )
    eml_name = "ご注文の確認 #1234.eml"
    add(
        Case(
            "21-forward-rfc822.eml",
            "Thunderbird forward-as-attachment: nested multipart/mixed with an attached message/rfc822",
            message(
                [
                    received(
                        "mx1.shop.example.jp", "tb.example.com", "Sat, 20 Apr 2024 08:00:00 +0900"
                    ),
                    ("Content-Type", 'multipart/mixed; boundary="------------outer0123456789"'),
                    ("Message-ID", "<f0e1d2c3-b4a5-4968-8776-655443322110@example.com>"),
                    ("Date", "Sat, 20 Apr 2024 07:59:58 +0900"),
                    ("MIME-Version", "1.0"),
                    ("User-Agent", "Mozilla Thunderbird"),
                    ("From", f"{encode_words('青木 直樹', 'UTF-8')} <aoki@example.com>"),
                    ("To", SHOP),
                    ("Subject", encode_words("Fwd: ご注文の確認 #1234", "UTF-8")),
                ],
                multipart(
                    "------------outer0123456789",
                    [
                        part(
                            [
                                (
                                    "Content-Type",
                                    'multipart/alternative; boundary="------------alt0123456789"',
                                )
                            ],
                            multipart(
                                "------------alt0123456789",
                                [
                                    part(
                                        [
                                            ("Content-Type", "text/plain; charset=UTF-8"),
                                            ("Content-Transfer-Encoding", "8bit"),
                                        ],
                                        crlf(
                                            "注文確認メールを転送します。\n届いた商品と内容が違います。\n"
                                        ).encode(),
                                    ),
                                    part(
                                        [
                                            ("Content-Type", "text/html; charset=UTF-8"),
                                            ("Content-Transfer-Encoding", "8bit"),
                                        ],
                                        crlf(
                                            "<html><body><p>注文確認メールを転送します。<br>届いた商品と内容が違います。</p></body></html>\n"
                                        ).encode(),
                                    ),
                                ],
                            ),
                        ),
                        part(
                            [
                                (
                                    "Content-Type",
                                    f'message/rfc822; charset=UTF-8;\r\n name="{encode_words(eml_name, "UTF-8")}"',
                                ),
                                (
                                    "Content-Disposition",
                                    "attachment;\r\n "
                                    + rfc2231(eml_name.encode(), "UTF-8", name="filename"),
                                ),
                            ],
                            inner,
                        ),
                    ],
                ),
            ),
            "Fwd: ご注文の確認 #1234",
            "aoki@example.com",
            "青木 直樹",
            ["注文確認メールを転送します。\n届いた商品と内容が違います。"],
            ["ご注文ありがとうございます"],
            attachments=[(eml_name, "message/rfc822", inner)],
        )
    )

    # 22 -----------------------------------------------------------------
    original_headers = message(
        [
            ("Return-Path", f"<{SHOP}>"),
            ("From", f"{encode_words('はなまる雑貨店', 'ISO-2022-JP')} <{SHOP}>"),
            ("To", "tanka@example.ne.jp"),
            ("Subject", encode_words("返品受付のお知らせ #1234", "ISO-2022-JP")),
            ("Date", "Sun, 21 Apr 2024 09:00:00 +0900"),
            ("Message-ID", "<ticket-1234.5@shop.example.jp>"),
        ],
        b"",
    )
    add(
        Case(
            "22-dsn-bounce.eml",
            "Postfix DSN: multipart/report; report-type=delivery-status with message/delivery-status",
            message(
                [
                    ("Return-Path", "<>"),
                    received(
                        "mail.shop.example.jp", "localhost", "Sun, 21 Apr 2024 09:00:03 +0900"
                    ),
                    ("Date", "Sun, 21 Apr 2024 09:00:03 +0900 (JST)"),
                    ("From", "MAILER-DAEMON@mail.shop.example.jp (Mail Delivery System)"),
                    ("Subject", "Undelivered Mail Returned to Sender"),
                    ("To", SHOP),
                    ("Auto-Submitted", "auto-replied"),
                    ("MIME-Version", "1.0"),
                    (
                        "Content-Type",
                        'multipart/report; report-type=delivery-status;\r\n\tboundary="4VMabc1234.1713657603/mail.shop.example.jp"',
                    ),
                    ("Content-Transfer-Encoding", "8bit"),
                    ("Message-Id", "<20240421000003.4VMabc1234@mail.shop.example.jp>"),
                ],
                multipart(
                    "4VMabc1234.1713657603/mail.shop.example.jp",
                    [
                        part(
                            [
                                ("Content-Description", "Notification"),
                                ("Content-Type", "text/plain; charset=us-ascii"),
                            ],
                            crlf(
                                "This is the mail system at host mail.shop.example.jp.\n\n"
                                "I'm sorry to have to inform you that your message could not\n"
                                "be delivered to one or more recipients.\n\n"
                                "<tanka@example.ne.jp>: host mx.example.ne.jp[192.0.2.25] said: 550 5.1.1\n"
                                "    <tanka@example.ne.jp>: Recipient address rejected: User unknown\n"
                            ).encode(),
                        ),
                        part(
                            [
                                ("Content-Description", "Delivery report"),
                                ("Content-Type", "message/delivery-status"),
                            ],
                            crlf(
                                "Reporting-MTA: dns; mail.shop.example.jp\n"
                                "X-Postfix-Queue-ID: 4VMabc1234\n"
                                "Arrival-Date: Sun, 21 Apr 2024 09:00:00 +0900 (JST)\n\n"
                                "Final-Recipient: rfc822; tanka@example.ne.jp\n"
                                "Original-Recipient: rfc822;tanka@example.ne.jp\n"
                                "Action: failed\n"
                                "Status: 5.1.1\n"
                                "Remote-MTA: dns; mx.example.ne.jp\n"
                                "Diagnostic-Code: smtp; 550 5.1.1 <tanka@example.ne.jp>: Recipient\n"
                                "    address rejected: User unknown\n"
                            ).encode(),
                        ),
                        part(
                            [
                                ("Content-Description", "Undelivered Message Headers"),
                                ("Content-Type", "text/rfc822-headers"),
                            ],
                            original_headers,
                        ),
                    ],
                ),
            ),
            "Undelivered Mail Returned to Sender",
            "mailer-daemon@mail.shop.example.jp",
            "Mail Delivery System",
            ["could not\nbe delivered", "550 5.1.1"],
            attachments=[("attachment-1.txt", "text/rfc822-headers", original_headers)],
            extra={
                "is_delivery_report": True,
                "auto_submitted": "auto-replied",
                "delivery_status": [["tanka@example.ne.jp", "failed", "5.1.1"]],
            },
        )
    )

    # 23 -----------------------------------------------------------------
    subject = "【自動返信】不在のお知らせ（Re: ご注文 #1234 の返品について）"
    body = (
        "誠に申し訳ございませんが、4月22日～4月30日まで不在にしております。\n"
        "5月1日以降に順次ご返信いたします。\n\n"
        "佐藤 花子\n"
    )
    add(
        Case(
            "23-auto-reply.eml",
            "vacation auto-reply: Auto-Submitted: auto-replied, Precedence: bulk, ISO-2022-JP",
            message(
                [
                    received(
                        "mx1.shop.example.jp",
                        "mail.example.ne.jp",
                        "Mon, 22 Apr 2024 10:00:01 +0900",
                    ),
                    ("Date", "Mon, 22 Apr 2024 10:00:00 +0900"),
                    (
                        "From",
                        f"{encode_words('佐藤 花子', 'ISO-2022-JP')} <sato.hanako@example.ne.jp>",
                    ),
                    ("To", SHOP),
                    ("Subject", encode_words(subject, "ISO-2022-JP")),
                    ("Message-ID", "<vacation.20240422100000.1@example.ne.jp>"),
                    ("In-Reply-To", "<ticket-1234.2@shop.example.jp>"),
                    ("References", "<ticket-1234.2@shop.example.jp>"),
                    ("Auto-Submitted", "auto-replied (vacation)"),
                    ("Precedence", "bulk"),
                    ("X-Auto-Response-Suppress", "All"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "text/plain; charset=ISO-2022-JP"),
                    ("Content-Transfer-Encoding", "7bit"),
                ],
                iso2022jp(body),
            ),
            subject,
            "sato.hanako@example.ne.jp",
            "佐藤 花子",
            ["4月22日～4月30日まで不在"],
            extra={
                "auto_submitted": "auto-replied (vacation)",
                "precedence": "bulk",
                "in_reply_to": "ticket-1234.2@shop.example.jp",
            },
        )
    )

    # 24 -----------------------------------------------------------------
    plain = (
        "ご対応ありがとうございます。\n"
        "返送用の伝票を受け取りました。明日発送します。\n\n"
        "2024年4月23日(火) 10:15 はなまる雑貨店 サポート <support@shop.example.jp>:\n\n"
        "> 井上 様\n"
        ">\n"
        "> お問い合わせありがとうございます。\n"
        "> 注文 #1234 の返品を承りました。返送用の伝票を同封いたしました。\n"
        ">\n"
        "> " + SIGN_SHOP + "\n"
    )
    html = (
        '<div dir="ltr">ご対応ありがとうございます。<div>返送用の伝票を受け取りました。明日発送します。</div></div>'
        '<br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">2024年4月23日(火) 10:15 '
        'はなまる雑貨店 サポート &lt;<a href="mailto:support@shop.example.jp">support@shop.example.jp</a>&gt;:<br></div>'
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">'
        "井上 様<br><br>お問い合わせありがとうございます。<br>注文 #1234 の返品を承りました。返送用の伝票を同封いたしました。"
        f"<br><br>{SIGN_SHOP}<br></blockquote></div>"
    )
    add(
        Case(
            "24-gmail-reply.eml",
            "Gmail reply: multipart/alternative, UTF-8 base64 plain + QP HTML, quoted original, threading headers",
            message(
                [
                    ("MIME-Version", "1.0"),
                    received(
                        "mx1.shop.example.jp",
                        "mail-lf1-f41.google.example.com",
                        "Tue, 23 Apr 2024 12:34:57 +0900",
                    ),
                    (
                        "References",
                        "<ticket-1234.0@shop.example.jp> <ticket-1234.3@shop.example.jp>",
                    ),
                    ("In-Reply-To", "<ticket-1234.3@shop.example.jp>"),
                    (
                        "From",
                        f"{encode_words('井上 美穂', 'UTF-8')} <miho.inoue@gmail.example.com>",
                    ),
                    ("Date", "Tue, 23 Apr 2024 12:34:56 +0900"),
                    ("Message-ID", "<CAF=abc123XYZ+def456@mail.gmail.example.com>"),
                    (
                        "Subject",
                        encode_words("Re: 【はなまる雑貨店】返品受付のお知らせ #1234", "UTF-8"),
                    ),
                    ("To", f"{encode_words('はなまる雑貨店 サポート', 'UTF-8')} <{SHOP}>"),
                    (
                        "Content-Type",
                        'multipart/alternative; boundary="000000000000a1b2c3061612abcd"',
                    ),
                ],
                multipart(
                    "000000000000a1b2c3061612abcd",
                    [
                        part(
                            [
                                ("Content-Type", 'text/plain; charset="UTF-8"'),
                                ("Content-Transfer-Encoding", "base64"),
                            ],
                            b64_body(crlf(plain).encode()),
                        ),
                        part(
                            [
                                ("Content-Type", 'text/html; charset="UTF-8"'),
                                ("Content-Transfer-Encoding", "quoted-printable"),
                            ],
                            qp_body(crlf(html).encode()),
                        ),
                    ],
                ),
            ),
            "Re: 【はなまる雑貨店】返品受付のお知らせ #1234",
            "miho.inoue@gmail.example.com",
            "井上 美穂",
            [
                "返送用の伝票を受け取りました。明日発送します。",
                "2024年4月23日(火) 10:15 はなまる雑貨店 サポート <support@shop.example.jp>:",
                "> 注文 #1234 の返品を承りました。",
            ],
            extra={
                "in_reply_to": "ticket-1234.3@shop.example.jp",
                "references": ["ticket-1234.0@shop.example.jp", "ticket-1234.3@shop.example.jp"],
                "message_id": "CAF=abc123XYZ+def456@mail.gmail.example.com",
                "html_contains": ['class="gmail_quote"'],
            },
        )
    )


# ---------------------------------------------------------------------------
# expected.toml
# ---------------------------------------------------------------------------


def toml_string(value: str) -> str:
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F or char == "\ufffd" or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(value)


def expected_toml(cases: list[Case]) -> str:
    lines = [
        "# Generated by make_corpus.py: what each corpus message must decode to.",
        "# text_contains/text_excludes are exact substrings of ParsedMail.text.",
        "",
    ]
    for case in cases:
        lines.append(f"[{toml_string(case.name)}]")
        entries: dict[str, Any] = {
            "trap": case.trap,
            "subject": case.subject,
            "from_address": case.from_address,
            "from_name": case.from_name,
            "text_contains": case.text_contains,
            "text_excludes": DEFAULT_EXCLUDES + case.text_excludes,
            **case.extra,
        }
        for key, value in entries.items():
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("attachments = [")
        for filename, content_type, data in case.attachments:
            item = {
                "filename": filename,
                "content_type": content_type,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            lines.append(f"  {toml_value(item)},")
        lines.append("]")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    build()
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    for old in HERE.glob("*.eml"):
        if old.name not in names:
            old.unlink()
    for case in CASES:
        (HERE / case.name).write_bytes(case.raw)
    (HERE / "expected.toml").write_text(expected_toml(CASES), encoding="utf-8")
    print(f"wrote {len(CASES)} messages and expected.toml to {HERE}")


if __name__ == "__main__":
    main()
