#!/usr/bin/env python3
"""Reload without restart (issue 11): how soon every worker serves an FAQ edit, and what a
rebuild of a 1,000-entry index costs the searches answered meanwhile.

Run from the repository root (PostgreSQL on 127.0.0.1; the database is a scratch one whose
schema the script drops and re-creates)::

    .venv/bin/python bench/kb_reload_bench.py \\
        --database-url postgresql://postgres@127.0.0.1/madoguchi_kbedit

What is measured:

* propagation: two ``main.py serve`` processes (the workers) over one PostgreSQL database
  and a data folder of 1,000 entries (the shop's own and synthetic ones, ``faq_bench``),
  with the default check interval (``HELPDESK_FAQ_RELOAD_SECONDS`` = 1 s). The script saves
  a new entry as the console does (``KnowledgeBaseStore.save_entry``: a revision and the
  version bumped in one transaction), then polls each worker's ``/faq/{id}`` every 100 ms
  until it answers 200: the time from the commit to the first 200, per worker and edit.
  Target: every worker within 5 s.
* search during a rebuild: one worker answers ``/api/faq/search`` for a pool of real
  questions (2 clients in a loop). Idle: for ``--idle-seconds``. Rebuild: after each of
  ``--rebuilds`` edits, the requests sent between the commit and the moment the worker
  serves the edit (which includes the rebuild in its worker thread). p50/p95/p99 of both,
  from the same run, and the rebuild time measured in-process at the same size (cold, and
  after an edit with the previous build's analyses kept).

This is a script, not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faq_bench import ROOT, build_entries, machine_info, percentile, read_dev_queries
from http_bench import FALLBACK_QUERIES, HOST, Server, free_port, search_path

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
SIZE = 1_000
TARGET_S = 5.0
# The line a worker logs after swapping in a rebuilt index (helpdesk.faq_service).
REBUILD_LOGGED = re.compile(r"knowledge base loaded: \d+ entries \(version \d+\) in ([0-9.]+) s")
# Polling is itself load on the workers (each poll renders a page): 10 per second.
POLL_S = 0.1


class Worker(Server):
    """``main.py serve`` over a shared database and data folder."""

    def __init__(self, var_dir: Path, port: int, env: dict[str, str]) -> None:
        super().__init__(var_dir, port)
        self.env = env

    def start(self, timeout: float = 120.0) -> None:
        env = {**os.environ, **self.env, "HELPDESK_VAR_DIR": str(self.var_dir)}
        command = [sys.executable, "main.py", "serve", "--host", HOST, "--port", str(self.port)]
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        url = f"http://{HOST}:{self.port}{search_path('送料')}"
        with httpx.Client(timeout=5.0) as client:
            while time.perf_counter() - started < timeout:
                if self.process.poll() is not None:
                    raise RuntimeError(f"worker exited early:\n{self.log()}")
                try:
                    if client.get(url).status_code == 200:
                        self.ready_s = time.perf_counter() - started
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker not ready after {timeout:g} s:\n{self.log()}")

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"


def make_data(folder: Path, size: int = SIZE) -> Path:
    """A data folder with the shop's policy and synonyms and ``size`` entries."""
    from faq.kb import dump_entries

    data = folder / "data"
    shutil.copytree(ROOT / "data", data)
    for path in (data / "faq").glob("*.toml"):
        path.unlink()
    entries = build_entries(size)
    by_category: dict[str | None, list[Any]] = {}
    for entry in entries:
        by_category.setdefault(entry.category, []).append(entry)
    for number, (category, members) in enumerate(by_category.items()):
        (data / "faq" / f"part-{number:02d}.toml").write_text(
            dump_entries(members, category=category), encoding="utf-8"
        )
    return data


async def reset_database(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from helpdesk.db import async_url

    engine = create_async_engine(async_url(url))
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


class Editor:
    """Saves entries as the console does, in the benchmark's own process."""

    def __init__(self, url: str, data: Path) -> None:
        from helpdesk import db
        from helpdesk.kb_store import KnowledgeBaseStore

        self.engine = db.create_engine(url)
        self.store = KnowledgeBaseStore(db.session_factory(self.engine), data)
        self.agent: Any = None
        self.number = 0

    async def start(self) -> None:
        from helpdesk.models import Agent, AgentRole

        async with self.store.sessions() as session:
            agent = Agent(email="bench@example.jp", name="ベンチ", role=AgentRole.admin)
            session.add(agent)
            await session.commit()
            await session.refresh(agent)
            self.agent = agent

    async def edit(self) -> str:
        """Save a new entry; returns its id once committed."""
        from helpdesk.kb_store import EntryForm

        self.number += 1
        kb = await self.store.load()
        category = kb.live_categories()[0].key
        entry_id = f"bench-edit-{self.number}"
        form = EntryForm(
            id=entry_id,
            question=f"特注のキーホルダー{self.number}番は作れますか？",
            category=category,
            answer="申し訳ございませんが、特注品は承っておりません。",
        )
        saved = await self.store.save_entry(form, agent=self.agent, kb=kb, new=True, base=None)
        assert saved.ok, saved.problems
        return entry_id

    async def close(self) -> None:
        await self.engine.dispose()


async def served_after(client: httpx.AsyncClient, worker: Worker, entry_id: str) -> float:
    """Seconds until ``worker`` serves the entry (polled every ``POLL_S``)."""
    started = time.perf_counter()
    while True:
        response = await client.get(f"{worker.base}/faq/{entry_id}")
        if response.status_code == 200:
            return time.perf_counter() - started
        if time.perf_counter() - started > 60:
            raise RuntimeError(f"{worker.base} did not serve {entry_id} within 60 s")
        await asyncio.sleep(POLL_S)


async def propagation(editor: Editor, workers: list[Worker], edits: int) -> dict[str, Any]:
    delays: list[list[float]] = [[] for _ in workers]
    async with httpx.AsyncClient(timeout=10.0) as client:
        for _ in range(edits):
            entry_id = await editor.edit()
            found = await asyncio.gather(*(served_after(client, w, entry_id) for w in workers))
            for index, seconds in enumerate(found):
                delays[index].append(seconds)
            await asyncio.sleep(0.5)  # not in step with the workers' checks
    every = [max(pair) for pair in zip(*delays, strict=True)]
    return {
        "edits": edits,
        "per_worker_s": [
            {
                "median": round(statistics.median(d), 3),
                "max": round(max(d), 3),
            }
            for d in delays
        ],
        "all_workers_median_s": round(statistics.median(every), 3),
        "all_workers_max_s": round(max(every), 3),
        "within_target": sum(s <= TARGET_S for s in every),
    }


def summary(samples_ns: list[int]) -> dict[str, Any]:
    ordered = sorted(samples_ns)
    ms = lambda v: round(v / 1e6, 2)  # noqa: E731
    return {
        "n": len(ordered),
        "p50_ms": ms(percentile(ordered, 50)),
        "p95_ms": ms(percentile(ordered, 95)),
        "p99_ms": ms(percentile(ordered, 99)),
        "max_ms": ms(ordered[-1]) if ordered else 0.0,
    }


async def search_load(
    worker: Worker, queries: list[str], stop: asyncio.Event, sink: list[tuple[float, int]]
) -> None:
    """Search in a loop until ``stop``; (start time, latency ns) per request."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        index = 0
        while not stop.is_set():
            query = queries[index % len(queries)]
            index += 1
            started = time.perf_counter()
            begin = time.perf_counter_ns()
            response = await client.get(f"{worker.base}{search_path(query)}")
            elapsed = time.perf_counter_ns() - begin
            if response.status_code != 200:
                raise RuntimeError(f"search answered {response.status_code}")
            sink.append((started, elapsed))


async def rebuild_cost(
    editor: Editor, worker: Worker, queries: list[str], idle_s: float, rebuilds: int
) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    clients = [asyncio.create_task(search_load(worker, queries, stop, samples)) for _ in range(2)]
    await asyncio.sleep(1.0)  # warm up
    samples.clear()
    idle_start = time.perf_counter()
    await asyncio.sleep(idle_s)
    idle_end = time.perf_counter()
    windows: list[tuple[float, float]] = []
    async with httpx.AsyncClient(timeout=10.0) as client:
        for _ in range(rebuilds):
            entry_id = await editor.edit()
            start = time.perf_counter()
            await served_after(client, worker, entry_id)
            windows.append((start, time.perf_counter()))
            await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*clients)
    idle = [ns for at, ns in samples if idle_start <= at < idle_end]
    during = [ns for at, ns in samples if any(a <= at < b for a, b in windows)]
    return {
        "idle": summary(idle),
        "during_rebuild": summary(during),
        "windows_s": [round(b - a, 3) for a, b in windows],
    }


def rebuild_seconds(data: Path, size: int, runs: int = 3) -> dict[str, Any]:
    """The index rebuild at this size, in-process, as the worker thread does it: cold
    (nothing analyzed yet, as at startup) and after an edit of one entry (the analyses of
    the previous build kept: ``AnalysisMemo``), alternately, in the same run."""
    from faq.analysis import AnalysisMemo
    from faq.model import Entry
    from helpdesk.faq_service import _build_engine
    from helpdesk.kb_store import KbEntry, load_files, merge

    cold, warm = [], []
    for run in range(runs):
        memo = AnalysisMemo()
        started = time.perf_counter()
        kb = merge(load_files(data), (), 0)
        engine = _build_engine(kb, data, memo)
        cold.append(time.perf_counter() - started)
        assert len(engine.entries) == size
        extra = Entry(
            id=f"bench-warm-{run}",
            question="特注のキーホルダーは作れますか？",
            answer="申し訳ございませんが、特注品は承っておりません。",
            category=kb.live_categories()[0].key,
        )
        kb.entries[extra.id] = KbEntry(extra, "published", None)
        started = time.perf_counter()
        engine = _build_engine(kb, data, memo)
        warm.append(time.perf_counter() - started)
        assert len(engine.entries) == size + 1
    return {
        "runs": runs,
        "cold_median_s": round(statistics.median(cold), 3),
        "after_edit_median_s": round(statistics.median(warm), 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kb-reload-") as tmp:
        folder = Path(tmp)
        data = make_data(folder, args.size)
        await reset_database(args.database_url)
        env = {
            "HELPDESK_DATABASE_URL": args.database_url,
            "HELPDESK_DATA_DIR": str(data),
            "HELPDESK_SECRET_KEY": "bench-secret-key-not-for-production",
        }
        workers = []
        for number in range(2):
            var = folder / f"var{number}"
            var.mkdir()
            workers.append(Worker(var, free_port(), env))
        workers[0].start()  # migrates the database first
        workers[1].start()
        editor = Editor(args.database_url, data)
        try:
            await editor.start()
            spread = await propagation(editor, workers, args.edits)
            queries = [q for q, _ in read_dev_queries()] or list(FALLBACK_QUERIES)
            cost = await rebuild_cost(editor, workers[0], queries, args.idle_seconds, args.rebuilds)
        finally:
            await editor.close()
            for worker in workers:
                worker.stop()
            rebuilds = [
                float(seconds)
                for worker in workers
                for seconds in REBUILD_LOGGED.findall(worker.log(tail=10_000))
            ]
        return {
            "machine": machine_info(),
            "entries": args.size,
            "check_interval_s": 1.0,
            "propagation": spread,
            "search_during_rebuild": cost,
            "rebuild_in_process": rebuild_seconds(data, args.size),
            "rebuild_in_workers_s": {
                "n": len(rebuilds),
                "median": round(statistics.median(rebuilds), 3) if rebuilds else None,
                "max": round(max(rebuilds), 3) if rebuilds else None,
            },
        }


def markdown(report: dict[str, Any]) -> str:
    spread = report["propagation"]
    cost = report["search_during_rebuild"]
    lines = [
        f"Edits served by both workers ({report['entries']:,} entries, PostgreSQL, check "
        f"every {report['check_interval_s']:g} s), {spread['edits']} edits: median "
        f"{spread['all_workers_median_s']} s, max {spread['all_workers_max_s']} s; "
        f"{spread['within_target']}/{spread['edits']} within {TARGET_S:g} s.",
        "",
        "| `/api/faq/search` on one worker | n | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (("idle", "idle"), ("during a rebuild", "during_rebuild")):
        row = cost[key]
        lines.append(
            f"| {name} | {row['n']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} "
            f"| {row['max_ms']} |"
        )
    lines.append("")
    rebuild = report["rebuild_in_process"]
    lines.append(
        f"Index rebuild at {report['entries']:,} entries, in-process (median of "
        f"{rebuild['runs']}): {rebuild['after_edit_median_s']} s after an edit (analyses "
        f"kept), {rebuild['cold_median_s']} s cold (startup). In the workers, as they logged "
        f"it (read, merge, build, swap): median {report['rebuild_in_workers_s']['median']} s, "
        f"max {report['rebuild_in_workers_s']['max']} s over {report['rebuild_in_workers_s']['n']}."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "HELPDESK_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/madoguchi_kbedit"
        ),
        help="a scratch PostgreSQL database (its schema is dropped)",
    )
    parser.add_argument("--size", type=int, default=SIZE, help="entries (default 1,000)")
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--rebuilds", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    name = "kb_reload.json" if args.size == SIZE else f"kb_reload_{args.size}.json"
    (RESULTS / name).write_text(
        json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
