"""FAQ pages, the chat-style bot page, answer feedback and the search API."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from faq import Answer
from helpdesk.faq_service import (
    MAX_RESULTS,
    QueryError,
    answer_json,
    answer_view,
    contact_path,
)
from helpdesk.security import UNVERIFIED_MESSAGE, client_ip, verify_csrf

# Suggestions beside the ticket forms appear from this confidence on.
SUGGEST_CONFIDENCE = 0.3
LIMIT_MESSAGE = f"limit には1から{MAX_RESULTS}までの数字を指定してください。"


def _helpdesk(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.helpdesk


def _answer_context(helpdesk, answer: Answer) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the answer templates need: the answer, its view and the contact form's URL."""
    view = None
    if answer.entry is not None:
        view = answer_view(
            helpdesk.faq.engine, answer.entry, query=answer.query, lead=answer.supplement
        )
    return {"answer": answer, "view": view, "contact_path": contact_path(answer.query)}


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
            context.update(_answer_context(helpdesk, await helpdesk.faq.ask_and_log(query)))
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
    query = request.query_params.get("q", "")[: helpdesk.faq.max_query_length]
    view = answer_view(
        helpdesk.faq.engine, entry, query=query or None, lead=helpdesk.faq.engine.supplement(entry)
    )
    context = {
        "entry": entry,
        "view": view,
        "thanks": request.query_params.get("thanks"),
        "query": query,
        "contact_path": contact_path(query) if query else "/contact",
    }
    return helpdesk.templates.TemplateResponse(request, "faq/entry.html", context)


async def faq_ask(request: Request) -> Response:
    """The chat page: a plain GET form; a little JavaScript keeps a running conversation."""
    return await _answer_page(request, "faq/ask.html")


async def faq_ask_answer(request: Request) -> Response:
    """One exchange of the chat (the question and the bot's answer) as an HTML fragment,
    for the chat page's script: the same template as without JavaScript."""
    helpdesk = _helpdesk(request)
    try:
        query = helpdesk.faq.validate(request.query_params.get("q"))
    except QueryError as exc:
        return HTMLResponse(
            Markup('<p class="field-error" role="alert">{}</p>').format(str(exc)), status_code=400
        )
    context = _answer_context(helpdesk, await helpdesk.faq.ask_and_log(query))
    context["uid"] = secrets.token_hex(4)
    return helpdesk.templates.TemplateResponse(request, "faq/_exchange.html", context)


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
    if await helpdesk.feedback_limiter.hit(client_ip(request)) is not None:
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
    params = request.query_params
    try:
        query = helpdesk.faq.validate(params.get("q"))
    except QueryError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    limit = params.get("limit")
    if limit is None:
        count = MAX_RESULTS
    elif limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_RESULTS:
        count = int(limit)
    else:
        return JSONResponse({"error": LIMIT_MESSAGE}, status_code=400)
    answer = await helpdesk.faq.ask_and_log(query)
    return JSONResponse(answer_json(answer, base_url=helpdesk.settings.base_url, limit=count))


async def api_suggest(request: Request) -> Response:
    """FAQ suggestions while a customer types a form; not logged as gaps (half-typed text).

    ``first=1`` (sent by the form's script until the form has shown suggestions) counts
    the form as one that showed FAQ answers, when this answer has some."""
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
    if results and request.query_params.get("first") == "1":
        # The form's first suggestions (its script says so): counted once per form, for
        # the insights' deflection (forms that showed answers, then were not sent).
        helpdesk.faq.note_suggested()
    return JSONResponse({"query": query, "results": results})


routes = [
    Route("/faq", faq_index, name="faq_index"),
    Route("/faq/ask", faq_ask, name="faq_ask"),
    Route("/faq/ask/answer", faq_ask_answer, name="faq_ask_answer"),
    Route("/faq/{entry_id:str}", faq_entry, name="faq_entry"),
    Route("/faq/{entry_id:str}/feedback", faq_feedback, methods=["POST"], name="faq_feedback"),
    Route("/api/faq/search", api_search, name="api_faq_search"),
    Route("/api/faq/suggest", api_suggest, name="api_faq_suggest"),
]
