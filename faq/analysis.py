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


def synonym_term(group_id: int) -> str:
    return f"#syn{group_id}"


class Analyzer:
    """Wraps one SudachiPy tokenizer (mode C); loading the dictionary takes ~0.1 s."""

    def __init__(self) -> None:
        self._dictionary = Dictionary(dict="core")
        self._tokenizer = self._dictionary.tokenizer(mode=SplitMode.C)
        self._pos_cache: dict[int, tuple[str, ...]] = {}

    def _pos(self, morpheme: Morpheme) -> tuple[str, ...]:
        pos_id = morpheme.part_of_speech_id()
        pos = self._pos_cache.get(pos_id)
        if pos is None:
            pos = self._pos_cache[pos_id] = morpheme.part_of_speech()
        return pos

    def tokens(self, text: str, *, normalized: bool = False) -> list[Token]:
        """Content tokens of ``text`` (normalized first unless ``normalized``)."""
        if not normalized:
            text = normalize(text)
        text = text[:MAX_ANALYZED_CHARS]
        if not text:
            return []
        result: list[Token] = []
        prefix: tuple[str, int] | None = None  # a pending non-honorific prefix and its start
        after_numeral = False
        for morpheme in self._tokenizer.tokenize(text):
            pos = self._pos(morpheme)
            counted, after_numeral = after_numeral, pos[1] == "数詞"
            lemma = morpheme.normalized_form().lower()
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
        return result


@lru_cache(maxsize=1)
def shared_analyzer() -> Analyzer:
    """One analyzer per process: the dictionary is read-only and engines may share it."""
    return Analyzer()
