"""Loading and validating the human-editable knowledge base (TOML files).

Layout of one file (``data/faq/*.toml``)::

    category = "発送/お届け"          # default category for the file's entries

    [[entry]]
    id = "shipping-schedule"          # stable slug: [a-z0-9-]+, unique across files
    question = "注文した商品はいつ発送されますか？"
    alternatives = ["いつ届きますか", "発送日を知りたい"]   # 0..n other phrasings
    tags = ["発送", "出荷"]
    answer = \"\"\"...the shop's own wording, with [links](/contact) if any...\"\"\"
    dynamic = "ship_date"             # optional: a supplement computed at answer time
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from faq.markup import link_problems
from faq.model import Entry

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
DYNAMIC_KINDS = frozenset({"ship_date", "cod_ship_date"})
_KNOWN_KEYS = frozenset({"id", "question", "answer", "alternatives", "category", "tags", "dynamic"})


class KnowledgeBaseError(ValueError):
    """Raised when a knowledge-base file is invalid; the message names file and entry."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def entry_from_mapping(
    raw: Mapping[str, Any], *, default_category: str | None = None, where: str = ""
) -> Entry:
    """Build an :class:`Entry` from a mapping, raising ``KnowledgeBaseError`` when invalid."""
    problems: list[str] = []
    label = f"{where}entry {raw.get('id', '?')!r}"
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        problems.append(f"{label}: unknown key(s) {', '.join(sorted(unknown))}")
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not SLUG.match(entry_id):
        problems.append(f"{label}: id must be a slug of a-z, 0-9 and '-'")
    for key in ("question", "answer"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{label}: {key} must be a non-empty string")
    if isinstance(raw.get("answer"), str):
        problems.extend(f"{label}: answer: {problem}" for problem in link_problems(raw["answer"]))
    for key in ("alternatives", "tags"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            problems.append(f"{label}: {key} must be a list of non-empty strings")
    category = raw.get("category", default_category)
    if category is not None and not isinstance(category, str):
        problems.append(f"{label}: category must be a string")
    dynamic = raw.get("dynamic")
    if dynamic is not None and dynamic not in DYNAMIC_KINDS:
        problems.append(f"{label}: dynamic must be one of {', '.join(sorted(DYNAMIC_KINDS))}")
    if problems:
        raise KnowledgeBaseError(problems)
    return Entry(
        id=entry_id,  # type: ignore[arg-type]
        question=raw["question"].strip(),
        answer=raw["answer"].strip(),
        alternatives=tuple(a.strip() for a in raw.get("alternatives", [])),
        category=category,
        tags=tuple(t.strip() for t in raw.get("tags", [])),
        dynamic=dynamic,
    )


def load_entries(source: str | Path | Iterable[str | Path]) -> list[Entry]:
    """Load entries from a TOML file, a folder of them, or several paths.

    Raises ``KnowledgeBaseError`` listing every problem found, each naming its file and
    entry, and ``FileNotFoundError`` when a path does not exist.
    """
    paths = [source] if isinstance(source, str | Path) else list(source)
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(path.glob("*.toml")))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(path)
    entries: list[Entry] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for file in files:
        try:
            document = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: not valid TOML: {exc}")
            continue
        default_category = document.get("category")
        raw_entries = document.get("entry", [])
        if not isinstance(raw_entries, list):
            problems.append(f"{file}: [[entry]] must be an array of tables")
            continue
        for index, raw in enumerate(raw_entries, start=1):
            where = f"{file}: #{index} "
            try:
                entry = entry_from_mapping(raw, default_category=default_category, where=where)
            except KnowledgeBaseError as exc:
                problems.extend(exc.problems)
                continue
            if entry.id in seen:
                problems.append(f"{where}entry {entry.id!r}: id already used in {seen[entry.id]}")
                continue
            seen[entry.id] = file
            entries.append(entry)
    if problems:
        raise KnowledgeBaseError(problems)
    return entries
