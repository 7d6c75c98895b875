"""Readiness: whether this process can do its work (``/readyz``), and the figures
``/metrics`` reads from the database.

Each check answers "ok" or a short reason, within ``CHECK_TIMEOUT`` seconds: a probe must
never hang the way the thing it probes does.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text
from sqlmodel import col

from helpdesk.db import as_utc, utcnow
from helpdesk.leader import STALE_AFTER, read_heartbeat
from helpdesk.models import InboundMail, Outbox

if TYPE_CHECKING:
    from helpdesk.app import Helpdesk

CHECK_TIMEOUT = 3.0


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())


async def _database(helpdesk: Helpdesk) -> str:
    assert helpdesk.sessions is not None
    async with helpdesk.sessions() as session:
        await session.execute(text("SELECT 1"))
    return "ok"


def _media_writable(helpdesk: Helpdesk) -> str:
    folder = helpdesk.photos.root
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".ready-{secrets.token_hex(6)}"
    with open(probe, "wb") as file:
        file.write(b"ok")
        file.flush()
        os.fsync(file.fileno())
    probe.unlink()
    return "ok"


async def _smtp(helpdesk: Helpdesk) -> str:
    settings = helpdesk.settings
    assert settings.smtp_host
    _reader, writer = await asyncio.open_connection(settings.smtp_host, settings.smtp_port)
    writer.close()
    await writer.wait_closed()
    return "ok"


async def _background(helpdesk: Helpdesk) -> str:
    assert helpdesk.sessions is not None
    row = await read_heartbeat(helpdesk.sessions)
    if row is None:
        return "no process has run the background work yet"
    age = (utcnow() - as_utc(row.heartbeat_at)).total_seconds()
    if age > STALE_AFTER:
        return f"the last heartbeat ({row.holder}) is {age:.0f} s old"
    return "ok"


async def _bounded(name: str, check: object) -> tuple[str, str]:
    try:
        assert asyncio.iscoroutine(check)
        return name, await asyncio.wait_for(check, CHECK_TIMEOUT)
    except TimeoutError:
        return name, f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        return name, f"{type(exc).__name__}: {exc}"[:200]


async def readiness(helpdesk: Helpdesk) -> Readiness:
    """Database, media folder writable, SMTP reachable (when set), background work alive."""
    checks = [
        _bounded("database", _database(helpdesk)),
        _bounded("media", asyncio.to_thread(_media_writable, helpdesk)),
        _bounded("background", _background(helpdesk)),
    ]
    if helpdesk.settings.smtp_host:
        checks.append(_bounded("smtp", _smtp(helpdesk)))
    results = await asyncio.gather(*checks)
    return Readiness(dict(results))


async def database_figures(
    helpdesk: Helpdesk,
) -> tuple[dict[str, int], dict[str, int], float | None]:
    """Outbox and inbound mail counts by status, and the heartbeat's age in seconds."""
    assert helpdesk.sessions is not None
    async with helpdesk.sessions() as session:
        outbox = await session.execute(
            select(col(Outbox.status), func.count()).group_by(col(Outbox.status))
        )
        inbound = await session.execute(
            select(col(InboundMail.status), func.count()).group_by(col(InboundMail.status))
        )
        outbox_counts = {str(status): int(n) for status, n in outbox.all()}
        inbound_counts = {str(status): int(n) for status, n in inbound.all()}
    row = await read_heartbeat(helpdesk.sessions)
    age = (utcnow() - as_utc(row.heartbeat_at)).total_seconds() if row else None
    return outbox_counts, inbound_counts, age
