"""The search engine: a BM25F index over entries, query expansion, and a calibrated bot.

Ranking
    BM25F over four fields (question, other phrasings, tags, answer). A query is analyzed
    into *groups*, one per content word; each group holds alternative terms with weights
    (the lemma itself, SudachiPy's and the shop's synonym groups, its mode-A sub-units, and
    for words the index has never seen, readings and typo-tolerant neighbours). A document
    scores, per group, its best alternative, so a word and its synonym never count twice.
    The score is then scaled by how much of the query (weighted by information) the entry
    covers, so an entry matching every word beats one matching a single word many times.

When does an entry answer the question? (the confidence)
    An entry answers a question when they are about the same thing, in both directions,
    and when the shop's answer itself speaks of it. Every quantity below is relative to the
    knowledge base: a word carries its information in it (idf; a word the KB has never seen
    counts as the rarest) times its topicality (nouns name the topic; verbs, adjectives and
    nouns that say when or how much, such as 今日, 3回 or 何日, weigh less). No list of
    special words is involved, so the same model holds for any knowledge base.

    * ``missing``: every *specific* word of the query must be covered by the entry. A word
      is covered when any field matches it directly, by synonym, reading or typo (fully
      outside the answer text, half when only the answer mentions it, partly when only
      inside a compound: ログイン in ソーシャルログイン). ``missing`` is the information of
      the most specific noun the best entry leaves uncovered, in units of a never-seen word
      (0..1): 送料 in 「セール品でも送料かかる？」 against the reshipping entry, 手数料 or
      期限 wherever they are not named.
    * ``unasked``: the entry must not answer a narrower question than the one asked. The
      entry's question and its other phrasings say what it answers; a word most of them
      say (with its synonyms: 代引き = 代金引換) is essential to it. ``unasked`` is the
      information of the most essential word the query leaves out, weighted by the square
      of the share of phrasings that say it: 「クレカ使える？」 leaves out 代引き, which every
      phrasing of the cash-on-delivery entry says, so that entry does not answer whether
      cards are accepted at all. Tags are evidence for ranking, not phrasings.
    * ``in_answer``: the share of the query's information that the shop's answer text
      itself mentions. Tags and phrasings are claims about what customers ask; the
      answer is what the shop says (PayPay in the tags of the cash-on-delivery entry, but
      「代引きのお支払いは現金のみとなります。」).

    What a word does in the question matters as much as what it is (``faq.clauses``):
    Japanese puts the situation in reasons and concessions (〜ので, 〜けど, 〜が), in earlier
    sentences and in adnominal clauses (届いた in 「届いた請求書」), and what is asked in the
    main clause of the question, with the conditions leading into it (〜たら, 〜なら, 〜と:
    「九州だと到着は発送の何日後？」 asks about 九州). A word of the situation (*context*)
    counts ``CONTEXT_WEIGHT`` as much as one that asks in the coverage (so also in the
    re-ranking by coverage; BM25F itself weighs every word alike) and is never the word
    behind ``missing``: in 「昨日商品が届いたのですが、カメラ穴の位置が
    ずれていました。返品できますか？」 only 返品 asks. A question that names nothing itself
    (「もう一度送ってもらえますか？」) asks about the last thing named before it.

    With ``coverage`` (the covered share of the query's information), ``lead`` (how far the
    best entry leads the best entry that would answer otherwise: an entry opening with the
    same computed answer, such as the concrete shipping date, is no rival) and ``matched``
    (how much it matched, in rare-word units: a long question with context still names its
    topic), these are the features of a logistic model fitted on labelled queries
    (``bench/faq_fit.py``: the dev set, hold-out 1 and near-miss set 1, i.e. in-scope
    questions, out-of-scope ones and questions in the shop's domain that its pages do not
    answer). The bot answers at or above
    ``ANSWER_THRESHOLD`` and otherwise says it has no answer, with suggestions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz, process

from faq.analysis import Analyzer, Token, shared_analyzer, synonym_term
from faq.markup import plain
from faq.model import Answer, Entry, Hit
from faq.normalize import kana_runs, normalize, to_katakana
from faq.policy import ShopPolicy
from faq.synonyms import SynonymError, SynonymTable, user_synonym_term

# Field weights of BM25F: a customer's words meet the question and its phrasings first.
FIELD_WEIGHTS = {"question": 3.0, "alternatives": 2.0, "tags": 2.0, "answer": 1.0}
FIELD_B = {"question": 0.5, "alternatives": 0.5, "tags": 0.3, "answer": 0.75}
K1 = 1.2
# Weights of a morpheme's derived terms, relative to its lemma.
SUBUNIT_WEIGHT = 0.5
SYNONYM_WEIGHT = 0.8
READING_WEIGHT = 0.9
# A synonym found in an entry is evidence, but weaker than the customer's own word.
SYNONYM_COVERAGE = 0.9
FUZZY_WEIGHT = 0.9
# An unknown word read like an indexed one (発想 for 発送): the input method's likely slip.
HOMOPHONE_WEIGHT = 0.8
# Typo tolerance: similarity (0-100) a neighbour must reach, by length of the typed word.
FUZZY_MIN_LENGTH = 3
FUZZY_CUTOFF = 78.0
NEIGHBOUR_CACHE_SIZE = 10_000
# Readings shorter than this are too ambiguous to match kana-only text against.
MIN_READING = 3
# A word found only in an entry's answer, not in its question, phrasings or tags, says less
# about whether the entry answers the query.
ANSWER_ONLY_COVERAGE = 0.5
# Nouns name a question's topic; verbs and adjectives weigh less in its coverage.
NON_NOUN_IMPORTANCE = 0.6
ADVERBIAL_IMPORTANCE = 0.5
# Ranking blends BM25F with how much of the query an entry covers: an entry matching every
# word of the query beats one matching a single word many times.
RERANK_BASE = 0.3
# A word that tells the customer's situation rather than what is asked (a reason, a
# concession, an earlier sentence: ``faq.clauses``) counts this much as one that asks in the
# coverage (chosen among 0.3-1.0 on the query sets; bench/README.md).
CONTEXT_WEIGHT = 0.5
# A word found only inside a compound of an entry (ログイン in ソーシャルログイン) is covered
# in part: the compound may be about something narrower.
SUBUNIT_COVERAGE = 0.75
# Confidence = logistic(COVERAGE * coverage + LEAD * lead + MATCHED * ln(1 + matched)
#                       + MISSING * missing + UNASKED * unasked + IN_ANSWER * in_answer + BIAS)
# (see the module docstring). Fitted by ``bench/faq_fit.py --l2 1 --negative-weight 1``:
# L2-regularized logistic regression (maximum likelihood, equal class weights) on the dev
# set, hold-out 1 and near-miss set 1, answering at 0.5 as fitted (in sample: 117/123 in
# scope right, 4/143 near-miss answered; out of fold: 117/123 and 5/143). Hold-out 2 and
# near-miss set 2 are not fitted on, but were read while the features were developed
# (bench/README.md).
CONFIDENCE_COVERAGE = 2.314
CONFIDENCE_LEAD = 0.961
CONFIDENCE_MATCHED = 2.799
CONFIDENCE_MISSING = -2.180
CONFIDENCE_UNASKED = -2.166
CONFIDENCE_IN_ANSWER = 2.004
CONFIDENCE_BIAS = -6.093
# ``matched`` is in units where a word never seen by the KB weighs this much (the shop's
# 28 entries, where the model was first fitted, give such a word ~3).
RARE_WORD = 3.0
# Beside a sure answer, other entries are offered when they score at least this share of it.
RELATED_SCORE_RATIO = 0.4
# The bot answers when the calibrated confidence reaches this.
ANSWER_THRESHOLD = 0.5


# Content words of a text: runs of tokens, each with the shop synonym group it spells.
_Words = list[tuple[list[Token], int | None]]


@dataclass(slots=True)
class _Group:
    """Alternatives for one query word: term -> weight, and the word's importance."""

    alternatives: dict[str, float]
    importance: float = 0.0
    surface: str = ""
    #: How much the word says about the topic: 1 for nouns, less for verbs and adverbs.
    topicality: float = 1.0
    #: Where the word is in the normalized query.
    start: int = 0
    end: int = 0
    #: Alternatives that stand for another word than the one typed (a typo, kana for
    #: kanji, a homophone), each with the indexed word it stands for.
    corrections: dict[str, str] = field(default_factory=dict)
    #: The word tells the customer's situation, not what is asked (``faq.clauses``).
    context: bool = False
    #: The customer sets the word aside (交換 in 「交換ではなく返金…」): not searched.
    excluded: bool = False
    #: The lemma of a verb or adjective the word is an inflected form of ("" otherwise).
    inflected: str = ""
    #: How each alternative came from the word (``MATCH_KINDS``), for ``explain_hits``.
    kinds: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Unit:
    """One word of an entry's phrasings: the terms that cover it (with their weight), its
    information, and the share of the entry's phrasings that say it (1: every phrasing
    of the question presupposes it)."""

    terms: tuple[tuple[str, float], ...]
    importance: float
    essential: float = 1.0


@dataclass(frozen=True, slots=True)
class QueryWord:
    """One word of a query as searched: the index terms that match it and its information."""

    terms: frozenset[str]
    importance: float
    surface: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why the bot is or is not sure of its best entry: the features of the model.

    All in [0, 1] but ``matched`` (information matched, in rare-word units): see the module
    docstring.
    """

    coverage: float = 0.0
    lead: float = 0.0
    matched: float = 0.0
    missing: float = 0.0
    unasked: float = 0.0
    in_answer: float = 0.0
    #: The query word behind ``missing`` (for people reading logs and benchmarks).
    missing_word: str = ""

    def vector(self) -> tuple[float, ...]:
        """The model's inputs, in the order of its weights."""
        return (
            self.coverage,
            self.lead,
            math.log1p(self.matched),
            self.missing,
            self.unasked,
            self.in_answer,
        )


WEIGHTS = (
    CONFIDENCE_COVERAGE,
    CONFIDENCE_LEAD,
    CONFIDENCE_MATCHED,
    CONFIDENCE_MISSING,
    CONFIDENCE_UNASKED,
    CONFIDENCE_IN_ANSWER,
)


def confidence(
    evidence: Evidence, weights: Sequence[float] = WEIGHTS, bias: float = CONFIDENCE_BIAS
) -> float:
    """The calibrated probability that the best entry answers the query."""
    z = bias + sum(w * x for w, x in zip(weights, evidence.vector(), strict=True))
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True, slots=True)
class _TopMatch:
    """How the best entry matches one query word: the alternative that scored there ("" if
    none did) and whether the answer text says the word."""

    term: str
    said: bool


#: How a query word matched an entry (``explain_hits``), in the console's words.
MATCH_KINDS = {
    "direct": "そのまま",
    "synonym": "同義語",
    "part": "複合語の一部",
    "reading": "読み",
    "typo": "入力ミス",
    "homophone": "同音の語",
}


@dataclass(frozen=True, slots=True)
class WordMatch:
    """How one entry matched one word of the query."""

    #: The word as typed.
    word: str
    #: A key of ``MATCH_KINDS``, or "" when the entry does not match the word.
    how: str
    #: The entry's word it matched (the synonym group's words for a synonym).
    matched: str
    #: How well the entry covers the word (0..1; less in the answer only or in a compound).
    coverage: float
    #: The word's information (idf times topicality; halved for the situation's words).
    importance: float
    #: The word tells the customer's situation rather than what is asked.
    context: bool
    #: The entry's answer text itself says the word.
    in_answer: bool


@dataclass(frozen=True, slots=True)
class HitExplanation:
    entry: Entry
    score: float
    words: tuple[WordMatch, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """``explain_hits``: the answer, the features of the confidence, and every hit's words."""

    answer: Answer
    evidence: Evidence
    hits: tuple[HitExplanation, ...]
    threshold: float


@dataclass(slots=True)
class _Ranking:
    """A query's groups, the best entries as (entry, score), and per-group coverage."""

    groups: list[_Group]
    total: float
    ranked: list[tuple[int, float]] = field(default_factory=list)
    covered: np.ndarray | None = None  # covered importance per entry
    coverage: np.ndarray | None = None  # group x entry: how well the entry covers the word
    #: The best score of an entry that would answer otherwise than the first (``lead``).
    rival: float = 0.0


class SearchEngine:
    """Search over any list of entries; ``ask`` adds the answer/suggest decision.

    ``policy`` (optional) enables dynamic supplements such as the concrete shipping date.
    ``synonyms`` (optional) are the shop's synonym groups (``faq.synonyms``).
    ``analyzer`` may be shared between engines to load the dictionary once.

    Raises ``SynonymError`` when a synonym group cannot be used (a word with no content).
    """

    def __init__(
        self,
        entries: Iterable[Entry],
        *,
        policy: ShopPolicy | None = None,
        synonyms: Iterable[Sequence[str]] = (),
        analyzer: Analyzer | None = None,
    ) -> None:
        self.entries: list[Entry] = list(entries)
        self.policy = policy
        self.analyzer = analyzer or shared_analyzer()
        self.synonyms = SynonymTable(synonyms, self.analyzer)
        self._by_id = {entry.id: entry for entry in self.entries}
        self._build()

    @classmethod
    def from_directory(
        cls, data_dir: str | Path, *, analyzer: Analyzer | None = None
    ) -> SearchEngine:
        """The engine over a data folder: ``faq/*.toml``, ``synonyms.toml`` and ``shop.toml``.

        Raises ``KnowledgeBaseError``, ``SynonymError`` or ``PolicyError`` naming the file
        and the problem, and ``FileNotFoundError`` without ``faq/`` or ``shop.toml``.
        """
        from faq.kb import load_entries
        from faq.policy import load_policy
        from faq.synonyms import load_synonyms

        data_dir = Path(data_dir)
        entries = load_entries(data_dir / "faq")
        policy = load_policy(data_dir / "shop.toml")
        path = data_dir / "synonyms.toml"
        analyzer = analyzer or shared_analyzer()
        try:
            synonyms = SynonymTable(load_synonyms(path), analyzer)
        except SynonymError as exc:
            if all(problem.startswith(str(path)) for problem in exc.problems):
                raise
            raise SynonymError([f"{path}: {problem}" for problem in exc.problems]) from None
        return cls(entries, policy=policy, synonyms=synonyms.groups, analyzer=analyzer)

    # -- analysis shared by the index and queries --------------------------------------

    def _units(
        self, text: str, *, normalized: bool = False, tokens: list[Token] | None = None
    ) -> _Words:
        """Content words of ``text`` (or of its ``tokens``): runs of tokens, each with the
        shop synonym group it spells (or None). A run is one token unless a shop synonym
        spans several."""
        if tokens is None:
            tokens = self.analyzer.tokens(text, normalized=normalized)
        matches = {m.start: m for m in self.synonyms.matches(tokens)} if self.synonyms else {}
        units: _Words = []
        position = 0
        while position < len(tokens):
            match = matches.get(position)
            if match is not None:
                units.append((tokens[match.start : match.end], match.group))
                position = match.end
            else:
                units.append(([tokens[position]], None))
                position += 1
        return units

    @staticmethod
    def _topicality(tokens: Sequence[Token]) -> float:
        if any(t.pos == "名詞" and not t.adverbial for t in tokens):
            return 1.0
        if any(t.adverbial for t in tokens):
            return ADVERBIAL_IMPORTANCE
        return NON_NOUN_IMPORTANCE

    # -- index ---------------------------------------------------------------------------

    def _field_terms(
        self, texts: Sequence[str], phrasings: list[_Words] | None = None
    ) -> tuple[dict[str, float], set[str]]:
        """Pseudo-counts of the index terms of one field, and those of its terms that stand
        for whole words (not sub-units of a compound: ログイン inside ソーシャルログイン)."""
        counts: dict[str, float] = defaultdict(float)
        whole: set[str] = set()
        for text in texts:
            units = self._units(text)
            if phrasings is not None:
                phrasings.append(units)
            for tokens, group in units:
                if group is not None:
                    counts[user_synonym_term(group)] += SYNONYM_WEIGHT
                    whole.add(user_synonym_term(group))
                for token in tokens:
                    counts[token.term] += 1.0
                    whole.add(token.term)
                    for sub in token.subunits:
                        counts[sub] += SUBUNIT_WEIGHT
                    same = self._synonyms_of[token.term]
                    for synonym in token.synonyms:
                        counts[synonym_term(synonym)] += SYNONYM_WEIGHT
                        whole.add(synonym_term(synonym))
                        same.add(synonym_term(synonym))
                    if group is not None and len(tokens) == 1:
                        same.add(user_synonym_term(group))
                    if len(token.reading) >= MIN_READING:
                        self._readings[token.reading].add(token.term)
                    if token.subunits:
                        self._subunits_of.setdefault(token.term, token.subunits)
                    self._surfaces.setdefault(token.term, token.surface)
        return counts, whole

    def _build(self) -> None:
        self._readings: dict[str, set[str]] = defaultdict(set)
        # Indexed word -> the synonym-group terms it belongs to (for words found by typo or
        # reading, which bring their synonyms along).
        self._synonyms_of: dict[str, set[str]] = defaultdict(set)
        # Indexed word -> its sub-units (電話番号 -> 電話, 番号), which a word found by typo
        # or reading brings along as a typed compound does.
        self._subunits_of: dict[str, tuple[str, ...]] = {}
        self._surfaces: dict[str, str] = {}
        per_field: dict[str, list[dict[str, float]]] = {name: [] for name in FIELD_WEIGHTS}
        # (term, document) -> how surely the entry is about the term (coverage strength):
        # 1 for a whole word outside the answer, less in the answer only or inside a compound.
        strength: dict[tuple[str, int], float] = {}
        in_answer: set[tuple[str, int]] = set()
        raw_phrasings: list[list[_Words]] = []
        for doc, entry in enumerate(self.entries):
            phrasings: list[_Words] = []
            fields = {
                "question": self._field_terms([entry.question], phrasings),
                "alternatives": self._field_terms(entry.alternatives, phrasings),
                "tags": self._field_terms(entry.tags),
                "answer": self._field_terms([plain(entry.answer)]),
            }
            in_answer.update((term, doc) for term in fields["answer"][0])
            for name, (counts, whole) in fields.items():
                per_field[name].append(counts)
                where = ANSWER_ONLY_COVERAGE if name == "answer" else 1.0
                for term in counts:
                    value = where * (1.0 if term in whole else SUBUNIT_COVERAGE)
                    if value > strength.get((term, doc), 0.0):
                        strength[(term, doc)] = value
            raw_phrasings.append(phrasings)
        n = len(self.entries)
        avg_len = {
            name: (sum(sum(d.values()) for d in docs) / n if n else 0.0) or 1.0
            for name, docs in per_field.items()
        }
        # Pseudo-frequency per (term, document), combined over fields (BM25F).
        pseudo: dict[str, dict[int, float]] = defaultdict(dict)
        for name, docs in per_field.items():
            weight, b = FIELD_WEIGHTS[name], FIELD_B[name]
            for doc, counts in enumerate(docs):
                norm = 1.0 - b + b * sum(counts.values()) / avg_len[name]
                for term, tf in counts.items():
                    postings = pseudo[term]
                    postings[doc] = postings.get(doc, 0.0) + weight * tf / norm
        self.idf: dict[str, float] = {}
        # term -> (documents in ascending order, BM25F contributions, coverage strengths,
        # whether the answer text says it)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        for term, frequencies in pseudo.items():
            df = len(frequencies)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            self.idf[term] = idf
            ordered = sorted(frequencies)
            ids = np.array(ordered, dtype=np.int32)
            tfs = np.array([frequencies[d] for d in ordered], dtype=np.float64)
            strong = np.array([strength[(term, d)] for d in ordered], dtype=np.float64)
            said = np.array([(term, d) in in_answer for d in ordered], dtype=np.bool_)
            self._postings[term] = (ids, idf * tfs * (K1 + 1.0) / (tfs + K1), strong, said)
        # An unseen word weighs like a rare one: it is what the query is about.
        self._unknown_idf = math.log(1.0 + (n + 0.5) / 1.5) if n else 1.0
        # Per entry, the computed supplement it opens with (an index), or -1.
        supplements = sorted({e.dynamic for e in self.entries if e.dynamic is not None})
        self._supplement_of = np.array(
            [supplements.index(e.dynamic) if e.dynamic is not None else -1 for e in self.entries],
            dtype=np.int32,
        )
        self._core = [
            self._core_words([self._phrasing(units) for units in doc]) for doc in raw_phrasings
        ]
        self._fuzzy_buckets: dict[int, list[str]] = defaultdict(list)
        for term in self._postings:
            if not term.startswith("#") and len(term) >= FUZZY_MIN_LENGTH - 1:
                self._fuzzy_buckets[len(term)].append(term)
        self._reading_lengths = sorted({len(r) for r in self._readings}, reverse=True)
        # Customers repeat their typos; the typo search is the costly part of a query.
        self._neighbour_cache: dict[str, list[tuple[str, float]]] = {}

    def _phrasing(self, units: _Words) -> tuple[_Unit, ...]:
        """An entry's question or phrasing as words with the terms that cover each."""
        result = []
        for tokens, group in units:
            terms: dict[str, float] = {}
            for token in tokens:
                terms[token.term] = 1.0
                for synonym in token.synonyms:
                    terms.setdefault(synonym_term(synonym), SYNONYM_COVERAGE)
                for sub in token.subunits:
                    terms.setdefault(sub, SUBUNIT_WEIGHT)
            if group is not None:
                terms[user_synonym_term(group)] = SYNONYM_COVERAGE
            idf = max(self.idf.get(t.term, self._unknown_idf) for t in tokens)
            result.append(_Unit(tuple(terms.items()), idf * self._topicality(tokens)))
        return tuple(result)

    @staticmethod
    def _core_words(phrasings: list[tuple[_Unit, ...]]) -> tuple[_Unit, ...]:
        """The distinct words of an entry's phrasings, each with the share of phrasings that
        say it. Words the shop declares synonyms (or that share a lemma) are one word; its
        terms are the union of theirs, so a query naming any of them covers it."""
        if not phrasings:
            return ()

        def identity(unit: _Unit) -> set[str]:
            return {t for t, w in unit.terms if w == 1.0 or t.startswith("#usr")}

        said = [set().union(*map(identity, phrasing)) for phrasing in phrasings]
        words: list[tuple[set[str], dict[str, float], float]] = []
        for phrasing in phrasings:
            for unit in phrasing:
                names = identity(unit)
                for known, terms, _ in words:
                    if known & names:
                        known |= names
                        for term, weight in unit.terms:
                            terms[term] = max(terms.get(term, 0.0), weight)
                        break
                else:
                    words.append((names, dict(unit.terms), unit.importance))
        return tuple(
            _Unit(
                tuple(terms.items()),
                importance,
                sum(1 for s in said if s & known) / len(phrasings),
            )
            for known, terms, importance in words
        )

    # -- query analysis ------------------------------------------------------------------

    def _token_group(self, tokens: list[Token], group: int | None) -> _Group:
        alternatives: dict[str, float] = {}
        corrections: dict[str, str] = {}
        kinds: dict[str, str] = {}
        for token in tokens:
            alternatives[token.term] = 1.0
            kinds[token.term] = "direct"
        if group is not None:
            alternatives.setdefault(user_synonym_term(group), SYNONYM_WEIGHT)
            kinds.setdefault(user_synonym_term(group), "synonym")
        for token in tokens:
            for synonym in token.synonyms:
                alternatives.setdefault(synonym_term(synonym), SYNONYM_WEIGHT)
                kinds.setdefault(synonym_term(synonym), "synonym")
            for sub in token.subunits:
                alternatives.setdefault(sub, SUBUNIT_WEIGHT)
                kinds.setdefault(sub, "part")
            if group is not None or token.term in self._postings:
                continue
            # A word the index has never seen may be a typo (ラッピンク), or a homophone
            # picked by the input method (発想 for 発送).
            guesses: list[tuple[str, float, str]] = []
            if len(token.term) >= FUZZY_MIN_LENGTH:
                guesses += [
                    (t, FUZZY_WEIGHT * sim / 100.0, "typo")
                    for t, sim in self._neighbours(token.term)
                ]
            if len(token.reading) >= MIN_READING:
                homophones = self._readings.get(token.reading, ())
                guesses += [
                    (t, HOMOPHONE_WEIGHT, "homophone") for t in homophones if t != token.term
                ]
            for term, weight, kind in guesses:
                self._add_guess(alternatives, corrections, term, weight, kinds, kind)
        return _Group(
            alternatives,
            topicality=self._topicality(tokens),
            start=tokens[0].start,
            end=tokens[-1].end,
            corrections=corrections,
            context=all(t.context for t in tokens),
            kinds=kinds,
            excluded=all(t.excluded for t in tokens),
            inflected=next((t.term for t in tokens if t.pos in ("動詞", "形容詞")), ""),
        )

    def _add_guess(
        self,
        alternatives: dict[str, float],
        corrections: dict[str, str],
        term: str,
        weight: float,
        kinds: dict[str, str],
        kind: str,
    ) -> None:
        """Add an indexed word the customer probably meant, with its synonyms and its
        sub-units (でんわばんごう read as 電話番号 also meets the answer's 電話, as the
        typed compound would)."""
        if weight > alternatives.get(term, 0.0):
            alternatives[term] = weight
            corrections[term] = term
            kinds[term] = kind
        for synonym in self._synonyms_of.get(term, ()):
            if weight * SYNONYM_WEIGHT > alternatives.get(synonym, 0.0):
                alternatives[synonym] = weight * SYNONYM_WEIGHT
                corrections[synonym] = term
                kinds[synonym] = kind
        for sub in self._subunits_of.get(term, ()):
            if weight * SUBUNIT_WEIGHT > alternatives.get(sub, 0.0):
                alternatives[sub] = weight * SUBUNIT_WEIGHT
                corrections[sub] = term
                kinds[sub] = "part"

    def _neighbours(self, word: str) -> list[tuple[str, float]]:
        """Index terms within typo distance of ``word`` (ラッピンク → ラッピング)."""
        cached = self._neighbour_cache.get(word)
        if cached is not None:
            return cached
        found: list[tuple[str, float]] = []
        for length in (len(word) - 1, len(word), len(word) + 1):
            choices = self._fuzzy_buckets.get(length)
            if not choices:
                continue
            for term, similarity, _ in process.extract(
                word, choices, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF, limit=3
            ):
                found.append((term, similarity))
        if len(self._neighbour_cache) >= NEIGHBOUR_CACHE_SIZE:
            self._neighbour_cache.clear()
        self._neighbour_cache[word] = found
        return found

    def _reading_matches(self, text: str) -> list[tuple[int, int, set[str]]]:
        """Spans of kana text that spell the reading of an indexed word (へんぴん → 返品)."""
        matches: list[tuple[int, int, set[str]]] = []
        for run_start, run_end in kana_runs(text):
            kana = to_katakana(text[run_start:run_end])
            size = len(kana)
            if size < MIN_READING:
                continue
            lengths = [n for n in self._reading_lengths if n <= size]
            pos = 0
            while pos <= size - MIN_READING:
                for length in lengths:
                    if pos + length <= size and (
                        terms := self._readings.get(kana[pos : pos + length])
                    ):
                        matches.append((run_start + pos, run_start + pos + length, terms))
                        pos += length
                        break
                else:
                    pos += 1
        return matches

    def _groups(self, text: str) -> list[_Group]:
        analysis = self.analyzer.analyze(text, normalized=True)
        groups = [
            self._token_group(tokens, group)
            for tokens, group in self._units(text, tokens=analysis.tokens)
        ]
        grammatical: set[int] = set()
        for start, end in analysis.grammatical:
            grammatical.update(range(start, end))
        for start, end, terms in self._reading_matches(text):
            if grammatical.issuperset(range(start, end)):
                continue  # particles and auxiliaries: 「届いていない」 does not say 以内
            inside = [g for g in groups if g.start < end and g.end > start]
            if inside and all(
                g.start >= start
                and g.end <= end
                and (set(g.alternatives) & terms or (g.inflected and g.inflected in self._postings))
                for g in inside
            ):
                # SudachiPy already read these words right, or read a verb or adjective the
                # knowledge base knows in an inflected form: 「つながりますか」 is 繋がる, not the
                # noun 繋がり that つながり spells too.
                continue
            groups = [g for g in groups if not (g.start < end and g.end > start)]
            context = bool(inside) and all(g.context for g in inside)
            excluded = bool(inside) and all(g.excluded for g in inside)
            alternatives: dict[str, float] = {}
            corrections: dict[str, str] = {}
            kinds: dict[str, str] = {}
            for term in sorted(terms):
                self._add_guess(alternatives, corrections, term, READING_WEIGHT, kinds, "reading")
            groups.append(
                _Group(
                    alternatives,
                    surface=text[start:end],
                    start=start,
                    end=end,
                    corrections=corrections,
                    context=context,
                    kinds=kinds,
                    excluded=excluded,
                )
            )
        result: list[_Group] = []
        seen: set[frozenset[str]] = set()
        for group in sorted(groups, key=lambda g: g.start):
            if group.excluded:
                # 「交換ではなく返金」: what the customer sets aside is no evidence for an
                # entry that speaks of it.
                continue
            key = frozenset(group.alternatives)
            if key in seen:
                continue  # a word said twice is still one word
            seen.add(key)
            group.surface = group.surface or text[group.start : group.end]
            known = [self.idf[t] for t in group.alternatives if t in self.idf]
            group.importance = (max(known) if known else self._unknown_idf) * group.topicality
            if group.context:
                group.importance *= CONTEXT_WEIGHT
            result.append(group)
        return result

    # -- scoring -------------------------------------------------------------------------

    def _score(self, groups: list[_Group]) -> tuple[np.ndarray, np.ndarray]:
        """Scores of every entry, and how well each entry covers each group (0..1)."""
        n = len(self.entries)
        score = np.zeros(n)
        coverage = np.zeros((len(groups), n))
        best = np.empty(n)
        for index, group in enumerate(groups):
            best.fill(0.0)
            row = coverage[index]
            for term, weight in group.alternatives.items():
                postings = self._postings.get(term)
                if postings is None:
                    continue
                docs, contribution, strength, _ = postings
                value = weight * contribution
                better = value > best[docs]
                chosen = docs[better]
                best[chosen] = value[better]
                share = weight * (SYNONYM_COVERAGE if term[0] == "#" else 1.0)
                row[chosen] = share * strength[better]
            score += best
        return score, coverage

    def _rank(self, query: str, limit: int) -> _Ranking:
        """The best ``limit`` (at least 2) entries for ``query`` and the evidence behind them."""
        groups = self._groups(normalize(query))
        total = sum(group.importance for group in groups)
        ranking = _Ranking(groups, total)
        if not groups or not self.entries:
            return ranking
        score, coverage = self._score(groups)
        importance = np.fromiter(
            (g.importance for g in groups), dtype=np.float64, count=len(groups)
        )
        covered = importance @ coverage
        if total > 0:
            score *= RERANK_BASE + (1.0 - RERANK_BASE) * np.minimum(covered / total, 1.0)
        candidates = np.flatnonzero(score > 0.0)
        keep = max(limit, 2)
        if len(candidates) > keep:
            top = np.argpartition(-score[candidates], keep - 1)[:keep]
            candidates = candidates[top]
        # Best first; equal scores in knowledge-base order.
        order = np.lexsort((candidates, -score[candidates]))
        ranking.ranked = [(int(doc), float(score[doc])) for doc in candidates[order]]
        if ranking.ranked:
            first = ranking.ranked[0][0]
            supplement = self._supplement_of[first]
            if supplement < 0:
                ranking.rival = ranking.ranked[1][1] if len(ranking.ranked) > 1 else 0.0
            else:
                # Entries that open with the same computed answer as the first (both give
                # the concrete shipping date) are no rival to it: whichever answers, the
                # customer reads the same thing first.
                others = self._supplement_of != supplement
                ranking.rival = float(score[others].max()) if others.any() else 0.0
        ranking.covered = covered
        ranking.coverage = coverage
        return ranking

    def search(self, query: str, limit: int = 10) -> list[Hit]:
        """Entries matching ``query``, best first; empty for a query with no content."""
        if limit <= 0:
            return []
        ranking = self._rank(query, limit)
        return [Hit(self.entries[doc], round(score, 4)) for doc, score in ranking.ranked[:limit]]

    def _evidence(self, ranking: _Ranking, matches: list[_TopMatch]) -> Evidence:
        if not ranking.ranked or ranking.total <= 0:
            return Evidence()
        assert ranking.covered is not None and ranking.coverage is not None
        top, top_score = ranking.ranked[0]
        lead = 1.0 - ranking.rival / top_score if top_score > 0 else 0.0
        top_covered = float(ranking.covered[top])
        unit = self._unknown_idf
        missing, missing_word = 0.0, ""
        for index, group in enumerate(ranking.groups):
            if group.topicality < 1.0 or group.context:
                # Verbs and adverbial nouns say how, not what is asked; words of the
                # situation (「カメラ穴の位置がずれていました。返品できますか？」) only lower
                # the coverage.
                continue
            left = group.importance * (1.0 - min(float(ranking.coverage[index, top]), 1.0))
            if left > missing:
                missing, missing_word = left, group.surface
        said = sum(g.importance for g, m in zip(ranking.groups, matches, strict=True) if m.said)
        return Evidence(
            coverage=min(top_covered / ranking.total, 1.0),
            lead=lead,
            matched=RARE_WORD * top_covered / unit,
            missing=missing / unit,
            unasked=self._unasked(top, ranking.groups) / unit,
            in_answer=said / ranking.total,
            missing_word=missing_word,
        )

    def _unasked(self, doc: int, groups: list[_Group]) -> float:
        """Information of the most essential word of the entry that the query leaves out."""
        asked: dict[str, float] = {}
        for group in groups:
            for term, weight in group.alternatives.items():
                if weight > asked.get(term, 0.0):
                    asked[term] = weight
        most = 0.0
        for word in self._core[doc]:
            covered = max((asked.get(t, 0.0) * w for t, w in word.terms), default=0.0)
            left = word.importance * word.essential**2 * (1.0 - min(covered, 1.0))
            most = max(most, left)
        return most

    def _top_matches(self, ranking: _Ranking) -> list[_TopMatch]:
        """For each query word, how the best entry matches it: the alternative that scored
        best there, and whether the answer text itself says the word."""
        return self._matches(ranking, ranking.ranked[0][0])

    def _matches(self, ranking: _Ranking, top: int) -> list[_TopMatch]:
        """For each query word, how entry ``top`` matches it (see ``_top_matches``)."""
        matches = []
        for group in ranking.groups:
            best_term, best_value, said = "", 0.0, False
            for term, weight in group.alternatives.items():
                postings = self._postings.get(term)
                if postings is None:
                    continue
                docs, contribution, _, in_answer = postings
                at = int(np.searchsorted(docs, top))
                if at < len(docs) and docs[at] == top:
                    said = said or bool(in_answer[at])
                    if weight * contribution[at] > best_value:
                        best_term, best_value = term, weight * float(contribution[at])
            matches.append(_TopMatch(best_term, said))
        return matches

    def explain(self, query: str) -> tuple[Hit | None, Evidence]:
        """The best entry for ``query`` and the evidence the confidence is computed from."""
        ranking = self._rank(query, 2)
        if not ranking.ranked:
            return None, Evidence()
        doc, score = ranking.ranked[0]
        evidence = self._evidence(ranking, self._top_matches(ranking))
        return Hit(self.entries[doc], round(score, 4)), evidence

    def explain_hits(self, query: str, *, limit: int = 5) -> Explanation:
        """Why the bot answers ``query`` as it does: its answer, the evidence behind the
        confidence, and for each ranked entry how it matched each word of the query
        (directly, by synonym, as part of a compound, by reading, typo or homophone).
        The same ranking as ``ask``; for people tuning the knowledge base."""
        answer = self.ask(query, limit=limit)
        ranking = self._rank(query, limit)
        if not ranking.ranked:
            return Explanation(answer, Evidence(), (), ANSWER_THRESHOLD)
        assert ranking.coverage is not None
        evidence = self._evidence(ranking, self._top_matches(ranking))
        hits = []
        for doc, score in ranking.ranked[:limit]:
            words = []
            for index, (group, match) in enumerate(
                zip(ranking.groups, self._matches(ranking, doc), strict=True)
            ):
                words.append(
                    WordMatch(
                        word=group.surface,
                        how=group.kinds.get(match.term, "direct") if match.term else "",
                        matched=self._term_label(match.term) if match.term else "",
                        coverage=round(min(float(ranking.coverage[index, doc]), 1.0), 3),
                        importance=round(group.importance, 3),
                        context=group.context,
                        in_answer=match.said,
                    )
                )
            hits.append(HitExplanation(self.entries[doc], round(score, 4), tuple(words)))
        return Explanation(answer, evidence, tuple(hits), ANSWER_THRESHOLD)

    def canonical_words(self, query: str, *, analyzer: Analyzer | None = None) -> tuple[str, ...]:
        """The query's content words as the index reads them, sorted and distinct: each
        word's normalized form (SudachiPy's: 出来る, 幾ら), and for kana that spells the
        reading of an indexed word (へんぴん), that word (返品), as ``ask`` reads it.

        ``analyzer``: the caller's own, to call this from another thread than the one
        answering queries (the index itself is only read).
        """
        text = normalize(query)
        analysis = (analyzer or self.analyzer).analyze(text, normalized=True)
        spans: list[tuple[int, int, str]] = [(t.start, t.end, t.term) for t in analysis.tokens]
        grammatical: set[int] = set()
        for start, end in analysis.grammatical:
            grammatical.update(range(start, end))
        for start, end, terms in self._reading_matches(text):
            if grammatical.issuperset(range(start, end)):
                continue
            inside = [span for span in spans if span[0] < end and span[1] > start]
            if inside and all(s >= start and e <= end and w in terms for s, e, w in inside):
                continue
            spans = [span for span in spans if not (span[0] < end and span[1] > start)]
            spans.append((start, end, "/".join(sorted(terms))))
        return tuple(sorted({word for _, _, word in spans}))

    def _term_label(self, term: str) -> str:
        """An index term as a person reads it: the word, or the words of its synonym group."""
        if term.startswith("#usr"):
            return "・".join(self.synonyms.groups[int(term[4:])])
        if term.startswith("#syn"):
            words = sorted(
                self._surfaces.get(word, word)
                for word, groups in self._synonyms_of.items()
                if term in groups
            )
            return "・".join(words[:4]) or "同義語"
        return self._surfaces.get(term, term)

    def ask(self, query: str, *, now: datetime | None = None, limit: int = 5) -> Answer:
        """Answer ``query`` when confident; otherwise offer suggestions (at most ``limit``)."""
        ranking = self._rank(query, limit)
        hits = tuple(
            Hit(self.entries[doc], round(score, 4)) for doc, score in ranking.ranked[:limit]
        )
        if not hits:
            return Answer(query, False, None)
        matches = self._top_matches(ranking)
        exact = confidence(self._evidence(ranking, matches))
        sure = round(exact, 3)
        searched_as = self._searched_as(query, ranking, matches)
        if exact < ANSWER_THRESHOLD:
            return Answer(query, False, None, hits, sure, hits=hits, searched_as=searched_as)
        entry = hits[0].entry
        supplement = self.supplement(entry, now=now)
        # Other questions worth offering beside a sure answer: those scoring near it.
        related = tuple(h for h in hits[1:] if h.score >= RELATED_SCORE_RATIO * hits[0].score)
        return Answer(query, True, entry, related, sure, supplement, hits, searched_as=searched_as)

    def _searched_as(self, query: str, ranking: _Ranking, matches: list[_TopMatch]) -> str | None:
        """The query as searched when a typo, a kana spelling or a homophone was read as
        another word to find the best entry (「ラッピンク」 → 「ラッピング」); else None."""
        text = normalize(query)
        replacements: list[tuple[int, int, str]] = []
        for group, match in zip(ranking.groups, matches, strict=True):
            word = group.corrections.get(match.term)
            if word is None:
                continue
            surface = self._surfaces.get(word, word)
            if normalize(surface) != text[group.start : group.end]:
                replacements.append((group.start, group.end, surface))
        if not replacements:
            return None
        for start, end, surface in sorted(replacements, reverse=True):
            text = text[:start] + surface + text[end:]
        return text

    # -- passages of an answer -------------------------------------------------------------

    def query_words(self, query: str) -> list[QueryWord]:
        """The query's words as searched: the terms that match each, and its information."""
        return [
            QueryWord(frozenset(g.alternatives), g.importance, g.surface)
            for g in self._groups(normalize(query))
        ]

    def passage_scores(self, passages: Sequence[str], words: Sequence[QueryWord]) -> list[float]:
        """How much of the query (its ``query_words``) each passage of text mentions: the
        information of the words it matches, directly, by synonym, reading or typo."""
        scores = []
        for passage in passages:
            found: set[str] = set()
            for tokens, group in self._units(passage):
                if group is not None:
                    found.add(user_synonym_term(group))
                for token in tokens:
                    found.add(token.term)
                    found.update(token.subunits)
                    found.update(synonym_term(s) for s in token.synonyms)
            scores.append(sum(w.importance for w in words if not w.terms.isdisjoint(found)))
        return scores

    def supplement(self, entry: Entry, *, now: datetime | None = None) -> str | None:
        """Text computed for this moment to add to ``entry``'s answer, if it has any."""
        if entry.dynamic is None or self.policy is None:
            return None
        return self.policy.shipping_notice(entry.dynamic, now=now)

    def get(self, entry_id: str) -> Entry | None:
        return self._by_id.get(entry_id)
