"""The insights page's tables: one definition for the HTML tables and the CSV files.

CSV files are UTF-8 with a BOM and CRLF line ends, which Excel in Japan opens as UTF-8.
A text cell that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``, tab or
carriage return first: a gap query is whatever a stranger typed) is written with a ``'``
before it (OWASP's advice on CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from helpdesk.insights.queries import KINDS, Insights
from helpdesk.tickets.labels import kind_label

Cell = str | int | float | None
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # in the URL: /console/insights/{name}.csv
    title: str
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def tables(found: Insights) -> dict[str, Table]:
    """Every table of the page, by name, in the page's order."""
    total_faq = found.faq
    daily = Table(
        "daily",
        "日別の件数",
        (
            "日付",
            "受付件数",
            *(kind_label(k) for k in KINDS),
            "初回返信",
            "うち期限超過",
            "FAQ質問数",
            "FAQ回答数",
            "回答候補を表示したフォーム",
        ),
        [],
    )
    for day in found.period.each_day():
        by_kind = found.tickets.get(day, {})
        faq = total_faq.get(day)
        daily.rows.append(
            (
                day.isoformat(),
                found.created_on(day),
                *(by_kind[k].created if k in by_kind else 0 for k in KINDS),
                sum(c.replied for c in by_kind.values()),
                sum(c.replied_late for c in by_kind.values()),
                faq.asked if faq else 0,
                faq.answered if faq else 0,
                faq.suggested if faq else 0,
            )
        )
    unit = "営業時間の分" if found.business_hours else "分"
    kinds = Table(
        "kinds",
        "種類別の件数と初回返信時間",
        (
            "種類",
            "受付件数",
            "初回返信",
            "うち期限超過",
            f"初回返信時間 中央値({unit})",
            f"初回返信時間 90パーセンタイル({unit})",
            "回答候補の表示後に送信",
        ),
        [],
    )
    for kind in KINDS:
        counts = found.by_kind.get(kind)
        times = found.reply_by_kind.get(kind)
        kinds.rows.append(
            (
                kind_label(kind),
                counts.created if counts else 0,
                counts.replied if counts else 0,
                counts.replied_late if counts else 0,
                times.median if times else None,
                times.p90 if times else None,
                counts.sent_after_suggestions if counts else 0,
            )
        )
    total = found.total
    kinds.rows.append(
        (
            "合計",
            total.created,
            total.replied,
            total.replied_late,
            found.reply.median,
            found.reply.p90,
            total.sent_after_suggestions,
        )
    )
    gaps = Table(
        "gaps",
        "回答できなかった質問(上位)",
        ("質問(例)", "件数", "最後に聞かれた日"),
        [(g.sample, g.count, g.last_day.isoformat()) for g in found.gaps],
    )
    header = ("送信", "回答", "良かった", "改善してほしい", "満足度(%)")
    csat_kinds = Table(
        "csat_kinds",
        "満足度(種類別)",
        ("種類", *header),
        [
            (kind_label(t.key), t.sent, t.answered, t.good, t.improve, _share(t.good, t.answered))
            for t in found.csat_kinds
        ],
    )
    csat_agents = Table(
        "csat_agents",
        "満足度(担当者別)",
        ("担当者", *header),
        [
            (
                a.name,
                a.tally.sent,
                a.tally.answered,
                a.tally.good,
                a.tally.improve,
                _share(a.tally.good, a.tally.answered),
            )
            for a in found.csat_agents
        ],
    )
    return {t.name: t for t in (daily, kinds, gaps, csat_kinds, csat_agents)}


TABLE_NAMES = ("daily", "kinds", "gaps", "csat_kinds", "csat_agents")


def _safe(cell: Cell) -> Cell:
    if isinstance(cell, str) and cell.startswith(FORMULA_START):
        return "'" + cell
    return cell


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bytes:
    """The table as CSV: UTF-8 with a BOM, CRLF, formula-looking text cells defused."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_safe(h) for h in header])
    for row in rows:
        writer.writerow(["" if cell is None else _safe(cell) for cell in row])
    return out.getvalue().encode("utf-8-sig")
