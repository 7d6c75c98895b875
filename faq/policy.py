"""The shop policy (``data/shop.toml``) and the shipping-date rules it implies.

Non-COD orders confirmed on a business day before the cutoff ship that day, later ones the
next business day. Cash on delivery ships once a week on the policy's weekday, for orders
placed before that day's cutoff; when that day is closed, the next business day. Business
days are Monday to Friday except Japanese public holidays (jpholiday) and the policy's
extra closed days.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jpholiday

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_JA = "月火水木金土日"


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

    # -- calendar ------------------------------------------------------------------------

    def is_business_day(self, day: date) -> bool:
        if day.weekday() >= 5 or jpholiday.is_holiday(day):
            return False
        return day.isoformat() not in self.closed_days and day.strftime("%m-%d") not in (
            self.closed_days
        )

    def next_business_day(self, day: date, *, include: bool = False) -> date:
        """The first business day after ``day`` (or ``day`` itself when ``include``)."""
        if not include:
            day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

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
        return f"{day.month}月{day.day}日({WEEKDAY_JA[day.weekday()]})"

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
        return ShopPolicy(
            name=str(shop["name"]),
            url=str(shop["url"]),
            timezone=ZoneInfo(str(shop.get("timezone", "Asia/Tokyo"))),
            support_address=str(shop["support_address"]),
            cutoff=_time(shipping["cutoff"], f"{path}: shipping.cutoff"),
            closed_days=tuple(str(d) for d in shipping.get("closed_days", [])),
            cod_weekday=WEEKDAYS.index(weekday),
            cod_cutoff=_time(cod["cutoff"], f"{path}: shipping.cash_on_delivery.cutoff"),
            return_window_days=int(doc["returns"]["window_days"]),
            reshipping_fee_yen=int(doc["reshipping"]["fee_yen"]),
            deletion_days=int(doc["privacy"]["deletion_days"]),
        )
    except KeyError as exc:
        raise PolicyError(f"{path}: missing key {exc.args[0]!r}") from None
