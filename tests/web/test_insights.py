"""The admins' insights page: figures on a known data set, charts, range, CSV, access."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from helpdesk.insights.period import Period
from helpdesk.insights.queries import insights
from helpdesk.models import (
    FaqDaily,
    FaqGap,
    InsightDay,
    Ticket,
    TicketEvent,
    TicketKind,
)
from tests.helpers import logged_in_client, soup, submit_inquiry

TOKYO = ZoneInfo("Asia/Tokyo")
SVG = "{http://www.w3.org/2000/svg}"
PERIOD = {"from": "2026-11-13", "to": "2026-11-24"}


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO).astimezone(UTC)


# (kind, created, first replied) in Japan, and the business minutes (10:00-17:00 on
# weekdays, public holidays closed: data/shop.toml) counted by hand.
KNOWN = [
    (TicketKind.inquiry, "2026-11-16 10:00", "2026-11-16 11:00"),  # 60
    (TicketKind.inquiry, "2026-11-16 16:00", "2026-11-17 11:00"),  # 60 + 60 = 120
    (TicketKind.defect, "2026-11-14 12:00", "2026-11-16 10:30"),  # Saturday: 30
    (TicketKind.defect, "2026-11-13 16:30", "2026-11-16 12:00"),  # Fri 30 + Mon 120 = 150
    (TicketKind.exchange, "2026-11-16 09:00", "2026-11-16 13:00"),  # before opening: 180
    (TicketKind.inquiry, "2026-11-17 10:00", "2026-11-18 17:00"),  # 420 + 420 = 840
    # Wed, Thu, Fri 420 each; Mon 23rd 勤労感謝の日; Tue 45: 1305
    (TicketKind.wrong_item, "2026-11-18 10:00", "2026-11-24 10:45"),
]
# Sorted 30 60 120 150 180 840 1305: the median is the 4th (150), the 90th percentile
# the 7th (ceil(0.9 * 7) = 7): 1305. Replies later than 7 business hours: 840 and 1305.
MEDIAN, P90 = 150, 1305


async def _known(app: Starlette) -> list[Ticket]:
    helpdesk = app.state.helpdesk
    policy = helpdesk.faq.policy
    made = []
    for index, (kind, created, replied) in enumerate(KNOWN):
        ticket = await submit_inquiry(app, email=f"c{index}@example.jp")
        created_at = jst(created)
        async with helpdesk.sessions() as session:
            await session.execute(
                update(Ticket)
                .where(Ticket.id == ticket.id)
                .values(
                    kind=kind,
                    created_at=created_at,
                    first_reply_due_at=policy.first_reply_due(created_at),
                    first_replied_at=jst(replied),
                )
            )
            if index == 0:  # sent although the form suggested FAQ answers
                session.add(
                    TicketEvent(
                        ticket_id=ticket.id,
                        kind="deflection_shown",
                        actor="system",
                        data='{"ids": ["shipping-fee"]}',
                        created_at=created_at,
                    )
                )
            await session.commit()
        made.append(ticket)
    async with helpdesk.sessions() as session:
        for query, moment in [
            ("送料は?", "2026-11-16 09:00"),
            ("送料は？", "2026-11-16 20:00"),
            (" 送料 は ", "2026-11-17 12:00"),
            ('=HYPERLINK("http://evil.example")', "2026-11-17 13:00"),
            ("宇宙に届けて", "2026-11-18 23:59"),
            ("期間外", "2026-11-25 00:00"),
        ]:
            session.add(FaqGap(query=query, confidence=0.1, created_at=jst(moment)))
        session.add(FaqDaily(day=date(2026, 11, 16), asked=10, answered=7, suggested=3))
        session.add(FaqDaily(day=date(2026, 11, 17), asked=5, answered=5, suggested=0))
        await session.commit()
    return made


async def _figures(app: Starlette, now: datetime):  # type: ignore[no-untyped-def]
    helpdesk = app.state.helpdesk
    policy = helpdesk.faq.policy
    return await insights(
        helpdesk.sessions,
        period=Period(date(2026, 11, 13), date(2026, 11, 24)),
        now=now,
        timezone=TOKYO,
        calendar=policy.support,
    )


async def test_the_figures_of_a_known_data_set(app: Starlette) -> None:
    await _known(app)
    # In the middle of the range: the 13th to 17th are rolled up, the rest counted live.
    middle = await _figures(app, jst("2026-11-18 12:00"))
    async with app.state.helpdesk.sessions() as session:
        rolled = set((await session.execute(select(InsightDay.day))).scalars().all())
    assert rolled == {date(2026, 11, d) for d in range(13, 18)}
    later = await _figures(app, datetime.now(UTC))
    for found in (middle, later):
        assert found.business_hours
        assert (found.reply.count, found.reply.median, found.reply.p90) == (7, MEDIAN, P90)
        assert found.reply_by_kind["defect"].median == 30  # 30 and 150: the 1st of 2
        assert found.reply_by_kind["defect"].p90 == 150
        assert found.reply_by_kind["inquiry"].median == 120  # 60 120 840
        total = found.total
        assert (total.created, total.replied, total.replied_late) == (7, 7, 2)
        assert found.created_on(date(2026, 11, 16)) == 3
        assert found.by_kind["inquiry"].created == 3
        assert found.tickets[date(2026, 11, 16)]["inquiry"].replied == 1
        top = found.gaps[0]  # shown by one of its questions as asked
        assert (top.key, top.count, top.last_day) == ("送料は", 3, date(2026, 11, 17))
        assert top.sample in ("送料は?", "送料は？", " 送料 は ")
        assert {g.key for g in found.gaps} == {"送料は", "hyperlinkhttpevilexample", "宇宙に届けて"}
        assert found.faq_total.asked == 15 and found.faq_total.answered == 12
        # 3 forms showed answers, 1 ticket was sent from one of them: 2 were not sent.
        assert found.not_sent_after_suggestions == 2
        assert found.deflection_rate == pytest.approx(2 / 3)
    async with app.state.helpdesk.sessions() as session:
        rolled = set((await session.execute(select(InsightDay.day))).scalars().all())
    assert len(rolled) == 12  # every day of the range, now closed


async def test_overdue_now_counts_the_queues_overdue_tickets(app: Starlette) -> None:
    ticket = await submit_inquiry(app)
    async with app.state.helpdesk.sessions() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(first_reply_due_at=jst("2026-11-20 10:00"))
        )
        await session.commit()
    found = await _figures(app, datetime.now(UTC))
    assert found.overdue_now == 1
    assert (await _figures(app, jst("2026-11-20 09:00"))).overdue_now == 0


async def test_questions_are_counted_per_day(app: Starlette) -> None:
    faq = app.state.helpdesk.faq
    await faq.ask_and_log("送料はいくらですか")
    await faq.ask_and_log("宇宙人に届けられますか")
    faq.note_suggested()
    await faq.flush_gaps()
    await faq.ask_and_log("支払い方法を教えてください")
    await faq.flush_gaps()
    async with app.state.helpdesk.sessions() as session:
        [row] = (await session.execute(select(FaqDaily))).scalars().all()
    assert row.day == faq.policy.local(datetime.now(UTC)).date()
    assert (row.asked, row.suggested) == (3, 1)
    assert 0 < row.answered < 3  # the alien question is not answered


async def test_the_suggest_api_counts_a_forms_first_suggestions(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    for first in ("1", "1", None):
        params = {"q": "後払いの請求書が届かない", **({"first": first} if first else {})}
        response = await client.get("/api/faq/suggest", params=params)
        assert response.json()["results"]
    await client.get("/api/faq/suggest", params={"q": "ああああ", "first": "1"})  # nothing shown
    await app.state.helpdesk.faq.flush_gaps()
    async with app.state.helpdesk.sessions() as session:
        [row] = (await session.execute(select(FaqDaily))).scalars().all()
    assert (row.suggested, row.asked) == (2, 0)


def _bars(svg: ET.Element) -> int:
    return sum(1 for rect in svg.iter(f"{SVG}rect") if rect.get("class") == "bar")


async def test_the_page_shows_the_figures_and_charts(app: Starlette) -> None:
    await _known(app)
    async with logged_in_client(app, admin=True) as admin:
        response = await admin.get("/console/insights", params=PERIOD)
    assert response.status_code == 200
    page = soup(response)
    assert page.select_one("html")["lang"] == "ja"  # type: ignore[index]
    figures = {
        dt.get_text(strip=True): dd.get_text(strip=True)
        for dt, dd in zip(
            page.select(".insights-summary dt"), page.select(".insights-summary dd"), strict=True
        )
    }
    assert figures["受付件数"] == "7件"
    assert figures["初回返信時間(中央値)"] == "2時間30分"
    assert figures["初回返信時間(90パーセンタイル)"] == "21時間45分"
    assert figures["期限を過ぎた初回返信"] == "2件 / 7件"
    assert figures["回答候補を表示して送信されなかったフォーム"] == "2件 / 3件(67%)"
    charts = [ET.fromstring(str(svg)) for svg in page.select("figure.chart svg")]
    titles = [svg.findtext(f"{SVG}title") for svg in charts]
    assert titles == [
        "日別の受付件数",
        "種類別の受付件数",
        "日別のFAQ質問数",
        "回答できなかった質問(上位)",
    ]
    assert [_bars(svg) for svg in charts] == [12, 4, 12, 3]
    nav = page.select_one("nav.console-nav a[aria-current=page]")
    assert nav is not None and nav.get_text() == "分析"
    links = [a["href"] for a in page.select("a.csv-link")]
    assert "/console/insights/gaps.csv?from=2026-11-13&to=2026-11-24" in links
    assert len(links) == 5


async def test_the_tables_as_csv(app: Starlette) -> None:
    await _known(app)
    async with logged_in_client(app, admin=True) as admin:
        daily = await admin.get("/console/insights/daily.csv", params=PERIOD)
        gaps = await admin.get("/console/insights/gaps.csv", params=PERIOD)
        kinds = await admin.get("/console/insights/kinds.csv", params=PERIOD)
        missing = await admin.get("/console/insights/secrets.csv", params=PERIOD)
    assert daily.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="insights-daily-20261113-20261124.csv"' in daily.headers["content-disposition"]
    assert daily.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(daily.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["日付", "受付件数", "不良品"]
    assert len(rows) == 13
    by_day = {row[0]: row for row in rows[1:]}
    assert by_day["2026-11-16"][1] == "3" and by_day["2026-11-16"][-3:] == ["10", "7", "3"]
    assert by_day["2026-11-16"][6] == "4"  # first replies that day
    assert by_day["2026-11-15"][1] == "0"
    gap_rows = list(csv.reader(io.StringIO(gaps.content.decode("utf-8-sig"))))
    assert gap_rows[1][0] in ("送料は?", "送料は？", " 送料 は ")
    assert gap_rows[1][1:] == ["3", "2026-11-17"]
    assert ['\'=HYPERLINK("http://evil.example")', "1", "2026-11-17"] in gap_rows
    kind_rows = list(csv.reader(io.StringIO(kinds.content.decode("utf-8-sig"))))
    assert kind_rows[-1][:6] == ["合計", "7", "7", "2", "150", "1305"]
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-11-31"}, "開始日の「2026-11-31」は存在しない日付です。"),
        (
            {"from": "2026-11-10", "to": "2026-11-01"},
            "開始日は終了日と同じか、それより前の日付にしてください。",
        ),
        ({"to": "2999-01-01"}, "終了日に未来の日付は指定できません"),
    ],
)
async def test_a_bad_range_is_refused_in_japanese_keeping_what_was_typed(
    app: Starlette, params: dict[str, str], message: str
) -> None:
    async with logged_in_client(app, admin=True) as admin:
        response = await admin.get("/console/insights", params=params)
        as_csv = await admin.get("/console/insights/daily.csv", params=params)
    assert response.status_code == 400
    page = soup(response)
    error = page.select_one("#range-error")
    assert error is not None and message in error.get_text()
    for name, value in params.items():
        field = page.select_one(f"input[name={name}]")
        assert field is not None and field["value"] == value
    assert not page.select("figure.chart")
    assert as_csv.status_code == 400 and message in as_csv.text


async def test_only_admins_see_insights(app: Starlette, client: httpx.AsyncClient) -> None:
    async with logged_in_client(app) as agent:
        assert (await agent.get("/console/insights")).status_code == 403
        assert (await agent.get("/console/insights/daily.csv")).status_code == 403
        queue = soup(await agent.get("/console"))
        assert "分析" not in [a.get_text() for a in queue.select("nav.console-nav a")]
    anonymous = await client.get("/console/insights/daily.csv")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith(
        "/console/login"
    )
