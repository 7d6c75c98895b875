"""The agents' console: the queue, a ticket, its photos and (for admins) the agents.

Every handler starts with ``require_agent`` (``helpdesk.web.auth``). The queue is a plain
list of the newest tickets for now; the console's queue and search are built on these pages
and the layout ``templates/console/base.html``. The ticket page and its actions are
``helpdesk.web.console_ticket``.

The capability links of older notification mails (``/agent/t/{reference}?key=...``) lead
here: they redirect to the ticket in the console (the key dropped, never checked), which
asks for a login first. They show nothing by themselves (issue 7, #19).
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk.agents.urls import AGENTS, CONSOLE
from helpdesk.models import Agent, Ticket
from helpdesk.tickets.labels import kind_label, status_label
from helpdesk.web import replies
from helpdesk.web.auth import require_agent

#: How many tickets the queue lists.
QUEUE_SIZE = 50
TICKET_NOT_FOUND = "チケットが見つかりません。"


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
    agent = await require_agent(request)
    tickets = await _helpdesk(request).tickets.newest(limit=QUEUE_SIZE)
    rows = [
        {
            "ticket": ticket,
            "status_label": status_label(ticket.status),
            "kind_label": kind_label(ticket.kind),
            "assignee": assignee,
        }
        for ticket, assignee in tickets
    ]
    return render(request, agent, "console/queue.html", {"rows": rows}, section="queue")


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
    """The admins' list of agents and the latest account events. Accounts are changed with
    ``main.py agent ...``; whether replies need approval is set here
    (``helpdesk.web.replies.set_approval``)."""
    agent = await require_agent(request, admin=True)
    accounts = _helpdesk(request).accounts
    context = {
        "agents": await accounts.agents(),
        "events": await accounts.events(limit=50),
        "notice": replies.NOTICES.get(request.query_params.get("done", ""), ""),
    }
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
    Route(AGENTS, agents_page, methods=["GET"]),
    Route("/agent/t/{reference}", legacy_ticket, methods=["GET"]),
    Route("/agent/t/{reference}/photos/{digest}", legacy_photo, methods=["GET"]),
]
