"""Home and privacy policy pages."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from markdown_it import MarkdownIt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@lru_cache(maxsize=4)
def _render_markdown(path: Path, mtime: float) -> str:
    # The policy is the shop's own file: commonmark, raw HTML disabled.
    return MarkdownIt("commonmark", {"html": False}).render(path.read_text(encoding="utf-8"))


async def home(request: Request) -> Response:
    helpdesk = request.app.state.helpdesk
    context = {"categories": helpdesk.faq.categories()}
    return helpdesk.templates.TemplateResponse(request, "home.html", context)


async def privacy(request: Request) -> Response:
    helpdesk = request.app.state.helpdesk
    path = helpdesk.settings.data_dir / "privacy.md"
    html = _render_markdown(path, path.stat().st_mtime)
    return helpdesk.templates.TemplateResponse(request, "privacy.html", {"policy_html": html})


routes = [
    Route("/", home, name="home"),
    Route("/privacy", privacy, name="privacy"),
]
