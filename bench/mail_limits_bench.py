"""Large and hostile inbound mail against the real server: memory and web latency.

Starts ``main.py serve`` (uvicorn, one process) with the SMTP receiver on, then:

1. idle: web page latency (``GET /faq``, 20 requests/s in an open loop: each timed from when
   it was due, so a freeze counts for every request it delays) and the server's RSS;
2. a 30 MB mail (text, HTML and photo-sized attachments) sent into the receiver, several
   times, while the same requests run: their latency during each SMTP transaction (which
   lasts until the mail is stored and processed);
3. the worst HTML mail of issue 7 (40,000 nested ``<blockquote>`` over 40,000 lines): the
   server's peak RSS (``VmHWM``, reset through ``/proc/PID/clear_refs``) above its idle RSS.

Targets (issue 7): peak RSS under the worst HTML mail within 300 MB of idle; web p99 while
a 30 MB mail is received within 2x of idle. Reports Markdown, writes bench/results/mail-limits.json.

Run: ``.venv/bin/python bench/mail_limits_bench.py [--mails 3] [--app-dir DIR]``
(``--app-dir`` serves another checkout, e.g. ``git archive`` of an older commit; with
``--skip-html`` for code that would take gigabytes on the worst HTML mail.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from faq_bench import machine_info  # noqa: E402

from tests.mail_limits_child import large_mail, worst_html_mail  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "mail-limits.json"
PAGE = "/faq"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status(pid: int, key: str) -> float:
    """A /proc/PID/status figure in MB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latencies(
    client: httpx.AsyncClient, stop: asyncio.Event, limit: int, rate: float
) -> list[float]:
    """Open loop: a request every 1/rate s whatever the answers, each timed from when it was
    due, so a server that freezes for 2 s shows up in every request due meanwhile (closed-loop
    timing would count that freeze once)."""
    found: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(due: float) -> None:
        response = await client.get(PAGE)
        found.append((time.perf_counter() - due) * 1000)
        assert response.status_code == 200

    start = time.perf_counter()
    count = 0
    while not stop.is_set() and count < limit:
        due = start + count / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due)))
        count += 1
    await asyncio.gather(*tasks)
    return found


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "max_ms": round(max(values), 2),
    }


_SENDER = """
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=300) as smtp:
    smtp.sendmail("hanako@example.jp", ["support@interiorltd.jp"], open(sys.argv[2], "rb").read())
"""


async def send(port: int, path: Path) -> float:
    """Send from another process, so the probe's own loop measures only the server."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SENDER, str(port), str(path)
    )
    assert await process.wait() == 0
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> dict[str, Any]:
    app_dir = Path(args.app_dir).resolve() if args.app_dir else ROOT
    http_port, smtp_port = free_port(), free_port()
    var = Path(tempfile.mkdtemp(prefix="mail-limits-"))
    env = {
        **os.environ,
        "HELPDESK_VAR_DIR": str(var),
        "HELPDESK_INBOUND_SMTP_PORT": str(smtp_port),
        "HELPDESK_SEND_MAIL_IN_PROCESS": "false",
        "PYTHONPATH": str(app_dir),
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "main.py", "serve", "--port", str(http_port)],
        cwd=app_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    big, worst = var / "large.eml", var / "worst.eml"
    var.mkdir(parents=True, exist_ok=True)
    big.write_bytes(large_mail())
    worst.write_bytes(worst_html_mail())
    result: dict[str, Any] = {"page": PAGE, "mail_mb": round(big.stat().st_size / 2**20, 1)}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            for _ in range(600):
                try:
                    if (await client.get(PAGE)).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            never = asyncio.Event()
            await latencies(client, never, 100, args.rate)  # warm-up
            idle = await latencies(client, never, args.requests, args.rate)
            result["idle"] = summary(idle)
            result["idle_rss_mb"] = round(status(server.pid, "VmRSS"), 1)

            during: list[float] = []
            seconds = []
            for _ in range(args.mails):
                stop = asyncio.Event()
                probe = asyncio.create_task(latencies(client, stop, 10**9, args.rate))
                seconds.append(await send(smtp_port, big))
                stop.set()
                during += await probe
            result["during_30mb"] = summary(during)
            result["smtp_seconds_30mb"] = [round(s, 2) for s in seconds]
            result["p99_ratio"] = round(
                result["during_30mb"]["p99_ms"] / result["idle"]["p99_ms"], 2
            )

            if not args.skip_html:
                idle_rss = status(server.pid, "VmRSS")
                Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # reset VmHWM
                stop = asyncio.Event()
                probe = asyncio.create_task(latencies(client, stop, 10**9, args.rate))
                result["smtp_seconds_worst_html"] = round(await send(smtp_port, worst), 2)
                stop.set()
                result["during_worst_html"] = summary(await probe)
                peak = status(server.pid, "VmHWM")
                result["worst_html_rss"] = {
                    "idle_mb": round(idle_rss, 1),
                    "peak_mb": round(peak, 1),
                    "above_idle_mb": round(peak - idle_rss, 1),
                }
    finally:
        server.terminate()
        server.wait(timeout=30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400, help="idle requests")
    parser.add_argument("--rate", type=float, default=20, help="requests per second")
    parser.add_argument("--app-dir")
    parser.add_argument("--skip-html", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    report = {
        "machine": machine_info(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "app_dir": args.app_dir or ".",
        "result": result,
    }
    idle, during = result["idle"], result["during_30mb"]
    print("## Inbound mail limits\n")
    print(
        f"web page `{PAGE}`, {args.rate:g} requests/s (open loop); "
        f"30 MB mail sent {args.mails} times\n"
    )
    print("| phase | requests | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    for name, row in (("idle", idle), ("during a 30 MB mail", during)):
        print(f"| {name} | {row['n']} | {row['p50_ms']} | {row['p99_ms']} | {row['max_ms']} |")
    if "during_worst_html" in result:
        row = result["during_worst_html"]
        print(
            f"| during the worst HTML mail | {row['n']} | {row['p50_ms']} | {row['p99_ms']} "
            f"| {row['max_ms']} |"
        )
    print(f"\np99 during / idle: {result['p99_ratio']} (target <= 2)")
    print(f"SMTP transaction for the 30 MB mail: {result['smtp_seconds_30mb']} s")
    if "worst_html_rss" in result:
        rss = result["worst_html_rss"]
        print(
            f"worst HTML mail: server RSS {rss['idle_mb']} MB idle, peak {rss['peak_mb']} MB: "
            f"+{rss['above_idle_mb']} MB (target <= 300)"
        )
    RESULTS.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
