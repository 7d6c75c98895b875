"""Inbound processing in a process of its own, for the crash test in
``test_mail_processing.py``.

``python -m tests.inbound_worker DATABASE_URL MEDIA_DIR receive FILE`` receives the message
in FILE as the SMTP receiver would; ``... due`` runs the periodic pass once and prints how
many messages it handled. A photo named ``poison.jpg`` kills the process (SIGKILL) while it
is being decoded, as a crash in a native image decoder would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from faq import load_policy
from helpdesk.db import create_engine, session_factory
from helpdesk.mail.inbound import InboundProcessor
from helpdesk.photos import PhotoStore, StoredPhoto
from helpdesk.settings import ROOT
from helpdesk.tickets import TicketService

POISON = "poison.jpg"


class PoisonedPhotos(PhotoStore):
    def process(self, data: bytes, *, filename: str, field_label: str) -> StoredPhoto:
        if filename == POISON:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().process(data, filename=filename, field_label=field_label)


async def run(database_url: str, media: Path, command: str, file: Path | None) -> Any:
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        policy = load_policy(ROOT / "data" / "shop.toml")
        tickets = TicketService(
            sessions,
            policy=policy,
            secret_key="test-secret-key-not-for-production",
            base_url="http://testserver",
            support_address=policy.support_address,
        )
        inbound = InboundProcessor(sessions, tickets, PoisonedPhotos(media))
        if command == "receive":
            assert file is not None
            row = await inbound.receive(file.read_bytes(), envelope_to=[policy.support_address])
            return f"{row.status}: {row.outcome}"
        return await inbound.process_due()
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="inbound_worker")
    parser.add_argument("database_url")
    parser.add_argument("media", type=Path)
    parser.add_argument("command", choices=["receive", "due"])
    parser.add_argument("file", type=Path, nargs="?")
    args = parser.parse_args(argv)
    print(asyncio.run(run(args.database_url, args.media, args.command, args.file)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
