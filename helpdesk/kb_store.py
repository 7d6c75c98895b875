"""The knowledge base as the shop edits it: ``data/`` with the console's revisions on top.

A fresh install starts from the files (``data/faq/*.toml``, ``data/synonyms.toml``). What an
admin saves in the console is a *revision* in the database (``FaqRevision``: the whole new
state, who, when and what changed); the latest revision of an entry, a category or the
synonyms overrides the files. Entries have a state: published (the bot uses it), draft (not
yet) or retired (no longer). Every revision bumps the version (``FaqKbVersion``), which each
worker polls to rebuild its index (``helpdesk.faq_service``).

Categories are named by their *key* (the name they had in the files, or were created with):
an entry stores its category's key, and a renamed category renames all its entries.

``export`` writes the current knowledge base back as files of the same format, which
``faq.kb.load_entries`` reads back as the same entries.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from faq.analysis import Analyzer
from faq.kb import KnowledgeBaseError, Problem, dump_entries, entry_from_mapping, entry_problems
from faq.kb import load_entries as load_entry_files
from faq.model import Entry
from faq.synonyms import SynonymError, SynonymTable, load_synonyms
from helpdesk.db import as_utc, utcnow
from helpdesk.models import Agent, FaqKbVersion, FaqRevision

ENTRY, CATEGORY, SYNONYMS = "entry", "category", "synonyms"
PUBLISHED, DRAFT, RETIRED = "published", "draft", "retired"
STATUSES = (PUBLISHED, DRAFT, RETIRED)
STATUS_LABELS = {PUBLISHED: "公開中", DRAFT: "下書き", RETIRED: "非公開(廃止)"}
FIELD_LABELS = {
    "id": "ID",
    "question": "質問",
    "alternatives": "言い換え",
    "category": "カテゴリー",
    "tags": "タグ",
    "answer": "回答",
    "dynamic": "自動で添える情報",
    "status": "状態",
    "name": "名前",
    "position": "並び順",
    "groups": "同義語",
}
STALE = (
    "この内容は、開いている間に別の方が変更しました。"
    "最新の内容を確認してから、もう一度保存してください(入力した内容は残っています)。"
)
MAX_CATEGORY = 40


@dataclass(frozen=True, slots=True)
class KbEntry:
    """An entry as the console shows it: its state, the file it came from (None when made
    in the console) and its latest revision (None while it is as in the files)."""

    entry: Entry
    status: str
    origin: str | None
    revision: FaqRevision | None = None


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    name: str
    position: int
    retired: bool = False
    revision: FaqRevision | None = None


@dataclass(frozen=True, slots=True)
class FileKb:
    """What ``data/`` holds: entries with their file, the files' categories, synonyms."""

    entries: tuple[tuple[Entry, str], ...]
    file_categories: dict[str, str | None]
    synonyms: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    """The files with the database's revisions applied, at database ``version``."""

    version: int
    entries: dict[str, KbEntry]
    categories: dict[str, Category]
    synonyms: tuple[tuple[str, ...], ...]
    synonyms_revision: FaqRevision | None = None
    file_categories: dict[str, str | None] = field(default_factory=dict)

    def category_name(self, key: str | None) -> str | None:
        if key is None:
            return None
        category = self.categories.get(key)
        return category.name if category is not None else key

    def effective(self, item: KbEntry) -> Entry:
        """The entry as customers see it: its category's current name."""
        return replace(item.entry, category=self.category_name(item.entry.category))

    def published(self) -> list[Entry]:
        """The entries the bot answers with, in the order of the files, then new ones."""
        return [self.effective(e) for e in self.entries.values() if e.status == PUBLISHED]

    def live_categories(self) -> list[Category]:
        return sorted(
            (c for c in self.categories.values() if not c.retired), key=lambda c: c.position
        )


def load_files(data_dir: Path) -> FileKb:
    """Read ``data/faq/*.toml`` and ``data/synonyms.toml``.

    Raises ``KnowledgeBaseError`` or ``SynonymError`` as ``faq check`` reports them.
    """
    folder = data_dir / "faq"
    load_entry_files(folder)  # every problem at once, ids unique across files
    entries: list[tuple[Entry, str]] = []
    file_categories: dict[str, str | None] = {}
    for path in sorted(folder.glob("*.toml")):
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        default = document.get("category")
        file_categories[path.name] = default if isinstance(default, str) else None
        entries.extend((entry, path.name) for entry in load_entry_files(path))
    synonyms = tuple(load_synonyms(data_dir / "synonyms.toml"))
    return FileKb(tuple(entries), file_categories, synonyms)


def merge(files: FileKb, revisions: Iterable[FaqRevision], version: int) -> KnowledgeBase:
    """The files with the latest revision of each key applied."""
    entries: dict[str, KbEntry] = {
        entry.id: KbEntry(entry, PUBLISHED, origin) for entry, origin in files.entries
    }
    categories: dict[str, Category] = {}
    for entry, _ in files.entries:
        if entry.category is not None and entry.category not in categories:
            categories[entry.category] = Category(entry.category, entry.category, len(categories))
    synonyms, synonyms_revision = files.synonyms, None
    for revision in sorted(revisions, key=lambda r: r.id or 0):
        data = json.loads(revision.data)
        if revision.kind == ENTRY:
            origin = entries[revision.key].origin if revision.key in entries else None
            try:
                entry = entry_from_mapping(data)
            except KnowledgeBaseError:
                continue  # saved by an older version under other rules: the files' stays
            entries[revision.key] = KbEntry(entry, revision.status, origin, revision)
        elif revision.kind == CATEGORY:
            categories[revision.key] = Category(
                revision.key,
                str(data.get("name") or revision.key),
                int(data.get("position", len(categories))),
                revision.status == RETIRED,
                revision,
            )
        elif revision.kind == SYNONYMS:
            synonyms = tuple(tuple(group) for group in data.get("groups", []))
            synonyms_revision = revision
    return KnowledgeBase(
        version, entries, categories, synonyms, synonyms_revision, dict(files.file_categories)
    )


def changed_fields(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    if before is None:
        return ["新規作成"]
    keys = [k for k in FIELD_LABELS if k in before or k in after]
    return [FIELD_LABELS[k] for k in keys if before.get(k) != after.get(k)]


# -- the entry form --------------------------------------------------------------------------


@dataclass(slots=True)
class EntryForm:
    """What the admin typed, kept as typed (a failed save shows it again)."""

    id: str = ""
    question: str = ""
    alternatives: str = ""  # one a line
    category: str = ""
    tags: str = ""  # separated by commas (、 or ,) or lines
    answer: str = ""
    dynamic: str = ""
    status: str = PUBLISHED

    @classmethod
    def from_entry(cls, entry: Entry, status: str = PUBLISHED) -> EntryForm:
        return cls(
            id=entry.id,
            question=entry.question,
            alternatives="\n".join(entry.alternatives),
            category=entry.category or "",
            tags="、".join(entry.tags),
            answer=entry.answer,
            dynamic=entry.dynamic or "",
            status=status,
        )

    def mapping(self) -> dict[str, Any]:
        """The entry as the files would hold it (for ``faq.kb.entry_problems``)."""
        raw: dict[str, Any] = {
            "id": self.id.strip(),
            "question": self.question.strip(),
            "answer": self.answer.strip(),
            "alternatives": _lines(self.alternatives),
            "tags": [t for t in re.split(r"[,、，\n]+", self.tags) if t.strip()],
        }
        raw["tags"] = [t.strip() for t in raw["tags"]]
        if self.category.strip():
            raw["category"] = self.category.strip()
        if self.dynamic.strip():
            raw["dynamic"] = self.dynamic.strip()
        return raw


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True, slots=True)
class Saved:
    """The outcome of a save: the revision, or the problems (field, Japanese message)."""

    revision: FaqRevision | None
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.revision is not None


def _refused(*problems: tuple[str, str]) -> Saved:
    return Saved(None, tuple(problems))


def _japanese(problems: Sequence[Problem]) -> tuple[tuple[str, str], ...]:
    return tuple((p.field, p.japanese) for p in problems)


class KnowledgeBaseStore:
    """Reads and writes the revisions; builds the knowledge base from files and database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], data_dir: Path) -> None:
        self.sessions = sessions
        self.data_dir = data_dir

    async def version(self) -> int:
        """The knowledge base's version number (one indexed row: cheap to poll)."""
        async with self.sessions() as session:
            found = await session.execute(
                select(col(FaqKbVersion.version)).where(col(FaqKbVersion.id) == 1)
            )
            return int(found.scalar_one_or_none() or 0)

    async def latest_revisions(self) -> tuple[int, list[FaqRevision]]:
        """The version and the latest revision of every key, read in one transaction."""
        latest = (
            select(func.max(col(FaqRevision.id)))
            .group_by(col(FaqRevision.kind), col(FaqRevision.key))
            .scalar_subquery()
        )
        async with self.sessions() as session, session.begin():
            version = await session.execute(
                select(col(FaqKbVersion.version)).where(col(FaqKbVersion.id) == 1)
            )
            found = await session.execute(
                select(FaqRevision).where(col(FaqRevision.id).in_(latest))
            )
            return int(version.scalar_one_or_none() or 0), list(found.scalars().all())

    async def load(self, files: FileKb | None = None) -> KnowledgeBase:
        """The current knowledge base (``files`` when already read)."""
        import asyncio

        if files is None:
            files = await asyncio.to_thread(load_files, self.data_dir)
        version, revisions = await self.latest_revisions()
        return merge(files, revisions, version)

    async def history(self, kind: str, key: str, limit: int = 50) -> list[FaqRevision]:
        async with self.sessions() as session:
            found = await session.execute(
                select(FaqRevision)
                .where(col(FaqRevision.kind) == kind, col(FaqRevision.key) == key)
                .order_by(col(FaqRevision.id).desc())
                .limit(limit)
            )
            return list(found.scalars().all())

    async def recent(self, limit: int = 30) -> list[FaqRevision]:
        async with self.sessions() as session:
            found = await session.execute(
                select(FaqRevision).order_by(col(FaqRevision.id).desc()).limit(limit)
            )
            return list(found.scalars().all())

    async def sources(self) -> dict[str, datetime]:
        """Gap groups and tickets already turned into a change: source -> latest change."""
        async with self.sessions() as session:
            found = await session.execute(
                select(col(FaqRevision.source), func.max(col(FaqRevision.created_at)))
                .where(col(FaqRevision.source).is_not(None))
                .group_by(col(FaqRevision.source))
            )
            return {source: as_utc(when) for source, when in found.all() if source}

    async def _write(
        self,
        *,
        kind: str,
        key: str,
        status: str,
        data: dict[str, Any],
        agent: Agent,
        base: int | None,
        before: dict[str, Any] | None,
        source: str | None = None,
        check_base: bool = True,
    ) -> Saved:
        """Append a revision and bump the version in one transaction; refused (``STALE``)
        when the key's latest revision is no longer ``base`` (someone saved meanwhile)."""
        async with self.sessions() as session, session.begin():
            # Bumping the version first takes its row lock (PostgreSQL) or the write lock
            # (SQLite): saves are one at a time, so the check below cannot race.
            bumped = await session.execute(
                update(FaqKbVersion)
                .where(col(FaqKbVersion.id) == 1)
                .values(version=col(FaqKbVersion.version) + 1, updated_at=utcnow())
            )
            if not bumped.rowcount:  # type: ignore[attr-defined]
                session.add(FaqKbVersion(id=1, version=1))  # the row was lost: start again
            if check_base:
                latest = await session.execute(
                    select(func.max(col(FaqRevision.id))).where(
                        col(FaqRevision.kind) == kind, col(FaqRevision.key) == key
                    )
                )
                if latest.scalar_one_or_none() != base:
                    await session.rollback()
                    return _refused(("", STALE))
            changes = changed_fields(before, {**data, "status": status})
            revision = FaqRevision(
                kind=kind,
                key=key,
                status=status,
                data=json.dumps(data, ensure_ascii=False),
                changes="、".join(changes)[:500],
                agent_id=agent.id,
                agent_name=agent.name[:100],
                source=source[:200] if source else None,
            )
            session.add(revision)
            await session.flush()
            session.expunge(revision)
        return Saved(revision)

    # -- entries ---------------------------------------------------------------------------

    async def save_entry(
        self,
        form: EntryForm,
        *,
        agent: Agent,
        kb: KnowledgeBase,
        new: bool,
        base: int | None,
        source: str | None = None,
    ) -> Saved:
        """Validate ``form`` as ``faq.kb`` validates the files, then save it as a revision.

        ``new``: a new entry (its id must not be in use, by any entry in any state);
        otherwise an edit of entry ``form.id`` whose latest revision was ``base``.
        """
        raw = form.mapping()
        problems = list(_japanese(entry_problems(raw)))
        if form.status not in STATUSES:
            problems.append(("status", "状態を選んでください。"))
        category = raw.get("category")
        if category is not None and len(category) > MAX_CATEGORY:
            problems.append(("category", f"カテゴリーは{MAX_CATEGORY}文字以内にしてください。"))
        elif category is None:
            problems.append(("category", "カテゴリーを選んでください。"))
        elif category not in kb.categories:
            problems.append(("category", "カテゴリーは一覧から選んでください。"))
        if len(raw["id"]) > 100:
            problems.append(("id", "IDは100文字以内にしてください。"))
        current = kb.entries.get(raw["id"])
        if new and current is not None:
            problems.append(
                ("id", f"ID「{raw['id']}」はすでに使われています(非公開の質問を含みます)。")
            )
        if not new and current is None:
            problems.append(("id", "この質問は見つかりませんでした。"))
        question = raw["question"]
        for other in kb.entries.values():
            if (
                other.entry.id != raw["id"]
                and question
                and other.entry.question == question
                and other.status != RETIRED
            ):
                problems.append(("question", f"同じ質問がすでにあります(ID: {other.entry.id})。"))
        if problems:
            return _refused(*problems)
        before = None
        if current is not None:
            from faq.kb import entry_mapping

            before = {**entry_mapping(current.entry), "status": current.status}
        return await self._write(
            kind=ENTRY,
            key=raw["id"],
            status=form.status,
            data=raw,
            agent=agent,
            base=base,
            before=before,
            source=source,
            check_base=not new,
        )

    async def set_status(
        self, item: KbEntry, status: str, *, agent: Agent, base: int | None
    ) -> Saved:
        """Publish, retire or return to draft ``item`` (its content unchanged)."""
        from faq.kb import entry_mapping

        data = entry_mapping(item.entry)
        before = {**data, "status": item.status}
        return await self._write(
            kind=ENTRY,
            key=item.entry.id,
            status=status,
            data=data,
            agent=agent,
            base=base,
            before=before,
        )

    async def add_phrasing(
        self, item: KbEntry, phrasing: str, *, agent: Agent, source: str | None = None
    ) -> Saved:
        """Add ``phrasing`` to ``item``'s other phrasings (the gap list's one action)."""
        phrasing = phrasing.strip()
        if not phrasing:
            return _refused(("phrasing", "言い換えを入力してください。"))
        if phrasing == item.entry.question or phrasing in item.entry.alternatives:
            return _refused(("phrasing", "この言い換えはすでに登録されています。"))
        form = EntryForm.from_entry(item.entry, item.status)
        form.alternatives = "\n".join([*item.entry.alternatives, phrasing])
        raw = form.mapping()
        problems = _japanese(entry_problems(raw))
        if problems:
            return _refused(*problems)
        from faq.kb import entry_mapping

        return await self._write(
            kind=ENTRY,
            key=item.entry.id,
            status=item.status,
            data=raw,
            agent=agent,
            base=item.revision.id if item.revision else None,
            before={**entry_mapping(item.entry), "status": item.status},
            source=source,
        )

    # -- categories ------------------------------------------------------------------------

    async def save_category(
        self,
        *,
        key: str | None,
        name: str,
        position: int | None,
        retired: bool,
        agent: Agent,
        kb: KnowledgeBase,
    ) -> Saved:
        """Create (``key`` None), rename, move or retire a category. A category with
        published entries cannot be retired; two live categories cannot share a name."""
        name = name.strip()
        if not name:
            return _refused(("name", "カテゴリー名を入力してください。"))
        if len(name) > MAX_CATEGORY:
            return _refused(("name", f"カテゴリー名は{MAX_CATEGORY}文字以内にしてください。"))
        for other in kb.categories.values():
            if other.key != key and not other.retired and other.name == name:
                return _refused(("name", f"カテゴリー「{name}」はすでにあります。"))
        if key is None:
            if name in kb.categories:
                return _refused(("name", f"カテゴリー「{name}」は以前使われていた名前です。"))
            current, new_key = None, name
        else:
            current, new_key = kb.categories.get(key), key
            if current is None:
                return _refused(("name", "このカテゴリーは見つかりませんでした。"))
        if retired:
            used = [
                e.entry.id
                for e in kb.entries.values()
                if e.entry.category == new_key and e.status == PUBLISHED
            ]
            if used:
                return _refused(
                    (
                        "retired",
                        f"公開中の質問が{len(used)}件あるため、非公開にできません"
                        "(先に質問を別のカテゴリーへ移すか非公開にしてください: "
                        f"{', '.join(used[:5])})。",
                    )
                )
        data = {
            "name": name,
            "position": position if position is not None else len(kb.categories),
        }
        before = None
        if current is not None:
            before = {
                "name": current.name,
                "position": current.position,
                "status": RETIRED if current.retired else PUBLISHED,
            }
        return await self._write(
            kind=CATEGORY,
            key=new_key,
            status=RETIRED if retired else PUBLISHED,
            data=data,
            agent=agent,
            base=current.revision.id if current and current.revision else None,
            before=before,
            check_base=False,
        )

    # -- synonyms --------------------------------------------------------------------------

    async def add_synonym(
        self,
        word: str,
        same_as: str,
        *,
        agent: Agent,
        kb: KnowledgeBase,
        analyzer: Analyzer,
        source: str | None = None,
    ) -> Saved:
        """Make ``word`` a synonym of ``same_as``: into ``same_as``'s group, or a new group
        of the two. Checked as ``data/synonyms.toml`` is (``faq.synonyms``)."""
        word, same_as = word.strip(), same_as.strip()
        if not word or not same_as:
            return _refused(("synonym", "同義語にする言葉を2つとも入力してください。"))
        if word == same_as:
            return _refused(("synonym", "違う言葉を2つ入力してください。"))
        groups = [list(g) for g in kb.synonyms]
        if any(word in g for g in groups):
            return _refused(("synonym", f"「{word}」はすでに同義語に登録されています。"))
        for group in groups:
            if same_as in group:
                group.append(word)
                break
        else:
            groups.append([same_as, word])
        try:
            SynonymTable(groups, analyzer)
        except SynonymError as exc:
            return _refused(("synonym", synonym_message(exc, word)))
        return await self._write(
            kind=SYNONYMS,
            key=SYNONYMS,
            status=PUBLISHED,
            data={"groups": groups},
            agent=agent,
            base=kb.synonyms_revision.id if kb.synonyms_revision else None,
            before={"groups": [list(g) for g in kb.synonyms]},
            source=source,
        )


def synonym_message(exc: SynonymError, word: str) -> str:
    text = " ".join(exc.problems)
    if "no content word" in text:
        return f"「{word}」には検索に使える言葉がありません(助詞などだけです)。"
    if "reads like a word of group" in text:
        return f"「{word}」は別の同義語グループの言葉と同じに読まれます。"
    if "at most" in text:
        return f"「{word}」は長すぎます。短い言葉にしてください。"
    return f"「{word}」は同義語に登録できません。"


# -- export ----------------------------------------------------------------------------------


def export(kb: KnowledgeBase, target: Path, *, data_dir: Path | None = None) -> list[Path]:
    """Write ``kb``'s published entries and its synonyms as a data folder: ``target/faq/
    *.toml`` (entries in the file they came from, new ones in their category's file) and
    ``target/synonyms.toml``; ``shop.toml`` is copied from ``data_dir`` when it is another
    folder. Returns the files written."""
    by_file: dict[str, list[Entry]] = {}
    category_file: dict[str | None, str] = {}
    for name, category in kb.file_categories.items():
        category_file.setdefault(category, name)
    new_files: dict[str | None, str] = {}
    for item in kb.entries.values():
        if item.status != PUBLISHED:
            continue
        if item.origin is not None:
            name = item.origin
        else:
            key = item.entry.category
            name = category_file.get(key) or new_files.setdefault(
                key, _new_file_name(len(new_files), set(kb.file_categories))
            )
        by_file.setdefault(name, []).append(kb.effective(item))
    folder = target / "faq"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entries in by_file.items():
        default = kb.file_categories.get(name)
        if default is None:
            categories = {e.category for e in entries}
            default = next(iter(categories)) if len(categories) == 1 else None
        path = folder / name
        path.write_text(dump_entries(entries, category=kb.category_name(default)), encoding="utf-8")
        written.append(path)
    for stale in folder.glob("*.toml"):
        if stale.name not in by_file:
            stale.unlink()  # every entry of it retired: the folder is the knowledge base
    synonyms = target / "synonyms.toml"
    synonyms.write_text(
        "# 同義語: このショップのお客様が同じ意味で使う言葉のグループです"
        "(main.py faq export で書き出しました)。\n"
        + tomli_w.dumps({"groups": [list(g) for g in kb.synonyms]}),
        encoding="utf-8",
    )
    written.append(synonyms)
    if data_dir is not None and data_dir.resolve() != target.resolve():
        shop = data_dir / "shop.toml"
        if shop.exists():
            shutil.copyfile(shop, target / "shop.toml")
            written.append(target / "shop.toml")
    return written


def _new_file_name(index: int, taken: set[str]) -> str:
    number = index + 1
    while f"console-{number}.toml" in taken:
        number += 1
    return f"console-{number}.toml"
