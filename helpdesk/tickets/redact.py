"""Nothing agent-only reaches a customer: links, keys and addresses are taken out (issue 8).

``for_customer`` is applied where text leaves for a customer, and only there: composing
any customer mail (``Notifier``) and the customer's status page and its JSON
(``TicketService.conversation``). It removes, whatever the quoting around them:

- a quoted agents' mail (the notification an agent answered, quoted by a mail client the
  quote stripper does not know): recognised by lines only agents' mails carry
  (``AGENT_MAIL_MARKERS``), it goes with its attribution or header block;
- links to the agents' pages (the console ``/console/...``, and ``/agent/...`` of older mails)
  and any ``key=`` value;
- the agents' signed reply addresses (``support+hd-26-00042.a<signature>@shop``);
- the exact agent key and agents' address of the ticket, wherever they appear.

``html_for_customer`` does the same to an HTML part, link by link (its text was redacted
before it was rendered). Pure functions: no database, no network.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Lines that only mails to the agents carry (templates/mail: ticket_notification,
# customer_reply, unregistered_sender, agent_error, inbound_failed). A test keeps every
# agents' template carrying one, and every customer template free of them.
AGENT_MAIL_MARKERS = (
    "チケットを開く:",
    "このメールに返信すると、本文がお客様に届きます",
    "---- 返信のしかた ----",
    "新しいお問い合わせが届きました。",
    "から返信がありました。",
    "このメールは担当者だけに届いています。",
)
REMOVED_LINK = "(担当者用のリンクのため省略しました)"
REMOVED_ADDRESS = "(担当者用のアドレスのため省略しました)"
REMOVED_KEY = "(省略)"

# URL characters (ASCII only, so that Japanese text right after a link is not taken).
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#@!$&*+,;=%\[\]]"
_URL = re.compile(
    rf"(?:https?://|www\.){_URL_CHARS}+|/(?:agent|console)/{_URL_CHARS}*", re.IGNORECASE
)
# Paths of the agents' pages: the console, and the capability links mails carried before it.
_AGENT_PATHS = ("/agent/", "/console/")
_KEY_PARAMETER = re.compile(r"(?<![A-Za-z0-9_])key=[A-Za-z0-9_\-]+", re.IGNORECASE)
# The agents' signed address: "a" and 12 signature characters (a customer's has 12 alone).
_AGENTS_ADDRESS = re.compile(
    r"[A-Za-z0-9._%+\-]*\+hd-\d{2}-\d+\.a[a-z0-9_\-]{12}@[A-Za-z0-9.\-]+", re.IGNORECASE
)
_QUOTE_CHARS = ">|＞》≫»"
_MAX_LABEL = 60
_PREFIX = re.compile(rf"[\s{_QUOTE_CHARS}]*")
_HEADER = re.compile(r"\*?\s*(?P<key>[\w\- ]{1,24}?)\s*\*?\s*:")
_FROM_KEYS = frozenset({"from", "差出人", "送信者", "送信元", "von", "de", "da"})
_SEPARATOR = re.compile(r"[-_=*━─~・ ]{5,}.*|-{2,}.*-{2,}")
_ATTRIBUTION_WORDS = re.compile(
    r"wrote|書きました|のメール|a écrit|schrieb|escribió|scritto|написал|escreveu|写道|寫道",
    re.IGNORECASE,
)


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _is_blank(line: str) -> bool:
    return not line.strip()


def _is_marker(line: str) -> bool:
    normalized = _nfkc(line)
    return any(_nfkc(marker) in normalized for marker in AGENT_MAIL_MARKERS)


def _is_quoted(line: str) -> bool:
    """A line with a quote mark (``>``, ``|``, ``＞`` ...) before its text."""
    prefix = _PREFIX.match(line)
    return prefix is not None and any(c in _QUOTE_CHARS for c in prefix.group())


def _is_indented(line: str) -> bool:
    return bool(line) and line[0] in " \t\u3000" and not _is_blank(line)


def _is_separator(line: str) -> bool:
    return _SEPARATOR.fullmatch(_nfkc(line).strip()) is not None


def _header_key(line: str) -> str | None:
    match = _HEADER.match(_nfkc(line).strip())
    return match["key"].strip().casefold() if match else None


def _is_attribution(line: str) -> bool:
    """A line introducing a quote: "On ... wrote:", "...のメール:", "2026/11/24 ... <a@b>:"."""
    text = _nfkc(line).strip()
    if not text or len(text) > 300:
        return False
    return text.endswith(":") or "@" in text or _ATTRIBUTION_WORDS.search(text) is not None


def _opens_block(line: str) -> bool:
    """Where a pasted original starts: a rule, an attribution, a From header, a marker."""
    return (
        _is_separator(line)
        or _header_key(line) in _FROM_KEYS
        or _is_attribution(line)
        or _is_marker(line)
    )


def _cut_quoted(lines: list[str], hit: int) -> list[str]:
    """Remove the run of quoted lines around ``hit`` and the attribution above it."""
    start = hit
    while start > 0 and (_is_quoted(lines[start - 1]) or _is_blank(lines[start - 1])):
        start -= 1
    end = hit
    while end + 1 < len(lines) and (_is_quoted(lines[end + 1]) or _is_blank(lines[end + 1])):
        end += 1
    for _ in range(2):  # an attribution may be wrapped onto two lines
        above = start - 1
        while above >= 0 and _is_blank(lines[above]):
            above -= 1
        if above >= 0 and _is_attribution(lines[above]):
            start = above
        else:
            break
    return lines[:start] + lines[end + 1 :]


def _is_label(line: str) -> bool:
    """A short line that is no sentence: a header's name or value on a line of its own
    (Lotus Notes writes 「宛先」, then the address, on separate lines)."""
    text = _nfkc(line).strip()
    return len(text) <= _MAX_LABEL and not text.endswith(("。", ".", "!", "?"))


def _cut_pasted(lines: list[str], hit: int) -> list[str]:
    """Remove an original pasted without quote marks (Outlook, forwards, indentation):
    from its header block, rule or attribution above ``hit`` to the end."""
    indented = _is_indented(lines[hit])
    start = hit
    while start > 0:
        line = lines[start - 1]
        if not (
            _is_blank(line)
            or _header_key(line) is not None
            or _opens_block(line)
            or _is_label(line)
            or (indented and _is_indented(line))
        ):
            break
        start -= 1
    # The block begins at its first opening line: text of the agent's own ("注文番号: 1234")
    # just above a header block stays.
    while start < hit and not (
        _opens_block(lines[start]) or (indented and _is_indented(lines[start]))
    ):
        start += 1
    return lines[:start]


def _drop_agent_mails(text: str) -> str:
    if not _is_marker(text):
        return text
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for _ in range(len(lines)):
        hit = next((index for index, line in enumerate(lines) if _is_marker(line)), None)
        if hit is None:
            break
        lines = _cut_quoted(lines, hit) if _is_quoted(lines[hit]) else _cut_pasted(lines, hit)
    while lines and _is_blank(lines[-1]):
        lines.pop()
    return "\n".join(lines)


def _drop_tokens(text: str, secrets: Iterable[str]) -> str:
    text = _AGENTS_ADDRESS.sub(REMOVED_ADDRESS, text)

    def link(match: re.Match[str]) -> str:
        url = match.group()
        if any(path in url.lower() for path in _AGENT_PATHS) or _KEY_PARAMETER.search(
            url.replace("&amp;", "&")
        ):
            return REMOVED_LINK
        return url

    text = _KEY_PARAMETER.sub(REMOVED_KEY, _URL.sub(link, text))
    for secret in secrets:  # wherever they are left: wrapped, pasted alone
        if secret:
            text = re.sub(re.escape(secret), REMOVED_KEY, text, flags=re.IGNORECASE)
    return text


def for_customer(text: str, *, secrets: Iterable[str] = ()) -> str:
    """``text`` as a customer may read it: quoted agents' mails, agents' links, keys and
    signed addresses removed; ``secrets`` (the ticket's agent key and agents' address) are
    removed wherever they appear. Text without any of these comes back unchanged."""
    secrets = tuple(secrets)
    return _drop_tokens(_drop_agent_mails(text), secrets)


def html_for_customer(html: str, *, secrets: Iterable[str] = ()) -> str:
    """An HTML part as a customer may receive it: agents' links, keys and addresses out."""
    return _drop_tokens(html, tuple(secrets))
