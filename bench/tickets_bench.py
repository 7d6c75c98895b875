#!/usr/bin/env python3
"""Benchmark of ticket submissions with photos, and of oversized uploads, on the real server.

Run from the repository root::

    .venv/bin/python bench/tickets_bench.py                  # SQLite, ~2.5 min
    .venv/bin/python bench/tickets_bench.py --database postgresql://postgres@127.0.0.1/madoguchi_bench
    .venv/bin/python bench/tickets_bench.py --quick          # 20 submissions, ~1 min

Three parts, each against a fresh ``main.py serve`` (uvicorn, uvloop + httptools) on a free
port of 127.0.0.1 with a temporary ``HELPDESK_VAR_DIR`` and a fresh database (the default
SQLite file under it, or a PostgreSQL database the script creates with ``psql`` and drops
afterwards; it refuses to touch one that already exists):

1. **Submissions**: ``POST /api/tickets`` (kind=defect, both photos) N times per
   concurrency level, one fresh server per level. Photos are real JPEGs of about 3 MB at a
   phone's 12 MP (4032x3024, smooth content plus sensor-like noise, tuned to the size), one
   distinct photo per field and submission so that the content-addressed store writes every
   one. The defect photo carries EXIF Orientation 6 (portrait, as iPhones store it), so the
   server rotates it. Afterwards every submission is checked: each 201 answer's
   ``status_url`` must open (JSON) with the right reference, and the database must hold
   exactly one ticket per submission (by order number), two attachments per ticket and one
   confirmation mail. Server CPU time comes from ``/proc/<pid>/stat``, its peak RSS from
   ``VmHWM`` in ``/proc/<pid>/status``.
2. **1 GiB upload**: a raw asyncio-streams client streams a 1 GiB multipart body (generated
   chunk by chunk, never held in memory) with a declared ``Content-Length`` and chunked
   without one; either stopping at the server's answer or ignoring it and sending all of it.
   Reported: status, time to the answer, bytes the client wrote, and the server's peak RSS
   per case (``VmHWM`` reset through ``/proc/<pid>/clear_refs`` between cases).
3. **Breakdown** (in-process, same photos): multipart parsing by Starlette, the stages of
   ``PhotoStore.process`` (decode, clean, encode, thumbnail, store with fsync) and
   ``TicketService.submit`` on the same database backend.

Results: Markdown on stdout, JSON in ``bench/results/tickets.json`` (one entry per
database backend, merged into the existing file). No traffic leaves 127.0.0.1.

This is a script, not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faq_bench import ROOT, machine_info

RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
GIB = 1024 * MIB
BOUNDARY = "madoguchi-bench-4f9a1c2e"
PHOTO_FIELDS = ("photo_overall", "photo_defect")
WARMUP_INDEX = 999_999  # order number #1099999


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(min(rank, len(ordered))) - 1]


def working_tree_dirty() -> bool | None:
    """Whether the code under test differs from the commit named in the results."""
    try:
        done = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=normal",
                "--",
                "helpdesk",
                "main.py",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return bool(done.stdout.strip()) if done.returncode == 0 else None


def utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def mib(n_bytes: float) -> float:
    return n_bytes / MIB


def today_in_japan() -> date:
    from faq import load_policy
    from helpdesk.tickets import today_in_japan as today

    return today(load_policy(ROOT / "data" / "shop.toml"))


# --------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------


@dataclass
class PhotoSet:
    """Distinct JPEGs, two per submission: ``photos[2 * i]`` overall, ``[2 * i + 1]`` defect."""

    photos: list[bytes]
    width: int
    height: int
    quality: int
    noise_sigma: float
    seconds: float

    def describe(self) -> dict[str, Any]:
        sizes = [len(p) for p in self.photos]
        return {
            "count": len(sizes),
            "pixels": f"{self.width}x{self.height}",
            "megapixels": round(self.width * self.height / 1e6, 2),
            "quality": self.quality,
            "noise_sigma": round(self.noise_sigma, 2),
            "orientation": "overall: EXIF 1, defect: EXIF 6 (rotated by the server)",
            "bytes_min": min(sizes),
            "bytes_mean": round(statistics.fmean(sizes)),
            "bytes_max": max(sizes),
            "generation_s": round(self.seconds, 2),
            "sizes": sizes,
        }


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0110] = "iPhone 13"  # Model
    exif[0x0112] = orientation
    return exif


def _encode(pixels: np.ndarray, quality: int, orientation: int = 1) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, exif=_exif(orientation))
    return buffer.getvalue()


def make_photos(
    count: int, *, target_bytes: int, width: int, height: int, quality: int, seed: int = 7
) -> PhotoSet:
    """``count`` distinct photo-like JPEGs of about ``target_bytes`` each.

    A smooth picture (random colours upscaled bicubically, like out-of-focus surfaces) plus
    Gaussian noise, the noise level found by bisection so that one encode lands within 2%
    of the target. Each photo then gets its own stamp (a block of its index's colour at its
    own place), so that every cleaned photo has a distinct digest.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(height // 48, 2), max(width // 48, 2), 3), dtype=np.uint8)
    base = np.asarray(
        Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32
    )
    unit = rng.standard_normal(base.shape, dtype=np.float32)

    def pixels(sigma: float, base: np.ndarray = base, unit: np.ndarray = unit) -> np.ndarray:
        return np.clip(base + sigma * unit, 0, 255).astype(np.uint8)

    low, high = 0.0, 64.0
    sigma = 8.0
    for _ in range(14):
        size = len(_encode(pixels(sigma), quality))
        if abs(size - target_bytes) <= 0.02 * target_bytes:
            break
        low, high = (sigma, high) if size < target_bytes else (low, sigma)
        sigma = (low + high) / 2
    master = pixels(sigma)
    del pixels, unit, base  # 220 MB of float32
    photos = []
    side = 96
    for index in range(count):
        variant = master.copy()
        y = (index * 131) % (height - side)
        x = (index * 197) % (width - side)
        variant[y : y + side, x : x + side] = (index % 251, (index * 7) % 253, (index * 13) % 255)
        photos.append(_encode(variant, quality, orientation=1 if index % 2 == 0 else 6))
    return PhotoSet(photos, width, height, quality, sigma, time.perf_counter() - started)


def small_jpeg(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# Multipart bodies (built by hand: the client should not be the bottleneck)
# --------------------------------------------------------------------------------------


def form_fields(index: int, arrived_on: date) -> dict[str, str]:
    return {
        "kind": "defect",
        "name": "山田 花子",
        "email": f"customer{index}@example.jp",
        "order_number": f"#{100000 + index}",
        "arrived_on": arrived_on.isoformat(),
        "description": f"ケースの角にひびが入っていました。(bench submission {index})",
    }


def _field_part(name: str, value: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


def _file_head(name: str, filename: str) -> bytes:
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
        f'name="{name}"; filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode()


CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
TAIL = f"--{BOUNDARY}--\r\n".encode()


def multipart_body(fields: dict[str, str], files: dict[str, bytes]) -> bytes:
    parts = [_field_part(name, value) for name, value in fields.items()]
    for index, (name, data) in enumerate(files.items()):
        parts += [_file_head(name, f"IMG_{index + 1:04d}.JPG"), data, b"\r\n"]
    parts.append(TAIL)
    return b"".join(parts)


# --------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------


class Database:
    """The server's database: a SQLite file under its var dir, or a fresh PostgreSQL one."""

    def __init__(self, url: str | None, var_dir: Path) -> None:
        self.url = url  # None: SQLite under var_dir
        self.var_dir = var_dir
        self.sqlite_path = var_dir / "helpdesk.db"

    @property
    def backend(self) -> str:
        return "postgresql" if self.url else "sqlite"

    @property
    def env_url(self) -> str | None:
        return self.url

    def _psql(self, sql: str, *, database: str = "postgres") -> str:
        from sqlalchemy.engine import make_url

        assert self.url
        parsed = make_url(self.url)
        command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-F", "\t"]
        command += ["-h", parsed.host or HOST, "-U", parsed.username or "postgres"]
        if parsed.port:
            command += ["-p", str(parsed.port)]
        command += ["-d", database, "-c", sql]
        env = dict(os.environ)
        if parsed.password:
            env["PGPASSWORD"] = str(parsed.password)
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    @property
    def pg_name(self) -> str:
        from sqlalchemy.engine import make_url

        assert self.url
        name = make_url(self.url).database
        if not name or not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise SystemExit(f"--database needs a plain database name (a-z, 0-9, _): {name!r}")
        return name

    def create(self) -> None:
        if not self.url:
            return
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.pg_name}'")
        if exists.strip():
            raise SystemExit(
                f"database {self.pg_name} already exists: choose another name or drop it first"
            )
        self._psql(f"CREATE DATABASE {self.pg_name}")

    def drop(self) -> None:
        if self.url:
            self._psql(f"DROP DATABASE IF EXISTS {self.pg_name} WITH (FORCE)")

    def query(self, sql: str) -> list[tuple[str, ...]]:
        if self.url:
            out = self._psql(sql, database=self.pg_name)
            return [tuple(line.split("\t")) for line in out.splitlines() if line]
        with contextlib.closing(sqlite3.connect(self.sqlite_path)) as connection:
            return [tuple(str(v) for v in row) for row in connection.execute(sql).fetchall()]


# --------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------


class Server:
    """``main.py serve`` as a child process with its own var dir and database."""

    def __init__(self, work: Path, database_url: str | None, *, tag: str) -> None:
        self.work = work / tag
        self.var_dir = self.work / "var"
        self.var_dir.mkdir(parents=True)
        self.port = free_port()
        self.database = Database(database_url, self.var_dir)
        self.log_path = self.work / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        self.database.create()
        env = dict(os.environ)
        env["HELPDESK_VAR_DIR"] = str(self.var_dir)
        env["HELPDESK_BASE_URL"] = self.base_url
        env["HELPDESK_SUBMISSION_RATE"] = "100000/1m"
        env.pop("HELPDESK_MAX_PHOTO_MB", None)  # the default, 10 MB
        env.pop("HELPDESK_MEDIA_DIR", None)
        if self.database.env_url:
            env["HELPDESK_DATABASE_URL"] = self.database.env_url
        else:
            env.pop("HELPDESK_DATABASE_URL", None)
        command = [sys.executable, "main.py", "serve", "--host", HOST, "--port", str(self.port)]
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() - started < timeout:
                if self.process.poll() is not None:
                    self.database.drop()
                    raise RuntimeError(f"server exited early:\n{self.log()}")
                try:
                    if client.get(f"{self.base_url}/").status_code == 200:
                        self.ready_s = time.perf_counter() - started
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:g} s:\n{self.log()}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server (all its threads) from /proc/<pid>/stat."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def status(self) -> dict[str, int]:
        """VmRSS, VmHWM, RssAnon, RssFile (kB) and Threads from /proc/<pid>/status."""
        values: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    values[key] = int(rest.split()[0])
        return values

    def rss_mib(self) -> float:
        return self.status().get("VmRSS", 0) / 1024

    def peak_mib(self) -> float:
        return self.status().get("VmHWM", 0) / 1024

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (``clear_refs`` 5); False when not allowed."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
        finally:
            self.database.drop()

    def log(self, tail: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-tail:])
        except OSError:
            return ""

    def log_errors(self) -> dict[str, int]:
        """The exceptions the server logged (last line of each traceback), with counts."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        found: dict[str, int] = {}
        in_traceback = False
        for line in lines:
            if line.startswith("Traceback"):
                in_traceback = True
            elif in_traceback and line and not line[0].isspace():
                if line.startswith(("During handling", "The above exception")) or not line.strip():
                    continue
                if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt|Group|Warning)\b", line):
                    summary = line[:300]
                    found[summary] = found.get(summary, 0) + 1
                    in_traceback = False
        return found


# --------------------------------------------------------------------------------------
# Part 1: submissions
# --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    index: int
    seconds: float
    status: int
    body: dict[str, Any] | None
    error: str = ""
    sent_at: float = 0.0  # time.time() when the request started


@dataclass
class RssSampler:
    server: Server
    max_threads: int = 0
    samples: list[float] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            status = self.server.status()
            self.max_threads = max(self.max_threads, status.get("Threads", 0))
            self.samples.append(status.get("VmRSS", 0) / 1024)
            await asyncio.sleep(0.1)


async def submit_all(
    server: Server, photos: PhotoSet, count: int, concurrency: int, arrived_on: date
) -> tuple[list[Outcome], float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(300.0)
    next_index = 0
    outcomes: list[Outcome] = []

    async with httpx.AsyncClient(
        base_url=server.base_url, limits=limits, timeout=timeout
    ) as client:

        async def worker() -> None:
            nonlocal next_index
            while next_index < count:
                index = next_index
                next_index += 1
                body = multipart_body(
                    form_fields(index, arrived_on),
                    {
                        PHOTO_FIELDS[0]: photos.photos[2 * index],
                        PHOTO_FIELDS[1]: photos.photos[2 * index + 1],
                    },
                )
                started = time.perf_counter()
                sent_at = time.time()
                try:
                    response = await client.post(
                        "/api/tickets", content=body, headers={"Content-Type": CONTENT_TYPE}
                    )
                except httpx.HTTPError as exc:
                    elapsed = time.perf_counter() - started
                    outcomes.append(
                        Outcome(index, elapsed, 0, None, f"{type(exc).__name__}", sent_at)
                    )
                    continue
                elapsed = time.perf_counter() - started
                try:
                    payload = response.json()
                except ValueError:
                    payload = None
                error = "" if response.status_code == 201 else f"HTTP {response.status_code}"
                outcomes.append(
                    Outcome(index, elapsed, response.status_code, payload, error, sent_at)
                )

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return outcomes, wall


async def verify(server: Server, outcomes: list[Outcome], warmup_reference: str) -> dict[str, Any]:
    """Every submission made exactly one ticket; every answered one opens by its status URL."""
    status_ok = 0
    status_problems: list[str] = []
    async with httpx.AsyncClient(timeout=30.0) as client:
        for outcome in outcomes:
            if outcome.status != 201 or not outcome.body:
                continue
            url = httpx.URL(outcome.body["status_url"])
            if url.host != HOST:
                status_problems.append(f"status_url not on the bench server: {url}")
                continue
            response = await client.get(url, headers={"Accept": "application/json"})
            data = response.json() if response.status_code == 200 else {}
            marker = f"(bench submission {outcome.index})"
            if (
                data.get("reference") == outcome.body["reference"]
                and data.get("kind") == "defect"
                and any(marker in m.get("body", "") for m in data.get("messages", []))
            ):
                status_ok += 1
            elif len(status_problems) < 5:
                status_problems.append(f"{outcome.body['reference']}: HTTP {response.status_code}")

    database = server.database
    tickets = database.query("SELECT reference, order_number FROM ticket ORDER BY id")
    per_order: dict[int, int] = {}
    for _reference, order_number in tickets:
        digits = re.sub(r"\D", "", order_number or "")
        if digits and 100000 <= int(digits) < 100000 + WARMUP_INDEX:
            per_order[int(digits) - 100000] = per_order.get(int(digits) - 100000, 0) + 1
    indexes = {o.index for o in outcomes}
    missing = sorted(indexes - set(per_order))
    duplicated = sorted(i for i, n in per_order.items() if n > 1)
    unexpected = sorted(set(per_order) - indexes)
    references = {reference for reference, _ in tickets}
    answered = {o.body["reference"] for o in outcomes if o.status == 201 and o.body}
    attachments = int(database.query("SELECT count(*) FROM attachment")[0][0])
    mails = dict(database.query("SELECT kind, count(*) FROM outbox GROUP BY kind"))
    confirmations = int(mails.get("ticket_confirmation", 0))
    digests = int(database.query("SELECT count(DISTINCT digest) FROM attachment")[0][0])
    media = server.var_dir / "media"
    media_files = [p for p in media.rglob("*") if p.is_file()] if media.exists() else []
    leftovers = [p.name for p in media_files if p.name.startswith(".upload-")]
    bench_tickets = len(tickets) - (1 if warmup_reference in references else 0)
    return {
        "tickets": len(tickets),
        "bench_tickets": bench_tickets,
        "missing": missing,
        "duplicated": duplicated,
        "unexpected": unexpected,
        "answered_references_found": len(answered & references),
        "answered_references": len(answered),
        "status_url_ok": status_ok,
        "status_url_problems": status_problems,
        "attachments": attachments,
        "distinct_photo_digests": digests,
        "confirmation_mails": confirmations,
        "outbox_by_kind": {kind: int(n) for kind, n in mails.items()},
        "media_files": len(media_files),
        "media_mib": round(mib(sum(p.stat().st_size for p in media_files)), 1),
        "temporary_files_left": len(leftovers),
        "ok": (
            not missing
            and not duplicated
            and not unexpected
            and bench_tickets == len(indexes)
            and status_ok == len(answered)
            and len(answered & references) == len(answered)
            and attachments == 2 * len(tickets)
            and confirmations == len(tickets)
            and not leftovers
        ),
    }


async def submissions_phase(
    work: Path,
    database_url: str | None,
    photos: PhotoSet,
    count: int,
    concurrency: int,
    arrived_on: date,
) -> dict[str, Any]:
    server = Server(work, database_url, tag=f"submit-c{concurrency}")
    server.start()
    try:
        # One small submission first: imports, first connection, templates, mail composer.
        warmup = multipart_body(
            form_fields(WARMUP_INDEX, arrived_on),
            {PHOTO_FIELDS[0]: small_jpeg("navy"), PHOTO_FIELDS[1]: small_jpeg("red")},
        )
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60.0) as client:
            response = await client.post(
                "/api/tickets", content=warmup, headers={"Content-Type": CONTENT_TYPE}
            )
        if response.status_code != 201:
            raise RuntimeError(
                f"warm-up submission failed: {response.status_code} {response.text}\n{server.log()}"
            )
        warmup_reference = response.json()["reference"]
        idle = server.status()
        cpu_before = server.cpu_seconds()
        client_cpu_before = time.process_time()
        sampler = RssSampler(server)
        sampling = asyncio.create_task(sampler.run())
        try:
            outcomes, wall = await submit_all(server, photos, count, concurrency, arrived_on)
        finally:
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
        cpu = server.cpu_seconds() - cpu_before
        client_cpu = time.process_time() - client_cpu_before
        after = server.status()
        checked = await verify(server, outcomes, warmup_reference)
    finally:
        server.stop()
    ok = [o.seconds for o in outcomes if o.status == 201]
    every = [o.seconds for o in outcomes]
    errors = [o for o in outcomes if o.status != 201]
    error_kinds: dict[str, int] = {}
    for outcome in errors:
        error_kinds[outcome.error] = error_kinds.get(outcome.error, 0) + 1
    return {
        "database": server.database.backend,
        "concurrency": concurrency,
        "submissions": count,
        "created": len(ok),
        "errors": len(errors),
        "error_kinds": error_kinds,
        "error_examples": [
            {
                "index": o.index,
                "sent_at": utc(o.sent_at),
                "failed_at": utc(o.sent_at + o.seconds),
                "after_s": round(o.seconds, 2),
                "error": o.error,
                "body": o.body,
            }
            for o in sorted(errors, key=lambda o: o.index)[:10]
        ],
        "failed_latency_s": sorted(round(o.seconds, 2) for o in errors),
        "wall_s": round(wall, 2),
        "submissions_per_s": round(len(ok) / wall, 2) if wall else 0.0,
        "upload_mib_per_s": round(
            mib(
                sum(
                    len(photos.photos[2 * o.index]) + len(photos.photos[2 * o.index + 1])
                    for o in outcomes
                )
            )
            / wall,
            1,
        ),
        "p50_s": round(percentile(every, 50), 3),
        "p90_s": round(percentile(every, 90), 3),
        "p99_s": round(percentile(every, 99), 3),
        "max_s": round(max(every), 3) if every else 0.0,
        "min_s": round(min(every), 3) if every else 0.0,
        "server_ready_s": round(server.ready_s, 2),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_per_submission_s": round(cpu / count, 3) if count else 0.0,
        "server_cpu_per_wall_s": round(cpu / wall, 2) if wall else 0.0,
        "client_cpu_s": round(client_cpu, 2),
        "server_rss_idle_mib": round(idle.get("VmRSS", 0) / 1024, 1),
        "server_rss_idle_anon_mib": round(idle.get("RssAnon", 0) / 1024, 1),
        "server_rss_idle_file_mib": round(idle.get("RssFile", 0) / 1024, 1),
        "server_rss_end_mib": round(after.get("VmRSS", 0) / 1024, 1),
        "server_peak_rss_mib": round(after.get("VmHWM", 0) / 1024, 1),
        "server_max_threads": sampler.max_threads,
        "verification": checked,
        "server_log_errors": server.log_errors(),
    }


# --------------------------------------------------------------------------------------
# Part 2: a 1 GiB upload
# --------------------------------------------------------------------------------------


def upload_pieces(total: int, arrived_on: date, chunk: bytes) -> Iterator[bytes]:
    """A multipart body of exactly ``total`` bytes: the form, then one huge photo part."""
    head = b"".join(_field_part(k, v) for k, v in form_fields(0, arrived_on).items())
    head += _file_head(PHOTO_FIELDS[0], "huge.jpg") + b"\xff\xd8\xff\xe0"
    tail = b"\r\n" + TAIL
    filler = total - len(head) - len(tail)
    yield head
    while filler > 0:
        piece = chunk if filler >= len(chunk) else chunk[:filler]
        filler -= len(piece)
        yield piece
    yield tail


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, float, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    at = time.perf_counter()
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, at, body


async def upload_case(
    server: Server,
    *,
    chunked: bool,
    stop_on_answer: bool,
    total: int,
    arrived_on: date,
    time_limit: float,
) -> dict[str, Any]:
    chunk = os.urandom(MIB)
    headers = [
        "POST /api/tickets HTTP/1.1",
        f"Host: {HOST}:{server.port}",
        f"Content-Type: {CONTENT_TYPE}",
        "Accept: application/json",
    ]
    headers.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    reset = server.reset_peak()
    before = server.status()
    cpu_before = server.cpu_seconds()
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.transport.set_write_buffer_limits(high=256 * 1024)
    started = time.perf_counter()
    writer.write(("\r\n".join(headers) + "\r\n\r\n").encode())
    answer = asyncio.ensure_future(_read_response(reader))
    handed = 0  # body bytes handed to the transport
    transport_error = ""
    stopped_by = "all sent"
    finished = True
    try:
        for piece in upload_pieces(total, arrived_on, chunk):
            if stop_on_answer and answer.done():
                stopped_by = "answer"
                finished = False
                break
            if time.perf_counter() - started > time_limit:
                stopped_by = "time limit"
                finished = False
                break
            if writer.is_closing():
                stopped_by = "connection closed"
                finished = False
                break
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            handed += len(piece)
            drain = asyncio.ensure_future(writer.drain())
            waiting: set[asyncio.Future[Any]] = {drain}
            if stop_on_answer:
                waiting.add(answer)
            await asyncio.wait(waiting, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED)
            if not drain.done():
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await drain
                continue  # the answer came (checked at the top of the loop) or the time ran out
            if (exc := drain.exception()) is not None:
                transport_error = type(exc).__name__
                stopped_by = f"send failed ({transport_error})"
                finished = False
                break
        else:
            if chunked:
                writer.write(b"0\r\n\r\n")
                with contextlib.suppress(OSError):
                    await writer.drain()
        sent_seconds = time.perf_counter() - started
        written = handed - writer.transport.get_write_buffer_size()
        status, answered_at, body = 0, 0.0, b""
        try:
            status, answered_at, body = await asyncio.wait_for(answer, timeout=30.0)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError) as exc:
            transport_error = transport_error or type(exc).__name__
        closed_by_server = False
        if status:
            try:
                closed_by_server = await asyncio.wait_for(reader.read(1), timeout=2.0) == b""
            except (TimeoutError, ConnectionError):
                closed_by_server = False
    finally:
        if not answer.done():
            answer.cancel()
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()
    await asyncio.sleep(0.3)  # let the server finish with the connection
    after = server.status()
    try:
        message = json.loads(body).get("error", "") if body else ""
    except ValueError:
        message = body[:120].decode(errors="replace")
    return {
        "framing": "chunked" if chunked else "Content-Length: 1 GiB",
        "client": "stops at the answer" if stop_on_answer else "ignores the answer",
        "status": status,
        "answer_after_s": round(answered_at - started, 3) if answered_at else None,
        "client_done_s": round(sent_seconds, 3),
        "body_bytes_written": written,
        "finished_sending": finished,
        "stopped_by": stopped_by,
        "transport_error": transport_error,
        "connection_closed_by_server": closed_by_server,
        "message": message,
        "server_cpu_s": round(server.cpu_seconds() - cpu_before, 2),
        "peak_reset": reset,
        "server_rss_before_mib": round(before.get("VmRSS", 0) / 1024, 1),
        "server_peak_before_mib": round(before.get("VmHWM", 0) / 1024, 1),
        "server_peak_after_mib": round(after.get("VmHWM", 0) / 1024, 1),
        "server_rss_after_mib": round(after.get("VmRSS", 0) / 1024, 1),
    }


async def upload_phase(
    work: Path, database_url: str | None, arrived_on: date, time_limit: float
) -> dict[str, Any]:
    server = Server(work, database_url, tag="upload")
    server.start()
    cases = []
    try:
        idle = server.status()
        for chunked, stop in ((False, True), (True, True), (False, False), (True, False)):
            cases.append(
                await upload_case(
                    server,
                    chunked=chunked,
                    stop_on_answer=stop,
                    total=GIB,
                    arrived_on=arrived_on,
                    time_limit=time_limit,
                )
            )
        final = server.status()
    finally:
        server.stop()
    return {
        "total_bytes": GIB,
        "limit_bytes": 2 * 10 * MIB + MIB,
        "server_rss_idle_mib": round(idle.get("VmRSS", 0) / 1024, 1),
        "server_rss_idle_anon_mib": round(idle.get("RssAnon", 0) / 1024, 1),
        "server_rss_idle_file_mib": round(idle.get("RssFile", 0) / 1024, 1),
        "server_peak_since_start_mib": round(final.get("VmHWM", 0) / 1024, 1)
        if not any(c["peak_reset"] for c in cases)
        else None,
        "cases": cases,
        "server_log_errors": server.log_errors(),
    }


# --------------------------------------------------------------------------------------
# Part 3: where the time goes (in-process)
# --------------------------------------------------------------------------------------


def _median_time(function: Any, repeat: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def _parse_form(body: bytes) -> float:
    from starlette.requests import Request

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    stream = pieces()

    async def receive() -> dict[str, Any]:
        try:
            piece = await stream.__anext__()
        except StopAsyncIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": piece, "more_body": True}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/tickets",
        "headers": [(b"content-type", CONTENT_TYPE.encode())],
        "query_string": b"",
    }
    request = Request(scope, receive)
    started = time.perf_counter()
    async with request.form(max_files=4, max_fields=40) as form:
        for name in PHOTO_FIELDS:
            upload = form[name]
            await upload.read()  # type: ignore[union-attr]
    return time.perf_counter() - started


async def breakdown_phase(
    work: Path, database_url: str | None, photos: PhotoSet, arrived_on: date, repeat: int
) -> dict[str, Any]:
    from helpdesk import photos as photo_module
    from helpdesk.app import Helpdesk
    from helpdesk.settings import Settings
    from helpdesk.tickets import validate_submission

    result: dict[str, Any] = {"repeat": repeat}
    body = multipart_body(
        form_fields(0, arrived_on),
        {PHOTO_FIELDS[0]: photos.photos[0], PHOTO_FIELDS[1]: photos.photos[1]},
    )
    parse = [await _parse_form(body) for _ in range(repeat)]
    result["multipart_parse_s"] = round(statistics.median(parse), 4)

    folder = work / "breakdown"
    store = photo_module.PhotoStore(folder / "media")
    stages: dict[str, dict[str, float]] = {}
    for name, data in ((PHOTO_FIELDS[0], photos.photos[0]), (PHOTO_FIELDS[1], photos.photos[1])):
        times: dict[str, list[float]] = {}

        def timed(
            stage: str, function: Any, *args: Any, times: dict[str, list[float]] = times
        ) -> Any:
            started = time.perf_counter()
            value = function(*args)
            times.setdefault(stage, []).append(time.perf_counter() - started)
            return value

        def decode(data: bytes) -> Any:
            image = store._open(data, "写真")
            store._decode(image, store._check(image, data, "写真"), "写真")
            return image

        def encode(image: Any, turn: Any) -> bytes:
            buffer = io.BytesIO()
            photo_module._encode(image, "image/jpeg", buffer, turn)
            return buffer.getvalue()

        for attempt in range(repeat):
            image = timed("decode", decode, data)
            cleaned, turn = timed(
                "clean (sRGB, metadata)",
                lambda i=image: photo_module._clean(i, transparent_png=False),
            )
            encoded = timed("encode JPEG q85 (turned upright)", encode, cleaned, turn)
            thumb = timed(
                "thumbnail 320 px", photo_module._thumbnail, cleaned, store.thumb_size, turn
            )
            # A fresh store per attempt, else the content-addressed store skips the write.
            attempt_store = photo_module.PhotoStore(folder / f"media-{name}-{attempt}")
            timed(
                "encode, hash, write, fsync x2",
                lambda s=attempt_store, c=cleaned, t=thumb, r=turn: (
                    s._store_image(c, "image/jpeg", r),
                    s._store_image(t, "image/jpeg"),
                ),
            )
            del encoded
        whole, stored = _median_time(
            lambda d=data, n=name: photo_module.PhotoStore(
                folder / f"whole-{n}-{time.perf_counter_ns()}"
            ).process(d, filename="IMG.JPG", field_label="写真"),
            repeat,
        )
        stages[name] = {stage: round(statistics.median(v), 4) for stage, v in times.items()}
        stages[name]["PhotoStore.process (whole)"] = round(whole, 4)
        stages[name]["output_bytes"] = stored.size
        stages[name]["output_pixels"] = f"{stored.width}x{stored.height}"  # type: ignore[assignment]
    result["photo_stages_s"] = stages

    # TicketService.submit on the same backend, with photos already stored.
    database = Database(database_url, folder / "var")
    database.create()
    try:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            var_dir=folder / "var",
            database_url=database_url,
            secret_key="bench-secret-key-not-for-production",
            submission_rate="100000/1m",
        )
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            stored = {
                name: helpdesk.photos.process(data, filename="IMG.JPG", field_label="写真")
                for name, data in zip(PHOTO_FIELDS, photos.photos[:2], strict=True)
            }
            policy = helpdesk.faq.policy
            times = []
            count = max(repeat * 4, 10)
            for index in range(count):
                checked = validate_submission(
                    form_fields(index, arrived_on), today=arrived_on, policy=policy
                )
                assert checked.submission is not None, checked.errors
                started = time.perf_counter()
                await helpdesk.tickets.submit(checked.submission, stored, late=checked.late)
                times.append(time.perf_counter() - started)
            result["ticket_submit_s"] = round(statistics.median(times[1:]), 4)
            result["ticket_submit_first_s"] = round(times[0], 4)
            result["ticket_submit_count"] = count
        finally:
            await helpdesk.shutdown()
    finally:
        database.drop()
    return result


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    out: list[str] = []
    m = report["machine"]
    out.append(
        f"## tickets_bench ({report['database']}): {m.get('cpu_model')}, {m.get('nproc')} CPUs, "
        f"Python {m.get('python')}, commit {m.get('git_commit')}"
        f"{' + uncommitted changes' if m.get('working_tree_dirty') else ''}, {m.get('date')}, "
        f"load average at start {m.get('loadavg_at_start')}\n"
    )
    p = report["photos"]
    out.append(
        f"Photos: {p['count']} distinct JPEGs, {p['pixels']} ({p['megapixels']} MP), quality "
        f"{p['quality']}, {p['bytes_min']:,}-{p['bytes_max']:,} bytes (mean "
        f"{p['bytes_mean']:,} = {mib(p['bytes_mean']):.2f} MiB); {p['orientation']}; "
        f"generated in {p['generation_s']} s.\n"
    )
    if report.get("submissions"):
        out.append("### POST /api/tickets with two photos\n")
        out.append(
            "| concurrency | created / sent | errors | wall | submissions/s | upload MiB/s | p50 "
            "| p90 | p99 | max | server CPU (per submission) | server CPU/wall | client CPU "
            "| server RSS idle → peak (VmHWM) | threads | verified |"
        )
        out.append(
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        )
        for row in report["submissions"]:
            v = row["verification"]
            verdict = (
                f"{'yes' if v['ok'] else '**NO**'}: {v['bench_tickets']} tickets, missing "
                f"{len(v['missing'])}, duplicated {len(v['duplicated'])}, status URLs "
                f"{v['status_url_ok']}/{v['answered_references']}, attachments "
                f"{v['attachments']}, mails {v['confirmation_mails']}"
            )
            out.append(
                f"| {row['concurrency']} | {row['created']} / {row['submissions']} | "
                f"{row['errors']} | {row['wall_s']:.1f} s | {row['submissions_per_s']:.2f} | "
                f"{row['upload_mib_per_s']:.1f} | {row['p50_s']:.2f} s | {row['p90_s']:.2f} s | "
                f"{row['p99_s']:.2f} s | {row['max_s']:.2f} s | {row['server_cpu_s']:.1f} s "
                f"({row['server_cpu_per_submission_s']:.2f} s) | "
                f"{row['server_cpu_per_wall_s']:.2f} | "
                f"{row['client_cpu_s']:.1f} s | {row['server_rss_idle_mib']:.0f} → "
                f"{row['server_peak_rss_mib']:.0f} MiB | {row['server_max_threads']} | {verdict} |"
            )
        for row in report["submissions"]:
            if row["errors"] or row["server_log_errors"]:
                kinds = ", ".join(f"{k} ×{n}" for k, n in row["error_kinds"].items())
                logged = "; ".join(f"{k} ×{n}" for k, n in row["server_log_errors"].items())
                out.append(
                    f"\nConcurrency {row['concurrency']}: client errors {kinds or 'none'}; server "
                    f"log (each failure may be logged twice): {logged or 'nothing'}."
                )
        first = report["submissions"][0]
        out.append(
            f"\nServer RSS when idle (after one warm-up submission): "
            f"{first['server_rss_idle_mib']:.0f} MiB = {first['server_rss_idle_anon_mib']:.0f} "
            f"MiB anonymous + {first['server_rss_idle_file_mib']:.0f} MiB file-backed; ready "
            f"{first['server_ready_s']:.1f} s after spawn."
        )
        out.append("")
    if report.get("upload"):
        u = report["upload"]
        out.append(
            f"### 1 GiB upload to POST /api/tickets (limit {u['limit_bytes']:,} bytes; server "
            f"idle RSS {u['server_rss_idle_mib']:.0f} MiB)\n"
        )
        out.append(
            "| framing | client | status | answer after | client done | body bytes written "
            "| stopped by | closed by server | server CPU | server peak RSS before → after |"
        )
        out.append("|---|---|---:|---:|---:|---:|---|---|---:|---:|")
        for c in u["cases"]:
            answer = f"{c['answer_after_s']:.3f} s" if c["answer_after_s"] is not None else "-"
            error = f" ({c['transport_error']})" if c["transport_error"] else ""
            out.append(
                f"| {c['framing']} | {c['client']} | {c['status'] or '-'}{error} | {answer} | "
                f"{c['client_done_s']:.3f} s | {c['body_bytes_written']:,} "
                f"({mib(c['body_bytes_written']):.1f} MiB) | {c['stopped_by']} | "
                f"{'yes' if c['connection_closed_by_server'] else 'no'} | "
                f"{c['server_cpu_s']:.2f} s | "
                f"{c['server_peak_before_mib']:.0f} → {c['server_peak_after_mib']:.0f} MiB |"
            )
        out.append("")
    if report.get("breakdown"):
        b = report["breakdown"]
        out.append(f"### Where a submission's time goes (in-process, median of {b['repeat']})\n")
        stages = b["photo_stages_s"]
        names = list(stages)
        out.append("| stage | " + " | ".join(names) + " |")
        out.append("|---|" + "---:|" * len(names))
        for stage in stages[names[0]]:
            cells = []
            for name in names:
                value = stages[name][stage]
                cells.append(
                    f"{value * 1000:.0f} ms"
                    if isinstance(value, float)
                    else f"{value:,}"
                    if isinstance(value, int)
                    else str(value)
                )
            out.append(f"| {stage} | " + " | ".join(cells) + " |")
        out.append("")
        out.append(
            f"Multipart parsing of one submission (Starlette, spooled to disk): "
            f"{b['multipart_parse_s'] * 1000:.0f} ms; `TicketService.submit` "
            f"({report['database']}): {b['ticket_submit_s'] * 1000:.1f} ms "
            f"(first {b['ticket_submit_first_s'] * 1000:.1f} ms).\n"
        )
    return "\n".join(out)


def write_results(report: dict[str, Any], path: Path) -> None:
    existing: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(ValueError, OSError):
            existing = json.loads(path.read_text())
    runs = existing.get("runs", {}) if isinstance(existing.get("runs"), dict) else {}
    runs[report["database"]] = report
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": runs}, ensure_ascii=False, indent=2) + "\n")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    database_url = None if args.database == "sqlite" else args.database
    if database_url and not database_url.startswith(("postgresql://", "postgres://")):
        raise SystemExit("--database is 'sqlite' or postgresql://user@127.0.0.1/<new db>")
    if database_url:
        Database(database_url, Path(".")).pg_name  # noqa: B018 (validates the name early)
    arrived_on = today_in_japan()
    count = args.submissions
    print(
        f"Making {2 * count} photos of ~{args.photo_mb} MB ({args.width}x{args.height})...",
        file=sys.stderr,
    )
    photos = make_photos(
        2 * count,
        target_bytes=int(args.photo_mb * 1_000_000),
        width=args.width,
        height=args.height,
        quality=args.quality,
    )
    report: dict[str, Any] = {
        "machine": {**machine_info(), "working_tree_dirty": working_tree_dirty()},
        "database": "postgresql" if database_url else "sqlite",
        "photos": photos.describe(),
        "submissions": [],
    }
    with contextlib.ExitStack() as stack:
        if args.keep:
            work = Path(tempfile.mkdtemp(prefix="tickets-bench-"))
            print(f"Keeping servers' var dirs and logs in {work}", file=sys.stderr)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickets-bench-")))
        for concurrency in args.concurrency:
            print(f"Submissions: {count} at concurrency {concurrency}...", file=sys.stderr)
            report["submissions"].append(
                await submissions_phase(work, database_url, photos, count, concurrency, arrived_on)
            )
        if not args.skip_upload:
            print("1 GiB uploads...", file=sys.stderr)
            report["upload"] = await upload_phase(work, database_url, arrived_on, args.time_limit)
        if not args.skip_breakdown:
            print("Breakdown (in-process)...", file=sys.stderr)
            report["breakdown"] = await breakdown_phase(
                work, database_url, photos, arrived_on, args.repeat
            )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database",
        default="sqlite",
        help="'sqlite' (default) or postgresql://user@127.0.0.1/<name>: created, then dropped",
    )
    parser.add_argument("--submissions", type=int, default=60, help="per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 20])
    parser.add_argument("--photo-mb", type=float, default=3.0, help="target size, 10^6 bytes")
    parser.add_argument("--width", type=int, default=4032)
    parser.add_argument("--height", type=int, default=3024)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=3, help="breakdown repetitions")
    parser.add_argument("--time-limit", type=float, default=60.0, help="per 1 GiB upload case")
    parser.add_argument("--skip-upload", action="store_true")
    parser.add_argument("--skip-breakdown", action="store_true")
    parser.add_argument("--quick", action="store_true", help="20 submissions per level")
    parser.add_argument(
        "--keep", action="store_true", help="keep the servers' var dirs and logs (temp dir)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "tickets.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.submissions = 20
    if not 1 <= args.submissions <= 500 or not all(1 <= c <= 100 for c in args.concurrency):
        parser.error("--submissions must be 1-500 and --concurrency 1-100")
    report = asyncio.run(run(args))
    print(markdown(report))
    write_results(report, args.output)
    print(f"\nWrote {args.output}", file=sys.stderr)
    failed = any(not row["verification"]["ok"] for row in report["submissions"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
