"""Customers' privacy requests: ask on /privacy, confirm by the mailed link, download a copy.

Thin: the rules are in ``helpdesk.privacy.requests``. The confirmation and download links
carry their signed token in the query string, which the access log never records.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from helpdesk.models import PrivacyRequestKind
from helpdesk.security import client_ip, rate_limited_message, verify_csrf

KIND_LABELS = {
    PrivacyRequestKind.export: "個人情報の写しの送付",
    PrivacyRequestKind.erasure: "個人情報の削除",
}
EXPIRED = (
    "ページの有効期限が切れたため、送信できませんでした。入力内容はそのまま残っています。"
    "もう一度送信してください。"
)
MAX_FIELDS = 10
LINK_INVALID = (
    "このリンクは無効か、有効期限が切れています。お手数ですが、"
    "プライバシーポリシーのページから改めてご依頼ください。"
)


def _render(
    request: Request, template: str, context: dict[str, object], status: int = 200
) -> Response:
    helpdesk = request.app.state.helpdesk
    return helpdesk.templates.TemplateResponse(
        request, template, {"kind_labels": KIND_LABELS, **context}, status_code=status
    )


async def ask(request: Request) -> Response:
    """The same answer whatever the address: what follows goes to the address by mail."""
    helpdesk = request.app.state.helpdesk
    async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
        email = str(form.get("email") or "").strip()[:300]
        raw_kind = str(form.get("kind") or "")
        csrf_ok = await verify_csrf(request, form)
    try:
        kind: PrivacyRequestKind | None = PrivacyRequestKind(raw_kind)
    except ValueError:
        kind = None
    if not csrf_ok:
        return _render(
            request,
            "privacy/ask.html",
            {"errors": {"form": EXPIRED}, "email": email, "kind": raw_kind},
            status=403,
        )
    errors: dict[str, str] = {}
    if kind is None:
        errors["kind"] = "ご依頼の内容を選んでください。"
    if not email or "@" not in email or len(email) > 254:
        errors["email"] = "メールアドレスを入力してください。"
    if errors:
        return _render(
            request,
            "privacy/ask.html",
            {"errors": errors, "email": email, "kind": kind and kind.value},
            status=400,
        )
    assert kind is not None
    if (retry := await helpdesk.submission_limiter.hit(client_ip(request))) is not None:
        return _render(
            request,
            "privacy/ask.html",
            {"errors": {"form": rate_limited_message(retry)}, "email": email, "kind": kind.value},
            status=429,
        )
    await helpdesk.privacy.ask(email, kind, client=client_ip(request))
    return _render(request, "privacy/asked.html", {"kind": kind})


async def confirm_page(request: Request) -> Response:
    """Opening the link changes nothing (mail scanners open links): a button does."""
    helpdesk = request.app.state.helpdesk
    token = request.query_params.get("token")
    checked = await helpdesk.privacy.check_token(token)
    if checked is None:
        raise HTTPException(404, LINK_INVALID)
    kind, _customer = checked
    return _render(request, "privacy/confirm.html", {"kind": kind, "token": token})


async def confirm(request: Request) -> Response:
    helpdesk = request.app.state.helpdesk
    async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
        token = str(form.get("token") or request.query_params.get("token") or "")
        csrf_ok = await verify_csrf(request, form)
    if not csrf_ok:
        raise HTTPException(403, EXPIRED)
    made = await helpdesk.privacy.confirm(token, client=client_ip(request))
    if made is None:
        raise HTTPException(404, LINK_INVALID)
    return _render(request, "privacy/confirmed.html", {"kind": made.kind, "due_at": made.due_at})


async def download(request: Request) -> Response:
    helpdesk = request.app.state.helpdesk
    path = await helpdesk.privacy.download(request.query_params.get("token"))
    if path is None:
        raise HTTPException(404, LINK_INVALID)
    return FileResponse(
        path,
        media_type="application/zip",
        filename="personal-data.zip",
        headers={"Cache-Control": "no-store"},
    )


routes = [
    Route("/privacy/request", ask, methods=["POST"], name="privacy_request"),
    Route("/privacy/confirm", confirm_page, methods=["GET"], name="privacy_confirm"),
    Route("/privacy/confirm", confirm, methods=["POST"], name="privacy_confirm_post"),
    Route("/privacy/export", download, methods=["GET"], name="privacy_export"),
]
