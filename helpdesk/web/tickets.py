"""Return, defect, exchange and contact forms, the customer's status page, and the API.

Handlers parse the request, hand the values to ``helpdesk.tickets`` and render. A form POST
is checked in two steps. First what is cheap: the rate limit (peeked, not counted), the CSRF
token and the honeypot; a request refused there has no photo decoded or stored. Then every
field and every photo together, so that all problems come back in one round, in the order
of the fields, with every value kept. A photo that passes is stored and rides along as a
signed hidden field (with its thumbnail shown), so that nobody uploads it twice.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk.db import as_utc
from helpdesk.models import TicketKind
from helpdesk.photos import PhotoError, StoredPhoto
from helpdesk.security import (
    api_key_matches,
    client_ip,
    looks_like_browser,
    presented_api_key,
    rate_limited_message,
    verify_csrf,
)
from helpdesk.tickets.labels import (
    INQUIRY_CATEGORIES,
    INQUIRY_GROUPS,
    PHOTO_FIELDS,
    RETURN_KIND_GROUPS,
    RETURNS_TOPIC,
    RETURNS_TOPIC_LABEL,
    kind_label,
    status_label,
)
from helpdesk.tickets.rules import (
    MAX_DESCRIPTION,
    PHOTO_KINDS,
    Submission,
    missing_photos,
    today_in_japan,
    validate_message,
    validate_submission,
)
from helpdesk.tickets.service import SubmissionConflict

log = logging.getLogger(__name__)

FORM_FIELDS: tuple[str, ...] = (
    "kind",
    "name",
    "email",
    "order_number",
    "arrived_on",
    "confirm_late",
)
FORM_FIELDS += ("description", "desired_variant", "category", "submission_id")
FORM_FIELDS += ("deflection_shown", "deflection_followed")
# The order the forms show their fields in, and so their problems ("form": the whole form).
FIELD_ORDER: tuple[str, ...] = (
    "form",
    "kind",
    "category",
    "name",
    "email",
    "order_number",
    "arrived_on",
)
FIELD_ORDER += ("confirm_late", "desired_variant", "description", *PHOTO_FIELDS)
# The returns form's fields that only some kinds need (the rules decide; the form's 必須
# badges follow this, and a test checks that both agree).
REQUIRED_FOR: dict[str, frozenset[TicketKind]] = {
    "desired_variant": frozenset({TicketKind.exchange}),
    "description": PHOTO_KINDS,
    **dict.fromkeys(PHOTO_FIELDS, PHOTO_KINDS),
}
# The kinds a link may preselect on the returns form (/returns/new?kind=defect).
RETURN_KINDS = frozenset(kind for choices in RETURN_KIND_GROUPS.values() for kind in choices)
# What the contact form carries over when the customer turns out to want the returns form.
CARRIED_TO_RETURNS: tuple[str, ...] = ("name", "email", "order_number", "description")
CARRIED_TO_RETURNS += ("deflection_shown", "deflection_followed")
# Multipart limits: a form has a handful of fields and at most two photos.
MAX_FORM_FILES = 4
MAX_FORM_FIELDS = 40

EXPIRED = "ページの有効期限が切れたため、送信できませんでした。入力内容はそのまま残っています。"
EXPIRED += "もう一度「送信する」を押してください。"
EXPIRED_WITH_PHOTOS = (
    "ページの有効期限が切れたため、送信できませんでした。入力内容は残っていますが、"
    "選んだ写真は受け取っていません。お手数ですが、写真を選び直してから、"
    "もう一度「送信する」を押してください。"
)
STORAGE_FAILED = (
    "ただいま写真を保存できません。入力内容はそのまま残っています。"
    "お手数ですが、しばらくしてから写真を選び直して、もう一度送信してください。"
)
CARRIED_NOTICE = (
    "返品・交換・不良品のご連絡は、写真を添付できるこちらのフォームで承ります。"
    "ご入力の内容を引き継ぎました。ご連絡の内容を選んで、残りの項目を入力してください。"
)


@dataclass
class Kept:
    photo: StoredPhoto
    token: str
    thumb_url: str = ""


@dataclass
class Intake:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    photos: dict[str, StoredPhoto] = field(default_factory=dict)
    late: bool = False
    submission: Submission | None = None
    #: Photo fields whose new upload was not looked at (a refused request, storage down):
    #: the browser may keep the file chosen and send it again.
    unjudged: set[str] = field(default_factory=set)
    #: The media folder could not be written (read-only, full): answered with 503.
    storage_failed: bool = False


def _helpdesk(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.helpdesk


def _read_form(request: Request):  # type: ignore[no-untyped-def]
    """``async with _read_form(request) as form``: uploads are closed (and deleted) after."""
    return request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS)


def _upload(form: FormData, name: str) -> UploadFile | None:
    upload = form.get(name)
    return upload if isinstance(upload, UploadFile) and upload.filename else None


def _kept(helpdesk: Any, form: FormData, name: str, label: str) -> tuple[StoredPhoto | None, str]:
    """The photo accepted for ``name`` on an earlier try (from its signed token), and a
    message when the token is good but the photo is gone (swept after a long wait)."""
    photo = helpdesk.tickets.access.photo_from_token(str(form.get(f"{name}_kept") or ""))
    if photo is None:
        return None, ""
    # Restarts the sweep's grace period; False when the files were swept meanwhile.
    if not helpdesk.photos.retain(photo):
        return None, f"「{label}」の保存期間が過ぎました。お手数ですが、もう一度選んでください。"
    return photo, ""


async def _photo(request: Request, form: FormData, name: str, label: str) -> StoredPhoto | None:
    """The photo of field ``name``: a new upload, else one accepted on an earlier try.

    Raises ``PhotoError`` (a Japanese message naming the field) for a bad upload, and
    ``OSError`` when the media folder cannot be written.
    """
    helpdesk = _helpdesk(request)
    upload = _upload(form, name)
    if upload is not None:
        data = await upload.read(helpdesk.photos.max_bytes + 1)
        return await helpdesk.photos.process_async(
            data, filename=upload.filename or "", field_label=label
        )
    return _kept(helpdesk, form, name, label)[0]


def _too_large(helpdesk: Any, form: FormData, name: str, label: str) -> str:
    """The message for a photo the browser found too large and did not send (it sends
    ``<field>_too_large`` with the file's size instead), or ""."""
    size = str(form.get(f"{name}_too_large") or "")
    if not size or _upload(form, name) is not None:
        return ""
    limit_mb = helpdesk.photos.max_bytes // (1024 * 1024)
    message = f"「{label}」のファイルが大きすぎます。{limit_mb}MB以下の画像を選んでください。"
    if size.isdigit() and len(size) < 13:
        message += f"(選んだファイルは{int(size) / (1024 * 1024):.1f}MBです)"
    return message


def _in_field_order(errors: dict[str, str]) -> dict[str, str]:
    rank = {name: index for index, name in enumerate(FIELD_ORDER)}
    return dict(sorted(errors.items(), key=lambda item: rank.get(item[0], len(rank))))


def _form_values(form: FormData) -> dict[str, str]:
    return {name: str(form.get(name) or "") for name in FORM_FIELDS}


def _kind(value: str) -> TicketKind | None:
    try:
        return TicketKind(value)
    except ValueError:
        return None


async def _intake(request: Request, form: FormData, photo_fields: dict[str, str]) -> Intake:
    """Every field and every photo checked together: all problems, in the fields' order.

    Photos that pass are stored (and kept for a retry) even when other fields fail. When
    the media folder cannot be written, ``storage_failed`` is set and the form-wide message
    says so; nothing typed is lost.
    """
    helpdesk = _helpdesk(request)
    values = _form_values(form)
    policy = helpdesk.faq.policy
    checked = validate_submission(values, today=today_in_japan(policy), policy=policy)
    intake = Intake(values, late=checked.late, submission=checked.submission)
    errors = dict(checked.errors)
    for name, label in photo_fields.items():
        photo, gone = _kept(helpdesk, form, name, label)
        upload = _upload(form, name)
        if upload is not None and intake.storage_failed:
            intake.unjudged.add(name)
        elif upload is not None:
            try:
                photo = await _photo(request, form, name, label)
            except PhotoError as exc:
                errors[name] = exc.message
            except OSError:
                log.exception("could not store a photo in %s", helpdesk.photos.root)
                intake.storage_failed = True
                intake.unjudged.add(name)
                errors["form"] = STORAGE_FAILED
        elif message := _too_large(helpdesk, form, name, label) or gone:
            errors[name] = message
        if photo is not None:
            intake.photos[name] = photo
    kind = _kind(values["kind"])
    if kind is not None:
        for name, message in missing_photos(kind, intake.photos).items():
            if name not in intake.unjudged:
                errors.setdefault(name, message)
    intake.errors = _in_field_order(errors)
    return intake


def _deflection(values: dict[str, str]) -> dict[str, list[str]]:
    def ids(raw: str) -> list[str]:
        return [i for i in dict.fromkeys(raw.split(",")) if i][:20]

    return {
        "shown": ids(values.get("deflection_shown", "")),
        "followed": ids(values.get("deflection_followed", "")),
    }


async def _rate_limited(request: Request) -> float | None:
    return await _helpdesk(request).submission_limiter.hit(client_ip(request))


def _late_days(values: dict[str, str], today: date) -> int | None:
    try:
        return (today - date.fromisoformat(values.get("arrived_on", ""))).days
    except ValueError:
        return None


def _late_unconfirmed(window_days: int) -> str:
    return (
        f"商品到着から{window_days}日を過ぎてのご連絡です。このまま送信される場合は、"
        "「了承のうえ送信します」にチェックを入れてください。"
    )


def _kept_photos(helpdesk: Any, photos: dict[str, StoredPhoto]) -> dict[str, Kept]:
    """Accepted photos as the form carries them: a signed token and a thumbnail link."""
    return {
        name: Kept(
            photo,
            helpdesk.tickets.access.photo_token(photo),
            helpdesk.tickets.urls.kept_thumb(photo),
        )
        for name, photo in photos.items()
    }


def _render_form(
    request: Request,
    form_name: str,
    intake: Intake | None = None,
    *,
    status_code: int = 200,
    notice: str = "",
    refused: str = "",
) -> Response:
    helpdesk = _helpdesk(request)
    policy = helpdesk.faq.policy
    query = request.query_params
    values = dict(intake.values) if intake else {}
    if not values.get("submission_id"):
        values["submission_id"] = uuid.uuid4().hex
    if intake is None:
        # Links may choose the case (/returns/new?kind=defect) or the topic, and carry a
        # question the FAQ could not answer (/contact?q=...): nothing to type twice.
        if form_name == "returns" and query.get("kind") in RETURN_KINDS:
            values["kind"] = query["kind"]
        if form_name == "contact" and query.get("category") in INQUIRY_CATEGORIES:
            values["category"] = query["category"]
        if carried := query.get("q", "").strip():
            values["description"] = carried[:MAX_DESCRIPTION]
    kept = _kept_photos(helpdesk, intake.photos if intake else {})
    today = today_in_japan(policy)
    days = _late_days(values, today)
    context = {
        "form": form_name,
        "title": "返品・交換・不良品のご連絡" if form_name == "returns" else "お問い合わせ",
        "action": "/returns/new" if form_name == "returns" else "/contact",
        "values": values,
        "errors": intake.errors if intake else {},
        "kept": kept,
        "unjudged": intake.unjudged if intake else set(),
        "late": days is not None and days > policy.return_window_days,
        "late_days": days,
        "notice": notice,
        "refused": refused,
        "return_kind_groups": RETURN_KIND_GROUPS,
        "inquiry_groups": [
            (group, [(key, INQUIRY_CATEGORIES[key]) for key in keys])
            for group, keys in INQUIRY_GROUPS.items()
        ],
        "returns_topic": (RETURNS_TOPIC, RETURNS_TOPIC_LABEL),
        "required_for": {name: sorted(kinds) for name, kinds in REQUIRED_FOR.items()},
        "policy": policy,
        "today": today.isoformat(),
        "max_photo_mb": helpdesk.photos.max_bytes // (1024 * 1024),
        "max_photo_bytes": helpdesk.photos.max_bytes,
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


def _with_kind(form_name: str, form: FormData) -> FormData:
    """The contact form makes inquiries only; the returns form never does."""
    if form_name == "contact" and form.get("kind") != TicketKind.inquiry:
        return FormData(
            [
                *((k, v) for k, v in form.multi_items() if k != "kind"),
                ("kind", TicketKind.inquiry.value),
            ]
        )
    if form_name == "returns" and form.get("kind") == TicketKind.inquiry:
        return FormData([(k, v) for k, v in form.multi_items() if k != "kind"])
    return form


def _refuse(
    request: Request, form_name: str, form: FormData, message: str, status_code: int
) -> Response:
    """The form again with ``message``, for a request refused before any photo is decoded:
    what was typed and the photos kept from earlier tries come back; new uploads are not
    looked at (``unjudged``: the browser may send them again)."""
    helpdesk = _helpdesk(request)
    intake = Intake(_form_values(form), errors={"form": message})
    for name, label in (PHOTO_FIELDS if form_name == "returns" else {}).items():
        photo, _gone = _kept(helpdesk, form, name, label)
        if photo is not None:
            intake.photos[name] = photo
        if _upload(form, name) is not None:
            intake.unjudged.add(name)
    refused = "csrf" if status_code == 403 else "rate" if status_code == 429 else ""
    return _render_form(request, form_name, intake, status_code=status_code, refused=refused)


async def _handle_form(request: Request, form_name: str, form: FormData) -> Response:
    helpdesk = _helpdesk(request)
    photo_fields = PHOTO_FIELDS if form_name == "returns" else {}
    form = _with_kind(form_name, form)
    limiter, address = helpdesk.submission_limiter, client_ip(request)
    uploads = any(_upload(form, name) is not None for name in photo_fields)
    # What is cheap comes first; a request refused here has nothing decoded or stored.
    if (retry_after := await limiter.peek(address)) is not None:
        return _refuse(request, form_name, form, rate_limited_message(retry_after), 429)
    if not await verify_csrf(request, form):
        message = EXPIRED_WITH_PHOTOS if uploads else EXPIRED
        return _refuse(request, form_name, form, message, 403)
    if form.get("website"):
        # The honeypot: people never see this field, bots fill it in.
        return helpdesk.templates.TemplateResponse(
            request, "tickets/submitted.html", {"ticket": None, "policy": helpdesk.faq.policy}
        )
    if form_name == "contact" and form.get("category") == RETURNS_TOPIC:
        carried = {name: str(form.get(name) or "") for name in CARRIED_TO_RETURNS}
        return _render_form(request, "returns", Intake(carried), notice=CARRIED_NOTICE)
    # Decoding photos is what costs: a request that sends any counts against the limit now.
    if uploads and (retry_after := await limiter.hit(address)) is not None:
        return _refuse(request, form_name, form, rate_limited_message(retry_after), 429)
    intake = await _intake(request, form, photo_fields)
    if intake.late and not intake.values.get("confirm_late"):
        window = helpdesk.faq.policy.return_window_days
        intake.errors = _in_field_order(
            {**intake.errors, "confirm_late": _late_unconfirmed(window)}
        )
    if intake.storage_failed:
        return _render_form(request, form_name, intake, status_code=503)
    if intake.errors:
        return _render_form(request, form_name, intake, status_code=422)
    if not uploads and (retry_after := await limiter.hit(address)) is not None:
        intake.errors["form"] = rate_limited_message(retry_after)
        return _render_form(request, form_name, intake, status_code=429, refused="rate")
    try:
        ticket, _created = await helpdesk.tickets.submit(
            intake.submission,
            intake.photos,
            late=intake.late,
            submission_key=intake.values.get("submission_id") or None,
            deflection=_deflection(intake.values),
            client=client_ip(request),
        )
    except SubmissionConflict as exc:
        # The id came back with other content (edited after going back): nothing of the
        # first ticket is shown; a fresh id makes the next send a new submission.
        intake.errors["form"] = exc.message
        intake.values["submission_id"] = ""
        return _render_form(request, form_name, intake, status_code=409)
    return RedirectResponse(helpdesk.tickets.urls.submitted(ticket), status_code=303)


async def submit_returns(request: Request) -> Response:
    return await _submit_form(request, "returns")


async def submit_contact(request: Request) -> Response:
    return await _submit_form(request, "contact")


async def kept_photo_thumb(request: Request) -> Response:
    """The thumbnail of a photo a form keeps, for whoever holds the form's signed link."""
    helpdesk = _helpdesk(request)
    digest = request.path_params["digest"]
    if not helpdesk.tickets.access.check_kept_thumb(digest, request.query_params.get("sig")):
        raise HTTPException(404, "写真が見つかりません。")
    path = helpdesk.photos.path(digest)
    if not path.is_file():
        raise HTTPException(404, "写真が見つかりません。")
    return FileResponse(
        path,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


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
    # A duplicate merged into another ticket of the same customer: its link (token checked
    # above) goes on with that ticket (messages, photos).
    return await helpdesk.tickets.following_merges(ticket)


async def submitted(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    ticket = await _customer_ticket(request)
    conversation = await helpdesk.tickets.conversation(ticket)
    received = [
        (attachment, helpdesk.tickets.urls.photo(ticket, attachment.thumb_digest))
        for _message, attachments in conversation[:1]
        for attachment in attachments
    ]
    context = {
        "ticket": ticket,
        "status_path": helpdesk.tickets.urls.status(ticket),
        "policy": helpdesk.faq.policy,
        "received": received,
        "photo_labels": PHOTO_FIELDS,
        # The page says a confirmation was sent only when one was queued (issue 7, #8).
        "confirmation_mail": await helpdesk.tickets.confirmation_queued(ticket),
        "reply_promise": helpdesk.tickets.reply_promise(ticket),
        "support_hours": support.summary() if (support := helpdesk.faq.policy.support) else None,
    }
    return helpdesk.templates.TemplateResponse(request, "tickets/submitted.html", context)


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None


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
                "first_reply_due_at": _iso(ticket.first_reply_due_at),
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
        "reply_promise": helpdesk.tickets.reply_promise(ticket),
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
    if ticket.reference != request.path_params["reference"]:
        # The old link of a merged duplicate: to the ticket it was merged into.
        return RedirectResponse(_helpdesk(request).tickets.urls.status(ticket), status_code=303)
    return await _status_response(request, ticket, sent=request.query_params.get("sent") == "1")


async def post_message(request: Request) -> Response:
    ticket = await _customer_ticket(request)
    async with _read_form(request) as form:
        return await _handle_message(request, ticket, form)


async def _handle_message(request: Request, ticket: Any, form: FormData) -> Response:
    helpdesk = _helpdesk(request)
    body, errors = validate_message(str(form.get("body") or ""))
    values = {"body": body}
    photos: dict[str, StoredPhoto] = {}
    kept, _gone = _kept(helpdesk, form, "photo", "追加の写真")
    # As on the forms: a request refused for its rate or its token has nothing decoded.
    if (retry_after := await helpdesk.submission_limiter.peek(client_ip(request))) is not None:
        errors["body"] = rate_limited_message(retry_after)
    elif not await verify_csrf(request, form):
        errors["body"] = EXPIRED_WITH_PHOTOS if _upload(form, "photo") else EXPIRED
    else:
        try:
            kept = await _photo(request, form, "photo", "追加の写真")
        except PhotoError as exc:
            errors["photo"] = exc.message
        except OSError:
            log.exception("could not store a photo in %s", helpdesk.photos.root)
            errors["photo"] = STORAGE_FAILED
    if kept is not None:
        photos["photo"] = kept
    if not body and not photos and not errors:
        errors["body"] = "メッセージを入力するか、写真を選んでください。"
    if not errors and (retry_after := await _rate_limited(request)) is not None:
        errors["body"] = rate_limited_message(retry_after)
    if errors:
        return await _status_response(
            request,
            ticket,
            errors=errors,
            values=values,
            kept=_kept_photos(helpdesk, photos),
            status_code=422,
        )
    try:
        await helpdesk.tickets.add_customer_message(
            ticket,
            body,
            photos,
            submission_key=str(form.get("submission_id") or "") or None,
            client=client_ip(request),
        )
    except SubmissionConflict as exc:
        return await _status_response(
            request,
            ticket,
            errors={"body": exc.message},
            values=values,
            kept=_kept_photos(helpdesk, photos),
            status_code=409,
        )
    return RedirectResponse(helpdesk.tickets.urls.status(ticket, sent=True), status_code=303)


async def ticket_photo(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    ticket = await _customer_ticket(request)
    attachment = await helpdesk.tickets.attachment(
        ticket, request.path_params["digest"], internal=False
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


# -- HTTP API ---------------------------------------------------------------------------------


# The text fields the API takes; photos come only as multipart files.
API_TEXT_FIELDS = (
    "kind",
    "name",
    "email",
    "order_number",
    "arrived_on",
    "description",
    "desired_variant",
    "category",
)
API_CONTENT_TYPES = ("application/json", "multipart/form-data")
# A JSON submission holds a few short fields and a description of at most 5000 characters.
MAX_API_JSON_BYTES = 64 * 1024
API_UNSUPPORTED = (
    "application/json または multipart/form-data で送信してください"
    "(写真を付けるときは multipart/form-data です)。"
)
API_KEY_WRONG = "APIキーが正しくありません。"
API_KEY_NEEDED = "APIキーが必要です(Authorization: Bearer <キー> で送ってください)。"
API_CROSS_SITE = (
    "ブラウザからの送信には、このサイトのページが発行したトークンが必要です。"
    "お問い合わせはフォームからお送りください。"
)


def _api_error(field_name: str, message: str, status_code: int, **headers: str) -> Response:
    return JSONResponse({"errors": {field_name: message}}, status_code=status_code, headers=headers)


async def api_create_ticket(request: Request) -> Response:
    """``POST /api/tickets``: JSON or multipart from integrations, never a cross-site form.

    Content types a cross-site page can post without asking the browser first
    (``application/x-www-form-urlencoded``, ``text/plain``) get 415. A request with an API
    key (``HELPDESK_API_KEYS``) is an integration; one without a key that comes from a
    browser (``Origin`` or ``Sec-Fetch-*`` headers) must carry the CSRF token like the forms;
    one with neither is allowed only while no keys are configured (issue 7, #13).
    """
    helpdesk = _helpdesk(request)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in API_CONTENT_TYPES:
        return _api_error("form", API_UNSUPPORTED, 415)
    keys = helpdesk.settings.api_key_list
    presented = presented_api_key(request.headers)
    if presented is not None and not api_key_matches(presented, keys):
        return _api_error("form", API_KEY_WRONG, 401, **{"WWW-Authenticate": "Bearer"})
    browser = presented is None and looks_like_browser(request.headers)
    if presented is None and not browser and keys:
        return _api_error("form", API_KEY_NEEDED, 401, **{"WWW-Authenticate": "Bearer"})
    if media_type == "application/json":
        form = await _json_form(request)
        if isinstance(form, Response):
            return form
        return await _api_submit(request, form, browser=browser)
    async with _read_form(request) as multipart:
        return await _api_submit(request, multipart, browser=browser)


async def _json_form(request: Request) -> FormData | Response:
    """The JSON object's text fields as form data, or the error response."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_API_JSON_BYTES:
            message = f"送信データが大きすぎます(JSON は {MAX_API_JSON_BYTES // 1024} KB まで)。"
            return _api_error("form", message, 413)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _api_error("form", "JSON として読み取れませんでした。", 400)
    if not isinstance(data, dict):
        return _api_error("form", "JSON のオブジェクト({...})で送信してください。", 400)
    errors = {
        name: "文字列で指定してください。"
        for name in API_TEXT_FIELDS
        if data.get(name) is not None and not isinstance(data[name], str)
    }
    if errors:
        return JSONResponse({"errors": errors}, status_code=422)
    return FormData([(name, data[name]) for name in API_TEXT_FIELDS if data.get(name)])


async def _api_submit(request: Request, form: FormData, *, browser: bool) -> Response:
    helpdesk = _helpdesk(request)
    if browser and not await verify_csrf(request, form):
        return _api_error("form", API_CROSS_SITE, 403)
    text_only = FormData(
        [(k, v) for k, v in form.multi_items() if k in API_TEXT_FIELDS or k in PHOTO_FIELDS]
    )
    intake = await _intake(request, text_only, PHOTO_FIELDS)
    if intake.errors:
        return JSONResponse({"errors": intake.errors}, status_code=422)
    if (retry_after := await _rate_limited(request)) is not None:
        return JSONResponse(
            {"errors": {"form": rate_limited_message(retry_after)}},
            status_code=429,
            headers={"Retry-After": str(int(retry_after) + 1)},
        )
    try:
        ticket, created = await helpdesk.tickets.submit(
            intake.submission,
            intake.photos,
            late=intake.late,
            submission_key=request.headers.get("idempotency-key") or None,
            channel="api",
            client=client_ip(request),
        )
    except SubmissionConflict as exc:
        # Another submission's key: its ticket, its link and its token stay its own.
        return _api_error("form", exc.message, 409)
    return JSONResponse(
        {
            "reference": ticket.reference,
            "status": ticket.status,
            "status_url": helpdesk.tickets.urls.status_url(ticket),
            "late": ticket.late,
            "confirmation_mail": await helpdesk.tickets.confirmation_queued(ticket),
            "first_reply_due_at": _iso(ticket.first_reply_due_at),
        },
        status_code=201 if created else 200,
    )


routes = [
    Route("/returns/new", returns_form, methods=["GET"]),
    Route("/returns/new", submit_returns, methods=["POST"]),
    Route("/contact", contact_form, methods=["GET"]),
    Route("/contact", submit_contact, methods=["POST"]),
    Route("/photos/kept/{digest}", kept_photo_thumb, methods=["GET"]),
    Route("/t/{reference}", ticket_status, methods=["GET"]),
    Route("/t/{reference}/submitted", submitted, methods=["GET"]),
    Route("/t/{reference}/messages", post_message, methods=["POST"]),
    Route("/t/{reference}/photos/{digest}", ticket_photo, methods=["GET"]),
    Route("/api/tickets", api_create_ticket, methods=["POST"]),
]
