"""Morphological analysis with SudachiPy: text in, index terms out.

Each content morpheme of split mode C yields its normalized form, its mode-A sub-units
(so 個人情報 also matches 情報), its synonym group ids (so クレカ meets クレジットカード
and レシート meets 領収書) and its katakana reading (so へんぴん finds 返品).
A part-of-speech filter and a short list of function-like lemmas drop what carries no
meaning for search.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from sudachipy import Dictionary, Morpheme, SplitMode

from faq.clauses import Morph, clause_roles
from faq.normalize import normalize

# Parts of speech that carry no topic: particles, auxiliaries, symbols, interjections...
STOP_POS = frozenset(
    {
        "助詞",
        "助動詞",
        "補助記号",
        "空白",
        "記号",
        "感動詞",
        "接続詞",
        "連体詞",
        "接頭辞",
        "接尾辞",
        "副詞",
    }
)
# Lemmas of content parts of speech that are, in questions, mere function words: light
# verbs, formal nouns (こと, もの, ため), and question words other than いつ and どこ.
STOP_LEMMAS = frozenset(
    """
    為る 有る 居る 成る 出来る 言う 思う 下さる 頂く 致す 御座る 欲しい
    貰う 呉れる 教える 知る 分かる 良い 見る 来る 行く 事 物 方 様 件
    こと もの ため 為 ところ はず わけ
    感じ 的 よう そう 此れ 其れ 何 誰 どれ どんな どう どういう どの 此処 貴方 私 とても 是非 今
    御願い 願う 宜しい 為さる 有り難い 今日は 件名 問題 大丈夫 可能 状態
    """.split()
)

# Parts of speech that only make grammar: a kana run of these is not a misspelt word.
# Adnominals and conjunctions are closed classes of function words too: どういう is not
# 同意 (ドウイ) followed by う.
GRAMMATICAL_POS = frozenset({"助詞", "助動詞", "連体詞", "接続詞"})
# Honorific prefixes (ご注文, お届け) are dropped; others join their noun (誤+発送 → 誤発送).
HONORIFIC_PREFIXES = frozenset({"御", "お", "ご", "おん"})
# Pronouns kept: they tell "when" and "where" questions from others.
KEEP_PRONOUNS = frozenset({"いつ", "何時", "どこ", "何処"})
# SudachiPy refuses inputs over about 49 KB; no question needs more than this.
MAX_ANALYZED_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Token:
    """One content morpheme of the normalized text."""

    term: str
    surface: str
    reading: str
    start: int
    end: int
    subunits: tuple[str, ...] = ()
    synonyms: tuple[int, ...] = ()
    oov: bool = False
    #: Coarse part of speech: 名詞, 動詞, 形容詞...; nouns carry a question's topic.
    pos: str = "名詞"
    #: Nouns that say when or how much, not what about: those that work as adverbs (今日,
    #: 先週, 全部), numerals (10, 3, 一回), counters after a numeral (3 *回*), questions
    #: about a quantity (何日, 何個) and nouns made a time by a suffix (連休中, 購入後).
    adverbial: bool = False
    #: The word tells the situation (a subordinate clause, an earlier sentence, an
    #: adnominal clause's predicate) rather than what is asked (``faq.clauses``).
    context: bool = False
    #: The word is the predicate of the question's main clause (払う in 「届いた請求書を
    #: 何日以内に払えばいいの？」).
    predicate: bool = False
    #: The customer sets the word aside as what they do not ask (交換 in 「交換ではなく
    #: 返金…」); it is also ``context``.
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class Analysis:
    """A text's content tokens, and the character spans of its grammatical morphemes
    (particles, auxiliaries, light verbs: い and ない of 「届いていない」)."""

    tokens: list[Token]
    grammatical: tuple[tuple[int, int], ...]


def synonym_term(group_id: int) -> str:
    return f"#syn{group_id}"


class AnalysisMemo:
    """Analyses of a knowledge base's texts, kept from one index build to the next, so that
    rebuilding after an edit analyzes only the texts that changed (analysis is most of a
    build). It holds what the last finished build used: ``rotate`` after each one.

    One build at a time uses it (``helpdesk.faq_service`` rebuilds under a lock).
    """

    def __init__(self) -> None:
        self._previous: dict[tuple[str, bool], Analysis] = {}
        self._current: dict[tuple[str, bool], Analysis] = {}

    def get(self, key: tuple[str, bool]) -> Analysis | None:
        found = self._current.get(key)
        if found is None:
            found = self._previous.get(key)
            if found is not None:
                self._current[key] = found
        return found

    def put(self, key: tuple[str, bool], analysis: Analysis) -> None:
        self._current[key] = analysis

    def rotate(self) -> None:
        """A build finished: keep only what it used."""
        self._previous, self._current = self._current, {}

    def __len__(self) -> int:
        return len(self._previous)


class Analyzer:
    """Wraps one SudachiPy tokenizer (mode C); loading the dictionary takes ~0.1 s.

    ``memo``: while set, analyses are looked up there first and kept there (an index build
    sets it, and unsets it before the analyzer answers queries).
    """

    def __init__(self, memo: AnalysisMemo | None = None) -> None:
        self._dictionary = Dictionary(dict="core")
        self._tokenizer = self._dictionary.tokenizer(mode=SplitMode.C)
        self._pos_cache: dict[int, tuple[str, ...]] = {}
        self.memo = memo

    def _pos(self, morpheme: Morpheme) -> tuple[str, ...]:
        pos_id = morpheme.part_of_speech_id()
        pos = self._pos_cache.get(pos_id)
        if pos is None:
            pos = self._pos_cache[pos_id] = morpheme.part_of_speech()
        return pos

    def tokens(self, text: str, *, normalized: bool = False) -> list[Token]:
        """Content tokens of ``text`` (normalized first unless ``normalized``)."""
        return self.analyze(text, normalized=normalized).tokens

    def analyze(self, text: str, *, normalized: bool = False) -> Analysis:
        """Content tokens of ``text`` and where its grammatical morphemes are."""
        memo = self.memo
        if memo is None:
            return self._analyze(text, normalized=normalized)
        found = memo.get((text, normalized))
        if found is None:
            found = self._analyze(text, normalized=normalized)
            memo.put((text, normalized), found)
        # A list of its own: callers may keep or extend it, the memo's stays as it was.
        return Analysis(list(found.tokens), found.grammatical)

    def _analyze(self, text: str, *, normalized: bool = False) -> Analysis:
        if not normalized:
            text = normalize(text)
        text = text[:MAX_ANALYZED_CHARS]
        if not text:
            return Analysis([], ())
        result: list[Token] = []
        grammatical: list[tuple[int, int]] = []
        prefix: tuple[str, int] | None = None  # a pending non-honorific prefix and its start
        after_numeral = False
        morphs: list[Morph] = []
        source: list[int] = []  # the morpheme each token comes from
        for index, morpheme in enumerate(self._tokenizer.tokenize(text)):
            pos = self._pos(morpheme)
            counted, after_numeral = after_numeral, pos[1] == "数詞"
            lemma = morpheme.normalized_form().lower()
            morphs.append(Morph(pos, lemma, morpheme.surface()))
            if pos[0] in GRAMMATICAL_POS or (pos[1] == "非自立可能" and lemma in STOP_LEMMAS):
                grammatical.append((morpheme.begin(), morpheme.end()))
            if pos[0] == "接頭辞":
                honorific = lemma in HONORIFIC_PREFIXES
                prefix = None if honorific else (morpheme.surface(), morpheme.begin())
                continue
            joined, prefix = prefix if pos[0] == "名詞" else None, None
            if pos[0] == "代名詞" and lemma not in KEEP_PRONOUNS:
                continue
            if pos[0] == "接尾辞" and pos[2] == "副詞可能" and result:
                # 連休 + 中, 購入 + 後: the noun becomes a time, not a topic.
                if result[-1].end == morpheme.begin():
                    result[-1] = replace(result[-1], adverbial=True)
                continue
            if pos[0] in STOP_POS or lemma in STOP_LEMMAS or pos[1] == "助動詞語幹":
                continue
            if (
                pos[0] == "名詞"
                and pos[2] == "副詞可能"
                and len(morphs) > 1
                and morphs[-2].pos[0] in ("動詞", "形容詞", "助動詞")
                and len(morphs[-2].pos) > 5
                and morphs[-2].pos[5].startswith("連体形")
            ):
                # The head of an adverbial clause (〜したいとき, 〜した場合, 〜した後) only
                # joins it to the sentence: faq.clauses reads it as a condition.
                continue
            surface = morpheme.surface()
            if not surface.strip():
                continue
            parts = morpheme.split(SplitMode.A)
            subunits = (
                tuple(p.normalized_form().lower() for p in parts if p.normalized_form().strip())
                if len(parts) > 1
                else ()
            )
            # 何日, 何個 (a question about a quantity) and 一回, 一度 (a quantity): numerals.
            quantity = len(parts) > 1 and (
                self._pos(parts[0])[1] == "数詞" or parts[0].normalized_form() == "何"
            )
            # A one-character sub-unit (書 of 領収書, 日 of 発送日) says too little on its own.
            subunits = tuple(
                s for s in subunits if s != lemma and s not in STOP_LEMMAS and len(s) > 1
            )
            start = morpheme.begin()
            if joined is not None:
                # 誤発送: the compound is the term, the noun alone a sub-unit.
                subunits = (lemma, *subunits)
                lemma = joined[0] + lemma
                surface = joined[0] + surface
                start = joined[1]
            source.append(index)
            result.append(
                Token(
                    term=lemma,
                    surface=surface,
                    reading=morpheme.reading_form(),
                    start=start,
                    end=morpheme.end(),
                    subunits=subunits,
                    synonyms=tuple(morpheme.synonym_group_ids()) if joined is None else (),
                    oov=morpheme.is_oov(),
                    pos=pos[0],
                    adverbial=(
                        pos[2] == "副詞可能"
                        or pos[1] == "数詞"
                        or (counted and pos[2] == "助数詞可能")
                        or quantity
                    ),
                )
            )
        return Analysis(self._with_roles(result, morphs, source), tuple(grammatical))

    @staticmethod
    def _with_roles(tokens: list[Token], morphs: list[Morph], source: list[int]) -> list[Token]:
        """``tokens`` with their clause roles (``faq.clauses``), and adjectival nouns used
        as adjectives marked so (面倒 in 「面倒なので」, 普通 in 「普通何日」, 無理 in
        「無理ですか」: they describe, they do not name a topic)."""
        content = [False] * len(morphs)
        topical = [False] * len(morphs)
        nouns = [False] * len(morphs)
        token_at = {index: token for token, index in zip(tokens, source, strict=True)}
        for position, (token, index) in enumerate(zip(tokens, source, strict=True)):
            after = morphs[index + 1] if index + 1 < len(morphs) else None
            # The word right after, when it is a noun that names a topic (包装 after 簡易).
            head = token_at.get(index + 1)
            names_topic = (
                head is not None
                and after is not None
                and after.pos[0] == "名詞"
                and head.start == token.end
                and not head.adverbial
            )
            if token.pos == "形状詞" and names_topic:
                # An adjectival noun joined to the noun after it (簡易包装, 透明ケース) is part
                # of a compound noun: it narrows the topic, which the answer must then cover.
                token = tokens[position] = replace(token, pos="名詞")
            elif (
                token.pos == "名詞"
                and morphs[index].pos[2] == "形状詞可能"
                and after is not None
                and (
                    (after.pos[0] == "名詞" and not names_topic)
                    or (after.pos[0] == "助動詞" and after.lemma in ("だ", "です"))
                )
            ):
                token = tokens[position] = replace(token, pos="形状詞")
            content[index] = True
            topical[index] = not token.adverbial and token.pos != "代名詞"
            nouns[index] = topical[index] and token.pos == "名詞"
        roles = clause_roles(morphs, content, topical, nouns)
        excluded = roles.excluded
        return [
            replace(token, context=True, excluded=excluded[index])
            if roles.context[index] or excluded[index]
            else replace(token, predicate=True)
            if index == roles.predicate
            else token
            for token, index in zip(tokens, source, strict=True)
        ]


@lru_cache(maxsize=1)
def shared_analyzer() -> Analyzer:
    """One analyzer per process: the dictionary is read-only and engines may share it."""
    return Analyzer()
