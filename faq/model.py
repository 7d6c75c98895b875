"""The FAQ's value types: entries, search hits and the bot's answers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Entry:
    """One question and its answer, in the shop's own wording."""

    id: str
    question: str
    answer: str
    alternatives: tuple[str, ...] = ()
    category: str | None = None
    tags: tuple[str, ...] = ()
    #: Name of a dynamic supplement computed at answer time (``"ship_date"``, ``"cod_ship_date"``).
    dynamic: str | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers and keep the entry hashable.
        object.__setattr__(self, "alternatives", tuple(self.alternatives))
        object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result: the entry and its relevance score (higher is better)."""

    entry: Entry
    score: float


@dataclass(frozen=True, slots=True)
class Answer:
    """What the bot says to one query.

    ``answered`` is true only when the best entry is a confident match; otherwise
    ``entry`` is None and ``suggestions`` hold the best candidates to offer with the
    contact form. ``confidence`` is in [0, 1]. ``supplement`` is extra text computed for
    this moment (for example the concrete shipping date). ``searched_as`` is the query as
    it was searched when a typo or a kana spelling was read as another word
    (「ラッピンク」 → 「ラッピング」), else None.
    """

    query: str
    answered: bool
    entry: Entry | None
    suggestions: tuple[Hit, ...] = ()
    confidence: float = 0.0
    supplement: str | None = None
    hits: tuple[Hit, ...] = field(default=(), repr=False)
    searched_as: str | None = None
