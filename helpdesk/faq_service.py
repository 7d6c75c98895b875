"""The FAQ as the application uses it: the engine, answers as shown, gaps and feedback.

An answer as shown (``answer_view``) puts what was computed for this moment first (the
concrete shipping date), then the shop's text, rendered from its Markdown subset
(``faq.markup``). A long answer shows the sections whose sentences matched the question,
with those sentences highlighted, and folds the rest into ``<details>`` (open on demand,
with or without JavaScript).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from markupsafe import Markup
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from faq import (
    Answer,
    Entry,
    KnowledgeBaseError,
    PolicyError,
    SearchEngine,
    ShopPolicy,
    load_policy,
)
from faq.analysis import AnalysisMemo, Analyzer, shared_analyzer
from faq.markup import Paragraph, plain, render, render_answer, sections
from faq.synonyms import SynonymError
from helpdesk.db import as_utc, utcnow
from helpdesk.faq_gaps import GapGroup, GapQuery, group_gaps
from helpdesk.insights.counters import DayCounts, add_counts
from helpdesk.kb_store import FileKb, KnowledgeBase, KnowledgeBaseStore, load_files, merge
from helpdesk.metrics import FAQ_ANSWERED, FAQ_NOT_ANSWERED
from helpdesk.models import FaqFeedback, FaqGap
from helpdesk.privacy import mask_personal_data
from helpdesk.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Sequence

# Control characters (NUL and friends) are never part of a question; PostgreSQL refuses NUL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Answers below this confidence are logged too: they are what the FAQ answers poorly.
GAP_CONFIDENCE = 0.75
MAX_RESULTS = 5
# Gaps are written in batches, at least this often.
GAP_FLUSH_SECONDS = 1.0
GAP_BATCH = 200
# The gap list covers this many days, and at most this many distinct queries.
GAP_DAYS = 90
GAP_QUERIES = 2000
# Edits of data/ (entries, synonyms, shop policy) are picked up within this many seconds.
DATA_CHECK_SECONDS = 1.0
# An answer longer than this (in characters, without markup) with at least this many
# sections shows its matching sections and folds the others.
LONG_ANSWER_CHARS = 200
LONG_ANSWER_SECTIONS = 3
# A sentence is highlighted when it matches at least this share of the best sentence's
# query words (by their information).
HIGHLIGHT_SHARE = 0.6
# ... unless more than this share of the sentences would be: then nothing stands out.
MOST_SENTENCES = 0.34

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


@dataclass(frozen=True, slots=True)
class KbState:
    """What one process answers with: swapped whole, by one assignment, when rebuilt."""

    engine: SearchEngine
    policy: ShopPolicy
    #: The database's knowledge-base version it was built at (-1: not read yet).
    version: int = -1
    #: Names, sizes and times of the files it was built from.
    stamp: tuple[tuple[str, int, int], ...] = ()
    kb: KnowledgeBase | None = None


class FaqService:
    def __init__(
        self,
        engine: SearchEngine,
        policy: ShopPolicy,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_query_length: int = 200,
        data_dir: Path | None = None,
        memo: AnalysisMemo | None = None,
    ) -> None:
        self.sessions = sessions
        self.max_query_length = max_query_length
        #: Where the knowledge base comes from; ``reload_if_changed`` watches it.
        self.data_dir = data_dir
        #: The console's revisions over the files (None without a database or data folder).
        self.store = (
            KnowledgeBaseStore(sessions, data_dir)
            if sessions is not None and data_dir is not None
            else None
        )
        self._state = KbState(engine, policy, -1, _stamp(data_dir) if data_dir else ())
        # What failed to build last (files' stamp, version): not retried until it changes.
        self._failed: tuple[object, int] | None = None
        self._reload_lock = asyncio.Lock()
        # The files as last read, by their stamp: an edit in the console reads none again.
        self._files: tuple[tuple[tuple[str, int, int], ...], FileKb] | None = None
        # The knowledge base's analyses, from one build to the next.
        self._memo = memo or AnalysisMemo()
        self._reload_wakeup = asyncio.Event()
        #: How many times the index was rebuilt and swapped in (for tests and benchmarks).
        self.rebuilds = 0
        # (query, confidence, best entry, when): masked and written by the gap writer.
        self._pending_gaps: list[tuple[str, float, str | None, datetime]] = []
        self._gap_wakeup = asyncio.Event()
        # Questions asked and answered, forms with suggestions, per day in Japan: added to
        # ``faq_daily`` with the gaps (insights).
        self._counts: dict[date, DayCounts] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession]
    ) -> FaqService:
        """Load the knowledge base and the shop policy named by ``settings`` (the files;
        ``reload_if_changed`` then applies the database's revisions)."""
        memo = AnalysisMemo()
        analyzer = shared_analyzer()
        analyzer.memo = memo  # the first build fills it; queries do not
        try:
            engine = SearchEngine.from_directory(settings.data_dir, analyzer=analyzer)
        finally:
            analyzer.memo = None
        memo.rotate()
        assert engine.policy is not None
        return cls(
            engine,
            engine.policy,
            sessions,
            max_query_length=settings.faq_max_query_length,
            data_dir=settings.data_dir,
            memo=memo,
        )

    @property
    def engine(self) -> SearchEngine:
        """The index in use; read it once per request (a rebuild may swap it meanwhile)."""
        return self._state.engine

    @property
    def policy(self) -> ShopPolicy:
        return self._state.policy

    @property
    def version(self) -> int:
        """The knowledge-base version this process answers with."""
        return self._state.version

    async def reload_if_changed(self) -> bool:
        """Rebuild the index when the knowledge base changed: a file (entries, synonyms,
        shop policy) or the database's version (an edit in the console, by any worker).
        True when it did.

        Off the request path: the files and revisions are read, then the new engine is
        built in a thread with its own analyzer, and replaces the old one by one
        assignment; a request never sees a half-built index. A knowledge base that does
        not load (``faq check`` says why) is logged and the old one kept.
        """
        if self.data_dir is None:
            return False
        async with self._reload_lock:
            stamp = await asyncio.to_thread(_stamp, self.data_dir)
            version = await self.store.version() if self.store is not None else 0
            state = self._state
            if (stamp, version) == (state.stamp, state.version) or (stamp, version) == self._failed:
                return False
            if state.version == -1 and version == 0 and stamp == state.stamp:
                # No revision was ever saved: the index built from the files is current.
                self._state = KbState(state.engine, state.policy, 0, stamp)
                return False
            started = time.perf_counter()
            try:
                if self._files is not None and self._files[0] == stamp:
                    files = self._files[1]  # only the database changed
                else:
                    files = await asyncio.to_thread(load_files, self.data_dir)
                    self._files = (stamp, files)
                if self.store is not None:
                    kb = await self.store.load(files)
                else:
                    kb = merge(files, (), version)
                engine = await asyncio.to_thread(_build_engine, kb, self.data_dir, self._memo)
            except (KnowledgeBaseError, PolicyError, SynonymError, OSError) as exc:
                self._failed = (stamp, version)
                log.error("knowledge base not reloaded, the previous one stays: %s", exc)
                return False
            assert engine.policy is not None
            self._state = KbState(engine, engine.policy, kb.version, stamp, kb)
            self.rebuilds += 1
        log.info(
            "knowledge base loaded: %d entries (version %d) in %.2f s",
            len(engine.entries),
            kb.version,
            time.perf_counter() - started,
        )
        return True

    def request_reload(self) -> None:
        """Have ``watch_data`` look for changes now (after an edit in this process)."""
        self._reload_wakeup.set()

    async def watch_data(self, interval: float = DATA_CHECK_SECONDS) -> None:
        """Pick up changes of the knowledge base every ``interval`` seconds (or when
        ``request_reload`` asks), until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_wakeup.wait(), interval)
            self._reload_wakeup.clear()
            try:
                await self.reload_if_changed()
            except Exception:  # keep watching after an unexpected error
                log.exception("could not check the knowledge base for changes")

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
        """Answer ``query`` and keep it as a gap when the answer was not sure.

        The request only notes the gap; ``run_gap_writer`` (or ``flush_gaps``) masks the
        personal data in it and writes gaps in batches, off the request path: SQLite has one
        writer, and a customer should not wait for it.
        """
        answer = self.ask(query, now=now)
        (FAQ_ANSWERED if answer.answered else FAQ_NOT_ANSWERED).inc()
        asked_at = utcnow()
        tally = self._today(asked_at)
        tally.asked += 1
        tally.answered += answer.answered
        if not answer.answered or answer.confidence < GAP_CONFIDENCE:
            best = answer.hits[0].entry.id if answer.hits else None
            self._pending_gaps.append((query, answer.confidence, best, asked_at))
            if len(self._pending_gaps) >= GAP_BATCH:
                self._gap_wakeup.set()
        return answer

    def _today(self, now: datetime | None = None) -> DayCounts:
        day = self.policy.local(now or utcnow()).date()
        tally = self._counts.get(day)
        if tally is None:
            tally = self._counts[day] = DayCounts()
        return tally

    def note_suggested(self) -> None:
        """Count a ticket form on which FAQ answers were suggested (insights' deflection)."""
        self._today().suggested += 1

    async def flush_gaps(self) -> int:
        """Write the gaps noted so far, personal data masked, and add the day's counts of
        questions to ``faq_daily``; returns how many gaps. Counts that could not be
        written are kept for the next flush."""
        pending, self._pending_gaps = self._pending_gaps, []
        counts, self._counts = self._counts, {}
        if pending or counts:
            rows = await asyncio.to_thread(_gap_rows, pending) if pending else []
            try:
                async with self.sessions() as session:
                    if rows:
                        await session.execute(insert(FaqGap.__table__), rows)  # type: ignore[attr-defined]
                    await add_counts(session, counts)
                    await session.commit()
            except Exception:
                for day, tally in counts.items():
                    kept = self._counts.setdefault(day, DayCounts())
                    kept.asked += tally.asked
                    kept.answered += tally.answered
                    kept.suggested += tally.suggested
                raise
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

    async def gap_queries(
        self, *, days: int = GAP_DAYS, limit: int = GAP_QUERIES
    ) -> list[GapQuery]:
        """The distinct queries of the gap log of the last ``days`` days (the most recently
        asked ``limit``), with their counts and first and last dates."""
        await self.flush_gaps()
        since = utcnow() - timedelta(days=days)
        async with self.sessions() as session:
            rows = await session.execute(
                select(
                    col(FaqGap.query),
                    func.count(),
                    func.min(col(FaqGap.created_at)),
                    func.max(col(FaqGap.created_at)),
                    func.max(col(FaqGap.best_entry_id)),
                    func.max(col(FaqGap.confidence)),
                )
                .where(col(FaqGap.created_at) >= since)
                .group_by(col(FaqGap.query))
                .order_by(func.max(col(FaqGap.created_at)).desc())
                .limit(limit)
            )
            return [
                GapQuery(query, n, as_utc(first), as_utc(last), best, float(sure))
                for query, n, first, last, best, sure in rows.all()
            ]

    async def gap_groups(self, *, days: int = GAP_DAYS) -> list[GapGroup]:
        """The gap log's queries grouped by meaning (``helpdesk.faq_gaps``), open first."""
        queries = await self.gap_queries(days=days)
        handled = await self.store.sources() if self.store is not None else {}
        engine = self.engine
        # Analysis is CPU work: in a thread, with an analyzer of its own.
        return await asyncio.to_thread(
            lambda: group_gaps(queries, Analyzer(), engine=engine, handled=handled)
        )

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


def _gap_rows(pending: list[tuple[str, float, str | None, datetime]]) -> list[dict[str, Any]]:
    return [
        {
            "query": mask_personal_data(query)[:500],
            "confidence": confidence,
            "best_entry_id": best,
            "created_at": created_at,
        }
        for query, confidence, best, created_at in pending
    ]


def _build_engine(
    kb: KnowledgeBase, data_dir: Path, memo: AnalysisMemo | None = None
) -> SearchEngine:
    """The index over ``kb``'s published entries (run in a worker thread, with an analyzer
    of its own: the one answering queries is not thread-safe). ``memo``: the analyses of
    the previous build, so that only the texts that changed are analyzed again."""
    analyzer = Analyzer(memo=memo)
    try:
        engine = SearchEngine(
            kb.published(),
            policy=load_policy(data_dir / "shop.toml"),
            synonyms=kb.synonyms,
            analyzer=analyzer,
        )
    finally:
        analyzer.memo = None  # queries are not kept
    if memo is not None:
        memo.rotate()
    return engine


class PolicyFile:
    """The shop policy alone, for a process that answers no FAQ questions (``main.py
    worker``: mail, daily jobs): ``data/shop.toml``, read again when it changes (looked at
    when asked for, at most every ``DATA_CHECK_SECONDS``), without building a search index.
    A file that no longer loads is logged and the previous policy kept, as a reload of the
    knowledge base does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = _file_stamp(path)
        self._policy = load_policy(path)
        self._checked = time.monotonic()

    @property
    def policy(self) -> ShopPolicy:
        now = time.monotonic()
        if now - self._checked >= DATA_CHECK_SECONDS:
            self._checked = now
            stamp = _file_stamp(self.path)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._policy = load_policy(self.path)
                except (PolicyError, OSError) as exc:
                    log.error("shop policy not reloaded, the previous one stays: %s", exc)
        return self._policy


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """Size and modification time of ``path``; None when it cannot be read."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)


def _stamp(data_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the knowledge base's files."""
    files = [data_dir / "shop.toml", data_dir / "synonyms.toml", *data_dir.glob("faq/*.toml")]
    found = [(str(path), *stamp) for path in files if (stamp := _file_stamp(path)) is not None]
    return tuple(sorted(found))


def contact_path(query: str) -> str:
    """The contact form with the customer's question carried over into it."""
    return "/contact?" + urlencode({"q": query})


def answer_text(answer: Answer) -> str | None:
    """The answer as plain text: what was computed for now first, then the shop's text."""
    if answer.entry is None:
        return None
    text = plain(answer.entry.answer)
    return f"{answer.supplement}\n\n{text}" if answer.supplement else text


def answer_html(answer: Answer) -> Markup | None:
    """The whole answer as safe HTML (computed part first, links kept)."""
    if answer.entry is None:
        return None
    body = render_answer(answer.entry.answer)
    if answer.supplement:
        return Markup('<p class="supplement">{}</p>\n{}').format(answer.supplement, body)
    return body


def answer_json(answer: Answer, *, base_url: str = "", limit: int = MAX_RESULTS) -> dict[str, Any]:
    """The JSON shape shared by ``main.py ask --json`` and ``GET /api/faq/search``."""
    entry = answer.entry
    return {
        "query": answer.query,
        "answered": answer.answered,
        "answer": (
            {
                "id": entry.id,
                "question": entry.question,
                "answer": answer_text(answer),
                "html": str(answer_html(answer)),
            }
            if entry
            else None
        ),
        "searched_as": answer.searched_as,
        "contact_url": base_url + contact_path(answer.query),
        "results": [
            {
                "id": hit.entry.id,
                "question": hit.entry.question,
                "answer": plain(hit.entry.answer),
                "score": hit.score,
            }
            for hit in answer.hits[:limit]
        ],
    }


# -- the answer as shown on the pages -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShownSentence:
    html: Markup
    #: The sentence says what was asked (highlighted in long answers).
    matched: bool = False


@dataclass(frozen=True, slots=True)
class ShownPart:
    """Paragraphs shown as they are, or folded (``<details>``) when ``folded``."""

    paragraphs: tuple[tuple[tuple[ShownSentence, ...], ...], ...]
    folded: bool = False


@dataclass(frozen=True, slots=True)
class AnswerView:
    entry: Entry
    #: What was computed for this moment (the concrete shipping date), shown first.
    lead: str | None
    parts: tuple[ShownPart, ...]

    @property
    def folds(self) -> bool:
        return any(part.folded for part in self.parts)


def answer_view(
    engine: SearchEngine, entry: Entry, *, query: str | None = None, lead: str | None = None
) -> AnswerView:
    """``entry``'s answer as shown for ``query``: short answers whole; long ones with the
    sections that match the query shown (their matching sentences highlighted) and the
    others folded. Without a query, the whole answer."""
    found = sections(entry.answer)
    long = len(plain(entry.answer)) > LONG_ANSWER_CHARS and len(found) >= LONG_ANSWER_SECTIONS
    if not (query and long):
        whole = tuple(_shown(p) for section in found for p in section)
        return AnswerView(entry, lead, (ShownPart(whole),))
    words = engine.query_words(query)
    pieces = [sentence for section in found for p in section for line in p for sentence in line]
    scores = iter(engine.passage_scores([plain(piece) for piece in pieces], words))
    marks = [[[[next(scores) for _ in line] for line in p] for p in section] for section in found]
    flat = [x for sec in marks for p in sec for line in p for x in line]
    best = max(flat, default=0.0)
    cut = best * HIGHLIGHT_SHARE if best > 0 else math.inf
    if sum(x >= cut for x in flat) > len(flat) * MOST_SENTENCES:
        # Most of the text matches (a general question): nothing stands out, show it all.
        whole = tuple(_shown(p) for section in found for p in section)
        return AnswerView(entry, lead, (ShownPart(whole),))
    shown_sections = [any(x >= cut for p in sec for line in p for x in line) for sec in marks]
    if not any(shown_sections):
        shown_sections[0] = True  # nothing in the text matched: its beginning, then the rest
    parts: list[ShownPart] = []
    for section, section_marks, shown in zip(found, marks, shown_sections, strict=True):
        paragraphs = tuple(
            _shown(p, [[x >= cut for x in line] for line in pm])
            for p, pm in zip(section, section_marks, strict=True)
        )
        if parts and parts[-1].folded == (not shown):
            parts[-1] = ShownPart(parts[-1].paragraphs + paragraphs, not shown)
        else:
            parts.append(ShownPart(paragraphs, not shown))
    return AnswerView(entry, lead, tuple(parts))


def _shown(
    paragraph: Paragraph, matched: Sequence[Sequence[bool]] | None = None
) -> tuple[tuple[ShownSentence, ...], ...]:
    return tuple(
        tuple(
            ShownSentence(render(sentence), bool(matched and matched[i][j]))
            for j, sentence in enumerate(line)
        )
        for i, line in enumerate(paragraph)
    )
