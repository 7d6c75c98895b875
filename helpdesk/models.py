"""Database tables. Times are stored in UTC (see ``helpdesk.db.utcnow``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow


def _created_at() -> datetime:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


# A customer's "was this answer helpful?" vote under one FAQ answer.
class FaqFeedback(SQLModel, table=True):
    __tablename__ = "faq_feedback"

    id: int | None = Field(default=None, primary_key=True)
    entry_id: str = Field(max_length=100, index=True)
    helpful: bool
    query: str | None = Field(default=None, max_length=500)
    created_at: datetime = _created_at()


# A query the bot could not answer with confidence, with personal data masked.
class FaqGap(SQLModel, table=True):
    __tablename__ = "faq_gap"

    id: int | None = Field(default=None, primary_key=True)
    query: str = Field(max_length=500)
    confidence: float
    best_entry_id: str | None = Field(default=None, max_length=100)
    created_at: datetime = _created_at()
