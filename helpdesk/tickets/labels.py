"""Every Japanese label of the ticket vocabulary, in one place.

Forms, pages, mails and the API documentation read them from here; the stored values are the
enums of ``helpdesk.models``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from helpdesk.models import (
    Author,
    CsatRating,
    PresenceKind,
    Priority,
    TicketEvent,
    TicketKind,
    TicketStatus,
    Trust,
)
from helpdesk.tickets.commands import (
    AcceptMessage,
    AddNote,
    Assign,
    Confirm,
    MarkSpam,
    Merge,
    Reply,
    SetPriority,
    SetStatus,
)

KIND_LABELS: dict[str, str] = {
    TicketKind.defect: "不良品",
    TicketKind.wrong_item: "誤発送(注文と違う商品が届いた)",
    TicketKind.exchange: "注文誤り(機種・カラーの交換)",
    TicketKind.inquiry: "お問い合わせ",
}
# The returns form's choices, grouped and numbered as the shop's returns page does
# (「① 不良品や誤発送の場合」「② 注文誤り(サイズ・カラー)」); for a phone case the size is
# the phone model (機種).
RETURN_KIND_GROUPS: dict[str, dict[str, str]] = {
    "① 不良品や誤発送の場合": {
        TicketKind.defect: "不良品だった(傷・割れ・汚れ・不具合など)",
        TicketKind.wrong_item: "注文と違う商品が届いた(誤発送)",
    },
    "② 注文誤り(機種・カラー)の場合": {
        TicketKind.exchange: "機種・カラーを間違えて注文した(交換のご希望)",
    },
}
RETURN_KIND_CHOICES: dict[str, str] = {
    kind: label for choices in RETURN_KIND_GROUPS.values() for kind, label in choices.items()
}
# The contact form's topics. Their labels follow the FAQ: GMO's invoices are reissued by GMO
# itself, so the shop is asked only about one that never came (1 week after the goods).
INQUIRY_CATEGORIES: dict[str, str] = {
    "invoice": "GMO後払いの請求書が届かない",
    "reshipping": "戻ってきた荷物の再発送(住所不明・長期滞在など)",
    "confirmation_mail": "ショップからのメールが届かない(メールアドレスの変更)",
    "not_arrived": "注文した商品が届かない",
    "privacy": "個人情報について(開示・訂正・削除など)",
    "other": "その他",
}
# The contact form's topics under the FAQ's categories, in the FAQ's order, so that both
# speak of the same things in the same words (tests check it against the FAQ).
INQUIRY_GROUPS: dict[str, tuple[str, ...]] = {
    "セール商品": ("reshipping",),
    "発送/お届け": ("not_arrived",),
    "決済方法": ("invoice",),
    "個人情報の取り扱い": ("privacy",),
    "その他": ("confirmation_mail", "other"),
}
# The contact form's extra choice that leads to the returns form (never stored).
RETURNS_TOPIC = "returns"
RETURNS_TOPIC_LABEL = "返品・交換・不良品(写真を添付できます)"
STATUS_LABELS: dict[str, str] = {
    TicketStatus.new: "受付済み",
    TicketStatus.open: "対応中",
    TicketStatus.pending: "お客様のご返信待ち",
    TicketStatus.resolved: "解決済み",
    TicketStatus.closed: "完了",
}
# The console's queue: its choices and filters (``helpdesk.tickets.queue``).
QUEUE_ACTIVE_LABEL = "未完了(受付済み・対応中・ご返信待ち)"
QUEUE_ALL_LABEL = "すべて"
QUEUE_ASSIGNEE_LABELS: dict[str, str] = {"mine": "自分", "unassigned": "未割り当て"}
QUEUE_FLAG_LABELS: dict[str, str] = {
    "late": "返品期限を過ぎた申請",
    "waiting": "お客様の返信待ち",
    "replied": "お客様から返信あり",
    "overdue": "初回返信の期限超過",
    "due_today": "本日が初回返信の期限",
    "spam": "迷惑メールのみ",
}
QUEUE_FLAG_HINTS: dict[str, str] = {
    "waiting": "担当者の返信のあと、お客様からまだ返信がないもの",
    "replied": "担当者の返信のあとに、お客様から返信が届いたもの",
    "spam": "迷惑メールに指定したチケットは、これを選んだときだけ表示されます",
}
# The two answers of the satisfaction survey, as the mail's links and the page say them.
CSAT_LABELS: dict[str, str] = {
    CsatRating.good: "良かった",
    CsatRating.improve: "改善してほしい",
}
PHOTO_FIELDS: dict[str, str] = {
    "photo_overall": "全体が分かる写真",
    "photo_defect": "不良部分が鮮明に見える写真",
}
FIELD_LABELS: dict[str, str] = {
    "kind": "お問い合わせの種類",
    "name": "お名前",
    "email": "メールアドレス",
    "order_number": "注文番号",
    "arrived_on": "商品の到着日",
    "description": "内容",
    "desired_variant": "交換を希望する機種・カラー",
    "category": "お問い合わせの内容",
    "body": "メッセージ",
    **PHOTO_FIELDS,
}
# Who wrote a message, as agents see it.
AUTHOR_LABELS: dict[str, str] = {
    Author.customer: "お客様",
    Author.agent: "担当者",
    Author.note: "社内メモ",
    Author.system: "システム",
}
# Who wrote a message, as the customer sees it (notes never reach the customer's page).
CUSTOMER_AUTHOR_LABELS: dict[str, str] = {Author.customer: "お客様"}
SUPPORT_LABEL = "サポート担当"
# A message held for agents: never 「お客様」 until an agent accepts it.
UNVERIFIED_LABEL = "未確認"
# Why a message is held, as agents read it.
TRUST_LABELS: dict[str, str] = {
    Trust.verified: "お客様ご本人",
    Trust.weak_thread: (
        "件名の受付番号だけで届いたメール(差出人はお客様のアドレスですが、"
        "なりすましの可能性があります)"
    ),
    Trust.third_party: "お客様以外のアドレスからのメール",
    Trust.unregistered: (
        "担当者として登録されていないアドレスから担当者用アドレスへのメール"
        "(コマンドは実行していません)"
    ),
}
# The changes an agent makes, as the agent is told about them.
COMMAND_LABELS: dict[type, str] = {
    AcceptMessage: "未確認メッセージの承認",
    SetStatus: "ステータスの変更",
    Assign: "担当者の割り当て",
    SetPriority: "優先度の変更",
    MarkSpam: "迷惑メールの指定",
    AddNote: "社内メモ",
    Reply: "お客様への返信",
    Merge: "チケットの統合",
    Confirm: "保留中の返信の送信",
}
PRIORITY_LABELS: dict[str, str] = {
    Priority.low: "低",
    Priority.normal: "通常",
    Priority.high: "高",
    Priority.urgent: "緊急",
}
PRESENCE_LABELS: dict[str, str] = {
    PresenceKind.viewing: "閲覧中",
    PresenceKind.typing: "返信を入力中",
}
# The mails of the outbox (``Outbox.kind``), as the history names them.
MAIL_LABELS: dict[str, str] = {
    "ticket_confirmation": "受付確認のメール",
    "ticket_notification": "担当者への通知",
    "customer_reply": "担当者への通知(お客様の返信)",
    "agent_reply": "お客様への返信メール",
    "status_changed": "ステータス変更のお知らせ",
    "customer_link": "お客様用リンクのご案内",
    "agent_error": "担当者へのエラーのお知らせ",
    "reply_held": "担当者への返信保留のお知らせ",
    "inbound_failed": "受信エラーのお知らせ",
    "unregistered_sender": "未登録アドレスのお知らせ",
}
CHANNEL_LABELS: dict[str, str] = {
    "web": "フォーム",
    "mail": "メール",
    "api": "API",
    "system": "システム",
}
SUPPRESSED_REASONS: dict[str, str] = {
    "invalid_address": "宛先のアドレスが無効なため",
}


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def author_label(author: str, *, for_customer: bool = False, trust: str = Trust.verified) -> str:
    """「お客様」「担当者」「社内メモ」...; the customer sees every other author as support.

    A message not verified as the customer's is 「未確認」, never 「お客様」.
    """
    if trust != Trust.verified:
        return UNVERIFIED_LABEL
    if for_customer:
        return CUSTOMER_AUTHOR_LABELS.get(author, SUPPORT_LABEL)
    return AUTHOR_LABELS[author]


def trust_label(trust: str) -> str:
    return TRUST_LABELS.get(trust, trust)


def priority_label(priority: str) -> str:
    return PRIORITY_LABELS.get(priority, priority)


def mail_label(kind: str | None) -> str:
    return MAIL_LABELS.get(kind or "", "メール")


def _count(ids: Any) -> int:
    return len(ids) if isinstance(ids, list) else 0


# The history of a ticket as agents read it: one Japanese sentence per kind of event,
# given who acted (``who``: a name, 「お客様」 or 「システム」) and the event's data.
_EVENT_SENTENCES: dict[str, Callable[[str, Mapping[str, Any]], str]] = {
    "created": lambda who, d: (
        f"{who}から{CHANNEL_LABELS.get(d.get('channel') or 'web', 'フォーム')}で"
        "お問い合わせを受け付けました。"
    ),
    "flagged_late": lambda who, d: (
        f"商品の到着から{d['days']}日が経過しており、返品の期限を過ぎています。"
        if d.get("days") is not None
        else "返品の期限を過ぎたお問い合わせです。"
    ),
    "deflection_shown": lambda who, d: (
        f"送信の前に、よくある質問を{_count(d.get('ids'))}件ご案内しました。"
    ),
    "deflection_followed": lambda who, d: (
        f"ご案内したよくある質問のうち、{_count(d.get('ids'))}件をお客様が開きました。"
    ),
    "mail_suppressed": lambda who, d: (
        f"{mail_label(d.get('mail'))}を送りませんでした("
        f"{SUPPRESSED_REASONS.get(d.get('reason') or '', '自動送信メールの上限に達したため')})。"
    ),
    "customer_message": lambda who, d: (
        "迷惑メールに指定した送信者からメッセージが届きました(通知なし)。"
        if d.get("spam")
        else "お客様からメッセージが届きました。"
    ),
    "message_held": lambda who, d: (
        f"{who}からのメッセージ(番号 {d.get('message')})を未確認として保留しました"
        f"({trust_label(d.get('trust') or '')})。"
    ),
    "message_accepted": lambda who, d: (
        f"{who}が未確認のメッセージ(番号 {d.get('message')})をお客様のものとして承認しました。"
    ),
    "status_changed": lambda who, d: (
        f"{who}がステータスを「{status_label(d['old'])}」から"
        f"「{status_label(d['new'])}」に変更しました。"
    ),
    "assigned": lambda who, d: f"{who}が担当者を {d.get('to')} にしました。",
    "unassigned": lambda who, d: (
        f"担当者 {d.get('from')} の登録が削除されたため、担当から外しました。"
    ),
    "priority_changed": lambda who, d: (
        f"{who}が優先度を「{priority_label(d['old'])}」から"
        f"「{priority_label(d['new'])}」に変更しました。"
    ),
    "note": lambda who, d: f"{who}が社内メモを追加しました。",
    "agent_reply": lambda who, d: f"{who}がお客様に返信しました。",
    "reply_held": lambda who, d: (
        f"{who}のメールでの返信を、ほかの担当者の対応と重なるため保留し、確認をお願いしました。"
    ),
    "customer_link_revoked": lambda who, d: (
        f"{who}がお客様用のリンクを無効にし、新しいリンクをお送りしました。"
    ),
    "csat_answered": lambda who, d: (
        f"お客様が満足度アンケートに「{CSAT_LABELS.get(d.get('rating') or '', '')}」と"
        "回答しました。"
    ),
    "mail_requeued": lambda who, d: (
        f"送れなかった{mail_label(d.get('mail'))}(宛先 {d.get('to')})を、もう一度送る"
        "ようにしました。"
    ),
    "mail_dead": lambda who, d: (
        f"{mail_label(d.get('mail'))}(宛先 {d.get('to')})を{d.get('attempts')}回試しても"
        "送れませんでした。"
    ),
    "delivery_failed": lambda who, d: (
        f"{mail_label(d.get('mail'))}(宛先 {d.get('to')})が届かなかったと通知がありました。"
    ),
    "auto_reply_received": lambda who, d: (
        f"{who}から自動返信(件名「{d.get('subject') or ''}」)が届きました。"
    ),
    "merged": lambda who, d: f"{who}がチケット {d.get('from')} をこのチケットに統合しました。",
    "merged_into": lambda who, d: f"{who}がこのチケットを {d.get('into')} に統合しました。",
    # Approval before sending (helpdesk.tickets.service: approve_reply, reject_reply).
    "reply_awaiting_approval": lambda who, d: (
        f"{who}の返信を、管理者の承認待ちにしました(お客様にはまだ送信していません)。"
    ),
    "reply_approved": lambda who, d: (
        f"{who}が {d.get('author')} の返信を{'修正して' if d.get('edited') else ''}"
        "承認し、お客様に送信しました。"
    ),
    "reply_rejected": lambda who, d: (
        f"{who}が {d.get('author')} の返信を差し戻しました(お客様には送信していません)。"
    ),
    # Saved replies and who needs approval (no ticket: the account events' list).
    "saved_reply_created": lambda who, d: (
        f"{who}がテンプレート「{d.get('title')}」を作成しました。"
    ),
    "saved_reply_updated": lambda who, d: (
        f"{who}がテンプレート「{d.get('title')}」を変更しました。"
    ),
    "saved_reply_deleted": lambda who, d: (
        f"{who}がテンプレート「{d.get('title')}」を削除しました。"
    ),
    "agent_approval_required": lambda who, d: (
        f"{who}が {d.get('agent')} の返信を、管理者の承認が必要な設定にしました。"
    ),
    "agent_approval_lifted": lambda who, d: (
        f"{who}が {d.get('agent')} の返信を、承認なしで送信できる設定にしました。"
    ),
    "card_number_removed": lambda who, d: (
        "カード番号と思われる数字を、保存する前に削除しました"
        + (f"(メッセージ番号 {d['message']})" if d.get("message") else "")
        + "。"
    ),
    "marked_spam": lambda who, d: f"{who}がこのチケットを迷惑メールに指定しました。",
    "unmarked_spam": lambda who, d: f"{who}が迷惑メールの指定を解除しました。",
    "spam_sender": lambda who, d: (
        "迷惑メールに指定された送信者からのお問い合わせのため、迷惑メールとして受け付け、"
        "通知は送りませんでした。"
    ),
}
EVENT_KINDS = frozenset(_EVENT_SENTENCES)


def event_sentence(event: TicketEvent, *, who: str) -> str:
    """The event as one Japanese sentence: 「佐藤がステータスを「対応中」から「解決済み」に
    変更しました。」. An event of a kind this table does not know yet says so in Japanese."""
    try:
        data = json.loads(event.data or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    sentence = _EVENT_SENTENCES.get(event.kind)
    if sentence is None:
        return f"{who}による記録があります(種類: {event.kind})。"
    try:
        return sentence(who, data)
    except (KeyError, TypeError):
        return f"{who}による記録があります(内容を読み取れませんでした)。"
