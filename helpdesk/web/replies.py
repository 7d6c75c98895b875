"""The console's saved replies (テンプレート) and approvals (承認).

- ``/console/replies``: every agent reads the saved replies; admins create, edit and delete
  them (``helpdesk.replies.saved``; unknown placeholders are refused with a Japanese
  message and the form keeps what was typed).
- ``/console/t/{reference}?reply=ID`` (``ticket_context``): the ticket page with the saved
  reply rendered for the ticket as the reply box's text (``reply_draft``), without script.
- ``/console/approvals``: admins approve, edit and approve, or reject the replies of agents
  who need approval (held by ``TicketService.apply``); ``/console/agents/{id}/approval``
  sets who needs it.

Handlers are thin: parse the form, check CSRF (``verify_csrf``), call a service, redirect
(POST/redirect/GET) with a notice, or re-render with the problems.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from helpdesk.agents import AccountError
from helpdesk.agents.urls import AGENTS, APPROVALS, REPLIES
from helpdesk.db import utcnow
from helpdesk.models import Agent, PendingState, SavedReply, Ticket
from helpdesk.replies.placeholders import PLACEHOLDERS
from helpdesk.replies.saved import MAX_BODY, SavedReplyIn, SavedReplyRefused
from helpdesk.security import UNVERIFIED_MESSAGE, verify_csrf
from helpdesk.tickets.labels import status_label
from helpdesk.tickets.service import ApplyResult, already_decided
from helpdesk.tickets.text import clean_text
from helpdesk.web.auth import require_agent

# Small forms: a title, a category, a body, the CSRF token, a button.
MAX_FIELDS = 10
# Notices after a redirect (``?done=``): only these texts are ever shown.
NOTICES = {
    "created": "テンプレートを作成しました。",
    "updated": "テンプレートを保存しました。",
    "deleted": "テンプレートを削除しました。",
    "approved": "返信を承認し、お客様に送信しました。",
    "rejected": "返信を差し戻しました。お客様には送信していません。",
    "required": "この担当者の返信は、今後は管理者の承認を待ってから送信されます。",
    "lifted": "この担当者の返信は、今後は承認なしで送信されます。",
    # A second click, or another admin first: nothing was done again.
    "already_approved": already_decided(PendingState.approved),
    "already_rejected": already_decided(PendingState.rejected),
}
REPLY_NOT_FOUND = "このテンプレートは見つかりません。"


def _helpdesk(request: Request) -> Any:
    return request.app.state.helpdesk


def _render(
    request: Request,
    agent: Agent,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    status: int = 200,
) -> Response:
    return _helpdesk(request).templates.TemplateResponse(
        request,
        template,
        {"agent": agent, "section": section, **context},
        status_code=status,
    )


def _notice(request: Request) -> str:
    return NOTICES.get(request.query_params.get("done", ""), "")


# Row ids fit a 32-bit integer column: a larger number names nothing (and would overflow
# the database's parameter instead of finding nothing).
MAX_ID = 2**31 - 1


def _id(request: Request, name: str) -> int:
    """The id in the path; 404 for one no row can have."""
    value: int = request.path_params[name]
    if not 0 < value <= MAX_ID:
        raise HTTPException(404, "見つかりません。")
    return value


async def _checked_form(request: Request) -> Any:
    """The form of an unsafe request, its CSRF token verified (403 otherwise). Read before
    ``require_agent``: the login redirect of an anonymous request is a checked answer too."""
    async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
        if not await verify_csrf(request, form):
            raise HTTPException(403, UNVERIFIED_MESSAGE)
        return {key: str(value) for key, value in form.items()}


# -- the ticket page -------------------------------------------------------------------------


async def ticket_context(request: Request, ticket: Ticket) -> dict[str, Any]:
    """What the ticket page's ``_saved_replies.html`` needs: the saved replies rendered for
    this ticket, the one chosen with ``?reply=ID`` as ``reply_draft`` (the reply box's text
    when nothing was typed), and the ticket's replies awaiting approval or decided."""
    helpdesk = _helpdesk(request)
    saved: list[SavedReply] = await helpdesk.saved_replies.all()
    rendered = {s.id: helpdesk.saved_replies.render_for(s, ticket) for s in saved}
    chosen: SavedReply | None = None
    raw = request.query_params.get("reply", "")
    if raw.isascii() and raw.isdigit() and len(raw) <= 12:  # never int() of "²" or 5000 digits
        chosen = next((s for s in saved if s.id == int(raw)), None)
    return {
        "saved_replies": saved,
        "saved_reply_texts": rendered,
        "saved_reply_chosen": chosen,
        "saved_reply_missing": bool(raw) and chosen is None,
        "reply_draft": rendered[chosen.id] if chosen is not None else None,
        "approval_replies": await helpdesk.tickets.replies_awaiting_approval(
            ticket=ticket, waiting=False
        ),
    }


# -- saved replies ---------------------------------------------------------------------------


async def replies_page(request: Request) -> Response:
    agent = await require_agent(request)
    context = {
        "replies": await _helpdesk(request).saved_replies.all(),
        "notice": _notice(request),
        "placeholders": PLACEHOLDERS,
    }
    return _render(request, agent, "console/replies.html", context, section="templates")


def _reply_form(
    request: Request,
    agent: Agent,
    *,
    data: SavedReplyIn,
    reply_id: int | None,
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "data": data,
        "reply_id": reply_id,
        "errors": errors or [],
        "placeholders": PLACEHOLDERS,
        "max_body": MAX_BODY,
        "action": (
            _helpdesk(request).console_urls.reply(reply_id)
            if reply_id
            else _helpdesk(request).console_urls.new_reply()
        ),
    }
    return _render(
        request, agent, "console/reply_form.html", context, section="templates", status=status
    )


async def new_reply_page(request: Request) -> Response:
    agent = await require_agent(request, admin=True)
    return _reply_form(request, agent, data=SavedReplyIn("", ""), reply_id=None)


async def edit_reply_page(request: Request) -> Response:
    agent = await require_agent(request, admin=True)
    saved = await _helpdesk(request).saved_replies.get(_id(request, "reply_id"))
    if saved is None:
        raise HTTPException(404, REPLY_NOT_FOUND)
    data = SavedReplyIn(saved.title, saved.body, saved.category)
    return _reply_form(request, agent, data=data, reply_id=saved.id)


async def save_reply(request: Request) -> Response:
    """Create (``/console/replies/new``) or update (``/console/replies/{id}``)."""
    form = await _checked_form(request)
    agent = await require_agent(request, admin=True)
    reply_id = _id(request, "reply_id") if "reply_id" in request.path_params else None
    data = SavedReplyIn.from_form(form.get("title"), form.get("body"), form.get("category"))
    try:
        await _helpdesk(request).saved_replies.save(data, by=agent, reply_id=reply_id)
    except SavedReplyRefused as exc:
        # Kept as typed (not cleaned) so that nothing the admin wrote is lost.
        typed = SavedReplyIn(
            form.get("title", ""), form.get("body", ""), form.get("category") or None
        )
        return _reply_form(
            request, agent, data=typed, reply_id=reply_id, errors=exc.problems, status=422
        )
    done = "updated" if reply_id else "created"
    return RedirectResponse(f"{REPLIES}?done={done}", status_code=303)


async def delete_reply(request: Request) -> Response:
    await _checked_form(request)
    agent = await require_agent(request, admin=True)
    await _helpdesk(request).saved_replies.delete(_id(request, "reply_id"), by=agent)
    return RedirectResponse(f"{REPLIES}?done=deleted", status_code=303)


# -- approvals -------------------------------------------------------------------------------


def _approvals_page(
    request: Request,
    agent: Agent,
    waiting: list[Any],
    *,
    errors: dict[int, list[str]] | None = None,
    typed: dict[int, str] | None = None,
    general: list[str] | None = None,
    confirm: dict[int, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "waiting": [
            {
                "pending": pending,
                "ticket": ticket,
                "author": author,
                "status_label": status_label(pending.status) if pending.status else None,
                "text": (typed or {}).get(pending.id, pending.body),
                "errors": (errors or {}).get(pending.id, []),
                "seen_at": (confirm or {}).get(pending.id),
            }
            for pending, ticket, author in waiting
        ],
        "notice": _notice(request),
        "general_errors": general or [],
        "urls": _helpdesk(request).tickets.urls,
    }
    return _render(
        request, agent, "console/approvals.html", context, section="approvals", status=status
    )


def _moment(raw: Any) -> datetime | None:
    """The ``seen_at`` the approvals page carried (an aware ISO time), or None."""
    try:
        moment = datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _decided_before(result: ApplyResult) -> Response | None:
    """Back to the list with a notice when the reply was decided already (double click)."""
    for state in (PendingState.approved, PendingState.rejected):
        if already_decided(state) in result.problems:
            return RedirectResponse(f"{APPROVALS}?done=already_{state}", status_code=303)
    return None


async def approvals_page(request: Request) -> Response:
    agent = await require_agent(request, admin=True)
    waiting = await _helpdesk(request).tickets.replies_awaiting_approval()
    return _approvals_page(request, agent, waiting)


async def approve(request: Request) -> Response:
    """「承認して送信」 (``action=approve``: as written) or 「修正して承認・送信」
    (``action=edit``: the text of the form)."""
    form = await _checked_form(request)
    agent = await require_agent(request, admin=True)
    pending_id = _id(request, "pending_id")
    edited = form.get("action") == "edit"
    body = clean_text(form.get("body", "")).strip("\n") if edited else None
    tickets = _helpdesk(request).tickets
    # Set when the page showed that something came while the reply waited: approving
    # again is sending it after all, unless yet more came since.
    seen_at = _moment(form.get("seen_at"))
    result = await tickets.approve_reply(pending_id, agent, body=body, seen_at=seen_at)
    if result.ok:
        return RedirectResponse(f"{APPROVALS}?done=approved", status_code=303)
    if decided := _decided_before(result):
        return decided
    waiting = await tickets.replies_awaiting_approval()
    typed = {pending_id: form.get("body", "")} if edited else {}
    errors = {pending_id: list(result.problems)}
    confirm = {pending_id: utcnow().isoformat()} if result.conflict else {}
    if not any(pending.id == pending_id for pending, _t, _a in waiting):
        # Decided meanwhile (a double click, another admin): said at the top of the page.
        return _approvals_page(request, agent, waiting, general=list(result.problems), status=409)
    return _approvals_page(
        request,
        agent,
        waiting,
        errors=errors,
        typed=typed,
        confirm=confirm,
        status=409 if result.conflict else 422,
    )


async def reject(request: Request) -> Response:
    form = await _checked_form(request)
    agent = await require_agent(request, admin=True)
    tickets = _helpdesk(request).tickets
    result = await tickets.reject_reply(
        _id(request, "pending_id"), agent, reason=clean_text(form.get("reason", ""))
    )
    if result.ok:
        return RedirectResponse(f"{APPROVALS}?done=rejected", status_code=303)
    if decided := _decided_before(result):
        return decided
    waiting = await tickets.replies_awaiting_approval()
    return _approvals_page(request, agent, waiting, general=list(result.problems), status=409)


async def set_approval(request: Request) -> Response:
    """An admin marks an agent as needing approval (``needs_approval=1``) or not."""
    form = await _checked_form(request)
    admin = await require_agent(request, admin=True)
    required = form.get("needs_approval") == "1"
    try:
        await _helpdesk(request).accounts.set_needs_approval(
            _id(request, "agent_id"), required, by=admin
        )
    except AccountError as exc:
        raise HTTPException(404, str(exc)) from None
    done = "required" if required else "lifted"
    return RedirectResponse(f"{_helpdesk(request).console_urls.agents()}?done={done}", 303)


routes = [
    Route(REPLIES, replies_page, methods=["GET"]),
    Route(f"{REPLIES}/new", new_reply_page, methods=["GET"]),
    Route(f"{REPLIES}/new", save_reply, methods=["POST"]),
    Route(REPLIES + "/{reply_id:int}", edit_reply_page, methods=["GET"]),
    Route(REPLIES + "/{reply_id:int}", save_reply, methods=["POST"]),
    Route(REPLIES + "/{reply_id:int}/delete", delete_reply, methods=["POST"]),
    Route(APPROVALS, approvals_page, methods=["GET"]),
    Route(APPROVALS + "/{pending_id:int}/approve", approve, methods=["POST"]),
    Route(APPROVALS + "/{pending_id:int}/reject", reject, methods=["POST"]),
    Route(AGENTS + "/{agent_id:int}/approval", set_approval, methods=["POST"]),
]

__all__ = ["NOTICES", "routes", "ticket_context"]
