"""The background worker process (``main.py worker``) and the supervisor ``serve`` keeps it
running with (issue 13). ``test_workers.py`` kills it under a real ``serve --workers 2``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpdesk import faq_service, worker
from helpdesk.app import Helpdesk
from helpdesk.settings import ROOT, Settings
from tests.test_leader import _wait_for


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _counting(path: Path, exit_code: int) -> list[str]:
    """A stand-in worker: appends its pid to ``path`` and exits with ``exit_code``."""
    script = (
        "import os, sys; "
        f"open({str(path)!r}, 'a').write(f'{{os.getpid()}}\\n'); "
        f"sys.exit({exit_code})"
    )
    return [sys.executable, "-c", script]


def test_a_worker_that_fails_is_started_again_until_serve_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "RESTART_DELAYS", (0.05,))
    starts = tmp_path / "starts"
    supervisor = worker.Supervisor(_counting(starts, 1))
    supervisor.start()
    try:
        _wait_for(lambda: len(_lines(starts)) >= 3, 20, "three starts")
    finally:
        supervisor.stop(timeout=10)
    assert len(set(_lines(starts))) == len(_lines(starts))  # a new process each time
    assert supervisor.restarts >= 2
    stopped = len(_lines(starts))
    time.sleep(0.3)
    assert len(_lines(starts)) == stopped  # none after stop


def test_a_worker_that_stops_cleanly_is_not_started_again(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    supervisor = worker.Supervisor(_counting(starts, 0))
    supervisor.start()
    _wait_for(lambda: len(_lines(starts)) == 1, 20, "one start")
    time.sleep(1.0)  # longer than the first restart delay
    supervisor.stop(timeout=10)
    assert len(_lines(starts)) == 1 and supervisor.restarts == 0


def test_stop_ends_a_running_worker(tmp_path: Path) -> None:
    supervisor = worker.Supervisor([sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start()
    _wait_for(lambda: supervisor.process is not None, 10, "started")
    process = supervisor.process
    assert process is not None
    started = time.monotonic()
    supervisor.stop(timeout=10)
    assert process.poll() is not None and time.monotonic() - started < 10


def _worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HELPDESK_VAR_DIR": str(tmp_path / "var"),
        "HELPDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'helpdesk.db'}",
        "HELPDESK_SECRET_KEY": "worker-test-secret",
        **extra,
    }


def test_an_orphaned_worker_stops_by_itself(tmp_path: Path) -> None:
    """``serve`` killed with SIGKILL cannot stop its worker: the worker notices that its
    parent is gone (here: it never was its parent) and stops, so that a restarted
    ``serve`` does not find an old worker still holding the background work."""
    not_my_parent = os.getpid() + 1_000_000
    done = subprocess.run(
        [sys.executable, "main.py", "worker", "--parent", str(not_my_parent)],
        cwd=ROOT,
        env=_worker_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert "is gone: the background worker stops" in done.stdout + done.stderr


def test_worker_refuses_when_background_work_is_off(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "main.py", "worker"],
        cwd=ROOT,
        env=_worker_env(tmp_path, HELPDESK_BACKGROUND_WORK="false"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    assert "HELPDESK_BACKGROUND_WORK is off" in done.stderr


async def test_the_background_process_builds_no_search_index_and_follows_the_shop_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``main.py worker`` answers no FAQ questions: it reads data/shop.toml alone (mail's
    sender name, support hours) and picks up an edit of it, without an index to build."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    settings = Settings(
        _env_file=None,
        var_dir=tmp_path / "var",
        data_dir=data,
        secret_key="worker-test-secret",
        base_url="http://testserver",
    )
    helpdesk = Helpdesk(settings, search=False)
    await helpdesk.startup()
    try:
        with pytest.raises(RuntimeError, match="answers no FAQ questions"):
            helpdesk.faq  # noqa: B018
        assert helpdesk.policy().name == "COCO case"
        assert helpdesk.mail_sender().from_name == "COCO case"

        monkeypatch.setattr(faq_service, "DATA_CHECK_SECONDS", 0.0)
        shop = data / "shop.toml"
        shop.write_text(
            shop.read_text(encoding="utf-8").replace('name = "COCO case"', 'name = "ココケース"'),
            encoding="utf-8",
        )
        assert helpdesk.policy().name == "ココケース"
        assert helpdesk.mail_sender().from_name == "ココケース"

        shop.write_text("[shop\n", encoding="utf-8")  # an edit that does not load
        assert helpdesk.policy().name == "ココケース"  # the previous policy stays
    finally:
        await helpdesk.shutdown()
