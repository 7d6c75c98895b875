"""``main.py serve --workers 2``: one app factory per web worker, metrics added up across
the workers, background work in a process of its own (``main.py worker``), started again
and taken over when it is killed (issue 13)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpdesk import db
from helpdesk.leader import read_heartbeat
from helpdesk.settings import ROOT
from tests.conftest import DATABASES, PG_URL, _reset_postgres
from tests.helpers import free_port
from tests.test_leader import _port_open, _wait_for


def _heartbeat(url: str) -> tuple[int, float] | None:
    async def read() -> tuple[int, float] | None:
        engine = db.create_engine(url)
        try:
            row = await read_heartbeat(db.session_factory(engine))
        except Exception:
            return None  # not migrated yet
        finally:
            await engine.dispose()
        if row is None:
            return None
        age = (db.utcnow() - db.as_utc(row.heartbeat_at)).total_seconds()
        return int(row.holder.rsplit(":", 1)[1]), age

    return asyncio.run(read())


def _children(pid: int) -> tuple[set[int], set[int]]:
    """``serve``'s web workers (uvicorn's) and background workers (not multiprocessing's
    helper)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    web, background = set(), set()
    for child in map(int, found.stdout.split()):
        try:
            arguments = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue  # gone meanwhile
        if b"worker" in arguments:
            background.add(child)
        elif not any(b"resource_tracker" in argument for argument in arguments):
            web.add(child)
    return web, background


def _serve(
    tmp_path: Path, url: str, port: int, *arguments: str, **settings: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """``main.py serve`` on ``port`` with ``arguments``, its output in ``serve.log``;
    ``settings``: more ``HELPDESK_*`` variables."""
    env = {
        **os.environ,
        "HELPDESK_VAR_DIR": str(tmp_path / "var"),
        "HELPDESK_DATABASE_URL": url,
        "HELPDESK_SECRET_KEY": "workers-test-secret",
        "HELPDESK_BASE_URL": f"http://127.0.0.1:{port}",
        **settings,
    }
    command = [sys.executable, "main.py", "serve", "--port", str(port), *arguments]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return server, log


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("database", DATABASES)
def test_two_workers_share_metrics_and_one_runs_the_background_work(
    database: str, tmp_path: Path
) -> None:
    if database == "postgresql":
        assert PG_URL
        asyncio.run(_reset_postgres(PG_URL))
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'var' / 'helpdesk.db'}"
    port, smtp_port = free_port(), free_port()
    server, log = _serve(
        tmp_path,
        url,
        port,
        "--workers",
        "2",
        HELPDESK_INBOUND_SMTP_PORT=str(smtp_port),
        HELPDESK_LOG_FORMAT="json",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _answers(base), 90, f"serve answers:\n{log.read_text()}")
        _wait_for(lambda: _heartbeat(url) is not None, 30, "a leader")
        web, background = _children(server.pid)
        assert len(web) == 2 and len(background) == 1, (web, background)
        heartbeat = _heartbeat(url)
        assert heartbeat is not None
        leader = heartbeat[0]
        assert {leader} == background  # the web workers only serve
        _wait_for(lambda: _port_open(smtp_port), 20, "the receiver")

        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(30):
                assert client.get("/api/faq/search", params={"q": "領収書"}).status_code == 200
            exposed = client.get("/metrics").text
        search = (
            'helpdesk_http_request_duration_seconds_count{method="GET",'
            'route="/api/faq/search",status="200"}'
        )
        [line] = [line for line in exposed.splitlines() if line.startswith(search)]
        # Whichever worker answered /metrics, it counts every worker's requests.
        assert float(line.rsplit(" ", 1)[1]) == 30
        assert (tmp_path / "var" / "metrics").is_dir()

        os.kill(leader, signal.SIGKILL)
        killed = time.monotonic()

        def new_leader() -> bool:
            beat = _heartbeat(url)
            return beat is not None and beat[0] != leader and beat[1] < 10

        _wait_for(new_leader, 20, f"another worker leads:\n{log.read_text()[-3000:]}")
        _wait_for(lambda: _port_open(smtp_port), 20, "the receiver again")
        assert time.monotonic() - killed < 20
        web_after, background_after = _children(server.pid)
        assert web_after == web and len(background_after) == 1
        assert leader not in background_after  # serve started another one

        # A web worker killed: uvicorn starts another; the background work goes on.
        victim = min(web)
        os.kill(victim, signal.SIGKILL)
        _wait_for(
            lambda: len(_children(server.pid)[0] - {victim}) == 2,
            30,
            f"uvicorn replaces the web worker:\n{log.read_text()[-3000:]}",
        )
        _wait_for(lambda: _answers(base), 30, "serve answers again")
        assert _children(server.pid)[1] == background_after
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        # JSON log lines with the request id (HELPDESK_LOG_FORMAT=json).
        assert '"request_id"' in log.read_text()
        children = set().union(*_children(server.pid))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    # serve stops its background worker too (none is left running the work).
    _wait_for(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in children),
        10,
        "every child of serve gone",
    )


def test_one_worker_counts_its_requests_and_logs_each_of_them(tmp_path: Path) -> None:
    # serve's default: one worker, in serve's own process. prometheus-client chooses at
    # import where counts live: imported before serve set PROMETHEUS_MULTIPROC_DIR, it kept
    # them in memory while /metrics read the (empty) folder, and every count was gone.
    port = free_port()
    server, log = _serve(tmp_path, f"sqlite:///{tmp_path / 'var' / 'helpdesk.db'}", port)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _answers(base), 90, f"serve answers:\n{log.read_text()}")
        with httpx.Client(base_url=base, timeout=10) as client:
            ids = [
                client.get("/api/faq/search", params={"q": "領収書"}).headers["X-Request-ID"]
                for _ in range(7)
            ]
            exposed = client.get("/metrics").text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    search = (
        'helpdesk_http_request_duration_seconds_count{method="GET",'
        'route="/api/faq/search",status="200"}'
    )
    [line] = [line for line in exposed.splitlines() if line.startswith(search)]
    assert float(line.rsplit(" ", 1)[1]) == 7
    # Every request's access log line, with its own id, written by the time serve stopped.
    lines = [line for line in log.read_text().splitlines() if "GET /api/faq/search" in line]
    assert len(lines) == 7 and all(f"[{i}]" in line for i, line in zip(ids, lines, strict=True))


def test_processes_starting_at_once_migrate_a_new_sqlite_file_once(tmp_path: Path) -> None:
    """Two workers on a fresh database both created the tables ("table faq_feedback already
    exists"): the migration now takes a lock file beside the database."""
    url = f"sqlite:///{tmp_path / 'helpdesk.db'}"
    code = (
        "import asyncio, sys\n"
        "from helpdesk import db\n"
        "async def main():\n"
        "    engine = db.create_engine(sys.argv[1])\n"
        "    await db.migrate(engine)\n"
        "    await engine.dispose()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, url], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for process in processes:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors
