"""Business calendars: due times across nights, weekends, holidays, closed days and periods."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faq import PolicyError, ShopPolicy, load_policy
from faq.calendar import BusinessCalendar, CalendarError, ClosedPeriod, parse_calendar
from helpdesk.settings import ROOT

TOKYO = ZoneInfo("Asia/Tokyo")
SHOP_TOML = (ROOT / "data" / "shop.toml").read_text(encoding="utf-8")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


@pytest.fixture(scope="module")
def policy() -> ShopPolicy:
    return load_policy(ROOT / "data" / "shop.toml")


@pytest.fixture(scope="module")
def support(policy: ShopPolicy) -> BusinessCalendar:
    assert policy.support is not None
    return policy.support


def test_the_shop_file_sets_the_support_calendar(policy: ShopPolicy) -> None:
    support = policy.support
    assert support is not None
    assert (support.open_minute, support.close_minute) == (10 * 60, 17 * 60)
    assert support.weekdays == frozenset(range(5)) and support.public_holidays
    assert policy.first_reply_hours == 7
    assert [p.name for p in support.closed_periods] == ["年末年始", "お盆"]
    # The support calendar does not change the shipping days.
    assert policy.closed_days == () and policy.closed_periods == ()
    assert policy.is_business_day(date(2026, 12, 30))
    assert not support.is_open_day(date(2026, 12, 30))


@pytest.mark.parametrize(
    ("created", "due"),
    [
        # Wednesday 11:30: 5.5 hours today, 1.5 tomorrow.
        (jst(2026, 12, 2, 11, 30), jst(2026, 12, 3, 11, 30)),
        # The same moment given in UTC.
        (datetime(2026, 12, 2, 2, 30, tzinfo=UTC), jst(2026, 12, 3, 11, 30)),
        # Friday 15:00: two hours on Friday, the weekend does not count.
        (jst(2026, 11, 27, 15, 0), jst(2026, 11, 30, 15, 0)),
        # Saturday: counting starts at Monday's opening.
        (jst(2026, 11, 28, 12, 0), jst(2026, 11, 30, 17, 0)),
        # Friday 16:00, then 勤労感謝の日 (Monday 23 November 2026) is closed too.
        (jst(2026, 11, 20, 16, 0), jst(2026, 11, 24, 16, 0)),
        # Silver week 2026: 敬老の日 (21), 国民の休日 (22), 秋分の日 (23 September).
        (jst(2026, 9, 18, 17, 30), jst(2026, 9, 24, 17, 0)),
        # 年末年始 (12-29 to 01-04, across the new year): Monday 28 December 16:30 has half an
        # hour; the rest comes on Tuesday 5 January.
        (jst(2026, 12, 28, 16, 30), jst(2027, 1, 5, 16, 30)),
        # Created inside the period (New Year's Eve night).
        (jst(2026, 12, 31, 23, 0), jst(2027, 1, 5, 17, 0)),
        # お盆 (08-13 to 08-16, Thursday to Sunday in 2026).
        (jst(2026, 8, 12, 12, 0), jst(2026, 8, 17, 12, 0)),
        # The edges of the day: before, at and after the opening and the closing.
        (jst(2026, 12, 2, 9, 59), jst(2026, 12, 2, 17, 0)),
        (jst(2026, 12, 2, 10, 0), jst(2026, 12, 2, 17, 0)),
        (jst(2026, 12, 2, 10, 1), jst(2026, 12, 3, 10, 1)),
        (jst(2026, 12, 2, 16, 59), jst(2026, 12, 3, 16, 59)),
        (jst(2026, 12, 2, 17, 0), jst(2026, 12, 3, 17, 0)),
        (jst(2026, 12, 2, 17, 1), jst(2026, 12, 3, 17, 0)),
        (jst(2026, 12, 2, 23, 59, 59), jst(2026, 12, 3, 17, 0)),
        (jst(2026, 12, 3, 0, 0), jst(2026, 12, 3, 17, 0)),
    ],
)
def test_first_reply_due(policy: ShopPolicy, created: datetime, due: datetime) -> None:
    assert policy.first_reply_due(created) == due


def test_a_closed_day_of_the_shop_is_skipped(support: BusinessCalendar) -> None:
    closed = dataclasses.replace(support, closed_days=("2026-12-04", "12-08"))
    # Thursday 12:00: five hours, then Friday 4 December is closed: Monday.
    assert closed.due_at(jst(2026, 12, 3, 12, 0), 7) == jst(2026, 12, 7, 12, 0)
    # The yearly closed day: Tuesday 8 December (every year).
    assert closed.due_at(jst(2026, 12, 7, 12, 0), 7) == jst(2026, 12, 9, 12, 0)
    assert closed.closed_reason(date(2027, 12, 8)) == "休業日"


def test_a_one_off_period_and_a_period_within_a_year(support: BusinessCalendar) -> None:
    stocktaking = ClosedPeriod("棚卸し", "2027-02-10", "2027-02-12")
    calendar = dataclasses.replace(support, closed_periods=(stocktaking,))
    # Tuesday 9 February 2027 16:00; Wednesday to Friday are closed; Monday 15.
    assert calendar.due_at(jst(2027, 2, 9, 16, 0), 7) == jst(2027, 2, 15, 16, 0)
    # Only in 2027.
    assert calendar.is_open_day(date(2028, 2, 10))


def test_closed_reasons(support: BusinessCalendar) -> None:
    assert support.closed_reason(date(2026, 11, 28)) == "土曜日"
    assert support.closed_reason(date(2026, 11, 23)) == "勤労感謝の日"
    assert support.closed_reason(date(2026, 12, 30)) == "年末年始"
    assert support.closed_reason(date(2027, 1, 4)) == "年末年始"  # a Monday
    assert support.closed_reason(date(2026, 8, 14)) == "お盆"
    assert support.closed_reason(date(2026, 12, 2)) is None


def test_business_time_between_counts_what_due_at_adds(support: BusinessCalendar) -> None:
    assert support.business_time_between(
        jst(2026, 12, 28, 16, 30), jst(2027, 1, 5, 16, 30)
    ) == timedelta(hours=7)
    assert support.business_time_between(jst(2026, 12, 5, 9), jst(2026, 12, 6, 20)) == timedelta(0)
    assert support.business_time_between(jst(2026, 12, 3), jst(2026, 12, 2)) == timedelta(0)


def test_the_summary_says_the_owners_hours(support: BusinessCalendar) -> None:
    assert support.summary() == (
        "サポートの対応時間は平日 10:00〜17:00 です。祝日、年末年始(12月29日〜1月4日)、"
        "お盆(8月13日〜8月16日)はお休みをいただいております。"
    )
    saturdays = dataclasses.replace(
        support, weekdays=frozenset({0, 1, 2, 3, 4, 5}), public_holidays=False, closed_periods=()
    )
    assert (
        saturdays.summary() == "サポートの対応時間は月・火・水・木・金・土曜日 10:00〜17:00 です。"
    )


def test_the_reply_promise_names_the_day_in_japan(policy: ShopPolicy) -> None:
    due = policy.first_reply_due(jst(2026, 12, 2, 11, 30))
    assert due is not None
    assert policy.reply_promise(due) == "12月3日(木)までにご返信いたします"
    # 17:00 in Japan is 08:00 UTC: the day is Japan's.
    late = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)  # 4 December 08:30 in Japan
    assert policy.reply_promise(late) == "12月4日(金)までにご返信いたします"


def test_a_whole_day_calendar_and_a_closing_at_midnight() -> None:
    calendar = parse_calendar({"hours": "00:00-24:00"}, "support", timezone=TOKYO, hours=True)
    assert calendar.due_at(jst(2026, 12, 4, 20, 0), 8) == jst(2026, 12, 7, 4, 0)
    assert calendar.hours_text == "0:00〜24:00"


def test_time_is_counted_in_real_hours_across_a_clock_change() -> None:
    """Asia/Tokyo has no daylight saving time: a day of business is always the same length.
    A zone with it counts the real hours (the arithmetic is done in UTC)."""
    always = {"hours": "00:00-24:00", "weekdays": ["saturday", "sunday"], "public_holidays": False}
    tokyo = parse_calendar(always, "support", timezone=TOKYO, hours=True)
    assert tokyo.due_at(jst(2026, 3, 28, 12, 0), 24) == jst(2026, 3, 29, 12, 0)
    berlin = ZoneInfo("Europe/Berlin")
    europe = parse_calendar(always, "support", timezone=berlin, hours=True)
    # Sunday 29 March 2026 has 23 hours in Berlin: 24 hours from Saturday noon end at 13:00.
    due = europe.due_at(datetime(2026, 3, 28, 12, 0, tzinfo=berlin), 24)
    assert due == datetime(2026, 3, 29, 13, 0, tzinfo=berlin)
    assert europe.business_time_between(datetime(2026, 3, 28, 12, 0, tzinfo=berlin), due) == (
        timedelta(hours=24)
    )


def test_naive_times_are_refused(support: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        support.due_at(datetime(2026, 12, 2, 12, 0), 7)


def test_a_calendar_that_never_opens_says_so(policy: ShopPolicy) -> None:
    years = (ClosedPeriod("休業", "2026-01-01", "2030-12-31"),)
    closed = BusinessCalendar(closed_periods=years)
    with pytest.raises(CalendarError, match="closed for over"):
        closed.due_at(jst(2026, 6, 1, 12, 0), 1)
    # A ticket made meanwhile is promised nothing, and its submission does not fail.
    assert policy.support is not None
    shut = dataclasses.replace(
        policy, support=dataclasses.replace(policy.support, closed_periods=years)
    )
    assert shut.first_reply_due(jst(2026, 6, 1, 12, 0)) is None


# -- the file: every mistake is named ------------------------------------------------------------


def _policy_with(tmp_path: Path, old: str, new: str) -> ShopPolicy:
    assert old in SHOP_TOML
    path = tmp_path / "shop.toml"
    path.write_text(SHOP_TOML.replace(old, new, 1), encoding="utf-8")
    return load_policy(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('hours = "10:00-17:00"', 'hours = "10-17"', r"support\.hours: 受付時間は"),
        ('hours = "10:00-17:00"', 'hours = "17:00-10:00"', r"support\.hours: .*10:00-17:00"),
        ('hours = "10:00-17:00"', 'hours = "10:00-25:00"', r"support\.hours"),
        ('hours = "10:00-17:00"', "", r"support\.hours: 受付時間を書いてください"),
        ("first_reply_hours = 7", "first_reply_hours = 0", r"support\.first_reply_hours"),
        ("first_reply_hours = 7", 'first_reply_hours = "7"', r"support\.first_reply_hours"),
        ("first_reply_hours = 7", "first_reply_hours = true", r"support\.first_reply_hours"),
        (
            'weekdays = ["monday"',
            'weekdays = ["mon"',
            r"support\.weekdays: 営業する曜日を.*weekday names",
        ),
        ("public_holidays = true", 'public_holidays = "yes"', r"support\.public_holidays"),
        (
            'first_reply_hours = 7\n# Extra closed days: "YYYY-MM-DD" once, "MM-DD" every '
            "year.\nclosed_days = []",
            'first_reply_hours = 7\nclosed_days = ["2026-02-30"]',
            r"support\.closed_days\[0\]: 日付は .*'2026-02-30'",
        ),
        ('to = "01-04"', 'to = "2027-01-04"', r"support\.closed_periods\[0\]: from と to は"),
        ('from = "08-13"', 'from = "08-32"', r"support\.closed_periods\[1\]\.from"),
        ('name = "お盆"', 'name = ""', r"support\.closed_periods\[1\]\.name"),
        ('from = "12-29"', 'from = "01-05"', r"support: 毎年の休業日と休業期間で一年中"),
        (
            "closed_days = []\n\n[shipping.cash_on_delivery]",
            'closed_days = []\nweekdays = ["saturday"]\n\n[shipping.cash_on_delivery]',
            r"shipping\.weekdays: 発送日はショップのページのとおり",
        ),
        (
            "closed_days = []\n\n[shipping.cash_on_delivery]",
            'closed_days = ["12/31"]\n\n[shipping.cash_on_delivery]',
            r"shipping\.closed_days\[0\]",
        ),
    ],
)
def test_invalid_calendar_settings_name_the_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message) as raised:
        _policy_with(tmp_path, old, new)
    assert str(raised.value).startswith(str(tmp_path / "shop.toml"))


def test_one_off_period_must_not_end_before_it_starts(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"closed_periods\[0\]: to \(2027-01-04\) が from"):
        _policy_with(
            tmp_path,
            'from = "12-29"\nto = "01-04"',
            'from = "2027-12-29"\nto = "2027-01-04"',
        )


def test_without_a_support_table_nothing_is_promised(tmp_path: Path) -> None:
    start = SHOP_TOML.index("[support]")
    path = tmp_path / "shop.toml"
    path.write_text(SHOP_TOML[:start], encoding="utf-8")
    policy = load_policy(path)
    assert policy.support is None
    assert policy.first_reply_due(jst(2026, 12, 2, 12, 0)) is None


def test_shipping_closed_periods_move_shipping_days(tmp_path: Path) -> None:
    policy = _policy_with(
        tmp_path,
        "closed_days = []\n\n[shipping.cash_on_delivery]",
        'closed_days = []\n\n[[shipping.closed_periods]]\nname = "年末年始"\n'
        'from = "12-29"\nto = "01-04"\n\n[shipping.cash_on_delivery]',
    )
    assert policy.ship_date(jst(2026, 12, 28, 17, 0)) == date(2027, 1, 5)


def test_full_width_hours_are_read(tmp_path: Path) -> None:
    policy = _policy_with(tmp_path, 'hours = "10:00-17:00"', 'hours = "１０：００〜１７：００"')
    assert policy.support is not None and policy.support.hours_text == "10:00〜17:00"


# -- properties ----------------------------------------------------------------------------------

# Creation times from 2025 to 2030 (jpholiday's computed holidays), to the second.
MOMENTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 1), timezones=st.just(TOKYO)
).map(lambda moment: moment.replace(microsecond=0))
# Targets in whole minutes, up to two weeks of business hours.
TARGETS = st.integers(min_value=1, max_value=14 * 7 * 60).map(lambda minutes: minutes / 60)
# The shop's calendar with a one-off closed day and a one-off period added.
CALENDAR = dataclasses.replace(
    load_policy(ROOT / "data" / "shop.toml").support,  # type: ignore[arg-type]
    closed_days=("2027-05-10", "11-11"),
    closed_periods=(
        ClosedPeriod("年末年始", "12-29", "01-04"),
        ClosedPeriod("お盆", "08-13", "08-16"),
        ClosedPeriod("棚卸し", "2028-02-07", "2028-02-09"),
    ),
)
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(created=MOMENTS, hours=TARGETS)
def test_due_is_after_creation_and_within_open_hours(created: datetime, hours: float) -> None:
    due = CALENDAR.due_at(created, hours)
    assert due > created
    local = due.astimezone(TOKYO)
    opening = CALENDAR.hours_on(local.date())
    assert opening is not None, f"due on a closed day: {local}"
    assert opening[0] < due <= opening[1], f"due outside hours: {local}"


@PROPERTY_SETTINGS
@given(created=MOMENTS, hours=TARGETS)
def test_due_counts_exactly_the_target_in_business_time(created: datetime, hours: float) -> None:
    due = CALENDAR.due_at(created, hours)
    assert CALENDAR.business_time_between(created, due) == timedelta(hours=hours)


@PROPERTY_SETTINGS
@given(first=MOMENTS, later=MOMENTS, hours=TARGETS)
def test_due_is_monotonic_in_creation_time(first: datetime, later: datetime, hours: float) -> None:
    first, later = min(first, later), max(first, later)
    assert CALENDAR.due_at(first, hours) <= CALENDAR.due_at(later, hours)


@PROPERTY_SETTINGS
@given(created=MOMENTS, hours=TARGETS, more=TARGETS)
def test_more_hours_are_never_due_earlier(created: datetime, hours: float, more: float) -> None:
    assert CALENDAR.due_at(created, hours) < CALENDAR.due_at(created, hours + more)
