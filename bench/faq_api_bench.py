#!/usr/bin/env python3
"""Throughput of ``GET /api/faq/search`` in the app against a bare engine endpoint.

Both run in the same session, one uvicorn process each (uvloop + httptools), on loopback:

* **app**: ``main.py serve`` as in production (middleware, validation, gap log to SQLite in
  a temporary ``HELPDESK_VAR_DIR``, uvicorn's access log to a file);
* **bare**: ``bench/faq_bare_app.py``, one Starlette route calling the same
  ``SearchEngine.ask`` over the same knowledge base and answering the same JSON, with no
  access log.

The load generator is ``wrk`` (Debian's package) with a Lua script that sends a few hundred
*distinct* queries in rotation (the dev set, both hold-out sets and the near-miss fit set),
so that no cache decides the figure. Phases alternate app, bare, app, bare... after a
warm-up of each server; reported per server: the median requests/s over its phases, the
p50/p99 latency of the phase with the median rate, and the app/bare ratio (target >= 85%).

Run: ``.venv/bin/python bench/faq_api_bench.py [--seconds 8] [--rounds 3]
[--connections 8]`` (about a minute). Writes ``bench/results/faq_api.json``.
This is a script, not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_faq_quality import DEV_QUERIES, read_queries  # noqa: E402

RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
DATA = ROOT / "tests" / "data"
QUERY_SETS = [
    DEV_QUERIES,
    DATA / "faq-holdout.tsv",
    DATA / "faq-blind2.tsv",
    DATA / "faq-nearmiss-fit.tsv",
]
MAX_QUERY_LENGTH = 200
LUA = """
local paths = {%s}
local n = #paths
local i = 0
setup = function(thread) thread:set("offset", i * 97) i = i + 1 end
init = function(args) counter = offset or 0 end
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% n) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"seconds\\": %%f, \\"errors\\": %%d, \\"non2xx\\": %%d, "
    .. "\\"p50_ms\\": %%f, \\"p90_ms\\": %%f, \\"p99_ms\\": %%f, \\"max_ms\\": %%f}\\n",
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def distinct_queries() -> list[str]:
    seen: dict[str, None] = {}
    for path in QUERY_SETS:
        if path.exists():
            for q in read_queries(path):
                if q.query.strip() and len(q.query) <= MAX_QUERY_LENGTH:
                    seen.setdefault(q.query)
    return list(seen)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(
        self, name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path
    ) -> None:
        self.name, self.command, self.env, self.log, self.cwd = name, command, env, log, cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        url = f"http://{HOST}:{port}/api/faq/search?q={quote('送料')}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready; see {self.log}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_wrk(port: int, script: Path, seconds: float, connections: int) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s"]
    command += ["-s", str(script), f"http://{HOST}:{port}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^RESULT (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["rps"] = result["requests"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=3, help="phases per server")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds per server")
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=ROOT,
        help="serve another checkout (e.g. a `git archive` export of an older commit)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    queries = distinct_queries()
    paths = [f"/api/faq/search?q={quote(q, safe='')}&limit=5" for q in queries]
    work = Path(tempfile.mkdtemp(prefix="faq-api-bench-"))
    script = work / "rotate.lua"
    script.write_text(LUA % ", ".join(json.dumps(p) for p in paths), encoding="utf-8")
    python = sys.executable
    app_dir = args.app_dir.resolve()
    env = {**os.environ, "HELPDESK_VAR_DIR": str(work / "var"), "PYTHONPATH": str(app_dir)}
    env["HELPDESK_DATA_DIR"] = str(app_dir / "data")
    env.pop("HELPDESK_DATABASE_URL", None)
    # The bare endpoint runs inside the served checkout, against its own engine.
    shutil.copy(ROOT / "bench" / "faq_bare_app.py", work / "faq_bare_app.py")
    env["PYTHONPATH"] = f"{app_dir}{os.pathsep}{work}"
    ports = {"app": free_port(), "bare": free_port()}
    servers = {
        "app": Server(
            "app",
            [python, "main.py", "serve", "--host", HOST, "--port", str(ports["app"])],
            env,
            work / "app.log",
            app_dir,
        ),
        "bare": Server(
            "bare",
            [
                python,
                "-m",
                "uvicorn",
                "faq_bare_app:app",
                "--host",
                HOST,
                "--port",
                str(ports["bare"]),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env,
            work / "bare.log",
            app_dir,
        ),
    }
    phases: dict[str, list[dict[str, Any]]] = {"app": [], "bare": []}
    try:
        for name, server in servers.items():
            server.start(ports[name])
            run_wrk(ports[name], script, args.warmup, args.connections)
        for _ in range(args.rounds):
            for name, server in servers.items():
                assert server.process is not None
                before = cpu_seconds(server.process.pid)
                result = run_wrk(ports[name], script, args.seconds, args.connections)
                result["server_cpu"] = (cpu_seconds(server.process.pid) - before) / result[
                    "seconds"
                ]
                phases[name].append(result)
    finally:
        for server in servers.values():
            server.stop()
    summary: dict[str, dict[str, Any]] = {}
    for name, results in phases.items():
        median = statistics.median(r["rps"] for r in results)
        middle = min(results, key=lambda r: abs(r["rps"] - median))
        errors = sum(r["errors"] + r["non2xx"] for r in results)
        summary[name] = {"rps": median, **{k: middle[k] for k in ("p50_ms", "p99_ms")}}
        summary[name]["errors"] = errors
        summary[name]["server_cpu"] = middle["server_cpu"]
    ratio = summary["app"]["rps"] / summary["bare"]["rps"]
    print(
        f"`GET /api/faq/search`, {len(queries)} distinct queries in rotation, wrk 1 thread, "
        f"{args.connections} connections, {args.rounds} x {args.seconds:g} s per server\n"
    )
    print("| server | requests/s (median) | p50 | p99 | errors | server CPU | phases (req/s) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, row in summary.items():
        each = ", ".join(f"{r['rps']:.0f}" for r in phases[name])
        print(
            f"| {name} | {row['rps']:,.0f} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms "
            f"| {row['errors']} | {row['server_cpu']:.2f} | {each} |"
        )
    print(f"\napp / bare: {ratio:.0%} (target >= 85%)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "faq_api.json"
    report = {"app_dir": str(app_dir), "queries": len(queries), "phases": phases}
    report.update(summary=summary, ratio=ratio)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"JSON: {out.relative_to(ROOT)}; server logs in {work}")


if __name__ == "__main__":
    main()
