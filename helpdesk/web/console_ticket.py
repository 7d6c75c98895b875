"""The console's ticket page and its actions: reply, note, status, priority, assignee, merge,
and who else has the ticket open (二重対応防止).

Every action is a form (POST with the CSRF token) that becomes commands applied by
``TicketService.apply``, the same code and audit events as an agent's mail. Post/Redirect/
Get: a success redirects to the page; a refusal renders the page again with what was typed
and a Japanese message. The reply form carries the ticket's version (when the agent saw
it): a reply made after another agent answered, or the customer wrote, is not sent but
shown again beside what came meanwhile, to send only once confirmed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk.models import (
    Agent,
    Message,
    PresenceKind,
    Priority,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from helpdesk.security import UNVERIFIED_MESSAGE, verify_csrf
from helpdesk.tickets.commands import (
    Actor,
    AddNote,
    Assign,
    Channel,
    Command,
    Merge,
    Reply,
    SetPriority,
    SetStatus,
)
from helpdesk.tickets.labels import (
    CSAT_LABELS,
    INQUIRY_CATEGORIES,
    PRESENCE_LABELS,
    PRIORITY_LABELS,
    STATUS_LABELS,
    event_sentence,
    kind_label,
    priority_label,
    status_label,
)
from helpdesk.tickets.service import seen_at_of, version_of
from helpdesk.web import replies
from helpdesk.web.auth import require_agent
from helpdesk.web.console import TICKET_NOT_FOUND, render

# A reply or a note: the customer's own forms allow 5,000 characters; agents quote more.
MAX_TEXT = 20_000
MAX_FIELDS = 10
# What a redirect after an action says on the page (``?done=``).
DONE: dict[str, str] = {
    "reply": "返信を送信しました(送信待ちのメールとして登録しました)。",
    "awaiting_approval": (
        "返信は管理者の承認待ちです。承認されるまでお客様には送信されません"
        "(結果はメールでお知らせします)。"
    ),
    "note": "社内メモを追加しました。",
    "status": "ステータスを変更しました。",
    "priority": "優先度を変更しました。",
    "assign": "担当者を変更しました。",
    "merged": "重複したチケットをこのチケットに統合しました。",
}
EMPTY_REPLY = "返信の本文を入力してください。"
EMPTY_NOTE = "社内メモの本文を入力してください。"
TOO_LONG = f"本文は{MAX_TEXT:,}文字以内にしてください。"
BAD_CHOICE = "選択肢から選んでください。"
MERGE_NOT_CONFIRMED = (
    "統合すると元に戻せません。よろしければ「統合を確認しました」にチェックを入れてください。"
)
# Before any version was seen (a garbled form): every answer counts as new.
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def _helpdesk(request: Request) -> Any:
    return request.app.state.helpdesk


async def _ticket(request: Request) -> Ticket:
    ticket: Ticket | None = await _helpdesk(request).tickets.find(request.path_params["reference"])
    if ticket is None:
        raise HTTPException(404, TICKET_NOT_FOUND)
    return ticket


def _who(actor: str, names: dict[str, str], customer_email: str) -> str:
    """Who acted, as the history says it: an agent's name, お客様, システム."""
    if actor in names:
        return names[actor]
    if actor in ("customer", customer_email):
        return "お客様"
    if actor == "system":
        return "システム"
    return actor


def _presence(others: Sequence[tuple[Agent, PresenceKind, datetime]]) -> list[dict[str, Any]]:
    return [
        {
            "name": agent.name,
            "kind": kind.value,
            "label": PRESENCE_LABELS[kind],
            "last_seen": seen.isoformat(),
        }
        for agent, kind, seen in others
    ]


async def _page(
    request: Request,
    agent: Agent,
    ticket: Ticket,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    meanwhile: Sequence[Message] = (),
    changes: Sequence[TicketEvent] = (),
    others: Sequence[tuple[Agent, PresenceKind, datetime]] | None = None,
    status_code: int = 200,
) -> Response:
    """The ticket page; after a refusal, with the errors and what was typed (``values``)."""
    helpdesk = _helpdesk(request)
    tickets = helpdesk.tickets
    customer, assignee, events = await tickets.details(ticket)
    every_agent = await helpdesk.accounts.agents()
    agents = [a for a in every_agent if a.active]
    names = {a.email: a.name for a in every_agent}
    if others is None:
        others = await tickets.see(ticket, agent)
    survey = await tickets.latest_survey(ticket)
    done = request.query_params.get("done", "")
    context = {
        "ticket": ticket,
        "customer": customer,
        "assignee": assignee,
        "history": [
            (event, event_sentence(event, who=_who(event.actor, names, customer.email)))
            for event in events
        ],
        "urls": tickets.urls,
        "conversation": await tickets.conversation(ticket, internal=True),
        "other_tickets": await tickets.customer_tickets(ticket),
        "status_label": status_label(ticket.status),
        "kind_label": kind_label(ticket.kind),
        "priority_label": priority_label(ticket.priority),
        "category_label": INQUIRY_CATEGORIES.get(ticket.category or "", ticket.category),
        "survey": survey,
        "csat_labels": CSAT_LABELS,
        "statuses": STATUS_LABELS,
        "priorities": PRIORITY_LABELS,
        "agents": agents,
        "policy": helpdesk.faq.policy,
        "version": version_of(ticket),
        "submission_id": uuid.uuid4().hex,
        "others": _presence(others),
        "errors": errors or {},
        "values": values or {},
        "meanwhile": meanwhile,
        "changes": [
            (event, event_sentence(event, who=_who(event.actor, names, customer.email)))
            for event in changes
        ],
        "notice": DONE.get(done, ""),
        "merged_from": request.query_params.get("merged_from", ""),
    }
    context |= await replies.ticket_context(request, ticket)  # saved replies, approvals
    if context["reply_draft"] and not context["values"].get("body"):
        # A saved reply inserted without script (?reply=ID) fills the empty reply box.
        context["values"] = {**context["values"], "body": context["reply_draft"]}
    return render(
        request, agent, "console/ticket.html", context, section="queue", status_code=status_code
    )


async def ticket_page(request: Request) -> Response:
    """The agents' view of a ticket: every field, the conversation (notes too), the
    history in Japanese, the customer's other tickets, the forms; and who else has it open
    (recorded server-side here, refreshed by ``static/ticket-presence.js``)."""
    agent = await require_agent(request)
    ticket = await _ticket(request)
    if ticket.merged_into_id is not None:
        target = await _helpdesk(request).tickets.following_merges(ticket)
        url = _helpdesk(request).console_urls.ticket(target.reference)
        return RedirectResponse(f"{url}?merged_from={ticket.reference}", status_code=303)
    return await _page(request, agent, ticket)


def _done(request: Request, ticket: Ticket, what: str) -> Response:
    url = _helpdesk(request).console_urls.ticket(ticket.reference)
    return RedirectResponse(f"{url}?done={what}", status_code=303)


async def _form(request: Request) -> tuple[Agent, Ticket, FormData, bool]:
    """The form and whether its CSRF token holds (checked first, as every unsafe handler
    does), then the agent (or the login) and the ticket."""
    async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
        verified = await verify_csrf(request, form)
    agent = await require_agent(request)
    ticket = await _ticket(request)
    return agent, ticket, form, verified


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


async def _apply(
    request: Request,
    agent: Agent,
    ticket: Ticket,
    commands: list[Command],
    *,
    field: str,
    values: dict[str, str],
    done: str,
    **options: Any,
) -> Response:
    """Apply the commands as this agent (web); the page again with the problems if refused."""
    tickets = _helpdesk(request).tickets
    result = await tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), commands, **options
    )
    if result.ok and result.awaiting_approval is not None:
        return _done(request, ticket, "awaiting_approval")
    if result.ok or result.duplicate:
        if isinstance(commands[0], Merge):
            target = await tickets.following_merges(ticket)
            url = _helpdesk(request).console_urls.ticket(target.reference)
            return RedirectResponse(f"{url}?done=merged", status_code=303)
        return _done(request, ticket, done)
    current = await _ticket(request)  # the newest version, for the confirmation
    return await _page(
        request,
        agent,
        current,
        errors={field: "\n".join(result.problems)},
        values=values,
        meanwhile=result.meanwhile,
        changes=result.changes,
        status_code=409 if result.conflict else 422,
    )


async def _refused(
    request: Request, agent: Agent, ticket: Ticket, field: str, message: str, values: dict[str, str]
) -> Response:
    status = 403 if message == UNVERIFIED_MESSAGE else 422
    return await _page(
        request, agent, ticket, errors={field: message}, values=values, status_code=status
    )


async def post_reply(request: Request) -> Response:
    """Answer the customer: the reply leaves through the outbox, threaded as mail replies
    are. Refused (text kept, the other answer shown) when the ticket was answered since
    the version the form carries."""
    agent, ticket, form, verified = await _form(request)
    body = _text(form, "body")
    values = {"body": body}
    problem = (
        UNVERIFIED_MESSAGE
        if not verified
        else EMPTY_REPLY
        if not body.strip()
        else TOO_LONG
        if len(body) > MAX_TEXT
        else ""
    )
    if problem:
        return await _refused(request, agent, ticket, "reply", problem, values)
    seen = seen_at_of(_text(form, "version")) or LONG_AGO
    key = _text(form, "submission_id")[:64] or None
    return await _apply(
        request,
        agent,
        ticket,
        [Reply(body.strip("\n"))],
        field="reply",
        values=values,
        done="reply",
        seen_at=seen,
        submission_key=f"console:{key}" if key else None,
    )


async def post_note(request: Request) -> Response:
    agent, ticket, form, verified = await _form(request)
    body = _text(form, "note")
    values = {"note": body}
    problem = (
        UNVERIFIED_MESSAGE
        if not verified
        else EMPTY_NOTE
        if not body.strip()
        else TOO_LONG
        if len(body) > MAX_TEXT
        else ""
    )
    if problem:
        return await _refused(request, agent, ticket, "note", problem, values)
    key = _text(form, "submission_id")[:64] or None
    return await _apply(
        request,
        agent,
        ticket,
        [AddNote(body.strip("\n"))],
        field="note",
        values=values,
        done="note",
        submission_key=f"console:{key}" if key else None,
    )


async def _set_choice(
    request: Request, field: str, labels: Mapping[str, str], command: Callable[[str], Command]
) -> Response:
    """A select of the page (status, priority): a known value becomes ``command(value)``."""
    agent, ticket, form, verified = await _form(request)
    value = _text(form, field)
    if not verified or value not in labels:
        problem = UNVERIFIED_MESSAGE if not verified else BAD_CHOICE
        return await _refused(request, agent, ticket, field, problem, {field: value})
    return await _apply(
        request, agent, ticket, [command(value)], field=field, values={field: value}, done=field
    )


async def post_status(request: Request) -> Response:
    return await _set_choice(
        request, "status", STATUS_LABELS, lambda value: SetStatus(TicketStatus(value))
    )


async def post_priority(request: Request) -> Response:
    return await _set_choice(
        request, "priority", PRIORITY_LABELS, lambda value: SetPriority(Priority(value))
    )


async def post_assign(request: Request) -> Response:
    agent, ticket, form, verified = await _form(request)
    value = _text(form, "assignee").strip()
    if not verified or not value:
        problem = UNVERIFIED_MESSAGE if not verified else BAD_CHOICE
        return await _refused(request, agent, ticket, "assign", problem, {"assignee": value})
    return await _apply(
        request,
        agent,
        ticket,
        [Assign(value)],
        field="assign",
        values={"assignee": value},
        done="assign",
    )


async def post_merge(request: Request) -> Response:
    """Merge this ticket (a duplicate) into another ticket of the same customer."""
    agent, ticket, form, verified = await _form(request)
    into = _text(form, "into").strip()
    values = {"into": into}
    problem = (
        UNVERIFIED_MESSAGE
        if not verified
        else "統合先のチケットの受付番号を入力してください。"
        if not into
        else MERGE_NOT_CONFIRMED
        if form.get("confirm_merge") != "1"
        else ""
    )
    if problem:
        return await _refused(request, agent, ticket, "merge", problem, values)
    return await _apply(
        request, agent, ticket, [Merge(into)], field="merge", values=values, done="merged"
    )


async def post_presence(request: Request) -> Response:
    """The page's periodic call (``static/ticket-presence.js``, with ``X-CSRF-Token``):
    this agent views or types (``kind``), or left (``kind=left``); answers who else is
    there and whether the ticket changed since the page's ``version``."""
    agent, ticket, form, verified = await _form(request)
    if not verified:
        return JSONResponse({"error": UNVERIFIED_MESSAGE}, status_code=403)
    tickets = _helpdesk(request).tickets
    kind = _text(form, "kind")
    if kind == "left":
        await tickets.leave(ticket, agent)
        return JSONResponse({"others": []})
    if kind not in PresenceKind.__members__:
        return JSONResponse({"error": BAD_CHOICE}, status_code=422)
    others = await tickets.see(ticket, agent, PresenceKind(kind))
    current = await _ticket(request)
    return JSONResponse(
        {
            "others": _presence(others),
            "changed": version_of(current) != _text(form, "version"),
        }
    )


routes = [
    Route("/console/t/{reference}", ticket_page, methods=["GET"]),
    Route("/console/t/{reference}/reply", post_reply, methods=["POST"]),
    Route("/console/t/{reference}/note", post_note, methods=["POST"]),
    Route("/console/t/{reference}/status", post_status, methods=["POST"]),
    Route("/console/t/{reference}/priority", post_priority, methods=["POST"]),
    Route("/console/t/{reference}/assign", post_assign, methods=["POST"]),
    Route("/console/t/{reference}/merge", post_merge, methods=["POST"]),
    Route("/console/t/{reference}/presence", post_presence, methods=["POST"]),
]
