"""Retention: ``purge`` applies data/shop.toml [retention] in batches; a dry run changes
nothing and counts what the real run does; ``main.py purge`` prints a summary table."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import SQLModel, col
from starlette.applications import Starlette

from helpdesk.db import utcnow
from helpdesk.models import (
    Attachment,
    Customer,
    FaqFeedback,
    FaqGap,
    InboundMail,
    InsightGap,
    Outbox,
    Ticket,
    TicketStatus,
)
from helpdesk.privacy.erasure import ERASED
from helpdesk.privacy.purge import purge
from helpdesk.privacy.retention import Retention, RetentionError, load_retention
from helpdesk.settings import ROOT
from tests import imaging
from tests.helpers import defect_fields, rows
from tests.test_cli import run

SHARED = imaging.jpeg(color="navy")


async def _defect(
    client: httpx.AsyncClient, app: Starlette, email: str, photos: list[bytes]
) -> str:
    files = {
        "photo_overall": ("a.jpg", photos[0], "image/jpeg"),
        "photo_defect": ("b.jpg", photos[1], "image/jpeg"),
    }
    data = defect_fields(app, email=email, name=email.split("@")[0], order_number="#13579")
    response = await client.post("/api/tickets", data=data, files=files)
    assert response.status_code == 201, response.text
    return str(response.json()["reference"])


async def _age(app: Starlette, reference: str, *, days: int, status: TicketStatus) -> None:
    async with app.state.helpdesk.sessions() as session, session.begin():
        await session.execute(
            update(Ticket)
            .where(col(Ticket.reference) == reference)
            .values(status=status, updated_at=utcnow() - timedelta(days=days))
        )


async def _world(client: httpx.AsyncClient, app: Starlette) -> dict[str, str]:
    helpdesk = app.state.helpdesk
    refs = {
        # Closed 100 days ago: its photos go (but the one an open ticket shares).
        "closed": await _defect(client, app, "a@example.jp", [SHARED, imaging.jpeg(color="red")]),
        "open": await _defect(client, app, "b@example.jp", [SHARED, imaging.jpeg(color="blue")]),
        # Closed 800 days ago: anonymized, its customer too.
        "old": await _defect(client, app, "c@example.jp", [imaging.jpeg(color="gray"), SHARED]),
        "recent": await _defect(client, app, "d@example.jp", [imaging.jpeg(color="olive")] * 2),
    }
    await _age(app, refs["closed"], days=100, status=TicketStatus.closed)
    await _age(app, refs["old"], days=800, status=TicketStatus.closed)
    await _age(app, refs["recent"], days=10, status=TicketStatus.closed)
    long_ago, lately = utcnow() - timedelta(days=100), utcnow() - timedelta(days=5)
    async with helpdesk.sessions() as session, session.begin():
        for when in (long_ago, lately):
            session.add(
                InboundMail(
                    raw=b"From: x@example.jp\r\n\r\nhello", status="processed", received_at=when
                )
            )
            session.add(FaqGap(query="090-1234-5678 に電話", confidence=0.1, created_at=when))
            session.add(FaqFeedback(entry_id="e", helpful=True, query="送料", created_at=when))
            # The insights' unanswered group of that day, whose text came from the queries.
            session.add(
                InsightGap(day=when.date(), key="090-電話", count=1, sample="[電話番号] に電話")
            )
    assert await helpdesk.mail_sender().drain() > 0
    async with helpdesk.sessions() as session, session.begin():
        await session.execute(update(Outbox).values(sent_at=long_ago))
    return refs


async def _snapshot(app: Starlette) -> list[object]:
    found: list[object] = []
    async with app.state.helpdesk.db.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            found.append(sorted(map(str, (await connection.execute(table.select())).all())))
    media = Path(app.state.helpdesk.photos.root)
    found.append(sorted(str(p) for p in media.rglob("*") if p.is_file()))
    return found


async def test_a_dry_run_changes_nothing_and_counts_what_the_run_does(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    helpdesk = app.state.helpdesk
    refs = await _world(client, app)
    before = await _snapshot(app)
    retention = helpdesk.retention()
    progress: list[tuple[str, int]] = []
    dry = await purge(
        helpdesk.sessions,
        helpdesk.photos,
        retention,
        dry_run=True,
        batch=2,
        progress=lambda rule, n: progress.append((rule, n)),
    )
    assert await _snapshot(app) == before
    # In batches of 2 rows (of 2 tickets with 2 photos each for the photos).
    assert all(n <= (4 if rule == "photos" else 2) for rule, n in progress)
    assert [rule for rule, _n in progress].count("outbox") == 4  # 8 mails
    # The photos of both tickets closed over 90 days ago (2 each); one ticket over 2 years.
    assert dry.counts["photos"] == 4 and dry.counts["tickets"] == 1
    # A gap and a vote's query, and the insights' group of that day.
    assert dry.counts["inbound_raw"] == 1 and dry.counts["faq_queries"] == 3
    assert dry.counts["outbox"] > 0

    real = await helpdesk.purge()
    assert real.counts == dry.counts

    tickets = {t.reference: t for t in await rows(app, Ticket)}
    closed, open_, old = tickets[refs["closed"]], tickets[refs["open"]], tickets[refs["old"]]
    assert await rows(app, Attachment, Attachment.ticket_id == closed.id) == []
    assert await rows(app, Attachment, Attachment.ticket_id == old.id) == []
    shared = [a for a in await rows(app, Attachment, Attachment.ticket_id == open_.id)]
    assert len(shared) == 2 and all(helpdesk.photos.path(a.digest).exists() for a in shared)
    assert len(await rows(app, Attachment, Attachment.ticket_id == tickets[refs["recent"]].id)) == 2
    # The old ticket is anonymized, and so is its customer (no other ticket names them).
    assert old.customer_name == ERASED and old.order_number is None
    [customer] = await rows(app, Customer, Customer.id == old.customer_id)
    assert customer.name == ERASED and "c@example.jp" not in customer.email
    assert closed.customer_name != ERASED  # 100 days: photos only
    raws = sorted(len(m.raw) for m in await rows(app, InboundMail))
    assert raws[0] == 0 and raws[1] > 0
    assert len(await rows(app, FaqGap)) == 1
    [kept_group] = await rows(app, InsightGap)  # the recent day's
    assert kept_group.day > (utcnow() - timedelta(days=90)).date()
    assert sorted(str(f.query) for f in await rows(app, FaqFeedback)) == ["None", "送料"]
    assert all(o.text == "" for o in await rows(app, Outbox) if o.status == "sent")
    # A second run finds nothing left to do.
    again = await helpdesk.purge()
    assert set(again.counts.values()) == {0}


def test_the_retention_periods_are_the_owners_settings_in_shop_toml(tmp_path: Path) -> None:
    retention = load_retention(ROOT / "data" / "shop.toml")
    assert retention == Retention(
        photos_after_close_days=90,
        tickets_anonymized_after_days=730,
        inbound_raw_days=30,
        faq_queries_days=90,
        outbox_sent_days=90,
        export_link_days=7,
    )
    text = (ROOT / "data" / "shop.toml").read_text(encoding="utf-8")
    assert "owner's settings" in text.split("[retention]")[1].split("[")[0]
    broken = tmp_path / "shop.toml"
    broken.write_text("[retention]\nphotos_after_close_days = 0\n", encoding="utf-8")
    with pytest.raises(RetentionError, match="photos_after_close_days"):
        load_retention(broken)


async def test_main_py_purge_prints_a_summary_table(tmp_path: Path, database_url: str) -> None:
    env = {
        "HELPDESK_VAR_DIR": str(tmp_path / "var"),
        "HELPDESK_DATABASE_URL": database_url,
        "HELPDESK_SECRET_KEY": "test-secret-key-not-for-production",
    }
    dry = run("purge", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would be removed or anonymized (dry run)" in dry.stdout
    for rule in ("photos", "tickets", "inbound_raw", "faq_queries", "outbox", "exports"):
        assert rule in dry.stdout
    real = run("purge", "--quiet", env=env)
    assert real.returncode == 0 and "removed or anonymized" in real.stdout


async def test_the_server_purges_once_a_day_by_itself(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    helpdesk = app.state.helpdesk
    assert "purge" in helpdesk.scheduler.jobs  # the leader's daily jobs (helpdesk.scheduler)
    await _world(client, app)
    at_four = datetime.combine(utcnow().date(), time(19, 0), tzinfo=UTC)  # 04:00 in Tokyo
    ran = await helpdesk.scheduler.run_due(helpdesk, holder="test", now=at_four)
    assert "purge" in ran
    assert len(await rows(app, FaqGap)) == 1  # the query of 100 days ago is gone
    # Once a day: a second pass the same day runs nothing.
    assert "purge" not in await helpdesk.scheduler.run_due(helpdesk, holder="test", now=at_four)
