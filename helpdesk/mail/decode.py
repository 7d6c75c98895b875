"""Inbound e-mail decoding that does not mangle Japanese mail.

The stdlib ``email`` package splits the message into parts and undoes the
transfer encodings; everything about *characters* is done here, because the
stdlib's codecs get Japanese mail wrong in several ways:

* ISO-2022-JP as sent by Windows mailers (CP50220/CP50221, "ISO-2022-JP-MS")
  carries NEC row 13 (① ㈱ № ≒ ∵ Ⅰ) and the NEC-selected IBM extensions
  (髙 﨑 ⅰ) inside ``ESC $ B``; Python's ``iso2022_jp`` codec rejects them.
  :func:`decode_bytes` converts every two-byte JIS code to Shift_JIS
  arithmetically and reads it with ``cp932``, so those survive.  JIS X 0212
  (``ESC $ ( D``, ISO-2022-JP-1) is read through ``euc_jp``'s ``0x8F`` plane,
  with the IBM extensions ISO-2022-JP-MS puts in rows 0x73-0x74 as a
  fallback; half-width katakana (``ESC ( I``) and JIS X 0213
  (``ESC $ ( O/Q/P``, through ``euc_jis_2004``) are handled too.
* Mail labelled ``Shift_JIS`` is in practice CP932, and ``Windows-31J`` is
  CP932 under its IANA name; all Shift_JIS labels are read as ``cp932``.
* EUC-JP is tried as ``euc_jp`` first; when that fails every character is read
  on its own: JIS X 0208 through CP932 (so eucJP-ms/CP51932's NEC row 13 and
  IBM extensions survive), then JIS X 0213 through ``euc_jis_2004``, JIS X 0212
  through ``euc_jp`` and eucJP-ms' IBM extensions from ``0x8FF3F3``.
* The same JIS code decodes to different code points under the JIS and the
  Microsoft mappings.  :func:`normalize_japanese` folds them into ONE canonical
  form, the Microsoft (full-width) one, because that is what most Japanese
  customers' PCs and phones type and what Windows-made mail decodes to:

  =============================  ==========================
  JIS mapping / elsewhere         canonical (Microsoft)
  =============================  ==========================
  U+301C 〜 WAVE DASH             U+FF5E ～ FULLWIDTH TILDE
  U+2212 − MINUS SIGN             U+FF0D － FULLWIDTH HYPHEN-MINUS
  U+2016 ‖ DOUBLE VERTICAL LINE   U+2225 ∥ PARALLEL TO
  U+00A2 ¢ / U+00A3 £ / U+00AC ¬  U+FFE0 ￠ / U+FFE1 ￡ / U+FFE2 ￢
  U+2014 — EM DASH                U+2015 ― HORIZONTAL BAR
  =============================  ==========================

  The folding is applied to all decoded text (whatever its charset), so a
  UTF-8 mail from a Mac and an ISO-2022-JP mail from Windows containing the
  "same" 〜 compare equal.  The price: a ``£`` or an em dash in an English
  mail also becomes its full-width/Japanese counterpart.
* RFC 2047 encoded words are joined per charset *as bytes* before decoding,
  so a multibyte character split across two words survives; bad base64
  padding, unknown charsets and raw 8-bit header bytes are decoded by
  detection (UTF-8, then ISO-2022-JP when there are escape sequences, then
  CP932 / EUC-JP, whichever decodes cleanly and looks most like Japanese).

No function here produces U+FFFD while any known codec can decode the bytes;
when none can, the best candidate is decoded with ``errors="replace"``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import contextlib
import contextvars
import dataclasses
import email.utils
import html as html_module
import multiprocessing
import re
import resource
import threading
import unicodedata
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser, HeaderParser
from functools import cache
from io import BytesIO
from types import MappingProxyType
from typing import NamedTuple

from helpdesk.mail.emoji_sources import carrier_emoji

__all__ = [
    "Attachment",
    "DeliveryStatus",
    "MailParseError",
    "ParsedMail",
    "decode_bytes",
    "decode_header_value",
    "html_to_text",
    "normalize_japanese",
    "parse_message",
    "parse_message_async",
]


class MailParseError(ValueError):
    """The input is not an e-mail message at all (empty, or no header block)."""


# What parse_message knows about the whole mail while it decodes one part or header:
# the sender's mobile carrier (whose emoji codes to read) and the charset the mail declares
# somewhere (read a raw 8-bit header in it before guessing). Context variables, so
# parse_message stays safe to run in several threads at once.
_CARRIER: contextvars.ContextVar[str | None] = contextvars.ContextVar("carrier", default=None)
_DECLARED: contextvars.ContextVar[str | None] = contextvars.ContextVar("declared", default=None)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None


class DeliveryStatus(NamedTuple):
    """One per-recipient block of a ``message/delivery-status`` part."""

    recipient: str
    action: str
    status: str


@dataclass(frozen=True)
class ParsedMail:
    subject: str
    from_address: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime | None
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    headers: Mapping[str, str]
    auto_submitted: str | None = None
    precedence: str | None = None
    is_delivery_report: bool = False
    delivery_status: tuple[DeliveryStatus, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------

_CANONICAL = str.maketrans(
    {
        "\u301c": "\uff5e",  # 〜 WAVE DASH -> ～ FULLWIDTH TILDE
        "\u2212": "\uff0d",  # − MINUS SIGN -> － FULLWIDTH HYPHEN-MINUS
        "\u2016": "\u2225",  # ‖ DOUBLE VERTICAL LINE -> ∥ PARALLEL TO
        "\u00a2": "\uffe0",  # ¢ -> ￠
        "\u00a3": "\uffe1",  # £ -> ￡
        "\u00ac": "\uffe2",  # ¬ -> ￢
        "\u2014": "\u2015",  # — EM DASH -> ― HORIZONTAL BAR
    }
)


def normalize_japanese(text: str) -> str:
    """Fold the JIS-vs-Microsoft mapping differences into the Microsoft form.

    See the module docstring for the table.  Only those seven code points are
    touched; no NFC/NFKC is applied here.
    """
    return text.translate(_CANONICAL)


# --------------------------------------------------------------------------
# Charset labels
# --------------------------------------------------------------------------

_CP932 = "cp932"
_ISO2022JP = "iso-2022-jp"
_EUCJP = "euc-jp"
_UTF8 = "utf-8"
_ASCII = "ascii"

_LABELS: dict[str, str] = {}
for _name in (
    "shift-jis sjis s-jis x-sjis shift-jisx0213 shift-jis-2004 windows-31j ms932 cp932 "
    "ms-kanji csshiftjis cswindows31j x-ms-cp932 ibm-943 ibm943 windows-932 sjis-open sjis-win"
).split():
    _LABELS[_name] = _CP932
for _name in (
    "iso-2022-jp iso-2022-jp-ms csiso2022jp iso-2022-jp-1 iso-2022-jp-2 iso-2022-jp-3 "
    "iso-2022-jp-2004 iso-2022-jp-ext iso2022jp jis jis7 cp50220 cp50221 cp50222 "
    "x-iso-2022-jp csiso2022jp2"
).split():
    _LABELS[_name] = _ISO2022JP
for _name in (
    "euc-jp x-euc-jp eucjp eucjp-ms euc-jp-ms cseucpkdfmtjapanese euc-jis-2004 "
    "euc-jisx0213 cp51932 x-euc ujis eucjp-open eucjp-win"
).split():
    _LABELS[_name] = _EUCJP
for _name in "utf-8 utf8 unicode-1-1-utf-8 x-unicode20utf8".split():
    _LABELS[_name] = _UTF8
for _name in "us-ascii ascii ansi-x3.4-1968 iso646-us us csascii 7bit 8bit".split():
    _LABELS[_name] = _ASCII
_LABELS.update(
    {
        "gb2312": "gb18030",
        "gbk": "gb18030",
        "x-gbk": "gb18030",
        "euc-cn": "gb18030",
        "ks-c-5601-1987": "cp949",
        "euc-kr": "cp949",
        "ks-c-5601": "cp949",
        "big5": "cp950",
        "tis-620": "cp874",
        "iso-8859-1": "latin-1",
        "latin1": "latin-1",
        "windows-1252": "cp1252",
    }
)
_LATIN_LIKE = {"latin-1", "cp1252"}


def _codec_for(charset: str | None) -> str | None:
    """The codec to use for a charset label, or None when it is unknown."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").split("*", 1)[0].strip().lower().replace("_", "-")
    if not label:
        return None
    if label in _LABELS:
        return _LABELS[label]
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    name = info.name
    # Python knows these, but the custom decoders do the job better.
    if name in {"shift_jis", "shift_jis_2004", "shift_jisx0213", "cp932"}:
        return _CP932
    if name.startswith("iso2022_jp"):
        return _ISO2022JP
    if name in {"euc_jp", "euc_jis_2004", "euc_jisx0213"}:
        return _EUCJP
    if name == "utf-8":
        return _UTF8
    if name == "ascii":
        return _ASCII
    if name in {"latin_1", "iso8859-1"}:
        return "latin-1"
    return name


# --------------------------------------------------------------------------
# JIS code arithmetic and the Japanese decoders
# --------------------------------------------------------------------------


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    """Shift a JIS code (both bytes 0x21-0x7E) to its Shift_JIS/CP932 bytes."""
    s1 = ((j1 + 1) >> 1) + 0x70
    if s1 >= 0xA0:
        s1 += 0x40
    if j1 & 1:
        s2 = j2 + 0x1F
        if s2 >= 0x7F:
            s2 += 1
    else:
        s2 = j2 + 0x7E
    return bytes((s1, s2))


def _sjis_trail_bytes() -> list[int]:
    return [*range(0x40, 0x7F), *range(0x80, 0xFD)]


@cache
def _ibm_extensions() -> tuple[str, ...]:
    """The 106 IBM extensions that neither JIS X 0208 (read as CP932) nor JIS X 0212 has.

    In CP932 order, as eucJP-ms and ISO-2022-JP-MS lay them out (eucJP-ms counts
    U+FFE4 as JIS X 0212's broken bar and U+2116 as one of these).
    """
    jis0208: set[str] = set()
    jis0212: set[str] = set()
    for j1 in range(0x21, 0x7F):
        for j2 in range(0x21, 0x7F):
            euc = bytes((j1 | 0x80, j2 | 0x80))
            try:
                euc.decode("euc_jp")
            except UnicodeDecodeError:
                pass
            else:
                jis0208.add(_jis_to_sjis(j1, j2).decode(_CP932))
            with contextlib.suppress(UnicodeDecodeError):
                jis0212.add((b"\x8f" + euc).decode("euc_jp"))
    elsewhere = jis0208 | ((jis0212 | {"\uffe4"}) - {"\u2116"})
    found: list[str] = []
    for s1 in (0xFA, 0xFB, 0xFC):
        for s2 in _sjis_trail_bytes():
            try:
                char = bytes((s1, s2)).decode(_CP932)
            except UnicodeDecodeError:
                continue
            if char not in elsewhere:
                found.append(char)
    return tuple(found)


@cache
def _eucjp_ms_g3() -> dict[tuple[int, int], str]:
    """eucJP-ms: the IBM extensions at 0x8FF3F3-0x8FF4FE (JIS 0x7373-0x747E)."""
    start = (0x73 - 0x21) * 94 + (0x73 - 0x21)
    table: dict[tuple[int, int], str] = {}
    for index, char in enumerate(_ibm_extensions()):
        pos = start + index
        table[(0x21 + pos // 94, 0x21 + pos % 94)] = char
    return table


@cache
def _iso2022jp_ms_g3() -> dict[tuple[int, int], str]:
    """ISO-2022-JP-MS (as GNU libiconv has it): IBM extensions from JIS X 0212 0x7321."""
    row_13 = set()
    for s2 in _sjis_trail_bytes():
        try:
            row_13.add(bytes((0x87, s2)).decode(_CP932))
        except UnicodeDecodeError:
            continue
    table: dict[tuple[int, int], str] = {}
    for index, char in enumerate(_ibm_extensions()):
        if char in row_13 or char == "\u663b":
            continue
        code = (0x74, 0x63) if char == "\u974d" else (0x73 + index // 94, 0x21 + index % 94)
        table[code] = char
    return table


def _x0208_pair(j1: int, j2: int) -> str | None:
    """A JIS X 0208 code (plus NEC/IBM rows as CP932 has them, and JIS X 0213 plane 1)."""
    try:
        return _jis_to_sjis(j1, j2).decode(_CP932)
    except UnicodeDecodeError:
        pass
    try:
        return bytes((j1 | 0x80, j2 | 0x80)).decode("euc_jis_2004")
    except UnicodeDecodeError:
        return None


def _x0212_pair(j1: int, j2: int, *, eucjp_ms: bool) -> str | None:
    try:
        return bytes((0x8F, j1 | 0x80, j2 | 0x80)).decode("euc_jp")
    except UnicodeDecodeError:
        pass
    table = _eucjp_ms_g3() if eucjp_ms else _iso2022jp_ms_g3()
    found = table.get((j1, j2))
    if found is None and not eucjp_ms:
        found = _eucjp_ms_g3().get((j1, j2))
    return found


def _x0213_pair(j1: int, j2: int, *, plane: int) -> str | None:
    prefix = b"\x8f" if plane == 2 else b""
    try:
        return (prefix + bytes((j1 | 0x80, j2 | 0x80))).decode("euc_jis_2004")
    except UnicodeDecodeError:
        return None


class _Fail(Exception):
    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


_ESCAPES: dict[bytes, str] = {
    b"\x1b(B": "ascii",
    b"\x1b(J": "ascii",  # JIS X 0201 Roman: treated as ASCII (¥ ‾ vs \ ~)
    b"\x1b(H": "ascii",
    b"\x1b(I": "kana",
    b"\x1b$@": "x0208",
    b"\x1b$B": "x0208",
    b"\x1b$(B": "x0208",
    b"\x1b&@": "",  # JIS X 0208-1990 announcer, followed by ESC $ B
    b"\x1b$(D": "x0212",
    b"\x1b$(O": "x0213-1",
    b"\x1b$(Q": "x0213-1",
    b"\x1b$(P": "x0213-2",
    b"\x1b$A": "gb2312",
    b"\x1b$(C": "ksc5601",
}


# au (KDDI) sends its emoji in ISO-2022-JP mail as JIS codes in rows 0x75-0x7C; shifted to
# Shift_JIS (0xEB40-0xEEFC) and moved to KDDI's own emoji rows they are the codes Unicode's
# EmojiSources.txt maps to Unicode emoji.
_AU_LEAD = {0xEB: 0xF6, 0xEC: 0xF7, 0xED: 0xF3, 0xEE: 0xF4}
_AU_ROWS_ALWAYS = range(0x75, 0x79)  # not JIS X 0208 nor CP932: emoji whoever sent them
_AU_ROWS_FROM_AU = range(0x75, 0x7D)  # 0x79-0x7C are CP932's IBM kanji (髙 﨑) elsewhere


def _au_emoji(j1: int, j2: int) -> str | None:
    rows = _AU_ROWS_FROM_AU if _CARRIER.get() == "au" else _AU_ROWS_ALWAYS
    if j1 not in rows:
        return None
    s1, s2 = _jis_to_sjis(j1, j2)
    return carrier_emoji("kddi", (_AU_LEAD[s1] << 8) | s2)


def _decode_two_byte(state: str, j1: int, j2: int) -> str | None:
    if state == "x0208":
        return _au_emoji(j1, j2) or _x0208_pair(j1, j2)
    if state == "x0212":
        return _x0212_pair(j1, j2, eucjp_ms=False)
    if state == "x0213-1":
        return _x0213_pair(j1, j2, plane=1)
    if state == "x0213-2":
        return _x0213_pair(j1, j2, plane=2)
    codec = "gb2312" if state == "gb2312" else "euc_kr"
    try:
        return bytes((j1 | 0x80, j2 | 0x80)).decode(codec)
    except UnicodeDecodeError:
        return None


def _decode_iso2022jp(data: bytes, *, strict: bool, latin_strays: bool = False) -> str:
    """ISO-2022-JP with the Windows (CP5022x), -1, -2 (CJK sets) and -2004 extensions.

    Lines that forget to switch back to ASCII keep their state, as mailers
    reading this mail do.  au's emoji (rows 0x75-0x7C) become Unicode emoji.
    Raises ``_Fail`` on the first undecodable byte when ``strict``; otherwise
    writes U+FFFD for it and goes on (a stray 8-bit byte is read as CP1252 with
    ``latin_strays``, so it never takes the next letter with it).
    """
    fast = _CARRIER.get() != "au"  # au's rows 0x79-0x7C must not be read as CP932 kanji
    out: list[str] = []
    state = "ascii"
    shifted_out = False  # SO/SI half-width katakana (JIS7)
    i = 0
    n = len(data)
    while i < n:
        byte = data[i]
        if byte == 0x1B:
            for seq, new_state in _ESCAPES.items():
                if data.startswith(seq, i):
                    if new_state:
                        state = new_state
                    i += len(seq)
                    break
            else:
                if strict:
                    raise _Fail(i)
                out.append("\ufffd")
                i += 1
            continue
        if byte == 0x0E:
            shifted_out = True
            i += 1
            continue
        if byte == 0x0F:
            shifted_out = False
            i += 1
            continue
        if byte >= 0x80:
            if strict:
                raise _Fail(i)
            out.append(_latin_byte(byte) if latin_strays else "\ufffd")
            i += 1
            continue
        if byte < 0x21 or byte == 0x7F:
            out.append(chr(byte))
            i += 1
            continue
        if shifted_out or state == "kana":
            out.append(chr(0xFF61 + byte - 0x21) if byte <= 0x5F else chr(byte))
            i += 1
            continue
        if state == "ascii":
            out.append(chr(byte))
            i += 1
            continue
        # Two-byte set: decode the whole run of graphic bytes at once when possible.
        end = i
        while end < n and 0x21 <= data[end] <= 0x7E:
            end += 1
        run = data[i:end]
        if len(run) % 2:
            # A dangling half character: decode what pairs up, then fail/replace it.
            run = run[:-1]
        if state == "x0208" and fast:
            sjis = b"".join(_jis_to_sjis(run[k], run[k + 1]) for k in range(0, len(run), 2))
            try:
                out.append(sjis.decode(_CP932))
                decoded_run = True
            except UnicodeDecodeError:
                decoded_run = False
        else:
            decoded_run = False
        if not decoded_run:
            for k in range(0, len(run), 2):
                char = _decode_two_byte(state, run[k], run[k + 1])
                if char is None:
                    if strict:
                        raise _Fail(i + k)
                    char = "\ufffd"
                out.append(char)
        i += len(run)
        if i < end:  # the odd byte
            if strict:
                raise _Fail(i)
            out.append("\ufffd")
            i += 1
    return "".join(out)


def _latin_byte(byte: int) -> str:
    try:
        return bytes((byte,)).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)


def _decode_eucjp(data: bytes, *, strict: bool) -> str:
    """EUC-JP: ``euc_jp``, else character by character with the CP51932/eucJP-ms extras."""
    try:
        return data.decode("euc_jp")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        byte = data[i]
        char: str | None = None
        width = 1
        if byte < 0x80:
            char = chr(byte)
        elif byte == 0x8E and i + 1 < n and 0xA1 <= data[i + 1] <= 0xDF:
            char = chr(0xFF61 + data[i + 1] - 0xA1)
            width = 2
        elif byte == 0x8F and i + 2 < n and 0xA1 <= data[i + 1] <= 0xFE and data[i + 2] >= 0xA1:
            j1, j2 = data[i + 1] & 0x7F, data[i + 2] & 0x7F
            char = _x0212_pair(j1, j2, eucjp_ms=True) or _x0213_pair(j1, j2, plane=2)
            width = 3
        elif 0xA1 <= byte <= 0xFE and i + 1 < n and 0xA1 <= data[i + 1] <= 0xFE:
            char = _x0208_pair(byte & 0x7F, data[i + 1] & 0x7F)
            width = 2
        if char is None:
            if strict:
                raise _Fail(i)
            char = "\ufffd"
        out.append(char)
        i += width
    return "".join(out)


def _decode_strict(data: bytes, codec: str) -> str | None:
    """Decode with one codec, or None when the bytes are not valid in it."""
    try:
        if codec == _ISO2022JP:
            return _decode_iso2022jp(data, strict=True)
        if codec == _EUCJP:
            return _decode_eucjp(data, strict=True)
        if codec == _UTF8:
            return data.decode("utf-8-sig")
        return data.decode(codec)
    except (_Fail, UnicodeDecodeError, LookupError):
        return None


def _decode_replace(data: bytes, codec: str) -> str:
    if codec == _ISO2022JP:
        return _decode_iso2022jp(data, strict=False)
    if codec == _EUCJP:
        return _decode_eucjp(data, strict=False)
    if codec == _UTF8:
        codec = "utf-8-sig"
    try:
        return data.decode(codec, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------

_TWO_HIGH_BYTES = re.compile(rb"[\x80-\xff]{2}")
_JIS_ESCAPE = re.compile(rb"\x1b(?:\$[@B]|\$\([BDOPQ]|\(I|&@)")


def _japanese_score(text: str) -> float:
    """How much a decoded string looks like real (Japanese) text; higher is better."""
    score = 0.0
    for char in text:
        code = ord(char)
        if code < 0x80:
            if code < 0x20 and char not in "\t\r\n":
                score -= 5
        elif 0x3041 <= code <= 0x309F:  # hiragana
            score += 3
        elif 0x30A0 <= code <= 0x30FF:  # katakana
            score += 2
        elif 0x3000 <= code <= 0x303F or 0xFF01 <= code <= 0xFF5E:
            score += 1.5
        elif 0x4E00 <= code <= 0x9FFF:
            score += 1
        elif 0xFF61 <= code <= 0xFF9F:  # half-width katakana: typical of EUC read as CP932
            score -= 1
        elif 0xE000 <= code <= 0xF8FF or 0x80 <= code <= 0x9F:  # PUA, C1 controls
            score -= 5
        else:
            score -= 0.5
    return score / max(len(text), 1)


def _detect(data: bytes, *, strict: bool) -> str | None:
    """Guess the charset of unlabelled (or mislabelled) bytes."""
    if not data:
        return ""
    if data.isascii():
        if _JIS_ESCAPE.search(data):
            text = _decode_strict(data, _ISO2022JP)
            if text is not None or not strict:
                return text if text is not None else _decode_replace(data, _ISO2022JP)
        return data.decode("ascii")
    text = _decode_strict(data, _UTF8)
    if text is not None:
        return text
    candidates = [
        decoded
        for decoded in (_decode_strict(data, _CP932), _decode_strict(data, _EUCJP))
        if decoded is not None
    ]
    if candidates:
        return max(candidates, key=_japanese_score)
    if not _TWO_HIGH_BYTES.search(data):
        # Only isolated 8-bit bytes: cannot be multibyte Japanese; Latin-1 text such as "café".
        latin = _decode_strict(data, "cp1252")
        return latin if latin is not None else data.decode("latin-1")
    if strict:
        return None
    fallbacks = [_decode_replace(data, codec) for codec in (_UTF8, _CP932, _EUCJP)]
    return min(fallbacks, key=lambda t: (t.count("\ufffd"), -_japanese_score(t)))


def _decode_raw(data: bytes, charset: str | None) -> str:
    codec = _codec_for(charset)
    if (
        codec in {None, _CP932, _EUCJP, _UTF8, _ASCII, *_LATIN_LIKE}
        and data.isascii()
        and _JIS_ESCAPE.search(data)
    ):
        codec = _ISO2022JP  # ISO-2022-JP under a wrong (or no) label
    if codec is None:
        detected = _detect(data, strict=False)
        assert detected is not None
        return detected
    if codec == _ASCII:
        if data.isascii():
            return data.decode("ascii")
        detected = _detect(data, strict=False)
        assert detected is not None
        return detected
    if codec in _LATIN_LIKE and not data.isascii():
        utf8 = _decode_strict(data, _UTF8)
        if utf8 is not None:  # UTF-8 mislabelled as Latin-1: valid UTF-8 is no accident
            return utf8
    text = _decode_strict(data, codec)
    if text is not None:
        return text
    if codec == _ISO2022JP and not _TWO_HIGH_BYTES.search(data):
        # A stray 8-bit byte in 7-bit JIS: an error, not Shift_JIS (whose lead byte would
        # swallow the next letter).
        return _decode_iso2022jp(data, strict=False, latin_strays=True)
    detected = _detect(data, strict=True)
    if detected is not None:
        return detected
    return _decode_replace(data, codec)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode bytes in a (possibly wrong, unknown or missing) charset.

    The label picks the codec (all Shift_JIS labels and Windows-31J -> CP932;
    all ISO-2022-JP labels -> the extended decoder; EUC-JP labels -> the
    EUC-JP decoder; ``us-ascii`` with 8-bit bytes, unknown and missing labels
    -> detection).  When the labelled codec fails, detection is tried, and
    only when nothing decodes cleanly is ``errors="replace"`` used.

    The result is passed through :func:`normalize_japanese`; line endings and
    Unicode normalization are left alone.  Never raises.
    """
    return normalize_japanese(_decode_raw(bytes(data), charset))


# --------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _str_to_bytes(value: str) -> bytes:
    """Bytes of a header string that may carry raw 8-bit bytes as surrogate escapes."""
    return value.encode("utf-8", "surrogateescape")


def _needs_byte_decoding(value: str) -> bool:
    return "\x1b" in value or any("\udc80" <= char <= "\udcff" for char in value)


def _decode_literal(value: str) -> str:
    if _needs_byte_decoding(value):
        # Raw 8-bit header bytes: the charset the mail declares elsewhere comes first.
        return _decode_raw(_str_to_bytes(value), _DECLARED.get())
    return value


def _b_decode(text: str) -> bytes:
    cleaned = re.sub(r"[^A-Za-z0-9+/\-_]", "", text).replace("-", "+").replace("_", "/")
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned)
    except binascii.Error:  # pragma: no cover - cleaned input is always valid
        return b""


def _q_decode(text: str) -> bytes:
    raw = _str_to_bytes(text)
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte == 0x5F:  # "_"
            out.append(0x20)
        elif byte == 0x3D and re.fullmatch(rb"[0-9A-Fa-f]{2}", raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 2
        else:
            out.append(byte)
        i += 1
    return bytes(out)


def _decode_header_raw(value: str) -> str:
    """Decode encoded words and raw bytes in one (unfolded) header value."""
    pieces: list[tuple[str | None, bytes | str]] = []  # (charset, bytes) or (None, literal)
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        literal = value[position : match.start()]
        previous_is_word = bool(pieces) and pieces[-1][0] is not None
        if literal and not (previous_is_word and not literal.strip()):
            pieces.append((None, literal))
        charset, kind, encoded = match.groups()
        data = _b_decode(encoded) if kind in "Bb" else _q_decode(encoded)
        label = charset.split("*", 1)[0].lower()
        if pieces and pieces[-1][0] == label:
            last = pieces[-1][1]
            assert isinstance(last, bytes)
            pieces[-1] = (label, last + data)  # a character may be split across words
        else:
            pieces.append((label, data))
        position = match.end()
    if position < len(value):
        pieces.append((None, value[position:]))
    out: list[str] = []
    for charset, payload in pieces:
        if charset is None:
            assert isinstance(payload, str)
            out.append(_decode_literal(payload))
        else:
            assert isinstance(payload, bytes)
            out.append(_decode_raw(payload, charset))
    return "".join(out)


def _clean_header(text: str) -> str:
    text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    text = _CONTROL.sub("", text).replace("\ufeff", "")
    return unicodedata.normalize("NFC", normalize_japanese(text)).strip()


def decode_header_value(value: str | bytes) -> str:
    """Decode a header value: RFC 2047 words (joined per charset), raw 8-bit bytes, raw JIS.

    Accepts the value as bytes or as a str in which raw 8-bit bytes are
    surrogate escapes (what ``email`` with ``compat32`` hands out).  The result
    is unfolded, NFC, normalized with :func:`normalize_japanese` and stripped.
    Never raises.
    """
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "surrogateescape")
    value = _FOLD.sub("", value)
    return _clean_header(_decode_header_raw(value))


# --------------------------------------------------------------------------
# HTML to text
# --------------------------------------------------------------------------

_BLOCK = frozenset(
    "address article aside dd div dl dt fieldset figcaption figure footer form h1 h2 h3 "
    "h4 h5 h6 header main nav ol p pre section table ul center".split()
)
_SKIP = frozenset("script style head title noscript template svg object iframe".split())


# Bounds that keep the text linear in the HTML (issue 7, finding 1: 40,000 nested
# <blockquote> over 40,000 lines made a 400 MB string when every line carried its full "> "
# prefix). Deeper quotes are shown at this depth; past the size limit the text is cut.
MAX_QUOTE_DEPTH = 8
MAX_HTML_TEXT_CHARS = 1_000_000
_TRUNCATED = "(以下省略)"


class _TextFull(Exception):
    """The converted text reached MAX_HTML_TEXT_CHARS."""


# A tokenizer of our own, linear whatever the input: the stdlib's html.parser rescans the
# rest of the document at every unfinished construct, so "<a" * 200,000 took minutes
# (measured 141 s) and "<!--" repeated longer still. Here a tag ends at the first ">", an
# unclosed comment or declaration ends the document, and each "<" is looked at once.
_TAG_NAME = re.compile(r"(/?)([A-Za-z][A-Za-z0-9:_-]*)")
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?""")
_RAW_TEXT_END = {
    "script": re.compile(r"</script\s*>", re.IGNORECASE),
    "style": re.compile(r"</style\s*>", re.IGNORECASE),
}


def _tokenize(html: str, sink: _HtmlText) -> None:
    position, length = 0, len(html)
    while position < length:
        start = html.find("<", position)
        if start < 0:
            sink.handle_data(html_module.unescape(html[position:]))
            return
        if start > position:
            sink.handle_data(html_module.unescape(html[position:start]))
        if html.startswith("<!--", start):
            end = html.find("-->", start + 4)
            if end < 0:
                return  # an unclosed comment hides the rest, as in browsers
            position = end + 3
            continue
        if html.startswith("<![CDATA[", start):
            end = html.find("]]>", start + 9)
            sink.handle_data(html[start + 9 : end if end >= 0 else length])
            if end < 0:
                return
            position = end + 3
            continue
        name = _TAG_NAME.match(html, start + 1)
        if name is None and not html.startswith(("<!", "<?"), start):
            sink.handle_data("<")  # a "<" that starts no tag is text
            position = start + 1
            continue
        end = html.find(">", start + 1)
        if end < 0:
            sink.handle_data(html_module.unescape(html[start:]))
            return  # no ">" anywhere after: no tag can follow either
        position = end + 1
        if name is None:
            continue  # <!DOCTYPE ...>, <?xml ...?>
        closing, tag = name[1] == "/", name[2].lower()
        if closing:
            sink.handle_endtag(tag)
            continue
        inside = html[name.end() : end]
        attrs = [
            (m[1].lower(), html_module.unescape(m[2] or m[3] or m[4] or ""))
            for m in _ATTRIBUTE.finditer(inside)
        ]
        if inside.rstrip().endswith("/"):
            sink.handle_startendtag(tag, attrs)  # type: ignore[arg-type]
        else:
            sink.handle_starttag(tag, attrs)  # type: ignore[arg-type]
            raw_end = _RAW_TEXT_END.get(tag)
            if raw_end is not None:  # script and style: no tags inside, skipped whole
                found = raw_end.search(html, position)
                if found is None:
                    return
                sink.handle_endtag(tag)
                position = found.end()


_SPACES = re.compile(r"[ \t\r\n\f]+")


class _HtmlText:
    def __init__(self) -> None:
        self.size = 0  # characters in self.lines
        self.lines: list[str] = []
        # The line being written, as pieces (appending to one growing str is quadratic).
        self.pieces: list[str] = []
        self.length = 0
        self.filled = False  # the line has a non-blank character
        self.prefix = ""
        self.blank_lines = 0
        self.blank_depth = 0
        self.skip = 0
        self.pre = 0
        self.quote = 0
        self.links: list[tuple[str, int]] = []

    # -- output ---------------------------------------------------------
    def _add(self, line: str) -> None:
        self.size += len(line) + 1
        if self.size > MAX_HTML_TEXT_CHARS:
            raise _TextFull
        self.lines.append(line)

    def _take_line(self) -> str:
        line = "".join(self.pieces)
        self.pieces, self.length, self.filled = [], 0, False
        return line

    def _end_line(self) -> None:
        filled = self.filled
        line = self._take_line()
        if filled:
            self._add((self.prefix + line).rstrip())

    def _block(self, blank: int = 1) -> None:
        self._end_line()
        self._blank(max(self.blank_lines, blank))

    def _blank(self, count: int) -> None:
        if count and not self.blank_lines:
            self.blank_depth = self.quote
        self.blank_depth = min(self.blank_depth, self.quote)
        self.blank_lines = count

    def _write(self, text: str) -> None:
        if not self.length:
            if not self.pre:
                text = text.lstrip(" ")
            if not text:
                return
            if self.lines and self.blank_lines:
                depth = min(self.blank_depth, self.quote, MAX_QUOTE_DEPTH)
                for _ in range(self.blank_lines):
                    self._add(("> " * depth).rstrip())
            self.blank_lines = 0
            self.prefix = "> " * min(self.quote, MAX_QUOTE_DEPTH)
        self.length += len(text)
        if self.length > MAX_HTML_TEXT_CHARS:
            raise _TextFull
        self.pieces.append(text)
        self.filled = self.filled or not text.isspace()

    # -- parser callbacks -----------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        attributes = dict(attrs)
        if tag == "br":
            if self.filled:
                self._end_line()
            else:
                self._take_line()
                self._blank(min(self.blank_lines + 1, 2) if self.lines else 0)
            return
        if tag == "blockquote":
            self._block(1)
            self.quote += 1
        elif tag == "pre":
            self._block(1)
            self.pre += 1
        elif tag in ("li",):
            self._block(0)
            self._write("・")
        elif tag == "tr":
            self._block(0)
        elif tag in ("td", "th"):
            if self.filled:
                self._write("  ")
        elif tag == "hr":
            self._block(0)
            self._write("-" * 20)
            self._block(0)
        elif tag == "img":
            alt = (attributes.get("alt") or "").strip()
            if alt:
                self._write(f"[{alt}]")
        elif tag == "a":
            self.links.append((attributes.get("href") or "", len(self.pieces), self.length))  # type: ignore[arg-type]
        elif tag in _BLOCK or tag == "p":
            self._block(1 if tag in {"p", "h1", "h2", "h3", "table", "ul", "ol"} else 0)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(self.skip - 1, 0)
            return
        if self.skip:
            return
        if tag == "blockquote":
            self._block(1)
            self.quote = max(self.quote - 1, 0)
        elif tag == "pre":
            self._block(1)
            self.pre = max(self.pre - 1, 0)
        elif tag == "a" and self.links:
            href, piece, start = self.links.pop()  # type: ignore[misc]
            if start > self.length:  # the line ended inside the link
                piece, start = 0, 0
            if href.startswith(("http://", "https://")) and self.length > start:
                # The label is only read when it could equal the address (bounded work).
                same = self.length - start <= len(href) + 8 and (
                    "".join(self.pieces[piece:]).strip() == href
                )
                if not same:
                    self._write(f" ({href})")
        elif tag in ("li", "tr"):
            self._block(0)
        elif tag in _BLOCK:
            self._block(1 if tag in {"p", "h1", "h2", "h3", "table", "ul", "ol"} else 0)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            parts = data.replace("\r\n", "\n").split("\n")
            for index, part in enumerate(parts):
                if index:
                    if self.length:
                        self._add((self.prefix + self._take_line()).rstrip())
                    else:
                        self._blank(self.blank_lines + 1)
                if part:
                    self._write(part)
            return
        text = _SPACES.sub(" ", data.replace("\xa0", " "))
        if self.length or not text.isspace():
            self._write(text)

    def text(self) -> str:
        with contextlib.suppress(_TextFull):
            self._end_line()
        return "\n".join(self.lines).strip("\n")


def html_to_text(html: str) -> str:
    """Readable plain text from HTML: blocks and ``<br>`` become line breaks,
    scripts/styles/head are dropped, entities decoded, blockquotes quoted with ``> ``.

    Linear in the input: quotes deeper than ``MAX_QUOTE_DEPTH`` are shown at that depth,
    and text past ``MAX_HTML_TEXT_CHARS`` characters is cut and ends with "(以下省略)".
    """
    parser = _HtmlText()
    try:
        _tokenize(html, parser)
    except _TextFull:
        return parser.text() + "\n" + _TRUNCATED
    return parser.text()


# --------------------------------------------------------------------------
# Message parsing
# --------------------------------------------------------------------------


def _clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    return unicodedata.normalize("NFC", normalize_japanese(text))


def _unflow(text: str, *, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed soft line breaks."""
    out: list[str] = []
    buffer: str | None = None
    buffer_depth = 0

    def flush() -> None:
        nonlocal buffer
        if buffer is not None:
            out.append((">" * buffer_depth + " " if buffer_depth else "") + buffer)
            buffer = None

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        if content == "-- ":
            flush()
            out.append(line)
            continue
        soft = content.endswith(" ")
        if soft and delsp:
            content = content[:-1]
        if buffer is not None and depth == buffer_depth:
            buffer += content
        else:
            flush()
            buffer = content
            buffer_depth = depth
        if not soft:
            flush()
    flush()
    return "\n".join(out)


def _charset(part: Message) -> str | None:
    value = part.get_param("charset", None)
    if value is None:
        return None
    if isinstance(value, tuple):
        value = value[2]
    return str(value).strip() or None


_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_\-:.]+)", re.IGNORECASE)


def _part_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    if payload is None:
        return b""
    return str(payload).encode("utf-8", "surrogateescape")


def _part_text(part: Message) -> str:
    data = _part_bytes(part)
    charset = _charset(part)
    if charset is None and part.get_content_subtype() == "html":
        match = _META_CHARSET.search(data[:4096])
        if match:
            charset = match.group(1).decode("ascii")
    text = _clean_text(decode_bytes(data, charset))
    flowed = str(part.get_param("format") or "").lower() == "flowed"
    if part.get_content_subtype() == "plain" and flowed:
        delsp = str(part.get_param("delsp") or "").lower() == "yes"
        text = _unflow(text, delsp=delsp)
    return text


def _filename(part: Message) -> str | None:
    # "file" is not standard, but some mailers name attachments with it.
    for header, name in (
        ("content-disposition", "filename"),
        ("content-type", "name"),
        ("content-type", "file"),
        ("content-disposition", "name"),
    ):
        value = part.get_param(name, None, header=header)
        if value is None:
            continue
        if isinstance(value, tuple):  # RFC 2231: (charset, language, %-decoded latin-1)
            charset, _language, text = value
            raw = str(text).encode("latin-1", "surrogateescape")
            decoded = _clean_header(_decode_raw(raw, charset or None))
            if "=?" in decoded:
                decoded = decode_header_value(decoded)
        else:
            decoded = decode_header_value(str(value))
        decoded = re.split(r"[/\\]", decoded)[-1].strip()
        if decoded:
            return decoded
    return None


def _message_bytes(message: Message, crlf: bool) -> bytes:
    buffer = BytesIO()
    generator = BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0)
    generator.flatten(message, linesep="\r\n" if crlf else "\n")
    return buffer.getvalue()


def _prepare_address_header(value: str) -> str:
    value = _FOLD.sub("", value)
    if _needs_byte_decoding(value):
        value = _decode_raw(_str_to_bytes(value), _DECLARED.get())
    return value


def _valid_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    # A quoted local part ("a b"@example.jp) may hold spaces: it is an address all the same,
    # and whether we write to it is for the address validator to say, not the parser.
    bare_local = "q" if len(local) > 2 and local[0] == local[-1] == '"' else local
    return (
        bool(at and local and domain)
        and "=?" not in address
        and not any(c.isspace() for c in bare_local + domain)
    )


_ADDR_SPEC = re.compile(r"""[^\s<>"'(),;:@\[\]]+@[^\s<>"'(),;:@\[\]]+""")


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) of every mailbox with a real address, in order."""
    result = []
    for value in values:
        prepared = _prepare_address_header(value)
        for name, address in email.utils.getaddresses([prepared]):
            address = address.strip().lower()
            if _valid_address(address):
                result.append((decode_header_value(name) if name else "", address))
    return result


def _sender(values: list[str]) -> tuple[str, str]:
    """The From mailbox as (display name, address), from well-formed and malformed headers.

    Besides RFC 5322 forms: one encoded word holding name and address
    (``=?utf-8?b?...?=`` of 「山田 花子 <hanako@example.jp>」, as some mailers write it), an
    unquoted comma in the name (``Yamada, Hanako <h@example.jp>``), a missing ``>``, an address
    in quotes. A header without any address gives ("name", "").
    """
    if not values:
        return "", ""
    prepared = _prepare_address_header(values[0])
    decoded = decode_header_value(prepared)
    words = [
        _decode_raw(_b_decode(m[3]) if m[2] in "Bb" else _q_decode(m[3]), m[1])
        for m in _ENCODED_WORD.finditer(prepared)
    ]
    # Encoded words are for display names; one holding an address is decoded whole first.
    candidates = [prepared, decoded]
    if any("@" in word or "<" in word for word in words):
        candidates.reverse()
    for candidate in candidates:
        names: list[str] = []
        for name, address in email.utils.getaddresses([candidate]):
            address = address.strip()
            if _valid_address(address):
                display = decode_header_value(name) if name else ""
                if names:  # "Yamada, Hanako <h@x>": the comma split the name
                    display = ", ".join([*names, display]) if display else ", ".join(names)
                return display.strip("\"' "), address.lower()
            names.append(decode_header_value(name or address))
    found = _ADDR_SPEC.search(decoded)
    if found:
        rest = (decoded[: found.start()] + decoded[found.end() :]).strip()
        name = re.sub(r"^[\s\"'<>()]+|[\s\"'<>()]+$", "", rest.replace("<>", ""))
        return name, found[0].strip(".").lower()
    return decoded.strip("\"'<> "), ""


_MSGID = re.compile(r"<([^<>\s]+)>")


def _message_id(value: str | None) -> str | None:
    if not value:
        return None
    match = _MSGID.search(value)
    if match:
        return match.group(1)
    value = value.strip().strip("<>").strip()
    return value.split()[0] if value else None


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class _Collector:
    def __init__(self, crlf: bool) -> None:
        self.crlf = crlf
        self.texts: list[str] = []
        self.from_html = False
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.delivery_report = False
        self.delivery_status: list[DeliveryStatus] = []

    def child(self) -> _Collector:
        return _Collector(self.crlf)

    def merge(self, other: _Collector, *, text: bool = True) -> None:
        if text:
            self.texts.extend(other.texts)
            self.from_html = self.from_html or other.from_html
        self.html.extend(other.html)
        self.attachments.extend(other.attachments)
        self.delivery_status.extend(other.delivery_status)
        self.delivery_report = self.delivery_report or other.delivery_report

    def has_text(self) -> bool:
        return any(t.strip() for t in self.texts)


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("content-disposition", "")).split(";", 1)[0].strip().lower()
    return disposition == "attachment" or _filename(part) is not None


def _content_id(part: Message) -> str | None:
    value = part.get("content-id")
    if value is None:
        return None
    value = str(value).strip().strip("<>").strip()
    return value or None


def _add_attachment(part: Message, collector: _Collector, data: bytes | None = None) -> None:
    content_type = part.get_content_type()
    filename = _filename(part)
    if filename is None:
        if content_type == "message/rfc822":
            inner = part.get_payload()
            subject = ""
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                subject = decode_header_value(str(inner[0].get("subject", "")))
            filename = (re.sub(r'[/\\:*?"<>|]', "_", subject) or "message") + ".eml"
        else:
            import mimetypes

            extension = mimetypes.guess_extension(content_type) or (
                ".txt" if part.get_content_maintype() == "text" else ".bin"
            )
            filename = f"attachment-{len(collector.attachments) + 1}{extension}"
    collector.attachments.append(
        Attachment(
            filename=filename,
            content_type=content_type,
            data=_part_bytes(part) if data is None else data,
            content_id=_content_id(part),
        )
    )


def _delivery_status(part: Message) -> list[DeliveryStatus]:
    payload = part.get_payload()
    blocks: list[Message] = []
    if isinstance(payload, list):
        blocks = [block for block in payload if isinstance(block, Message)]
    else:
        raw = _part_bytes(part).decode("utf-8", "replace").replace("\r\n", "\n")
        blocks = [HeaderParser().parsestr(chunk) for chunk in re.split(r"\n\s*\n", raw)]
    result = []
    for block in blocks:
        recipient = block.get("final-recipient") or block.get("original-recipient")
        if not recipient:
            continue
        address = str(recipient).split(";", 1)[-1].strip().strip("<>").lower()
        result.append(
            DeliveryStatus(
                recipient=address,
                action=str(block.get("action", "")).strip().lower(),
                status=str(block.get("status", "")).strip(),
            )
        )
    return result


def _walk(part: Message, collector: _Collector) -> None:
    content_type = part.get_content_type()
    maintype = part.get_content_maintype()
    if content_type == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            _add_attachment(part, collector, _message_bytes(inner[0], collector.crlf))
        else:
            _add_attachment(part, collector)
        return
    if content_type == "message/delivery-status":
        collector.delivery_status.extend(_delivery_status(part))
        return
    if maintype == "message" and isinstance(part.get_payload(), list):
        inner_list = part.get_payload()
        assert isinstance(inner_list, list)
        data = _message_bytes(inner_list[0], collector.crlf) if inner_list else b""  # type: ignore[arg-type]
        _add_attachment(part, collector, data)
        return
    if part.is_multipart():
        children = [child for child in part.get_payload() if isinstance(child, Message)]
        if content_type == "multipart/report":
            report_type = str(part.get_param("report-type") or "").lower()
            if report_type == "delivery-status":
                collector.delivery_report = True
        if content_type == "multipart/alternative":
            subs = []
            for child in children:
                sub = collector.child()
                _walk(child, sub)
                subs.append(sub)
            plain = [sub for sub in subs if sub.has_text() and not sub.from_html]
            rich = [sub for sub in subs if sub.has_text()]
            chosen = plain[0] if plain else (rich[-1] if rich else None)
            for sub in subs:
                collector.merge(sub, text=sub is chosen)
            return
        if content_type == "multipart/related" and children:
            start = part.get_param("start")
            root = children[0]
            if start:
                for child in children:
                    if str(child.get("content-id", "")).strip() == str(start).strip():
                        root = child
            _walk(root, collector)
            for child in children:
                if child is not root:
                    sub = collector.child()
                    _walk(child, sub)
                    # Inline parts of an HTML body are attachments, not more body text.
                    if sub.texts and not sub.attachments:
                        _add_attachment(child, collector)
                    collector.merge(sub, text=False)
            return
        for child in children:
            _walk(child, collector)
        return
    if content_type in ("text/plain", "text/html") and not _is_attachment(part):
        text = _part_text(part)
        if content_type == "text/html":
            collector.html.append(text)
            collector.texts.append(html_to_text(text))
            collector.from_html = True
        else:
            collector.texts.append(text)
        return
    _add_attachment(part, collector)


class _RawCompat32(policy.Compat32):
    """compat32, but header values come back as stored: raw 8-bit bytes stay surrogate
    escapes instead of being wrapped in a ``Header`` whose ``str()`` writes U+FFFD."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        # Unfolded (RFC 5322 2.2.3), so a boundary folded over two lines is one boundary.
        return _FOLD.sub("", value)


_POLICY = _RawCompat32()


def _first_header(message: Message, name: str) -> str | None:
    values = message.get_all(name)
    if not values:
        return None
    return str(values[0])


_HEADER_LINE = re.compile(rb"^(?:From .*|[!-9;-~]+[ \t]*:.*)$")
_SPACED_HEADER = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# A quoted boundary may be folded over two header lines ("foo\r\n bar" is "foo bar").
_BOUNDARY_PARAM = re.compile(rb"""boundary\s*=\s*(?:"([^"]{1,200})"|([^\s;"]+))""", re.IGNORECASE)
_MAX_BOUNDARY_RENAMES = 5
MAX_MULTIPART_BOUNDARIES = 64
_CARRIER_DOMAINS = {"au": re.compile(rb"@(?:ezweb\.ne\.jp|au\.com|ezweb\.jp)\b", re.I)}
_FROM_LINE = re.compile(rb"^from[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def _repair_header_block(raw: bytes) -> bytes:
    """``Name : value`` (obsolete syntax, and seen in broken mail) as ``Name: value``."""
    end = _HEADER_END.search(raw)
    head, body = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    if not _SPACED_HEADER.search(head):
        return raw
    return _SPACED_HEADER.sub(rb"\1:", head) + body


def _separate_boundaries(raw: bytes) -> bytes:
    """Give a boundary that is another one plus ``--`` a name of its own.

    With boundaries ``a--`` and ``a----``, the line ``--a----`` is both the first delimiter
    of the inner part and the close delimiter of the outer one; the stdlib takes the outer
    reading and loses every inner part. The inner (later declared) reading is the one the
    sender meant: its delimiter lines after its declaration get a unique boundary.
    """
    for _ in range(_MAX_BOUNDARY_RENAMES):
        declared = [
            (match.start(), match.end(), _unfold_bytes(match[1] or match[2] or b"").strip())
            for match in _BOUNDARY_PARAM.finditer(raw)
        ]
        names = {value for _, _, value in declared}
        collision = next((d for d in declared if d[2].endswith(b"--") and d[2][:-2] in names), None)
        if collision is None:
            return raw
        start, end, inner = collision
        unique = inner + b"=madoguchi-inner"
        delimiter = re.compile(rb"^--" + re.escape(inner) + rb"(--)?([ \t]*\r?)$", re.MULTILINE)
        tail = delimiter.sub(lambda m, new=unique: b"--" + new + (m[1] or b"") + m[2], raw[end:])  # type: ignore[misc]
        raw = raw[:start] + b'boundary="' + unique + b'"' + tail
    return raw


def _limit_nesting(raw: bytes) -> bytes:
    """Multiparts past ``MAX_MULTIPART_BOUNDARIES`` declared boundaries lose their boundary.

    The stdlib checks every line against every open boundary and recurses per level, so
    thousands of nested multiparts cost time quadratic in the depth and end in a
    RecursionError; past the limit a multipart is kept whole, as one attachment.
    """
    found = [m.start() for m in _BOUNDARY_PARAM.finditer(raw)]
    if len(found) <= MAX_MULTIPART_BOUNDARIES:
        return raw
    pieces, previous = [], 0
    for position in found[MAX_MULTIPART_BOUNDARIES:]:
        pieces += [raw[previous:position], b"x-ignored-"]
        previous = position
    return b"".join([*pieces, raw[previous:]])


def _unfold_bytes(value: bytes) -> bytes:
    return re.sub(rb"\r?\n(?=[ \t])", b"", value)


def _declared_charset(message: Message) -> str | None:
    """The first charset the mail names (in an encoded word, else on a text part)."""
    for _name, value in message.raw_items():
        for match in _ENCODED_WORD.finditer(str(value)):
            codec = _codec_for(match[1])
            if codec not in (None, _ASCII):
                return match[1]
    for part in message.walk():
        charset = _charset(part)
        if charset and _codec_for(charset) not in (None, _ASCII):
            return charset
    return None


def _carrier(raw: bytes) -> str | None:
    head = raw[: _HEADER_END.search(raw).start()] if _HEADER_END.search(raw) else raw  # type: ignore[union-attr]
    found = _FROM_LINE.search(head)
    if found:
        for carrier, domains in _CARRIER_DOMAINS.items():
            if domains.search(found[1]):
                return carrier
    return None


def parse_message(raw: bytes) -> ParsedMail:
    """Parse and decode one RFC 5322 message (bytes as received).

    Raises :class:`MailParseError` when the input is empty or has no header
    block (it is not a mail at all) and ``TypeError`` when it is not bytes.
    Anything else (bad charsets, broken MIME, bad encodings, unparsable dates)
    is decoded as well as possible and never raises.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"parse_message() needs bytes, not {type(raw).__name__}")
    raw = bytes(raw).lstrip(b"\r\n")
    if not raw.strip():
        raise MailParseError("empty message")
    first_line = raw.split(b"\n", 1)[0].rstrip(b"\r")
    if not _HEADER_LINE.match(first_line):
        raise MailParseError("the message does not start with a header")
    raw = _limit_nesting(_separate_boundaries(_repair_header_block(raw)))
    try:
        message = BytesParser(policy=_POLICY).parsebytes(raw)
    except RecursionError:  # message/rfc822 nested past Python's stack: headers only
        message = BytesParser(policy=_POLICY).parsebytes(raw, headersonly=True)
    if not message.keys():
        raise MailParseError("the message has no headers")
    carrier = _CARRIER.set(_carrier(raw))
    declared = _DECLARED.set(_declared_charset(message))
    try:
        return _parsed(message, crlf=b"\r\n" in raw[:4096])
    finally:
        _DECLARED.reset(declared)
        _CARRIER.reset(carrier)


def _parsed(message: Message, *, crlf: bool) -> ParsedMail:
    headers: dict[str, str] = {}
    for name, value in message.raw_items():
        key = name.strip().lower()
        if key not in headers:
            headers[key] = decode_header_value(str(value))

    from_name, from_address = _sender([str(v) for v in message.get_all("from", [])])

    def address_list(name: str) -> tuple[str, ...]:
        values = [str(v) for v in message.get_all(name, [])]
        return tuple(address for _name, address in _addresses(values) if address)

    references = tuple(_MSGID.findall(str(message.get("references", "")))) or tuple(
        str(message.get("references", "")).split()
    )

    collector = _Collector(crlf)
    _walk(message, collector)
    text = "\n\n".join(t.strip("\n") for t in collector.texts if t.strip())
    auto_submitted = headers.get("auto-submitted")
    precedence = headers.get("precedence")
    return ParsedMail(
        subject=headers.get("subject", ""),
        from_address=from_address,
        from_name=from_name,
        to=address_list("to"),
        cc=address_list("cc"),
        reply_to=address_list("reply-to"),
        message_id=_message_id(_first_header(message, "message-id")),
        in_reply_to=_message_id(_first_header(message, "in-reply-to")),
        references=references,
        date=_date(_first_header(message, "date")),
        text=text.rstrip(),
        html="\n".join(collector.html) if collector.html else None,
        attachments=tuple(collector.attachments),
        headers=MappingProxyType(headers),
        auto_submitted=auto_submitted.lower() if auto_submitted else None,
        precedence=precedence.lower() if precedence else None,
        is_delivery_report=collector.delivery_report,
        delivery_status=tuple(collector.delivery_status),
    )


# --------------------------------------------------------------------------
# Off the event loop
# --------------------------------------------------------------------------

# Mail this large is parsed in a worker process: a thread would share the GIL with the web
# pages for the seconds a 30 MB mail takes. Smaller mail is parsed in a thread.
PROCESS_THRESHOLD_BYTES = 1024 * 1024
# The worker's address space: a runaway parse dies there (MemoryError), not in the server.
_WORKER_MEMORY_BYTES = 3 * 1024**3
_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _limit_worker() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))


def _parse_in_worker(raw: bytes) -> ParsedMail:
    mail = parse_message(raw)
    return dataclasses.replace(mail, headers=dict(mail.headers))  # a mappingproxy won't pickle


def _worker_pool() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_worker,
                max_tasks_per_child=50,  # memory a large mail left behind goes back
            )
        return _pool


async def parse_message_async(raw: bytes) -> ParsedMail:
    """:func:`parse_message` off the event loop: in a worker process for mail of
    ``PROCESS_THRESHOLD_BYTES`` or more, in a thread for smaller mail.

    Raises what :func:`parse_message` raises; a worker that died (out of memory, killed)
    raises ``BrokenProcessPool`` and the next call starts a new one.
    """
    global _pool
    if len(raw) < PROCESS_THRESHOLD_BYTES:
        return await asyncio.to_thread(parse_message, raw)
    pool = _worker_pool()
    try:
        mail = await asyncio.get_running_loop().run_in_executor(pool, _parse_in_worker, raw)
    except BrokenProcessPool:
        with _pool_lock:
            if _pool is pool:
                _pool = None
        raise
    return dataclasses.replace(mail, headers=MappingProxyType(dict(mail.headers)))
