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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from faq.markup import allowed_link, link_problem, links
from faq.model import Entry

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
DYNAMIC_KINDS = frozenset({"ship_date", "cod_ship_date"})
_KNOWN_KEYS = frozenset({"id", "question", "answer", "alternatives", "category", "tags", "dynamic"})


class KnowledgeBaseError(ValueError):
    """Raised when a knowledge-base file is invalid; the message names file and entry."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an entry is invalid: the field it is about, in English (files, logs) and
    in Japanese (the console's forms)."""

    field: str
    english: str
    japanese: str


def entry_problems(raw: Mapping[str, Any], *, default_category: str | None = None) -> list[Problem]:
    """Every reason ``raw`` is not a valid entry (empty when it is one).

    The files (``load_entries``) and the console's form check entries with this one
    function, so both refuse the same things.
    """
    problems: list[Problem] = []
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        names = ", ".join(sorted(unknown))
        problems.append(Problem("", f"unknown key(s) {names}", f"不明な項目があります: {names}"))
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not SLUG.match(entry_id):
        problems.append(
            Problem(
                "id",
                "id must be a slug of a-z, 0-9 and '-'",
                "IDは半角の英小文字・数字とハイフン(-)で入力してください(例: shipping-fee)。",
            )
        )
    labels = {"question": "質問", "answer": "回答"}
    for key in ("question", "answer"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(
                Problem(
                    key, f"{key} must be a non-empty string", f"{labels[key]}を入力してください。"
                )
            )
    if isinstance(raw.get("answer"), str):
        for link in links(raw["answer"]):
            if not allowed_link(link.href):
                problems.append(
                    Problem(
                        "answer",
                        f"answer: {link_problem(link)}",
                        f"回答のリンク「{link.text}」({link.href})は、このサイトのパス(/で始まる)"
                        "か https:// で始まるアドレスにしてください。",
                    )
                )
    list_labels = {"alternatives": "言い換え", "tags": "タグ"}
    for key in ("alternatives", "tags"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            problems.append(
                Problem(
                    key,
                    f"{key} must be a list of non-empty strings",
                    f"{list_labels[key]}に空の項目があります。",
                )
            )
    category = raw.get("category", default_category)
    if category is not None and not isinstance(category, str):
        problems.append(
            Problem("category", "category must be a string", "カテゴリーは文字列にしてください。")
        )
    dynamic = raw.get("dynamic")
    if dynamic is not None and dynamic not in DYNAMIC_KINDS:
        kinds = ", ".join(sorted(DYNAMIC_KINDS))
        problems.append(
            Problem(
                "dynamic",
                f"dynamic must be one of {kinds}",
                f"自動で添える情報は {kinds} のいずれかにしてください。",
            )
        )
    return problems


def entry_from_mapping(
    raw: Mapping[str, Any], *, default_category: str | None = None, where: str = ""
) -> Entry:
    """Build an :class:`Entry` from a mapping, raising ``KnowledgeBaseError`` when invalid."""
    label = f"{where}entry {raw.get('id', '?')!r}"
    found = entry_problems(raw, default_category=default_category)
    if found:
        raise KnowledgeBaseError([f"{label}: {problem.english}" for problem in found])
    category = raw.get("category", default_category)
    return Entry(
        id=raw["id"],
        question=raw["question"].strip(),
        answer=raw["answer"].strip(),
        alternatives=tuple(a.strip() for a in raw.get("alternatives", [])),
        category=category,
        tags=tuple(t.strip() for t in raw.get("tags", [])),
        dynamic=raw.get("dynamic"),
    )


def entry_mapping(entry: Entry) -> dict[str, Any]:
    """``entry`` as a TOML table of the files (the inverse of ``entry_from_mapping``)."""
    table: dict[str, Any] = {"id": entry.id, "question": entry.question}
    if entry.alternatives:
        table["alternatives"] = list(entry.alternatives)
    if entry.category is not None:
        table["category"] = entry.category
    if entry.tags:
        table["tags"] = list(entry.tags)
    if entry.dynamic is not None:
        table["dynamic"] = entry.dynamic
    table["answer"] = entry.answer
    return table


def dump_entries(entries: Iterable[Entry], *, category: str | None = None) -> str:
    """One knowledge-base file holding ``entries`` (``category``: the file's default, left
    out of the entries that have it); ``load_entries`` reads back the same entries."""
    document: dict[str, Any] = {}
    if category is not None:
        document["category"] = category
    tables = []
    for entry in entries:
        table = entry_mapping(entry)
        if category is not None and table.get("category") == category:
            del table["category"]
        tables.append(table)
    document["entry"] = tables
    return tomli_w.dumps(document, multiline_strings=True)


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
