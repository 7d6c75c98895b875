"""The shop policy (``data/shop.toml``) and the shipping-date rules it implies.

Non-COD orders confirmed on a business day before the cutoff ship that day, later ones the
next business day. Cash on delivery ships once a week on the policy's weekday, for orders
placed before that day's cutoff; when that day is closed, the next business day. Business
days are Monday to Friday except Japanese public holidays (jpholiday) and the policy's
extra closed days (the shop's pages: 土日祝日は配送業務はお休み).

Support has its own calendar (``[support]``: hours, closed days and periods such as お盆 and
年末年始, a first-reply target in business hours). These are the shop owner's settings, not
statements of the shop's pages, and they do not change the shipping days: a closed period
the warehouse keeps too goes into ``[shipping]`` as well. Both calendars are
``faq.calendar.BusinessCalendar``; the rules live there once.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from faq.calendar import (
    MAX_TARGET_HOURS,
    WEEKDAY_JA,
    WEEKDAYS,
    BusinessCalendar,
    CalendarError,
    ClosedPeriod,
    format_date,
    parse_calendar,
)

__all__ = [
    "WEEKDAYS",
    "WEEKDAY_JA",
    "BusinessCalendar",
    "ClosedPeriod",
    "PolicyError",
    "ShopPolicy",
    "load_policy",
]


class PolicyError(ValueError):
    """Raised when the shop-policy file is invalid; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class ShopPolicy:
    name: str
    url: str
    timezone: ZoneInfo
    support_address: str
    cutoff: time
    closed_days: tuple[str, ...]
    cod_weekday: int
    cod_cutoff: time
    return_window_days: int
    reshipping_fee_yen: int
    deletion_days: int
    # Extra closed periods of shipping ([[shipping.closed_periods]]); none by default.
    closed_periods: tuple[ClosedPeriod, ...] = ()
    # The support calendar ([support]); None when the owner set none: no due times, no
    # promised reply date.
    support: BusinessCalendar | None = None
    # The first reply is promised within this many business hours of the support calendar.
    first_reply_hours: float = 0.0

    # -- shipping calendar ---------------------------------------------------------------

    @property
    def shipping_calendar(self) -> BusinessCalendar:
        """Whole days: Monday to Friday, except public holidays and the closed days."""
        return BusinessCalendar(
            timezone=self.timezone,
            closed_days=self.closed_days,
            closed_periods=self.closed_periods,
        )

    def is_business_day(self, day: date) -> bool:
        return self.shipping_calendar.is_open_day(day)

    def next_business_day(self, day: date, *, include: bool = False) -> date:
        """The first business day after ``day`` (or ``day`` itself when ``include``)."""
        return self.shipping_calendar.next_open_day(day, include=include)

    # -- support calendar ----------------------------------------------------------------

    def first_reply_due(self, created_at: datetime) -> datetime | None:
        """When the first reply to a ticket created at ``created_at`` is due (UTC), or None
        without a support calendar, or when it has no opening for over a year (one-off
        closed periods spanning years): then nothing is promised, and nothing fails."""
        if self.support is None:
            return None
        try:
            return self.support.due_at(created_at, self.first_reply_hours)
        except CalendarError:
            return None

    def reply_promise(self, due: datetime) -> str:
        """「12月3日(木)までにご返信いたします」: the day of ``due`` in the shop's time zone."""
        return f"{format_date(self.local(due).date())}までにご返信いたします"

    def local(self, moment: datetime | None) -> datetime:
        """``moment`` (aware; now when None) in the shop's time zone."""
        moment = moment or datetime.now(self.timezone)
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        return moment.astimezone(self.timezone)

    def ship_date(self, ordered_at: datetime | None = None) -> date:
        """Shipping day of an order (not cash on delivery) confirmed at ``ordered_at``."""
        local = self.local(ordered_at)
        day = local.date()
        if self.is_business_day(day) and local.time() < self.cutoff:
            return day
        return self.next_business_day(day)

    def cod_ship_date(self, ordered_at: datetime | None = None) -> date:
        """Shipping day of a cash-on-delivery order placed at ``ordered_at``."""
        local = self.local(ordered_at)
        day = local.date()
        ahead = (self.cod_weekday - day.weekday()) % 7
        if ahead == 0 and local.time() >= self.cod_cutoff:
            ahead = 7
        shipping_day = day + timedelta(days=ahead)
        return self.next_business_day(shipping_day, include=True)

    # -- texts ---------------------------------------------------------------------------

    @staticmethod
    def format_date(day: date) -> str:
        return format_date(day)

    def shipping_notice(self, kind: str, *, now: datetime | None = None) -> str:
        """The concrete shipping date for an order placed ``now``, said first in an answer.

        ``"ship_date"``: 「今ご注文いただくと 12月2日(水) に発送します。代金引換は 12月4日(金)
        の発送です。」; ``"cod_ship_date"``: the cash-on-delivery sentence alone.
        """
        local = self.local(now)
        cod = f"代金引換は {self.format_date(self.cod_ship_date(local))} の発送です。"
        if kind == "cod_ship_date":
            return cod
        return f"今ご注文いただくと {self.format_date(self.ship_date(local))} に発送します。{cod}"


def _time(raw: object, where: str) -> time:
    try:
        return time.fromisoformat(str(raw))
    except ValueError:
        raise PolicyError(f'{where}: expected a time such as "16:00", got {raw!r}') from None


def _calendar(
    path: Path, table: Any, name: str, timezone: ZoneInfo, *, hours: bool
) -> BusinessCalendar:
    if not isinstance(table, dict):
        raise PolicyError(f"{path}: {name}: [{name}] の表で書いてください / expected a table")
    fixed = [key for key in ("weekdays", "public_holidays") if key in table]
    if not hours and fixed:
        # The shop's pages state the shipping days: 土日祝日は配送業務はお休み.
        raise PolicyError(
            f"{path}: {name}.{fixed[0]}: 発送日はショップのページのとおり土日祝日を除く日です。"
            "休みを足すときは closed_days か closed_periods に書いてください"
            " / shipping days are fixed by the shop's pages; add closed_days or closed_periods"
        )
    try:
        return parse_calendar(table, name, timezone=timezone, hours=hours)
    except CalendarError as exc:
        raise PolicyError(f"{path}: {exc}") from None


def _target_hours(path: Path, support: dict[str, Any]) -> float:
    raw = support.get("first_reply_hours")
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw <= MAX_TARGET_HOURS:
        raise PolicyError(
            f"{path}: support.first_reply_hours: 最初の返信までの営業時間を 0 より大きく"
            f" {MAX_TARGET_HOURS} 以下の数で書いてください (例: 7)"
            f" / expected business hours between 0 and {MAX_TARGET_HOURS}, got {raw!r}"
        )
    return float(raw)


def load_policy(path: str | Path) -> ShopPolicy:
    """Read the shop policy; raises ``PolicyError`` naming the file and the bad key."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    try:
        shop, shipping, cod = doc["shop"], doc["shipping"], doc["shipping"]["cash_on_delivery"]
        weekday = str(cod["weekday"]).lower()
        if weekday not in WEEKDAYS:
            raise PolicyError(f"{path}: shipping.cash_on_delivery.weekday: {weekday!r}")
        timezone = ZoneInfo(str(shop.get("timezone", "Asia/Tokyo")))
        shipping_days = _calendar(path, shipping, "shipping", timezone, hours=False)
        support, first_reply_hours = None, 0.0
        if "support" in doc:
            support = _calendar(path, doc["support"], "support", timezone, hours=True)
            first_reply_hours = _target_hours(path, doc["support"])
        return ShopPolicy(
            name=str(shop["name"]),
            url=str(shop["url"]),
            timezone=timezone,
            support_address=str(shop["support_address"]),
            cutoff=_time(shipping["cutoff"], f"{path}: shipping.cutoff"),
            closed_days=shipping_days.closed_days,
            closed_periods=shipping_days.closed_periods,
            support=support,
            first_reply_hours=first_reply_hours,
            cod_weekday=WEEKDAYS.index(weekday),
            cod_cutoff=_time(cod["cutoff"], f"{path}: shipping.cash_on_delivery.cutoff"),
            return_window_days=int(doc["returns"]["window_days"]),
            reshipping_fee_yen=int(doc["reshipping"]["fee_yen"]),
            deletion_days=int(doc["privacy"]["deletion_days"]),
        )
    except KeyError as exc:
        raise PolicyError(f"{path}: missing key {exc.args[0]!r}") from None
