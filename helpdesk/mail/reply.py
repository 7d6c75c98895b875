"""Agent replies by e-mail: leading command lines, then the new text, minus quotes and signature.

Support agents answer ticket notifications from their mailbox. A reply may start with command
lines (``#status resolved``, ``#担当 佐藤``, ``#note`` ...), then the text for the customer, then
whatever the mail client appended: the quoted original and a signature. ``parse_reply`` turns the
decoded plain-text body into commands, errors and the clean reply text; ``strip_quoted`` only
removes the quoted original and the signature.

Pure functions: no database, no network, no MIME parsing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from helpdesk.models import Priority, TicketStatus
from helpdesk.tickets.commands import (
    AcceptMessage,
    AddNote,
    Assign,
    Command,
    Reply,
    SetPriority,
    SetStatus,
)

__all__ = [
    "AcceptMessage",
    "AddNote",
    "Assign",
    "Command",
    "CommandError",
    "ParsedReply",
    "Priority",
    "Reply",
    "SetPriority",
    "SetStatus",
    "Status",
    "format_errors",
    "parse_reply",
    "strip_quoted",
]


# The ticket's own enums and commands: a mail sets exactly what the console would.
Status = TicketStatus


@dataclass(frozen=True)
class CommandError:
    line: int  # 1-based line number in the reply
    text: str  # the line as written, without surrounding whitespace
    message: str  # Japanese, for the agent


@dataclass(frozen=True)
class ParsedReply:
    """The ticket commands of a reply: its command lines, then the clean text as a ``Reply``
    (an ``AddNote`` in the place of ``#note`` instead); the errors; the clean text itself."""

    commands: tuple[Command, ...]
    errors: tuple[CommandError, ...]
    body: str


# -- commands --------------------------------------------------------------------------------

_STATUS_NAMES = frozenset({"status", "ステータス", "状態"})
_ASSIGN_NAMES = frozenset({"assign", "担当", "担当者"})
_PRIORITY_NAMES = frozenset({"priority", "優先度"})
_NOTE_NAMES = frozenset({"note", "メモ", "ノート", "内部メモ"})
_ACCEPT_NAMES = frozenset({"accept", "承認", "受け入れ", "受入"})

# The words agents type (issue 8: 「#ステータス 完了済み」 was refused), the labels customers
# read (「お客様のご返信待ち」) among them. Looked up after NFKC, case folding and without
# spaces or brackets (「解決 済み」「『保留』」).
_STATUS_VALUES: dict[str, Status] = {
    "open": Status.open,
    "reopen": Status.open,
    "対応中": Status.open,
    "処理中": Status.open,
    "オープン": Status.open,
    "再オープン": Status.open,
    "再開": Status.open,
    "pending": Status.pending,
    "保留": Status.pending,
    "保留中": Status.pending,
    "返信待ち": Status.pending,
    "ご返信待ち": Status.pending,
    "お客様のご返信待ち": Status.pending,
    "お客様の返信待ち": Status.pending,
    "回答待ち": Status.pending,
    "resolved": Status.resolved,
    "resolve": Status.resolved,
    "solved": Status.resolved,
    "解決": Status.resolved,
    "解決済み": Status.resolved,
    "解決済": Status.resolved,
    "対応済み": Status.resolved,
    "対応済": Status.resolved,
    "対応完了": Status.resolved,
    "closed": Status.closed,
    "close": Status.closed,
    "完了": Status.closed,
    "完了済み": Status.closed,
    "完了済": Status.closed,
    "クローズ": Status.closed,
    "クローズ済み": Status.closed,
    "終了": Status.closed,
}
_PRIORITY_VALUES: dict[str, Priority] = {
    "low": Priority.low,
    "低": Priority.low,
    "normal": Priority.normal,
    "通常": Priority.normal,
    "普通": Priority.normal,
    "high": Priority.high,
    "高": Priority.high,
    "urgent": Priority.urgent,
    "緊急": Priority.urgent,
}

# #accept (#承認) is listed in the error mail's own command table (templates/mail).
_KNOWN_COMMANDS = "#status, #assign, #priority, #note"
_STATUS_ALLOWED = "open（対応中）, pending（保留）, resolved（解決済み）, closed（完了）"
_PRIORITY_ALLOWED = "low（低）, normal（通常）, high（高）, urgent（緊急）"

# Run on the NFKC-normalized, stripped line: "#name", then an optional ":" or "=", then the value.
_COMMAND_RE = re.compile(r"#\s*(?P<name>[^\s:=]*)\s*(?:[:=]\s*)?(?P<value>.*)")
# "#1234の注文について": a hash followed by digits is an order number, not a command.
_ORDER_NUMBER_RE = re.compile(r"#\s*\d")


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _split_lines(text: str) -> list[str]:
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _value_key(value: str) -> str:
    value = value.strip().rstrip("。.").strip().strip("「」『』\"'()（）[]")
    return re.sub(r"\s+", "", value).casefold()


# "#承認 12", "#accept #12", "#承認 No.12": the number of the held message to accept.
_MESSAGE_NUMBER_RE = re.compile(r"(?:no\.?|#|番号)?\s*(\d{1,12})", re.IGNORECASE)


def _tail_of(raw: str, normalized_offset: int, normalized_tail: str) -> str:
    """The part of ``raw`` whose NFKC form starts at ``normalized_offset``, as written.

    Falls back to ``normalized_tail`` when normalization joins characters across the boundary.
    """
    index = consumed = 0
    while index < len(raw) and consumed < normalized_offset:
        consumed += len(_nfkc(raw[index]))
        index += 1
    tail = raw[index:].strip()
    return tail if _nfkc(tail).strip() == normalized_tail else normalized_tail


def parse_reply(text: str) -> ParsedReply:
    """Split an agent's reply into its leading commands and the clean body.

    Commands are the lines at the very start (blank lines between them are allowed) that begin
    with ``#`` or ``＃``. The first other line starts the body, so a ``#`` line after it is body
    text, and so is ``#1234...`` (an order number). Text after ``#note`` on the same line is the
    first line of the body (it ends the command block). The rest goes through ``strip_quoted``.
    """
    lines = _split_lines(text)
    commands: list[Command] = []
    errors: list[CommandError] = []
    seen: dict[type, str] = {}
    body_lines: list[str] = []

    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        line = _nfkc(raw).strip()
        if not line.startswith("#") or _ORDER_NUMBER_RE.match(line):
            body_lines = lines[index:]
            break
        match = _COMMAND_RE.fullmatch(line)
        assert match is not None  # the pattern accepts any line starting with "#"
        name = match["name"]
        value = match["value"].strip()
        written = f"#{name}"
        lineno = index + 1

        def fail(message: str, lineno: int = lineno, raw: str = raw) -> None:
            errors.append(CommandError(line=lineno, text=raw.strip(), message=message))

        command: Command
        key = name.casefold()
        if key in _STATUS_NAMES:
            if not value:
                fail(f"「{written}」にはステータスを指定してください。使える値: {_STATUS_ALLOWED}")
                continue
            status = _STATUS_VALUES.get(_value_key(value))
            if status is None:
                fail(f"「{value}」は「{written}」に指定できない値です。使える値: {_STATUS_ALLOWED}")
                continue
            command = SetStatus(status)
        elif key in _PRIORITY_NAMES:
            if not value:
                fail(f"「{written}」には優先度を指定してください。使える値: {_PRIORITY_ALLOWED}")
                continue
            priority = _PRIORITY_VALUES.get(_value_key(value))
            if priority is None:
                fail(
                    f"「{value}」は「{written}」に指定できない値です。使える値: {_PRIORITY_ALLOWED}"
                )
                continue
            command = SetPriority(priority)
        elif key in _ASSIGN_NAMES:
            if not value:
                fail(f"「{written}」には担当者のメールアドレスまたは名前を指定してください。")
                continue
            command = Assign(value)
        elif key in _ACCEPT_NAMES:
            number = _MESSAGE_NUMBER_RE.fullmatch(_value_key(value))
            if not number:
                fail(
                    f"「{written}」には、承認する未確認メッセージの番号を指定してください"
                    "(例: #承認 12)。"
                )
                continue
            command = AcceptMessage(int(number[1]))
        elif key in _NOTE_NAMES:
            command = AddNote()  # its body is known once the whole reply is read
        else:
            fail(f"「{written}」は不明なコマンドです。使えるコマンド: {_KNOWN_COMMANDS}")
            continue

        if type(command) in seen:
            fail(f"「{written}」が2回以上指定されています。1回だけにしてください。")
        else:
            seen[type(command)] = written
            commands.append(command)

        if isinstance(command, AddNote) and value:
            # "#note 電話で確認済み": the rest of the line is the first line of the note.
            offset = len(_nfkc(raw)) - len(_nfkc(raw).lstrip()) + match.start("value")
            body_lines = [_tail_of(raw, offset, value), *lines[index + 1 :]]
            break

    body = strip_quoted("\n".join(body_lines))
    if any(isinstance(command, AddNote) for command in commands):
        commands = [AddNote(body) if isinstance(c, AddNote) else c for c in commands]
    elif body:
        commands.append(Reply(body))
    return ParsedReply(commands=tuple(commands), errors=tuple(errors), body=body)


def format_errors(errors: Iterable[CommandError | str]) -> str:
    """The text of the error reply sent back to the agent: said once, one line per problem
    (a ``CommandError`` of a line, or a problem ``TicketService`` found), each once."""
    lines = (
        f"・{e.line}行目「{e.text}」: {e.message}" if isinstance(e, CommandError) else f"・{e}"
        for e in errors
    )
    listed = "\n".join(dict.fromkeys(lines))
    return (
        "返信の先頭にあるコマンドを処理できませんでした。お客様へのメールは送信していません。\n\n"
        f"{listed}\n\n"
        "コマンドを直して、もう一度返信してください。"
    )


# -- quoted original and signature ------------------------------------------------------------

_DATE = r"\d{4}\s*[/\-.年]\s*\d{1,2}\s*[/\-.月]\s*\d{1,2}"
_ATTRIBUTION_RES = (
    # Gmail, Apple Mail, Thunderbird (English):
    # "On Tue, Nov 24, 2026 at 3:00 PM 山田 <a@b.jp> wrote:", "On 2026/11/24 15:00, 山田 wrote:"
    re.compile(r"On\s.*\d.*\swrote\s*:", re.IGNORECASE),
    # A date, then the sender, ending as Gmail (ja) "...<taro@example.jp>:", Apple Mail (ja)
    # "...のメール:" or Thunderbird "... wrote:" / "...書きました:".
    re.compile(rf".*{_DATE}.*(?:>|のメール|wrote|書きました)\s*:", re.IGNORECASE),
)
# Outlook.
_ORIGINAL_MESSAGE_RE = re.compile(
    r"-{2,}\s*(?:original message|元のメッセージ)\s*-{2,}", re.IGNORECASE
)
_HEADER_RE = re.compile(r"\*?(?P<key>[^\s:*]+)\s*\*?\s*:")
_FROM_KEYS = frozenset({"from", "差出人", "送信者"})
_SENT_KEYS = frozenset({"sent", "date", "送信日時", "送信日", "日付", "日時"})
_TO_KEYS = frozenset({"to", "宛先", "cc", "subject", "件名"})
# Signatures.
_SIG_DASHES_RE = re.compile(r"--\s*")
_MOBILE_RES = (
    re.compile(r"sent from (?:my )?\S.{0,40}", re.IGNORECASE),
    re.compile(r"get outlook for \S.{0,30}", re.IGNORECASE),
    re.compile(
        r".{0,30}(?:iphone|ipad|android|gmail|outlook|yahoo|携帯|スマートフォン|スマホ|mail)"
        r".{0,15}(?:から|より)送信(?:しました)?。?",
        re.IGNORECASE,
    ),
)
_QUOTE_RE = re.compile(r"\s*>")  # NFKC turns "＞" into ">"
_SEPARATOR_RE = re.compile(r"([━─\-=_~*・―—■□◆◇●○★☆])\1{4,}.*")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CONTACT_RE = re.compile(
    r"株式会社|有限会社|合同会社|\(株\)|\(有\)|inc\.|co\.,?\s*ltd|llc|"
    r"tel|fax|phone|電話|携帯|mail|メール|〒|住所|url|https?://|www\.|"
    r"\d{2,4}-\d{2,4}-\d{3,4}",
    re.IGNORECASE,
)
_MAX_ATTRIBUTION_LINE = 300  # longer lines are text (and regex work stays small)
_MAX_SIGNATURE_LINES = 12
_MAX_SIGNATURE_LINE = 60


def _norm(line: str) -> str:
    return _nfkc(line).strip()


def _is_blank(line: str) -> bool:
    return not line.strip()


def _is_separator(line: str) -> bool:
    return _SEPARATOR_RE.fullmatch(_norm(line)) is not None


def _attribution_length(lines: list[str], index: int) -> int:
    """How many lines (1 or 2, as Gmail wraps long ones) an attribution at ``index`` spans."""
    line = _norm(lines[index])
    if not line or len(line) > _MAX_ATTRIBUTION_LINE:
        return 0
    if any(pattern.fullmatch(line) for pattern in _ATTRIBUTION_RES):
        return 1
    if index + 1 < len(lines) and not line.endswith(":"):
        following = _norm(lines[index + 1])
        if following.endswith(":") and len(line) + len(following) <= _MAX_ATTRIBUTION_LINE:
            for joined in (f"{line} {following}", f"{line}{following}"):
                if any(pattern.fullmatch(joined) for pattern in _ATTRIBUTION_RES):
                    return 2
    return 0


def _header_key(line: str) -> str | None:
    match = _HEADER_RE.match(_norm(line))
    return match["key"].casefold() if match else None


def _is_header_block(lines: list[str], index: int) -> bool:
    """Outlook's "From: / Sent: / To: / Subject:" (or 差出人 / 送信日時 / 宛先 / 件名) block."""
    if _header_key(lines[index]) not in _FROM_KEYS:
        return False
    keys = {_header_key(line) for line in lines[index + 1 : index + 7]}
    return bool(keys & _SENT_KEYS) and bool(keys & _TO_KEYS)


def _is_signature_marker(line: str) -> bool:
    norm = _norm(line)
    if _SIG_DASHES_RE.fullmatch(norm):
        return True
    return any(pattern.fullmatch(norm) for pattern in _MOBILE_RES)


def _find_cut(lines: list[str]) -> tuple[int, int]:
    """The first line of the appended part, and the attribution length if it starts with one.

    Returns ``(len(lines), 0)`` when nothing was appended.
    """
    for index, line in enumerate(lines):
        if _is_blank(line):
            continue
        length = _attribution_length(lines, index)
        if length:
            return index, length
        if _ORIGINAL_MESSAGE_RE.fullmatch(_norm(line)) or _is_signature_marker(line):
            return index, 0
        if _is_header_block(lines, index):
            # Include the "________________" rule Outlook puts above the header block.
            start = index
            while start > 0 and _is_blank(lines[start - 1]):
                start -= 1
            if start > 0 and _is_separator(lines[start - 1]):
                return start - 1, 0
            return index, 0
    return len(lines), 0


def _looks_like_attribution(line: str) -> bool:
    """A line introducing a quote block, for clients whose exact wording is not known."""
    norm = _norm(line)
    if not norm.endswith(":") or len(norm) > _MAX_ATTRIBUTION_LINE:
        return False
    return bool(re.search(r"wrote|書きました|のメール", norm, re.IGNORECASE)) or bool(
        _EMAIL_RE.search(norm)
    )


def _remove_quotes(lines: list[str]) -> list[str]:
    """Drop every ``>`` / ``＞`` line, including single lines quoted between new text."""
    kept: list[str] = []
    index = 0
    while index < len(lines):
        if not _QUOTE_RE.match(_nfkc(lines[index])):
            kept.append(lines[index])
            index += 1
            continue
        while index < len(lines) and _QUOTE_RE.match(_nfkc(lines[index])):
            index += 1
        # An attribution line right above the quote block goes too.
        last = len(kept)
        while last > 0 and _is_blank(kept[last - 1]):
            last -= 1
        if last > 0 and _looks_like_attribution(kept[last - 1]):
            del kept[last - 1 :]
        # Do not leave two blank lines where the quote was.
        if kept and _is_blank(kept[-1]):
            while index < len(lines) and _is_blank(lines[index]):
                index += 1
    return kept


def _is_signature_line(line: str) -> bool:
    norm = _norm(line)
    if _is_separator(line):
        return True
    return len(norm) <= _MAX_SIGNATURE_LINE and not norm.endswith(("。", "?"))


def _signature_start(lines: list[str]) -> int | None:
    """Where a trailing separator-framed signature (``━━━━━`` + name/company block) begins."""
    filled = [index for index, line in enumerate(lines) if not _is_blank(line)]
    first = filled[-_MAX_SIGNATURE_LINES - 1] if len(filled) > _MAX_SIGNATURE_LINES else 0
    for index in range(first, len(lines)):
        if not _is_separator(lines[index]):
            continue
        block = [other for other in lines[index + 1 :] if not _is_blank(other)]
        if len(block) > _MAX_SIGNATURE_LINES:
            continue
        if not all(_is_signature_line(other) for other in block):
            continue
        if not block or any(_CONTACT_RE.search(_norm(other)) for other in block):
            return index
    return None


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and _is_blank(lines[start]):
        start += 1
    while end > start and _is_blank(lines[end - 1]):
        end -= 1
    return lines[start:end]


def _strip_lines(lines: list[str]) -> list[str]:
    cut, attribution = _find_cut(lines)
    while attribution and all(_is_blank(line) for line in lines[:cut]):
        # Bottom-posting: the attribution and its quote come first, the new text below.
        lines = _remove_quotes(lines[cut + attribution :])
        cut, attribution = _find_cut(lines)
    lines = _trim(_remove_quotes(lines[:cut]))
    signature = _signature_start(lines)
    if signature is not None:
        lines = _trim(lines[:signature])
    return lines


def strip_quoted(text: str) -> str:
    """Keep only the new text of a reply: drop the quoted original, quote lines and signature.

    Handles the attribution lines of Gmail, Outlook, Apple Mail / iPhone and Thunderbird (English
    and Japanese), Outlook's "Original Message" and header blocks, ``>`` / ``＞`` quotes (also a
    single quoted line between new text), ``-- `` signatures, "Sent from my iPhone" style
    footers and Japanese signature blocks framed by ``━━━━━`` style rules. Leading and trailing
    blank lines are removed; an all-quoted reply gives ``""``.
    """
    return "\n".join(_strip_lines(_split_lines(text)))
