"""Cleaning what people type (or mail) before it is stored and shown to others.

Two functions, one for each kind of field; every field goes through one of them:

``clean_line`` (short fields: names, order numbers, subjects, variants, display names)
    NFKC (so ＃１２３４ becomes #1234), then drops every character that displays nothing or
    changes how the rest displays: control characters (Cc), format characters (Cf: the
    bidirectional overrides and isolates, zero-width spaces and joiners, the BOM, the soft
    hyphen), private-use and unassigned code points, Hangul fillers and other blank letters.
    Variation selectors are dropped except an ideographic variation selector right after a
    kanji (辻 with one dot or two is the customer's own name). Runs of spaces become one.
    So 「山田\\u202e郎太」, which displays as 山田太郎, is stored as 山田郎太, as typed.

``clean_text`` (long text: descriptions, messages)
    Keeps the customer's characters and width (no NFKC), newlines, tabs and emoji: a
    zero-width joiner stays only between two emoji (👨‍👩‍👧 is one family, not three people),
    variation selectors only after a character, tag characters only inside a flag's tag
    sequence (🏴󠁧󠁢󠁳󠁣󠁴󠁿). Everything else that is invisible goes, as in short fields.

``looks_like_link`` tells whether a name holds something a mail client would turn into a
link (``://``, ``www.``, an address, a domain); ``name_from_mail`` makes a safe name out of a
mail's display name.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_line", "clean_text", "looks_like_link", "name_from_mail", "safe_name"]

# Letters that display as nothing: Hangul fillers (U+3164 passes for a space in names),
# the combining grapheme joiner, Khmer inherent vowels, the braille blank.
INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u034f\u17b4\u17b5\u2800")
ZWJ = "\u200d"
BLACK_FLAG = "\U0001f3f4"
CANCEL_TAG = "\U000e007f"
# Categories that never belong in a short field: control, format, surrogate, private use,
# unassigned.
_DROPPED_IN_LINES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_SPACES = re.compile(r"\s+")


def _is_variation_selector(char: str) -> bool:
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _is_ideographic_selector(char: str) -> bool:
    return 0xE0100 <= ord(char) <= 0xE01EF


def _is_kanji(char: str) -> bool:
    return unicodedata.name(char, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY"))


def _is_tag(char: str) -> bool:
    return 0xE0020 <= ord(char) <= 0xE007F


def _is_emoji(char: str) -> bool:
    """Good enough for joining: pictographs are "So"; skin tones are modifiers."""
    return unicodedata.category(char) == "So" or 0x1F3FB <= ord(char) <= 0x1F3FF


def clean_line(value: str | None) -> str:
    """A short field, NFKC-normalized, with nothing invisible left, trimmed (see above)."""
    text = unicodedata.normalize("NFKC", value or "")
    kept: list[str] = []
    for char in text:
        if _is_variation_selector(char):
            if _is_ideographic_selector(char) and kept and _is_kanji(kept[-1]):
                kept.append(char)
            continue
        if char in INVISIBLE or unicodedata.category(char) in _DROPPED_IN_LINES:
            continue
        kept.append(char)
    return _SPACES.sub(" ", "".join(kept)).strip()


def clean_text(value: str | None) -> str:
    """Long text: lines, width and emoji kept, invisible characters dropped (see above)."""
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n")
    kept: list[str] = []
    for index, char in enumerate(text):
        previous = kept[-1] if kept else ""
        following = text[index + 1] if index + 1 < len(text) else ""
        if char in "\n\t":
            kept.append(char)
        elif char == ZWJ:
            joins = previous and following and _is_emoji_end(previous) and _is_emoji(following)
            if joins:
                kept.append(char)
        elif _is_tag(char):
            if previous == BLACK_FLAG or (_is_tag(previous) and previous != CANCEL_TAG):
                kept.append(char)
        elif _is_variation_selector(char):
            if previous and not previous.isspace() and not _is_variation_selector(previous):
                kept.append(char)
        elif char in INVISIBLE or unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            continue
        else:
            kept.append(char)
    return "".join(kept).strip()


def _is_emoji_end(char: str) -> bool:
    """What an emoji may end with before a joiner: the pictograph, VS16 or a skin tone."""
    return _is_emoji(char) or char == "\ufe0f"


# -- names never become links ------------------------------------------------------------------

# A domain-looking word: labels of letters, digits and hyphens (any script, as mail clients
# link internationalized domains too), a dot, and an ASCII top-level label of two letters or
# more ("evil.example", "shop.co.jp", "お支払いevil.com"); a path or a port may follow.
_DOMAIN = (
    r"(?<![\w.-])[^\W_](?:[\w-]*[^\W_])?(?:\.[\w-]+)*\.(?:[a-z]{2,63}|xn--[a-z0-9-]+)"
    r"(?![a-z0-9-])"
)
_LINKISH = re.compile(rf"://|www\.|@|{_DOMAIN}", re.IGNORECASE)
# The whole link-looking token, to cut out of a display name.
_LINK_TOKEN = re.compile(rf"\S*(?:://|www\.|@)\S*|{_DOMAIN}(?:[:/]\S*)?", re.IGNORECASE)
# The name used when nothing safe is left.
FALLBACK_NAME = "お客様"


def looks_like_link(text: str) -> bool:
    """Whether a mail client could turn part of ``text`` into a link (or a mailto: link)."""
    return _LINKISH.search(text) is not None


def safe_name(name: str | None, *, max_length: int = 100) -> str:
    """``name`` cleaned like a short field, with every link-looking part cut out."""
    text = clean_line(name)
    while looks_like_link(text):
        cut = _SPACES.sub(" ", _LINK_TOKEN.sub(" ", text)).strip()
        if cut == text:  # nothing more to cut: give the name up
            return ""
        text = cut
    return text[:max_length].strip()


def name_from_mail(display_name: str | None, address: str, *, max_length: int = 100) -> str:
    """A customer's name from a mail's From: the display name, else the address's local part.

    Both are cleaned like a short field and lose anything link-looking; when nothing is left,
    the neutral 「お客様」.
    """
    for candidate in (display_name, address.partition("@")[0]):
        name = safe_name(candidate, max_length=max_length)
        if name:
            return name
    return FALLBACK_NAME
