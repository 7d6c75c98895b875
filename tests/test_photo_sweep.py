"""The photo sweep against a real database: attachments and unsent mail keep photos."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.db import create_engine, migrate, session_factory
from helpdesk.models import Attachment, Customer, Outbox, Ticket
from helpdesk.photo_sweep import referenced_digests, sweep_photos
from helpdesk.photos import PhotoStore, StoredPhoto
from tests.test_photos import heic, phone_jpeg, png_with_alpha, stored_files

DAY = 24 * 3600
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield session_factory(engine)
    await engine.dispose()


def old(store: PhotoStore, *photos: StoredPhoto) -> None:
    when = time.time() - 2 * DAY
    for photo in photos:
        for digest in (photo.digest, photo.thumb_digest):
            os.utime(store.path(digest), (when, when))


async def ticket_with(sessions: Sessions, reference: str, *photos: StoredPhoto) -> int:
    async with sessions() as session:
        customer = Customer(email=f"{reference.lower()}@example.jp", name="山田 花子")
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        ticket = Ticket(
            reference=reference,
            token_nonce="nonce",
            kind="defect",
            customer_id=customer.id,
            customer_name=customer.name,
            subject="商品に傷がありました",
        )
        session.add(ticket)
        await session.flush()
        assert ticket.id is not None
        for index, photo in enumerate(photos):
            session.add(
                Attachment(
                    ticket_id=ticket.id,
                    field=f"photo_{index}",
                    digest=photo.digest,
                    thumb_digest=photo.thumb_digest,
                    content_type=photo.content_type,
                    size=photo.size,
                    width=photo.width,
                    height=photo.height,
                    filename=photo.original_filename,
                )
            )
        await session.commit()
        return ticket.id


async def mail_with(sessions: Sessions, n: int, status: str, photo: StoredPhoto) -> None:
    attachments = [{"digest": photo.digest, "filename": "a.jpg", "content_type": "image/jpeg"}]
    async with sessions() as session:
        session.add(
            Outbox(
                kind="ticket_notification",
                to_address="support@example.jp",
                subject="新しいお問い合わせ",
                text="本文",
                message_id=f"sweep-{n}@example.jp",
                attachments=json.dumps(attachments),
                status=status,
            )
        )
        await session.commit()


async def test_only_photos_nothing_refers_to_are_swept(sessions: Sessions, tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "media")

    def photo(data: bytes) -> StoredPhoto:
        return store.process(data, filename="a", field_label="写真")

    on_two_tickets = photo(phone_jpeg((640, 480)))
    on_a_ticket = photo(png_with_alpha((400, 300)))
    in_queued_mail = photo(heic((400, 300)))
    in_dead_mail = photo(phone_jpeg((800, 600), orientation=1))
    in_sent_mail = photo(heic((500, 400)))
    refused_form = photo(png_with_alpha((600, 300)))
    just_uploaded = photo(phone_jpeg((700, 500), orientation=3))
    old(store, on_two_tickets, on_a_ticket, in_queued_mail, in_dead_mail, in_sent_mail)
    old(store, refused_form)
    first = await ticket_with(sessions, "HD-26-00001", on_two_tickets, on_a_ticket)
    await ticket_with(sessions, "HD-26-00002", on_two_tickets)
    await mail_with(sessions, 1, "queued", in_queued_mail)
    await mail_with(sessions, 2, "dead", in_dead_mail)  # 'mail retry' may still send it
    await mail_with(sessions, 3, "sent", in_sent_mail)
    assert first

    dry = await sweep_photos(store, sessions, grace_seconds=DAY, dry_run=True)
    assert len(stored_files(store.root)) == 14 and len(dry.deleted) == 6
    report = await sweep_photos(store, sessions, grace_seconds=DAY)

    gone = {refused_form.digest, refused_form.thumb_digest, in_sent_mail.digest}
    gone |= {in_sent_mail.thumb_digest, in_queued_mail.thumb_digest, in_dead_mail.thumb_digest}
    assert {path.name.split(".")[0] for path in report.deleted} == gone
    left = {path.name.split(".")[0] for path in stored_files(store.root)}
    for kept in (on_two_tickets, on_a_ticket, just_uploaded):
        assert {kept.digest, kept.thumb_digest} <= left
    assert in_queued_mail.digest in left and in_dead_mail.digest in left
    # Mail carries the photo, not its thumbnail: the thumbnail alone goes.
    assert in_queued_mail.thumb_digest not in left and in_dead_mail.thumb_digest not in left
    assert report.recent == 2  # the photo just uploaded, and its thumbnail


async def test_referenced_digests_asks_in_chunks(sessions: Sessions, tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "media")
    photo = store.process(phone_jpeg((640, 480)), filename="a", field_label="写真")
    await ticket_with(sessions, "HD-26-00003", photo)
    unknown = {f"{n:064x}" for n in range(1200)}  # more than one IN (...) list
    async with sessions() as session:
        found = await referenced_digests(session, unknown | {photo.digest, photo.thumb_digest})
    assert found == {photo.digest, photo.thumb_digest}
