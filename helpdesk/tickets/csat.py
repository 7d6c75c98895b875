"""Satisfaction surveys (CSAT): the links a resolution mail carries, and the answers.

When an agent resolves a ticket (``TicketService.apply``), a survey row is made for that
resolution and the customer's mail carries two links, 良かった and 改善してほしい. Each is
signed (``TicketAccess.csat_signature``: the ticket, the resolution, the last day) and
expires after ``VALID_DAYS``.

Mail scanners and link previews open every link in a mail, so opening a link records
nothing: the page shows the choice the link made, an optional comment, and one button that
sends them (POST, with the CSRF token). Answering again replaces the answer: a customer who
chose the wrong link puts it right. A survey closes when the ticket is reopened (the
customer wrote again) or resolved again (that resolution gets its own survey).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from faq import ShopPolicy
from faq.calendar import format_date
from helpdesk.db import as_utc, utcnow
from helpdesk.models import CsatRating, CsatResponse, Ticket, TicketStatus
from helpdesk.privacy import mask_personal_data
from helpdesk.tickets import store
from helpdesk.tickets.access import TicketAccess
from helpdesk.tickets.text import clean_text
from helpdesk.tickets.urls import TicketUrls

# How long a survey's links answer, in days from the resolution (Japan's days).
VALID_DAYS = 30
# The longest comment kept, in characters.
MAX_COMMENT = 1000

NOT_FOUND = "アンケートが見つかりません。メールに記載のリンクをご確認ください。"
CHOOSE = "「良かった」か「改善してほしい」のどちらかを選んでください。"


def expired_message(last_day: date) -> str:
    return (
        f"このアンケートの回答期限({format_date(last_day)}まで)を過ぎました。"
        "ご意見がございましたら、お問い合わせのメールにご返信ください。"
    )


REOPENED = (
    "このお問い合わせは、その後のご連絡を受けて対応を続けております。"
    "アンケートは、あらためて解決のご連絡をする際にお送りいたします。"
)
SUPERSEDED = (
    "このアンケートは終了しました。新しいアンケートをお送りしておりますので、"
    "最新のメールのリンクからお答えください。"
)


def comment_too_long(length: int) -> str:
    return f"ご意見は{MAX_COMMENT}文字以内で入力してください(いまは{length}文字です)。"


class SurveyError(Exception):
    """A survey link that answers nothing: ``message`` (Japanese) and the HTTP status."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class Survey:
    """An open survey: the ticket, its survey row and the last day it answers."""

    ticket: Ticket
    response: CsatResponse
    last_day: date


def parse_rating(value: str | None) -> CsatRating | None:
    try:
        return CsatRating(value or "")
    except ValueError:
        return None


def parse_last_day(value: str | None) -> date | None:
    """The link's ``e=20270102``."""
    text = value or ""
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def clean_comment(raw: str | None) -> tuple[str, str | None]:
    """(the comment cleaned, a Japanese problem or None); the comment is kept to show back."""
    comment = clean_text(raw)
    if len(comment) > MAX_COMMENT:
        return comment, comment_too_long(len(comment))
    return comment, None


class CsatService:
    """Opens survey links and records answers, one transaction each."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        access: TicketAccess,
        urls: TicketUrls,
        policy: Callable[[], ShopPolicy],
    ) -> None:
        self.sessions = sessions
        self.access = access
        self.urls = urls
        self._policy = policy

    def last_day(self, response: CsatResponse) -> date:
        """The last day (in Japan) a survey's links answer."""
        resolved = self._policy().local(as_utc(response.created_at)).date()
        return resolved + timedelta(days=VALID_DAYS)

    def links(self, ticket: Ticket, response: CsatResponse) -> dict[str, str]:
        """The mail's absolute links, by rating."""
        last_day = self.last_day(response)
        return {
            rating.value: self.urls.absolute(
                self.urls.csat(ticket, response.resolution, last_day, rating.value)
            )
            for rating in CsatRating
        }

    async def open(
        self,
        reference: str,
        resolution: int,
        last_day: date | None,
        signature: str | None,
        *,
        now: datetime | None = None,
    ) -> Survey:
        """The survey a link names, when it still answers.

        Raises:
            SurveyError: 404 for a link we did not sign (tampered, another ticket's), 410
                for one past its last day, or whose ticket was reopened or resolved again.
        """
        async with self.sessions() as session:
            return await self._open(session, reference, resolution, last_day, signature, now)

    async def _open(
        self,
        session: AsyncSession,
        reference: str,
        resolution: int,
        last_day: date | None,
        signature: str | None,
        now: datetime | None,
    ) -> Survey:
        ticket = await store.find_ticket(session, reference=reference)
        if (
            ticket is None
            or last_day is None
            or not self.access.check_csat(ticket, resolution, last_day, signature)
        ):
            raise SurveyError(NOT_FOUND, 404)
        response = await store.survey(session, ticket_id=ticket.id, resolution=resolution)  # type: ignore[arg-type]
        if response is None:
            raise SurveyError(NOT_FOUND, 404)
        if self._policy().local(now or utcnow()).date() > last_day:
            raise SurveyError(expired_message(last_day), 410)
        latest = await store.latest_survey(session, ticket_id=ticket.id)  # type: ignore[arg-type]
        if latest is not None and latest.resolution != resolution:
            raise SurveyError(SUPERSEDED, 410)
        if ticket.status not in (TicketStatus.resolved, TicketStatus.closed):
            raise SurveyError(REOPENED, 410)
        return Survey(ticket, response, last_day)

    async def answer(
        self,
        reference: str,
        resolution: int,
        last_day: date | None,
        signature: str | None,
        *,
        rating: CsatRating,
        comment: str,
        now: datetime | None = None,
    ) -> CsatResponse:
        """Record (or replace) the answer of the survey the link names. The comment (from
        ``clean_comment``, without problems) is stored masked, and replaces an earlier one
        only when given.

        Raises:
            SurveyError: as ``open`` (checked again, with the ticket row locked).
        """
        now = now or utcnow()
        async with self.sessions() as session, session.begin():
            ticket = await store.find_ticket(session, reference=reference)
            if ticket is not None:
                await store.lock_ticket(session, ticket_id=ticket.id)  # type: ignore[arg-type]
            survey = await self._open(session, reference, resolution, last_day, signature, now)
            response = survey.response
            response.rating = rating
            if comment:  # an answer without one keeps the earlier comment
                response.comment = mask_personal_data(comment)[:MAX_COMMENT]
            response.answered_at = response.answered_at or now
            store.add_event(
                session,
                ticket_id=ticket.id if ticket else None,
                kind="csat_answered",
                actor="customer",
                data={"resolution": resolution, "rating": rating.value},
            )
        return response
