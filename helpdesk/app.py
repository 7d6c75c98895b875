"""The application factory: ``create_app(settings)`` builds an isolated app.

Startup is explicit and idempotent (``await app.state.helpdesk.startup()``), so tests may
call it without a server; the lifespan calls it too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from helpdesk import db
from helpdesk.faq_service import FaqService
from helpdesk.settings import ROOT, Settings
from helpdesk.web import faq as faq_routes
from helpdesk.web import pages

log = logging.getLogger("helpdesk")
TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAY_JA = "月火水木金土日"


def jst(moment: datetime | None, fmt: str = "%Y年%m月%d日 %H:%M") -> str:
    """Show a stored (UTC) time in Japan."""
    if moment is None:
        return ""
    local = db.as_utc(moment).astimezone(TOKYO)
    return (
        f"{local.strftime(fmt)}({WEEKDAY_JA[local.weekday()]})"
        if "%d" in fmt
        else (local.strftime(fmt))
    )


def make_templates(settings: Settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(ROOT / "templates"))
    templates.env.filters["jst"] = jst
    templates.env.globals["settings"] = settings
    return templates


class Helpdesk:
    """Everything the app builds from its settings; one per app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.templates = make_templates(settings)
        self.db: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self._faq: FaqService | None = None

    @property
    def faq(self) -> FaqService:
        if self._faq is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._faq

    async def startup(self) -> None:
        """Create folders, migrate the database and load the FAQ (idempotent)."""
        if self.db is not None:
            return
        self.settings.var_dir.mkdir(parents=True, exist_ok=True)
        self.settings.ensure_secret_key()
        self.db = db.create_engine(self.settings.resolved_database_url)
        await db.migrate(self.db)
        self.sessions = db.session_factory(self.db)
        self._faq = FaqService.from_settings(self.settings, self.sessions)
        log.info("FAQ loaded: %d entries", len(self._faq.entries))

    async def shutdown(self) -> None:
        if self.db is not None:
            await self.db.dispose()
            self.db = None


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; with no settings, read them from the environment and ``.env``."""
    settings = settings or Settings()
    helpdesk = Helpdesk(settings)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await helpdesk.startup()
        yield
        await helpdesk.shutdown()

    routes = [
        *pages.routes,
        *faq_routes.routes,
        Mount("/static", app=StaticFiles(directory=str(Path(ROOT / "static"))), name="static"),
    ]
    app = Starlette(debug=settings.debug, routes=routes, lifespan=lifespan)
    app.state.helpdesk = helpdesk
    return app
