#!/usr/bin/env python3
"""Production mode under load (issue 13): two workers, loopback only, bounded.

Part 1, **FAQ search on 2 workers**: ``GET /api/faq/search`` of ``main.py serve --workers 2``
beside a hello-world Starlette endpoint on 2 uvicorn workers and the bare engine endpoint
(``bench/faq_bare_app.py``) on 2 workers, in the same run; wrk, distinct queries in
rotation, phases alternating between the servers; requests/s and p50/p99 per server.

Part 2, **submissions with a worker killed**: ``serve --workers 2`` (PostgreSQL when
``--database-url`` is given, else SQLite) sending mail to a recording SMTP server on
loopback; ``--tickets`` API submissions (every fourth a defect with two photos, the rest
inquiries) from ``--clients`` concurrent clients, each with an ``Idempotency-Key`` and
retried on connection errors; half-way, the worker that leads (runs the outbox sender) is
killed with SIGKILL (uvicorn starts a new one). Meanwhile **agents reply by mail**
(``AgentReplies``): two registered agents read the new-ticket notifications that reach the
support inbox (the recording server) and answer every ``--reply-every``-th ticket by SMTP to
the app's receiver (``HELPDESK_INBOUND_SMTP_PORT``, in the leader), as a mail client would:
From the agent, To the notification's Reply-To (the agents' signed address), In-Reply-To and
References, a Japanese body, every second one with ``#status resolved``; 0-6 s after the
notification, so replies keep coming through the kill. A refused connection, a dropped
session or a 4xx is retried with the same bytes and Message-ID, as an MTA would, for at most
3 minutes. Then, after the outbox drains and the received mail is processed (bounded):
tickets in the database against submissions made, duplicates, confirmations queued, sent and
received (by Message-ID); replies accepted (250), stored as agent messages on their tickets
(once each, found by a number in their text), lost, stored twice; the customer mails they
made queued, sent, received and received twice; the status changes applied — nothing lost,
nothing twice.

Run from the repository root (a few minutes)::

    .venv/bin/python bench/workers_bench.py [--seconds 8] [--rounds 2] [--tickets 200]
        [--clients 20] [--reply-every 1] [--skip-search]
        [--database-url postgresql://postgres@127.0.0.1/madoguchi_bench]

Writes ``bench/results/workers.json``. A script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faq_api_bench import LUA, ROOT, Server, distinct_queries, free_port, run_wrk

RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
HELLO = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/api/faq/search", hello)])
"""


def uvicorn_command(module: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        module,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def part_search(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    queries = distinct_queries()
    paths = [f"/api/faq/search?q={quote(q, safe='')}&limit=5" for q in queries]
    script = work / "rotate.lua"
    script.write_text(LUA % ", ".join(json.dumps(p) for p in paths), encoding="utf-8")
    (work / "hello_app.py").write_text(HELLO)
    shutil.copy(ROOT / "bench" / "faq_bare_app.py", work / "faq_bare_app.py")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{work}"}
    env.update(HELPDESK_VAR_DIR=str(work / "var-search"), HELPDESK_DATA_DIR=str(ROOT / "data"))
    env.pop("HELPDESK_DATABASE_URL", None)
    ports = {"app": free_port(), "bare": free_port(), "hello": free_port()}
    serve = [sys.executable, "main.py", "serve", "--host", HOST, "--workers", "2", "--port"]
    servers = {
        "app": Server("app", [*serve, str(ports["app"])], env, work / "app.log", ROOT),
        "bare": Server(
            "bare",
            uvicorn_command("faq_bare_app:app", ports["bare"], 2),
            env,
            work / "bare.log",
            ROOT,
        ),
        "hello": Server(
            "hello",
            uvicorn_command("hello_app:app", ports["hello"], 2),
            env,
            work / "hello.log",
            ROOT,
        ),
    }
    phases: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    try:
        for name, server in servers.items():
            server.start(ports[name])
            run_wrk(ports[name], script, args.warmup, args.connections)
        for _ in range(args.rounds):
            for name in servers:
                phases[name].append(run_wrk(ports[name], script, args.seconds, args.connections))
    finally:
        for server in servers.values():
            server.stop()
    summary = {}
    for name, results in phases.items():
        median = statistics.median(r["rps"] for r in results)
        middle = min(results, key=lambda r: abs(r["rps"] - median))
        summary[name] = {
            "rps": median,
            "p50_ms": middle["p50_ms"],
            "p99_ms": middle["p99_ms"],
            "errors": sum(r["errors"] + r["non2xx"] for r in results),
            "phases": [round(r["rps"]) for r in results],
        }
    return {"queries": len(queries), "connections": args.connections, "summary": summary}


def today_tokyo() -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()


def small_jpeg(seed: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (800, 600), (seed * 37 % 256, seed * 91 % 256, 120))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


async def _heartbeat_pid(url: str) -> int | None:
    from helpdesk import db
    from helpdesk.leader import read_heartbeat

    engine = db.create_engine(url)
    try:
        row = await read_heartbeat(db.session_factory(engine))
    finally:
        await engine.dispose()
    return int(row.holder.rsplit(":", 1)[1]) if row else None


class SmtpSink:
    """The relay the app sends its mail to: a recording SMTP server in a process of its own,
    as Postfix would be. (In the load generator's process its "250" waited behind the
    clients for the GIL, which widened the window between the 250 and the sender's record
    of it.) Each message it accepts is a file, written before the 250; ``poll`` appends the
    new ones to ``received`` and the times of their 250 to ``accepted_at``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.received: list[bytes] = []
        self.accepted_at: list[float] = []  # wall clock of each "250", beside ``received``
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True)
        command = [sys.executable, __file__, "--smtp-sink", str(self.port), str(self.folder)]
        self.process = subprocess.Popen(command, cwd=ROOT)
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex((HOST, self.port)) == 0:
                    return
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the SMTP sink did not start")
            time.sleep(0.05)

    def poll(self) -> None:
        names = sorted(n for n in os.listdir(self.folder) if n.endswith(".eml"))
        for name in names[len(self.received) :]:
            self.received.append((self.folder / name).read_bytes())
            self.accepted_at.append(float(name.split("-", 1)[1].removesuffix(".eml")))

    async def follow(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
        self.poll()


def smtp_sink(port: int, folder: Path) -> None:
    """``--smtp-sink PORT FOLDER``: the process ``SmtpSink`` starts."""
    import itertools

    from aiosmtpd.controller import Controller

    numbers = itertools.count()

    class Recorder:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            number = next(numbers)
            temporary = folder / f".{number:07d}.tmp"
            temporary.write_bytes(bytes(envelope.original_content or envelope.content))
            temporary.rename(folder / f"{number:07d}-{time.time():.6f}.eml")
            return "250 OK"

    controller = Controller(Recorder(), hostname=HOST, port=port)
    controller.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


async def part_submissions(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sink = SmtpSink(work / "sink")
    sink.start()
    received, accepted_at, smtp_port = sink.received, sink.accepted_at, sink.port
    following = asyncio.create_task(sink.follow())
    url = args.database_url or f"sqlite:///{work / 'var-tickets' / 'helpdesk.db'}"
    if args.database_url:
        from sqlalchemy import text

        from helpdesk import db

        engine = db.create_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "HELPDESK_VAR_DIR": str(work / "var-tickets"),
        "HELPDESK_DATABASE_URL": url,
        "HELPDESK_SECRET_KEY": "bench-secret",
        "HELPDESK_BASE_URL": f"http://{HOST}:{port}",
        "HELPDESK_SUBMISSION_RATE": "100000/1m",
        "HELPDESK_SMTP_HOST": HOST,
        "HELPDESK_SMTP_PORT": str(smtp_port),
        "HELPDESK_SMTP_SECURITY": "none",
    }
    # Registers the agents and sets the receiver's port.
    agents = AgentReplies(env, work, args.reply_every)
    command = [sys.executable, "main.py", "serve", "--host", HOST, "--workers", "2"]
    log = work / "tickets.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://{HOST}:{port}"
    photos = [small_jpeg(n) for n in range(4)]
    done: dict[int, str] = {}
    retries = 0
    errors: list[str] = []
    latencies: list[float] = []
    killed: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"serve did not start; see {log}")
                await asyncio.sleep(0.2)
            for _ in range(100):
                if await _heartbeat_pid(url):
                    break
                await asyncio.sleep(0.2)
            queue: asyncio.Queue[int] = asyncio.Queue()
            for number in range(args.tickets):
                queue.put_nowait(number)

            async def submit(number: int) -> None:
                nonlocal retries
                key = f"bench-{number}"
                email = f"customer{number}@example.jp"
                for _attempt in range(20):
                    started = time.perf_counter()
                    try:
                        if number % 4 == 0:
                            response = await client.post(
                                "/api/tickets",
                                headers={"Idempotency-Key": key},
                                data={
                                    "kind": "defect",
                                    "name": f"負荷 {number}",
                                    "email": email,
                                    "order_number": f"#{100000 + number}",
                                    "arrived_on": today_tokyo(),
                                    "description": f"欠けがありました ({number})",
                                },
                                files={
                                    "photo_overall": ("a.jpg", photos[number % 4], "image/jpeg"),
                                    "photo_defect": (
                                        "b.jpg",
                                        photos[(number + 1) % 4],
                                        "image/jpeg",
                                    ),
                                },
                            )
                        else:
                            response = await client.post(
                                "/api/tickets",
                                headers={"Idempotency-Key": key},
                                json={
                                    "kind": "inquiry",
                                    "category": "other",
                                    "name": f"負荷 {number}",
                                    "email": email,
                                    "description": f"負荷試験のお問い合わせ ({number})",
                                },
                            )
                    except httpx.TransportError:
                        retries += 1
                        await asyncio.sleep(0.5)
                        continue
                    if response.status_code in (200, 201):
                        latencies.append(time.perf_counter() - started)
                        done[number] = response.json()["reference"]
                        return
                    if response.status_code >= 500 or response.status_code == 429:
                        retries += 1
                        await asyncio.sleep(0.5)
                        continue
                    errors.append(f"{number}: {response.status_code} {response.text[:200]}")
                    return
                errors.append(f"{number}: gave up")

            async def client_loop() -> None:
                while not queue.empty():
                    number = queue.get_nowait()
                    await submit(number)
                    if (
                        "web" in args.kill
                        and len(done) >= args.tickets // 3
                        and "web" not in killed
                    ):
                        # A web worker (uvicorn starts another): requests in flight fail
                        # and are retried with their Idempotency-Key.
                        leader = await _heartbeat_pid(url)
                        web = sorted(_web_workers(server.pid) - {leader})
                        if web and "web" not in killed:  # another client did first
                            killed["web"] = {"pid": web[0], "after": len(done)}
                            os.kill(web[0], signal.SIGKILL)
                    if (
                        "leader" in args.kill
                        and len(done) >= args.tickets // 2
                        and "leader" not in killed
                    ):
                        # The process running the background work, sending mail.
                        pid = await _heartbeat_pid(url)
                        if pid and "leader" not in killed:  # another client did first
                            killed["leader"] = {"pid": pid, "after": len(done)}
                            os.kill(pid, signal.SIGKILL)

            agents.start(received, killed)
            started = time.monotonic()
            await asyncio.gather(*(client_loop() for _ in range(args.clients)))
            elapsed = time.monotonic() - started
            # Wait for the outbox to drain (the new leader sends what the old one left; a
            # mail the killed leader was sending waits for its lease, 300 s, to expire).
            drain_started = time.monotonic()
            deadline = drain_started + 400
            while time.monotonic() < deadline:
                counts = await _outbox_counts(url)
                if counts.get("queued", 0) == 0 and counts.get("sending", 0) == 0:
                    break
                await asyncio.sleep(1)
            drained_after = time.monotonic() - drain_started
            new_leader = await _heartbeat_pid(url)
            agents_waited = await agents.finish(url, done.values())
    finally:
        agents.stop()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        following.cancel()
        sink.stop()
    return {
        "database": "postgresql" if args.database_url else "sqlite",
        "clients": args.clients,
        "submissions": args.tickets,
        "seconds": elapsed,
        "tickets_per_second": len(done) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "p99_ms": sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000 if latencies else None,
        "retries": retries,
        "errors": errors[:10],
        "killed": killed,
        "new_leader": new_leader,
        "outbox_drained_after_s": drained_after,
        **await _count(url, done, received),
        "accepted_to_recorded_ms": await _record_delays(url, received, accepted_at),
        "agent_replies": {**await agents.count(url, received), "waited": agents_waited},
    }


def _web_workers(serve_pid: int) -> set[int]:
    """uvicorn's web workers among ``serve``'s children (not the background worker)."""
    found = subprocess.run(["pgrep", "-P", str(serve_pid)], capture_output=True, text=True)
    web = set()
    for child in map(int, found.stdout.split()):
        try:
            arguments = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"worker" not in arguments and not any(b"resource_tracker" in a for a in arguments):
            web.add(child)
    return web


async def _record_delays(
    url: str, received: list[bytes], accepted_at: list[float]
) -> dict[str, float | int]:
    """From the SMTP server's "250" to the sender's record of it (``sent_at``, taken as the
    reply arrives, just before the statement is written), per mail received: the window in
    which a crash sends a mail twice."""

    from sqlalchemy import select
    from sqlmodel import col

    from helpdesk import db
    from helpdesk.models import Outbox

    first_accepted: dict[str, float] = {}
    for raw, when in zip(received, accepted_at, strict=True):
        first_accepted.setdefault(message_id(raw), when)
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            rows = (
                await session.execute(
                    select(col(Outbox.message_id), col(Outbox.sent_at)).where(
                        col(Outbox.status) == "sent"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    delays = sorted(
        (db.as_utc(sent_at).timestamp() - first_accepted[sent_id]) * 1000
        for sent_id, sent_at in rows
        if sent_at is not None and sent_id in first_accepted
    )
    if not delays:
        return {"mails": 0}
    return {
        "mails": len(delays),
        "p50": round(statistics.median(delays), 3),
        "p99": round(delays[max(0, int(len(delays) * 0.99) - 1)], 3),
        "max": round(delays[-1], 3),
    }


async def _status_counts(url: str, model: Any) -> dict[str, int]:
    """Rows of ``model`` (``Outbox``, ``InboundMail``) by status."""
    from sqlalchemy import func, select

    from helpdesk import db

    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            rows = await session.execute(select(model.status, func.count()).group_by(model.status))
            return {str(s): int(n) for s, n in rows.all()}
    finally:
        await engine.dispose()


async def _outbox_counts(url: str) -> dict[str, int]:
    from helpdesk.models import Outbox

    return await _status_counts(url, Outbox)


def message_id(raw: bytes) -> str:
    """The Message-ID of a mail as received, without its angle brackets."""
    return str(email.message_from_bytes(raw).get("Message-ID", "")).strip().strip("<>")


async def _count(url: str, done: dict[int, str], received: list[bytes]) -> dict[str, Any]:
    from collections import Counter

    from sqlalchemy import select
    from sqlmodel import col

    from helpdesk import db
    from helpdesk.models import Outbox, Ticket

    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            tickets = (await session.execute(select(Ticket))).scalars().all()
            outbox = (
                (
                    await session.execute(
                        select(Outbox).where(col(Outbox.kind) == "ticket_confirmation")
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    keys = Counter(t.submission_key for t in tickets)
    references = {t.reference for t in tickets}
    arrived = Counter(message_id(raw) for raw in received)
    sent_ids = {row.message_id for row in outbox if row.status == "sent"}
    return {
        "tickets_in_database": len(tickets),
        "tickets_acknowledged": len(done),
        "acknowledged_missing": sorted(set(done.values()) - references)[:10],
        "duplicate_submissions": sum(n - 1 for n in keys.values() if n > 1),
        "confirmations_queued": len(outbox),
        "confirmations_by_status": dict(Counter(row.status for row in outbox)),
        "mails_received": len(received),
        "confirmations_received": sum(arrived[m] for m in sent_ids),
        "mails_received_twice": sum(n - 1 for n in arrived.values() if n > 1),
        "sent_but_not_received": len([m for m in sent_ids if not arrived[m]]),
    }


# -- agents replying by mail during part 2 ---------------------------------------------------

#: Two registered agents; each answers the new-ticket notifications of its own share.
AGENTS = (("sato@bench.example.jp", "佐藤"), ("suzuki@bench.example.jp", "鈴木"))
#: How long one reply is retried (connection refused, dropped, 4xx) before it is given up,
#: as an MTA's queue would, but bounded for the bench.
REPLY_RETRY_SECONDS = 180.0
#: An agent answers a notification after 0 to this many seconds (seeded per reply): the
#: replies keep coming through the kill instead of all waiting for the next notification.
REPLY_DELAY_SECONDS = 6.0
_REFERENCE = re.compile(r"\[(HD-\d{2}-\d+)\]")
_MARKER = re.compile(r"\(返信番号 (R-\d+)\)")


@dataclass
class AgentReply:
    """One agent's reply to one new-ticket notification, and what became of it."""

    marker: str  # in the body, to find the stored message: "R-0042"
    reference: str
    agent: str
    resolves: bool  # carries "#status resolved"
    message_id: str
    raw: bytes = b""
    recipient: str = ""
    attempts: int = 0
    accepted: bool = False  # answered 250 by the app's receiver
    rejected: str | None = None  # a permanent (5xx) answer
    gave_up: bool = False
    errors: Counter[str] = field(default_factory=Counter)
    spans: list[tuple[float, float, str]] = field(default_factory=list)  # each attempt
    accepted_after_s: float | None = None


class AgentReplies:
    """Agents reading the support inbox (the recording SMTP server) and answering the
    notifications of new tickets by SMTP to the app's receiver, as their mail client would:
    From the agent, To the notification's Reply-To (the agents' signed address), In-Reply-To
    and References its Message-ID, a Japanese body; every second reply also resolves the
    ticket (``#status resolved``). Refused connections, dropped sessions and 4xx answers
    (the leader just killed, the next one not yet listening) are retried with the same bytes
    and Message-ID until accepted, for at most ``REPLY_RETRY_SECONDS``.

    Every ``every``-th ticket (by reference number) is answered, by one agent each."""

    def __init__(self, env: dict[str, str], work: Path, every: int = 1) -> None:
        self.every = every
        self.port = free_port()
        env["HELPDESK_INBOUND_SMTP_PORT"] = str(self.port)
        self.log = work / "agents.log"
        with self.log.open("w") as out:
            for address, name in AGENTS:
                subprocess.run(
                    [sys.executable, "main.py", "agent", "add", address, "--name", name],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=True,
                    timeout=120,
                )
        self.replies: dict[str, AgentReply] = {}  # by ticket reference
        self.notifications = Counter[str]()  # notifications received, by ticket reference
        self.tasks: list[asyncio.Task[None]] = []
        self.watcher: asyncio.Task[None] | None = None
        self.clients = asyncio.Semaphore(4)  # two agents, two mail clients open each
        self.killed_at: float | None = None

    def start(self, received: list[bytes], killed: dict[str, Any]) -> None:
        """Read ``received`` as it grows; ``killed["leader"]`` (set by the kill) dates it."""
        self.watcher = asyncio.create_task(self._watch(received, killed))

    async def _watch(self, received: list[bytes], killed: dict[str, Any]) -> None:
        seen = 0
        while True:
            while seen < len(received):
                self._notification(received[seen])
                seen += 1
            if "leader" in killed and self.killed_at is None:
                self.killed_at = time.monotonic()  # within 50 ms
            await asyncio.sleep(0.05)

    def _notification(self, raw: bytes) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        subject = str(message.get("Subject", ""))
        reply_to = str(message.get("Reply-To", ""))
        match = _REFERENCE.search(subject)
        if "新しいお問い合わせ" not in subject or not match or not reply_to:
            return
        reference = match[1]
        self.notifications[reference] += 1
        number = int(reference.rsplit("-", 1)[1])
        if reference in self.replies or number % self.every:
            return  # a copy received twice is answered once (a mail client shows it once)
        index = len(self.replies)
        address, name = AGENTS[number // 2 % len(AGENTS)]
        reply = AgentReply(
            marker=f"R-{index:04d}",
            reference=reference,
            agent=address,
            resolves=index % 2 == 0,
            message_id=make_msgid(domain="bench.example.jp"),
        )
        notification_id = str(message["Message-ID"])
        answer = EmailMessage()
        answer["From"] = f"{name} <{address}>"
        answer["To"] = reply_to
        answer["Subject"] = f"Re: {subject}"
        answer["Message-ID"] = reply.message_id
        answer["In-Reply-To"] = notification_id
        answer["References"] = notification_id
        answer["Date"] = formatdate(localtime=True)
        body = (
            f"{'#status resolved' + chr(10) + chr(10) if reply.resolves else ''}"
            "お問い合わせいただきありがとうございます。担当の"
            f"{name}です。ご注文の状況を確認いたしました。"
            f"(返信番号 {reply.marker})\n\n"
            f"-- \n{name}\n\n"
            f"{formatdate(localtime=True)} <{address}>:\n> 新しいお問い合わせが届きました。\n"
        )
        answer.set_content(body)
        reply.raw = answer.as_bytes()
        reply.recipient = reply_to
        self.replies[reference] = reply
        self.tasks.append(asyncio.create_task(self._send(reply)))

    async def _send(self, reply: AgentReply) -> None:
        import aiosmtplib

        await asyncio.sleep(random.Random(reply.marker).uniform(0, REPLY_DELAY_SECONDS))
        started = time.monotonic()
        deadline = started + REPLY_RETRY_SECONDS
        while time.monotonic() < deadline:
            reply.attempts += 1
            async with self.clients:
                begun, outcome = time.monotonic(), "250"
                try:
                    await aiosmtplib.send(
                        reply.raw,
                        hostname=HOST,
                        port=self.port,
                        sender=reply.agent,
                        recipients=[reply.recipient],
                        timeout=60,
                    )
                except aiosmtplib.SMTPResponseException as exc:
                    outcome = str(exc.code)
                    if exc.code >= 500:
                        reply.rejected = f"{exc.code} {exc.message}"
                except (aiosmtplib.SMTPException, OSError) as exc:
                    outcome = type(exc).__name__
                reply.spans.append((begun, time.monotonic(), outcome))
            if outcome == "250":
                reply.accepted = True
                reply.accepted_after_s = time.monotonic() - started
                return
            if reply.rejected:
                return
            reply.errors[outcome] += 1
            await asyncio.sleep(min(0.25 * reply.attempts, 2.0))
        reply.gave_up = True

    async def finish(self, url: str, references: Iterable[str]) -> dict[str, Any]:
        """Once the submissions are done: wait (bounded) for every ticket's notification to
        be answered, the replies accepted, the receiver to have processed them and the
        outbox to have sent the customer mails they made. How long each step took."""
        waited: dict[str, float] = {}
        expected = {r for r in references if int(r.rsplit("-", 1)[1]) % self.every == 0}
        started = time.monotonic()
        while set(self.replies) < expected and time.monotonic() < started + 120:
            await asyncio.sleep(0.5)
        waited["notifications_s"] = time.monotonic() - started
        started = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*self.tasks, return_exceptions=True), REPLY_RETRY_SECONDS + 90
        )
        waited["replies_s"] = time.monotonic() - started
        # A reply stored by a leader killed while processing it waits for its lease (5 min)
        # and the inbound pass (every minute): up to 420 s.
        started = time.monotonic()
        deadline = started + 420
        while time.monotonic() < deadline:
            inbound = await _inbound_counts(url)
            outbox = await _outbox_counts(url)
            if not (inbound.get("received") or inbound.get("retry")) and not (
                outbox.get("queued") or outbox.get("sending")
            ):
                break
            await asyncio.sleep(1)
        waited["settled_s"] = time.monotonic() - started
        return waited

    def stop(self) -> None:
        for task in [*self.tasks, *filter(None, [self.watcher])]:
            task.cancel()

    async def count(self, url: str, received: list[bytes]) -> dict[str, Any]:
        """What became of the replies: stored once each, the customer mails they made
        queued, sent and received once each, the status changes applied."""
        from sqlalchemy import select
        from sqlmodel import col

        from helpdesk import db
        from helpdesk.models import InboundMail, Message, Outbox, Ticket, TicketEvent

        engine = db.create_engine(url)
        try:
            async with db.session_factory(engine)() as session:
                stored = (
                    await session.execute(
                        select(col(Message.ticket_id), col(Message.body)).where(
                            col(Message.author) == "agent"
                        )
                    )
                ).all()
                tickets = {t.id: t for t in (await session.execute(select(Ticket))).scalars().all()}
                ids = [r.message_id.strip("<>") for r in self.replies.values()]
                inbound = (
                    (
                        await session.execute(
                            select(InboundMail).where(col(InboundMail.message_id).in_(ids))
                        )
                    )
                    .scalars()
                    .all()
                )
                mails = (
                    (
                        await session.execute(
                            select(Outbox).where(
                                col(Outbox.kind).in_(("agent_reply", "status_changed"))
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
                agent_mail = (
                    (
                        await session.execute(
                            select(Outbox).where(col(Outbox.to_address).in_([a for a, _ in AGENTS]))
                        )
                    )
                    .scalars()
                    .all()
                )
                events = (
                    (
                        await session.execute(
                            select(TicketEvent).where(col(TicketEvent.kind) == "status_changed")
                        )
                    )
                    .scalars()
                    .all()
                )
        finally:
            await engine.dispose()
        by_reference = {t.reference: t for t in tickets.values()}
        markers = Counter(m[1] for _, body in stored if (m := _MARKER.search(body)))
        where = {
            m[1]: tickets[ticket_id].reference
            for ticket_id, body in stored
            if (m := _MARKER.search(body))
        }
        replies = list(self.replies.values())
        accepted = [r for r in replies if r.accepted]
        arrived = Counter(message_id(raw) for raw in received)
        replied_ids = {by_reference[r.reference].id for r in replies if r.reference in by_reference}
        customer = [m for m in mails if m.ticket_id in replied_ids]
        sent_ids = [m.message_id for m in customer if m.status == "sent"]
        resolving = [r for r in accepted if r.resolves]
        status_events = Counter(
            e.ticket_id
            for e in events
            if e.ticket_id in replied_ids and json.loads(e.data).get("new") == "resolved"
        )
        spans = [(span, r) for r in replies for span in r.spans]
        # The kill, as dated by the watcher (polling) or by the first attempt it cut off.
        at = min(
            [*filter(None, [self.killed_at]), *(e for (_, e, o), _ in spans if o != "250")],
            default=None,
        )
        reference_of = {r.message_id.strip("<>"): r.reference for r in replies}
        received_at: dict[str, datetime] = {}
        for row in inbound:
            reference = reference_of[str(row.message_id)]
            when = db.as_utc(row.received_at)
            received_at[reference] = min(received_at.get(reference, when), when)
        # From the reply's arrival to the customer's mail leaving.
        delays = [
            (db.as_utc(m.sent_at) - received_at[tickets[m.ticket_id].reference]).total_seconds()
            for m in customer
            if m.sent_at
            and m.ticket_id in tickets
            and tickets[m.ticket_id].reference in received_at
        ]
        return {
            "agents": len(AGENTS),
            "notifications_received": sum(self.notifications.values()),
            "notifications_received_twice": sum(
                n - 1 for n in self.notifications.values() if n > 1
            ),
            "replies_made": len(replies),
            "replies_accepted": len(accepted),
            "replies_rejected": [r.rejected for r in replies if r.rejected][:10],
            "replies_given_up": len([r for r in replies if r.gave_up]),
            "replies_retried": len([r for r in replies if r.attempts > 1]),
            "send_attempts": sum(r.attempts for r in replies),
            "retry_causes": dict(sum((r.errors for r in replies), Counter())),
            "at_the_kill": {
                # Attempts under way when the leader was killed, and how they ended.
                "in_flight": dict(Counter(o for (b, e, o), _ in spans if at and b <= at <= e)),
                # Attempts begun in the next 30 s that did not get 250.
                "failed_after": len(
                    [o for (b, _, o), _ in spans if at and at < b < at + 30 and o != "250"]
                ),
                "begun_within_5s": len([b for (b, _, _), _ in spans if at and abs(b - at) < 5]),
                "first_accepted_after_s": min(
                    (b - at for (b, _, o), _ in spans if at and b > at and o == "250"),
                    default=None,
                ),
            },
            "median_attempt_ms": statistics.median((e - b) * 1000 for (b, e, _), _ in spans)
            if spans
            else None,
            "slowest_acceptance_s": max(
                (r.accepted_after_s or 0.0 for r in accepted), default=None
            ),
            "replies_stored": len([r for r in accepted if markers[r.marker] == 1]),
            "replies_stored_on_the_wrong_ticket": len(
                [r for r in accepted if markers[r.marker] and where[r.marker] != r.reference]
            ),
            "replies_stored_twice": sum(n - 1 for n in markers.values() if n > 1),
            "replies_lost": sorted(r.marker for r in accepted if not markers[r.marker])[:10],
            "replies_not_accepted_but_stored": len(
                [r for r in replies if not r.accepted and markers[r.marker]]
            ),
            "inbound_started_twice": len([row for row in inbound if row.attempts > 1]),
            "inbound_copies_by_status": dict(Counter(str(row.status) for row in inbound)),
            "inbound_outcomes": dict(
                Counter((row.outcome or "")[:60] for row in inbound if row.status != "ignored")
            ),
            "mails_to_agents_by_kind": dict(Counter(m.kind for m in agent_mail)),
            "customer_mails_queued": len(customer),
            "customer_mails_by_kind": dict(Counter(m.kind for m in customer)),
            "customer_mails_by_status": dict(Counter(m.status for m in customer)),
            "reply_to_customer_mail_s": {
                "median": statistics.median(delays) if delays else None,
                "max": max(delays, default=None),
            },
            "customer_mails_queued_twice": sum(
                n - 1 for n in Counter(m.ticket_id for m in customer).values() if n > 1
            ),
            "customer_mails_received": sum(arrived[m] for m in sent_ids),
            "customer_mails_received_twice": sum(
                arrived[m] - 1 for m in sent_ids if arrived[m] > 1
            ),
            "customer_mails_sent_not_received": len([m for m in sent_ids if not arrived[m]]),
            "status_changes_asked": len(resolving),
            "status_changes_applied": len(
                [
                    r
                    for r in resolving
                    if r.reference in by_reference
                    and by_reference[r.reference].status == "resolved"
                    and status_events[by_reference[r.reference].id] == 1
                ]
            ),
            "status_changes_applied_twice": sum(n - 1 for n in status_events.values() if n > 1),
        }


async def _inbound_counts(url: str) -> dict[str, int]:
    from helpdesk.models import InboundMail

    return await _status_counts(url, InboundMail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk phase")
    parser.add_argument("--rounds", type=int, default=2, help="phases per server")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--reply-every", type=int, default=1, help="agents answer every N-th ticket by mail"
    )
    parser.add_argument("--database-url", help="PostgreSQL for part 2 (default SQLite)")
    parser.add_argument(
        "--kill",
        nargs="*",
        choices=("web", "leader"),
        default=["web", "leader"],
        help="part 2: what to SIGKILL mid-load (default both; none: --kill alone)",
    )
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--smtp-sink", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smtp_sink:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        smtp_sink(int(args.smtp_sink[0]), Path(args.smtp_sink[1]))
        return
    work = Path(tempfile.mkdtemp(prefix="workers-bench-"))
    report: dict[str, Any] = {}
    if not args.skip_search:
        if shutil.which("wrk") is None:
            sys.exit("wrk not found: apt-get install -y wrk")
        report["search"] = part_search(args, work)
        print(json.dumps(report["search"], indent=2, ensure_ascii=False), flush=True)
    report["submissions"] = asyncio.run(part_submissions(args, work))
    print(json.dumps(report["submissions"], indent=2, ensure_ascii=False))
    RESULTS.mkdir(exist_ok=True)
    name = "workers.json" if not args.skip_search else "workers_submissions.json"
    if args.database_url:
        name = name.replace(".json", "_pg.json")
    (RESULTS / name).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"JSON: bench/results/{name}; logs in {work}")


if __name__ == "__main__":
    main()
