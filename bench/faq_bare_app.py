"""The bare engine endpoint that ``faq_api_bench.py`` compares the app against.

One Starlette route, ``GET /api/faq/search?q=...&limit=...``, that calls the same
``SearchEngine.ask`` over the same knowledge base and answers the same JSON as the app's
``/api/faq/search`` (``helpdesk.faq_service.answer_json``), with nothing else: no
validation beyond reading the parameters, no middleware, no gap log, no access log.

Served by ``uvicorn bench.faq_bare_app:app`` (the benchmark starts it); the knowledge base
is read from ``HELPDESK_DATA_DIR`` (default ``data/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from faq import SearchEngine
from helpdesk.faq_service import MAX_RESULTS, answer_json

DATA = Path(os.environ.get("HELPDESK_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
BASE_URL = os.environ.get("HELPDESK_BASE_URL", "http://127.0.0.1:8000")
engine = SearchEngine.from_directory(DATA)


async def search(request: Request) -> JSONResponse:
    query = request.query_params.get("q", "")
    limit = int(request.query_params.get("limit", MAX_RESULTS))
    body = answer_json(engine.ask(query, limit=MAX_RESULTS), base_url=BASE_URL, limit=limit)
    return JSONResponse(body)


app = Starlette(routes=[Route("/api/faq/search", search)])
