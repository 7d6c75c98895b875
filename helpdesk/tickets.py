"""The ticket rules: what each kind asks for, validation, creation, access and changes.

Routes parse requests and render; everything a ticket may or may not do lives here, so
that the HTML forms, the HTTP API and (later) e-mail all follow the same rules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from email.utils import make_msgid
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from faq import ShopPolicy
from helpdesk.db import utcnow
from helpdesk.models import (
    Agent,
    Attachment,
    Author,
    Customer,
    InboundMail,
    Message,
    Outbox,
    Ticket,
    TicketEvent,
    TicketKind,
    TicketStatus,
)
from helpdesk.photos import StoredPhoto

KIND_LABELS = {
    TicketKind.defect: "不良品",
    TicketKind.wrong_item: "誤発送(注文と違う商品が届いた)",
    TicketKind.exchange: "注文誤り(サイズ・カラーの交換)",
    TicketKind.inquiry: "お問い合わせ",
}
INQUIRY_CATEGORIES = {
    "invoice": "GMO後払いの請求書(再発行・送付先の変更)",
    "reshipping": "戻ってきた荷物の再発送",
    "confirmation_mail": "注文確認メールが届かない",
    "not_arrived": "注文した商品が届かない",
    "privacy": "個人情報について(開示・訂正・削除など)",
    "other": "その他",
}
STATUS_LABELS = {
    TicketStatus.new: "受付済み",
    TicketStatus.open: "対応中",
    TicketStatus.pending: "お客様のご返信待ち",
    TicketStatus.resolved: "解決済み",
    TicketStatus.closed: "完了",
}
PHOTO_FIELDS = {
    "photo_overall": "全体が分かる写真",
    "photo_defect": "不良部分が鮮明に見える写真",
}
# Kinds that need both photos (the shop's return policy, case ①).
PHOTO_KINDS = frozenset({TicketKind.defect, TicketKind.wrong_item})
FIELD_LABELS = {
    "kind": "お問い合わせの種類",
    "name": "お名前",
    "email": "メールアドレス",
    "order_number": "注文番号",
    "arrived_on": "商品の到着日",
    "description": "内容",
    "desired_variant": "交換を希望するサイズ・カラー",
    "category": "お問い合わせの内容",
    "body": "メッセージ",
    **PHOTO_FIELDS,
}
MAX_NAME = 100
MAX_EMAIL = 254
MAX_ORDER_NUMBER = 50
MAX_DESCRIPTION = 5000
MAX_VARIANT = 200
# An arrival date further back than this is surely a typo.
OLDEST_ARRIVAL = timedelta(days=366)
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_ORDER_NUMBER = re.compile(r"^#?[A-Za-z0-9][A-Za-z0-9-]*$")
_Keyed = TypeVar("_Keyed", Ticket, Message)
_REPLY_ADDRESS = re.compile(
    r"^(?P<local>[^+@]+)\+(?P<reference>hd-\d{2}-\d+)\.(?P<signature>[a-z0-9_-]+)@(?P<domain>[^@]+)$"
)


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


def _clean(value: str | None) -> str:
    """NFKC for the short fields customers type on phones (＃１２３４ → #1234), trimmed."""
    text = unicodedata.normalize("NFKC", value or "")
    return "".join(c for c in text if unicodedata.category(c) != "Cc").strip()


def _text(value: str | None) -> str:
    """Long text keeps the customer's characters; only control characters go."""
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc").strip()


def validate_submission(raw: Mapping[str, Any], *, today: date, policy: ShopPolicy) -> Validation:
    """Check a submission; every problem gets a Japanese message under its field name."""
    errors: dict[str, str] = {}
    try:
        kind = TicketKind(str(raw.get("kind") or ""))
    except ValueError:
        return Validation(None, {"kind": "お問い合わせの種類を選んでください。"})

    name = _clean(raw.get("name"))
    if not name:
        errors["name"] = "お名前を入力してください。"
    elif len(name) > MAX_NAME:
        errors["name"] = f"お名前は{MAX_NAME}文字以内で入力してください。"

    email = _clean(raw.get("email"))
    if not email:
        errors["email"] = "メールアドレスを入力してください。"
    elif len(email) > MAX_EMAIL or not _EMAIL.match(email):
        errors["email"] = "メールアドレスの形式が正しくありません(例: taro@example.jp)。"

    order_number = _clean(raw.get("order_number")).replace(" ", "") or None
    needs_order = kind is not TicketKind.inquiry
    if order_number is None and needs_order:
        errors["order_number"] = "注文番号を入力してください(注文確認メールに記載があります)。"
    elif order_number is not None and (
        len(order_number) > MAX_ORDER_NUMBER or not _ORDER_NUMBER.match(order_number)
    ):
        errors["order_number"] = "注文番号は半角英数字で入力してください(例: #1234)。"

    arrived_on: date | None = None
    late = False
    raw_arrival = _clean(raw.get("arrived_on"))
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

    description = _text(raw.get("description"))
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

    desired_variant = _clean(raw.get("desired_variant")) or None
    if kind is TicketKind.exchange:
        if desired_variant is None:
            errors["desired_variant"] = "交換を希望するサイズ・カラーを入力してください。"
        elif len(desired_variant) > MAX_VARIANT:
            errors["desired_variant"] = f"{MAX_VARIANT}文字以内で入力してください。"
    else:
        desired_variant = None

    category = _clean(raw.get("category")) or None
    if kind is TicketKind.inquiry:
        if category not in INQUIRY_CATEGORIES:
            errors["category"] = "お問い合わせの内容を選んでください。"
    else:
        category = None

    if errors:
        return Validation(None, errors, late)
    submission = Submission(
        kind, name, email.lower(), order_number, arrived_on, description, desired_variant, category
    )
    return Validation(submission, {}, late)


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


class TicketService:
    """Creates tickets and changes them; every change leaves an event in the audit trail."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        policy: ShopPolicy,
        secret_key: str,
        base_url: str,
        support_address: str,
        automatic_mail_limit: int = 10,
    ) -> None:
        self.sessions = sessions
        self.automatic_mail_limit = automatic_mail_limit
        self.policy = policy
        self._secret = secret_key.encode()
        self.base_url = base_url.rstrip("/")
        self.support_address = support_address

    # -- signing -------------------------------------------------------------------------

    def _sign(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    def access_token(self, ticket: Ticket) -> str:
        """The customer's unguessable token; the reference alone opens nothing."""
        return self._sign("ticket", f"{ticket.reference}.{ticket.token_nonce}")

    def check_token(self, ticket: Ticket, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(
            self.access_token(ticket).encode(), str(token).encode()
        )

    def status_url(self, ticket: Ticket) -> str:
        return f"{self.base_url}/t/{ticket.reference}?token={self.access_token(ticket)}"

    def photo_token(self, photo: StoredPhoto) -> str:
        """A signed note of a photo already accepted, carried by the form across a retry."""
        payload = base64.urlsafe_b64encode(json.dumps(asdict(photo)).encode()).decode()
        return f"{payload}.{self._sign('photo', payload)}"

    def photo_from_token(self, token: str | None) -> StoredPhoto | None:
        if not token or "." not in token:
            return None
        payload, signature = token.rsplit(".", 1)
        if not hmac.compare_digest(self._sign("photo", payload).encode(), signature.encode()):
            return None
        try:
            return StoredPhoto(**json.loads(base64.urlsafe_b64decode(payload.encode())))
        except (ValueError, TypeError):
            return None

    # -- reading -------------------------------------------------------------------------

    async def find(self, reference: str) -> Ticket | None:
        async with self.sessions() as session:
            result = await session.execute(select(Ticket).where(Ticket.reference == reference))
            return result.scalar_one_or_none()

    async def open_for_customer(self, reference: str, token: str | None) -> Ticket | None:
        """The ticket when the token matches; None for a wrong token or reference alike."""
        ticket = await self.find(reference)
        return ticket if ticket is not None and self.check_token(ticket, token) else None

    async def open_for_agent(self, reference: str, key: str | None) -> Ticket | None:
        ticket = await self.find(reference)
        if ticket is None or not key:
            return None
        if not hmac.compare_digest(self.agent_key(ticket).encode(), key.encode()):
            return None
        return ticket

    async def details(self, ticket: Ticket) -> tuple[Customer, Agent | None, list[TicketEvent]]:
        async with self.sessions() as session:
            customer = await session.get(Customer, ticket.customer_id)
            agent = await session.get(Agent, ticket.assignee_id) if ticket.assignee_id else None
            events = await session.execute(
                select(TicketEvent)
                .where(TicketEvent.ticket_id == ticket.id)
                .order_by(TicketEvent.id)
            )
            assert customer is not None
            return customer, agent, list(events.scalars().all())

    async def conversation(
        self, ticket: Ticket, *, internal: bool = False
    ) -> list[tuple[Message, list[Attachment]]]:
        async with self.sessions() as session:
            query = select(Message).where(Message.ticket_id == ticket.id)
            if not internal:
                query = query.where(Message.author.in_([Author.customer, Author.agent]))
            messages = (await session.execute(query.order_by(Message.id))).scalars().all()
            attachments = (
                (await session.execute(select(Attachment).where(Attachment.ticket_id == ticket.id)))
                .scalars()
                .all()
            )
        by_message: dict[int | None, list[Attachment]] = {}
        for attachment in attachments:
            by_message.setdefault(attachment.message_id, []).append(attachment)
        return [(m, by_message.get(m.id, [])) for m in messages]

    async def attachment(self, ticket: Ticket, digest: str) -> Attachment | None:
        async with self.sessions() as session:
            result = await session.execute(
                select(Attachment).where(
                    Attachment.ticket_id == ticket.id,
                    (Attachment.digest == digest) | (Attachment.thumb_digest == digest),
                )
            )
            return result.scalars().first()

    # -- writing -------------------------------------------------------------------------

    async def _by_key(self, model: type[_Keyed], key: str) -> _Keyed | None:
        """The ticket or message a submission key already made, if any."""
        async with self.sessions() as session:
            found = await session.execute(select(model).where(model.submission_key == key))
            return found.scalar_one_or_none()

    async def submit(
        self,
        submission: Submission,
        photos: Mapping[str, StoredPhoto],
        *,
        late: bool,
        submission_key: str | None = None,
        deflection: Mapping[str, list[str]] | None = None,
        channel: str = "web",
        confirm: bool = True,
        in_reply_to: str | None = None,
    ) -> tuple[Ticket, bool]:
        """Create the ticket with its first message, photos, events and confirmation mail.

        Returns ``(ticket, created)``; a repeated ``submission_key`` (reload, double click)
        from the same e-mail address returns the first ticket with ``created`` False. Keys
        are scoped by address, so nobody reaches another person's ticket through a key.
        """
        if submission_key:
            scope = f"{channel}:{submission.email}:{submission_key}"
            submission_key = hashlib.sha256(scope.encode()).hexdigest()
            if (ticket := await self._by_key(Ticket, submission_key)) is not None:
                return ticket, False
        try:
            return await self._create(
                submission,
                photos,
                late,
                submission_key,
                deflection,
                channel,
                confirm=confirm,
                in_reply_to=in_reply_to,
            )
        except IntegrityError:
            # Two submits raced on the same key: the other one won.
            if not submission_key:
                raise
            ticket = await self._by_key(Ticket, submission_key)
            assert ticket is not None
            return ticket, False

    async def _customer(self, session: AsyncSession, submission: Submission) -> Customer:
        result = await session.execute(select(Customer).where(Customer.email == submission.email))
        customer = result.scalar_one_or_none()
        if customer is None:
            customer = Customer(email=submission.email, name=submission.name)
            try:
                async with session.begin_nested():
                    session.add(customer)
            except IntegrityError:
                result = await session.execute(
                    select(Customer).where(Customer.email == submission.email)
                )
                customer = result.scalar_one()
        return customer

    async def _create(
        self,
        submission: Submission,
        photos: Mapping[str, StoredPhoto],
        late: bool,
        submission_key: str | None,
        deflection: Mapping[str, list[str]] | None,
        channel: str,
        confirm: bool = True,
        in_reply_to: str | None = None,
    ) -> tuple[Ticket, bool]:
        now = utcnow()
        async with self.sessions() as session, session.begin():
            customer = await self._customer(session, submission)
            ticket = Ticket(
                reference=f"pending-{secrets.token_hex(8)}",
                token_nonce=secrets.token_urlsafe(16),
                submission_key=submission_key,
                kind=submission.kind,
                customer_id=customer.id,  # type: ignore[arg-type]
                order_number=submission.order_number,
                arrived_on=submission.arrived_on,
                late=late,
                desired_variant=submission.desired_variant,
                category=submission.category,
                subject=subject_for(submission),
                created_at=now,
                updated_at=now,
            )
            session.add(ticket)
            await session.flush()
            # The id is unique across workers and databases; the reference is made from it.
            ticket.reference = f"HD-{self.policy.local(now):%y}-{ticket.id:05d}"
            message = Message(
                ticket_id=ticket.id,  # type: ignore[arg-type]
                author=Author.customer,
                author_name=submission.name,
                body=self._first_message(submission),
                created_at=now,
            )
            session.add(message)
            await session.flush()
            attachments = [_attachment(ticket, message, n, p) for n, p in photos.items()]
            session.add_all(attachments)
            session.add(self._event(ticket, "created", submission.email, channel=channel))
            if late:
                today = self.policy.local(now).date()
                days = (today - submission.arrived_on).days if submission.arrived_on else None
                session.add(self._event(ticket, "flagged_late", "system", days=days))
            for event_kind, ids in (deflection or {}).items():
                if ids:
                    session.add(self._event(ticket, f"deflection_{event_kind}", "system", ids=ids))
            await self._queue_new_ticket_mails(
                session,
                ticket,
                customer,
                submission,
                attachments,
                confirm=confirm,
                in_reply_to=in_reply_to,
            )
        return ticket, True

    def _first_message(self, submission: Submission) -> str:
        lines = []
        if submission.desired_variant:
            lines.append(f"交換を希望するサイズ・カラー: {submission.desired_variant}")
        if submission.description:
            lines.append(submission.description)
        return "\n\n".join(lines) or KIND_LABELS[submission.kind]

    @staticmethod
    def _event(ticket: Ticket, kind: str, actor: str, **data: Any) -> TicketEvent:
        return TicketEvent(
            ticket_id=ticket.id, kind=kind, actor=actor, data=json.dumps(data, ensure_ascii=False)
        )

    # -- mail ----------------------------------------------------------------------------

    def reply_address(self, ticket: Ticket, *, agents: bool = False) -> str:
        """``support+hd-26-00042.<signature>@shop``: replies to it thread onto the ticket.

        Mail to the support inbox carries another address (``...+hd-26-00042.a<signature>``)
        signed for agents: only replies to that one may carry commands and notes, so a
        customer who writes "From: agent" to their own reply address acts as no agent.
        """
        local, _, domain = self.support_address.partition("@")
        reference = ticket.reference.lower()
        role = "a" if agents else ""
        signature = self._sign(f"reply{role}", reference)[:12].lower()
        return f"{local}+{reference}.{role}{signature}@{domain}"

    def ticket_from_reply_address(self, address: str) -> tuple[str, bool] | None:
        """(reference, for agents) that a signed reply address names, or None if not valid."""
        local, _, domain = self.support_address.lower().partition("@")
        match = _REPLY_ADDRESS.match(address.strip().lower())
        if not match or match["local"] != local or match["domain"] != domain:
            return None
        reference, token = match["reference"], match["signature"]
        for role in ("a", ""):
            if token.startswith(role):
                expected = f"{role}{self._sign(f'reply{role}', reference)[:12].lower()}"
                if hmac.compare_digest(expected.encode(), token.encode()):
                    return reference.upper(), role == "a"
        return None

    def agent_url(self, ticket: Ticket) -> str:
        """A capability link to the agents' view of a ticket, sent only to the support inbox."""
        return f"{self.base_url}/agent/t/{ticket.reference}?key={self.agent_key(ticket)}"

    def agent_key(self, ticket: Ticket) -> str:
        return self._sign("agent", ticket.reference)

    def new_message_id(self) -> str:
        return make_msgid(domain=self.support_address.rpartition("@")[2]).strip("<>")

    async def _queue_mail(
        self,
        session: AsyncSession,
        *,
        ticket: Ticket | None,
        kind: str,
        to: str,
        automatic: bool = True,
        reply_to: str | None = None,
        in_reply_to: str | None = None,
        references: Sequence[str] = (),
        attach: Sequence[Attachment] = (),
        **context: Any,
    ) -> Outbox | None:
        """Compose the mail ``kind`` (``templates/mail/{kind}.txt``) into the outbox, in the
        caller's transaction.

        Automatic mail to one address is capped per hour (RFC 3834: no mail storms); the
        mail skipped is recorded on the ticket instead.
        """
        from helpdesk.mail.compose import compose

        if automatic:
            since = utcnow() - timedelta(hours=1)
            sent = await session.execute(
                select(func.count()).where(
                    Outbox.to_address == to, Outbox.automatic, Outbox.created_at >= since
                )
            )
            if sent.scalar_one() >= self.automatic_mail_limit:
                if ticket is not None:
                    session.add(self._event(ticket, "mail_suppressed", "system", to=to, mail=kind))
                return None
        mail = compose(kind, ticket=ticket, policy=self.policy, **context)
        row = Outbox(
            ticket_id=ticket.id if ticket else None,
            kind=kind,
            to_address=to,
            subject=mail.subject,
            text=mail.text,
            html=mail.html,
            message_id=self.new_message_id(),
            reply_to=reply_to,
            in_reply_to=in_reply_to,
            references=" ".join(references) or None,
            attachments=json.dumps(
                [
                    {"digest": a.digest, "filename": a.filename, "content_type": a.content_type}
                    for a in attach
                ]
            ),
            automatic=automatic,
        )
        session.add(row)
        return row

    async def _tell_agents(
        self,
        session: AsyncSession,
        ticket: Ticket | None,
        kind: str,
        attach: Sequence[Attachment] = (),
        **context: Any,
    ) -> None:
        """Mail the support inbox; replies to it come back on the agents' signed address."""
        await self._queue_mail(
            session,
            ticket=ticket,
            kind=kind,
            to=self.support_address,
            automatic=False,
            reply_to=self.reply_address(ticket, agents=True) if ticket else None,
            attach=attach,
            **context,
        )

    async def _queue_new_ticket_mails(
        self,
        session: AsyncSession,
        ticket: Ticket,
        customer: Customer,
        submission: Submission,
        attachments: Sequence[Attachment],
        *,
        confirm: bool = True,
        in_reply_to: str | None = None,
    ) -> None:
        context = {
            "customer": customer,
            "submission": submission,
            "kind_label": KIND_LABELS[submission.kind],
            "category_label": INQUIRY_CATEGORIES.get(submission.category or ""),
            "status_url": self.status_url(ticket),
            "agent_url": self.agent_url(ticket),
            "attachments": attachments,
            "photo_labels": PHOTO_FIELDS,
        }
        if confirm:
            await self._queue_mail(
                session,
                ticket=ticket,
                kind="ticket_confirmation",
                to=customer.email,
                reply_to=self.reply_address(ticket),
                in_reply_to=in_reply_to,
                references=[in_reply_to] if in_reply_to else (),
                **context,
            )
        await self._tell_agents(
            session, ticket, "ticket_notification", attach=attachments, **context
        )

    async def add_customer_message(
        self,
        ticket: Ticket,
        body: str,
        photos: Mapping[str, StoredPhoto],
        *,
        submission_key: str | None = None,
        sender: str | None = None,
    ) -> Message:
        """Append the customer's message; a resolved or closed ticket opens again.

        ``sender`` is who wrote (mail): someone other than the customer is named as such,
        and their message does not reopen the ticket.

        A repeated ``submission_key`` returns the message already stored.
        """
        if submission_key and (message := await self._by_key(Message, submission_key)):
            return message
        try:
            return await self._add_customer_message(ticket, body, photos, submission_key, sender)
        except IntegrityError:
            if not submission_key:
                raise
            message = await self._by_key(Message, submission_key)
            assert message is not None
            return message

    async def _add_customer_message(
        self,
        ticket: Ticket,
        body: str,
        photos: Mapping[str, StoredPhoto],
        submission_key: str | None,
        sender: str | None = None,
    ) -> Message:
        now = utcnow()
        async with self.sessions() as session, session.begin():
            current = await session.get(Ticket, ticket.id, with_for_update=True)
            assert current is not None
            customer = await session.get(Customer, current.customer_id)
            assert customer is not None
            stranger = sender is not None and sender.lower() != customer.email
            message = Message(
                ticket_id=current.id,  # type: ignore[arg-type]
                author=Author.customer,
                author_name=f"お客様以外: {sender}" if stranger else customer.name,
                body=body or "(写真を追加しました)",
                submission_key=submission_key,
                created_at=now,
            )
            session.add(message)
            await session.flush()
            attachments = [
                _attachment(current, message, f"photo_{index + 1}", photo)
                for index, photo in enumerate(photos.values())
            ]
            session.add_all(attachments)
            session.add(
                self._event(
                    current,
                    "third_party_message" if stranger else "customer_message",
                    sender or customer.email,
                )
            )
            await self._tell_agents(
                session,
                current,
                "customer_reply",
                attach=attachments,
                customer=customer,
                stranger=sender if stranger else None,
                body=message.body,
                agent_url=self.agent_url(current),
            )
            # The ball is back with the agents: waiting, resolved or closed, it opens again.
            reopen = (TicketStatus.pending, TicketStatus.resolved, TicketStatus.closed)
            if current.status in reopen and not stranger:
                session.add(
                    self._event(
                        current, "status_changed", "customer", old=current.status, new="open"
                    )
                )
                current.status = TicketStatus.open
            current.updated_at = now
        ticket.status = current.status
        return message

    # -- agents --------------------------------------------------------------------------

    async def add_agent(self, email: str, name: str) -> Agent:
        """Register (or rename) the agent with this address."""
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise ValueError(f"not an e-mail address: {email!r}")
        async with self.sessions() as session, session.begin():
            found = await session.execute(select(Agent).where(Agent.email == email))
            agent = found.scalar_one_or_none()
            if agent is None:
                agent = Agent(email=email, name=name.strip() or email)
                session.add(agent)
            else:
                agent.name = name.strip() or agent.name
        return agent

    async def agent_by_email(self, email: str) -> Agent | None:
        async with self.sessions() as session:
            found = await session.execute(select(Agent).where(Agent.email == email.lower()))
            return found.scalar_one_or_none()

    async def _find_agent(self, session: AsyncSession, who: str) -> Agent | None:
        who = unicodedata.normalize("NFKC", who).strip()
        found = await session.execute(
            select(Agent).where((Agent.email == who.lower()) | (Agent.name == who))
        )
        agents = found.scalars().all()
        if len(agents) == 1:
            return agents[0]
        # 「佐藤」 finds 「佐藤 花子」 when only one agent's name starts with it.
        found = await session.execute(select(Agent).where(Agent.name.startswith(who)))
        agents = found.scalars().all()
        return agents[0] if len(agents) == 1 else None

    async def apply_agent_reply(
        self,
        ticket: Ticket,
        agent: Agent,
        *,
        status: TicketStatus | None = None,
        assign: str | None = None,
        priority: str | None = None,
        note: bool = False,
        body: str = "",
        submission_key: str | None = None,
        in_reply_to: str | None = None,
    ) -> list[str]:
        """Apply an agent's e-mailed reply; returns Japanese problems (then nothing changed).

        A note stays internal; otherwise a non-empty body goes to the customer, with the
        status change mentioned; a status change alone sends a short status mail.
        """
        now = utcnow()
        async with self.sessions() as session, session.begin():
            current = await session.get(Ticket, ticket.id, with_for_update=True)
            assert current is not None
            customer = await session.get(Customer, current.customer_id)
            assert customer is not None
            assignee = None
            if assign is not None:
                assignee = await self._find_agent(session, assign)
                if assignee is None:
                    return [
                        f"担当者「{assign}」が見つかりません。登録済みのメールアドレスか名前を指定してください。"
                    ]
            if submission_key:
                seen = await session.execute(
                    select(Message.id).where(Message.submission_key == submission_key)
                )
                if seen.first() is not None:
                    return []  # the same mail delivered twice
            actor = agent.email
            if assignee is not None and assignee.id != current.assignee_id:
                session.add(self._event(current, "assigned", actor, to=assignee.email))
                current.assignee_id = assignee.id
            if priority is not None and priority != current.priority:
                session.add(
                    self._event(
                        current, "priority_changed", actor, old=current.priority, new=priority
                    )
                )
                current.priority = priority
            old_status = current.status
            if status is not None and status != current.status:
                session.add(
                    self._event(current, "status_changed", actor, old=current.status, new=status)
                )
                current.status = status
            elif status is None and current.status == TicketStatus.new and body and not note:
                current.status = TicketStatus.open  # answered: the case is being handled
            if note or body:
                message = Message(
                    ticket_id=current.id,  # type: ignore[arg-type]
                    author=Author.note if note else Author.agent,
                    author_name=agent.name,
                    body=body or "(本文なし)",
                    submission_key=submission_key,
                    created_at=now,
                )
                session.add(message)
                session.add(self._event(current, "note" if note else "agent_reply", actor))
            changed = current.status != old_status and current.status != TicketStatus.open
            if not note and (body or changed):
                await self._queue_mail(
                    session,
                    ticket=current,
                    kind="agent_reply" if body else "status_changed",
                    to=customer.email,
                    automatic=not body,
                    reply_to=self.reply_address(current),
                    in_reply_to=in_reply_to,
                    references=[in_reply_to] if in_reply_to else (),
                    customer=customer,
                    body=body,
                    status_label=STATUS_LABELS[TicketStatus(current.status)] if changed else None,
                    status_url=self.status_url(current),
                )
            current.updated_at = now
        ticket.status, ticket.priority = current.status, current.priority
        ticket.assignee_id = current.assignee_id
        return []

    async def record_event(self, ticket_id: int, kind: str, actor: str, **data: Any) -> None:
        async with self.sessions() as session, session.begin():
            session.add(
                TicketEvent(
                    ticket_id=ticket_id,
                    kind=kind,
                    actor=actor,
                    data=json.dumps(data, ensure_ascii=False),
                )
            )

    async def report_failed_mail(self, row: InboundMail, problem: str) -> None:
        """Tell the support inbox about a received mail that could not be processed."""
        preview = _text(row.raw[:4000].decode("utf-8", errors="replace"))
        async with self.sessions() as session, session.begin():
            await self._tell_agents(
                session, None, "inbound_failed", row=row, problem=problem, preview=preview
            )

    async def queue_agent_error(self, agent: Agent, ticket: Ticket, problems: str) -> None:
        async with self.sessions() as session, session.begin():
            await self._queue_mail(
                session,
                ticket=ticket,
                kind="agent_error",
                to=agent.email,
                agent=agent,
                problems=problems,
            )


def _attachment(ticket: Ticket, message: Message, name: str, photo: StoredPhoto) -> Attachment:
    return Attachment(
        ticket_id=ticket.id,  # type: ignore[arg-type]
        message_id=message.id,
        field=name,
        digest=photo.digest,
        thumb_digest=photo.thumb_digest,
        content_type=photo.content_type,
        size=photo.size,
        width=photo.width,
        height=photo.height,
        filename=photo.original_filename[:120],
    )


def validate_message(body: str | None) -> tuple[str, dict[str, str]]:
    text = _text(body)
    if len(text) > MAX_DESCRIPTION:
        return text, {"body": f"メッセージは{MAX_DESCRIPTION}文字以内で入力してください。"}
    return text, {}


def today_in_japan(policy: ShopPolicy, now: datetime | None = None) -> date:
    return policy.local(now).date()
