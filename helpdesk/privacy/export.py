"""A customer's copy of their data: a ZIP with ``data.json`` and the photos.

``data.json`` holds the customer (address, name), every ticket with the fields the
inventory marks as theirs (``helpdesk.privacy.inventory``: what ``Place.export`` says),
every message they may see (their own and the agents' answers, redacted as on their status
page; internal notes are the agents' work and stay out), each survey's rating and comment,
and for each photo the name of its file under ``photos/``.

Built off the request path (``PrivacyRequests.build_exports``), written by a thread from the
stored files (photos are copied into the ZIP from disk, not held in memory).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.models import Attachment, CsatResponse, Customer, Ticket
from helpdesk.photos import PhotoStore
from helpdesk.tickets import TicketService

#: The fields of a ticket a copy holds (the inventory's personal data of the ticket, and
#: what makes it readable).
TICKET_FIELDS = (
    "reference",
    "kind",
    "status",
    "category",
    "customer_name",
    "order_number",
    "arrived_on",
    "desired_variant",
    "subject",
    "created_at",
    "updated_at",
)


@dataclass(slots=True)
class ExportData:
    document: dict[str, Any]
    #: (name in the ZIP, digest) of every photo.
    photos: list[tuple[str, str]] = field(default_factory=list)


def _value(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return getattr(value, "value", value)


def _photo(attachment: Attachment, photos: list[tuple[str, str]]) -> dict[str, Any]:
    extension = "png" if attachment.content_type == "image/png" else "jpg"
    name = f"photos/{attachment.digest}.{extension}"
    if (name, attachment.digest) not in photos:
        photos.append((name, attachment.digest))
    return {"filename": attachment.filename, "file": name, "field": attachment.field}


async def collect(
    sessions: async_sessionmaker[AsyncSession], tickets: TicketService, customer_id: int
) -> ExportData:
    """Everything of customer ``customer_id`` a copy holds (one short session at a time:
    ``TicketService.conversation`` opens its own)."""
    photos: list[tuple[str, str]] = []
    async with sessions() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        rows = list(
            (
                await session.execute(
                    select(Ticket)
                    .where(col(Ticket.customer_id) == customer_id)
                    .order_by(col(Ticket.id))
                )
            ).scalars()
        )
    documents = []
    for ticket in rows:
        item = {name: _value(getattr(ticket, name)) for name in TICKET_FIELDS}
        conversation = await tickets.conversation(ticket)
        item["messages"] = [
            {
                "author": _value(message.author),
                "body": message.body,
                "created_at": _value(message.created_at),
                "photos": [_photo(a, photos) for a in attachments],
            }
            for message, attachments in conversation
        ]
        seen = {a.id for _m, attachments in conversation for a in attachments}
        async with sessions() as session:
            others = (
                await session.execute(
                    select(Attachment).where(
                        col(Attachment.ticket_id) == ticket.id,
                        col(Attachment.message_id).is_(None),
                    )
                )
            ).scalars()
            item["photos"] = [_photo(a, photos) for a in others if a.id not in seen]
            surveys = (
                await session.execute(
                    select(CsatResponse)
                    .where(col(CsatResponse.ticket_id) == ticket.id)
                    .order_by(col(CsatResponse.resolution))
                )
            ).scalars()
            item["surveys"] = [
                {"rating": _value(s.rating), "comment": s.comment, "sent_at": _value(s.created_at)}
                for s in surveys
            ]
        documents.append(item)
    document = {
        "customer": {
            "email": customer.email,
            "name": customer.name,
            "created_at": _value(customer.created_at),
        },
        "tickets": documents,
    }
    return ExportData(document, photos)


def write_zip(path: Path, data: ExportData, store: PhotoStore) -> None:
    """Write the ZIP to ``path`` (a temporary name renamed at the end: never half a file)."""
    temporary = path.with_name(path.name + ".part")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "data.json", json.dumps(data.document, ensure_ascii=False, indent=2, default=str)
        )
        for name, digest in data.photos:
            source = store.path(digest)
            if source.exists():
                archive.write(source, name, compress_type=zipfile.ZIP_STORED)
    temporary.chmod(0o640)
    temporary.replace(path)
