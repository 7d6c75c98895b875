#!/usr/bin/env python3
"""Benchmark of the admins' insights page at 1,000 and 100,000 tickets, SQLite and PostgreSQL.

Run from the repository root::

    /work/main/.venv/bin/python bench/insights_bench.py
    /work/main/.venv/bin/python bench/insights_bench.py --postgres postgresql://postgres@127.0.0.1/madoguchi_insights
    /work/main/.venv/bin/python bench/insights_bench.py --requests 20 --sizes 1000 10000

How: the ASGI app in process through ``httpx.ASGITransport`` (no uvicorn: the page's own
cost, without the network stack), with a logged-in admin (login form, session cookie, the
real middleware). Per backend and size, a fresh database (SQLite file in a temporary
folder; the PostgreSQL database given is emptied, ``DROP SCHEMA public CASCADE``) migrated
by the app, then bulk-inserted rows: tickets spread evenly over the last 730 days (the
same span for both sizes, so the default 30-day page covers 100x more tickets at 100,000:
the hard case), 95 % first-replied after a random 10 min to 3 business days (the last two
days' tickets not replied: the overdue ones), one in ten sent after FAQ suggestions (the
``deflection_shown`` event), one CSAT survey per three tickets, as many FAQ gaps as
tickets (Zipf over 300 questions, with variants in width and punctuation) and a
``faq_daily`` row per day.

Measured: the first page (which rolls up the closed days of the range: a one-time cost),
then ``--requests`` pages of the default range (30 days) and of a 365-day range, each
timed from request to full body; p50 and p95 in ms. The ratio 100,000 / 1,000 of the p95
is the target (at most 2x, same run). ``--explain`` prints PostgreSQL's plans of the
page's queries at the largest size. Results: Markdown on stdout, JSON in
``bench/results/insights.json``.

This is a script, not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from helpdesk.app import create_app  # noqa: E402
from helpdesk.db import async_url  # noqa: E402
from helpdesk.models import (  # noqa: E402
    CsatResponse,
    Customer,
    FaqDaily,
    FaqGap,
    Ticket,
    TicketEvent,
)
from helpdesk.settings import Settings  # noqa: E402
from tests.helpers import logged_in_client  # noqa: E402

SPAN_DAYS = 730
KINDS = ("defect", "wrong_item", "exchange", "inquiry")
QUESTIONS = [f"質問{n}について教えてください" for n in range(300)]
CHUNK = 5000


def _variant(rng: random.Random, query: str) -> str:
    return rng.choice(
        [query, query + "？", query + "?", " " + query, query.replace("質問", "質問 ")]
    )


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(async_url(url))
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def _fill(app: Any, size: int, now: datetime) -> float:
    """Bulk-insert ``size`` tickets and their companions; seconds taken."""
    started = time.perf_counter()
    helpdesk = app.state.helpdesk
    policy = helpdesk.faq.policy
    calendar = policy.support
    rng = random.Random(size)
    first = now - timedelta(days=SPAN_DAYS)
    async with helpdesk.sessions() as session:
        customers = [
            {"email": f"c{n}@example.jp", "name": f"客{n}", "created_at": first}
            for n in range(min(size, 2000))
        ]
        await session.execute(insert(Customer), customers)
        await session.commit()
        tickets, events, surveys = [], [], []
        for n in range(size):
            created = first + timedelta(seconds=SPAN_DAYS * 86400 * (n + rng.random()) / size)
            due = policy.first_reply_due(created)
            replied = None
            old = created < now - timedelta(days=2)
            if old and rng.random() < 0.95:
                waited = timedelta(minutes=rng.choice([10, 45, 90, 240, 420, 900, 1260]))
                replied = (
                    calendar.add_business_time(created, waited) if calendar else created + waited
                )
            kind = KINDS[n % 4]
            tickets.append(
                {
                    "id": n + 1,
                    "reference": f"HD-B-{n + 1:07d}",
                    "token_nonce": secrets.token_hex(8),
                    "kind": kind,
                    # Never answered: closed (spam, duplicates), but the last two days'.
                    "status": "resolved" if replied else "closed" if old else "new",
                    "priority": "normal",
                    "customer_id": 1 + n % len(customers),
                    "customer_name": "客",
                    "late": False,
                    "subject": "お問い合わせ",
                    "first_reply_due_at": due,
                    "first_replied_at": replied,
                    "created_at": created,
                    "updated_at": replied or created,
                }
            )
            if n % 10 == 0:
                events.append(
                    {
                        "ticket_id": n + 1,
                        "kind": "deflection_shown",
                        "actor": "system",
                        "data": '{"ids": ["x"]}',
                        "created_at": created,
                    }
                )
            if replied and n % 3 == 0:
                surveys.append(
                    {
                        "ticket_id": n + 1,
                        "resolution": 1,
                        "agent_id": None,
                        "kind": kind,
                        "rating": rng.choice(["good", "good", "improve", None]),
                        "mailed": True,
                        "created_at": replied + timedelta(hours=1),
                    }
                )
        for model, rows in ((Ticket, tickets), (TicketEvent, events), (CsatResponse, surveys)):
            for start in range(0, len(rows), CHUNK):
                await session.execute(insert(model), rows[start : start + CHUNK])
        gaps = []
        for n in range(size):
            moment = first + timedelta(seconds=SPAN_DAYS * 86400 * (n + rng.random()) / size)
            query = QUESTIONS[min(int(rng.paretovariate(1.2)) - 1, len(QUESTIONS) - 1)]
            gaps.append({"query": _variant(rng, query), "confidence": 0.2, "created_at": moment})
        for start in range(0, len(gaps), CHUNK):
            await session.execute(insert(FaqGap), gaps[start : start + CHUNK])
        per_day = max(size // SPAN_DAYS, 1)
        days = [
            {
                "day": (now - timedelta(days=d)).astimezone(policy.timezone).date(),
                "asked": per_day * 5,
                "answered": per_day * 4,
                "suggested": per_day,
            }
            for d in range(SPAN_DAYS + 1)
        ]
        await session.execute(insert(FaqDaily), days)
        await session.commit()
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("ANALYZE"))
            await session.commit()
    return time.perf_counter() - started


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def _timed(http: httpx.AsyncClient, path: str, params: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await http.get(path, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text[:300]
    return elapsed


async def _explain(app: Any) -> None:
    day = "CURRENT_DATE - 30"
    since = "now() - interval '1 day'"
    queries = {
        "rolled tickets of 30 days": f"SELECT * FROM insight_tickets WHERE day >= {day}",
        "rolled reply times of 30 days": (
            "SELECT kind, minutes, sum(count) FROM insight_reply_time "
            f"WHERE day >= {day} GROUP BY kind, minutes"
        ),
        "rolled gap groups of 30 days": (
            f"SELECT key, sum(count) FROM insight_gap WHERE day >= {day} "
            "GROUP BY key ORDER BY sum(count) DESC LIMIT 10"
        ),
        "today's tickets (live)": (
            f"SELECT created_at, kind FROM ticket WHERE created_at >= {since}"
        ),
        "today's first replies (live)": (
            "SELECT kind, created_at, first_replied_at, first_reply_due_at FROM ticket "
            f"WHERE first_replied_at >= {since} AND first_replied_at < now()"
        ),
        "today's gaps (live)": f"SELECT query, created_at FROM faq_gap WHERE created_at >= {since}",
        "overdue now": (
            "SELECT count(*) FROM ticket WHERE first_replied_at IS NULL "
            "AND first_reply_due_at IS NOT NULL AND status IN ('new', 'open', 'pending') "
            "AND first_reply_due_at <= now()"
        ),
        "CSAT by kind (30 days)": (
            "SELECT kind, count(*) FROM csat_response "
            "WHERE created_at >= now() - interval '30 days' GROUP BY kind"
        ),
    }
    async with app.state.helpdesk.sessions() as session:
        for name, sql in queries.items():
            plan = await session.execute(text("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql))
            print(f"\n-- {name}\n" + "\n".join(row[0] for row in plan.all()))


async def _ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` when it does not exist."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = create_async_engine(
        async_url(parsed.set(database="postgres").render_as_string(hide_password=False)),
        isolation_level="AUTOCOMMIT",
    )
    async with admin.connect() as connection:
        found = await connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
        )
        if found.first() is None:
            await connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    await admin.dispose()


async def _app(url: str | None, var: Path) -> Any:
    if url:
        await _ensure_database(url)
        await _reset_postgres(url)
    settings = Settings(
        _env_file=None,
        var_dir=var,
        database_url=url or f"sqlite:///{var / 'helpdesk.db'}",
        secret_key="bench-secret-key-not-for-production",
        base_url="http://testserver",
    )
    app = create_app(settings)
    await app.state.helpdesk.startup()
    return app


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(_percentile(values, 0.95), 1),
    }


async def run(
    backend: str, urls: list[str | None], sizes: list[int], requests: int, explain: bool
) -> list[dict[str, Any]]:
    """Both sizes side by side, their requests interleaved (small, large, small, large ...):
    the shared machine's noise falls on both alike."""
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        apps = []
        try:
            for index, (size, url) in enumerate(zip(sizes, urls, strict=True)):
                app = await _app(url, Path(folder) / f"var{index}")
                apps.append(app)
                now = datetime.now(UTC)
                fill = await _fill(app, size, now)
                results.append({"backend": backend, "tickets": size, "fill_s": round(fill, 1)})
            today = apps[0].state.helpdesk.faq.policy.local(datetime.now(UTC)).date()
            year = {"from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat()}
            pages = {
                "month": ("/console/insights", {}),
                "year": ("/console/insights", year),
                "csv": ("/console/insights/daily.csv", {}),
            }
            async with contextlib.AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(logged_in_client(app, admin=True))
                    for app in apps
                ]
                for result, http in zip(results, clients, strict=True):
                    result["first_page_ms"] = round(await _timed(http, *pages["month"]), 1)
                    result["first_year_page_ms"] = round(await _timed(http, *pages["year"]), 1)
                timings: list[dict[str, list[float]]] = [{name: [] for name in pages} for _ in apps]
                for _ in range(requests):
                    for name, (path, params) in pages.items():
                        for index, http in enumerate(clients):
                            timings[index][name].append(await _timed(http, path, params))
                for result, timed in zip(results, timings, strict=True):
                    for name, values in timed.items():
                        result[name] = _stats(values)
            if explain and backend == "postgresql":
                await _explain(apps[-1])
        finally:
            for app in apps:
                await app.state.helpdesk.shutdown()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--postgres",
        help="a PostgreSQL URL; databases <URL>_<size> are made (and emptied!) per size",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    backends: list[tuple[str, list[str | None]]] = [("sqlite", [None] * len(sizes))]
    if args.postgres:
        urls: list[str | None] = [f"{args.postgres}_{size}" for size in sizes]
        backends.append(("postgresql", urls))
    results = []
    for backend, backend_urls in backends:
        found = await run(backend, backend_urls, sizes, args.requests, args.explain)
        for result in found:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        results += found
    print(
        "\n| backend | tickets | fill s | first page ms (30 / 365 days) "
        "| 30 days p50 / p95 ms | 365 days p50 / p95 ms | CSV p50 / p95 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['backend']} | {r['tickets']:,} | {r['fill_s']} | "
            f"{r['first_page_ms']} / {r['first_year_page_ms']} | "
            f"{r['month']['p50_ms']} / {r['month']['p95_ms']} | "
            f"{r['year']['p50_ms']} / {r['year']['p95_ms']} | "
            f"{r['csv']['p50_ms']} / {r['csv']['p95_ms']} |"
        )
    print()
    for backend, _ in backends:
        small, large = (
            next(r for r in results if r["backend"] == backend and r["tickets"] == s)
            for s in (sizes[0], sizes[-1])
        )
        for name in ("month", "year", "csv"):
            ratio = large[name]["p95_ms"] / small[name]["p95_ms"]
            print(
                f"{backend} {name} p95: {large['tickets']:,} / {small['tickets']:,} "
                f"tickets = {ratio:.2f}x"
            )
    out = ROOT / "bench" / "results" / "insights.json"
    machine = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "requests": args.requests,
    }
    report = {"machine": machine, "results": results}
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
