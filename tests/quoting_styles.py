"""An agent's reply to our new-ticket notification, quoted the way 13 mail clients quote it.

The notification carries the agents' link (``/console/t/HD-...``) and is sent
from the agents' signed reply address; after stripping, neither may be left, and every line
the agent typed must be.
"""

from __future__ import annotations

from collections.abc import Callable

# What the agent typed: a greeting with no blank line under it, paragraphs, a closing line.
AGENT_WORDS = (
    "山田様",
    "お問い合わせありがとうございます。",
    "",
    "本日、代わりの商品を発送いたしました。",
    "お届けまで今しばらくお待ちください。",
    "",
    "佐藤",
)
AGENT_TEXT = "\n".join(AGENT_WORDS)


def _quoted(text: str, prefix: str = "> ") -> list[str]:
    return [(prefix + line).rstrip() if line else prefix.rstrip() for line in text.split("\n")]


def _lines(text: str) -> list[str]:
    return text.split("\n")


Style = Callable[[str, str, str], str]


def _join(*parts: str | list[str]) -> str:
    out: list[str] = []
    for part in parts:
        out.extend([part] if isinstance(part, str) else part)
    return "\n".join(out) + "\n"


def gmail_en(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        f"On Tue, Nov 24, 2026 at 3:00 PM COCO case <{sender}> wrote:",
        "",
        _quoted(notification),
    )


def gmail_ja(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        f"2026年11月24日(火) 15:00 COCO case <{sender}>:",
        "",
        _quoted(notification),
    )


def outlook_en(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        "________________________________",
        f"From: COCO case <{sender}>",
        "Sent: Tuesday, November 24, 2026 3:00 PM",
        "To: 佐藤 <sato@interiorltd.jp>",
        f"Subject: {subject}",
        "",
        _lines(notification),
    )


def outlook_ja(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        "________________________________",
        f"差出人: COCO case <{sender}>",
        "送信日時: 2026年11月24日 15:00",
        "宛先: 佐藤 <sato@interiorltd.jp>",
        f"件名: {subject}",
        "",
        _lines(notification),
    )


def outlook_zh(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        "________________________________",
        f"发件人: COCO case <{sender}>",
        "发送时间: 2026年11月24日 15:00",
        "收件人: 佐藤 <sato@interiorltd.jp>",
        f"主题: {subject}",
        "",
        _lines(notification),
    )


def outlook_ko(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        "________________________________",
        f"보낸 사람: COCO case <{sender}>",
        "보낸 날짜: 2026년 11월 24일 화요일 오후 3:00",
        "받는 사람: 佐藤 <sato@interiorltd.jp>",
        f"제목: {subject}",
        "",
        _lines(notification),
    )


def apple_iphone(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        "iPhoneから送信",
        "",
        f"2026/11/24 15:00、COCO case <{sender}>のメール:",
        "",
        _quoted(notification),
    )


def thunderbird(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        "On 2026/11/24 15:00, COCO case wrote:",
        _quoted(notification),
    )


def unquoted_paste(notification: str, sender: str, subject: str) -> str:
    return _join(list(AGENT_WORDS), "", _lines(notification))


def wrote_without_date(notification: str, sender: str, subject: str) -> str:
    return _join(list(AGENT_WORDS), "", "COCO case wrote:", _quoted(notification))


def name_address_wrote(notification: str, sender: str, subject: str) -> str:
    return _join(list(AGENT_WORDS), "", f"COCO case <{sender}> wrote:", "", _lines(notification))


def forward_ja(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        "--------転送メッセージ--------",
        f"件名: {subject}",
        "日付: Tue, 24 Nov 2026 15:00:00 +0900",
        f"差出人: COCO case <{sender}>",
        "宛先: 佐藤 <sato@interiorltd.jp>",
        "",
        _lines(notification),
    )


def zoho(notification: str, sender: str, subject: str) -> str:
    return _join(
        list(AGENT_WORDS),
        "",
        f"---- On Tue, 24 Nov 2026 15:00:00 +0900 COCO case <{sender}> wrote ----",
        "",
        _lines(notification),
    )


STYLES: dict[str, Style] = {
    "gmail-en": gmail_en,
    "gmail-ja": gmail_ja,
    "outlook-en": outlook_en,
    "outlook-ja": outlook_ja,
    "outlook-zh": outlook_zh,
    "outlook-ko": outlook_ko,
    "apple-iphone": apple_iphone,
    "thunderbird": thunderbird,
    "unquoted-paste": unquoted_paste,
    "wrote-without-date": wrote_without_date,
    "name-address-wrote": name_address_wrote,
    "forward-ja": forward_ja,
    "zoho": zoho,
}
assert len(STYLES) == 13
