"""Deleting photos nothing refers to: ``PhotoStore.sweep`` asked with the database's answer.

A photo is stored when it is uploaded, before the form around it is accepted; a refused or
abandoned form leaves its photos behind. They are deleted once older than a grace period
(``HELPDESK_PHOTO_SWEEP_GRACE_HOURS``) if no attachment (photo or thumbnail) and no mail
that may still be sent (queued, being sent, or dead and retryable) refers to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.models import Attachment, Outbox, OutboxStatus
from helpdesk.photos import PhotoStore, SweepReport

log = logging.getLogger(__name__)

# Digests per IN (...) query: well within every backend's parameter limit.
_CHUNK = 500


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    chunk: list[str] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def referenced_digests(session: AsyncSession, digests: set[str]) -> set[str]:
    """Those of ``digests`` an attachment (photo or thumbnail) or an unsent mail refers to."""
    found: set[str] = set()
    for chunk in _chunks(sorted(digests)):
        for column in (col(Attachment.digest), col(Attachment.thumb_digest)):
            # Distinct: a photo many attachments share comes back once (index only).
            rows = await session.execute(select(column).where(col(column).in_(chunk)).distinct())
            found.update(rows.scalars())
    # Mail not sent yet (or dead, which ``mail retry`` may send) carries photos by digest.
    unsent = await session.execute(
        select(col(Outbox.attachments)).where(
            # Listed rather than "!= sent", so that the status index is used: the query
            # costs the same in a large outbox (an erasure asks it).
            col(Outbox.status).in_(
                [
                    OutboxStatus.queued.value,
                    OutboxStatus.sending.value,
                    OutboxStatus.dead.value,
                ]
            ),
            col(Outbox.attachments) != "[]",
        )
    )
    for text in unsent.scalars():
        try:
            items = json.loads(text or "[]")
        except ValueError:
            continue
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict):
                found.update(
                    value
                    for key in ("digest", "thumb_digest")
                    if isinstance(value := item.get(key), str) and value in digests
                )
    return found


async def sweep_photos(
    store: PhotoStore,
    sessions: async_sessionmaker[AsyncSession],
    *,
    grace_seconds: float,
    dry_run: bool = False,
) -> SweepReport:
    """Run ``store.sweep`` in a thread, answering its questions from the database.

    Each question is answered in a fresh transaction, so a ticket committed while the
    sweep walks the folders is seen by the next question; one still being saved is covered
    by the grace period.
    """
    loop = asyncio.get_running_loop()

    async def ask(digests: set[str]) -> set[str]:
        async with sessions() as session:
            return await referenced_digests(session, digests)

    def referenced(digests: set[str]) -> set[str]:
        return asyncio.run_coroutine_threadsafe(ask(digests), loop).result()

    report = await asyncio.to_thread(
        store.sweep, referenced, grace_seconds=grace_seconds, dry_run=dry_run
    )
    if report.deleted and not dry_run:
        log.info(
            "photo sweep: deleted %d unreferenced file(s), %.1f MB",
            len(report.deleted),
            report.deleted_bytes / 1_048_576,
        )
    return report


async def sweep_periodically(
    store: PhotoStore,
    sessions: async_sessionmaker[AsyncSession],
    *,
    grace_seconds: float,
    interval_seconds: float,
    stop: asyncio.Event | None = None,
) -> None:
    """``sweep_photos`` every ``interval_seconds`` (the first one at once) until ``stop``."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            await sweep_photos(store, sessions, grace_seconds=grace_seconds)
        except Exception:
            log.exception("photo sweep failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
