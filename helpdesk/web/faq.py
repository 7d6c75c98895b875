"""FAQ pages, the chat-style bot page, answer feedback and the search API."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk.faq_service import MAX_RESULTS, QueryError, answer_json, answer_text
from helpdesk.security import UNVERIFIED_MESSAGE, client_ip, verify_csrf

# Suggestions beside the ticket forms appear from this confidence on.
SUGGEST_CONFIDENCE = 0.3


def _helpdesk(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.helpdesk


async def _answer_page(request: Request, template: str, **context: object) -> Response:
    """A page with the search form; with ``?q=`` it also shows the bot's answer."""
    helpdesk = _helpdesk(request)
    raw = request.query_params.get("q")
    context["query"] = raw or ""
    status = 200
    if raw is not None:
        try:
            query = helpdesk.faq.validate(raw)
        except QueryError as exc:
            context["error"] = str(exc)
            status = 400
        else:
            answer = await helpdesk.faq.ask_and_log(query)
            context["answer"] = answer
            context["answer_text"] = answer_text(answer)
    return helpdesk.templates.TemplateResponse(request, template, context, status_code=status)


async def faq_index(request: Request) -> Response:
    return await _answer_page(
        request, "faq/index.html", categories=_helpdesk(request).faq.categories()
    )


async def faq_entry(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    entry = helpdesk.faq.engine.get(request.path_params["entry_id"])
    if entry is None:
        return helpdesk.templates.TemplateResponse(
            request,
            "404.html",
            {"message": "お探しの質問は見つかりませんでした。"},
            status_code=404,
        )
    context = {
        "entry": entry,
        "supplement": helpdesk.faq.engine.supplement(entry),
        "thanks": request.query_params.get("thanks"),
        "query": request.query_params.get("q", ""),
    }
    return helpdesk.templates.TemplateResponse(request, "faq/entry.html", context)


async def faq_ask(request: Request) -> Response:
    """The chat page: a plain GET form; a little JavaScript keeps a running conversation."""
    return await _answer_page(request, "faq/ask.html")


async def faq_feedback(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    entry_id = request.path_params["entry_id"]
    form = await request.form(max_files=0, max_fields=10)
    vote = form.get("helpful")
    query = str(form.get("q") or "")[:500] or None
    wants_json = "application/json" in request.headers.get("accept", "")
    # The form carries the CSRF token, the chat's script sends it as X-CSRF-Token.
    if not await verify_csrf(request, form):
        if wants_json:
            return JSONResponse({"error": UNVERIFIED_MESSAGE}, status_code=403)
        raise HTTPException(403, UNVERIFIED_MESSAGE)
    if vote not in ("yes", "no"):
        message = "「はい」か「いいえ」を選んでください。"
        if wants_json:
            return JSONResponse({"error": message}, status_code=400)
        return RedirectResponse(f"/faq/{entry_id}", status_code=303)
    if helpdesk.feedback_limiter.hit(client_ip(request)) is not None:
        # Votes beyond a person's plausible few are thanked and not counted.
        if wants_json:
            return JSONResponse({"ok": True, "message": "ご意見ありがとうございます。"})
        return RedirectResponse(f"/faq/{entry_id}?thanks={vote}#feedback", status_code=303)
    if not await helpdesk.faq.record_feedback(entry_id, vote == "yes", query):
        return JSONResponse({"error": "お探しの質問は見つかりませんでした。"}, status_code=404)
    if wants_json:
        return JSONResponse({"ok": True, "message": "ご意見ありがとうございます。"})
    params = urlencode({"thanks": vote, **({"q": query} if query else {})})
    return RedirectResponse(f"/faq/{entry_id}?{params}#feedback", status_code=303)


async def api_search(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    try:
        query = helpdesk.faq.validate(request.query_params.get("q"))
    except QueryError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    try:
        limit = int(request.query_params.get("limit", MAX_RESULTS))
    except ValueError:
        return JSONResponse(
            {"error": "limit には1から5までの数字を指定してください。"}, status_code=400
        )
    if not 1 <= limit <= MAX_RESULTS:
        return JSONResponse(
            {"error": "limit には1から5までの数字を指定してください。"}, status_code=400
        )
    answer = await helpdesk.faq.ask_and_log(query)
    body = answer_json(answer, answer_text(answer))
    body["results"] = body["results"][:limit]
    return JSONResponse(body)


async def api_suggest(request: Request) -> Response:
    """FAQ suggestions while a customer types a form; not logged as gaps (half-typed text)."""
    helpdesk = _helpdesk(request)
    try:
        query = helpdesk.faq.validate(request.query_params.get("q"))
    except QueryError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    answer = helpdesk.faq.ask(query)
    # Only entries the bot finds plausible: a half-typed defect report should not be
    # answered with unrelated FAQ entries.
    hits = answer.hits[:3] if answer.confidence >= SUGGEST_CONFIDENCE else ()
    results = [{"id": h.entry.id, "question": h.entry.question} for h in hits]
    return JSONResponse({"query": query, "results": results})


routes = [
    Route("/faq", faq_index, name="faq_index"),
    Route("/faq/ask", faq_ask, name="faq_ask"),
    Route("/faq/{entry_id:str}", faq_entry, name="faq_entry"),
    Route("/faq/{entry_id:str}/feedback", faq_feedback, methods=["POST"], name="faq_feedback"),
    Route("/api/faq/search", api_search, name="api_faq_search"),
    Route("/api/faq/suggest", api_suggest, name="api_faq_suggest"),
]
