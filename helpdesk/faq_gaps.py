"""Questions the FAQ could not answer, grouped by meaning (issue 11, "from gap to answer").

Customers ask the same thing in many ways: 「返品したい」 and 「返品できますか？」 say the
same content words; 「へんぴんしたい」 reads them the same. Two logged queries are in one
group when the analyzer (``faq.analysis``) finds the same normalized content words in both,
or the same readings of them; groups are closed under this (a chain of such pairs is one
group). Each group has its counts, first and last dates, the entry the bot found closest,
and a stable key, which a change made from it records (``FaqRevision.source``) so the
list can tell which groups were answered since.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from faq.analysis import Analyzer
from faq.engine import SearchEngine
from faq.normalize import normalize

# A group's key, as stored in ``FaqRevision.source``.
SOURCE_PREFIX = "gap:"


@dataclass(frozen=True, slots=True)
class GapQuery:
    """One distinct query of the gap log, with how often and when it was asked."""

    query: str
    count: int
    first_seen: datetime
    last_seen: datetime
    best_entry_id: str | None = None
    #: The bot's best confidence for it (below the answer threshold: not answered).
    confidence: float = 0.0


@dataclass(slots=True)
class GapGroup:
    key: str
    #: The content words the group's queries share (the first query's, for display).
    words: tuple[str, ...]
    queries: list[GapQuery] = field(default_factory=list)
    #: When a change made from this group was saved (None: not answered yet).
    handled_at: datetime | None = None

    @property
    def source(self) -> str:
        return SOURCE_PREFIX + self.key

    @property
    def count(self) -> int:
        return sum(q.count for q in self.queries)

    @property
    def first_seen(self) -> datetime:
        return min(q.first_seen for q in self.queries)

    @property
    def last_seen(self) -> datetime:
        return max(q.last_seen for q in self.queries)

    @property
    def question(self) -> str:
        """The group's most asked wording (the newest among equals)."""
        return max(self.queries, key=lambda q: (q.count, q.last_seen)).query

    @property
    def others(self) -> list[str]:
        return [q.query for q in self.queries if q.query != self.question]

    @property
    def best_entry_id(self) -> str | None:
        """The entry the bot found closest most often."""
        votes = Counter(q.best_entry_id for q in self.queries if q.best_entry_id)
        for q in self.queries:
            if q.best_entry_id:
                votes[q.best_entry_id] += q.count - 1
        return votes.most_common(1)[0][0] if votes else None

    @property
    def answered_poorly(self) -> bool:
        """Some of its queries were answered, with low confidence (not unanswered)."""
        return any(q.confidence >= 0.5 for q in self.queries)

    @property
    def open(self) -> bool:
        """Asked again since the last change made from it (or never changed)."""
        return self.handled_at is None or self.last_seen > self.handled_at


def query_keys(
    query: str, analyzer: Analyzer, engine: SearchEngine | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The query's normalized content words (as ``engine`` reads them when given: kana
    spelling an indexed word is that word), and their readings, each sorted (a word
    without a reading keeps its form); the text itself for a query without content words."""
    tokens = analyzer.tokens(query)
    words = (
        engine.canonical_words(query, analyzer=analyzer)
        if engine is not None
        else tuple(sorted({t.term for t in tokens}))
    )
    if not words:
        text = normalize(query).strip()
        return (text,), (text,)
    readings = tuple(sorted({t.reading or t.term for t in tokens})) or words
    return words, readings


def group_gaps(
    queries: Iterable[GapQuery],
    analyzer: Analyzer,
    *,
    engine: SearchEngine | None = None,
    handled: dict[str, datetime] | None = None,
) -> list[GapGroup]:
    """The queries grouped by meaning, most asked first (then most recent).

    ``analyzer``: one of the caller's own (this runs in a worker thread); ``engine``: the
    index, to read kana as the indexed words it spells. ``handled``: source -> when a
    change made from that group was saved (``KnowledgeBaseStore.sources``).
    """
    items = list(queries)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    keys: list[tuple[str, ...]] = []
    first_by_key: dict[tuple[str, tuple[str, ...]], int] = {}
    for index, item in enumerate(items):
        words, readings = query_keys(item.query, analyzer, engine)
        keys.append(words)
        for kind, found in (("w", words), ("r", readings)):
            other = first_by_key.setdefault((kind, found), index)
            if other != index:
                parent[find(index)] = find(other)
    members: dict[int, list[int]] = {}
    for index in range(len(items)):
        members.setdefault(find(index), []).append(index)
    handled = handled or {}
    groups = []
    for indexes in members.values():
        ordered = sorted(indexes, key=lambda i: (-items[i].count, items[i].query))
        canonical = min(keys[i] for i in indexes)
        digest = hashlib.sha256("|".join(canonical).encode()).hexdigest()[:16]
        group = GapGroup(digest, keys[ordered[0]], [items[i] for i in ordered])
        group.handled_at = handled.get(group.source)
        groups.append(group)
    groups.sort(key=lambda g: (not g.open, -g.count, -g.last_seen.timestamp()))
    return groups


def find_group(groups: Sequence[GapGroup], key: str) -> GapGroup | None:
    return next((g for g in groups if g.key == key), None)
