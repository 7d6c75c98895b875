"""The history in Japanese (issue 10, item 4): every kind of event the code records has
its sentence in ``labels.event_sentence``, in one place."""

from __future__ import annotations

import json
import re

from helpdesk.models import TicketEvent
from helpdesk.settings import ROOT
from helpdesk.tickets.labels import EVENT_KINDS, event_sentence

_RECORDED = (
    re.compile(r"\bevent\(\s*\"([a-z_]+)\""),  # unit.event("note"), event("created", ...)
    re.compile(r"record_event\(\s*[^,()]+(?:\([^()]*\))?,\s*(?:#[^\n]*\n\s*)?\"([a-z_]+)\""),
    re.compile(r"(?:add_event|TicketEvent)\((?:[^()]|\([^()]*\))*?kind=\"([a-z_]+)\"", re.S),
)


def recorded_kinds() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "helpdesk").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in _RECORDED:
            found.update(pattern.findall(text))
    # ``event(f"deflection_{kind}", ...)``: the forms' two lists of FAQ entries.
    return found | {"deflection_shown", "deflection_followed"}


def test_every_recorded_kind_of_event_has_a_sentence() -> None:
    kinds = recorded_kinds()
    # The scan finds the kinds of every way of recording (not an empty set that passes).
    assert {"created", "note", "unassigned", "mail_dead", "delivery_failed", "merged"} <= kinds
    assert {"auto_reply_received", "csat_answered", "reply_held", "customer_message"} <= kinds
    assert kinds - EVENT_KINDS == set()


def _event(kind: str, **data: object) -> TicketEvent:
    return TicketEvent(ticket_id=1, kind=kind, actor="x", data=json.dumps(data))


def test_sentences_read_as_japanese_with_their_data() -> None:
    status = _event("status_changed", old="open", new="resolved")
    assert event_sentence(status, who="佐藤") == (
        "佐藤がステータスを「対応中」から「解決済み」に変更しました。"
    )
    priority = _event("priority_changed", old="normal", new="urgent")
    assert (
        event_sentence(priority, who="佐藤") == "佐藤が優先度を「通常」から「緊急」に変更しました。"
    )
    late = _event("flagged_late", days=12)
    assert event_sentence(late, who="システム") == (
        "商品の到着から12日が経過しており、返品の期限を過ぎています。"
    )
    shown = _event("deflection_shown", ids=["a", "b"])
    assert event_sentence(shown, who="システム") == "送信の前に、よくある質問を2件ご案内しました。"
    capped = _event("mail_suppressed", to="x@example.jp", mail="status_changed", origin="agents")
    assert event_sentence(capped, who="システム") == (
        "ステータス変更のお知らせを送りませんでした(自動送信メールの上限に達したため)。"
    )


def test_an_unknown_or_garbled_event_still_reads_as_a_sentence() -> None:
    unknown = _event("something_new")
    assert event_sentence(unknown, who="佐藤") == "佐藤による記録があります(種類: something_new)。"
    garbled = TicketEvent(ticket_id=1, kind="status_changed", actor="x", data="not json")
    assert (
        event_sentence(garbled, who="佐藤")
        == "佐藤による記録があります(内容を読み取れませんでした)。"
    )
