#!/usr/bin/env python3
"""HTTP benchmark of ``GET /api/faq/search`` against the real server over loopback.

Run from the repository root::

    .venv/bin/python bench/http_bench.py                 # writes bench/results/http.json
    .venv/bin/python bench/http_bench.py --requests 500  # quicker

The script starts ``main.py serve`` (uvicorn, uvloop + httptools) on a free port of
127.0.0.1 with a temporary ``HELPDESK_VAR_DIR`` (so a fresh SQLite database), waits until
it answers, then runs a closed-loop load generator per concurrency level: N asyncio workers
share one ``httpx.AsyncClient`` (keep-alive, N connections) and send rotating dev-set
queries until the request budget or the time limit is spent. A second, much lighter
client (raw asyncio streams, hand-written HTTP/1.1 keep-alive) runs the same load, because
on a 2-core machine httpx itself takes a large share of the CPU the server needs. The
server is stopped at the end. No traffic leaves 127.0.0.1.

This is a script, not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faq_bench import ROOT, machine_info, percentile, read_dev_queries

RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FALLBACK_QUERIES = ("注文した商品はいつ発送されますか", "領収書はもらえますか", "返品したい")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields after the command name start at "state" (field 3): utime is 14, stime 15.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def kb_size(folder: Path) -> int | None:
    """Entries of the knowledge base the server loads (its data/faq)."""
    from faq import load_entries

    try:
        return len(load_entries(folder))
    except (OSError, ValueError):
        return None


def search_path(query: str, limit: int = 5) -> str:
    return f"/api/faq/search?q={quote(query, safe='')}&limit={limit}"


# --------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------


class Server:
    """``main.py serve`` as a child process, logging to a file under its var dir."""

    def __init__(self, var_dir: Path, port: int, app_dir: Path = ROOT) -> None:
        self.var_dir = var_dir
        self.port = port
        self.app_dir = app_dir
        self.log_path = var_dir.parent / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0

    def start(self, timeout: float = 60.0) -> None:
        env = dict(os.environ)
        env["HELPDESK_VAR_DIR"] = str(self.var_dir)
        env.pop("HELPDESK_DATABASE_URL", None)  # the default: SQLite under the var dir
        command = [sys.executable, "main.py", "serve", "--host", HOST, "--port", str(self.port)]
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.app_dir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        url = f"http://{HOST}:{self.port}{search_path('送料')}"
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() - started < timeout:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited early; see {self.log_path}:\n{self.log()}")
                try:
                    if client.get(url).status_code == 200:
                        self.ready_s = time.perf_counter() - started
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:g} s:\n{self.log()}")

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid) if self.process else 0.0

    def rss_mib(self) -> float:
        if not self.process:
            return 0.0
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)

    def log(self, tail: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def gap_rows(self) -> int | None:
        """Rows the app wrote to ``faq_gap`` (it logs every unsure answer)."""
        database = self.var_dir / "helpdesk.db"
        if not database.exists():
            return None
        try:
            with sqlite3.connect(database) as connection:
                return int(connection.execute("SELECT count(*) FROM faq_gap").fetchone()[0])
        except sqlite3.Error:
            return None


# --------------------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Phase:
    samples_ns: list[int] = field(default_factory=list)
    answered_ns: list[int] = field(default_factory=list)
    unanswered_ns: list[int] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)

    def record(self, elapsed: int, status: int, body: bytes) -> None:
        self.samples_ns.append(elapsed)
        if status != 200:
            self.error(f"HTTP {status}")
        elif b'"answered":true' in body:
            self.answered_ns.append(elapsed)
        else:
            self.unanswered_ns.append(elapsed)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_examples) < 5:
            self.error_examples.append(text)


# One request: path in, (status, body) out.
Send = Callable[[str], Awaitable[tuple[int, bytes]]]


async def drive(
    make_sender: Callable[[], Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]],
    paths: Sequence[str],
    concurrency: int,
    total: int,
    max_seconds: float,
) -> tuple[Phase, float]:
    """Closed loop: ``concurrency`` workers share a budget of ``total`` requests."""
    phase = Phase()
    counter = iter(range(total))
    clock = time.perf_counter_ns
    deadline = clock() + int(max_seconds * 1e9)

    async def worker() -> None:
        send, close = await make_sender()
        try:
            for i in counter:
                if clock() > deadline:
                    break
                start = clock()
                try:
                    status, body = await send(paths[i % len(paths)])
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    phase.samples_ns.append(clock() - start)
                    phase.error(f"{type(exc).__name__}: {exc}")
                    continue
                phase.record(clock() - start, status, body)
        finally:
            await close()

    started = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return phase, (clock() - started) / 1e9


def httpx_senders(port: int, concurrency: int) -> tuple[Any, httpx.AsyncClient]:
    client = httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}",
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=30.0,
    )

    async def make_sender() -> tuple[Send, Callable[[], Awaitable[None]]]:
        async def send(path: str) -> tuple[int, bytes]:
            response = await client.get(path)
            return response.status_code, response.content

        async def close() -> None:
            return None

        return send, close

    return make_sender, client


def raw_senders(port: int) -> Any:
    """One keep-alive connection per worker, HTTP/1.1 written and parsed by hand."""

    async def make_sender() -> tuple[Send, Callable[[], Awaitable[None]]]:
        reader, writer = await asyncio.open_connection(HOST, port)
        host = f"Host: {HOST}:{port}\r\n".encode()

        async def send(path: str) -> tuple[int, bytes]:
            writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + host + b"\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return status, await reader.readexactly(length)

        async def close() -> None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

        return send, close

    return make_sender


async def run_phase(
    server: Server,
    client_kind: str,
    paths: Sequence[str],
    concurrency: int,
    total: int,
    max_seconds: float,
) -> dict[str, Any]:
    client: httpx.AsyncClient | None = None
    if client_kind == "httpx":
        make_sender, client = httpx_senders(server.port, concurrency)
    else:
        make_sender = raw_senders(server.port)
    gaps_before = server.gap_rows() or 0
    server_cpu = server.cpu_seconds()
    client_cpu = time.process_time()
    try:
        phase, wall = await drive(make_sender, paths, concurrency, total, max_seconds)
    finally:
        if client is not None:
            await client.aclose()
    server_cpu = server.cpu_seconds() - server_cpu
    client_cpu = time.process_time() - client_cpu
    ordered = sorted(phase.samples_ns)
    answered, unanswered = sorted(phase.answered_ns), sorted(phase.unanswered_ns)
    return {
        "client": client_kind,
        "concurrency": concurrency,
        "requests": len(ordered),
        "wall_s": wall,
        "requests_per_s": len(ordered) / wall if wall else 0.0,
        "p50_ms": percentile(ordered, 50) / 1e6,
        "p90_ms": percentile(ordered, 90) / 1e6,
        "p99_ms": percentile(ordered, 99) / 1e6,
        "max_ms": ordered[-1] / 1e6 if ordered else 0.0,
        "errors": phase.errors,
        "error_examples": phase.error_examples,
        "answered": len(answered),
        "answered_p50_ms": percentile(answered, 50) / 1e6,
        "unanswered_p50_ms": percentile(unanswered, 50) / 1e6,
        "unanswered_p99_ms": percentile(unanswered, 99) / 1e6,
        "gap_rows_written": (server.gap_rows() or 0) - gaps_before,
        # CPU seconds per wall second: 1.0 is one core fully busy.
        "server_cpu_cores": server_cpu / wall if wall else 0.0,
        "client_cpu_cores": client_cpu / wall if wall else 0.0,
        "server_rss_mib": server.rss_mib(),
    }


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"# HTTP benchmark: GET /api/faq/search ({machine['date']})",
        "",
        f"{machine['cpu_model']}, {machine['nproc']} CPUs, Python {machine['python']}, "
        f"commit {machine['git_commit']}; server and load generator share the machine. "
        f"Server ready {report['server']['ready_s']:.2f} s after spawn "
        f"({report['server']['entries']} KB entries).",
        "",
        "| client | concurrency | requests | req/s | p50 | p90 | p99 | max | errors "
        "| answered p50 | unanswered p50 | gap rows | server CPU | client CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["phases"]:
        lines.append(
            f"| {r['client']} | {r['concurrency']} | {r['requests']:,} "
            f"| {r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} ms | {r['p90_ms']:.2f} ms "
            f"| {r['p99_ms']:.2f} ms | {r['max_ms']:.1f} ms | {r['errors']} "
            f"| {r['answered_p50_ms']:.2f} ms | {r['unanswered_p50_ms']:.2f} ms "
            f"| {r['gap_rows_written']:,} | {r['server_cpu_cores']:.2f} "
            f"| {r['client_cpu_cores']:.2f} |"
        )
    lines += [
        "",
        "CPU columns are cores busy on average (CPU seconds / wall seconds). "
        "'gap rows': unsure answers the app wrote to SQLite (faq_gap) during the phase.",
    ]
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    queries = [q for q, _ in read_dev_queries()] or list(FALLBACK_QUERIES)
    paths = [search_path(q) for q in queries]
    report: dict[str, Any] = {"machine": machine_info(), "queries": len(queries), "phases": []}
    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp:
        server = Server(Path(tmp) / "var", free_port(), args.app_dir.resolve())
        print(f"starting server on {HOST}:{server.port}...", file=sys.stderr, flush=True)
        server.start()
        try:
            warm, _ = await drive(raw_senders(server.port), paths, 4, args.warmup, 30.0)
            if warm.errors:
                raise RuntimeError(f"warm-up errors: {warm.error_examples}\n{server.log()}")
            for client_kind in args.clients:
                for concurrency in args.concurrency:
                    print(f"{client_kind} c={concurrency}...", file=sys.stderr, flush=True)
                    report["phases"].append(
                        await run_phase(
                            server,
                            client_kind,
                            paths,
                            concurrency,
                            args.requests,
                            args.max_seconds,
                        )
                    )
        finally:
            returncode = server.stop()
            report["server"] = {
                "ready_s": server.ready_s,
                "returncode": returncode,
                "gap_rows_total": server.gap_rows(),
                "entries": kb_size(args.app_dir.resolve() / "data" / "faq"),
                "command": "main.py serve --host 127.0.0.1 (uvicorn, uvloop + httptools)",
                "app_dir": str(args.app_dir.resolve()),
            }
    report["settings"] = {
        "requests_per_phase": args.requests,
        "max_seconds_per_phase": args.max_seconds,
        "warmup_requests": args.warmup,
    }
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=3_000, help="budget per phase")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time limit per phase")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--clients", nargs="+", choices=("httpx", "raw"), default=["httpx", "raw"])
    parser.add_argument("--output", type=Path, default=RESULTS / "http.json")
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=ROOT,
        help="checkout whose main.py to serve (default: this one), e.g. a `git archive` export",
    )
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(markdown(report))
    print(f"JSON: {args.output}", file=sys.stderr)
    return 0 if all(p["errors"] == 0 for p in report["phases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
