"""Return, defect, exchange and contact forms, the customer's status page, and the API.

Handlers parse the request, hand the values to ``helpdesk.tickets`` and render. On any
error the form comes back with every value and a message per field; photos already
accepted ride along as signed hidden fields so that nobody uploads them twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk.db import as_utc
from helpdesk.models import TicketKind
from helpdesk.photos import PhotoError, StoredPhoto
from helpdesk.security import client_ip, rate_limited_message, verify_csrf
from helpdesk.tickets.labels import (
    INQUIRY_CATEGORIES,
    PHOTO_FIELDS,
    RETURN_KIND_CHOICES,
    kind_label,
    status_label,
)
from helpdesk.tickets.rules import (
    Submission,
    missing_photos,
    today_in_japan,
    validate_message,
    validate_submission,
)

FORM_FIELDS = ("kind", "name", "email", "order_number", "arrived_on", "description")
FORM_FIELDS += ("desired_variant", "category", "submission_id")
FORM_FIELDS += ("deflection_shown", "deflection_followed")
# Multipart limits: a form has a handful of fields and at most two photos.
MAX_FORM_FILES = 4
MAX_FORM_FIELDS = 40


@dataclass
class Kept:
    photo: StoredPhoto
    token: str


@dataclass
class Intake:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    photos: dict[str, StoredPhoto] = field(default_factory=dict)
    late: bool = False
    submission: Submission | None = None


def _helpdesk(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.helpdesk


def _read_form(request: Request):  # type: ignore[no-untyped-def]
    """``async with _read_form(request) as form``: uploads are closed (and deleted) after."""
    return request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS)


async def _photo(request: Request, form: FormData, name: str, label: str) -> StoredPhoto | None:
    """The photo of field ``name``: a new upload, else one accepted on an earlier try.

    Raises ``PhotoError`` (a Japanese message naming the field) for a bad upload.
    """
    helpdesk = _helpdesk(request)
    upload = form.get(name)
    if isinstance(upload, UploadFile) and upload.filename:
        limit = helpdesk.photos.max_bytes
        data = await upload.read(limit + 1)
        return await helpdesk.photos.process_async(
            data, filename=upload.filename, field_label=label
        )
    return helpdesk.tickets.access.photo_from_token(str(form.get(f"{name}_kept") or ""))


async def _intake(request: Request, form: FormData, photo_fields: dict[str, str]) -> Intake:
    helpdesk = _helpdesk(request)
    values = {name: str(form.get(name) or "") for name in FORM_FIELDS}
    policy = helpdesk.faq.policy
    checked = validate_submission(values, today=today_in_japan(policy), policy=policy)
    intake = Intake(values, dict(checked.errors), late=checked.late, submission=checked.submission)
    for name, label in photo_fields.items():
        try:
            photo = await _photo(request, form, name, label)
        except PhotoError as exc:
            intake.errors[name] = exc.message
            photo = helpdesk.tickets.access.photo_from_token(str(form.get(f"{name}_kept") or ""))
        if photo is not None:
            intake.photos[name] = photo
    if checked.submission is not None:
        for name, message in missing_photos(checked.submission.kind, intake.photos).items():
            intake.errors.setdefault(name, message)
    return intake


def _deflection(values: dict[str, str]) -> dict[str, list[str]]:
    def ids(raw: str) -> list[str]:
        return [i for i in dict.fromkeys(raw.split(",")) if i][:20]

    return {
        "shown": ids(values.get("deflection_shown", "")),
        "followed": ids(values.get("deflection_followed", "")),
    }


def _rate_limited(request: Request) -> float | None:
    return _helpdesk(request).submission_limiter.hit(client_ip(request))


def _render_form(
    request: Request,
    form_name: str,
    intake: Intake | None = None,
    *,
    status_code: int = 200,
    late_warning: bool = False,
) -> Response:
    helpdesk = _helpdesk(request)
    values = intake.values if intake else {}
    if not values.get("submission_id"):
        values = {**values, "submission_id": uuid.uuid4().hex}
    if form_name == "returns" and not values.get("kind"):
        values["kind"] = request.query_params.get("kind", "")
    kept = {
        name: Kept(photo, helpdesk.tickets.access.photo_token(photo))
        for name, photo in (intake.photos.items() if intake else ())
    }
    context = {
        "form": form_name,
        "title": "返品・交換のご連絡" if form_name == "returns" else "お問い合わせ",
        "intro": "",
        "action": "/returns/new" if form_name == "returns" else "/contact",
        "values": values,
        "errors": intake.errors if intake else {},
        "kept": kept,
        "late_warning": late_warning,
        "return_kinds": RETURN_KIND_CHOICES.items(),
        "categories": INQUIRY_CATEGORIES,
        "policy": helpdesk.faq.policy,
        "today": today_in_japan(helpdesk.faq.policy).isoformat(),
        "max_photo_mb": helpdesk.photos.max_bytes // (1024 * 1024),
    }
    return helpdesk.templates.TemplateResponse(
        request, "tickets/form.html", context, status_code=status_code
    )


async def returns_form(request: Request) -> Response:
    return _render_form(request, "returns")


async def contact_form(request: Request) -> Response:
    return _render_form(request, "contact")


async def _submit_form(request: Request, form_name: str) -> Response:
    async with _read_form(request) as form:
        return await _handle_form(request, form_name, form)


async def _handle_form(request: Request, form_name: str, form: FormData) -> Response:
    helpdesk = _helpdesk(request)
    if not await verify_csrf(request, form):
        # Keep what was typed and the photos (as signed tokens) for the retry.
        intake = await _intake(request, form, PHOTO_FIELDS if form_name == "returns" else {})
        intake.errors = {"form": "ページの有効期限が切れました。もう一度送信してください。"}
        return _render_form(request, form_name, intake, status_code=403)
    if form.get("website"):
        # The honeypot: people never see this field, bots fill it in.
        return helpdesk.templates.TemplateResponse(
            request, "tickets/submitted.html", {"ticket": None, "policy": helpdesk.faq.policy}
        )
    photo_fields = PHOTO_FIELDS if form_name == "returns" else {}
    if form_name == "contact" and form.get("kind") != TicketKind.inquiry:
        form = FormData(
            [
                *((k, v) for k, v in form.multi_items() if k != "kind"),
                ("kind", TicketKind.inquiry.value),
            ]
        )
    if form_name == "returns" and form.get("kind") == TicketKind.inquiry:
        form = FormData([(k, v) for k, v in form.multi_items() if k != "kind"])
    intake = await _intake(request, form, photo_fields)
    if intake.errors:
        return _render_form(request, form_name, intake, status_code=422)
    if intake.late and not form.get("confirm_late"):
        return _render_form(request, form_name, intake, status_code=200, late_warning=True)
    if (retry_after := _rate_limited(request)) is not None:
        intake.errors["form"] = rate_limited_message(retry_after)
        return _render_form(request, form_name, intake, status_code=429)
    ticket, _created = await helpdesk.tickets.submit(
        intake.submission,  # type: ignore[arg-type]
        intake.photos,
        late=intake.late,
        submission_key=intake.values.get("submission_id") or None,
        deflection=_deflection(intake.values),
    )
    return RedirectResponse(helpdesk.tickets.urls.submitted(ticket), status_code=303)


async def submit_returns(request: Request) -> Response:
    return await _submit_form(request, "returns")


async def submit_contact(request: Request) -> Response:
    return await _submit_form(request, "contact")


async def _customer_ticket(request: Request):  # type: ignore[no-untyped-def]
    helpdesk = _helpdesk(request)
    ticket = await helpdesk.tickets.open_for_customer(
        request.path_params["reference"], request.query_params.get("token")
    )
    if ticket is None:
        # The same answer for an unknown reference and a wrong token.
        raise HTTPException(
            404, "お問い合わせが見つかりません。メールに記載のURLをご確認ください。"
        )
    return ticket


async def submitted(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    ticket = await _customer_ticket(request)
    context = {
        "ticket": ticket,
        "status_path": helpdesk.tickets.urls.status(ticket),
        "policy": helpdesk.faq.policy,
    }
    return helpdesk.templates.TemplateResponse(request, "tickets/submitted.html", context)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def _status_response(
    request: Request,
    ticket: Any,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    kept: dict[str, Kept] | None = None,
    sent: bool = False,
    status_code: int = 200,
) -> Response:
    helpdesk = _helpdesk(request)
    conversation = await helpdesk.tickets.conversation(ticket)
    if _wants_json(request):
        return JSONResponse(
            {
                "reference": ticket.reference,
                "kind": ticket.kind,
                "status": ticket.status,
                "late": ticket.late,
                "messages": [
                    {
                        "author": message.author,
                        "body": message.body,
                        "created_at": as_utc(message.created_at).isoformat(),
                    }
                    for message, _ in conversation
                ],
            },
            status_code=status_code,
        )
    context = {
        "ticket": ticket,
        "urls": helpdesk.tickets.urls,
        "conversation": conversation,
        "status_label": status_label(ticket.status),
        "kind_label": kind_label(ticket.kind),
        "policy": helpdesk.faq.policy,
        "errors": errors or {},
        "values": values or {},
        "kept": kept or {},
        "sent": sent,
        "submission_id": uuid.uuid4().hex,
    }
    return helpdesk.templates.TemplateResponse(
        request, "tickets/status.html", context, status_code=status_code
    )


async def ticket_status(request: Request) -> Response:
    ticket = await _customer_ticket(request)
    return await _status_response(request, ticket, sent=request.query_params.get("sent") == "1")


async def post_message(request: Request) -> Response:
    ticket = await _customer_ticket(request)
    async with _read_form(request) as form:
        return await _handle_message(request, ticket, form)


async def _handle_message(request: Request, ticket: Any, form: FormData) -> Response:
    helpdesk = _helpdesk(request)
    body, errors = validate_message(str(form.get("body") or ""))
    values = {"body": body}
    if not await verify_csrf(request, form):
        errors["body"] = "ページの有効期限が切れました。もう一度送信してください。"
    photos: dict[str, StoredPhoto] = {}
    try:
        photo = await _photo(request, form, "photo", "追加の写真")
    except PhotoError as exc:
        errors["photo"] = exc.message
        photo = helpdesk.tickets.access.photo_from_token(str(form.get("photo_kept") or ""))
    if photo is not None:
        photos["photo"] = photo
    if not body and not photos and not errors:
        errors["body"] = "メッセージを入力するか、写真を選んでください。"
    if not errors and (retry_after := _rate_limited(request)) is not None:
        errors["body"] = rate_limited_message(retry_after)
    if errors:
        kept = {n: Kept(p, helpdesk.tickets.access.photo_token(p)) for n, p in photos.items()}
        return await _status_response(
            request, ticket, errors=errors, values=values, kept=kept, status_code=422
        )
    await helpdesk.tickets.add_customer_message(
        ticket, body, photos, submission_key=str(form.get("submission_id") or "") or None
    )
    return RedirectResponse(helpdesk.tickets.urls.status(ticket, sent=True), status_code=303)


async def ticket_photo(request: Request) -> Response:
    return await _photo_response(request, await _customer_ticket(request), internal=False)


async def _photo_response(request: Request, ticket: Any, *, internal: bool) -> Response:
    helpdesk = _helpdesk(request)
    attachment = await helpdesk.tickets.attachment(
        ticket, request.path_params["digest"], internal=internal
    )
    if attachment is None:
        raise HTTPException(404, "写真が見つかりません。")
    digest = request.path_params["digest"]
    media_type = attachment.content_type if digest == attachment.digest else "image/jpeg"
    return FileResponse(
        helpdesk.photos.path(digest),
        media_type=media_type,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# -- agents ---------------------------------------------------------------------------------


async def _agent_ticket(request: Request):  # type: ignore[no-untyped-def]
    ticket = await _helpdesk(request).tickets.open_for_agent(
        request.path_params["reference"], request.query_params.get("key")
    )
    if ticket is None:
        raise HTTPException(404, "チケットが見つかりません。")
    return ticket


async def agent_ticket(request: Request) -> Response:
    """The agents' view (internal notes and history), behind a signed capability link."""
    helpdesk = _helpdesk(request)
    ticket = await _agent_ticket(request)
    customer, assignee, events = await helpdesk.tickets.details(ticket)
    context = {
        "ticket": ticket,
        "customer": customer,
        "assignee": assignee,
        "events": events,
        "urls": helpdesk.tickets.urls,
        "conversation": await helpdesk.tickets.conversation(ticket, internal=True),
        "status_label": status_label(ticket.status),
        "policy": helpdesk.faq.policy,
    }
    return helpdesk.templates.TemplateResponse(request, "tickets/agent.html", context)


async def agent_photo(request: Request) -> Response:
    ticket = await _agent_ticket(request)
    return await _photo_response(request, ticket, internal=True)


# -- HTTP API ---------------------------------------------------------------------------------


async def api_create_ticket(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return JSONResponse(
            {"errors": {"form": "multipart/form-data で送信してください。"}}, status_code=415
        )
    async with _read_form(request) as form:
        intake = await _intake(request, form, PHOTO_FIELDS)
    if intake.errors:
        return JSONResponse({"errors": intake.errors}, status_code=422)
    if (retry_after := _rate_limited(request)) is not None:
        return JSONResponse(
            {"errors": {"form": rate_limited_message(retry_after)}},
            status_code=429,
            headers={"Retry-After": str(int(retry_after) + 1)},
        )
    ticket, created = await helpdesk.tickets.submit(
        intake.submission,  # type: ignore[arg-type]
        intake.photos,
        late=intake.late,
        submission_key=request.headers.get("idempotency-key") or None,
        channel="api",
    )
    return JSONResponse(
        {
            "reference": ticket.reference,
            "status": ticket.status,
            "status_url": helpdesk.tickets.urls.status_url(ticket),
            "late": ticket.late,
        },
        status_code=201 if created else 200,
    )


routes = [
    Route("/returns/new", returns_form, methods=["GET"]),
    Route("/returns/new", submit_returns, methods=["POST"]),
    Route("/contact", contact_form, methods=["GET"]),
    Route("/contact", submit_contact, methods=["POST"]),
    Route("/t/{reference}", ticket_status, methods=["GET"]),
    Route("/t/{reference}/submitted", submitted, methods=["GET"]),
    Route("/t/{reference}/messages", post_message, methods=["POST"]),
    Route("/t/{reference}/photos/{digest}", ticket_photo, methods=["GET"]),
    Route("/agent/t/{reference}", agent_ticket, methods=["GET"]),
    Route("/agent/t/{reference}/photos/{digest}", agent_photo, methods=["GET"]),
    Route("/api/tickets", api_create_ticket, methods=["POST"]),
]
