"""The background worker process: ``main.py worker``, and its supervisor in ``serve``.

With ``serve --workers N`` (N >= 2) the web workers serve requests only, and the background
work (outbox sender, SMTP receiver, inbound retries, photo sweep, daily jobs) runs in one
process of its own that ``serve`` starts and restarts when it dies (``Supervisor``). That
process still campaigns for leadership (``helpdesk.leader``), so that several machines, or a
worker run by systemd beside ``serve``, never run the work twice.

Why a process of its own rather than a web worker that leads: the one thing no protocol can
make atomic is the SMTP server's "250 accepted" and our record that the mail was sent; a
process killed between the two sends that mail again after the handover. In a web worker
under load, a reply waits for the event loop behind requests and photo uploads, so that
window is tens of milliseconds per mail; in a process that does nothing else it is well
under one (``OutboxSender.send_one`` also writes the record straight after the reply on a
connection checked out before sending). Killing a web worker loses nothing in flight but
its requests, which clients retry (``Idempotency-Key``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from helpdesk.settings import Settings

log = logging.getLogger("helpdesk.worker")

#: How often an orphaned worker (``serve`` died without stopping it) notices.
PARENT_CHECK_INTERVAL = 1.0
#: Restart delays after a worker dies: quick at first, slower while it keeps dying.
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
#: A worker that lived this long resets the delays.
STABLE_AFTER = 60.0
#: Seconds a stopping worker gets before SIGKILL.
STOP_TIMEOUT = 30.0


async def run(settings: Settings, *, stop: asyncio.Event, parent: int | None = None) -> None:
    """Campaign for the background work and do it until ``stop`` is set (or ``parent``
    is gone: the worker does not outlive the ``serve`` that started it)."""
    from helpdesk.app import Helpdesk

    # It answers no FAQ questions: the shop policy alone, no search index (``Helpdesk``).
    helpdesk = Helpdesk(settings, search=False)
    await helpdesk.startup()
    helpdesk.start_leadership()
    watch = asyncio.create_task(_watch_parent(parent, stop)) if parent else None
    try:
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        await helpdesk.shutdown()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
    log.warning("serve (pid %d) is gone: the background worker stops", parent)
    stop.set()


def main(settings: Settings, *, parent: int | None = None) -> int:
    """``main.py worker``: run until SIGTERM or SIGINT, then stop cleanly (exit code 0)."""

    async def serve_until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop=stop, parent=parent)

    asyncio.run(serve_until_signalled())
    return 0


class Supervisor:
    """Keeps one ``main.py worker`` process running beside uvicorn's web workers.

    A worker that exits with a failure or is killed is started again (after a short,
    growing delay); one that exits cleanly (0: it was told to stop, by Ctrl-C for
    instance) is not. ``stop`` sends SIGTERM and waits, then kills.
    """

    def __init__(self, command: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.command = list(command)
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._keep_running, name="worker-supervisor")

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            self.process = subprocess.Popen(self.command, env=self.env)
            return self.process

    def _keep_running(self) -> None:
        failures = 0
        while (process := self._spawn()) is not None:
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            if code == 0:
                log.info("background worker pid %d stopped", process.pid)
                return
            if time.monotonic() - started > STABLE_AFTER:
                failures = 0
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            self.restarts += 1
            log.warning(
                "background worker pid %d died (exit code %d); starting another in %.1fs",
                process.pid,
                code,
                delay,
            )
            if self._stopping.wait(delay):
                return

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread.is_alive():
            self._thread.join(timeout)


def worker_command(main_script: str) -> list[str]:
    """The command line of the worker ``serve`` supervises (it exits when ``serve`` does)."""
    return [sys.executable, main_script, "worker", "--parent", str(os.getpid())]
