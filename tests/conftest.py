"""Fixtures: isolated apps over SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from helpdesk.app import create_app
from helpdesk.db import async_url
from helpdesk.observability import flush_access_log
from helpdesk.settings import ROOT, Settings
from tests.helpers import Lines, MailLoop, free_port, smtp_server

SHARED = ROOT.parent / "shared"
PG_URL = os.environ.get("HELPDESK_TEST_DATABASE_URL")

DATABASES = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="HELPDESK_TEST_DATABASE_URL is not set"),
        ],
    ),
]


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(async_url(url))
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'helpdesk.db'}"
    assert PG_URL
    await _reset_postgres(PG_URL)
    return PG_URL


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        var_dir=tmp_path / "var",
        database_url=database_url,
        secret_key="test-secret-key-not-for-production",
        base_url="http://testserver",
        # Many submissions come from one test client; the limiter has its own tests.
        submission_rate="1000/1m",
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    await application.state.helpdesk.startup()
    yield application
    await application.state.helpdesk.shutdown()
    flush_access_log()  # as the app's lifespan does when it stops


@pytest.fixture
def access_log() -> Iterator[Lines]:
    """The access log's records (logger ``helpdesk.access`` at INFO) while a test runs."""
    handler = Lines()
    logger = logging.getLogger("helpdesk.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def mail_loop(app: Starlette) -> AsyncIterator[MailLoop]:
    """The app sending through a recording SMTP server and receiving on its own."""
    with smtp_server() as (recorder, port):
        settings = app.state.helpdesk.settings
        settings.smtp_host, settings.smtp_port, settings.smtp_security = "127.0.0.1", port, "none"
        settings.inbound_smtp_port = free_port()
        await app.state.helpdesk.start_receiver()
        yield MailLoop(app, recorder)
