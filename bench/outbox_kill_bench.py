#!/usr/bin/env python3
"""The outbox sender killed while it sends, again and again: how often a mail goes twice.

No protocol makes the SMTP server's "250 accepted" and our record of it atomic: a sender
killed between the two sends that mail again after the handover (same Message-ID). This
bench measures how often that happens when the kill lands at a random moment while the
sender is busy sending (the worst case: in the load test it is idle most of the time),
for two ways of recording a mail sent, alternating in the same run:

- ``before``, the way before issue 13's fix: after the 250, the SMTP ``QUIT`` and its
  reply, then a session from the pool (pre-ping), ``BEGIN``, the fenced ``UPDATE``,
  ``COMMIT``;
- ``now`` (today's ``OutboxSender`` and ``SmtpTransport``): straight after the 250, one
  autocommitted ``UPDATE`` on a connection checked out before the mail went (PostgreSQL
  keeps it once written, even if the process dies the next moment); ``QUIT`` after.

Each round starts a sender process (``--child``: the real ``OutboxSender`` and
``SmtpTransport``, sending to a recording aiosmtpd server in this process), waits until it
has sent its first mail, kills it with SIGKILL after a random 20-400 ms, and counts. A new
sender first releases its predecessor's leases (as a new leader does). At the end, one
sender drains the rest; every Message-ID must have arrived, and those that arrived twice
are counted.

    .venv/bin/python bench/outbox_kill_bench.py --database-url postgresql://postgres@127.0.0.1/DB
        [--kills 25] [--mails 6000] [--seed 1]

The database's tables are dropped and created again. Writes
``bench/results/outbox_kill.json``. A script, not a test (PostgreSQL only: SQLite commits
inside the process, so the autocommit write does not outlive it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
VARIANTS = ("before", "now")
FROM_ADDRESS = "admin@interiorltd.jp"


# -- the sender process ----------------------------------------------------------------------


async def child(database_url: str, port: int, variant: str) -> None:
    from helpdesk.db import create_engine, session_factory, utcnow
    from helpdesk.mail.outbox import LEASE_SECONDS, OutboxSender, SmtpTransport, release_leases

    if variant == "before":

        @contextlib.asynccontextmanager
        async def no_connection(self: OutboxSender) -> AsyncIterator[None]:
            yield None  # _mark_sent then records in a session of its own, as before

        send = SmtpTransport.send

        async def send_and_quit(self: SmtpTransport, *args: Any, **kwargs: Any) -> None:
            await send(self, *args, **kwargs)
            await asyncio.gather(*self._quitting)  # QUIT answered before returning, as before

        OutboxSender._connection_to_record_sent = no_connection  # type: ignore[method-assign,assignment]
        SmtpTransport.send = send_and_quit  # type: ignore[method-assign]
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    # A new leader makes its predecessor's claims due at once.
    await release_leases(sessions, claimed_before=utcnow(), lease_seconds=LEASE_SECONDS)
    sender = OutboxSender(
        sessions,
        SmtpTransport("127.0.0.1", port, security="none", timeout=30),
        from_address=FROM_ADDRESS,
        from_name="bench",
    )
    print("ready", flush=True)
    handled = await sender.drain()
    print(f"drained {handled}", flush=True)
    await engine.dispose()


# -- the bench -------------------------------------------------------------------------------


async def reset(database_url: str, mails: int) -> None:
    from sqlalchemy import text

    from helpdesk import db
    from helpdesk.models import Outbox

    engine = db.create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await db.migrate(engine)
    async with db.session_factory(engine)() as session:
        session.add_all(
            Outbox(
                kind="ticket_confirmation",
                to_address=f"customer{n}@example.jp",
                subject=f"お問い合わせを受け付けました（{n}）",
                text=f"山田様\n\nお問い合わせ番号 {n} を受け付けました。\n",
                message_id=f"kill-bench-{n}@interiorltd.jp",
            )
            for n in range(mails)
        )
        await session.commit()
    await engine.dispose()


def start_child(args: argparse.Namespace, port: int, variant: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", args.database_url, str(port), variant],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_variant(
    args: argparse.Namespace, variant: str, rng: random.Random, received: list[bytes]
) -> dict[str, Any]:
    from aiosmtpd.controller import Controller

    sys.path.insert(0, str(ROOT / "bench"))
    from faq_api_bench import free_port
    from workers_bench import message_id

    class Recorder:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(bytes(envelope.original_content or envelope.content))
            return "250 OK"

    asyncio.run(reset(args.database_url, args.mails))
    received.clear()
    port = free_port()
    controller = Controller(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    kills: list[dict[str, Any]] = []
    seconds = 0.0
    try:
        for _ in range(args.kills):
            sender = start_child(args, port, variant)
            assert sender.stdout is not None
            assert sender.stdout.readline().strip() == "ready", sender.stderr
            before = len(received)
            deadline = time.monotonic() + 30
            while len(received) == before and time.monotonic() < deadline:
                time.sleep(0.001)
            started = time.monotonic()
            time.sleep(rng.uniform(0.02, 0.4))
            sent_before_kill = len(received) - before
            sender.send_signal(signal.SIGKILL)
            sender.wait()
            seconds += time.monotonic() - started
            kills.append({"sent": sent_before_kill, "returncode": sender.returncode})
            if sender.returncode != -signal.SIGKILL:
                raise RuntimeError(f"the sender ended before the kill: {sender.stderr}")
        final = start_child(args, port, variant)
        _, err = final.communicate(timeout=600)
        if final.returncode != 0:
            raise RuntimeError(err)
    finally:
        controller.stop()
    arrived = Counter(message_id(raw) for raw in received)
    expected = {f"kill-bench-{n}@interiorltd.jp" for n in range(args.mails)}
    twice = sum(n - 1 for n in arrived.values() if n > 1)
    sent_during = sum(k["sent"] for k in kills)
    return {
        "variant": variant,
        "kills": len(kills),
        "mails": args.mails,
        "received": len(received),
        "lost": len(expected - set(arrived)),
        "received_twice": twice,
        "duplicates_per_kill": twice / len(kills),
        "mails_per_second_while_sending": sent_during / seconds if seconds else None,
        "median_mails_before_kill": statistics.median(k["sent"] for k in kills),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="postgresql://... (wiped)")
    parser.add_argument("--kills", type=int, default=25, help="kills per variant and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both variants")
    parser.add_argument("--mails", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, port, variant = args.child
        asyncio.run(child(url, int(port), variant))
        return
    if not args.database_url.startswith("postgresql"):
        sys.exit("PostgreSQL only (see the docstring)")
    rng = random.Random(args.seed)
    received: list[bytes] = []
    results = []
    for round_number in range(args.rounds):
        for variant in VARIANTS:
            result = run_variant(args, variant, rng, received)
            result["round"] = round_number + 1
            print(json.dumps(result), flush=True)
            results.append(result)
    summary = {}
    for variant in VARIANTS:
        mine = [r for r in results if r["variant"] == variant]
        kills = sum(r["kills"] for r in mine)
        twice = sum(r["received_twice"] for r in mine)
        summary[variant] = {
            "kills": kills,
            "received_twice": twice,
            "duplicates_per_kill": twice / kills,
            "lost": sum(r["lost"] for r in mine),
            "mails_per_second_while_sending": statistics.median(
                r["mails_per_second_while_sending"] for r in mine
            ),
        }
    print("\n| recording a mail sent | kills while sending | mails twice | per kill | lost |")
    print("|---|---:|---:|---:|---:|")
    for variant, row in summary.items():
        print(
            f"| {variant} | {row['kills']} | {row['received_twice']} |"
            f" {row['duplicates_per_kill']:.0%} | {row['lost']} |"
        )
    RESULTS.mkdir(exist_ok=True)
    report = {"machine": {"cpus": os.cpu_count()}, "runs": results, "summary": summary}
    (RESULTS / "outbox_kill.json").write_text(json.dumps(report, indent=2) + "\n")
    print("JSON: bench/results/outbox_kill.json")


if __name__ == "__main__":
    main()
