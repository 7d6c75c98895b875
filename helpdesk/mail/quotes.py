"""The new text of a reply: the quoted history, forwarded headers and signature removed.

Mail clients append the message being answered in many shapes: an attribution line
(``On ... wrote:``, ``Le ... a écrit :``, ``2026年11月24日(火) 15:00 山田 <a@b.jp>:``, Gmail's
line wrapped over two or three lines, Zoho's ``---- On ... wrote ----``) followed by ``>``
quotes or by the original unquoted; Outlook's header block (``From: / Sent: / To: /
Subject:`` in a dozen languages, under a rule or an ``-----Original Message-----`` line);
forwards (``---------- Forwarded message ----------``, ``--------転送メッセージ--------``);
and, for agents, our own notification pasted without any marker.

The rule that decides every close call: **no line the writer typed is dropped**. So

* a line is history only when a marker says so, and only from that marker on;
* text below a ``>`` quote is kept (bottom posting, inline answers);
* a mail that is only a forward keeps the forwarded text (without its header block);
* "X wrote:" without a date or an address counts only directly above a ``>`` quote.

Pure functions over text; every pattern runs on one line (or a join of at most a few short
lines), so the work is linear in the input.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["strip_quoted"]


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


# -- vocabulary ---------------------------------------------------------------------------------

# "wrote" in the languages our agents' and customers' clients speak. Latin-script verbs are
# matched as words; CJK ones anywhere.
_WROTE_WORDS = (
    "wrote|writes|has written|a écrit|écrit|schrieb|schreef|het volgende geschreven|geschreven|"
    "ha scritto|scrisse|escribió|escribio|escreveu|napisał\\(a\\)|napisała|napisał|napisal|"
    "написал\\(а\\)|написала|написал|пишет|kirjoitti|skrev|skrifaði|írta|napsal\\(a\\)|napsala|"
    "napsal|napísal|a scris|έγραψε|yazdı|menulis|đã viết"
)
_WROTE_CJK = "写道|寫道|작성|書きました|のメール|のメッセージ"
_WROTE = rf"(?:(?<!\w)(?:{_WROTE_WORDS})(?!\w)|{_WROTE_CJK})"
_WROTE_AT_END_NO_COLON = re.compile(rf"{_WROTE}\s*:?$", re.IGNORECASE)
_WROTE_ANYWHERE = re.compile(_WROTE, re.IGNORECASE)
# Words an attribution starts with ("On", "Le", "Am", "El", "Il", "Op", "W dniu", ...).
_OPENER = re.compile(
    r"(?:on|le|am|el|em|il|il giorno|in data|op|den|w dniu|dnia|dne|dňa|στις|на|в|pada|vào|"
    r"ngày|às|kl\.)\s",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"\d{4}|\d{1,2}:\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d+\s*(?:年|月|日|년|월|일)"
)
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|<")
# The second half of an attribution wrapped before the address: "taro@example.jp> wrote:".
_ADDRESS_START = re.compile(r"[<(\[]|[\w.+-]+@")
# What may follow a blank line inside a wrapped attribution.
_FRAGMENT_START = re.compile(rf"[<>(\[]|mailto:|[\w.+-]+@|{_WROTE}", re.IGNORECASE)
# "---- On ... wrote ----" (Zoho) and other attributions framed by dashes.
_FRAMED = re.compile(r"-{2,}\s*(.+?)\s*-{2,}")

_ORIGINAL_PHRASES = (
    "original message|ursprüngliche nachricht|originalnachricht|mensaje original|"
    "message d'origine|message original|messaggio originale|oorspronkelijk bericht|"
    "origineel bericht|originalmeddelande|ursprungligt meddelande|oprindelig besked|"
    "opprinnelig melding|alkuperäinen viesti|wiadomość oryginalna|oryginalna wiadomość|"
    "původní zpráva|исходное сообщение|оригинальное сообщение|元のメッセージ|元のメール|"
    "原始邮件|原始郵件|원본 메시지|mensagem original|eredeti üzenet|orijinal mesaj|αρχικό μήνυμα"
)
_FORWARD_PHRASES = (
    "forwarded message|forward message|weitergeleitete nachricht|message transféré|"
    "mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|vidarebefordrat meddelande|"
    "videresendt meddelelse|videresendt melding|välitetty viesti|przekazana wiadomość|"
    "přeposlaná zpráva|пересылаемое сообщение|пересланное сообщение|転送メッセージ|"
    "転送されたメッセージ|转发的邮件|轉寄的郵件|전달된 메시지|mensagem encaminhada|"
    "továbbított üzenet|iletilen mesaj"
)
_ORIGINAL_RE = re.compile(rf"[-=_*\s]*-{{2,}}\s*(?:{_ORIGINAL_PHRASES})\s*-{{2,}}[-=_*\s]*", re.I)
_FORWARD_RE = re.compile(
    rf"[-=_*\s]*-{{2,}}\s*(?:{_FORWARD_PHRASES})\s*-{{2,}}[-=_*\s]*|"
    r"(?:begin forwarded message|anfang der weitergeleiteten nachricht|"
    r"début du message réexpédié|inicio del mensaje reenviado|inizio messaggio inoltrato|"
    r"転送されたメッセージ|转发的邮件|以下のメッセージを転送します)\s*:?",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(r"(?:fwd?|fw|wg|tr|rv|i|enc|vs|转发|轉寄|転送)\s*[:：]", re.I)

# Outlook-style header blocks, by the meaning of each key.
_HEADER_KEYS: dict[str, frozenset[str]] = {
    "from": frozenset(
        "from von de van da från fra frá od от kimden lähettäjä feladó 差出人 送信者 发件人 "
        "發件人 寄件者 寄件人 보낸사람 mittente expéditeur remitente absender afzender avsändare "
        "nadawca odesílatel відправник αποστολέας".split()
    ),
    "date": frozenset(
        "sent date gesendet datum envoyé envoyéle dated'envoi enviado enviadoel fecha data "
        "inviato verzonden skickat sendt dato wysłano datawysłania отправлено дата gönderildi "
        "tarih lähetetty päivämäärä elküldve dátum odesláno 送信日時 送信日 日付 日時 发送时间 "
        "發送時間 寄件日期 时间 時間 日期 보낸날짜 날짜 messagedu sentat enviadaem "
        "enviadoem".split()
    ),
    "to": frozenset(
        "to an à a para aan till til do кому kime vastaanottaja címzett komu 宛先 收件人 收件者 "
        "받는사람 cc kopie copieà copia kopia копия 抄送 副本 참조 bcc reply-to risposta "
        "antwortan répondreà respondera".split()
    ),
    "subject": frozenset(
        "subject betreff objet sujet asunto oggetto onderwerp ämne emne temat тема konu aihe "
        "tárgy předmět 件名 主题 主旨 主題 제목 θέμα assunto".split()
    ),
}
_HEADER_LINE = re.compile(r"\*?\s*(?P<key>[^\s:*][^:*]{0,24}?)\s*\*?\s*:\s*(?P<value>.*)")
_HEADER_BLOCK_LINES = 8


# The first line of our own notifications to agents (templates/mail/*.txt): when an agent's
# mailer pastes one without any marker, it starts there. tests/test_mail_reply.py renders the
# real templates to keep this true.
def _is_own_opening(norm: str) -> bool:
    text = norm.rstrip("。")
    if text == "新しいお問い合わせが届きました":
        return True
    if text.endswith("から返信がありました") and "様" in text:
        return True  # "山田 花子 様(hanako@example.jp)から返信がありました。"
    # "someone@example.com から、このチケットに未確認のメールが届きました(メッセージ番号 8)"
    if "このチケットに未確認のメールが届きました" in text:
        return True
    # "担当者用の返信先に、担当者として登録されていないアドレス ... からメールが届きました"
    return text.startswith("担当者用の返信先に") and "メールが届きました" in text


# Signatures and mobile footers.
_SIG_DASHES_RE = re.compile(r"--\s*")
_MOBILE_RES = (
    re.compile(r"sent from (?:my )?\S.{0,40}", re.IGNORECASE),
    re.compile(r"get \[?outlook for \S.{0,60}", re.IGNORECASE),
    re.compile(
        r"(?:envoyé|gesendet|enviado|inviato|verzonden|sendt|skickat|wysłane|отправлено|"
        r"odesláno|lähetetty|sent|sendt)\s+(?:depuis|de|à partir de|von|desde|da|dal|met|fra|"
        r"från|z|с|ze|with|via|by)\s\S.{0,50}",
        re.IGNORECASE,
    ),
    re.compile(r"(?:von meinem|diese nachricht wurde von meinem)\s.{1,60}gesendet\.?", re.I),
    re.compile(r"(?:從|从)我的\s*.{1,20}(?:傳送|发送)|.{1,20}에서 보냄", re.IGNORECASE),
    re.compile(r"<<sent by .{1,30}>>|\(sent from .{1,30}\)", re.IGNORECASE),
    re.compile(
        r".{0,30}(?:iphone|ipad|android|gmail|outlook|yahoo|携帯|スマートフォン|スマホ|mail)"
        r".{0,15}(?:から|より)送信(?:しました)?。?",
        re.IGNORECASE,
    ),
)
_SEPARATOR_RE = re.compile(r"([━─\-=_~*・―—■□◆◇●○★☆])\1{4,}.*")
_UNDERSCORE_RULE = re.compile(r"_{5,}")
_RULE_ABOVE_HEADERS = re.compile(r"([━─\-=_~*―—])\1{2,}")
_CONTACT_RE = re.compile(
    r"株式会社|有限会社|合同会社|\(株\)|\(有\)|inc\.|co\.,?\s*ltd|llc|"
    r"tel|fax|phone|電話|携帯|mail|メール|〒|住所|url|https?://|www\.|"
    r"\d{2,4}-\d{2,4}-\d{3,4}",
    re.IGNORECASE,
)
# Quote prefixes: ">" (NFKC folds "＞"), supercite's "AB>"; "|" only below an attribution.
_QUOTE_RE = re.compile(r"\s*(?:>|[A-Za-z]{1,3}>(?=\s|$))")
_BAR_QUOTE_RE = re.compile(r"\s*\|")

# Work is linear, but a reply is never this long (the helpdesk keeps 5,000 characters of it):
# longer input is cut first, so the time stays bounded too.
MAX_REPLY_CHARS = 1_000_000
_MAX_ATTRIBUTION = 300  # longer lines are text (and regex work stays small)
_VERB_TAIL = 40  # the verb ends an attribution: only the last characters are searched
_MAX_ATTRIBUTION_LINES = 4  # Gmail wraps a long attribution over 2-3 lines
_MAX_SIGNATURE_LINES = 12
_MAX_SIGNATURE_LINE = 60
_MAX_FOOTER_LINES = 4
_WRAPPED_QUOTE = 60  # a quoted line this long was probably wrapped by the mailer


# -- one line ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lines:
    raw: list[str]
    norm: list[str]  # NFKC, stripped

    @classmethod
    def of(cls, raw: list[str]) -> _Lines:
        return cls(raw, [_nfkc(line).strip() for line in raw])

    def __len__(self) -> int:
        return len(self.raw)

    def next_filled(self, index: int) -> int:
        while index < len(self.norm) and not self.norm[index]:
            index += 1
        return index


def _is_quote(norm: str, *, bars: bool = False) -> bool:
    if _QUOTE_RE.match(norm):
        return True
    return bars and _BAR_QUOTE_RE.match(norm) is not None


def _is_separator(norm: str) -> bool:
    return _SEPARATOR_RE.fullmatch(norm) is not None


def _header_key(norm: str) -> str | None:
    """The meaning ("from", "date", "to", "subject") of a "Key: value" line, if known."""
    match = _HEADER_LINE.match(norm)
    if not match:
        return None
    key = re.sub(r"\s+", "", match["key"]).casefold()
    for meaning, keys in _HEADER_KEYS.items():
        if key in keys:
            return meaning
    return None


def _is_attribution(text: str) -> bool:
    """A complete attribution line (after joining wrapped lines)."""
    if not text or len(text) > _MAX_ATTRIBUTION:
        return False
    framed = _FRAMED.fullmatch(text) if text.endswith("--") else None
    if framed:
        inner = framed[1]
        if _WROTE_AT_END_NO_COLON.search(inner[-_VERB_TAIL:]) and (
            _DATE.search(inner) or _ADDRESS.search(inner)
        ):
            return True
    # Every other attribution ends with a colon or with the verb: cheap checks first.
    colon = text.endswith(":")
    verb_at_end = _WROTE_AT_END_NO_COLON.search(text[-_VERB_TAIL:]) is not None
    if not (colon or verb_at_end):
        return False
    has_date = _DATE.search(text) is not None
    has_address = _ADDRESS.search(text) is not None
    if colon and verb_at_end and (has_date or has_address):
        return True
    opener = _OPENER.match(text) is not None
    if opener and has_date and verb_at_end:
        return True  # "On Wed, 14 Nov 2018 08:14:43 -0200 John <j@d.com> wrote"
    if colon and has_address and (has_date or opener):
        if _WROTE_ANYWHERE.search(text):
            return True  # "Max <m@x.de> schrieb am Fr., 28. Apr. 2017 um 11:53 Uhr:"
        if has_date and text[:-1].rstrip().endswith(">"):
            return True  # Gmail (ja): "2026年11月24日(火) 15:00 山田 <a@b.jp>:"
    return False


def _can_start_attribution(norm: str) -> bool:
    return bool(
        _OPENER.match(norm)
        or _DATE.search(norm)
        or _ADDRESS.search(norm)
        or norm.endswith(("(", "<"))
    )


def _attribution_length(lines: _Lines, index: int) -> int:
    """How many lines an attribution starting at ``index`` spans (0: none)."""
    first = lines.norm[index]
    if _is_attribution(first):
        return 1
    if len(first) > _MAX_ATTRIBUTION or not _can_start_attribution(first):
        return 0
    # Blank lines inside the attribution only after an explicit opener ("On ..."), and only
    # before a piece of the address ("<", "mailto:...", "> wrote:").
    blanks_ok = _OPENER.match(first) is not None
    parts = [first]
    position = index + 1
    after_blank = False
    while position < len(lines) and len(parts) < _MAX_ATTRIBUTION_LINES:
        following = lines.norm[position]
        if not following:
            if not blanks_ok or position - index > 2 * _MAX_ATTRIBUTION_LINES:
                return 0
            after_blank = True
            position += 1
            continue
        if after_blank and not _FRAGMENT_START.match(following):
            return 0
        if _is_attribution(following) and not _ADDRESS_START.match(following):
            return 0  # a whole attribution below: the lines above it are the writer's
        parts.append(following)
        position += 1
        after_blank = False
        joined = " ".join(parts)
        if len(joined) > _MAX_ATTRIBUTION:
            return 0
        if _is_attribution(joined) or (len(parts) > 1 and _is_attribution("".join(parts))):
            return position - index
    return 0


def _loose_attribution(norm: str) -> bool:
    """An attribution of an unknown client: trusted only directly above a quote block."""
    if not norm or len(norm) > _MAX_ATTRIBUTION:
        return False
    if norm.endswith(":"):
        return bool(
            _WROTE_ANYWHERE.search(norm)
            or _ADDRESS.search(norm)
            or (_DATE.search(norm) and len(norm) <= 100)
        )
    # Old Gmail: "2013/7/20 sam via Discourse Meta <info@discourse.org>"
    return bool(_DATE.match(norm)) and norm.endswith(">") and "@" in norm


def _header_block(lines: _Lines, index: int) -> int:
    """Lines of an Outlook-style header block starting at ``index`` (0: none)."""
    meanings: set[str] = set()
    position = index
    first = _header_key(lines.norm[index])
    if first is None:
        return 0
    while position < len(lines) and position - index < _HEADER_BLOCK_LINES:
        norm = lines.norm[position]
        if not norm:
            break
        meaning = _header_key(norm)
        if meaning is not None:
            meanings.add(meaning)
        position += 1
    if "from" in meanings and len(meanings) >= 3:
        return position - index
    return 0


def _is_forward_block(lines: _Lines, index: int, length: int) -> bool:
    for norm in lines.norm[index : index + length]:
        match = _HEADER_LINE.match(norm)
        if match and _header_key(norm) == "subject" and _FORWARD_SUBJECT.match(match["value"]):
            return True
    return False


def _is_signature_marker(norm: str) -> bool:
    if _SIG_DASHES_RE.fullmatch(norm):
        return True
    return any(pattern.fullmatch(norm) for pattern in _MOBILE_RES)


# -- markers of appended history --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Marker:
    kind: str  # "attribution", "loose", "header", "original", "forward", "own"
    length: int


def _marker(lines: _Lines, index: int) -> _Marker | None:
    norm = lines.norm[index]
    if len(norm) <= _MAX_ATTRIBUTION:
        if _FORWARD_RE.fullmatch(norm):
            return _Marker("forward", 1)
        if _ORIGINAL_RE.fullmatch(norm):
            return _Marker("original", 1)
        if _is_own_opening(norm):
            return _Marker("own", 1)
    length = _attribution_length(lines, index)
    if length:
        return _Marker("attribution", length)
    length = _header_block(lines, index)
    if length:
        kind = "forward" if _is_forward_block(lines, index, length) else "header"
        return _Marker(kind, length)
    if _loose_attribution(norm):
        following = lines.next_filled(index + 1)
        if following < len(lines) and _is_quote(lines.norm[following], bars=True):
            return _Marker("loose", 1)
    return None


def _quote_block_end(lines: _Lines, start: int, *, bars: bool) -> int:
    """The first line after the quote block starting at ``start``.

    Blank lines between quoted lines belong to the block; an unquoted line wedged between two
    quoted lines, starting in lower case right under a long quoted line, is the rest of a quoted
    line the mailer wrapped (never a word of the writer's: answers start their own line).
    """
    position = start
    while position < len(lines):
        norm = lines.norm[position]
        if _is_quote(norm, bars=bars):
            position += 1
            continue
        if not norm:
            following = lines.next_filled(position)
            if following < len(lines) and _is_quote(lines.norm[following], bars=bars):
                position = following
                continue
            return position
        previous = lines.norm[position - 1] if position > start else ""
        below = lines.norm[position + 1] if position + 1 < len(lines) else ""
        if (
            norm[:1].islower()
            and norm[:1].isascii()
            and len(previous) >= _WRAPPED_QUOTE
            and _is_quote(previous, bars=bars)
            and _is_quote(below, bars=bars)
        ):
            position += 1
            continue
        return position
    return position


def _after_forward_headers(lines: _Lines, start: int) -> int:
    """Where the forwarded text starts: after the header lines that follow a forward marker."""
    position = lines.next_filled(start)
    if position < len(lines) and _header_key(lines.norm[position]) is not None:
        while position < len(lines) and lines.norm[position]:
            position += 1
    return position


def _has_text(kept: list[str]) -> bool:
    return any(line.strip() for line in kept)


def _drop_rule_above(kept: list[str]) -> None:
    """Outlook puts a "________" rule (or "=====") above its header block: it goes too."""
    end = len(kept)
    while end and not kept[end - 1].strip():
        end -= 1
    if end and _RULE_ABOVE_HEADERS.fullmatch(_nfkc(kept[end - 1]).strip()):
        del kept[end - 1 :]


def _is_header_material(paragraph: list[str]) -> bool:
    """Whether every line of a paragraph is what mailers put above a quote: a "who and
    when" line (an address or a date), a "Key: value" header, or a header key alone on its
    line with its value below (Lotus Notes: 「宛先」 then 「佐藤 <sato@...>」)."""
    index = 0
    while index < len(paragraph):
        norm = paragraph[index]
        if len(norm) > _MAX_ATTRIBUTION:
            return False
        if _header_key(norm) is not None or "@" in norm or _DATE.search(norm):
            index += 1
        elif _header_key(f"{norm}:") is not None and index + 1 < len(paragraph):
            index += 2
        else:
            return False
    return True


def _drop_header_material_above(kept: list[str]) -> None:
    """Our own notification pasted below the writer's text is quoted history: so are the
    paragraphs right above it that hold only its attribution or header lines, in any
    client's layout ("COCO case <a@b.jp> 2026/11/24 15:00", Lotus Notes' key-per-line
    block). The writer's own paragraphs stop the walk."""
    end = len(kept)
    while True:
        while end and not kept[end - 1].strip():
            end -= 1
        start = end
        while start and kept[start - 1].strip():
            start -= 1
        paragraph = [_nfkc(line).strip() for line in kept[start:end]]
        if not paragraph or not _is_header_material(paragraph):
            break
        del kept[start:]
        end = start


def _strip_history(lines: _Lines) -> list[str]:
    kept: list[str] = []
    index = 0
    while index < len(lines):
        norm = lines.norm[index]
        if not norm:
            kept.append(lines.raw[index])
            index += 1
            continue
        if _is_quote(norm):
            index = _quote_block_end(lines, index, bars=False)
            if kept and not kept[-1].strip():
                index = lines.next_filled(index)  # no double blank line where the quote was
            continue
        marker = _marker(lines, index)
        if marker is not None:
            after = lines.next_filled(index + marker.length)
            quoted_below = after < len(lines) and _is_quote(lines.norm[after], bars=True)
            if marker.kind in ("attribution", "loose") and quoted_below:
                # Quoted history: the attribution and its quote go; text below is the writer's.
                index = _quote_block_end(lines, after, bars=True)
                if kept and not kept[-1].strip():
                    index = lines.next_filled(index)
                continue
            if marker.kind == "attribution" and not _has_text(kept):
                # An attribution on top of unquoted text, nothing written above it: the text
                # is the writer's (some clients quote this way); only the attribution goes.
                index += marker.length
                continue
            if marker.kind == "forward" and not _has_text(kept):
                # Only a forward: the forwarded text is what the writer sent.
                start = _after_forward_headers(lines, index + marker.length)
                rest = _Lines(lines.raw[start:], lines.norm[start:])
                return _strip_history(rest)
            if marker.kind in ("header", "forward", "original"):
                _drop_rule_above(kept)
            if marker.kind == "own":
                _drop_header_material_above(kept)
            break  # unquoted history: everything from here on
        if _is_signature_marker(norm):
            break
        kept.append(lines.raw[index])
        index += 1
    return kept


# -- signatures -------------------------------------------------------------------------------


def _is_signature_line(norm: str) -> bool:
    if _is_separator(norm):
        return True
    return len(norm) <= _MAX_SIGNATURE_LINE and not norm.endswith(("。", "?"))


def _signature_start(lines: list[str]) -> int | None:
    """Where a trailing signature block begins: a rule, then a name/company block with contact
    details (``━━━━━`` style), or an underscore rule with a short footer under it."""
    norms = [_nfkc(line).strip() for line in lines]
    filled = [index for index, norm in enumerate(norms) if norm]
    first = filled[-_MAX_SIGNATURE_LINES - 1] if len(filled) > _MAX_SIGNATURE_LINES else 0
    for index in range(first, len(lines)):
        if not _is_separator(norms[index]):
            continue
        block = [other for other in norms[index + 1 :] if other]
        if len(block) > _MAX_SIGNATURE_LINES:
            continue
        if not all(_is_signature_line(other) for other in block):
            continue
        if not block or any(_CONTACT_RE.search(other) for other in block):
            return index
        if _UNDERSCORE_RULE.fullmatch(norms[index]) and len(block) <= _MAX_FOOTER_LINES:
            return index  # "________" + a mailing-list footer or a short signature
    # A short underscore rule ("__") over a footer with an address or a link.
    for index in range(first, len(lines)):
        if re.fullmatch(r"_{2,}", norms[index]):
            block = [other for other in norms[index + 1 :] if other]
            if (
                0 < len(block) <= _MAX_FOOTER_LINES
                and all(_is_signature_line(other) or "://" in other for other in block)
                and any(_CONTACT_RE.search(other) for other in block)
            ):
                return index
    return None


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def strip_quoted(text: str) -> str:
    """Keep only the new text of a reply: drop the quoted history, forwarded headers and
    the signature.

    Knows attribution lines in Japanese, English, Chinese, Korean, French, German, Spanish,
    Italian, Portuguese, Dutch, Russian, Polish and more (also wrapped over several lines and
    Zoho's ``---- On ... wrote ----``), Outlook header blocks and "Original Message" /
    "Forwarded message" rules in the same languages, ``>`` / ``＞`` quotes (also single quoted
    lines between new text), our own notifications pasted without a marker, ``-- ``
    signatures, "Sent from my iPhone" style footers and signature blocks under a rule. Text
    below a quote is kept; a mail that is only a forward keeps the forwarded text. Leading and
    trailing blank lines are removed; an all-quoted reply gives ``""``. Only the first
    ``MAX_REPLY_CHARS`` characters are read.
    """
    text = text[:MAX_REPLY_CHARS].removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    kept = _trim(_strip_history(_Lines.of(text.split("\n"))))
    signature = _signature_start(kept)
    if signature is not None:
        kept = _trim(kept[:signature])
    return "\n".join(kept)
