"""The knowledge base's revisions over data/ (issue 11 item 1): validation shared with the
files (Japanese for the console, English for ``faq check``), revisions, the export round
trip, and the gap groups by meaning (item 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette

from faq import KnowledgeBaseError, SearchEngine, load_entries
from faq.analysis import Analyzer
from faq.kb import dump_entries, entry_problems
from faq.synonyms import load_synonyms
from helpdesk.faq_gaps import GapQuery, group_gaps
from helpdesk.kb_store import DRAFT, RETIRED, EntryForm, export, load_files, merge
from helpdesk.models import Agent
from helpdesk.settings import ROOT, Settings
from tests.helpers import console_agent

DATA = ROOT / "data"


def test_the_console_and_the_files_refuse_the_same_entries_each_in_its_language(
    tmp_path: Path,
) -> None:
    raw = {
        "id": "Bad Id",
        "question": " ",
        "answer": "[こちら](http://example.jp/)からどうぞ。",
        "alternatives": ["いつ届く", ""],
        "dynamic": "weather",
        "colour": "red",
    }
    problems = entry_problems(raw)
    assert [p.field for p in problems] == [
        "",
        "id",
        "question",
        "answer",
        "alternatives",
        "dynamic",
    ]
    assert [p.japanese for p in problems] == [
        "不明な項目があります: colour",
        "IDは半角の英小文字・数字とハイフン(-)で入力してください(例: shipping-fee)。",
        "質問を入力してください。",
        "回答のリンク「こちら」(http://example.jp/)は、このサイトのパス(/で始まる)か"
        " https:// で始まるアドレスにしてください。",
        "言い換えに空の項目があります。",
        "自動で添える情報は cod_ship_date, ship_date のいずれかにしてください。",
    ]
    # The files get the same problems, in English, naming the file and the entry.
    path = tmp_path / "bad.toml"
    path.write_text(
        dump_entries([]).replace("entry = []", "")
        + "[[entry]]\n"
        + "\n".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in raw.items()),
        encoding="utf-8",
    )
    with pytest.raises(KnowledgeBaseError) as caught:
        load_entries(path)
    assert caught.value.problems == [
        f"{path}: #1 entry 'Bad Id': unknown key(s) colour",
        f"{path}: #1 entry 'Bad Id': id must be a slug of a-z, 0-9 and '-'",
        f"{path}: #1 entry 'Bad Id': question must be a non-empty string",
        f"{path}: #1 entry 'Bad Id': answer: link 'http://example.jp/' (こちら) must be a path"
        " of this site (/...) or https://",
        f"{path}: #1 entry 'Bad Id': alternatives must be a list of non-empty strings",
        f"{path}: #1 entry 'Bad Id': dynamic must be one of cod_ship_date, ship_date",
    ]


def test_the_export_of_the_untouched_files_loads_as_the_same_entries(tmp_path: Path) -> None:
    kb = merge(load_files(DATA), (), 0)
    export(kb, tmp_path, data_dir=DATA)
    assert load_entries(tmp_path / "faq") == load_entries(DATA / "faq")
    assert load_synonyms(tmp_path / "synonyms.toml") == load_synonyms(DATA / "synonyms.toml")
    assert sorted(p.name for p in (tmp_path / "faq").glob("*.toml")) == sorted(
        p.name for p in (DATA / "faq").glob("*.toml")
    )


async def _admin(app: Starlette) -> Agent:
    return await console_agent(app, "admin@example.jp", "管理 太郎", admin=True)


async def test_revisions_and_the_export_round_trip(app: Starlette, tmp_path: Path) -> None:
    """Edits of every kind, exported, then loaded by faq.kb: the same knowledge base."""
    faq = app.state.helpdesk.faq
    store = faq.store
    admin = await _admin(app)

    kb = await store.load()
    edited = EntryForm.from_entry(kb.entries["shipping-lead-time"].entry)
    edited.answer += "\n\nお届けまでの日数は地域によって異なります。"
    assert (await store.save_entry(edited, agent=admin, kb=kb, new=False, base=None)).ok
    kb = await store.load()
    assert (
        await store.save_category(
            key=None, name="ギフト", position=None, retired=False, agent=admin, kb=kb
        )
    ).ok
    assert (
        await store.save_category(
            key="決済方法", name="お支払い", position=1, retired=False, agent=admin, kb=kb
        )
    ).ok
    kb = await store.load()
    new_entries = [
        EntryForm(
            id="gift-message",
            question="メッセージカードは付けられますか？",
            alternatives="手紙を同封してほしい",
            category="ギフト",
            tags="ギフト、メッセージ",
            answer="申し訳ございませんが、メッセージカードは承っておりません。",
        ),
        EntryForm(
            id="payment-points",
            question="ポイントは使えますか？",
            category="決済方法",
            answer="ポイント制度はございません。",
        ),
        EntryForm(
            id="shipping-draft",
            question="まだ公開しない質問",
            category="発送/お届け",
            answer="下書きです。",
            status=DRAFT,
        ),
    ]
    for form in new_entries:
        saved = await store.save_entry(form, agent=admin, kb=kb, new=True, base=None)
        assert saved.ok, saved.problems
    kb = await store.load()
    retired = kb.entries["sale-notes"]
    assert (await store.set_status(retired, RETIRED, agent=admin, base=None)).ok
    kb = await store.load()
    assert (
        await store.add_synonym(
            "のし", "ラッピング", agent=admin, kb=kb, analyzer=faq.engine.analyzer
        )
    ).ok

    kb = await store.load()
    history = await store.history("entry", "shipping-lead-time")
    assert [r.changes for r in history] == ["回答"]
    assert history[0].agent_name == "管理 太郎"
    published = kb.published()
    ids = [e.id for e in published]
    assert "shipping-draft" not in ids and "sale-notes" not in ids
    assert {e.category for e in published if e.id.startswith("payment-")} == {"お支払い"}

    written = export(kb, tmp_path / "out", data_dir=DATA)
    loaded = load_entries(tmp_path / "out" / "faq")
    assert {e.id: e for e in loaded} == {e.id: e for e in published}
    assert [tuple(g) for g in load_synonyms(tmp_path / "out" / "synonyms.toml")] == list(
        kb.synonyms
    )
    assert any("のし" in g for g in kb.synonyms)
    assert tmp_path / "out" / "shop.toml" in written
    # The exported folder is a knowledge base the engine serves as the app does.
    await faq.reload_if_changed()
    exported = SearchEngine.from_directory(tmp_path / "out")
    for query in ("メッセージカードは付けられますか", "のしは付けられますか", "いつ届きますか"):
        assert exported.ask(query).entry == faq.engine.ask(query).entry
    # A new category's entries got a file of their own, the others stayed in theirs.
    gift = [p for p in (tmp_path / "out" / "faq").glob("*.toml") if "gift-message" in p.read_text()]
    assert [p.name for p in gift] == ["console-1.toml"]
    assert 'category = "ギフト"' in gift[0].read_text()


async def test_the_cli_exports_what_the_console_saved(app: Starlette, tmp_path: Path) -> None:
    store = app.state.helpdesk.faq.store
    admin = await _admin(app)
    kb = await store.load()
    form = EntryForm(
        id="other-points",
        question="ポイントは貯まりますか？",
        category="その他",
        answer="ポイント制度はございません。",
    )
    assert (await store.save_entry(form, agent=admin, kb=kb, new=True, base=None)).ok
    settings: Settings = app.state.helpdesk.settings
    target = tmp_path / "exported"
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "faq", "export", str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            **os.environ,
            "HELPDESK_VAR_DIR": str(settings.var_dir),
            "HELPDESK_DATABASE_URL": settings.resolved_database_url,
            "HELPDESK_SECRET_KEY": "test-secret-key-not-for-production",
        },
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert f"ok: {len(kb.published()) + 1} entries load" in result.stdout
    assert any(e.id == "other-points" for e in load_entries(target / "faq"))


# -- gaps grouped by meaning ----------------------------------------------------------------

# Real-looking unanswered questions: the same question typed in different ways, and
# different questions that share a word.
QUERIES = [
    ("海外に発送できますか", 4),
    ("海外発送してますか？", 2),
    ("海外に発送はできますか。", 1),
    ("ギフト包装はできますか", 3),
    ("ギフト包装できる？", 1),
    ("ポイントは使えますか", 2),
    ("ポイント使える？", 1),
    ("ポイントは貯まりますか", 1),
    ("へんぴんしたい", 1),
    ("返品したい", 2),
    ("返品したいです", 1),
    ("店舗はありますか", 1),
    ("実店舗ありますか？", 1),
]


def test_gap_queries_are_grouped_by_their_words_and_readings() -> None:
    engine = SearchEngine.from_directory(DATA)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    gaps = [
        GapQuery(q, n, start + timedelta(days=i), start + timedelta(days=i + n))
        for i, (q, n) in enumerate(QUERIES)
    ]
    groups = group_gaps(gaps, Analyzer(), engine=engine)
    found = {frozenset(q.query for q in g.queries): g for g in groups}
    overseas = found[
        frozenset({"海外に発送できますか", "海外発送してますか？", "海外に発送はできますか。"})
    ]
    assert overseas.count == 7 and overseas.question == "海外に発送できますか"
    assert overseas.first_seen == start and overseas.last_seen == start + timedelta(days=4)
    assert frozenset({"ギフト包装はできますか", "ギフト包装できる？"}) in found
    # 使える and 貯まる are different questions about points.
    assert frozenset({"ポイントは使えますか", "ポイント使える？"}) in found
    assert frozenset({"ポイントは貯まりますか"}) in found
    # Kana read as the indexed word (へんぴん: 返品), as the bot reads it.
    assert frozenset({"へんぴんしたい", "返品したい", "返品したいです"}) in found
    # 店舗 and 実店舗 are different words.
    assert frozenset({"店舗はありますか"}) in found
    assert groups[0] is overseas  # the most asked first
    assert len(groups) == 7
    # Keys are stable: the same queries, another order, the same groups.
    again = group_gaps(list(reversed(gaps)), Analyzer(), engine=engine)
    assert sorted(g.key for g in again) == sorted(g.key for g in groups)


def test_a_handled_group_goes_last_until_asked_again() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    gaps = [
        GapQuery("海外に発送できますか", 5, start, start + timedelta(days=1)),
        GapQuery("ギフト包装はできますか", 1, start, start + timedelta(days=1)),
    ]
    [first, _] = group_gaps(gaps, Analyzer())
    handled = {first.source: start + timedelta(days=2)}
    groups = group_gaps(gaps, Analyzer(), handled=handled)
    assert [g.question for g in groups] == ["ギフト包装はできますか", "海外に発送できますか"]
    assert not groups[1].open
    later = [
        *gaps[:1],
        GapQuery("海外発送してますか", 1, start, start + timedelta(days=3)),
        gaps[1],
    ]
    assert group_gaps(later, Analyzer(), handled=handled)[0].open
