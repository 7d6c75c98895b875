"""Saved replies (テンプレート): admins write them, every agent inserts them in a reply.

Each change is one transaction with an event in the audit trail (no ticket):
``saved_reply_created``, ``saved_reply_updated``, ``saved_reply_deleted``, the actor being
the admin's address. Only admins change them (``SavedReplies`` checks it, not only the page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from faq import ShopPolicy
from helpdesk.db import utcnow
from helpdesk.models import Agent, SavedReply, Ticket
from helpdesk.replies.placeholders import TicketFacts, placeholder_problems, render, values
from helpdesk.tickets import store
from helpdesk.tickets.text import clean_line, clean_text

MAX_TITLE = 100
MAX_CATEGORY = 40
MAX_BODY = 5000
NOT_FOUND = "このテンプレートは見つかりません。削除された可能性があります。"
ADMINS_ONLY = "テンプレートを変更できるのは管理者だけです。"
TITLE_TAKEN = "同じ題名のテンプレートがすでにあります。別の題名にしてください。"


class SavedReplyRefused(Exception):
    """The saved reply cannot be stored; ``problems`` are Japanese sentences for the admin."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class SavedReplyIn:
    """What the admin typed, cleaned (``from_form``); checked by ``problems``."""

    title: str
    body: str
    category: str | None = None

    @classmethod
    def from_form(cls, title: object, body: object, category: object) -> SavedReplyIn:
        return cls(
            title=clean_line(str(title or "")),
            body=clean_text(str(body or "")).strip("\n"),
            category=clean_line(str(category or "")) or None,
        )

    def problems(self) -> list[str]:
        found: list[str] = []
        if not self.title:
            found.append("題名を入力してください。")
        elif len(self.title) > MAX_TITLE:
            found.append(f"題名は{MAX_TITLE}文字以内で入力してください。")
        if self.category and len(self.category) > MAX_CATEGORY:
            found.append(f"分類は{MAX_CATEGORY}文字以内で入力してください。")
        if not self.body.strip():
            found.append("本文を入力してください。")
        elif len(self.body) > MAX_BODY:
            found.append(f"本文は{MAX_BODY}文字以内で入力してください。")
        return found + placeholder_problems(self.body)


def ticket_facts(ticket: Ticket) -> TicketFacts:
    return TicketFacts(
        customer_name=ticket.customer_name,
        reference=ticket.reference,
        order_number=ticket.order_number,
        arrived_on=ticket.arrived_on,
    )


class SavedReplies:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        policy: Callable[[], ShopPolicy],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self._policy = policy
        self.clock = clock

    # -- reading ----------------------------------------------------------------------------

    async def all(self) -> list[SavedReply]:
        """Every saved reply, by category (none last) then title."""
        async with self.sessions() as session:
            found = await session.execute(
                select(SavedReply).order_by(
                    col(SavedReply.category).is_(None),
                    col(SavedReply.category),
                    col(SavedReply.title),
                )
            )
            return list(found.scalars().all())

    async def get(self, reply_id: int) -> SavedReply | None:
        async with self.sessions() as session:
            return await session.get(SavedReply, reply_id)

    def render_for(self, saved: SavedReply, ticket: Ticket, *, now: datetime | None = None) -> str:
        """The saved reply's text for ``ticket``: placeholders filled in, markers where a
        value is unknown (``placeholders``)."""
        filled = values(ticket_facts(ticket), self._policy(), now=now or self.clock())
        return render(saved.body, filled)

    # -- admins' changes --------------------------------------------------------------------

    async def save(
        self, data: SavedReplyIn, *, by: Agent, reply_id: int | None = None
    ) -> SavedReply:
        """Create (``reply_id`` None) or update a saved reply.

        Raises:
            SavedReplyRefused: ``by`` is not an admin, the data has problems (unknown
                placeholders ...), the title is taken, or the reply to update is gone.
        """
        if not by.is_admin:
            raise SavedReplyRefused([ADMINS_ONLY])
        if problems := data.problems():
            raise SavedReplyRefused(problems)
        now = self.clock()
        try:
            async with self.sessions() as session, session.begin():
                if reply_id is None:
                    saved = SavedReply(
                        title=data.title,
                        body=data.body,
                        category=data.category,
                        updated_by=by.email,
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(saved)
                    await session.flush()
                    kind = "saved_reply_created"
                else:
                    found = await session.get(SavedReply, reply_id, with_for_update=True)
                    if found is None:
                        raise SavedReplyRefused([NOT_FOUND])
                    saved = found
                    saved.title, saved.body, saved.category = data.title, data.body, data.category
                    saved.updated_by, saved.updated_at = by.email, now
                    kind = "saved_reply_updated"
                await session.flush()
                store.add_event(
                    session,
                    ticket_id=None,
                    kind=kind,
                    actor=by.email,
                    data={"saved_reply": saved.id, "title": saved.title},
                )
        except IntegrityError:
            raise SavedReplyRefused([TITLE_TAKEN]) from None
        return saved

    async def delete(self, reply_id: int, *, by: Agent) -> bool:
        """Delete a saved reply; False when it was already gone.

        Raises:
            SavedReplyRefused: ``by`` is not an admin.
        """
        if not by.is_admin:
            raise SavedReplyRefused([ADMINS_ONLY])
        async with self.sessions() as session, session.begin():
            saved = await session.get(SavedReply, reply_id, with_for_update=True)
            if saved is None:
                return False
            store.add_event(
                session,
                ticket_id=None,
                kind="saved_reply_deleted",
                actor=by.email,
                data={"saved_reply": saved.id, "title": saved.title},
            )
            await session.delete(saved)
        return True
