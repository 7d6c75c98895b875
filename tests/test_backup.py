"""Back up, wipe, restore: every row of every table and every media file comes back
(SQLite and PostgreSQL, issue 13)."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlmodel import SQLModel
from starlette.applications import Starlette

from helpdesk import db
from helpdesk.app import create_app
from helpdesk.backup import BackupError, backup, restore, verify
from helpdesk.settings import Settings
from tests.conftest import _reset_postgres
from tests.helpers import api_defect, api_inquiry, deliver, free_port, mail


async def _every_row(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    engine = db.create_engine(settings.resolved_database_url)
    found: dict[str, list[tuple[Any, ...]]] = {}
    try:
        async with engine.connect() as connection:
            for table in SQLModel.metadata.sorted_tables:
                order = list(table.primary_key.columns) or list(table.columns)
                rows = await connection.execute(select(table).order_by(*order))
                found[table.name] = [tuple(row) for row in rows]
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
            found["alembic_version"] = [tuple(row) for row in version]
    finally:
        await engine.dispose()
    return found


def _every_file(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


async def _fill(app: Starlette) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await api_defect(client, app)
        await api_defect(client, app, name="佐藤 次郎", email="jiro@example.jp")
        await api_inquiry(client)
        await client.get("/api/faq/search", params={"q": "領収書の宛名を変えたい"})
    # A mail received, and rate-limit counters: every table the app writes.
    helpdesk = app.state.helpdesk
    helpdesk.settings.inbound_smtp_port = free_port()
    await helpdesk.start_receiver()
    await deliver(
        helpdesk.settings.inbound_smtp_port,
        mail("hanako@example.jp", "support@example.jp", "質問", "配送について教えてください。"),
    )
    await helpdesk.faq.flush_gaps()


async def test_backup_wipe_restore_gives_back_every_row_and_file(
    settings: Settings, tmp_path: Path
) -> None:
    app = create_app(settings)
    await app.state.helpdesk.startup()
    try:
        await _fill(app)
        archive = tmp_path / "backup.tar.gz"
        manifest = backup(settings, archive)
    finally:
        await app.state.helpdesk.shutdown()
    rows = await _every_row(settings)
    files = _every_file(settings.resolved_media_dir)
    assert len(files) >= 4  # two defects, two photos each (and their thumbnails)
    assert rows["ticket"] and rows["attachment"] and rows["inbound_mail"] and rows["outbox"]
    assert archive.stat().st_mode & 0o077 == 0  # personal data and the secret key
    assert {item["path"] for item in manifest["files"]} >= {f"media/{name}" for name in files}

    # Existing data is not overwritten without --force.
    with pytest.raises(BackupError, match="--force"):
        await restore(settings, archive)

    # The disaster: the database and the media folder are gone.
    if settings.is_postgresql:
        await _reset_postgres(settings.resolved_database_url)
    else:
        for path in settings.var_dir.glob("helpdesk.db*"):
            path.unlink()
    shutil.rmtree(settings.resolved_media_dir)

    restored = await restore(settings, archive)
    assert restored.files == len(files)
    assert await _every_row(settings) == rows
    assert _every_file(settings.resolved_media_dir) == files

    # The restored app starts and serves the tickets.
    app = create_app(settings)
    await app.state.helpdesk.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/readyz")).json()["checks"]["database"] == "ok"
    finally:
        await app.state.helpdesk.shutdown()

    # --force replaces data that is there.
    restored = await restore(settings, archive, force=True)
    assert await _every_row(settings) == rows


def test_an_altered_archive_is_refused(settings: Settings, tmp_path: Path) -> None:
    media = settings.resolved_media_dir
    media.mkdir(parents=True)
    (media / "ab").mkdir()
    (media / "ab" / "photo.jpg").write_bytes(b"\xff\xd8 a photo")
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if not settings.is_postgresql:
        import sqlite3

        sqlite3.connect(settings.var_dir / "helpdesk.db").close()
    archive = tmp_path / "good.tar.gz"
    try:
        backup(settings, archive)
    except BackupError as exc:  # PostgreSQL without pg_dump
        pytest.skip(str(exc))
    assert verify(archive)["files"]
    with pytest.raises(BackupError, match="exists"):
        backup(settings, archive)

    # Same names, one byte changed in a photo.
    altered = tmp_path / "altered.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(altered, "w:gz") as target:
        for info in source:
            data = source.extractfile(info)
            assert data is not None
            content = data.read()
            if info.name == "media/ab/photo.jpg":
                content = content.replace(b"a photo", b"b photo")
            info.size = len(content)
            import io

            target.addfile(info, io.BytesIO(content))
    with pytest.raises(BackupError, match="checksum"):
        verify(altered)


def test_the_commands_back_up_and_restore(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from helpdesk.settings import ROOT

    env = {**os.environ, "HELPDESK_VAR_DIR": str(tmp_path / "var")}
    for name in ("HELPDESK_DATABASE_URL", "HELPDESK_MEDIA_DIR", "HELPDESK_SECRET_KEY"):
        env.pop(name, None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(ROOT / "main.py"), *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)

    assert run("agent", "add", "boss@example.jp", "--name", "店長").returncode == 0
    archive = tmp_path / "b.tar.gz"
    made = run("backup", "-o", str(archive))
    assert made.returncode == 0, made.stderr
    assert "backed up the sqlite database" in made.stdout
    checked = run("restore", "--verify-only", str(archive))
    assert checked.returncode == 0 and "match their checksums" in checked.stdout
    refused = run("restore", str(archive))
    assert refused.returncode == 1 and "--force" in refused.stderr
    key = (tmp_path / "var" / "secret_key").read_text()
    (tmp_path / "var" / "secret_key").unlink()
    forced = run("restore", "--force", str(archive))
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "var" / "secret_key").read_text() == key
    listed = run("agent", "list")
    assert "boss@example.jp" in listed.stdout
