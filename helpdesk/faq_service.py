"""The FAQ as the application uses it: the engine, gap logging and answer feedback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from faq import Answer, Entry, SearchEngine, ShopPolicy, load_entries, load_policy
from helpdesk.db import as_utc
from helpdesk.models import FaqFeedback, FaqGap
from helpdesk.privacy import mask_personal_data
from helpdesk.settings import Settings

# Control characters (NUL and friends) are never part of a question; PostgreSQL refuses NUL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Answers below this confidence are logged too: they are what the FAQ answers poorly.
GAP_CONFIDENCE = 0.75
MAX_RESULTS = 5
# Gaps are written in batches, at least this often.
GAP_FLUSH_SECONDS = 1.0
GAP_BATCH = 200

# The order of the shop's FAQ pages (セール商品, 発送/お届け, 決済方法, その他), the privacy
# questions before その他; a category not listed comes before その他, in file order.
CATEGORY_ORDER = ("セール商品", "発送/お届け", "決済方法", "個人情報の取り扱い")
LAST_CATEGORY = "その他"

log = logging.getLogger(__name__)


class QueryError(ValueError):
    """A query the API refuses; the message is Japanese and meant for the customer."""


@dataclass(frozen=True, slots=True)
class GapSummary:
    query: str
    count: int
    last_seen: datetime
    best_entry_id: str | None


class FaqService:
    def __init__(
        self,
        engine: SearchEngine,
        policy: ShopPolicy,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_query_length: int = 200,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.sessions = sessions
        self.max_query_length = max_query_length
        self._pending_gaps: list[FaqGap] = []
        self._gap_wakeup = asyncio.Event()

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession]
    ) -> FaqService:
        """Load the knowledge base and the shop policy named by ``settings``."""
        policy = load_policy(settings.data_dir / "shop.toml")
        entries = load_entries(settings.data_dir / "faq")
        engine = SearchEngine(entries, policy=policy)
        return cls(engine, policy, sessions, max_query_length=settings.faq_max_query_length)

    @property
    def entries(self) -> list[Entry]:
        return self.engine.entries

    def categories(self) -> dict[str, list[Entry]]:
        """Entries by category, in the order of the shop's pages (``CATEGORY_ORDER``)."""
        grouped: dict[str, list[Entry]] = {}
        for entry in self.entries:
            grouped.setdefault(entry.category or "その他", []).append(entry)
        rank = {name: index for index, name in enumerate(CATEGORY_ORDER)}
        rank[LAST_CATEGORY] = len(CATEGORY_ORDER) + 1
        ordered = sorted(grouped, key=lambda name: rank.get(name, len(CATEGORY_ORDER)))
        return {name: grouped[name] for name in ordered}

    def validate(self, query: str | None) -> str:
        """Return the query without control characters, or raise ``QueryError``."""
        query = _CONTROL.sub("", (query or "").replace("\t", " ").replace("\n", " ")).strip()
        if not query:
            raise QueryError("質問を入力してください。")
        if len(query) > self.max_query_length:
            raise QueryError(
                f"質問は{self.max_query_length}文字以内で入力してください"
                f"(いまは{len(query)}文字です)。"
            )
        return query

    def ask(self, query: str, *, now: datetime | None = None) -> Answer:
        return self.engine.ask(query, now=now, limit=MAX_RESULTS)

    async def ask_and_log(self, query: str, *, now: datetime | None = None) -> Answer:
        """Answer ``query`` and keep it, masked, as a gap when the answer was not sure.

        Gaps are written in batches by ``run_gap_writer`` (or ``flush_gaps``), off the
        request path: SQLite has one writer, and a customer should not wait for it.
        """
        answer = self.ask(query, now=now)
        if not answer.answered or answer.confidence < GAP_CONFIDENCE:
            best = answer.hits[0].entry.id if answer.hits else None
            self._pending_gaps.append(
                FaqGap(
                    query=mask_personal_data(query)[:500],
                    confidence=answer.confidence,
                    best_entry_id=best,
                )
            )
            if len(self._pending_gaps) >= GAP_BATCH:
                self._gap_wakeup.set()
        return answer

    async def flush_gaps(self) -> int:
        """Write the gaps logged so far; returns how many."""
        pending, self._pending_gaps = self._pending_gaps, []
        if pending:
            async with self.sessions() as session:
                session.add_all(pending)
                await session.commit()
        return len(pending)

    async def run_gap_writer(self, interval: float = GAP_FLUSH_SECONDS) -> None:
        """Flush gaps every ``interval`` seconds or when a batch is full, until cancelled."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._gap_wakeup.wait(), interval)
                self._gap_wakeup.clear()
                try:
                    await self.flush_gaps()
                except Exception:  # keep logging after a transient database error
                    log.exception("could not write FAQ gaps")
        finally:
            await self.flush_gaps()

    async def record_feedback(self, entry_id: str, helpful: bool, query: str | None) -> bool:
        """Store a yes/no vote; False when the entry does not exist."""
        if self.engine.get(entry_id) is None:
            return False
        async with self.sessions() as session:
            masked = mask_personal_data(query)[:500] if query else None
            session.add(FaqFeedback(entry_id=entry_id, helpful=helpful, query=masked))
            await session.commit()
        return True

    async def gaps(self, limit: int = 50) -> list[GapSummary]:
        """Logged gap queries, most frequent first."""
        await self.flush_gaps()
        async with self.sessions() as session:
            rows = await session.execute(
                select(
                    col(FaqGap.query),
                    func.count(),
                    func.max(col(FaqGap.created_at)),
                    func.max(col(FaqGap.best_entry_id)),
                )
                .group_by(col(FaqGap.query))
                .order_by(func.count().desc(), func.max(col(FaqGap.created_at)).desc())
                .limit(limit)
            )
            return [GapSummary(q, n, as_utc(last), best) for q, n, last, best in rows.all()]

    async def feedback_totals(self) -> dict[str, tuple[int, int]]:
        """entry id -> (helpful votes, not helpful votes)."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(FaqFeedback.entry_id), col(FaqFeedback.helpful), func.count()).group_by(
                    col(FaqFeedback.entry_id), col(FaqFeedback.helpful)
                )
            )
            totals: dict[str, list[int]] = {}
            for entry_id, helpful, count in rows.all():
                totals.setdefault(entry_id, [0, 0])[0 if helpful else 1] += count
            return {k: (v[0], v[1]) for k, v in totals.items()}


def answer_text(answer: Answer) -> str | None:
    """The answer as shown: the shop's wording plus what was computed for now."""
    if answer.entry is None:
        return None
    if answer.supplement:
        return f"{answer.entry.answer}\n\n{answer.supplement}"
    return answer.entry.answer


def answer_json(answer: Answer, text: str | None) -> dict[str, Any]:
    """The JSON shape shared by ``main.py ask --json`` and ``GET /api/faq/search``."""
    entry = answer.entry
    return {
        "query": answer.query,
        "answered": answer.answered,
        "answer": ({"id": entry.id, "question": entry.question, "answer": text} if entry else None),
        "results": [
            {
                "id": hit.entry.id,
                "question": hit.entry.question,
                "answer": hit.entry.answer,
                "score": hit.score,
            }
            for hit in answer.hits[:MAX_RESULTS]
        ],
    }
