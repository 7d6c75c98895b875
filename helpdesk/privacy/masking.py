"""Masking of personal data in text that agents read for analysis (FAQ gaps, insights)."""

from __future__ import annotations

import re
import unicodedata

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Japanese phone numbers: 090-1234-5678, 03(1234)5678, +81 90 1234 5678, 0120-123-456, 09012345678.
_PHONE = re.compile(
    r"(?<![0-9A-Za-z])(?:\+81[\s-]?|0)\d{1,4}[\s()-]{0,2}\d{1,4}[\s)-]{0,2}\d{3,4}(?![0-9A-Za-z])"
)
# Order numbers: #1234, No.1234, 注文番号12345 (after NFKC), long digit runs.
_ORDER = re.compile(
    r"(?:#|no\.?\s*|注文番号[:：\s]*|受注番号[:：\s]*|オーダー番号[:：\s]*)[a-z0-9-]{3,}|(?<![0-9])\d{5,}(?![0-9])",
    re.IGNORECASE,
)


def mask_personal_data(text: str) -> str:
    """Replace e-mail addresses, phone numbers and order numbers with placeholders."""
    text = unicodedata.normalize("NFKC", text)
    text = _EMAIL.sub("[メール]", text)
    text = _PHONE.sub("[電話番号]", text)
    return _ORDER.sub("[注文番号]", text)
