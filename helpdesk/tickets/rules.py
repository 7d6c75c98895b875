"""What a ticket may hold: the kinds, the fields each asks for, limits and validation.

Pure functions with Japanese messages, no database: the forms, the API and mail all submit
through ``validate_submission``, so they follow the same rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from faq import ShopPolicy
from helpdesk.models import TicketKind, TicketStatus
from helpdesk.photos import StoredPhoto
from helpdesk.tickets.addresses import MAX_EMAIL, AddressError, is_email_address, normalize_address
from helpdesk.tickets.commands import AddNote, Command, Merge, Reply
from helpdesk.tickets.labels import COMMAND_LABELS, INQUIRY_CATEGORIES, KIND_LABELS, PHOTO_FIELDS
from helpdesk.tickets.text import clean_line, clean_text, looks_like_link

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_EMAIL",
    "MAX_NAME",
    "PHOTO_KINDS",
    "Submission",
    "Validation",
    "clean_line",
    "clean_text",
    "is_email_address",
    "message_fingerprint",
    "normalize_address",
    "submission_fingerprint",
    "validate_message",
    "validate_submission",
]

# Kinds that need both photos (the shop's return policy, case ①).
PHOTO_KINDS = frozenset({TicketKind.defect, TicketKind.wrong_item})
MAX_NAME = 100
MAX_ORDER_NUMBER = 50
MAX_DESCRIPTION = 5000
MAX_VARIANT = 200
NAME_LOOKS_LIKE_LINK = "お名前にURLやメールアドレス、ドメイン名(example.jp など)は入力できません。"
# An arrival date further back than this is surely a typo.
OLDEST_ARRIVAL = timedelta(days=366)
# The ball is back with the agents when the customer writes: these statuses open again.
REOPENED_BY_CUSTOMER = frozenset({TicketStatus.pending, TicketStatus.resolved, TicketStatus.closed})
_ORDER_NUMBER = re.compile(r"^#?[A-Za-z0-9][A-Za-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated form or API submission."""

    kind: TicketKind
    name: str
    email: str
    order_number: str | None = None
    arrived_on: date | None = None
    description: str = ""
    desired_variant: str | None = None
    category: str | None = None


@dataclass(slots=True)
class Validation:
    submission: Submission | None
    errors: dict[str, str] = field(default_factory=dict)
    late: bool = False


def validate_submission(raw: Mapping[str, Any], *, today: date, policy: ShopPolicy) -> Validation:
    """Check a submission; every problem gets a Japanese message under its field name."""
    errors: dict[str, str] = {}
    try:
        kind = TicketKind(str(raw.get("kind") or ""))
    except ValueError:
        return Validation(None, {"kind": "お問い合わせの種類を選んでください。"})

    name = clean_line(raw.get("name"))
    if not name:
        errors["name"] = "お名前を入力してください。"
    elif len(name) > MAX_NAME:
        errors["name"] = f"お名前は{MAX_NAME}文字以内で入力してください。"
    elif looks_like_link(name):
        # A name is shown in the shop's own mails: it must never be a link (issue 7, #7).
        errors["name"] = NAME_LOOKS_LIKE_LINK

    email = clean_line(raw.get("email"))
    if not email:
        errors["email"] = "メールアドレスを入力してください。"
    else:
        try:
            email = normalize_address(email)
        except AddressError:
            errors["email"] = "メールアドレスの形式が正しくありません(例: taro@example.jp)。"

    order_number = clean_line(raw.get("order_number")).replace(" ", "") or None
    needs_order = kind is not TicketKind.inquiry
    if order_number is None and needs_order:
        errors["order_number"] = "注文番号を入力してください(注文確認メールに記載があります)。"
    elif order_number is not None and (
        len(order_number) > MAX_ORDER_NUMBER or not _ORDER_NUMBER.match(order_number)
    ):
        errors["order_number"] = "注文番号は半角英数字で入力してください(例: #1234)。"

    arrived_on: date | None = None
    late = False
    raw_arrival = clean_line(raw.get("arrived_on"))
    if raw_arrival:
        try:
            arrived_on = date.fromisoformat(raw_arrival)
        except ValueError:
            errors["arrived_on"] = "到着日は 2026-11-24 の形式で入力してください。"
        else:
            if arrived_on > today:
                errors["arrived_on"] = "到着日に未来の日付は指定できません。"
            elif arrived_on < today - OLDEST_ARRIVAL:
                errors["arrived_on"] = "到着日をご確認ください(1年以上前の日付です)。"
            else:
                late = (today - arrived_on).days > policy.return_window_days
    elif needs_order:
        errors["arrived_on"] = "商品が届いた日を入力してください。"

    description = clean_text(raw.get("description"))
    if not description and kind is not TicketKind.exchange:
        errors["description"] = (
            "どのような問題か入力してください。"
            if kind in PHOTO_KINDS
            else "お問い合わせ内容を入力してください。"
        )
    elif len(description) > MAX_DESCRIPTION:
        errors["description"] = (
            f"内容は{MAX_DESCRIPTION}文字以内で入力してください(いまは{len(description)}文字です)。"
        )

    desired_variant = clean_line(raw.get("desired_variant")) or None
    if kind is TicketKind.exchange:
        if desired_variant is None:
            errors["desired_variant"] = "交換を希望する機種・カラーを入力してください。"
        elif len(desired_variant) > MAX_VARIANT:
            errors["desired_variant"] = f"{MAX_VARIANT}文字以内で入力してください。"
    else:
        desired_variant = None

    category = clean_line(raw.get("category")) or None
    if kind is TicketKind.inquiry:
        if category not in INQUIRY_CATEGORIES:
            errors["category"] = "お問い合わせの内容を選んでください。"
    else:
        category = None

    if errors:
        return Validation(None, errors, late)
    submission = Submission(
        kind, name, email, order_number, arrived_on, description, desired_variant, category
    )
    return Validation(submission, {}, late)


def validate_message(body: str | None) -> tuple[str, dict[str, str]]:
    """A customer's follow-up message, cleaned, and its problems by field name."""
    text = clean_text(body)
    if len(text) > MAX_DESCRIPTION:
        return text, {"body": f"メッセージは{MAX_DESCRIPTION}文字以内で入力してください。"}
    return text, {}


def submission_fingerprint(submission: Submission, photos: Mapping[str, StoredPhoto]) -> str:
    """A digest of everything a submission holds: every field and each photo's content.

    A repeated submission key must come with the same fingerprint to get the first result
    back: a key alone never hands over a ticket made from other content (issue 7, #4).
    """
    fields = {name: _plain(value) for name, value in asdict(submission).items()}
    return _digest({"fields": fields, "photos": _photo_digests(photos)})


def message_fingerprint(body: str, photos: Mapping[str, StoredPhoto], sender: str | None) -> str:
    """A digest of a customer's message (text, photos, who sent it), as for submissions."""
    return _digest({"body": body, "photos": sorted(_photo_digests(photos).values()), "by": sender})


def _plain(value: Any) -> str | None:
    return None if value is None else str(value)


def _photo_digests(photos: Mapping[str, StoredPhoto]) -> dict[str, str]:
    return {name: photo.digest for name, photo in sorted(photos.items())}


def _digest(data: Mapping[str, Any]) -> str:
    payload = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def missing_photos(kind: TicketKind, photos: Mapping[str, StoredPhoto]) -> dict[str, str]:
    """Errors for the photos a kind requires and the submission lacks."""
    if kind not in PHOTO_KINDS:
        return {}
    return {
        name: f"「{label}」を添付してください。"
        for name, label in PHOTO_FIELDS.items()
        if name not in photos
    }


def subject_for(submission: Submission) -> str:
    label = KIND_LABELS[submission.kind]
    if submission.kind is TicketKind.inquiry and submission.category:
        label = INQUIRY_CATEGORIES[submission.category]
    return f"{label}" + (f"(注文番号 {submission.order_number})" if submission.order_number else "")


def first_message(submission: Submission) -> str:
    """The body of a new ticket's first message: the wanted variant, then the description."""
    lines = []
    if submission.desired_variant:
        lines.append(f"交換を希望する機種・カラー: {submission.desired_variant}")
    if submission.description:
        lines.append(submission.description)
    return "\n\n".join(lines) or KIND_LABELS[submission.kind]


def today_in_japan(policy: ShopPolicy, now: datetime | None = None) -> date:
    return policy.local(now).date()


# -- agents' commands --------------------------------------------------------------------------


def command_problems(commands: Sequence[Command]) -> list[str]:
    """What is wrong with a list of commands before any is applied (Japanese, for the agent).

    Each kind of change at most once; a reply and an internal note are separate changes; a
    reply says something.
    """
    problems: list[str] = []
    kinds = [type(command) for command in commands]
    for kind in dict.fromkeys(kinds):
        if kinds.count(kind) > 1:
            problems.append(f"「{COMMAND_LABELS[kind]}」は1回だけ指定してください。")
    if AddNote in kinds and Reply in kinds:
        problems.append("お客様への返信と社内メモは、別々に送ってください。")
    if any(isinstance(c, Reply) and not c.body.strip() for c in commands):
        problems.append("お客様への返信の本文を入力してください。")
    if Merge in kinds and len(commands) > 1:
        problems.append("チケットの統合は、ほかの操作とは別に行ってください。")
    if any(isinstance(c, Merge) and not c.into.strip() for c in commands):
        problems.append("統合先のチケットの受付番号を入力してください。")
    return problems


def unknown_assignee(who: str) -> str:
    return f"担当者「{who}」が見つかりません。登録済みのメールアドレスか名前を指定してください。"
