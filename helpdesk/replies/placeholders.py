"""Placeholders of saved replies: 「{お客様名} 様」 filled in from a ticket and the shop policy.

A placeholder is a name from ``PLACEHOLDERS`` in braces, half-width ``{}`` or full-width
``｛｝`` alike. Values come from the ticket and from the rules the shop's pages state
(``data/shop.toml``, ``faq.policy``), never from a guess: a value that cannot be known for
the ticket (no order number, no arrival date) becomes the visible marker 「【要入力: 注文番号】」
for the agent to fill in, and a reply still holding a marker is refused before it is sent
(``rules.command_problems``), so the customer never sees one.

- {お客様名}: the name given with the ticket.
- {受付番号}: the ticket's reference (HD-26-00042).
- {注文番号}: the order number given with the ticket.
- {返品期限}: the last day to contact the shop about a return: 「商品到着後、3日以内に
  お問い合わせフォームへご連絡をお願いいたします」, the arrival date given with the ticket plus
  ``returns.window_days`` (the same count as the forms' "late" flag).
- {発送予定日}: the shipping day, by the shop's stated rule (「16時までのご注文 → 当日発送、
  16時以降 → 翌日発送」, 土日祝日 and the closed days excepted), of something confirmed at the
  moment the reply is written: the exchange or reshipment the reply arranges. Cash on
  delivery does not apply to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from faq import ShopPolicy
from faq.calendar import CalendarError, format_date

CUSTOMER_NAME = "お客様名"
REFERENCE = "受付番号"
ORDER_NUMBER = "注文番号"
RETURN_DEADLINE = "返品期限"
SHIP_DATE = "発送予定日"

#: Every placeholder, in the order the admins' page lists them, with what it becomes.
PLACEHOLDERS: dict[str, str] = {
    CUSTOMER_NAME: "お問い合わせのときのお名前",
    REFERENCE: "受付番号(例: HD-26-00042)",
    ORDER_NUMBER: "お客様が入力した注文番号",
    RETURN_DEADLINE: "商品到着日からショップの返品連絡期限の日数後の日付(到着日がなければ要入力)",
    SHIP_DATE: "いま手配した場合の発送日(16時までは当日、以降は翌営業日。土日祝日を除く)",
}

# {name} or ｛name｝: a short name without braces or line breaks.
_PLACEHOLDER = re.compile(r"[{｛]([^{}｛｝\r\n]{1,40})[}｝]")
_MARKER = re.compile(r"【要入力: ?[^】\r\n]{1,40}】")


def marker(name: str) -> str:
    """The visible mark of a value the agent must fill in: 「【要入力: 注文番号】」."""
    return f"【要入力: {name}】"


def unknown_placeholders(body: str) -> list[str]:
    """Names in braces that are not placeholders, each once, in order of appearance."""
    found = [match[1].strip() for match in _PLACEHOLDER.finditer(body)]
    return list(dict.fromkeys(name for name in found if name not in PLACEHOLDERS))


def placeholder_problems(body: str) -> list[str]:
    """Japanese messages for the admin saving ``body``: unknown placeholders."""
    unknown = unknown_placeholders(body)
    if not unknown:
        return []
    names = "、".join(f"{{{name}}}" for name in unknown)
    usable = " ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    return [f"差し込み項目 {names} は使えません。使える項目は {usable} です。"]


def unfilled(body: str) -> list[str]:
    """The markers of values left to fill in (「【要入力: 返品期限】」), each once."""
    return list(dict.fromkeys(match[0] for match in _MARKER.finditer(body)))


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What the placeholders of one ticket are filled in from."""

    customer_name: str
    reference: str
    order_number: str | None = None
    arrived_on: date | None = None


def values(facts: TicketFacts, policy: ShopPolicy, *, now: datetime) -> dict[str, str]:
    """Every placeholder's text for this ticket at ``now`` (aware); markers where unknown."""
    deadline = (
        format_date(facts.arrived_on + timedelta(days=policy.return_window_days))
        if facts.arrived_on is not None
        else marker(RETURN_DEADLINE)
    )
    try:
        ship = format_date(policy.ship_date(now))
    except CalendarError:  # no shipping day within the calendar's reach: nothing promised
        ship = marker(SHIP_DATE)
    return {
        CUSTOMER_NAME: facts.customer_name or marker(CUSTOMER_NAME),
        REFERENCE: facts.reference,
        ORDER_NUMBER: facts.order_number or marker(ORDER_NUMBER),
        RETURN_DEADLINE: deadline,
        SHIP_DATE: ship,
    }


def render(body: str, filled: Mapping[str, str]) -> str:
    """``body`` with every known placeholder replaced by its value; unknown names stay."""

    def replace(match: re.Match[str]) -> str:
        return filled.get(match[1].strip(), match[0])

    return _PLACEHOLDER.sub(replace, body)
