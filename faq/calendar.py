"""Business calendars: which days and hours the shop works, and time counted in them.

One class, ``BusinessCalendar``, holds every rule: open weekdays, Japanese public holidays
(jpholiday, substitute holidays included), the shop's extra closed days (``"YYYY-MM-DD"``
once, ``"MM-DD"`` every year), closed periods (お盆, 年末年始; yearly ranges may cross the new
year) and the opening hours of an open day. The shipping calendar (whole days) and the
support calendar (with hours) are two instances of it; ``parse_calendar`` reads either from
``data/shop.toml`` with messages that name the key, in Japanese and English.

Times are aware datetimes; arithmetic is done in UTC, so a zone with daylight saving time
counts real hours (Asia/Tokyo has none).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jpholiday

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_JA = "月火水木金土日"
MINUTES_PER_DAY = 24 * 60
# More closed days in a row than this means a calendar that never opens (a mistake in
# shop.toml that validation could not see, such as one-off ranges covering years).
MAX_CLOSED_RUN = 400
# The longest first-reply target accepted, in business hours.
MAX_TARGET_HOURS = 1000


class CalendarError(ValueError):
    """An invalid calendar setting; the message names the key (Japanese, then English)."""


def format_date(day: date) -> str:
    """「12月3日(木)」."""
    return f"{day.month}月{day.day}日({WEEKDAY_JA[day.weekday()]})"


def _month_day(text: str) -> str:
    """「12月29日」 for "12-29"; 「2026年8月13日」 for "2026-08-13"."""
    parts = [int(p) for p in text.split("-")]
    if len(parts) == 2:
        return f"{parts[0]}月{parts[1]}日"
    return f"{parts[0]}年{parts[1]}月{parts[2]}日"


@dataclass(frozen=True, slots=True)
class ClosedPeriod:
    """Days the shop is closed from ``start`` to ``end``, both included.

    Both ``"MM-DD"`` (every year; ``"12-29"`` to ``"01-04"`` crosses the new year) or both
    ``"YYYY-MM-DD"`` (once).
    """

    name: str
    start: str
    end: str

    @property
    def yearly(self) -> bool:
        return len(self.start) == 5

    def covers(self, day: date) -> bool:
        if not self.yearly:
            return self.start <= day.isoformat() <= self.end
        month_day = day.strftime("%m-%d")
        if self.start <= self.end:
            return self.start <= month_day <= self.end
        return month_day >= self.start or month_day <= self.end

    def describe(self) -> str:
        """「年末年始(12月29日〜1月4日)」."""
        return f"{self.name}({_month_day(self.start)}〜{_month_day(self.end)})"


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Open days and hours; business time counted across nights and closed days.

    ``open_minute`` and ``close_minute`` are minutes after midnight (0 and 1440: the whole
    day). A moment is open when ``open <= moment < close`` on an open day.
    """

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Tokyo"))
    weekdays: frozenset[int] = frozenset(range(5))
    public_holidays: bool = True
    closed_days: tuple[str, ...] = ()
    closed_periods: tuple[ClosedPeriod, ...] = ()
    open_minute: int = 0
    close_minute: int = MINUTES_PER_DAY

    # -- days -----------------------------------------------------------------------------

    def closed_reason(self, day: date) -> str | None:
        """Why ``day`` is closed (「土曜日」「元日」「年末年始」「休業日」), or None when open."""
        return _closed_reason(self, day)

    def is_open_day(self, day: date) -> bool:
        return self.closed_reason(day) is None

    def next_open_day(self, day: date, *, include: bool = False) -> date:
        """The first open day after ``day`` (or ``day`` itself when ``include`` and open).

        Raises ``CalendarError`` when none comes within ``MAX_CLOSED_RUN`` days.
        """
        if not include:
            day += timedelta(days=1)
        for _ in range(MAX_CLOSED_RUN):
            if self.is_open_day(day):
                return day
            day += timedelta(days=1)
        raise CalendarError(
            f"{MAX_CLOSED_RUN}日以上続けて休業日です / closed for over {MAX_CLOSED_RUN} days"
        )

    # -- hours ----------------------------------------------------------------------------

    def hours_on(self, day: date) -> tuple[datetime, datetime] | None:
        """(opening, closing) of ``day`` in UTC, or None when the day is closed."""
        return _hours_on(self, day)

    def _at(self, midnight: datetime, minute: int) -> datetime:
        if minute >= MINUTES_PER_DAY:
            following = midnight.date() + timedelta(days=1)
            return datetime.combine(following, time(0), tzinfo=self.timezone).astimezone(UTC)
        wall = time(minute // 60, minute % 60)
        return datetime.combine(midnight.date(), wall, tzinfo=self.timezone).astimezone(UTC)

    def local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        return moment.astimezone(self.timezone)

    def is_open(self, moment: datetime) -> bool:
        hours = self.hours_on(self.local(moment).date())
        return hours is not None and hours[0] <= moment < hours[1]

    def next_opening(self, moment: datetime) -> datetime:
        """``moment`` (in UTC) when open, else the next opening time."""
        day = self.local(moment).date()
        hours = self.hours_on(day)
        if hours is not None and moment < hours[1]:
            return max(moment.astimezone(UTC), hours[0])
        opening = self.hours_on(self.next_open_day(day))
        assert opening is not None
        return opening[0]

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of business time after ``start`` (in UTC).

        Counting starts at ``start`` when open, else at the next opening; nights, closed
        weekdays, holidays, closed days and periods do not count. Time that runs out exactly
        at a closing gives that closing time (the end of the day's work), not the next
        opening.
        """
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        moment = self.next_opening(start)
        remaining = duration
        while True:
            day = self.local(moment).date()
            hours = self.hours_on(day)
            assert hours is not None  # next_opening and next_open_day give open days
            available = hours[1] - moment
            if remaining <= available:
                return moment + remaining
            remaining -= available
            following = self.hours_on(self.next_open_day(day))
            assert following is not None
            moment = following[0]

    def due_at(self, created_at: datetime, hours: float) -> datetime:
        """``hours`` business hours after ``created_at`` (in UTC): a first-reply target."""
        return self.add_business_time(created_at, timedelta(hours=hours))

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """The business time from ``start`` to ``end`` (zero when ``end`` is not later):
        how long a ticket waited, counted as ``add_business_time`` counts."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta(0)
        day = self.local(start).date()
        last = self.local(end).date()
        while day <= last and start < end:
            hours = self.hours_on(day)
            if hours is not None:
                overlap = min(end, hours[1]) - max(start, hours[0])
                total += max(overlap, timedelta(0))
            day += timedelta(days=1)
        return total

    # -- texts ----------------------------------------------------------------------------

    @property
    def hours_text(self) -> str:
        """「10:00〜17:00」."""

        def clock(minute: int) -> str:
            return f"{minute // 60}:{minute % 60:02d}"

        return f"{clock(self.open_minute)}〜{clock(self.close_minute)}"

    def summary(self) -> str:
        """The hours as a customer reads them: 「サポートの対応時間は平日 10:00〜17:00 です。
        祝日、年末年始(12月29日〜1月4日)、お盆(8月13日〜8月16日)はお休みをいただいて
        おります。」 One-off closed days are left out."""
        if self.weekdays == frozenset(range(5)):
            days = "平日"
        else:
            days = "・".join(WEEKDAY_JA[d] for d in sorted(self.weekdays)) + "曜日"
        closed = ["祝日"] if self.public_holidays else []
        closed += [period.describe() for period in self.closed_periods if period.yearly]
        text = f"サポートの対応時間は{days} {self.hours_text} です。"
        if closed:
            text += f"{'、'.join(closed)}はお休みをいただいております。"
        return text


# Remembered per (calendar, day): business time over many tickets (the insights' first-reply
# times) asks about the same few days again and again, and jpholiday is slow to answer.
@functools.lru_cache(maxsize=4096)
def _hours_on(calendar: BusinessCalendar, day: date) -> tuple[datetime, datetime] | None:
    if not calendar.is_open_day(day):
        return None
    midnight = datetime.combine(day, time(0), tzinfo=calendar.timezone)
    return calendar._at(midnight, calendar.open_minute), calendar._at(
        midnight, calendar.close_minute
    )


@functools.lru_cache(maxsize=4096)
def _closed_reason(calendar: BusinessCalendar, day: date) -> str | None:
    if day.weekday() not in calendar.weekdays:
        return f"{WEEKDAY_JA[day.weekday()]}曜日"
    if calendar.public_holidays and (holiday := jpholiday.is_holiday_name(day)):
        return str(holiday)
    if day.isoformat() in calendar.closed_days or day.strftime("%m-%d") in calendar.closed_days:
        return "休業日"
    for period in calendar.closed_periods:
        if period.covers(day):
            return period.name
    return None


# -- reading shop.toml ------------------------------------------------------------------------


def _month_day_or_date(raw: object, where: str) -> str:
    """A valid ``"MM-DD"`` or ``"YYYY-MM-DD"``, else ``CalendarError``."""
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    try:
        if len(text) == 5 and text[2] == "-":
            date.fromisoformat(f"2000-{text}")  # a leap year: "02-29" is a day
            return text
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise CalendarError(
        f'{where}: 日付は "2026-08-13"(その年だけ)か "12-29"(毎年)の形で書いてください'
        f' / expected "YYYY-MM-DD" or yearly "MM-DD", got {raw!r}'
    )


def _minutes(text: str) -> int:
    hour, _, minute = text.strip().partition(":")
    if not (hour.isdigit() and minute.isdigit() and len(minute) == 2):
        raise ValueError(text)
    value = int(hour) * 60 + int(minute)
    if int(minute) >= 60 or value > MINUTES_PER_DAY:
        raise ValueError(text)
    return value


def parse_hours(raw: object, where: str) -> tuple[int, int]:
    """``"10:00-17:00"`` (also ``10:00〜17:00``) as minutes after midnight; ``"24:00"`` may end
    a day. Raises ``CalendarError`` naming ``where``."""
    text = unicodedata.normalize("NFKC", str(raw)).replace("〜", "-").replace("~", "-")
    opens, _, closes = text.partition("-")
    try:
        start, end = _minutes(opens), _minutes(closes)
    except ValueError:
        start = end = -1
    if not 0 <= start < end <= MINUTES_PER_DAY:
        raise CalendarError(
            f'{where}: 受付時間は "10:00-17:00" の形で、開始を終了より前に書いてください'
            f' / expected opening and closing times such as "10:00-17:00", got {raw!r}'
        )
    return start, end


def _weekdays(raw: object, where: str) -> frozenset[int]:
    names = raw if isinstance(raw, list) else None
    days = set()
    for name in names or []:
        key = str(name).strip().lower()
        if key not in WEEKDAYS:
            names = None
            break
        days.add(WEEKDAYS.index(key))
    if not names:
        raise CalendarError(
            f"{where}: 営業する曜日を英語の曜日名のリストで書いてください"
            f' (例: ["monday", "tuesday"]) / expected a list of weekday names, got {raw!r}'
        )
    return frozenset(days)


def _periods(raw: object, where: str) -> tuple[ClosedPeriod, ...]:
    if not isinstance(raw, list):
        raise CalendarError(
            f"{where}: [[...closed_periods]] の表で書いてください / expected a list of tables"
        )
    periods = []
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise CalendarError(f"{here}: name, from, to を書いてください / expected a table")
        name = str(item.get("name") or "").strip()
        if not name:
            raise CalendarError(f"{here}.name: 名前を書いてください / a name is required")
        missing = [key for key in ("from", "to") if key not in item]
        if missing:
            raise CalendarError(
                f"{here}.{missing[0]}: 期間の始まりと終わりを書いてください / missing key"
            )
        start = _month_day_or_date(item["from"], f"{here}.from")
        end = _month_day_or_date(item["to"], f"{here}.to")
        if len(start) != len(end):
            raise CalendarError(
                f'{here}: from と to は両方 "MM-DD"(毎年)か両方 "YYYY-MM-DD" にしてください'
                " / from and to must both be yearly or both be dates"
            )
        if len(start) == 10 and start > end:
            raise CalendarError(
                f"{here}: to ({end}) が from ({start}) より前です / to is before from"
            )
        periods.append(ClosedPeriod(name, start, end))
    return tuple(periods)


def parse_calendar(
    table: Mapping[str, Any], where: str, *, timezone: ZoneInfo, hours: bool
) -> BusinessCalendar:
    """The calendar a shop.toml table describes (``where`` is its name, for messages).

    Keys: ``closed_days``, ``closed_periods``, ``weekdays`` (default Monday to Friday),
    ``public_holidays`` (default true) and, when ``hours``, the required ``hours``.

    Raises ``CalendarError`` naming the key.
    """
    closed_days = table.get("closed_days", [])
    if not isinstance(closed_days, list):
        raise CalendarError(
            f"{where}.closed_days: 日付のリストで書いてください / expected a list of dates"
        )
    days = tuple(
        _month_day_or_date(day, f"{where}.closed_days[{index}]")
        for index, day in enumerate(closed_days)
    )
    public = table.get("public_holidays", True)
    if not isinstance(public, bool):
        raise CalendarError(
            f"{where}.public_holidays: true か false で書いてください / expected true or false"
        )
    calendar = BusinessCalendar(
        timezone=timezone,
        weekdays=_weekdays(table.get("weekdays", list(WEEKDAYS[:5])), f"{where}.weekdays"),
        public_holidays=public,
        closed_days=days,
        closed_periods=_periods(table.get("closed_periods", []), f"{where}.closed_periods"),
    )
    if hours:
        if "hours" not in table:
            raise CalendarError(
                f'{where}.hours: 受付時間を書いてください (例: hours = "10:00-17:00")'
                " / missing key 'hours'"
            )
        opens, closes = parse_hours(table["hours"], f"{where}.hours")
        calendar = BusinessCalendar(
            timezone=timezone,
            weekdays=calendar.weekdays,
            public_holidays=calendar.public_holidays,
            closed_days=calendar.closed_days,
            closed_periods=calendar.closed_periods,
            open_minute=opens,
            close_minute=closes,
        )
    _check_opens_some_day(calendar, where)
    return calendar


def _check_opens_some_day(calendar: BusinessCalendar, where: str) -> None:
    """Yearly rules that close every day of the year leave nothing to count in."""
    leap_year = [date(2028, 1, 1) + timedelta(days=n) for n in range(366)]
    yearly_only = BusinessCalendar(
        weekdays=frozenset(range(7)),
        public_holidays=False,
        closed_days=tuple(d for d in calendar.closed_days if len(d) == 5),
        closed_periods=tuple(p for p in calendar.closed_periods if p.yearly),
    )
    if not any(yearly_only.is_open_day(day) for day in leap_year):
        raise CalendarError(
            f"{where}: 毎年の休業日と休業期間で一年中がお休みになっています"
            " / the yearly closed days and periods close the whole year"
        )
