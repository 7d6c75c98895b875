"""Erasing a customer: nothing of theirs is left anywhere, another customer's data stays
whole (a photo file shared by both included), and a crash in the middle resumes."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlmodel import SQLModel
from starlette.applications import Starlette

from helpdesk.db import utcnow
from helpdesk.models import (
    Agent,
    Attachment,
    CsatResponse,
    Customer,
    InboundMail,
    Message,
    Outbox,
    PrivacyAudit,
    PrivacyRequest,
    PrivacyRequestState,
    Ticket,
)
from helpdesk.privacy.erasure import ERASED, erased_address
from helpdesk.privacy.inventory import Handling, place
from tests import imaging
from tests.helpers import count, rows

NAME = "山田 花子"
EMAIL = "hanako@example.jp"
ORDER = "#98765"
OTHER_NAME = "佐々木 次郎"
OTHER_EMAIL = "jiro@example.jp"
OTHER_ORDER = "#55555"

SHARED_PHOTO = imaging.jpeg(color="navy")
OWN_PHOTO = imaging.jpeg(color="red")
OTHER_PHOTO = imaging.jpeg(color="green")


def _photos(overall: bytes, defect: bytes) -> dict[str, Any]:
    return {
        "photo_overall": ("IMG_0001.jpg", overall, "image/jpeg"),
        "photo_defect": ("IMG_0002.jpg", defect, "image/jpeg"),
    }


async def _defect(
    client: httpx.AsyncClient, app: Starlette, name: str, email: str, order: str, photos: Any
) -> str:
    from tests.helpers import defect_fields

    data = defect_fields(app, name=name, email=email, order_number=order)
    response = await client.post("/api/tickets", data=data, files=photos)
    assert response.status_code == 201, response.text
    return str(response.json()["reference"])


async def _everything(app: Starlette) -> list[tuple[str, str, str]]:
    """Every value of every column of every table, as (table, column, text)."""
    found: list[tuple[str, str, str]] = []
    async with app.state.helpdesk.db.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            result = await connection.execute(select(table))
            for row in result.mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    found.append((table.name, column, str(value)))
        # The tickets' full-text search documents (FTS5 or tsvector, outside the models).
        for row in (await connection.execute(text("SELECT * FROM ticket_search"))).mappings():
            found += [("ticket_search", column, str(value)) for column, value in row.items()]
        if connection.dialect.name == "sqlite":
            # FTS5's own storage: a deleted document's tokens stay there until merged.
            blocks = await connection.execute(text("SELECT block FROM ticket_search_data"))
            found += [
                ("ticket_search_data", "block", bytes(block).decode("utf-8", "replace"))
                for (block,) in blocks
                if block is not None
            ]
    return found


async def _found(app: Starlette, query: str) -> list[str]:
    """The references the console's search finds for ``query``."""
    from helpdesk.tickets.queue import ALL_CHOICE, QueueFilter
    from tests.helpers import add_agent

    agents = await rows(app, Agent)
    agent = agents[0] if agents else await add_agent(app)
    page = await app.state.helpdesk.tickets.queue(
        QueueFilter(status=ALL_CHOICE, q=query), agent=agent
    )
    return sorted(ticket.reference for ticket, _ in page.rows)


def _mentions(values: list[tuple[str, str, str]], needles: list[str]) -> list[tuple[str, str]]:
    return [
        (table, column)
        for table, column, value in values
        if any(needle.lower() in value.lower() for needle in needles)
    ]


async def _build(client: httpx.AsyncClient, app: Starlette) -> tuple[list[str], str]:
    """山田 花子 with three tickets (one photo shared with 佐々木 次郎's ticket), a mail of
    hers still unprocessed, a survey comment, mail written to var/mail; and 佐々木's ticket."""
    mine = [
        await _defect(client, app, NAME, EMAIL, ORDER, _photos(SHARED_PHOTO, OWN_PHOTO)),
        await _defect(client, app, NAME, EMAIL, ORDER, _photos(OWN_PHOTO, OWN_PHOTO)),
        await _defect(client, app, NAME, EMAIL, ORDER, _photos(OWN_PHOTO, SHARED_PHOTO)),
    ]
    other = await _defect(
        client, app, OTHER_NAME, OTHER_EMAIL, OTHER_ORDER, _photos(SHARED_PHOTO, OTHER_PHOTO)
    )
    helpdesk = app.state.helpdesk
    ticket = (await rows(app, Ticket, Ticket.reference == mine[0]))[0]
    async with helpdesk.sessions() as session, session.begin():
        session.add(
            InboundMail(
                raw=f"From: {NAME} <{EMAIL}>\r\nSubject: {ORDER}\r\n\r\n{NAME}です。".encode(),
                from_address=EMAIL,
                envelope_from=EMAIL,
                subject=f"注文 {ORDER}",
                status="failed",
            )
        )
        session.add(
            CsatResponse(
                ticket_id=ticket.id,
                resolution=1,
                kind=ticket.kind,
                rating="good",
                comment=f"{NAME}です。ありがとうございました",
            )
        )
    # Mail written as .eml files (no SMTP host): the confirmations to both customers.
    assert await helpdesk.mail_sender().drain() >= 4
    return mine, other


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


async def test_an_erasure_leaves_nothing_of_the_customer_and_keeps_the_other_whole(
    app: Starlette, client: httpx.AsyncClient, logs: pytest.LogCaptureFixture
) -> None:
    helpdesk = app.state.helpdesk
    mine, other = await _build(client, app)
    [customer] = await rows(app, Customer, Customer.email == EMAIL)
    needles = [NAME, EMAIL, ORDER.lstrip("#")]
    assert _mentions(await _everything(app), needles)  # the test can fail

    own_files = {
        a.digest
        for a in await rows(app, Attachment)
        if a.ticket_id in {t.id for t in await rows(app, Ticket, Ticket.customer_id == customer.id)}
    }
    other_ticket = (await rows(app, Ticket, Ticket.reference == other))[0]
    other_attachments = await rows(app, Attachment, Attachment.ticket_id == other_ticket.id)
    other_messages = await rows(app, Message, Message.ticket_id == other_ticket.id)
    photos = helpdesk.photos

    # The console's search finds her tickets by her name, address, order and words.
    for query in ("山田", EMAIL, ORDER):
        assert set(mine) <= set(await _found(app, query)), query

    preview = await helpdesk.erasure.preview(customer.id)
    assert preview["tickets"] == 3 and preview["photos"] == 6
    assert preview["mails_received"] == 1 and preview["survey_comments"] == 1
    request = await helpdesk.erasure.create(
        customer.id, due_at=utcnow() + timedelta(days=30), actor="agent:1"
    )
    assert json.loads(request.preview) == preview
    done = await helpdesk.erasure.run(request.id)
    assert done.state is PrivacyRequestState.done

    # Nothing in any table (the search index included) names her or her order, and the
    # search finds her tickets by their reference only.
    assert _mentions(await _everything(app), needles) == []
    for query in ("山田", "花子", EMAIL, "hanako", ORDER):
        assert set(mine).isdisjoint(await _found(app, query)), query
    assert await _found(app, mine[0]) == [mine[0]]
    # No media file holds her photos' bytes, except the one shared with 佐々木's ticket.
    shared = {a.digest for a in other_attachments} & own_files
    assert len(shared) == 1
    for digest in own_files - shared:
        assert not photos.path(digest).exists()
    stored = [p.read_bytes() for p in Path(photos.root).rglob("*") if p.is_file()]
    for digest in own_files - shared:
        assert all(photos_digest(data) != digest for data in stored)
    # No mail file names her; 佐々木's mail files stay.
    mail_files = list(helpdesk.settings.mail_dir.glob("*.eml"))
    assert mail_files and all(EMAIL.encode() not in f.read_bytes().lower() for f in mail_files)
    assert any(OTHER_EMAIL.encode() in f.read_bytes().lower() for f in mail_files)
    # Nothing logged names her.
    assert [r for r in logs.records if any(n in r.getMessage() for n in needles)] == []

    # 佐々木's ticket is whole: its rows, its photos' files, its data.
    assert await rows(app, Attachment, Attachment.ticket_id == other_ticket.id) == (
        other_attachments
    )
    assert await rows(app, Message, Message.ticket_id == other_ticket.id) == other_messages
    for attachment in other_attachments:
        assert photos.path(attachment.digest).exists()
        assert photos.path(attachment.thumb_digest).exists()
    assert (await rows(app, Ticket, Ticket.id == other_ticket.id))[0] == other_ticket

    # What stays: anonymous tickets (counts by kind and status), the anonymous customer row,
    # the rating without its comment, and the audit entries without personal data.
    tickets = await rows(app, Ticket, Ticket.customer_id == customer.id)
    assert [t.reference for t in tickets] == mine
    assert all(t.customer_name == ERASED and t.order_number is None for t in tickets)
    [anonymous] = await rows(app, Customer, Customer.id == customer.id)
    assert anonymous.email == erased_address(customer.id) and anonymous.name == ERASED
    [survey] = await rows(app, CsatResponse)
    assert survey.rating == "good" and survey.comment is None
    actions = [entry.action for entry in await rows(app, PrivacyAudit)]
    assert actions == ["erasure_requested", "erasure_done"]
    # A customer link of the erased tickets opens nothing any more.
    assert (await client.get(f"/t/{mine[0]}")).status_code in (403, 404)


def photos_digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


async def test_every_erased_column_of_the_inventory_is_emptied_or_replaced(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    helpdesk = app.state.helpdesk
    await _build(client, app)
    [customer] = await rows(app, Customer, Customer.email == EMAIL)
    request = await helpdesk.erasure.create(customer.id, due_at=utcnow(), actor="system")
    await helpdesk.erasure.run(request.id)
    for ticket in await rows(app, Ticket, Ticket.customer_id == customer.id):
        for column in place("ticket").columns_with(Handling.erased):
            value = getattr(ticket, column)
            assert value in (None, ERASED) or column == "token_nonce", (column, value)
    for model in (Message, Attachment, Outbox, InboundMail):
        remaining = await rows(app, model)
        table = model.__tablename__  # type: ignore[attr-defined]
        assert place(table).columns_with(Handling.deleted)
        tickets = {t.id for t in await rows(app, Ticket, Ticket.customer_id == customer.id)}
        assert not [r for r in remaining if getattr(r, "ticket_id", None) in tickets]


async def test_a_crash_in_the_middle_resumes_and_completes(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    helpdesk = app.state.helpdesk
    _mine, other = await _build(client, app)
    [customer] = await rows(app, Customer, Customer.email == EMAIL)
    helpdesk.erasure.batch = 1
    request = await helpdesk.erasure.create(customer.id, due_at=utcnow(), actor="system")

    class Crash(Exception):
        pass

    steps: list[str] = []

    def crash_after_first_batch(step: str) -> None:
        steps.append(step)
        raise Crash

    with pytest.raises(Crash):
        await helpdesk.erasure.run(request.id, after_step=crash_after_first_batch)
    [halfway] = await rows(app, PrivacyRequest, PrivacyRequest.id == request.id)
    assert halfway.state is PrivacyRequestState.running
    tickets = await rows(app, Ticket, Ticket.customer_id == customer.id)
    # One ticket done, two not yet: the request's cursor says where it stopped.
    assert [t.customer_name for t in tickets] == [ERASED, NAME, NAME]
    assert halfway.cursor == tickets[0].id
    assert json.loads(halfway.pending_digests)  # photo files still to look at

    assert await helpdesk.erasure.resume() == 1
    [finished] = await rows(app, PrivacyRequest, PrivacyRequest.id == request.id)
    assert finished.state is PrivacyRequestState.done and finished.attempts == 2
    assert json.loads(finished.pending_digests) == []
    progress = json.loads(finished.progress)
    assert progress["tickets"] == 3 and progress["photos"] == 6
    assert _mentions(await _everything(app), [NAME, EMAIL, "98765"]) == []
    assert (await rows(app, Ticket, Ticket.reference == other))[0].customer_name == OTHER_NAME
    # Resuming a finished request changes nothing.
    assert await helpdesk.erasure.resume() == 0
    assert (await helpdesk.erasure.run(request.id)).state is PrivacyRequestState.done
    assert await count(app, PrivacyAudit) == 2


async def test_a_message_the_address_wrote_on_another_ticket_goes_with_it(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    helpdesk = app.state.helpdesk
    _mine, other = await _build(client, app)
    other_ticket = (await rows(app, Ticket, Ticket.reference == other))[0]
    async with helpdesk.sessions() as session, session.begin():
        session.add(
            Message(
                ticket_id=other_ticket.id,
                author="customer",
                body=f"{NAME}です。横から失礼します。",
                trust="third_party",
                sender=EMAIL,
            )
        )
    before = await count(app, Message)
    [customer] = await rows(app, Customer, Customer.email == EMAIL)
    request = await helpdesk.erasure.create(customer.id, due_at=utcnow(), actor="system")
    await helpdesk.erasure.run(request.id)
    assert _mentions(await _everything(app), [NAME, EMAIL]) == []
    remaining = await rows(app, Message, Message.ticket_id == other_ticket.id)
    assert remaining and all(m.sender != EMAIL for m in remaining)
    assert await count(app, Message) < before
    async with helpdesk.db.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM ticket"))).scalar_one() == 4
