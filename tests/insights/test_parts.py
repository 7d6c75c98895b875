"""The insights' parts without a database: the range, the charts, percentiles, grouping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

import pytest

from helpdesk.insights.export import csv_bytes
from helpdesk.insights.period import MAX_DAYS, Period, PeriodError, parse_period
from helpdesk.insights.queries import percentile
from helpdesk.insights.rollup import gap_key, minutes_bucket
from helpdesk.insights.svg import Bar, bar_chart, hbar_chart

SVG = "{http://www.w3.org/2000/svg}"
TODAY = date(2026, 12, 1)


def bars(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return [rect for rect in root.iter(f"{SVG}rect") if rect.get("class") == "bar"]


def test_a_bar_chart_has_one_bar_per_item_and_escapes_its_text() -> None:
    items = [Bar(f"11/{d}", d % 4) for d in range(1, 31)]
    items[3] = Bar("<script>alert(1)</script> & \"'", 7)
    svg = str(bar_chart(items, title="日別 <件数> & more", unit="件"))
    found = bars(svg)
    assert len(found) == 30
    assert "<script>" not in svg
    titles = [rect.find(f"{SVG}title") for rect in found]
    assert titles[3] is not None and titles[3].text == "<script>alert(1)</script> & \"': 7件"
    heights = [float(rect.get("height", "nan")) for rect in found]
    assert heights[3] == max(heights) and heights[7] == 0  # 7 is the largest, 0 draws nothing


def test_a_horizontal_chart_has_one_bar_per_row() -> None:
    svg = str(hbar_chart([Bar("不良品", 3), Bar("お問い合わせ", 12), Bar("交換", 0)], title="種類"))
    found = bars(svg)
    assert len(found) == 3
    widths = [float(rect.get("width", "nan")) for rect in found]
    assert widths[1] > widths[0] > widths[2] == 0


def test_an_empty_chart_is_still_valid_svg() -> None:
    assert bars(str(bar_chart([], title="なし"))) == []
    assert bars(str(hbar_chart([], title="なし"))) == []


def test_the_default_range_is_the_last_thirty_days() -> None:
    assert parse_period({}, TODAY) == Period(date(2026, 11, 2), TODAY)
    assert parse_period({"from": "", "to": ""}, TODAY).length == 30


def test_a_range_is_read_from_iso_or_full_width_dates() -> None:
    period = parse_period({"from": "２０２６/１１/０１", "to": "2026-11-15"}, TODAY)
    assert period == Period(date(2026, 11, 1), date(2026, 11, 15))
    assert parse_period({"from": "2026-11-20"}, TODAY) == Period(date(2026, 11, 20), TODAY)
    assert parse_period({"to": "2026-10-30"}, TODAY) == Period(
        date(2026, 10, 1), date(2026, 10, 30)
    )
    year = parse_period({"from": "2025-12-01", "to": "2026-12-01"}, TODAY)
    assert year.length == 366 == MAX_DAYS


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "11月1日"}, "開始日は 2026-11-01 のように年-月-日で入力してください"),
        ({"to": "2026-02-30"}, "終了日の「2026-02-30」は存在しない日付です"),
        ({"to": "2026-12-02"}, "終了日に未来の日付は指定できません(今日は2026年12月1日です)"),
        ({"from": "1999-12-31", "to": "2000-01-05"}, "開始日は2000年1月1日以降の日付に"),
        ({"from": "2026-11-10", "to": "2026-11-09"}, "開始日は終了日と同じか、それより前の日付に"),
        (
            {"from": "2025-01-01", "to": "2026-11-30"},
            "期間は366日以内で指定してください(いまは699日です)",
        ),
    ],
)
def test_a_range_that_cannot_be_shown_says_why(params: dict[str, str], message: str) -> None:
    with pytest.raises(PeriodError) as raised:
        parse_period(params, TODAY)
    assert message in str(raised.value)


def test_nearest_rank_percentiles() -> None:
    values = {30: 1, 60: 1, 120: 1, 150: 1, 180: 1, 840: 1, 1305: 1}
    assert percentile(values, 0.5) == 150  # the 4th of 7
    assert percentile(values, 0.9) == 1305  # the 7th of 7 (ceil 6.3)
    assert percentile({10: 9, 500: 1}, 0.9) == 10
    assert percentile({10: 8, 500: 2}, 0.9) == 500
    assert percentile({}, 0.5) is None


def test_reply_minutes_are_kept_to_a_step_that_grows_with_them() -> None:
    assert [minutes_bucket(m) for m in (0, 59, 61, 479, 480, 494, 2399, 2401)] == [
        0,
        59,
        60,
        475,
        480,
        480,
        2385,
        2400,
    ]
    assert minutes_bucket(-3) == 0


def test_gap_queries_meet_when_only_width_case_spaces_and_punctuation_differ() -> None:
    same = ["送料は？", "送料は?", " 送料 は ", "送料は…!", "ｿｳﾘｮｳ", "ソウリョウ", "そうりょう"]
    assert {gap_key(q) for q in same[:4]} == {"送料は"}
    assert {gap_key(q) for q in same[4:]} == {"そうりょう"}
    assert gap_key("iPhone15 ケース") == gap_key("ＩＰＨＯＮＥ１５ケース") == "iphone15けーす"
    assert gap_key("返品できますか") != gap_key("返金できますか")
    assert gap_key("！？") == ""


def test_csv_has_a_bom_crlf_and_defuses_formulas() -> None:
    data = csv_bytes(
        ["質問", "件数"], [['=HYPERLINK("http://evil")', 3], ["+1", None], ['普通, "引用"', -2]]
    )
    assert data.startswith(b"\xef\xbb\xbf")
    text = data[3:].decode("utf-8")
    assert text.split("\r\n") == [
        "質問,件数",
        '\'=HYPERLINK(""http://evil"")",3'.replace("'=", "\"'=", 1),
        "'+1,",
        '"普通, ""引用""",-2',
        "",
    ]


def test_a_day_is_closed_ten_minutes_after_its_midnight_in_japan() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from helpdesk.insights.rollup import closed_before

    tokyo = ZoneInfo("Asia/Tokyo")

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=tokyo).astimezone(UTC)

    # The first day not closed yet: the 9th is still counted live just after midnight.
    assert closed_before(at("2026-11-10 00:05"), tokyo) == date(2026, 11, 9)
    assert closed_before(at("2026-11-10 00:11"), tokyo) == date(2026, 11, 10)
    assert closed_before(at("2026-11-10 23:59"), tokyo) == date(2026, 11, 10)
