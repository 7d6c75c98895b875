"""The bare engine endpoint that ``faq_api_bench.py`` compares the app against.

One Starlette route, ``GET /api/faq/search?q=...&limit=...``, that calls the same
``SearchEngine.ask`` over the same knowledge base and answers the same JSON as the app's
``/api/faq/search`` (``helpdesk.faq_service.answer_json``), with nothing else: no
validation beyond reading the parameters, no middleware, no gap log, no access log.

Served by ``uvicorn faq_bare_app:app`` from the checkout's root (the benchmark starts it);
the knowledge base is read from ``HELPDESK_DATA_DIR`` (default ``data/`` of the working
directory).
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from faq import SearchEngine, load_entries, load_policy
from helpdesk import faq_service
from helpdesk.faq_service import MAX_RESULTS, answer_json

DATA = Path(os.environ.get("HELPDESK_DATA_DIR", Path.cwd() / "data"))
BASE_URL = os.environ.get("HELPDESK_BASE_URL", "http://127.0.0.1:8000")
# The app before issue 9 (faq_api_bench.py --app-dir) had neither from_directory nor the
# keyword form of answer_json: the bare endpoint follows whichever the checkout has.
if hasattr(SearchEngine, "from_directory"):
    engine = SearchEngine.from_directory(DATA)
else:
    engine = SearchEngine(load_entries(DATA / "faq"), policy=load_policy(DATA / "shop.toml"))
LEGACY = not hasattr(faq_service, "answer_view")


async def search(request: Request) -> JSONResponse:
    query = request.query_params.get("q", "")
    limit = int(request.query_params.get("limit", MAX_RESULTS))
    answer = engine.ask(query, limit=MAX_RESULTS)
    if LEGACY:
        body = answer_json(answer, faq_service.answer_text(answer))  # type: ignore[call-arg]
        body["results"] = body["results"][:limit]
    else:
        body = answer_json(answer, base_url=BASE_URL, limit=limit)
    return JSONResponse(body)


app = Starlette(routes=[Route("/api/faq/search", search)])
