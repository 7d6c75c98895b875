"""The agents' console: the queue, a ticket, its photos and (for admins) the agents.

Every handler starts with ``require_agent`` (``helpdesk.web.auth``). The queue
(``helpdesk.tickets.queue``) takes its filters and search words from the query string, so a
view can be bookmarked; a wrong value is named in Japanese above the list. A queue row's
「迷惑メール」 button posts to ``/console/t/{reference}/spam`` (a ``MarkSpam`` command). The
ticket page and its actions are ``helpdesk.web.console_ticket``.

The capability links of older notification mails (``/agent/t/{reference}?key=...``) lead
here: they redirect to the ticket in the console (the key dropped, never checked), which
asks for a login first. They show nothing by themselves (issue 7, #19).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk.agents.urls import AGENTS, CONSOLE, safe_next
from helpdesk.db import as_utc, utcnow
from helpdesk.models import Agent, Ticket
from helpdesk.security import UNVERIFIED_MESSAGE, verify_csrf
from helpdesk.tickets import queue as queues
from helpdesk.tickets.commands import Actor, Channel, MarkSpam
from helpdesk.tickets.labels import KIND_LABELS, kind_label, status_label
from helpdesk.tickets.store import TOKYO
from helpdesk.web.auth import require_agent

TICKET_NOT_FOUND = "チケットが見つかりません。"
SPAM_MARKED = (
    "{reference} を迷惑メールに指定しました。この差出人からの新しいメールはチケットになりません。"
)
SPAM_UNMARKED = "{reference} の迷惑メールの指定を解除しました。"


def _helpdesk(request: Request) -> Any:
    return request.app.state.helpdesk


def render(
    request: Request,
    agent: Agent,
    template: str,
    context: dict[str, Any],
    *,
    section: str = "",
    status_code: int = 200,
) -> Response:
    """A console page: ``agent`` and the nav ``section`` ("queue", "agents" ...) go to the
    layout with the page's own context."""
    return _helpdesk(request).templates.TemplateResponse(
        request,
        template,
        {"agent": agent, "section": section, **context},
        status_code=status_code,
    )


async def queue(request: Request) -> Response:
    """The queue: new, open and pending tickets oldest first, unless filtered otherwise."""
    agent = await require_agent(request)
    tickets = _helpdesk(request).tickets
    agents = await tickets.agents()
    params = {key: request.query_params.get(key, "") for key in request.query_params}
    filters, problems = queues.parse_filters(params, agent_ids=[a.id for a in agents if a.id])
    now = utcnow()
    page = await tickets.queue(filters, agent=agent, now=now)
    rows = [
        {
            "ticket": ticket,
            "status_label": status_label(ticket.status),
            "kind_label": kind_label(ticket.kind),
            "assignee": assignee,
            "due": _due(ticket, now),
        }
        for ticket, assignee in page.rows
    ]
    context = {
        "rows": rows,
        "filters": filters,
        "problems": problems,
        "page": page,
        "agents": agents,
        "status_choices": queues.STATUS_CHOICES,
        "kind_choices": KIND_LABELS,
        "assignee_choices": queues.ASSIGNEE_CHOICES,
        "flag_labels": queues.FLAG_LABELS,
        "flag_hints": queues.FLAG_HINTS,
        "active": queues.ACTIVE,
        "here": filters.url(CONSOLE),
        "notice": {"spam": SPAM_MARKED, "unspam": SPAM_UNMARKED}.get(
            request.query_params.get("done", "")
        ),
        "notice_reference": request.query_params.get("ref", "")[:32],
    }
    status = 200 if not problems else 400
    response = render(request, agent, "console/queue.html", context, section="queue")
    response.status_code = status
    return response


def _due(ticket: Ticket, now: datetime) -> str:
    """「期限超過」 or 「本日期限」 for a ticket awaiting its first reply, else ""."""
    due = ticket.first_reply_due_at
    if due is None or ticket.first_replied_at is not None or ticket.status not in queues.ACTIVE:
        return ""
    due = as_utc(due)
    if due <= now:
        return "overdue"
    return "today" if due.astimezone(TOKYO).date() == now.astimezone(TOKYO).date() else ""


async def mark_spam(request: Request) -> Response:
    """Mark a ticket as spam, or take the mark away (``spam=0``), then back to the queue."""
    async with request.form(max_files=0, max_fields=10) as form:
        if not await verify_csrf(request, form):
            raise HTTPException(403, UNVERIFIED_MESSAGE)
        spam = str(form.get("spam") or "1") != "0"
        back = safe_next(str(form.get("next") or ""))
    agent = await require_agent(request)
    ticket = await _ticket(request)
    result = await _helpdesk(request).tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), [MarkSpam(spam)]
    )
    if not result.ok:
        raise HTTPException(409, " ".join(result.problems))
    if not back.startswith(CONSOLE):
        back = CONSOLE
    separator = "&" if "?" in back else "?"
    done = "spam" if spam else "unspam"
    return RedirectResponse(f"{back}{separator}done={done}&ref={ticket.reference}", status_code=303)


async def _ticket(request: Request) -> Ticket:
    ticket: Ticket | None = await _helpdesk(request).tickets.find(request.path_params["reference"])
    if ticket is None:
        raise HTTPException(404, TICKET_NOT_FOUND)
    return ticket


async def ticket_photo(request: Request) -> Response:
    await require_agent(request)
    helpdesk = _helpdesk(request)
    ticket = await _ticket(request)
    digest = request.path_params["digest"]
    attachment = await helpdesk.tickets.attachment(ticket, digest, internal=True)
    if attachment is None:
        raise HTTPException(404, "写真が見つかりません。")
    media_type = attachment.content_type if digest == attachment.digest else "image/jpeg"
    return FileResponse(
        helpdesk.photos.path(digest),
        media_type=media_type,
        headers={"Cache-Control": "private, max-age=3600"},
    )


async def agents_page(request: Request) -> Response:
    """The admins' list of agents and the latest account events (read only: changes are
    made with ``main.py agent ...``)."""
    agent = await require_agent(request, admin=True)
    accounts = _helpdesk(request).accounts
    context = {"agents": await accounts.agents(), "events": await accounts.events(limit=50)}
    return render(request, agent, "console/agents.html", context, section="agents")


async def legacy_ticket(request: Request) -> Response:
    """``/agent/t/{reference}?key=``: to the console's ticket page, behind its login."""
    urls = _helpdesk(request).console_urls
    return RedirectResponse(urls.ticket(request.path_params["reference"]), status_code=303)


async def legacy_photo(request: Request) -> Response:
    urls = _helpdesk(request).console_urls
    target = urls.ticket_photo(request.path_params["reference"], request.path_params["digest"])
    return RedirectResponse(target, status_code=303)


routes = [
    Route(CONSOLE, queue, methods=["GET"]),
    Route("/console/t/{reference}/photos/{digest}", ticket_photo, methods=["GET"]),
    Route("/console/t/{reference}/spam", mark_spam, methods=["POST"]),
    Route(AGENTS, agents_page, methods=["GET"]),
    Route("/agent/t/{reference}", legacy_ticket, methods=["GET"]),
    Route("/agent/t/{reference}/photos/{digest}", legacy_photo, methods=["GET"]),
]
