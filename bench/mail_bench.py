"""Mail throughput: inbound messages parsed and threaded per second, outbound per second.

Inbound: every message goes through ``InboundProcessor.receive`` (stored raw, parsed,
threaded, acted on) in process: the Japanese corpus as new inquiries, then customer
replies threaded by the signed reply address. Outbound: queued rows sent by the outbox
sender over real SMTP to an aiosmtpd server on 127.0.0.1, and to .eml files.

Run: ``.venv/bin/python bench/mail_bench.py [--messages 300] [--database URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from aiosmtpd.controller import Controller  # noqa: E402
from faq_bench import machine_info  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from helpdesk.app import Helpdesk  # noqa: E402
from helpdesk.mail.outbox import DirectoryTransport, OutboxSender  # noqa: E402
from helpdesk.models import Message, Outbox, Ticket  # noqa: E402
from helpdesk.settings import Settings  # noqa: E402

CORPUS = ROOT / "tests" / "mail_corpus"
RESULTS = ROOT / "bench" / "results" / "mail.json"


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reply(to: str, index: int) -> bytes:
    message = EmailMessage()
    message["From"] = "hanako@example.jp"
    message["To"] = to
    message["Subject"] = "Re: お問い合わせ"
    message["Message-ID"] = make_msgid(domain="example.jp")
    message.set_content(f"追加のご連絡です({index})。\n\n> 以前のメール\n")
    return message.as_bytes()


async def count(helpdesk: Helpdesk, model: type) -> int:
    async with helpdesk.sessions() as session:  # type: ignore[misc]
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def run(messages: int, database: str | None) -> dict[str, Any]:
    var = Path(tempfile.mkdtemp(prefix="mail-bench-"))
    settings = Settings(
        _env_file=None,
        var_dir=var,
        database_url=database,
        secret_key="bench",
        automatic_mail_limit=10**6,
    )
    helpdesk = Helpdesk(settings)
    await helpdesk.startup()
    corpus = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    results: dict[str, Any] = {"database": "postgresql" if database else "sqlite"}

    # Inbound, new inquiries from the Japanese corpus (auto-replies and bounces are ignored).
    started = time.perf_counter()
    for index in range(messages):
        raw = corpus[index % len(corpus)].replace(
            b"Message-ID: <", f"Message-ID: <b{index}.".encode(), 1
        )
        await helpdesk.inbound.receive(raw, envelope_to=[helpdesk.tickets.support_address])
    elapsed = time.perf_counter() - started
    results["inbound_corpus"] = {
        "messages": messages,
        "seconds": elapsed,
        "per_second": messages / elapsed,
    }

    # Inbound, customer replies threaded onto one ticket by its signed address.
    async with helpdesk.sessions() as session:  # type: ignore[misc]
        ticket = (await session.execute(select(Ticket).order_by(Ticket.id))).scalars().first()
    address = helpdesk.tickets.access.reply_address(ticket)
    before = await count(helpdesk, Message)
    started = time.perf_counter()
    for index in range(messages):
        await helpdesk.inbound.receive(reply(address, index), envelope_to=[address])
    elapsed = time.perf_counter() - started
    threaded = await count(helpdesk, Message) - before
    results["inbound_replies"] = {
        "messages": messages,
        "threaded": threaded,
        "seconds": elapsed,
        "per_second": messages / elapsed,
    }

    # Outbound over SMTP on loopback.
    queued = await count(helpdesk, Outbox)
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.smtp_host, settings.smtp_port, settings.smtp_security = "127.0.0.1", port, "none"
    started = time.perf_counter()
    sent = await helpdesk.mail_sender().drain()
    elapsed = time.perf_counter() - started
    controller.stop()
    results["outbound_smtp"] = {
        "queued": queued,
        "handled": sent,
        "received_by_server": sink.count,
        "seconds": elapsed,
        "per_second": sent / elapsed,
    }

    # Outbound to .eml files (the embedded default), on fresh copies of the same rows.
    async with helpdesk.sessions() as session:  # type: ignore[misc]
        rows = (await session.execute(select(Outbox))).scalars().all()
        for row in rows:
            row.status, row.attempts, row.lease_until = "queued", 0, None
        await session.commit()
    sender = OutboxSender(
        helpdesk.sessions,  # type: ignore[arg-type]
        DirectoryTransport(var / "mail"),
        from_address=helpdesk.tickets.support_address,
        from_name="COCO case",
        photos=helpdesk.photos,
    )
    started = time.perf_counter()
    written = await sender.drain()
    elapsed = time.perf_counter() - started
    results["outbound_files"] = {
        "handled": written,
        "seconds": elapsed,
        "per_second": written / elapsed,
    }
    await helpdesk.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--database", help="postgresql://... (an empty database); default SQLite")
    args = parser.parse_args()
    results = asyncio.run(run(args.messages, args.database))
    results["machine"] = machine_info()
    results["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"## Mail throughput ({results['database']})\n")
    print("| path | messages | seconds | per second |")
    print("|---|---:|---:|---:|")
    for key in ("inbound_corpus", "inbound_replies", "outbound_smtp", "outbound_files"):
        r = results[key]
        n = r.get("messages", r.get("handled"))
        print(f"| {key} | {n} | {r['seconds']:.2f} | {r['per_second']:.0f} |")
    print(
        f"\nreplies threaded: {results['inbound_replies']['threaded']}/{args.messages}; "
        f"SMTP server received {results['outbound_smtp']['received_by_server']}"
    )


if __name__ == "__main__":
    main()
