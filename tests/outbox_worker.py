"""An outbox sender in a process of its own, for the crash test in ``test_mail_outbox.py``.

``python -m tests.outbox_worker DATABASE_URL SMTP_PORT [--lease S] [--batch N]`` sends
everything due through SMTP on 127.0.0.1 (no TLS), prints the number of rows handled and
exits. The test kills it with SIGKILL in the middle of a delivery. With
``--die-once-recording-sent``, the process ends itself (``os._exit``) the moment the
statement recording its second mail sent has been handed to the database, before its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from sqlalchemy import event

from helpdesk.db import create_engine, session_factory
from helpdesk.mail.outbox import OutboxSender, SmtpTransport

FROM_ADDRESS = "admin@interiorltd.jp"
FROM_NAME = "COCO case サポート"


_recorded: list[str] = []


def _die_once_recording_sent(
    connection: Any, cursor: Any, statement: str, parameters: Any, *args: Any
) -> None:
    values = parameters.values() if isinstance(parameters, dict) else parameters
    if statement.lstrip().upper().startswith("UPDATE OUTBOX") and "sent" in list(values):
        _recorded.append(statement)
        if len(_recorded) == 2:
            # Runs before the statement is written; the exit, at the loop's next turn,
            # after. The second mail: the first one's statement was prepared, and a
            # sender's process records many.
            asyncio.get_running_loop().call_soon(os._exit, 3)


async def run(database_url: str, port: int, *, lease: float, batch: int, die: bool = False) -> int:
    engine = create_engine(database_url)
    if die:
        event.listen(engine.sync_engine, "before_cursor_execute", _die_once_recording_sent)
    try:
        sender = OutboxSender(
            session_factory(engine),
            # Longer than the test keeps a delivery stalled: only SIGKILL ends it.
            SmtpTransport("127.0.0.1", port, security="none", timeout=120),
            from_address=FROM_ADDRESS,
            from_name=FROM_NAME,
            lease_seconds=lease,
            batch=batch,
        )
        return await sender.drain()
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="outbox_worker")
    parser.add_argument("database_url")
    parser.add_argument("smtp_port", type=int)
    parser.add_argument("--lease", type=float, default=300.0, help="lease in seconds")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--die-once-recording-sent", action="store_true")
    args = parser.parse_args(argv)
    handled = asyncio.run(
        run(
            args.database_url,
            args.smtp_port,
            lease=args.lease,
            batch=args.batch,
            die=args.die_once_recording_sent,
        )
    )
    print(handled, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
