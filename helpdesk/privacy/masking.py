"""Masking personal data in text: query logs, logs, and card numbers in what customers send.

``mask_personal_data`` replaces, after NFKC (full-width digits and letters become ASCII)
and with every dash between digits made ``-`` (ー U+30FC, ‐ U+2010, ‑, ‒, –, —, ―,
− U+2212, ﹣, －):

- e-mail addresses → [メール]
- card numbers: 13 to 19 digits, spaces or hyphens between groups, with a card brand's
  prefix and length and passing the Luhn check, not right after an order-number label
  (so that order numbers and other long numbers are not taken for cards) → [カード番号]
- My Number: 12 digits (4-4-4 allowed) with a valid check digit → [マイナンバー]
- phone numbers (090-1234-5678, 03(1234)5678, +81 90 1234 5678, 0120-123-456) → [電話番号]
- postal codes (〒123-4567, 123-4567) and addresses (a prefecture or a city, ward, town or
  village followed by block numbers: 東京都千代田区千代田1-1, 横浜市中区山下町1番地) → [住所]
- order numbers (#1234, No.1234, 注文番号 12345, long digit runs) → [注文番号]

``mask_card_numbers`` replaces only card numbers, keeping the rest of the text as typed:
applied to what customers send (forms, messages, mail) before it is stored.

``MaskingFilter`` applies ``mask_personal_data`` to log records (``main.py`` installs it on
every handler).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

#: What replaces a card number a customer sent: it says why, where they will see it.
CARD_PLACEHOLDER = "[カード番号と思われる数字は、安全のため保存せずに削除しました]"

_DASHES = "\u30fc\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d\u002d"
# A dash between two digits (ー is a katakana long vowel elsewhere: only between digits).
_DIGIT_DASH = re.compile(rf"(?<=\d)[{_DASHES}](?=\d)")

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Digit groups separated by one space or hyphen (card numbers are looked for inside).
_DIGIT_RUN = re.compile(r"\d+(?:[ -]\d+)*")
_DIGITS = re.compile(r"\d+")
# 12 digits, optionally 4-4-4.
_MY_NUMBER = re.compile(r"(?<![0-9])\d{4}[ -]?\d{4}[ -]?\d{4}(?![0-9])")
# Japanese phone numbers: 090-1234-5678, 03(1234)5678, +81 90 1234 5678, 0120-123-456.
_PHONE = re.compile(
    r"(?<![0-9A-Za-z])(?:\+81[\s-]?|0)\d{1,4}[\s()-]{0,2}\d{1,4}[\s)-]{0,2}\d{3,4}(?![0-9A-Za-z])"
)
_PREFECTURES = (
    "北海道|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|群馬県|埼玉県|千葉県|"
    "東京都|神奈川県|新潟県|富山県|石川県|福井県|山梨県|長野県|岐阜県|静岡県|愛知県|三重県|"
    "滋賀県|京都府|大阪府|兵庫県|奈良県|和歌山県|鳥取県|島根県|岡山県|広島県|山口県|徳島県|"
    "香川県|愛媛県|高知県|福岡県|佐賀県|長崎県|熊本県|大分県|宮崎県|鹿児島県|沖縄県"
)
_KANJI_NUMBER = "0-9一二三四五六七八九十〇"
_BLOCK = (
    rf"[{_KANJI_NUMBER}]+(?:丁目|番地?|号|の|-)?(?:\s?[{_KANJI_NUMBER}]+(?:丁目|番地?|号|の|-)?)*"
)
_POSTAL = re.compile(r"〒\s?\d{3}-?\d{4}|(?<![0-9-])\d{3}-\d{4}(?![0-9-])")
_ADDRESS = re.compile(
    rf"(?:(?:{_PREFECTURES})[^\s、。,.!?()「」]{{0,30}}?|"
    rf"[\u4e00-\u9fff]{{1,6}}[市区町村郡][^\s、。,.!?()「」]{{0,20}}?){_BLOCK}"
    rf"(?:[^\s、。,.!?()「」]{{0,20}}?(?:\d+号室|\d+F|\d+階))?"
)
_ORDER = re.compile(
    # A label, then a value with a digit in it: "no more", "#status" and "no HELPDESK_..."
    # in a log line are words, not order numbers.
    r"(?:#|(?<![a-z])no\.?\s*|注文番号[:：\s]*|受注番号[:：\s]*|オーダー番号[:：\s]*)"
    r"(?=[a-z-]*[0-9])[a-z0-9-]{3,}"
    # A ticket reference (HD-26-00042) is not an order number, nor a process id in the
    # server's own lines (uvicorn's "server process [12345]", our "pid 12345").
    r"|(?<![0-9])(?<!HD-\d\d-)(?<!process \[)(?<!pid )\d{5,}(?![0-9])",
    re.IGNORECASE,
)


# Every identifier above holds a digit (any script's: ``\d``), an @ or a kanji numeral
# (an address's block number): text without any of them has nothing to mask.
_MASKABLE = re.compile(rf"[\d@{_KANJI_NUMBER}]")
# The fewest characters a card number can take (13 digits).
_SHORTEST_CARD = 13


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` (ASCII digits only) passes the Luhn check of card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_number(digits: str) -> bool:
    """Whether ``digits`` look like a payment card number: a length and an issuer prefix
    that card brands use (Visa, Mastercard, JCB, American Express, Diners, Discover,
    UnionPay) and the Luhn check. Order numbers rarely pass all three."""
    length = len(digits)
    if not 13 <= length <= 19 or not luhn_valid(digits):
        return False
    two, four = int(digits[:2]), int(digits[:4])
    return (
        (digits[0] == "4" and length in (13, 16, 19))  # Visa
        or ((51 <= two <= 55 or 2221 <= four <= 2720) and length == 16)  # Mastercard
        or (3528 <= four <= 3589 and 16 <= length <= 19)  # JCB
        or (two in (34, 37) and length == 15)  # American Express
        or ((two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305) and 14 <= length <= 19)
        or ((digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649) and length >= 16)
        or (two == 62 and 16 <= length <= 19)  # UnionPay
    )


def my_number_valid(digits: str) -> bool:
    """Whether 12 digits carry a valid My Number (個人番号) check digit."""
    if len(digits) != 12 or not digits.isdigit():
        return False
    body, check = digits[:11], int(digits[11])
    total = 0
    for n in range(1, 12):
        p = int(body[11 - n])
        q = n + 1 if n <= 6 else n - 5
        total += p * q
    remainder = total % 11
    return check == (0 if remainder <= 1 else 11 - remainder)


def normalize(text: str) -> str:
    """NFKC, and every dash between digits made ``-``."""
    return _DIGIT_DASH.sub("-", unicodedata.normalize("NFKC", text))


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


# A number right after one of these is an order number, whatever its digits.
_ORDER_LABEL = re.compile(
    r"(?:#|no\.?|注文番号|受注番号|オーダー番号|注文|ご注文)[:：\s]*$", re.IGNORECASE
)


def _card_spans(text: str) -> list[tuple[int, int]]:
    """Where card numbers are in ``text`` (normalized): runs of digit groups separated by
    one space or hyphen, of which any consecutive groups may form the card (a phone number
    written just before a card does not hide it)."""
    spans: list[tuple[int, int]] = []
    for run in _DIGIT_RUN.finditer(text):
        if run.end() - run.start() < _SHORTEST_CARD:  # IP addresses, dates, versions...
            continue
        groups = [
            (m.start() + run.start(), m.end() + run.start()) for m in _DIGITS.finditer(run.group())
        ]
        i = 0
        while i < len(groups):
            hit = None
            length = 0
            ends: list[int] = []
            for j in range(i, len(groups)):
                length += groups[j][1] - groups[j][0]
                if length > 19:
                    break
                ends.append(j)
            for j in reversed(ends):  # the longest first
                start, stop = groups[i][0], groups[j][1]
                digits = re.sub(r"\D", "", text[start:stop])
                if card_number(digits) and not _ORDER_LABEL.search(
                    text[max(0, start - 12) : start]
                ):
                    hit = j
                    break
            if hit is None:
                i += 1
            else:
                spans.append((groups[i][0], groups[hit][1]))
                i = hit + 1
    return spans


def _replace_spans(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    pieces: list[str] = []
    last = 0
    for start, stop in spans:
        pieces.append(text[last:start])
        pieces.append(placeholder)
        last = stop
    pieces.append(text[last:])
    return "".join(pieces)


def mask_personal_data(text: str) -> str:
    """Replace identifiers with placeholders (see the module's docstring)."""
    text = normalize(text)
    return _mask_identifiers(text) if _MASKABLE.search(text) else text


def _mask_identifiers(text: str) -> str:
    """Every pattern of ``mask_personal_data`` over ``text`` (normalized)."""
    text = _EMAIL.sub("[メール]", text)
    text = _replace_spans(text, _card_spans(text), "[カード番号]")
    text = _MY_NUMBER.sub(
        lambda m: "[マイナンバー]" if my_number_valid(_digits(m.group())) else m.group(), text
    )
    text = _PHONE.sub("[電話番号]", text)
    text = _POSTAL.sub("[住所]", text)
    text = _ADDRESS.sub("[住所]", text)
    return _ORDER.sub("[注文番号]", text)


def mask_card_numbers(text: str) -> tuple[str, bool]:
    """``text`` with every card number (full-width or not, spaced or hyphenated) replaced
    by ``CARD_PLACEHOLDER``, and whether one was found. Text without one comes back exactly
    as given; around a card number, the text stays as typed when normalizing kept its
    length (NFKC keeps one character per digit, space and dash), else it is normalized."""
    normalized = normalize(text)
    spans = _card_spans(normalized)
    if not spans:
        return text, False
    source = text if len(normalized) == len(text) else normalized
    return _replace_spans(source, spans, CARD_PLACEHOLDER), True


#: ``extra`` of a log call whose arguments were masked where they were made (the access
#: log masks the request's path and method, not its own address and status fields):
#: ``MaskingFilter`` leaves its record alone.
MASKED: Mapping[str, object] = MappingProxyType({"personal_data_masked": True})


class MaskingFilter(logging.Filter):
    """Masks personal data in every log record's message (its arguments merged in), unless
    the record says it was masked already (``MASKED``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "personal_data_masked", False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = mask_personal_data(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
