#!/usr/bin/env python3
"""One-command setup for people and CI: ``python3 tasks.py run`` or ``python3 tasks.py test``.

Creates ``.venv`` beside this file, installs the project with its development extras
(only when ``pyproject.toml`` changed since the last install), then runs the app or the
test suite inside it. Needs nothing but Python >= 3.11.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".installed"


def _sh(*args: str | os.PathLike[str], **kwargs: object) -> None:
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, **kwargs)  # type: ignore[call-overload]


def ensure_venv() -> None:
    """Create the virtual environment and install the project when its metadata changed."""
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        _sh(sys.executable, "-m", "venv", VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    print("Installing dependencies into .venv ...", flush=True)
    _sh(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _sh(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(digest)


def ensure_chromium() -> None:
    """Browser tests drive Debian's chromium; install it when we may (root with apt-get)."""
    if shutil.which("chromium"):
        return
    can_apt = shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0
    if not can_apt:
        print("chromium not found: browser tests will be skipped.", flush=True)
        return
    print("Installing chromium from Debian's packages ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(
        [
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
            "fonts-noto-cjk",
        ],
        check=False,
        env=env,
    )


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036  (this file runs before any install)
        sys.exit("madoguchi needs Python 3.11 or newer.")
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "run":
        ensure_venv()
        serve = [str(PYTHON), str(ROOT / "main.py"), "serve", *rest]
        if os.name == "posix":
            # Become the server, so that SIGTERM or SIGINT sent to this process stops it.
            os.chdir(ROOT)
            os.execv(serve[0], serve)
        return subprocess.call(serve, cwd=ROOT)
    if command == "test":
        ensure_venv()
        ensure_chromium()
        return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)
    if command == "setup":
        ensure_venv()
        return 0
    print("usage: python3 tasks.py run [serve options] | test [pytest options] | setup")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
