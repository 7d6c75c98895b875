"""Files and folders the app writes: readable by the service's group, never by others.

Everything under ``var/`` (the SQLite database with its ``-wal`` and ``-shm``, photos, mail
written as ``.eml``, the secret key) holds customers' data or secrets. Modes are set
explicitly, so that they do not depend on the umask of whoever started the process: files
0640, folders 0750 (the secret key 0600). Group read is kept on purpose, for backups run by
another user of the service's group.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

FILE_MODE = 0o640
DIR_MODE = 0o750
SECRET_MODE = 0o600
# What "others" may never have, and the group may never write.
_FORBIDDEN = stat.S_IRWXO | stat.S_IWGRP


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0750 folders; return ``path``.

    ``Path.mkdir(parents=True, mode=...)`` gives the parents the umask's default mode; here
    every folder created gets ``DIR_MODE`` (chmod after mkdir, whatever the umask). Folders
    that already exist are left as they are.
    """
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            folder.mkdir(mode=DIR_MODE)
            os.chmod(folder, DIR_MODE)
    return path


def create_private_file(path: Path, *, mode: int = FILE_MODE) -> None:
    """Create ``path`` empty with ``mode`` if it does not exist (an existing file is kept).

    SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file, so creating
    the database this way before SQLite opens it decides all three.
    """
    private_dir(Path(path).parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, mode)
    finally:
        os.close(descriptor)


def write_private_file(
    path: Path, data: bytes, *, mode: int = FILE_MODE, exclusive: bool = False
) -> bool:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename) with ``mode``.

    The file never exists with a wider mode, not even for a moment. With ``exclusive``, an
    existing ``path`` is kept (two processes creating it at once agree on the first one).
    Returns whether ``path`` was written.
    """
    folder = private_dir(Path(path).parent)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".write-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if not exclusive:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # fails if path exists, unlike rename
        except FileExistsError:
            return False
        finally:
            os.unlink(temporary)
        return True
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def tighten(path: Path) -> bool:
    """Remove write for the group and every right for others from ``path``, if it exists.

    For files written by earlier versions (a database created 0644). Returns whether the
    mode was changed.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return False
    if not mode & _FORBIDDEN:
        return False
    os.chmod(path, mode & ~_FORBIDDEN)
    return True
