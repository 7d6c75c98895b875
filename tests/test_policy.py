"""Shipping-date rules: business days, the 16:00 cutoff, holidays and cash on delivery."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from faq import PolicyError, ShopPolicy, load_policy
from helpdesk.settings import ROOT

TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture(scope="module")
def policy() -> ShopPolicy:
    return load_policy(ROOT / "data" / "shop.toml")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


def test_policy_file_holds_the_shop_facts(policy: ShopPolicy) -> None:
    assert policy.cutoff.hour == 16 and policy.cod_cutoff.hour == 16
    assert policy.cod_weekday == 4  # Friday
    assert policy.return_window_days == 3
    assert policy.reshipping_fee_yen == 250
    assert policy.support_address == "admin@interiorltd.jp"
    assert policy.deletion_days == 30


@pytest.mark.parametrize(
    ("ordered_at", "ships_on"),
    [
        # Before the cutoff on a business day: the same day.
        (jst(2026, 11, 24, 13, 41), date(2026, 11, 24)),
        (jst(2026, 11, 24, 15, 59, 59), date(2026, 11, 24)),
        # At or after 16:00: the next business day.
        (jst(2026, 11, 24, 16, 0, 0), date(2026, 11, 25)),
        (jst(2026, 11, 24, 21, 33), date(2026, 11, 25)),
        # Friday 17:10 ships on Monday.
        (jst(2026, 11, 27, 17, 10), date(2026, 11, 30)),
        # Weekend orders: Monday, even before 16:00.
        (jst(2026, 11, 28, 10, 0), date(2026, 11, 30)),
        (jst(2026, 11, 29, 9, 0), date(2026, 11, 30)),
        # 勤労感謝の日 (Mon 23 Nov 2026) is a holiday.
        (jst(2026, 11, 23, 10, 0), date(2026, 11, 24)),
        # Golden Week 2026: 3-6 May are holidays (6 May is a substitute holiday).
        (jst(2026, 5, 1, 17, 0), date(2026, 5, 7)),
        (jst(2026, 4, 29, 11, 0), date(2026, 4, 30)),
        # Year end: 1 January is a holiday and 2-3 January 2027 a weekend.
        (jst(2026, 12, 31, 17, 0), date(2027, 1, 4)),
        # A moment given in UTC: 07:30 UTC is 16:30 in Japan.
        (datetime(2026, 11, 24, 7, 30, tzinfo=UTC), date(2026, 11, 25)),
    ],
)
def test_ship_date(policy: ShopPolicy, ordered_at: datetime, ships_on: date) -> None:
    assert policy.ship_date(ordered_at) == ships_on


@pytest.mark.parametrize(
    ("ordered_at", "ships_on"),
    [
        # The shop's examples: Monday 17:11 -> Friday of that week; Friday 16:37 -> next Friday.
        (jst(2026, 11, 16, 17, 11), date(2026, 11, 20)),
        (jst(2026, 11, 20, 16, 37), date(2026, 11, 27)),
        (jst(2026, 11, 20, 15, 59), date(2026, 11, 20)),
        (jst(2026, 11, 21, 10, 0), date(2026, 11, 27)),
        # Friday 1 January 2027 is a holiday: the next business day, Monday 4 January.
        (jst(2026, 12, 28, 12, 0), date(2027, 1, 4)),
    ],
)
def test_cash_on_delivery_ships_on_fridays(
    policy: ShopPolicy, ordered_at: datetime, ships_on: date
) -> None:
    assert policy.cod_ship_date(ordered_at) == ships_on


def test_extra_closed_days_from_the_policy(policy: ShopPolicy) -> None:
    year_end = dataclasses.replace(policy, closed_days=("12-29", "12-30", "12-31", "2027-01-04"))
    assert year_end.ship_date(jst(2026, 12, 28, 17, 0)) == date(2027, 1, 5)


def test_naive_times_are_refused(policy: ShopPolicy) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        policy.ship_date(datetime(2026, 11, 24, 12, 0))


def test_notice_gives_concrete_dates(policy: ShopPolicy) -> None:
    notice = policy.shipping_notice("ship_date", now=jst(2026, 11, 27, 17, 10))
    assert (
        notice
        == "今ご注文いただくと 11月30日(月) に発送します。代金引換は 12月4日(金) の発送です。"
    )
    cod = policy.shipping_notice("cod_ship_date", now=jst(2026, 11, 24, 9, 0))
    assert cod == "代金引換は 11月27日(金) の発送です。"


def test_invalid_policy_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    text = (ROOT / "data" / "shop.toml").read_text(encoding="utf-8")
    path.write_text(text.replace('cutoff = "16:00"', 'cutoff = "4pm"', 1), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"shop\.toml: shipping\.cutoff"):
        load_policy(path)
    path.write_text(text.replace("window_days = 3", ""), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"missing key .window_days."):
        load_policy(path)
