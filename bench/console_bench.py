#!/usr/bin/env python3
"""The console's queue page and ticket search under the real server (issue 10's target).

Run from the repository root::

    .venv/bin/python bench/console_bench.py                      # SQLite, and PostgreSQL
    .venv/bin/python bench/console_bench.py --requests 100       # quicker
    .venv/bin/python bench/console_bench.py --databases sqlite   # SQLite only

PostgreSQL is used when ``--postgres-url`` (default
``postgresql://postgres@127.0.0.1/madoguchi_queue_bench``, created if missing) answers;
its ``public`` schema is dropped and made again for each size.

For each database, two data sets are bulk-inserted straight into fresh databases (the
migrations first, then plain INSERTs, search documents included): **small**, 100 tickets and
1,000 messages, and **large**, 10,000 tickets and 100,000 messages. A shop's open work does
not grow with its history: in both, the newest 60 tickets are unfinished (new, open,
pending; some assigned to the benchmark's agent, some overdue), every older one is resolved
or closed, so the default queue shows a full page of 50 at both sizes. Names come from a
pool of 40 family names; messages from ~30 sentences of a phone-case shop's support, one of
which (「傷」) is in ~5% of tickets, and each ticket has an order number of its own.

Both servers (``main.py serve``: uvicorn on 127.0.0.1, each on its own port and database)
run at the same time, an agent logged in to each; the load alternates request by request
between the small and the large one (one client, one request at a time), so the noise of
this shared 2-core machine falls on both alike. Each URL is requested ``--requests`` times
per size after a warm-up; p50/p95 are reported, and the large/small ratio of the p50s
(target: at most 2).

The queries behind each page are captured (the SQL the app ran) and run again under
``EXPLAIN`` (``EXPLAIN QUERY PLAN`` on SQLite) on the large database: a plan that reads the
whole ticket or message table (``SCAN ticket`` without an index on SQLite, ``Seq Scan`` on
a big table on PostgreSQL) is flagged.

This is a script, not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import event, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from faq_bench import machine_info, percentile  # noqa: E402
from http_bench import HOST, Server, free_port  # noqa: E402

from helpdesk import db  # noqa: E402
from helpdesk.agents.accounts import AgentAccounts  # noqa: E402
from helpdesk.models import Customer, Message, Ticket  # noqa: E402
from helpdesk.tickets import search  # noqa: E402
from helpdesk.tickets.queue import parse_filters, queue_page  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PASSWORD = "correct horse battery staple"
AGENT = "bench@example.jp"
ACTIVE_TICKETS = 60
SIZES = {"small": (100, 10), "large": (10_000, 10)}  # tickets, messages per ticket
FAMILY = (
    "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 "
    "林 斎藤 清水 山崎 森 池田 橋本 阿部 石川 山下 中島 石井 小川 前田 岡田 長谷川 藤田 "
    "後藤 近藤 村上 遠藤 青木 坂本"
).split()
GIVEN = "花子 太郎 一郎 陽子 健太 美咲 翔太 由美 大輔 さくら".split()
CUSTOMER_LINES = (
    "注文した商品がまだ届きません。",
    "届いたケースの角に傷がありました。",  # the word searched: ~5% of tickets hold it
    "機種を間違えて注文してしまいました。交換できますか。",
    "カラーをブラックからネイビーに変更したいです。",
    "領収書を発行していただけますか。",
    "GMO後払いの請求書が届きません。",
    "配送先の住所を変更したいのですが、間に合いますか。",
    "iPhone 15 Pro に対応していますか。",
    "ストラップホールの位置を教えてください。",
    "ギフト包装はできますか。",
    "返品の送料はどちらが負担しますか。",
    "ありがとうございます。よろしくお願いいたします。",
)
AGENT_LINES = (
    "お問い合わせありがとうございます。確認いたします。",
    "ご不便をおかけして申し訳ございません。交換品を発送いたします。",
    "追跡番号をお送りいたしますので、配送状況をご確認ください。",
    "ご注文内容を変更いたしました。",
    "領収書はマイページからダウンロードいただけます。",
    "返品の手続きをご案内いたします。",
    "恐れ入りますが、写真をお送りいただけますでしょうか。",
)
SCRATCH = "届いたケースの角に傷がありました。"


@dataclass
class DataSet:
    name: str
    tickets: int
    messages: int
    url: str
    probe: dict[str, str] = field(default_factory=dict)  # values the URLs search for


def pg_available(url: str) -> bool:
    base, _, name = url.rpartition("/")
    try:
        subprocess.run(
            ["psql", f"{base}/postgres", "-qc", f"CREATE DATABASE {name}"],
            capture_output=True,
            timeout=20,
            check=False,
        )
        done = subprocess.run(
            ["psql", url, "-qc", "SELECT 1"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


async def reset_postgres(url: str) -> None:
    engine = db.create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def _ticket_lines(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """(author, body) of a ticket's messages: the customer first, then in turns."""
    lines = []
    for index in range(count):
        if index % 2 == 0:
            body = rng.choice(CUSTOMER_LINES[2:]) + rng.choice(("", "お手数ですが", "急ぎです。"))
            lines.append(("customer", body))
        else:
            lines.append(("agent", rng.choice(AGENT_LINES)))
    return lines


async def populate(data: DataSet, *, seed: int = 7) -> None:
    """Migrate a fresh database and bulk-insert the tickets, messages and search documents."""
    engine = db.create_engine(data.url)
    await db.migrate(engine)
    sessions = db.session_factory(engine)
    accounts = AgentAccounts(sessions)
    agent, token = await accounts.add(AGENT, "ベンチ 担当")
    await accounts.set_password(token, PASSWORD, client="127.0.0.1")
    assert agent.id is not None
    rng = random.Random(seed)
    terms_cache: dict[str, set[str]] = {}

    def terms_of(line: str) -> set[str]:
        if line not in terms_cache:
            terms_cache[line] = search.text_terms(line)
        return terms_cache[line]

    now = datetime.now(UTC)
    start = now - timedelta(minutes=30 * data.tickets)
    customers: list[dict[str, Any]] = []
    tickets: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    documents: list[tuple[int, list[str]]] = []
    per_ticket = data.messages // data.tickets
    for number in range(1, data.tickets + 1):
        created = start + timedelta(minutes=30 * number)
        name = f"{rng.choice(FAMILY)} {rng.choice(GIVEN)}"
        email = f"customer{number}@example.jp"
        order = f"A-{100000 + number * 7}"
        active = number > data.tickets - ACTIVE_TICKETS
        status = (
            rng.choice(("new", "open", "pending")) if active else rng.choice(("resolved", "closed"))
        )
        lines = _ticket_lines(rng, per_ticket)
        if rng.random() < 0.05:
            lines[0] = ("customer", SCRATCH)
        last_customer = created + timedelta(
            minutes=max(i for i, (a, _) in enumerate(lines) if a == "customer")
        )
        agent_turns = [i for i, (a, _) in enumerate(lines) if a == "agent"]
        last_reply = created + timedelta(minutes=agent_turns[-1]) if agent_turns else None
        customers.append({"id": number, "email": email, "name": name, "created_at": created})
        tickets.append(
            {
                "id": number,
                "reference": f"HD-26-{number:05d}",
                "token_nonce": "bench",
                "kind": rng.choice(("defect", "wrong_item", "exchange", "inquiry")),
                "status": status,
                "priority": "normal",
                "customer_id": number,
                "customer_name": name,
                "assignee_id": agent.id if active and number % 3 == 0 else None,
                "order_number": order,
                "late": rng.random() < 0.02,
                "subject": f"{order}のお問い合わせ",
                "first_reply_due_at": (
                    now - timedelta(hours=1)
                    if active and number % 5 == 0
                    else created + timedelta(days=1)
                ),
                "first_replied_at": None if active and number % 5 == 0 else last_reply,
                "last_customer_at": last_customer,
                "last_replied_at": last_reply,
                "spam": False,
                "created_at": created,
                "updated_at": created,
            }
        )
        terms = (
            search.identifier_terms(
                reference=f"HD-26-{number:05d}", order_number=order, email=email, name=name
            )
            | terms_of(name)
            | terms_of(f"{order}のお問い合わせ")
        )
        for index, (author, body) in enumerate(lines):
            messages.append(
                {
                    "ticket_id": number,
                    "author": author,
                    "author_name": name if author == "customer" else "ベンチ 担当",
                    "body": body,
                    "trust": "verified",
                    "created_at": created + timedelta(minutes=index),
                }
            )
            terms |= terms_of(body)
        documents.append((number, sorted(terms)))
    data.probe = {
        "order": tickets[len(tickets) // 3]["order_number"],
        "email": customers[len(customers) // 2]["email"],
        "family": "山田",
        "word": "傷",
        "page2_after": str(tickets[49]["id"]),
    }
    async with sessions() as session, session.begin():
        for table, rows in ((Customer, customers), (Ticket, tickets), (Message, messages)):
            for offset in range(0, len(rows), 5000):
                await session.execute(insert(table), rows[offset : offset + 5000])
        index = await search.session_index(session)
        for ticket_id, terms in documents:
            await index.replace(session, ticket_id=ticket_id, terms=terms)
        if engine.dialect.name == "postgresql":
            await session.execute(
                text("SELECT setval('ticket_id_seq', :n), setval('customer_id_seq', :n)"),
                {"n": data.tickets},
            )
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("COMMIT"))
            await connection.execute(text("VACUUM ANALYZE"))
        else:
            await connection.execute(text("ANALYZE"))
    await engine.dispose()


def scenarios(probe: dict[str, str]) -> dict[str, dict[str, str]]:
    """The pages measured: name → query string."""
    return {
        "queue (default)": {},
        "all statuses, oldest first": {"status": "all"},
        "all statuses, page 2 (keyset)": {"status": "all", "after": probe["page2_after"]},
        "mine": {"assignee": "mine"},
        "unassigned + waiting on customer": {"assignee": "unassigned", "waiting": "1"},
        "overdue": {"overdue": "1"},
        "search: order number": {"status": "all", "q": probe["order"]},
        "search: e-mail": {"status": "all", "q": probe["email"]},
        "search: family name (山田)": {"status": "all", "q": probe["family"]},
        "search: word in messages (傷)": {"status": "all", "q": probe["word"]},
    }


async def explain(data: DataSet) -> dict[str, list[str]]:
    """The plans of the SQL each page runs (captured from a real ``queue_page``)."""
    engine = db.create_engine(data.url)
    sessions = db.session_factory(engine)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    plans: dict[str, list[str]] = {}
    dialect = engine.dialect.name
    async with sessions() as session:
        agent_id = (
            await session.execute(text("SELECT id FROM agent WHERE email = :e"), {"e": AGENT})
        ).scalar_one()
    for name, params in scenarios(data.probe).items():
        filters, problems = parse_filters(params, agent_ids=[agent_id])
        assert not problems, problems
        terms = search.query_terms(filters.q) if filters.q else []
        captured.clear()
        async with sessions() as session:
            await queue_page(
                session, filters=filters, agent_id=agent_id, now=datetime.now(UTC), terms=terms
            )
        statements = list(captured)
        lines: list[str] = []
        async with engine.connect() as connection:
            for statement, values in statements:
                prefix = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
                found = await connection.exec_driver_sql(prefix + statement, values)
                rows = found.all()
                lines += [str(row[-1]) if dialect == "sqlite" else str(row[0]) for row in rows]
                lines.append("--")
        plans[name] = lines
    event.remove(engine.sync_engine, "before_cursor_execute", capture)
    await engine.dispose()
    return plans


async def query_times(sets: dict[str, DataSet], rounds: int) -> dict[str, dict[str, float]]:
    """p50 in ms of ``queue_page`` alone (the SQL, in-process, no HTTP or HTML), per page and
    size, the sizes alternating call by call."""
    engines = {name: db.create_engine(data.url) for name, data in sets.items()}
    factories = {name: db.session_factory(engine) for name, engine in engines.items()}
    agent_ids: dict[str, int] = {}
    for name, sessions in factories.items():
        async with sessions() as session:
            found = await session.execute(
                text("SELECT id FROM agent WHERE email = :e"), {"e": AGENT}
            )
            agent_ids[name] = found.scalar_one()
    result: dict[str, dict[str, float]] = {}
    for scenario in scenarios(sets["small"].probe):
        samples: dict[str, list[int]] = {name: [] for name in sets}
        for _ in range(rounds):
            for name, data in sets.items():
                params = scenarios(data.probe)[scenario]
                filters, _problems = parse_filters(params, agent_ids=[agent_ids[name]])
                started = time.perf_counter_ns()
                terms = search.query_terms(filters.q) if filters.q else []
                async with factories[name]() as session:
                    await queue_page(
                        session,
                        filters=filters,
                        agent_id=agent_ids[name],
                        now=datetime.now(UTC),
                        terms=terms,
                    )
                samples[name].append(time.perf_counter_ns() - started)
        result[scenario] = {
            name: percentile(sorted(values), 50) / 1e6 for name, values in samples.items()
        }
    for engine in engines.values():
        await engine.dispose()
    return result


def scans(plan: Sequence[str], dialect: str) -> list[str]:
    """Lines of a plan that read a whole big table."""
    if dialect == "sqlite":
        return [
            line
            for line in plan
            if line.startswith("SCAN ")
            and (line.split()[1] in ("ticket", "message", "customer"))
            and "USING" not in line
        ]
    return [
        line
        for line in plan
        if "Seq Scan on" in line and any(f" {t} " in f"{line} " for t in ("ticket", "message"))
    ]


class AgentClient:
    """An agent logged in to one server (its own cookies)."""

    def __init__(self, port: int) -> None:
        self.http = httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30.0)

    def log_in(self) -> None:
        page = self.http.get("/console/login").text
        marker = 'name="csrf_token" value="'
        token = page[page.index(marker) + len(marker) :].split('"', 1)[0]
        response = self.http.post(
            "/console/login", data={"email": AGENT, "password": PASSWORD, "csrf_token": token}
        )
        if response.status_code != 303:
            raise RuntimeError(f"login failed: {response.status_code} {response.text[:300]}")

    def get(self, path: str) -> tuple[int, int, int]:
        """(status, elapsed ns, rows shown)."""
        started = time.perf_counter_ns()
        response = self.http.get(path)
        elapsed = time.perf_counter_ns() - started
        return response.status_code, elapsed, response.text.count('class="ticket-row')


def measure(
    clients: dict[str, AgentClient], paths: dict[str, str], requests: int, warmup: int
) -> dict[str, Any]:
    samples: dict[str, list[int]] = {name: [] for name in clients}
    shown: dict[str, int] = {}
    for round_ in range(warmup + requests):
        order = list(clients.items()) if round_ % 2 == 0 else list(reversed(clients.items()))
        for name, client in order:
            status, elapsed, rows = client.get(paths[name])
            if status != 200:
                raise RuntimeError(f"{paths[name]} on {name}: HTTP {status}")
            shown[name] = rows
            if round_ >= warmup:
                samples[name].append(elapsed)
    result: dict[str, Any] = {}
    for name, values in samples.items():
        ordered = sorted(values)
        result[name] = {
            "p50_ms": percentile(ordered, 50) / 1e6,
            "p95_ms": percentile(ordered, 95) / 1e6,
            "rows": shown[name],
        }
    result["ratio_p50"] = result["large"]["p50_ms"] / result["small"]["p50_ms"]
    result["ratio_p95"] = result["large"]["p95_ms"] / result["small"]["p95_ms"]
    return result


class ConsoleServer(Server):
    """``main.py serve`` on a database of our own (``http_bench.Server`` uses SQLite)."""

    def __init__(self, var_dir: Path, port: int, database_url: str) -> None:
        super().__init__(var_dir, port)
        self.database_url = database_url

    def start(self, timeout: float = 120.0) -> None:
        env = dict(os.environ)
        env["HELPDESK_VAR_DIR"] = str(self.var_dir)
        env["HELPDESK_DATABASE_URL"] = self.database_url
        command = [sys.executable, "main.py", "serve", "--host", HOST, "--port", str(self.port)]
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.app_dir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() - started < timeout:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{self.log()}")
                try:
                    if client.get(f"http://{HOST}:{self.port}/console/login").status_code == 200:
                        self.ready_s = time.perf_counter() - started
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:g} s:\n{self.log()}")


def start_server(data: DataSet, work: Path) -> Server:
    var_dir = work / data.name / "server"
    var_dir.mkdir(parents=True, exist_ok=True)
    server = ConsoleServer(var_dir, free_port(), data.url)
    server.start()
    return server


async def run_database(dialect: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sets: dict[str, DataSet] = {}
    for name, (tickets, per_ticket) in SIZES.items():
        if dialect == "sqlite":
            url = f"sqlite:///{work / dialect / name / 'var' / 'helpdesk.db'}"
            (work / dialect / name / "var").mkdir(parents=True, exist_ok=True)
        else:
            url = args.postgres_url if name == "large" else args.postgres_url + "_small"
            pg_available(url)
            await reset_postgres(url)
        sets[name] = DataSet(f"{dialect}/{name}", tickets, tickets * per_ticket, url)
        started = time.perf_counter()
        await populate(sets[name])
        print(
            f"{dialect} {name}: {tickets} tickets loaded in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    plans = await explain(sets["large"])
    queries = await query_times(sets, args.query_rounds)
    servers = {name: start_server(data, work) for name, data in sets.items()}
    try:
        clients = {name: AgentClient(server.port) for name, server in servers.items()}
        for client in clients.values():
            client.log_in()
        results: dict[str, Any] = {}
        for scenario in scenarios(sets["small"].probe):
            paths = {
                name: "/console"
                + (
                    "?" + urlencode(scenarios(data.probe)[scenario])
                    if scenarios(data.probe)[scenario]
                    else ""
                )
                for name, data in sets.items()
            }
            results[scenario] = measure(clients, paths, args.requests, args.warmup)
            results[scenario]["query_p50_ms"] = queries[scenario]
            results[scenario]["plan_large"] = plans[scenario]
            results[scenario]["scans_large"] = scans(plans[scenario], dialect)
            print(f"  {scenario}: ratio {results[scenario]['ratio_p50']:.2f}", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
    return {
        "sizes": {n: {"tickets": d.tickets, "messages": d.messages} for n, d in sets.items()},
        "scenarios": results,
    }


def markdown(report: dict[str, Any]) -> str:
    out = [f"Console queue and search, {report['date']}, {report['machine'].get('cpu')}", ""]
    for dialect, found in report["databases"].items():
        sizes = found["sizes"]
        out += [
            f"### {dialect}: small = {sizes['small']['tickets']:,} tickets / "
            f"{sizes['small']['messages']:,} messages, large = {sizes['large']['tickets']:,} / "
            f"{sizes['large']['messages']:,}",
            "",
            "| page | rows small/large | small p50 / p95 ms | large p50 / p95 ms | "
            "ratio p50 (p95) | SQL alone p50 ms small / large | full scans (large) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in found["scenarios"].items():
            out.append(
                f"| {name} | {r['small']['rows']}/{r['large']['rows']} | "
                f"{r['small']['p50_ms']:.1f} / {r['small']['p95_ms']:.1f} | "
                f"{r['large']['p50_ms']:.1f} / {r['large']['p95_ms']:.1f} | "
                f"{r['ratio_p50']:.2f} ({r['ratio_p95']:.2f}) | "
                f"{r['query_p50_ms']['small']:.2f} / {r['query_p50_ms']['large']:.2f} | "
                f"{'; '.join(r['scans_large']) or 'none'} |"
            )
        out.append("")
    return "\n".join(out)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "requests": args.requests,
        "databases": {},
    }
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        for dialect in args.databases:
            if dialect == "postgresql" and not pg_available(args.postgres_url):
                print("PostgreSQL not reachable: skipped", file=sys.stderr)
                continue
            report["databases"][dialect] = await run_database(dialect, args, Path(tmp))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--query-rounds", type=int, default=100)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--postgres-url", default="postgresql://postgres@127.0.0.1/madoguchi_queue_bench"
    )
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
