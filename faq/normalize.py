"""Text normalization shared by indexing and querying.

NFKC folds half-width kana and full-width ASCII; case is folded; the wave-dash family
(〜 ～ 〰 ~) becomes one character; hyphen-like characters after katakana become the
long-vowel mark; control characters are dropped and whitespace collapsed.
"""

from __future__ import annotations

import re
import unicodedata

# The same keystroke arrives as any of these depending on the codec and the platform.
_WAVE_DASHES = dict.fromkeys(map(ord, "〜～〰~∼"), "〜")
# Hyphen-like characters that stand for the long-vowel mark after katakana (クッキ- → クッキー).
_LONG_VOWEL_AFTER_KATAKANA = re.compile(r"(?<=[\u30a1-\u30fa])[\-‐‑‒–—―─━ｰ−－]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACE = re.compile(r"\s+")

HIRAGANA_TO_KATAKANA = {code: code + 0x60 for code in range(0x3041, 0x3097)}
_KANA = re.compile(r"[\u3041-\u3096\u30a1-\u30faー]+")


def normalize(text: str) -> str:
    """Return the canonical form of ``text`` for matching (not for display)."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub("", text).lower().translate(_WAVE_DASHES)
    text = _LONG_VOWEL_AFTER_KATAKANA.sub("ー", text)
    return _SPACE.sub(" ", text).strip()


def to_katakana(text: str) -> str:
    """Fold hiragana to katakana (readings from SudachiPy are katakana)."""
    return text.translate(HIRAGANA_TO_KATAKANA)


def kana_runs(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the maximal runs of kana in ``text``."""
    return [match.span() for match in _KANA.finditer(text)]
