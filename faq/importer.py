"""Importing FAQ rows from CSV or JSON Lines into the knowledge base's TOML format."""

from __future__ import annotations

import csv
import hashlib
import json
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from faq.kb import KnowledgeBaseError, entry_from_mapping
from faq.model import Entry


@dataclass
class ImportReport:
    imported: list[Entry] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)


def _split_tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value or "").replace("、", ",").replace("，", ",").replace("|", ",")
    return [t.strip() for t in text.split(",") if t.strip()]


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(row number, mapping) per row; a string instead of a mapping says why it is unreadable.

    CSV needs a header with at least ``question`` and ``answer`` (``category``, ``tags``,
    ``id``, ``alternatives`` optional). JSON Lines: one object a line with the same keys.
    """
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"JSONとして読めません: {exc.msg}"
                    continue
                yield number, value if isinstance(value, dict) else "オブジェクトではありません"
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            yield number, {k.strip().lower(): v for k, v in row.items() if k}


def import_rows(
    path: Path,
    *,
    existing: list[Entry],
    progress: Callable[[Iterator[Any]], Iterator[Any]] = lambda rows: rows,
) -> ImportReport:
    """Validate the rows of ``path``; refused rows are reported with a Japanese reason."""
    report = ImportReport()
    ids = {e.id for e in existing}
    questions = {e.question for e in existing}
    for number, row in progress(read_rows(path)):
        if isinstance(row, str):
            report.refused.append((number, row))
            continue
        question = str(row.get("question") or "").strip()
        raw = {
            "id": str(row.get("id") or "").strip()
            or "imported-" + hashlib.sha1(question.encode()).hexdigest()[:10],
            "question": question,
            "answer": str(row.get("answer") or "").strip(),
            "tags": _split_tags(row.get("tags")),
            "alternatives": _split_tags(row.get("alternatives")),
        }
        if row.get("category"):
            raw["category"] = str(row["category"]).strip()
        if not question or not raw["answer"]:
            report.refused.append((number, "question と answer は必須です"))
            continue
        if question in questions:
            report.refused.append((number, "同じ質問がすでにあります"))
            continue
        if raw["id"] in ids:
            report.refused.append((number, f"id {raw['id']!r} はすでに使われています"))
            continue
        try:
            entry = entry_from_mapping(raw)
        except KnowledgeBaseError as exc:
            report.refused.append((number, "; ".join(exc.problems)))
            continue
        ids.add(entry.id)
        questions.add(entry.question)
        report.imported.append(entry)
    return report


def write_entries(path: Path, entries: list[Entry]) -> None:
    """Append ``entries`` to a knowledge-base TOML file (created when missing)."""
    document: dict[str, Any] = {"entry": []}
    if path.exists():
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        document.setdefault("entry", [])
    for entry in entries:
        table: dict[str, Any] = {"id": entry.id, "question": entry.question}
        if entry.alternatives:
            table["alternatives"] = list(entry.alternatives)
        if entry.category:
            table["category"] = entry.category
        if entry.tags:
            table["tags"] = list(entry.tags)
        table["answer"] = entry.answer
        document["entry"].append(table)
    path.write_text(tomli_w.dumps(document, multiline_strings=True), encoding="utf-8")
