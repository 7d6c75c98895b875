"""Everything the app writes is readable by the service's group only, whatever the umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from helpdesk.files import FILE_MODE, private_dir, tighten, write_private_file
from helpdesk.settings import ROOT

# Run with umask 0, the worst case: every file and folder the app makes, with its mode.
WRITE_EVERYTHING = """
import asyncio, json, os, stat, sys
from email.message import EmailMessage
from pathlib import Path

os.umask(0)
from helpdesk.app import Helpdesk
from helpdesk.mail.outbox import DirectoryTransport
from helpdesk.settings import Settings
from tests.test_photos import phone_jpeg

var = Path(sys.argv[1])

async def main():
    helpdesk = Helpdesk(Settings(_env_file=None, var_dir=var / "deep" / "var"))
    await helpdesk.startup()
    try:
        helpdesk.photos.process(phone_jpeg(), filename="a.jpg", field_label="写真")
        message = EmailMessage()
        message["Message-ID"] = "<files-test@example.jp>"
        message.set_content("本文")
        await DirectoryTransport(helpdesk.settings.mail_dir).send(
            message, sender="a@example.jp", recipients=["b@example.jp"]
        )
        # Keep the database open: its -wal and -shm exist while a connection is.
        async with helpdesk.sessions() as session:
            from sqlalchemy import text
            await session.execute(text("CREATE TABLE IF NOT EXISTS probe (id INTEGER)"))
            await session.execute(text("INSERT INTO probe VALUES (1)"))
            await session.commit()
            modes = {
                str(path.relative_to(var)): stat.S_IMODE(path.lstat().st_mode)
                for path in var.rglob("*")
            }
    finally:
        await helpdesk.shutdown()
    print(json.dumps(modes))

asyncio.run(main())
"""


def test_every_file_and_folder_the_app_writes_is_group_only(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WRITE_EVERYTHING, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HELPDESK_SMTP_HOST": ""},
    )
    assert result.returncode == 0, result.stderr
    modes: dict[str, int] = json.loads(result.stdout.splitlines()[-1])

    names = set(modes)
    var = "deep/var"
    for expected in ("helpdesk.db", "helpdesk.db-wal", "helpdesk.db-shm", "secret_key", "media"):
        assert f"{var}/{expected}" in names, sorted(names)
    assert any(name.startswith(f"{var}/mail/") and name.endswith(".eml") for name in names)
    assert sum(name.endswith(".jpg") for name in names) == 2  # the photo and its thumbnail
    for name, mode in modes.items():
        # Never anything for others, never write for the group: 0640 / 0750 or stricter.
        assert mode & 0o027 == 0, f"{name} is {oct(mode)}"
    assert modes[f"{var}/secret_key"] == 0o600
    assert modes[f"{var}/helpdesk.db"] == 0o640
    assert modes["deep"] == 0o750  # parents made for var_dir too


def test_a_database_left_world_readable_is_tightened(tmp_path: Path) -> None:
    from helpdesk.db import prepare_sqlite_file

    database = tmp_path / "helpdesk.db"
    for suffix in ("", "-wal", "-shm"):
        path = tmp_path / f"helpdesk.db{suffix}"
        path.write_bytes(b"")
        path.chmod(0o666)

    prepare_sqlite_file(database)

    for suffix in ("", "-wal", "-shm"):
        assert stat.S_IMODE((tmp_path / f"helpdesk.db{suffix}").stat().st_mode) == 0o640


def test_private_helpers(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        folder = private_dir(tmp_path / "a" / "b" / "c")
        assert write_private_file(folder / "f", b"1") is True
        assert write_private_file(folder / "f", b"2", exclusive=True) is False
    finally:
        os.umask(old_umask)
    assert (folder / "f").read_bytes() == b"1"
    assert stat.S_IMODE((folder / "f").stat().st_mode) == FILE_MODE
    for path in (tmp_path / "a", tmp_path / "a" / "b", folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o750
    assert list(folder.iterdir()) == [folder / "f"]  # no temporary left
    assert tighten(folder / "f") is False and tighten(tmp_path / "missing") is False
