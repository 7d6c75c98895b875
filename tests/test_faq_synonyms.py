"""The shop's own synonyms (data/synonyms.toml): loading, checking, searching, reloading."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faq import Entry, SearchEngine
from faq.analysis import shared_analyzer
from faq.synonyms import SynonymError, SynonymTable, load_synonyms
from helpdesk.faq_service import FaqService
from helpdesk.settings import ROOT, Settings

ENTRIES = [
    Entry("cod", "代金引換で支払えますか", "代金引換のお支払いは現金のみとなります。"),
    Entry("receipt", "領収書は発行できますか", "領収書の発行は行なっておりません。"),
    Entry("phone", "電話で問い合わせできますか", "お電話でのお問い合わせは対応致しかねます。"),
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shops_file_loads() -> None:
    groups = load_synonyms(ROOT / "data" / "synonyms.toml")
    assert list(groups[0][:2]) == ["代引き", "代金引換"]
    SynonymTable(groups, shared_analyzer())  # every word reads as content words


def test_no_file_means_no_groups(tmp_path: Path) -> None:
    assert load_synonyms(tmp_path / "synonyms.toml") == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("groups = [", "not valid TOML"),
        ('groups = "代引き"', "groups must be a list"),
        ('groups = [["代引き"]]', "group 1: needs at least two different words"),
        ('groups = [["代引き", "代引き"]]', "group 1: needs at least two different words"),
        ('groups = [["代引き", 3]]', "group 1: must be a list of non-empty words"),
        (
            'groups = [["代引き", "代金引換"], ["返金", "代引き"]]',
            "group 2: '代引き' is already in group 1",
        ),
        ('group = [["a", "b"]]', "unknown key(s) group"),
    ],
)
def test_invalid_files_name_file_and_group(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path / "synonyms.toml", text)
    with pytest.raises(SynonymError) as caught:
        load_synonyms(path)
    assert any(problem in p and str(path) in p for p in caught.value.problems), caught.value


def test_words_must_be_content_words() -> None:
    with pytest.raises(SynonymError, match="'です' has no content word"):
        SynonymTable([["代引き", "です"]], shared_analyzer())
    with pytest.raises(SynonymError, match="reads like a word of group 1"):
        SynonymTable([["代引", "着払い"], ["代引き", "代金引換"]], shared_analyzer())


def test_a_shop_synonym_of_several_morphemes_finds_the_entry() -> None:
    # 代金引換 is two morphemes (代金 + 引き換え) and SudachiPy does not relate it to 代引き.
    plain = SearchEngine(ENTRIES)
    shop = SearchEngine(ENTRIES, synonyms=[["代引き", "代金引換"]])
    assert not plain.search("代引き")
    hits = shop.search("代引き")
    assert hits and hits[0].entry.id == "cod"
    assert shop.ask("代引きで支払えますか").answered
    assert not plain.ask("代引きで支払えますか").answered


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('groups = [["代引き", "代金引換"], ["返金"]]\n', "group 2: needs at least two"),
        ('groups = [["代引き", "です"]]\n', "group 1: 'です' has no content word"),
    ],
)
def test_faq_check_names_a_broken_synonyms_file(tmp_path: Path, text: str, problem: str) -> None:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    write(data / "synonyms.toml", text)
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "faq", "check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "HELPDESK_DATA_DIR": str(data)},
        timeout=120,
    )
    assert result.returncode == 1
    assert f"{data / 'synonyms.toml'}: {problem}" in result.stderr


async def test_edits_are_picked_up_on_reload(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    write(data / "synonyms.toml", "groups = []\n")
    settings = Settings(_env_file=None, data_dir=data, var_dir=tmp_path / "var", secret_key="k")
    service = FaqService.from_settings(settings, sessions=None)  # type: ignore[arg-type]
    assert await service.reload_if_changed() is False  # nothing changed yet
    before = service.engine
    assert not any(h.entry.id == "other-wrapping" for h in before.search("風呂敷"))

    write(data / "synonyms.toml", 'groups = [["ラッピング", "風呂敷"]]\n')
    assert await service.reload_if_changed() is True
    assert service.engine is not before
    assert service.engine.search("風呂敷")[0].entry.id == "other-wrapping"

    kept = service.engine
    write(data / "synonyms.toml", 'groups = [["ラッピング"]]\n')  # broken: kept as it was
    assert await service.reload_if_changed() is False
    assert service.engine is kept
