#!/usr/bin/env python3
"""One-command setup for people and CI: ``python3 tasks.py run``, ``test`` or ``check``.

Creates ``.venv`` beside this file, installs the project with its development extras
(only when ``pyproject.toml`` changed since the last install), then runs the app, the
test suite or the checks inside it. Needs nothing but Python >= 3.11.

``check`` runs, in order and all of them even when one fails: ruff's lint, ruff's format
check and mypy over the application (``CHECKED``); it fails when any of them fails.
``.ci/run`` runs it before the tests.
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
#: What ``check`` lints, format-checks and type-checks (mypy's settings: pyproject.toml).
CHECKED = ("helpdesk", "faq", "main.py")


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


def check() -> int:
    """ruff (lint, format check) and mypy over ``CHECKED``; 1 if any of them failed."""
    bin_dir = PYTHON.parent
    steps = [
        ("ruff check", [str(bin_dir / "ruff"), "check", *CHECKED]),
        ("ruff format --check", [str(bin_dir / "ruff"), "format", "--check", *CHECKED]),
        ("mypy", [str(PYTHON), "-m", "mypy", *CHECKED]),
    ]
    failed = []
    for name, command in steps:
        print(f"== {name}", flush=True)
        if subprocess.call(command, cwd=ROOT) != 0:
            failed.append(name)
    if failed:
        print(f"check failed: {', '.join(failed)}", flush=True)
        return 1
    print("check passed", flush=True)
    return 0


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
    if command == "check":
        ensure_venv()
        return check()
    if command == "setup":
        ensure_venv()
        return 0
    print("usage: python3 tasks.py run [serve options] | test [pytest options] | check | setup")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
