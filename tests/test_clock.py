"""Stored UTC times shown in Japan."""

from __future__ import annotations

from datetime import UTC, datetime

from helpdesk.clock import jst


def test_a_utc_time_is_shown_in_tokyo_with_its_weekday() -> None:
    # 15:30 UTC on Monday is 00:30 on Tuesday in Tokyo.
    assert jst(datetime(2026, 11, 23, 15, 30, tzinfo=UTC)) == "2026年11月24日 00:30(火)"


def test_naive_times_from_sqlite_are_utc_and_formats_without_a_day_have_no_weekday() -> None:
    assert jst(datetime(2026, 11, 23, 15, 30), "%H:%M") == "00:30"
    assert jst(None) == ""
