"""The date range of the insights page: GET parameters ``from`` and ``to``, validated.

Days are days in Japan (the shop's time zone), both ends included. Without parameters the
range is the last ``DEFAULT_DAYS`` days up to today.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_DAYS = 30
# A year (a leap year's too): rollups keep every day, but a page of more days says little.
MAX_DAYS = 366
# Nothing before this: the shop did not exist (and a typo such as 0202-11-01 is caught).
EARLIEST = date(2000, 1, 1)
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_LABELS = {"from": "開始日", "to": "終了日"}


class PeriodError(ValueError):
    """A range that cannot be shown; the message is Japanese, for the admin."""


@dataclass(frozen=True, slots=True)
class Period:
    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return list(self.each_day())

    def each_day(self) -> Iterator[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)

    @property
    def length(self) -> int:
        return (self.last - self.first).days + 1

    def bounds(self, timezone: ZoneInfo) -> tuple[datetime, datetime]:
        """``[start, end)`` in UTC: midnight of the first day to midnight after the last."""
        return day_start(self.first, timezone), day_start(self.last + timedelta(days=1), timezone)

    def params(self) -> dict[str, str]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


def day_start(day: date, timezone: ZoneInfo) -> datetime:
    """Midnight of ``day`` in ``timezone``, in UTC."""
    return datetime.combine(day, time(0), tzinfo=timezone).astimezone(UTC)


def default_period(today: date) -> Period:
    return Period(today - timedelta(days=DEFAULT_DAYS - 1), today)


def _parse_day(raw: str, name: str) -> date:
    text = unicodedata.normalize("NFKC", raw).strip()
    found = _DATE.fullmatch(text)
    label = _LABELS[name]
    if found is None:
        raise PeriodError(
            f"{label}は 2026-11-01 のように年-月-日で入力してください(「{raw[:20]}」は読めません)。"
        )
    try:
        return date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        raise PeriodError(f"{label}の「{text}」は存在しない日付です。") from None


def parse_period(params: Mapping[str, str], today: date) -> Period:
    """The range asked for by ``from`` and ``to`` (either may be left out or empty).

    Raises:
        PeriodError: a date that does not read, lies in the future or before 2000, a
            start after the end, or a range longer than ``MAX_DAYS`` days.
    """
    raw_first = (params.get("from") or "").strip()
    raw_last = (params.get("to") or "").strip()
    if not raw_first and not raw_last:
        return default_period(today)
    last = _parse_day(raw_last, "to") if raw_last else None
    first = _parse_day(raw_first, "from") if raw_first else None
    if first is None:
        assert last is not None
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if last is None:
        last = min(today, first + timedelta(days=DEFAULT_DAYS - 1))
    for day, name in ((last, "to"), (first, "from")):
        if day > today:
            raise PeriodError(
                f"{_LABELS[name]}に未来の日付は指定できません"
                f"(今日は{today.year}年{today.month}月{today.day}日です)。"
            )
        if day < EARLIEST:
            raise PeriodError(f"{_LABELS[name]}は2000年1月1日以降の日付にしてください。")
    if first > last:
        raise PeriodError("開始日は終了日と同じか、それより前の日付にしてください。")
    period = Period(first, last)
    if period.length > MAX_DAYS:
        raise PeriodError(
            f"期間は{MAX_DAYS}日以内で指定してください(いまは{period.length}日です)。"
        )
    return period
