#!/usr/bin/env python3
"""Erasure cost against database size, and purge's memory over 100,000 tickets.

Same run, SQLite files in a temporary folder (the default deployment), migrated by the app:

* **erasure**: databases of 1,000 and 100,000 tickets (other customers' tickets with a
  message, two photos, two events and two mails each), each also holding ``--targets``
  customers with 50 tickets and 200 photos (4 per ticket, one file each, 1 KB) and a
  message, two events and two mails per ticket. Each target is erased once (preview,
  request, run: every step of ``helpdesk.privacy.erasure``); reported: the median seconds
  per size and the ratio large/small (target <= 1.5).
* **purge**: over the 100,000-ticket database with half the tickets closed 100 days ago
  (their photos go) and a fifth closed 800 days ago (anonymized), raw mail and FAQ logs
  to empty: the run's seconds, and the memory peak as the rise of the process's peak RSS
  (VmHWM reset through /proc/self/clear_refs) and, in a dry run, tracemalloc's peak; the
  same for the 1,000-ticket database, to show memory does not grow with the size.

Run: ``.venv/bin/python bench/privacy_bench.py [--sizes 1000 100000] [--targets 3]``
(about 3 minutes on 2 cores). Writes ``bench/results/privacy.json``.
This is a script, not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpdesk.db import create_engine, migrate, session_factory, utcnow  # noqa: E402
from helpdesk.photos import PhotoStore  # noqa: E402
from helpdesk.privacy.erasure import Erasure  # noqa: E402
from helpdesk.privacy.purge import purge  # noqa: E402
from helpdesk.privacy.retention import load_retention  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_TICKETS = 50
PHOTOS_PER_TARGET_TICKET = 4
OTHER_TICKETS_PER_CUSTOMER = 5


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def digest_of(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


class Builder:
    """Rows written straight through sqlite3 (executemany), after the app's migrations."""

    def __init__(self, path: Path, media: PhotoStore) -> None:
        self.connection = sqlite3.connect(path)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=OFF")
        self.media = media
        self.ticket_id = 0
        self.message_id = 0
        self.now = utcnow()

    def customer(self, customer_id: int, email: str, name: str) -> None:
        self.connection.execute(
            "INSERT INTO customer (id, email, name, created_at) VALUES (?, ?, ?, ?)",
            (customer_id, email, name, stamp(self.now)),
        )

    def tickets(
        self,
        customer_id: int,
        name: str,
        email: str,
        count: int,
        *,
        photos: int,
        shared_digests: list[str] | None = None,
        status: str = "open",
        updated: datetime | None = None,
        write_files: bool = False,
    ) -> None:
        tickets, messages, attachments, events, outbox = [], [], [], [], []
        updated_at = stamp(updated or self.now)
        for _ in range(count):
            self.ticket_id += 1
            self.message_id += 1
            t, m = self.ticket_id, self.message_id
            tickets.append(
                (
                    t,
                    f"HD-26-{t:07d}",
                    "nonce",
                    "defect",
                    status,
                    "normal",
                    customer_id,
                    name,
                    f"#{100000 + t}",
                    0,
                    "不良品のご連絡",
                    stamp(self.now),
                    updated_at,
                )
            )
            messages.append(
                (
                    m,
                    t,
                    "customer",
                    name,
                    f"{name}です。ケースが割れていました。",
                    "verified",
                    email,
                    stamp(self.now),
                )
            )
            for p in range(photos):
                if shared_digests is not None:
                    digest = shared_digests[(t + p) % len(shared_digests)]
                else:
                    digest = digest_of(f"photo-{t}-{p}")
                    if write_files:
                        self.write_photo(digest)
                attachments.append(
                    (
                        t,
                        m,
                        f"photo_{p}",
                        digest,
                        digest,
                        "image/jpeg",
                        1024,
                        640,
                        480,
                        f"IMG_{p}.jpg",
                        stamp(self.now),
                    )
                )
            events.append(
                (t, "created", email, json.dumps({"client": "203.0.113.5"}), stamp(self.now))
            )
            events.append((t, "status", "system", "{}", stamp(self.now)))
            outbox.append(
                (
                    t,
                    "ticket_confirmation",
                    email,
                    "件名",
                    f"{name} 様",
                    f"<m{t}a@x>",
                    "[]",
                    1,
                    "sent",
                    1,
                    stamp(self.now),
                    updated_at,
                    stamp(self.now),
                )
            )
            outbox.append(
                (
                    t,
                    "ticket_notification",
                    "admin@interiorltd.jp",
                    "件名",
                    "本文",
                    f"<m{t}b@x>",
                    "[]",
                    0,
                    "sent",
                    1,
                    stamp(self.now),
                    updated_at,
                    stamp(self.now),
                )
            )
        c = self.connection
        c.executemany(
            "INSERT INTO ticket (id, reference, token_nonce, kind, status, priority, customer_id,"
            " customer_name, order_number, late, subject, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            tickets,
        )
        c.executemany(
            "INSERT INTO message (id, ticket_id, author, author_name, body, trust, sender,"
            " created_at) VALUES (?,?,?,?,?,?,?,?)",
            messages,
        )
        c.executemany(
            "INSERT INTO attachment (ticket_id, message_id, field, digest, thumb_digest,"
            " content_type, size, width, height, filename, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            attachments,
        )
        c.executemany(
            "INSERT INTO ticket_event (ticket_id, kind, actor, data, created_at)"
            " VALUES (?,?,?,?,?)",
            events,
        )
        c.executemany(
            "INSERT INTO outbox (ticket_id, kind, to_address, subject, text, message_id,"
            " attachments, automatic, status, attempts, next_attempt_at, sent_at, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            outbox,
        )

    def write_photo(self, digest: str) -> None:
        path = self.media.root / digest[:2] / digest[2:4] / f"{digest}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8" + digest.encode() * 16)

    def logs(self, count: int, old: datetime) -> None:
        rows = [
            (b"From: someone@example.jp\r\n\r\n" + b"x" * 2000, "processed", stamp(old))
            for _ in range(count)
        ]
        self.connection.executemany(
            "INSERT INTO inbound_mail (raw, status, attempts, received_at) VALUES (?,?,0,?)",
            rows,
        )
        self.connection.executemany(
            "INSERT INTO faq_gap (query, confidence, created_at) VALUES (?,?,?)",
            [("[電話番号] 株価", 0.1, stamp(old)) for _ in range(count)],
        )

    def commit(self) -> None:
        self.connection.commit()
        self.connection.close()


async def build(folder: Path, size: int, targets: int) -> tuple[str, PhotoStore, list[int]]:
    database = folder / "helpdesk.db"
    url = f"sqlite:///{database}"
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    store = PhotoStore(folder / "media")
    builder = Builder(database, store)
    shared = [digest_of(f"shared-{i}") for i in range(500)]
    for digest in shared:
        builder.write_photo(digest)
    others = size // OTHER_TICKETS_PER_CUSTOMER
    now = builder.now
    for i in range(others):
        customer_id = i + 1
        email = f"customer{customer_id}@example.jp"
        builder.customer(customer_id, email, f"顧客 {customer_id}")
        # Half closed 100 days ago (photos purged), a fifth 800 days ago (anonymized).
        kind = i % 10
        status, updated = (
            ("closed", now - timedelta(days=800))
            if kind < 2
            else ("closed", now - timedelta(days=100))
            if kind < 7
            else ("open", now)
        )
        builder.tickets(
            customer_id,
            f"顧客 {customer_id}",
            email,
            OTHER_TICKETS_PER_CUSTOMER,
            photos=2,
            shared_digests=shared,
            status=status,
            updated=updated,
        )
    target_ids = []
    for t in range(targets):
        customer_id = others + t + 1
        email = f"target{t}@example.jp"
        builder.customer(customer_id, email, f"対象 {t}")
        builder.tickets(
            customer_id,
            f"対象 {t}",
            email,
            TARGET_TICKETS,
            photos=PHOTOS_PER_TARGET_TICKET,
            write_files=True,
        )
        target_ids.append(customer_id)
    builder.logs(size // 10, now - timedelta(days=100))
    builder.commit()
    return url, store, target_ids


async def erase_all(url: str, store: PhotoStore, targets: list[int]) -> list[dict[str, Any]]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    erasure = Erasure(sessions, store, secret_key="bench")
    runs = []
    try:
        for customer_id in targets:
            started = time.perf_counter()
            request = await erasure.create(customer_id, due_at=utcnow(), actor="system")
            done = await erasure.run(request.id)
            seconds = time.perf_counter() - started
            progress = json.loads(done.progress)
            assert progress["tickets"] == TARGET_TICKETS, progress
            assert progress["photos"] == TARGET_TICKETS * PHOTOS_PER_TARGET_TICKET, progress
            assert progress["photo_files"] == TARGET_TICKETS * PHOTOS_PER_TARGET_TICKET * 1
            runs.append({"seconds": seconds, "progress": progress})
    finally:
        await engine.dispose()
    return runs


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


async def purge_run(url: str, store: PhotoStore, *, dry_run: bool, traced: bool) -> dict[str, Any]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    retention = load_retention(ROOT / "data" / "shop.toml")
    if traced:
        tracemalloc.start()
    reset_peak()
    rss_before = _vm("VmRSS")
    started = time.perf_counter()
    try:
        report = await purge(sessions, store, retention, dry_run=dry_run)
    finally:
        await engine.dispose()
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "dry_run": dry_run,
        "seconds": seconds,
        "counts": dict(report.rows()),
        "rss_before_mb": rss_before / 1_048_576,
        "peak_rss_rise_mb": (_vm("VmHWM") - rss_before) / 1_048_576,
    }
    if traced:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["tracemalloc_peak_mb"] = peak / 1_048_576
    return result


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit,
        "date": datetime.now(UTC).isoformat(),
        "load": os.getloadavg(),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 100_000])
    parser.add_argument("--targets", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="privacy-bench-") as temporary:
        for size in args.sizes:
            folder = Path(temporary) / str(size)
            folder.mkdir()
            started = time.perf_counter()
            url, store, targets = await build(folder, size, args.targets + 1)
            built = time.perf_counter() - started
            # The first erasure of a process warms caches and imports: not counted.
            print(f"size {size}: built in {built:.1f} s", file=sys.stderr, flush=True)
            erasures = (await erase_all(url, store, targets))[1:]
            print(f"size {size}: erased", file=sys.stderr, flush=True)
            dry = await purge_run(url, store, dry_run=True, traced=True)
            print(f"size {size}: dry purge {dry['seconds']:.1f} s", file=sys.stderr, flush=True)
            real = await purge_run(url, store, dry_run=False, traced=False)
            results["sizes"][size] = {
                "build_seconds": built,
                "erasure_seconds": [run["seconds"] for run in erasures],
                "erasure_median": statistics.median(run["seconds"] for run in erasures),
                "erasure_progress": erasures[0]["progress"],
                "purge_dry": dry,
                "purge": real,
            }
            print(
                f"size {size}: built in {built:.1f} s, erasures "
                f"{[round(r['seconds'], 3) for r in erasures]}",
                file=sys.stderr,
            )
    small, large = (results["sizes"][s] for s in args.sizes)
    ratio = large["erasure_median"] / small["erasure_median"]
    results["erasure_ratio"] = ratio
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "privacy.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))

    m = results["machine"]
    print(
        f"# privacy_bench ({m['cpu']}, {m['cpus']} CPUs, Python {m['python']}, "
        f"commit {m['commit']}, load {m['load'][0]:.2f})\n"
    )
    print(
        f"Erasing a customer with {TARGET_TICKETS} tickets and "
        f"{TARGET_TICKETS * PHOTOS_PER_TARGET_TICKET} photos ({args.targets} customers, "
        "median):\n"
    )
    print("| tickets in the database | erasure (s), median | runs (s) |")
    print("|---:|---:|---|")
    for size in args.sizes:
        row = results["sizes"][size]
        runs = ", ".join(f"{s:.3f}" for s in row["erasure_seconds"])
        print(f"| {size:,} | {row['erasure_median']:.3f} | {runs} |")
    print(f"\nratio {args.sizes[1]:,} / {args.sizes[0]:,}: **{ratio:.2f}x** (target <= 1.5x)\n")
    print("Purge (retention periods of data/shop.toml):\n")
    print(
        "| tickets | run | seconds | photos | tickets anonymized | inbound raw | faq | "
        "outbox | peak RSS rise (MB) | tracemalloc peak (MB) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        for label, run in (
            ("dry", results["sizes"][size]["purge_dry"]),
            ("real", results["sizes"][size]["purge"]),
        ):
            c = run["counts"]
            traced = run.get("tracemalloc_peak_mb")
            print(
                f"| {size:,} | {label} | {run['seconds']:.1f} | {c['photos']:,} | "
                f"{c['tickets']:,} | {c['inbound_raw']:,} | {c['faq_queries']:,} | "
                f"{c['outbox']:,} | {run['peak_rss_rise_mb']:.1f} | "
                f"{'' if traced is None else f'{traced:.1f}'} |"
            )


if __name__ == "__main__":
    asyncio.run(main())
