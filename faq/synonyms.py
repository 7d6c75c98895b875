"""The shop's own synonyms (``data/synonyms.toml``), merged with SudachiPy's synonym groups.

Layout of the file::

    # Words that mean the same thing for this shop's customers; one group per line.
    groups = [
      ["代引き", "代金引換"],
      ["返金", "払い戻し"],
    ]

Each word is analyzed like any text, so a group matches whatever SudachiPy reads the same
way (代引 is read 代引き, ご返金 返金). A word may be several morphemes (代金引換 is 代金 +
引き換え): the engine then treats the run of morphemes as one word wherever it appears, in
the entries and in queries. A group behaves like one of SudachiPy's synonym groups: an entry
saying 代金引換 is found by a query saying 代引き, as evidence slightly weaker than the
customer's own word.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from faq.analysis import Analyzer, Token

# A phrase longer than this many morphemes is not a word (and would slow matching).
MAX_PHRASE_MORPHEMES = 4


class SynonymError(ValueError):
    """Raised when the synonyms file is invalid; ``problems`` name the file and the group."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def user_synonym_term(group: int) -> str:
    """Index term of the shop's synonym group ``group`` (beside SudachiPy's ``#syn…``)."""
    return f"#usr{group}"


def load_synonyms(path: str | Path) -> list[tuple[str, ...]]:
    """Read the groups of ``path``; a missing file means no groups.

    Raises ``SynonymError`` naming the file and the group for invalid TOML, a group that is
    not a list of at least two different non-empty strings, or a word in two groups.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SynonymError([f"{path}: not valid TOML: {exc}"]) from None
    unknown = set(document) - {"groups"}
    problems = [f"{path}: unknown key(s) {', '.join(sorted(unknown))}"] if unknown else []
    raw_groups = document.get("groups", [])
    if not isinstance(raw_groups, list):
        raise SynonymError([*problems, f"{path}: groups must be a list of lists of words"])
    groups: list[tuple[str, ...]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(raw_groups, start=1):
        where = f"{path}: group {number}"
        if not isinstance(raw, list) or not all(isinstance(w, str) and w.strip() for w in raw):
            problems.append(f"{where}: must be a list of non-empty words")
            continue
        words = tuple(dict.fromkeys(w.strip() for w in raw))
        if len(words) < 2:
            problems.append(f"{where}: needs at least two different words, got {list(words)}")
            continue
        for word in words:
            if word in seen:
                problems.append(f"{where}: {word!r} is already in group {seen[word]}")
            seen.setdefault(word, number)
        groups.append(words)
    if problems:
        raise SynonymError(problems)
    return groups


@dataclass(frozen=True, slots=True)
class PhraseMatch:
    """Tokens ``start:end`` of an analyzed text spell a word of synonym group ``group``."""

    start: int
    end: int
    group: int


class SynonymTable:
    """The groups compiled against an analyzer: sequences of lemmas -> group numbers."""

    def __init__(self, groups: Iterable[Sequence[str]], analyzer: Analyzer) -> None:
        self.groups = [tuple(g) for g in groups]
        self._phrases: dict[tuple[str, ...], int] = {}
        problems: list[str] = []
        for number, words in enumerate(self.groups):
            for word in words:
                lemmas = tuple(t.term for t in analyzer.tokens(word))
                if not lemmas:
                    problems.append(f"group {number + 1}: {word!r} has no content word")
                elif len(lemmas) > MAX_PHRASE_MORPHEMES:
                    problems.append(
                        f"group {number + 1}: {word!r} is {len(lemmas)} words "
                        f"({' '.join(lemmas)}); at most {MAX_PHRASE_MORPHEMES}"
                    )
                else:
                    other = self._phrases.setdefault(lemmas, number)
                    if other != number:
                        problems.append(
                            f"group {number + 1}: {word!r} reads like a word of group {other + 1}"
                        )
        if problems:
            raise SynonymError(problems)
        self._longest = max((len(p) for p in self._phrases), default=0)

    def __bool__(self) -> bool:
        return bool(self._phrases)

    def matches(self, tokens: Sequence[Token]) -> list[PhraseMatch]:
        """Runs of ``tokens`` that spell a word of a group, longest first, left to right."""
        if not self._phrases:
            return []
        found: list[PhraseMatch] = []
        terms = [t.term for t in tokens]
        position = 0
        while position < len(terms):
            for length in range(min(self._longest, len(terms) - position), 0, -1):
                group = self._phrases.get(tuple(terms[position : position + length]))
                if group is not None:
                    found.append(PhraseMatch(position, position + length, group))
                    position += length
                    break
            else:
                position += 1
        return found
