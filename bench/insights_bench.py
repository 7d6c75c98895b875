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
import json
import random
import secrets
import statistics
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
            if created < now - timedelta(days=2) and rng.random() < 0.95:
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
                    "status": "resolved" if replied else "new",
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
    queries = {
        "rolled tickets of 30 days": "SELECT * FROM insight_tickets WHERE day >= CURRENT_DATE - 30",
        "rolled reply times of 30 days": "SELECT kind, minutes, sum(count) FROM insight_reply_time "
        "WHERE day >= CURRENT_DATE - 30 GROUP BY kind, minutes",
        "rolled gap groups of 30 days": "SELECT key, sum(count) FROM insight_gap WHERE day >= "
        "CURRENT_DATE - 30 GROUP BY key ORDER BY sum(count) DESC LIMIT 10",
        "today's tickets (live)": "SELECT created_at, kind FROM ticket WHERE created_at >= now() - interval '1 day'",
        "today's first replies (live)": "SELECT kind, created_at, first_replied_at, first_reply_due_at "
        "FROM ticket WHERE first_replied_at >= now() - interval '1 day' AND first_replied_at < now()",
        "today's gaps (live)": "SELECT query, created_at FROM faq_gap WHERE created_at >= now() - interval '1 day'",
        "overdue now": "SELECT count(*) FROM ticket WHERE first_replied_at IS NULL AND first_reply_due_at "
        "IS NOT NULL AND status IN ('new','open','pending') AND first_reply_due_at <= now()",
        "CSAT by kind (30 days)": "SELECT kind, count(*) FROM csat_response WHERE created_at >= now() - "
        "interval '30 days' GROUP BY kind",
    }
    async with app.state.helpdesk.sessions() as session:
        for name, sql in queries.items():
            plan = await session.execute(text("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql))
            print(f"\n-- {name}\n" + "\n".join(row[0] for row in plan.all()))


async def run(
    backend: str, url: str | None, size: int, requests: int, explain: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        var = Path(folder) / "var"
        if url:
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
        try:
            now = datetime.now(UTC)
            fill = await _fill(app, size, now)
            today = app.state.helpdesk.faq.policy.local(now).date()
            year = {"from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat()}
            async with logged_in_client(app, admin=True) as admin:
                cold = await _timed(admin, "/console/insights", {})
                cold_year = await _timed(admin, "/console/insights", year)
                month = [await _timed(admin, "/console/insights", {}) for _ in range(requests)]
                long = [await _timed(admin, "/console/insights", year) for _ in range(requests)]
                csv = [
                    await _timed(admin, "/console/insights/daily.csv", {}) for _ in range(requests)
                ]
            if explain:
                await _explain(app)
        finally:
            await app.state.helpdesk.shutdown()
    return {
        "backend": backend,
        "tickets": size,
        "fill_s": round(fill, 1),
        "first_page_ms": round(cold, 1),
        "first_year_page_ms": round(cold_year, 1),
        "month_p50_ms": round(statistics.median(month), 1),
        "month_p95_ms": round(_percentile(month, 0.95), 1),
        "year_p50_ms": round(statistics.median(long), 1),
        "year_p95_ms": round(_percentile(long, 0.95), 1),
        "csv_p95_ms": round(_percentile(csv, 0.95), 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL (its schema is emptied!)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.postgres:
        backends.append(("postgresql", args.postgres))
    results = []
    for backend, url in backends:
        for size in args.sizes:
            explain = args.explain and backend == "postgresql" and size == max(args.sizes)
            result = await run(backend, url, size, args.requests, explain)
            print(json.dumps(result), flush=True)
            results.append(result)
    print(
        "\n| backend | tickets | fill s | first page ms | 30 days p50 / p95 ms | 365 days p50 / p95 ms | CSV p95 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['backend']} | {r['tickets']:,} | {r['fill_s']} | {r['first_page_ms']} | "
            f"{r['month_p50_ms']} / {r['month_p95_ms']} | {r['year_p50_ms']} / {r['year_p95_ms']} | {r['csv_p95_ms']} |"
        )
    for backend, _ in backends:
        small, large = (
            next(r for r in results if r["backend"] == backend and r["tickets"] == s)
            for s in (min(args.sizes), max(args.sizes))
        )
        for key in ("month_p95_ms", "year_p95_ms"):
            print(
                f"{backend} {key}: {large['tickets']:,} / {small['tickets']:,} = "
                f"{large[key] / small[key]:.2f}x"
            )
    out = ROOT / "bench" / "results" / "insights.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
