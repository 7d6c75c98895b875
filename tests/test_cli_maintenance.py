"""'mail retry' and 'photos sweep', run as a shop owner runs them (subprocesses of main.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import select

from helpdesk.db import create_engine, migrate, session_factory, utcnow
from helpdesk.models import Outbox
from helpdesk.photos import PhotoStore
from tests.test_cli import run
from tests.test_photos import heic, phone_jpeg, stored_files


def env_for(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "HELPDESK_VAR_DIR": str(tmp_path / "var"),
        "HELPDESK_DATABASE_URL": database_url,
        "HELPDESK_SECRET_KEY": "test-secret-key-not-for-production",
    }


async def test_mail_retry_by_id_and_all_dead(tmp_path: Path, database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    sessions = session_factory(engine)
    async with sessions() as session:
        for n, status in enumerate(("dead", "dead", "sent")):
            session.add(
                Outbox(
                    kind="ticket_confirmation",
                    to_address=f"customer{n}@example.jp",
                    subject=f"受付のお知らせ {n}",
                    text="本文",
                    message_id=f"retry-{n}@example.jp",
                    status=status,
                    attempts=1,
                    last_error="550 5.7.1 refused",
                    dead_at=utcnow() if status == "dead" else None,
                )
            )
        await session.commit()
        ids = list((await session.execute(select(Outbox.id).order_by(Outbox.id))).scalars())
    env = env_for(tmp_path, database_url)

    usage = run("mail", "retry", env=env)
    one = run("mail", "retry", str(ids[0]), env=env)
    sent = run("mail", "retry", str(ids[2]), env=env)
    rest = run("mail", "retry", "--dead", env=env)
    none = run("mail", "retry", "--dead", env=env)

    assert usage.returncode == 2 and "--dead" in usage.stderr
    assert one.returncode == 0, one.stderr
    assert f"requeued #{ids[0]} to customer0@example.jp" in one.stdout
    assert sent.returncode == 1 and "not sent twice" in sent.stderr
    assert rest.returncode == 0 and f"requeued #{ids[1]}" in rest.stdout
    assert none.returncode == 0 and "no dead mail" in none.stdout
    async with sessions() as session:
        rows = (await session.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
        assert [(row.status, row.attempts) for row in rows] == [
            ("queued", 0),
            ("queued", 0),
            ("sent", 1),
        ]
    await engine.dispose()


async def test_photos_sweep_dry_run_then_for_real(tmp_path: Path, database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    await engine.dispose()
    store = PhotoStore(tmp_path / "var" / "media")
    orphan = store.process(phone_jpeg((640, 480)), filename="a", field_label="写真")
    fresh = store.process(heic((800, 600)), filename="b", field_label="写真")
    when = time.time() - 3 * 24 * 3600
    for digest in (orphan.digest, orphan.thumb_digest):
        os.utime(store.path(digest), (when, when))
    env = env_for(tmp_path, database_url)

    dry = run("photos", "sweep", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would delete 2 file(s)" in dry.stdout and orphan.digest in dry.stdout
    assert len(stored_files(store.root)) == 4

    real = run("photos", "sweep", env=env)
    assert real.returncode == 0, real.stderr
    assert "deleted 2 file(s)" in real.stdout and "2 newer than 24 h" in real.stdout
    assert sorted(stored_files(store.root)) == sorted(
        [store.path(fresh.digest), store.path(fresh.thumb_digest)]
    )
    assert run("photos", "sweep", "--grace-hours", "0.5", env=env).returncode == 2
