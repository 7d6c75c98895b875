"""What the browser tests share: Debian's chromium and its flags, the app served on loopback
by uvicorn in a thread, and a headless browser (Playwright)."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn

from helpdesk.app import Helpdesk
from helpdesk.settings import Settings

T = TypeVar("T")

CHROMIUM = shutil.which("chromium")
# CI sets it: the browser tests must run there, never skip.
REQUIRED = os.environ.get("HELPDESK_REQUIRE_BROWSER") == "1"

if not CHROMIUM and REQUIRED:
    raise RuntimeError("HELPDESK_REQUIRE_BROWSER=1 but Debian's chromium is not installed")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def served(app: Any, port: int) -> Iterator[str]:
    """``app`` served at http://127.0.0.1:``port`` (its lifespan run) until the block ends."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def before_serving(settings: Settings, work: Callable[[Helpdesk], Awaitable[T]]) -> T:
    """``await work(helpdesk)`` on the data the server will serve (agents, tickets), before
    it starts: a helpdesk of its own, started and shut down around it."""

    async def run() -> T:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            return await work(helpdesk)
        finally:
            await helpdesk.shutdown()

    return asyncio.run(run())
