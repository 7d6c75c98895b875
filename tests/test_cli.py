"""The command line, run as a user runs it: a subprocess of main.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpdesk.settings import ROOT


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_ask_json_reads_queries_from_stdin() -> None:
    result = run("ask", "--json", stdin="領収書はもらえますか\n明日は晴れますか\n\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["領収書はもらえますか", "明日は晴れますか", ""]
    receipt, weather, empty = lines
    assert receipt["answered"] and receipt["answer"]["id"] == "other-receipt"
    assert set(receipt["results"][0]) == {"id", "question", "answer", "score"}
    assert len(receipt["results"]) <= 5
    assert weather["answered"] is False and weather["answer"] is None
    assert empty["answered"] is False and empty["answer"] is None and empty["results"] == []
    assert weather["contact_url"].endswith(
        "/contact?q=%E6%98%8E%E6%97%A5%E3%81%AF%E6%99%B4%E3%82%8C%E3%81%BE%E3%81%99%E3%81%8B"
    )


def test_ask_one_query_in_words() -> None:
    result = run("ask", "ラッピングできますか")
    assert result.returncode == 0, result.stderr
    assert "ラッピングのサービスは行なっておりません" in result.stdout


def test_faq_check_accepts_the_shop_data_and_names_bad_entries(tmp_path: Path) -> None:
    ok = run("faq", "check")
    assert ok.returncode == 0 and "ok:" in ok.stdout
    data = tmp_path / "data"
    (data / "faq").mkdir(parents=True)
    (data / "shop.toml").write_text((ROOT / "data" / "shop.toml").read_text(encoding="utf-8"))
    (data / "faq" / "broken.toml").write_text(
        '[[entry]]\nid = "Bad Id"\nquestion = "質問"\nanswer = ""\n', encoding="utf-8"
    )
    bad = run("faq", "check", env={"HELPDESK_DATA_DIR": str(data)})
    assert bad.returncode == 1
    assert "broken.toml" in bad.stderr and "'Bad Id'" in bad.stderr
    assert "answer must be a non-empty string" in bad.stderr


def test_faq_check_shows_the_support_calendar_and_names_its_bad_keys(tmp_path: Path) -> None:
    ok = run("faq", "check")
    assert ok.returncode == 0, ok.stderr
    assert "ok: support calendar: サポートの対応時間は平日 10:00〜17:00 です。" in ok.stdout
    assert "first reply within 7 hours" in ok.stdout
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    shop = (data / "shop.toml").read_text(encoding="utf-8")
    (data / "shop.toml").write_text(shop.replace('to = "01-04"', 'to = "01-32"'), encoding="utf-8")
    bad = run("faq", "check", env={"HELPDESK_DATA_DIR": str(data)})
    assert bad.returncode == 1
    assert "shop.toml: support.closed_periods[0].to: 日付は" in bad.stderr
    assert 'expected "YYYY-MM-DD" or yearly "MM-DD", got \'01-32\'' in bad.stderr


def test_faq_import_csv_and_jsonl_reports_refused_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "faq").mkdir(parents=True)
    (data / "shop.toml").write_text((ROOT / "data" / "shop.toml").read_text(encoding="utf-8"))
    csv_file = tmp_path / "faq.csv"
    csv_file.write_text(
        "question,answer,category,tags\n"
        "ギフト券は使えますか,ギフト券はご利用いただけません。,決済方法,ギフト券、商品券\n"
        ",答えだけの行,その他,\n"
        "ギフト券は使えますか,重複した質問,その他,\n",
        encoding="utf-8",
    )
    env = {"HELPDESK_DATA_DIR": str(data)}
    result = run("faq", "import", str(csv_file), env=env)
    assert result.returncode == 0, result.stderr
    assert "imported 1 entries" in result.stdout
    assert "refused row 3: question と answer は必須です" in result.stdout
    assert "refused row 4: 同じ質問がすでにあります" in result.stdout
    jsonl = tmp_path / "faq.jsonl"
    jsonl.write_text(
        json.dumps({"question": "ポイントは貯まりますか", "answer": "ポイント制度はございません。"})
        + "\n{not json}\n",
        encoding="utf-8",
    )
    result = run("faq", "import", str(jsonl), env=env)
    assert "imported 1 entries" in result.stdout and "refused row 2" in result.stdout
    asked = run("ask", "--json", "ギフト券つかえる？", env=env)
    assert json.loads(asked.stdout)["answer"]["answer"] == "ギフト券はご利用いただけません。"


@pytest.mark.parametrize("db", ["sqlite"])
def test_faq_gaps_lists_masked_queries(tmp_path: Path, db: str) -> None:
    import asyncio

    from helpdesk.app import Helpdesk
    from helpdesk.settings import Settings

    settings = Settings(_env_file=None, var_dir=tmp_path / "var", secret_key="x")

    async def log_gap() -> None:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        await helpdesk.faq.ask_and_log("株価を taro@example.jp に送って")
        await helpdesk.faq.record_feedback("other-receipt", False, "領収書")
        await helpdesk.shutdown()

    asyncio.run(log_gap())
    result = run("faq", "gaps", env={"HELPDESK_VAR_DIR": str(tmp_path / "var")})
    assert result.returncode == 0, result.stderr
    assert "株価を [メール] に送って" in result.stdout
    assert "example.jp" not in result.stdout
    assert "1 / 0     other-receipt" in result.stdout
