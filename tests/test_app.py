"""The app factory, startup, and one smoke test of the real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

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


def test_serve_starts_the_real_server(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HELPDESK_VAR_DIR": str(tmp_path / "var")}
    env.pop("HELPDESK_DATABASE_URL", None)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/faq", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "server did not answer within 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert '<html lang="ja">' in response.text
        api = httpx.get(f"http://127.0.0.1:{port}/api/faq/search", params={"q": "領収書"})
        assert api.json()["answered"] is True
        assert (tmp_path / "var" / "helpdesk.db").exists()
    finally:
        server.terminate()
        server.wait(timeout=10)
