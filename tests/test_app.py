"""The app factory, startup, and one smoke test of the real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpdesk.app import create_app
from helpdesk.settings import ROOT, Settings
from tests.helpers import free_port


async def test_factory_builds_isolated_apps(tmp_path: Path) -> None:
    first = create_app(Settings(_env_file=None, var_dir=tmp_path / "a"))
    second = create_app(Settings(_env_file=None, var_dir=tmp_path / "b"))
    assert first.state.helpdesk is not second.state.helpdesk
    await first.state.helpdesk.startup()
    await first.state.helpdesk.startup()  # idempotent
    assert (tmp_path / "a" / "helpdesk.db").exists()
    assert not (tmp_path / "b").exists()
    await first.state.helpdesk.shutdown()


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, var_dir=tmp_path)
    key = settings.ensure_secret_key()
    assert len(key) > 40
    assert Settings(_env_file=None, var_dir=tmp_path).ensure_secret_key() == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_settings_from_environment(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HELPDESK_DATABASE_URL", "postgresql://postgres@127.0.0.1/x")
    monkeypatch.setenv("HELPDESK_FAQ_MAX_QUERY_LENGTH", "50")
    settings = Settings(_env_file=None)
    assert settings.resolved_database_url == "postgresql://postgres@127.0.0.1/x"
    assert settings.faq_max_query_length == 50


def _start(command: list[str], tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    """Start a server process and wait until it answers on ``port``."""
    env = {**os.environ, "HELPDESK_VAR_DIR": str(tmp_path / "var")}
    for name in ("HELPDESK_DATABASE_URL", "HELPDESK_BASE_URL"):
        env.pop(name, None)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/faq", timeout=2)
            return server
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError(f"server did not answer:\n{log.read_text()}") from None
            time.sleep(0.2)


def test_serve_starts_the_real_server(tmp_path: Path) -> None:
    port = free_port()
    server = _start(
        [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(port)], tmp_path, port
    )
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/faq")
        assert response.status_code == 200
        assert '<html lang="ja">' in response.text
        api = httpx.get(f"http://127.0.0.1:{port}/api/faq/search", params={"q": "領収書"})
        assert api.json()["answered"] is True
        assert (tmp_path / "var" / "helpdesk.db").exists()
        # Without HELPDESK_BASE_URL, links handed out (API answers, mails) name this port.
        ticket = httpx.post(
            f"http://127.0.0.1:{port}/api/tickets",
            files={
                "kind": (None, "inquiry"),
                "name": (None, "山田"),
                "email": (None, "a@example.jp"),
                "category": (None, "other"),
                "description": (None, "ポートの確認"),
            },
        )
        assert ticket.status_code == 201, ticket.text
        assert ticket.json()["status_url"].startswith(f"http://127.0.0.1:{port}/t/HD-")
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_tasks_run_stops_on_sigterm(tmp_path: Path) -> None:
    """``tasks.py run`` is what people start and service managers stop: SIGTERM ends the server."""
    port = free_port()
    server = _start(
        [sys.executable, str(ROOT / "tasks.py"), "run", "--port", str(port)], tmp_path, port
    )
    try:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/faq", timeout=2)
    finally:
        if server.poll() is None:
            server.kill()
