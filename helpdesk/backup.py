"""Backups: the database and the media folder in one tar archive, with a manifest of
SHA-256 checksums; and restoring one (``main.py backup`` / ``main.py restore``).

Archive layout::

    manifest.json          format, when, the database kind, every file with size and sha256
    database/helpdesk.db   SQLite: a consistent copy by SQLite's online backup API
    database/helpdesk.pgdump  PostgreSQL: ``pg_dump --format=custom`` (needs pg_dump)
    media/...              every file of the media folder (customers' photos)
    secret_key             ``var/secret_key`` when the key was generated there (links in
                           mails sent so far are signed with it)

The archive holds personal data and the secret key: it is written 0600.

Backing up runs while the server runs (SQLite's backup API and pg_dump take a consistent
snapshot; a photo uploaded during the backup may be missing, never half-written, since
photos are written to a temporary name and renamed). Restoring needs the server stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url

from helpdesk.files import private_dir
from helpdesk.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/helpdesk.db"
PG_MEMBER = "database/helpdesk.pgdump"
SECRET_MEMBER = "secret_key"
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Restored:
    database: str
    files: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.resolved_database_url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _pg_url(settings: Settings) -> str:
    """The URL pg_dump and pg_restore understand (no driver name)."""
    url = make_url(settings.resolved_database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(
            f"{command[0]} was not found: install the PostgreSQL client"
            " (Debian: apt install postgresql-client) of the server's major version"
        )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[-2000:]}")


def backup(settings: Settings, target: Path) -> dict[str, Any]:
    """Write the archive to ``target`` (refusing to overwrite one); return its manifest.

    Raises:
        BackupError: when the database cannot be copied or ``target`` exists.
    """
    if target.exists():
        raise BackupError(f"{target} exists: choose another name")
    target.parent.mkdir(parents=True, exist_ok=True)
    entries: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory(prefix="madoguchi-backup-") as folder:
        staging = Path(folder)
        if settings.is_postgresql:
            kind = "postgresql"
            dump = staging / "helpdesk.pgdump"
            _run(["pg_dump", "--format=custom", "--no-owner", "-f", str(dump), _pg_url(settings)])
            entries.append((PG_MEMBER, dump))
        else:
            kind = "sqlite"
            source_path = _sqlite_path(settings)
            if not source_path.exists():
                raise BackupError(f"no database at {source_path}")
            copy = staging / "helpdesk.db"
            source = sqlite3.connect(source_path)
            destination = sqlite3.connect(copy)
            try:
                source.backup(destination)  # consistent even while the server writes
            finally:
                destination.close()
                source.close()
            entries.append((SQLITE_MEMBER, copy))
        media = settings.resolved_media_dir
        if media.exists():
            for path in sorted(media.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    entries.append((f"media/{path.relative_to(media).as_posix()}", path))
        secret = settings.var_dir / "secret_key"
        if secret.exists():
            entries.append((SECRET_MEMBER, secret))
        files = []
        for name, path in entries:
            files.append({"path": name, "size": path.stat().st_size, "sha256": _sha256(path)})
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": kind,
            "files": files,
        }
        partial = target.with_name(target.name + ".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                data = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode = len(data), 0o600
                tar.addfile(info, io.BytesIO(data))
                for name, path in entries:
                    tar.add(path, arcname=name, recursive=False)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return manifest


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and name == path.as_posix()


def verify(archive: Path) -> dict[str, Any]:
    """Check every file against the manifest; return the manifest.

    Raises:
        BackupError: for a missing, extra, altered or unsafe member, or no manifest.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise BackupError(f"{archive}: no {MANIFEST}")
            manifest = json.loads(member.read())
            if manifest.get("format") != FORMAT:
                raise BackupError(f"{archive}: unknown format {manifest.get('format')!r}")
            expected = {item["path"]: item for item in manifest["files"]}
            seen = set()
            for info in tar:
                if info.name == MANIFEST:
                    continue
                if info.name not in expected or not info.isfile() or not _safe_member(info.name):
                    raise BackupError(f"{archive}: unexpected member {info.name!r}")
                file = tar.extractfile(info)
                assert file is not None
                digest = hashlib.sha256()
                while chunk := file.read(CHUNK):
                    digest.update(chunk)
                if digest.hexdigest() != expected[info.name]["sha256"]:
                    raise BackupError(f"{archive}: {info.name} does not match its checksum")
                seen.add(info.name)
            if missing := sorted(set(expected) - seen):
                raise BackupError(f"{archive}: missing {', '.join(missing[:5])}")
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        raise BackupError(f"{archive}: not a readable backup ({exc})") from exc
    return manifest


async def _has_data(settings: Settings) -> bool:
    from sqlalchemy import inspect

    from helpdesk import db

    if not settings.is_postgresql and not _sqlite_path(settings).exists():
        return False
    engine = db.create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    return bool(tables)


async def _wipe_postgres(settings: Settings) -> None:
    from sqlalchemy import text

    from helpdesk import db

    engine = db.create_engine(settings.resolved_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


async def restore(settings: Settings, archive: Path, *, force: bool = False) -> Restored:
    """Verify ``archive`` and put its database, media and secret key back.

    Raises:
        BackupError: for an archive that fails verification, one of the other database
            kind, or existing data without ``force``.
    """
    manifest = verify(archive)
    kind = "postgresql" if settings.is_postgresql else "sqlite"
    if manifest["database"] != kind:
        raise BackupError(
            f"the archive holds a {manifest['database']} database; HELPDESK_DATABASE_URL is"
            f" {kind} (restore into the same kind, or migrate the data with pg tools)"
        )
    media = settings.resolved_media_dir
    media_used = media.exists() and any(media.iterdir())
    if not force and (await _has_data(settings) or media_used):
        raise BackupError(
            "the database or the media folder holds data: stop the server and add --force"
            " to replace them with the archive's"
        )
    private_dir(settings.var_dir)
    with tempfile.TemporaryDirectory(prefix="madoguchi-restore-", dir=settings.var_dir) as folder:
        staging = Path(folder)
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(staging, filter="data")
        if kind == "postgresql":
            await _wipe_postgres(settings)
            _run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--exit-on-error",
                    "-d",
                    _pg_url(settings),
                    str(staging / PG_MEMBER),
                ]
            )
        else:
            target = _sqlite_path(settings)
            target.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("-wal", "-shm", "-journal"):
                target.with_name(target.name + suffix).unlink(missing_ok=True)
            restored = staging / SQLITE_MEMBER
            os.chmod(restored, 0o640)
            os.replace(restored, target)
        if media.exists():
            shutil.rmtree(media)
        extracted = staging / "media"
        private_dir(media.parent)
        if extracted.exists():
            shutil.move(str(extracted), str(media))
        else:
            private_dir(media)
        if (staging / SECRET_MEMBER).exists():
            os.chmod(staging / SECRET_MEMBER, 0o600)
            os.replace(staging / SECRET_MEMBER, settings.var_dir / "secret_key")
    files = sum(1 for item in manifest["files"] if item["path"].startswith("media/"))
    return Restored(database=kind, files=files)
