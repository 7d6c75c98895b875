"""Applying the retention periods (``data/shop.toml`` [retention]): ``purge``.

Each rule walks its rows in id order, ``batch`` at a time, each batch one transaction:
memory stays bounded whatever the size of the database, and an interrupted purge simply
starts again where rows are still due. With ``dry_run`` it counts what would go and
changes nothing.

- ``photos``: photos (rows, and files nothing else uses) of tickets closed for
  ``photos_after_close_days`` (closed: status ``closed``, since its last change);
- ``tickets``: tickets closed for ``tickets_anonymized_after_days`` are anonymized as an
  erasure does (``erasure.erase_tickets``), and a customer whose tickets are all anonymized
  becomes an anonymous placeholder too;
- ``inbound_raw``: the raw text of mail processed (or ignored) ``inbound_raw_days`` ago;
- ``faq_queries``: unanswered queries deleted, the query of votes emptied, after
  ``faq_queries_days``;
- ``outbox``: the address and text of mail sent ``outbox_sent_days`` ago (its Message-ID
  stays, for threading), and ``.eml`` files as old in ``var/mail``;
- ``exports``: customers' copies whose download link expired.

Another branch brings a daily job scheduler: register ``Helpdesk.purge`` with it. Until
then, ``python main.py purge`` from cron.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.mail.outbox import SCRUBBED_ADDRESS
from helpdesk.models import (
    Agent,
    Attachment,
    Customer,
    FaqFeedback,
    FaqGap,
    InboundMail,
    InboundStatus,
    InsightGap,
    Outbox,
    OutboxStatus,
    PrivacyRequest,
    Ticket,
    TicketStatus,
)
from helpdesk.photo_sweep import referenced_digests
from helpdesk.photos import PhotoStore
from helpdesk.privacy import audit
from helpdesk.privacy.erasure import ERASED, erase_tickets, erased_address, is_erased
from helpdesk.privacy.retention import Retention
from helpdesk.tickets import search

BATCH = 500
#: Called after each batch: (rule, rows done in it).
Progress = Callable[[str, int], None]
RULES = ("photos", "inbound_raw", "faq_queries", "outbox", "exports", "tickets")


@dataclass(slots=True)
class PurgeReport:
    dry_run: bool
    #: rule -> rows (or files) removed or anonymized (would be, in a dry run).
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    photo_files: int = 0
    mail_files: int = 0
    customers: int = 0
    seconds: float = 0.0

    def rows(self) -> list[tuple[str, int]]:
        return [
            *self.counts.items(),
            ("photo files", self.photo_files),
            ("mail files", self.mail_files),
            ("customers anonymized", self.customers),
        ]


class Purge:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        photos: PhotoStore,
        retention: Retention,
        *,
        mail_dir: Path | None = None,
        exports_dir: Path | None = None,
        batch: int = BATCH,
        now: datetime | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.sessions = sessions
        self.photos = photos
        self.retention = retention
        self.mail_dir = mail_dir
        self.exports_dir = exports_dir
        self.batch = batch
        self.now = now or utcnow()
        self.progress = progress or (lambda _rule, _n: None)

    def _before(self, days: int) -> datetime:
        return self.now - timedelta(days=days)

    async def run(self, *, dry_run: bool = False) -> PurgeReport:
        started = time.monotonic()
        report = PurgeReport(dry_run=dry_run)
        # Old tickets last: the rules before them count (and a dry run counts the same)
        # the rows of those tickets too, which anonymizing them then deletes.
        await self._photos(report, dry_run)
        await self._inbound(report, dry_run)
        await self._faq(report, dry_run)
        await self._outbox(report, dry_run)
        await self._exports(report, dry_run)
        await self._tickets(report, dry_run)
        if not dry_run:
            async with self.sessions() as session, session.begin():
                audit.record(
                    session,
                    "purge",
                    actor="system",
                    data={name: count for name, count in report.rows()},
                )
        report.seconds = time.monotonic() - started
        return report

    async def _ids(self, query: Any, cursor: int) -> list[int]:
        async with self.sessions() as session:
            return [int(v) for v in (await session.execute(query(cursor))).scalars()]

    async def _in_batches(
        self,
        rule: str,
        page: Callable[[int], Any],
        change: Callable[[list[int]], Any],
        report: PurgeReport,
        dry_run: bool,
    ) -> None:
        """Walk the ids ``page(cursor)`` gives, a batch at a time, running ``change(ids)``
        on each batch in a transaction of its own (counted, not run, in a dry run)."""
        cursor = 0
        while ids := await self._ids(page, cursor):
            cursor = ids[-1]
            if not dry_run:
                async with self.sessions() as session, session.begin():
                    await session.execute(change(ids))
            report.counts[rule] += len(ids)
            self.progress(rule, len(ids))

    # -- photos of closed tickets --------------------------------------------------------------

    async def _photos(self, report: PurgeReport, dry_run: bool) -> None:
        before = self._before(self.retention.photos_after_close_days)

        # Walks the closed tickets (not the attachments): each page is a range of the
        # status index, so the whole walk reads each ticket once.
        def page(cursor: int) -> Any:
            return (
                select(col(Ticket.id))
                .where(
                    col(Ticket.status) == TicketStatus.closed.value,
                    col(Ticket.updated_at) < before,
                    col(Ticket.id) > cursor,
                )
                .order_by(col(Ticket.id))
                .limit(self.batch)
            )

        cursor = 0
        while tickets := await self._ids(page, cursor):
            cursor = tickets[-1]
            async with self.sessions() as session, session.begin():
                ids: list[int] = []
                digests: set[str] = set()
                for attachment_id, digest, thumb in await session.execute(
                    select(
                        col(Attachment.id), col(Attachment.digest), col(Attachment.thumb_digest)
                    ).where(col(Attachment.ticket_id).in_(tickets))
                ):
                    if attachment_id is not None:
                        ids.append(attachment_id)
                        digests.update((digest, thumb))
                if not ids:
                    continue
                if dry_run:
                    # The batch's rows still hold them in a dry run: count the files no
                    # other attachment uses.
                    still_used = await self._used_elsewhere(session, digests, ids)
                else:
                    await session.execute(delete(Attachment).where(col(Attachment.id).in_(ids)))
                    still_used = await referenced_digests(session, digests)
            gone = sorted(digests - still_used)
            if not dry_run:
                await asyncio.to_thread(self._delete_files, gone)
            report.counts["photos"] += len(ids)
            report.photo_files += len(gone)
            self.progress("photos", len(ids))

    async def _used_elsewhere(
        self, session: AsyncSession, digests: set[str], ids: list[int]
    ) -> set[str]:
        used: set[str] = set()
        for column in (col(Attachment.digest), col(Attachment.thumb_digest)):
            rows = await session.execute(
                select(column)
                .where(column.in_(sorted(digests)), col(Attachment.id).not_in(ids))
                .distinct()
            )
            used.update(rows.scalars())
        return used

    def _delete_files(self, digests: list[str]) -> None:
        for digest in digests:
            self.photos.delete(digest)

    # -- old closed tickets --------------------------------------------------------------------

    async def _tickets(self, report: PurgeReport, dry_run: bool) -> None:
        before = self._before(self.retention.tickets_anonymized_after_days)

        def page(cursor: int) -> Any:
            return (
                select(col(Ticket.id))
                .where(
                    col(Ticket.status) == TicketStatus.closed.value,
                    col(Ticket.updated_at) < before,
                    col(Ticket.customer_name) != ERASED,
                    col(Ticket.id) > cursor,
                )
                .order_by(col(Ticket.id))
                .limit(self.batch)
            )

        async with self.sessions() as session:
            agents = {
                a.lower() for a in (await session.execute(select(col(Agent.email)))).scalars()
            }
        cursor = 0
        while ids := await self._ids(page, cursor):
            cursor = ids[-1]
            report.counts["tickets"] += len(ids)
            self.progress("tickets", len(ids))
            if dry_run:
                continue
            async with self.sessions() as session, session.begin():
                customers = set(
                    (
                        await session.execute(
                            select(col(Ticket.customer_id)).where(col(Ticket.id).in_(ids))
                        )
                    ).scalars()
                )
                _counts, digests = await erase_tickets(session, ids, agents=agents)
                still_used = await referenced_digests(session, digests)
                report.customers += await self._anonymize_customers(session, customers)
            gone = sorted(digests - still_used)
            await asyncio.to_thread(self._delete_files, gone)
            report.photo_files += len(gone)
        if report.counts["tickets"] and not dry_run:
            async with self.sessions() as session, session.begin():
                await (await search.session_index(session)).forget_replaced(session)

    async def _anonymize_customers(self, session: AsyncSession, ids: set[int]) -> int:
        """Customers of ``ids`` left with no ticket that names them become placeholders."""
        done = 0
        for customer_id in sorted(ids):
            named = await session.execute(
                select(func.count())
                .select_from(Ticket)
                .where(col(Ticket.customer_id) == customer_id, col(Ticket.customer_name) != ERASED)
            )
            if named.scalar_one():
                continue
            customer = await session.get(Customer, customer_id)
            if customer is not None and not is_erased(customer):
                customer.email = erased_address(customer_id)
                customer.name = ERASED
                done += 1
        return done

    # -- raw inbound mail ----------------------------------------------------------------------

    async def _inbound(self, report: PurgeReport, dry_run: bool) -> None:
        before = self._before(self.retention.inbound_raw_days)

        def page(cursor: int) -> Any:
            return (
                select(col(InboundMail.id))
                .where(
                    col(InboundMail.status).in_(
                        [InboundStatus.processed.value, InboundStatus.ignored.value]
                    ),
                    col(InboundMail.received_at) < before,
                    func.length(col(InboundMail.raw)) > 0,
                    col(InboundMail.id) > cursor,
                )
                .order_by(col(InboundMail.id))
                .limit(self.batch)
            )

        def scrub(ids: list[int]) -> Any:
            return (
                update(InboundMail)
                .where(col(InboundMail.id).in_(ids))
                .values(raw=b"", subject=None, envelope_to=None)
            )

        await self._in_batches("inbound_raw", page, scrub, report, dry_run)

    # -- FAQ query logs ------------------------------------------------------------------------

    async def _faq(self, report: PurgeReport, dry_run: bool) -> None:
        before = self._before(self.retention.faq_queries_days)

        def gaps(cursor: int) -> Any:
            return (
                select(col(FaqGap.id))
                .where(col(FaqGap.created_at) < before, col(FaqGap.id) > cursor)
                .order_by(col(FaqGap.id))
                .limit(self.batch)
            )

        def votes(cursor: int) -> Any:
            return (
                select(col(FaqFeedback.id))
                .where(
                    col(FaqFeedback.created_at) < before,
                    col(FaqFeedback.query).is_not(None),
                    col(FaqFeedback.id) > cursor,
                )
                .order_by(col(FaqFeedback.id))
                .limit(self.batch)
            )

        for query, change in (
            (gaps, lambda ids: delete(FaqGap).where(col(FaqGap.id).in_(ids))),
            (
                votes,
                lambda ids: (
                    update(FaqFeedback).where(col(FaqFeedback.id).in_(ids)).values(query=None)
                ),
            ),
        ):
            await self._in_batches("faq_queries", query, change, report, dry_run)
        # The insights' unanswered groups of those days (their text comes from the queries).
        old_groups = col(InsightGap.day) < before.date()
        async with self.sessions() as session, session.begin():
            found = await session.execute(
                select(func.count()).select_from(InsightGap).where(old_groups)
            )
            gone = int(found.scalar_one())
            if gone and not dry_run:
                await session.execute(delete(InsightGap).where(old_groups))
        report.counts["faq_queries"] += gone
        self.progress("faq_queries", gone)

    # -- mail sent -----------------------------------------------------------------------------

    async def _outbox(self, report: PurgeReport, dry_run: bool) -> None:
        before = self._before(self.retention.outbox_sent_days)

        def page(cursor: int) -> Any:
            return (
                select(col(Outbox.id))
                .where(
                    col(Outbox.status) == OutboxStatus.sent.value,
                    col(Outbox.sent_at) < before,
                    col(Outbox.text) != "",
                    col(Outbox.id) > cursor,
                )
                .order_by(col(Outbox.id))
                .limit(self.batch)
            )

        def scrub(ids: list[int]) -> Any:
            return (
                update(Outbox)
                .where(col(Outbox.id).in_(ids))
                .values(
                    to_address=SCRUBBED_ADDRESS,
                    subject="",
                    text="",
                    html=None,
                    attachments="[]",
                    last_error=None,
                )
            )

        await self._in_batches("outbox", page, scrub, report, dry_run)
        report.mail_files += await asyncio.to_thread(self._old_mail_files, before, dry_run)

    def _old_mail_files(self, before: datetime, dry_run: bool) -> int:
        if self.mail_dir is None or not self.mail_dir.is_dir():
            return 0
        cutoff = before.timestamp()
        count = 0
        for path in self.mail_dir.glob("*.eml"):
            try:
                if path.stat().st_mtime < cutoff:
                    if not dry_run:
                        path.unlink(missing_ok=True)
                    count += 1
            except FileNotFoundError:
                continue
        return count

    # -- expired copies ------------------------------------------------------------------------

    async def _exports(self, report: PurgeReport, dry_run: bool) -> None:
        async with self.sessions() as session, session.begin():
            expired = (
                (
                    await session.execute(
                        select(PrivacyRequest).where(
                            col(PrivacyRequest.export_file).is_not(None),
                            col(PrivacyRequest.expires_at) < self.now,
                        )
                    )
                )
                .scalars()
                .all()
            )
            for request in expired:
                if not dry_run:
                    if self.exports_dir is not None and request.export_file:
                        (self.exports_dir / request.export_file).unlink(missing_ok=True)
                    request.export_file = None
                    progress = json.loads(request.progress or "{}")
                    progress["expired"] = 1
                    request.progress = json.dumps(progress, sort_keys=True)
                report.counts["exports"] += 1
            if dry_run:
                await session.rollback()


async def purge(
    sessions: async_sessionmaker[AsyncSession],
    photos: PhotoStore,
    retention: Retention,
    *,
    dry_run: bool = False,
    mail_dir: Path | None = None,
    exports_dir: Path | None = None,
    batch: int = BATCH,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> PurgeReport:
    """Apply the retention periods once (see the module's docstring)."""
    job = Purge(
        sessions,
        photos,
        retention,
        mail_dir=mail_dir,
        exports_dir=exports_dir,
        batch=batch,
        now=now,
        progress=progress,
    )
    return await job.run(dry_run=dry_run)
