"""Agent replies by e-mail: leading command lines, then the new text, minus quotes and signature.

Support agents answer ticket notifications from their mailbox. A reply may start with command
lines (``#status resolved``, ``#担当 佐藤``, ``#note`` ...), then the text for the customer, then
whatever the mail client appended: the quoted original and a signature. ``parse_reply`` turns the
decoded plain-text body into commands, errors and the clean reply text; ``strip_quoted``
(:mod:`helpdesk.mail.quotes`) only removes the quoted original and the signature.

Pure functions: no database, no network, no MIME parsing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from helpdesk.mail.quotes import strip_quoted
from helpdesk.models import Priority, TicketStatus
from helpdesk.tickets.commands import (
    AcceptMessage,
    AddNote,
    Assign,
    Command,
    Confirm,
    MarkSpam,
    Merge,
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
    "MarkSpam",
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
# The answer to a held reply's notice (二重対応防止): send it after all.
_CONFIRM_NAMES = frozenset({"confirm", "送信確認", "確認済み", "送信"})
_MERGE_NAMES = frozenset({"merge", "統合", "マージ"})
_SPAM_NAMES = frozenset({"spam", "迷惑メール", "迷惑"})
# "#spam" marks the ticket as spam; "#spam off" (解除) takes the mark away.
_SPAM_VALUES = {"": True, "on": True, "off": False, "解除": False, "取り消し": False}

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
_KNOWN_COMMANDS = "#status, #assign, #priority, #note, #spam"
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
        elif key in _CONFIRM_NAMES:
            command = Confirm()
        elif key in _MERGE_NAMES:
            if not value:
                fail(f"「{written}」には統合先のチケットの受付番号を指定してください。")
                continue
            command = Merge(value)
        elif key in _SPAM_NAMES:
            spam = _SPAM_VALUES.get(_value_key(value))
            if spam is None:
                fail(f"「{value}」は「{written}」に指定できない値です。使える値: (なし), off(解除)")
                continue
            command = MarkSpam(spam)
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
