"""Properties of the mail decoder, the HTML-to-text converter and the reply parser (Hypothesis).

Whatever bytes or text arrive: no exception but ``MailParseError`` (not a mail at all), output
bounded by the input, and every example within Hypothesis' deadline (time per example). The
reply parser never invents text, and text with no quote, attribution or signature marker
comes back as it was written.
"""

from __future__ import annotations

import base64
import time

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helpdesk.mail.decode import (
    MAX_HTML_TEXT_CHARS,
    MailParseError,
    decode_bytes,
    decode_header_value,
    html_to_text,
    parse_message,
)
from helpdesk.mail.quotes import MAX_REPLY_CHARS
from helpdesk.mail.reply import parse_reply, strip_quoted
from helpdesk.tickets.commands import Reply

PROPERTY = settings(
    max_examples=150,
    deadline=2000,  # ms per example: inputs here are small, so this catches runaway work
    suppress_health_check=[HealthCheck.too_slow],
    database=None,  # nothing written into the checkout
)

CHARSETS = [
    "utf-8",
    "iso-2022-jp",
    "shift_jis",
    "euc-jp",
    "cp932",
    "iso-8859-1",
    "windows-1252",
    "us-ascii",
    "gb2312",
    "ks_c_5601-1987",
    "x-unknown",
    "",
]


def _encoded_word(data: bytes, charset: str) -> str:
    return f"=?{charset or 'utf-8'}?B?{base64.b64encode(data).decode()}?="


@st.composite
def header_values(draw: st.DrawFn) -> bytes:
    pieces = draw(
        st.lists(
            st.one_of(
                st.binary(max_size=40),
                st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
                st.builds(
                    lambda data, charset: _encoded_word(data, charset).encode(),
                    st.binary(max_size=30),
                    st.sampled_from(CHARSETS),
                ),
            ),
            max_size=4,
        )
    )
    return b" ".join(p.replace(b"\r", b" ").replace(b"\n", b" ") for p in pieces)


@st.composite
def parts(draw: st.DrawFn, depth: int = 0) -> bytes:
    content_type = draw(
        st.sampled_from(
            [
                "text/plain",
                "text/html",
                "application/octet-stream",
                "image/jpeg",
                "message/rfc822",
                "multipart/mixed",
                "multipart/alternative",
                "text/x-unknown",
            ]
        )
    )
    if content_type.startswith("multipart/") and depth < 3:
        boundary = draw(st.sampled_from(["b1", "b1--", "b", "x y", "=_q"]))
        children = draw(st.lists(parts(depth + 1), max_size=3))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + child + b"\r\n" for child in children)
        if draw(st.booleans()):
            body += b"--" + boundary.encode() + b"--\r\n"
        head = f'Content-Type: {content_type}; boundary="{boundary}"\r\n'.encode()
        return head + b"\r\n" + body
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-bogus"]))
    head = (
        f"Content-Type: {content_type}; charset={charset}\r\n"
        f"Content-Transfer-Encoding: {encoding}\r\n"
    ).encode()
    if draw(st.booleans()):
        head += (
            b"Content-Disposition: attachment; filename*="
            + draw(
                st.sampled_from([b"utf-8''%E5%86%99%E7%9C%9F.jpg", b"iso-2022-jp'ja'a%8ab", b"x"])
            )
            + b"\r\n"
        )
    body = draw(st.binary(max_size=300))
    if encoding == "base64" and draw(st.booleans()):
        body = base64.b64encode(body)
    return head + b"\r\n" + body


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    headers = [
        b"From: " + draw(header_values()),
        b"To: " + draw(header_values()),
        b"Subject: " + draw(header_values()),
        b"Date: " + draw(st.sampled_from([b"Tue, 24 Nov 2026 15:00:00 +0900", b"garbage", b""])),
        b"Message-ID: <" + draw(st.binary(max_size=20)).replace(b"\n", b"") + b">",
    ]
    return b"\r\n".join(headers) + b"\r\nMIME-Version: 1.0\r\n" + draw(parts())


@PROPERTY
@given(st.binary(max_size=2000))
def test_parse_message_never_fails_on_arbitrary_bytes(raw: bytes) -> None:
    try:
        mail = parse_message(raw)
    except MailParseError:
        return
    assert isinstance(mail.text, str) and "\r" not in mail.text


@PROPERTY
@given(mails())
def test_parse_message_never_fails_on_broken_mime(raw: bytes) -> None:
    mail = parse_message(raw)
    assert "\r" not in mail.text
    assert all(isinstance(a.data, bytes) and a.filename for a in mail.attachments)
    assert len(mail.text) <= 5 * len(raw) + 100


@PROPERTY
@given(st.binary(max_size=500), st.sampled_from(CHARSETS))
def test_decoding_never_fails(data: bytes, charset: str) -> None:
    assert isinstance(decode_bytes(data, charset), str)
    assert isinstance(decode_header_value(data), str)


HTML_PIECES = st.sampled_from(
    [
        "<blockquote>",
        "</blockquote>",
        "<br>",
        "<p>",
        "</p>",
        "<pre>",
        "</pre>",
        "<li>",
        "<hr>",
        "<a href='https://x.jp'>",
        "</a>",
        "<script>",
        "</script>",
        "<!--",
        "-->",
        "<",
        ">",
        "&amp;",
        "&#",
        "<td>",
        "<img alt='写真'>",
        "x",
        "あ",
        " ",
        "\n",
        "<![CDATA[",
        "]]>",
        "<a b='",
    ]
)


@PROPERTY
@given(st.one_of(st.text(max_size=2000), st.lists(HTML_PIECES, max_size=600).map("".join)))
def test_html_to_text_is_bounded(html: str) -> None:
    text = html_to_text(html)
    # <hr> (4 characters) becomes 20 dashes; a "> " prefix is at most 16 per line.
    assert len(text) <= 6 * len(html) + 100
    assert len(text) <= MAX_HTML_TEXT_CHARS + 20


REPLY_PIECES = st.sampled_from(
    [
        "> ",
        ">",
        "On Tue, Nov 24, 2026 at 3:00 PM 山田 <a@b.jp> wrote:",
        "wrote:",
        "-- ",
        "\n",
        "\n\n",
        "From: a@b.jp",
        "Sent: 2026",
        "To: b",
        "Subject: x",
        "差出人: 山田",
        "件名: x",
        "-----Original Message-----",
        "---------- Forwarded message ----------",
        "#status resolved",
        "#note",
        "Sent from my iPhone",
        "__________",
        "━━━━━━",
        "山田様",
        "text",
        " ",
        "<",
        "@",
        "2026年11月24日(火) 15:00 山田 <a@b.jp>:",
        "| ",
        "C> ",
        "新しいお問い合わせが届きました。",
    ]
)


def _lines(text: str) -> set[str]:
    return set(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


@PROPERTY
@given(st.one_of(st.text(max_size=3000), st.lists(REPLY_PIECES, max_size=300).map("".join)))
def test_reply_stripping_never_invents_text(text: str) -> None:
    stripped = strip_quoted(text)
    assert len(stripped) <= len(text)
    assert _lines(stripped) <= _lines(text) | {""}
    body = parse_reply(text).body
    assert len(body) <= len(text)


# Words that can form no marker: no ">", "|", "#", ":", "@", "<", rules, "wrote", "sent from".
WORDS = st.sampled_from(
    [
        "お問い合わせ",
        "ありがとうございます",
        "商品",
        "本日",
        "発送いたしました",
        "山田様",
        "佐藤",
        "交換",
        "返品",
        "よろしくお願いいたします",
        "Thank",
        "you",
        "for",
        "the",
        "order",
        "We",
        "shipped",
        "it",
        "today",
        "Best",
        "regards",
        "2026",
        "11",
        "24",
        "。",
        "、",
        ",",
        ".",
        "!",
        "?",
        "(",
        ")",
        "「",
        "」",
        "ｶﾀｶﾅ",
        "on",
        "On",
        "Le",
        "Am",
        "de",
        "a",
        "to",
        "Subject",
    ]
)
LINES = st.lists(st.lists(WORDS, max_size=12).map(" ".join), max_size=40)


@PROPERTY
@given(LINES, st.sampled_from(["\n", "\r\n"]))
def test_text_without_markers_comes_back_as_written(lines: list[str], newline: str) -> None:
    text = newline.join(lines)
    # Leading and trailing blank lines go; nothing else changes.
    assert strip_quoted(text) == "\n".join(lines).strip("\n")


@PROPERTY
@given(LINES)
def test_commands_never_swallow_text(lines: list[str]) -> None:
    text = "\n".join(lines)
    assume(not text.lstrip().startswith(("#", "＃")))
    parsed = parse_reply(text)
    # No command lines: the whole text is the reply, and nothing else is commanded.
    assert parsed.commands == ((Reply(parsed.body),) if parsed.body else ())
    assert parsed.errors == ()
    assert parsed.body.strip() == text.strip("\n").strip()


def test_reply_stripping_at_its_input_limit() -> None:
    # The costliest line shape (each looks like the start of a wrapped attribution), as
    # much as strip_quoted reads: measured 3.6 s; the bound only catches a quadratic.
    text = "On 2026/11/24 x\n" * (MAX_REPLY_CHARS // 16)
    started = time.perf_counter()
    assert strip_quoted(text + "y")  # the marker-free lines are kept
    assert time.perf_counter() - started < 30
