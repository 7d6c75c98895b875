"""The insights page's charts, drawn from its figures (``svg`` draws, this picks)."""

from __future__ import annotations

from markupsafe import Markup

from helpdesk.insights.queries import KINDS, Insights
from helpdesk.insights.svg import Bar, bar_chart, hbar_chart
from helpdesk.tickets.labels import kind_label


def duration_text(minutes: int | None) -> str:
    """「2時間15分」「45分」; 「—」 without a figure."""
    if minutes is None:
        return "—"
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}分"
    return f"{hours}時間{rest}分" if rest else f"{hours}時間"


def _day(day_iso: str) -> str:
    return f"{int(day_iso[5:7])}/{int(day_iso[8:10])}"


def charts(found: Insights) -> dict[str, Markup]:
    days = found.period.days
    tickets = [
        Bar(
            _day(d.isoformat()),
            found.created_on(d),
            f"{d.month}月{d.day}日: {found.created_on(d)}件",
        )
        for d in days
    ]
    asked = [
        Bar(
            _day(d.isoformat()),
            found.faq[d].asked if d in found.faq else 0,
            f"{d.month}月{d.day}日: 質問{found.faq[d].asked if d in found.faq else 0}件"
            f"(回答{found.faq[d].answered if d in found.faq else 0}件)",
        )
        for d in days
    ]
    kinds = [
        Bar(kind_label(k), found.by_kind[k].created if k in found.by_kind else 0) for k in KINDS
    ]
    gaps = [Bar(g.sample, g.count) for g in found.gaps]
    return {
        "tickets": bar_chart(tickets, title="日別の受付件数", unit="件"),
        "kinds": hbar_chart(kinds, title="種類別の受付件数", unit="件"),
        "faq": bar_chart(asked, title="日別のFAQ質問数", unit="件"),
        "gaps": hbar_chart(gaps, title="回答できなかった質問(上位)", unit="件"),
    }
