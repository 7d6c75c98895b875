"""The satisfaction survey's page: the customer's choice, an optional comment, one button.

``GET /t/{reference}/csat/{resolution}?e=...&s=...&v=good`` only shows the page (mail
scanners and link previews open every link of a mail: opening records nothing); the
button posts the choice and the comment, with the CSRF token (``helpdesk.tickets.csat``).
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from faq.calendar import format_date
from helpdesk.security import client_ip, rate_limited_message, verify_csrf
from helpdesk.tickets.csat import (
    CHOOSE,
    MAX_COMMENT,
    Survey,
    SurveyError,
    clean_comment,
    parse_last_day,
    parse_rating,
)
from helpdesk.tickets.labels import CSAT_LABELS

EXPIRED = (
    "ページの有効期限が切れたため、送信できませんでした。入力内容はそのまま残っています。"
    "もう一度「送信する」を押してください。"
)
# A survey form has a rating, a comment and the CSRF token.
MAX_FIELDS = 8


def _helpdesk(request: Request) -> Any:
    return request.app.state.helpdesk


def _link(request: Request) -> tuple[str, int, Any, str | None]:
    params = request.query_params
    return (
        request.path_params["reference"],
        int(request.path_params["resolution"]),
        parse_last_day(params.get("e")),
        params.get("s"),
    )


async def _survey(request: Request) -> Survey:
    try:
        return await _helpdesk(request).tickets.csat.open(*_link(request))
    except SurveyError as exc:
        raise HTTPException(exc.status_code, exc.message) from None


def _render(
    request: Request,
    survey: Survey,
    *,
    rating: str | None,
    comment: str = "",
    errors: dict[str, str] | None = None,
    done: bool = False,
    status_code: int = 200,
) -> Response:
    helpdesk = _helpdesk(request)
    urls = helpdesk.tickets.urls
    action = urls.csat(survey.ticket, survey.response.resolution, survey.last_day)
    context = {
        "ticket": survey.ticket,
        "response": survey.response,
        "rating": rating,
        "comment": comment,
        "errors": errors or {},
        "done": done,
        "action": action,
        "labels_csat": CSAT_LABELS,
        "max_comment": MAX_COMMENT,
        "last_day_text": format_date(survey.last_day),
    }
    return helpdesk.templates.TemplateResponse(
        request, "tickets/csat.html", context, status_code=status_code
    )


async def survey_page(request: Request) -> Response:
    """The survey with the link's choice made; nothing is recorded."""
    survey = await _survey(request)
    chosen = parse_rating(request.query_params.get("v"))
    rating = chosen or survey.response.rating
    return _render(
        request,
        survey,
        rating=rating.value if rating else None,
        # Thanks only for an answer that was recorded.
        done=request.query_params.get("done") == "1" and survey.response.rating is not None,
    )


async def survey_answer(request: Request) -> Response:
    """Record the choice and the comment (an answer given again replaces the rating, and
    the comment when one is written)."""
    helpdesk = _helpdesk(request)
    survey = await _survey(request)
    async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
        raw_rating = str(form.get("rating") or "")
        comment, problem = clean_comment(str(form.get("comment") or ""))
        csrf_ok = await verify_csrf(request, form)
    rating = parse_rating(raw_rating)
    errors: dict[str, str] = {}
    status_code = 422
    if (retry_after := await helpdesk.feedback_limiter.peek(client_ip(request))) is not None:
        errors["form"], status_code = rate_limited_message(retry_after), 429
    elif not csrf_ok:
        errors["form"], status_code = EXPIRED, 403
    else:
        if rating is None:
            errors["rating"] = CHOOSE
        if problem:
            errors["comment"] = problem
    if not errors and await helpdesk.feedback_limiter.hit(client_ip(request)) is not None:
        errors["form"], status_code = rate_limited_message(60), 429
    if errors:
        return _render(
            request,
            survey,
            rating=rating.value if rating else None,
            comment=comment,
            errors=errors,
            status_code=status_code,
        )
    assert rating is not None
    try:
        await helpdesk.tickets.csat.answer(*_link(request), rating=rating, comment=comment)
    except SurveyError as exc:
        raise HTTPException(exc.status_code, exc.message) from None
    target = helpdesk.tickets.urls.csat(survey.ticket, survey.response.resolution, survey.last_day)
    return RedirectResponse(f"{target}&done=1", status_code=303)


routes = [
    Route("/t/{reference}/csat/{resolution:int}", survey_page, methods=["GET"]),
    Route("/t/{reference}/csat/{resolution:int}", survey_answer, methods=["POST"]),
]
