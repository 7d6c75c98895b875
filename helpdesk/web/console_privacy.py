"""The console's privacy pages: customers' requests with their deadlines, an admin's
"carry it out now", and an admin's correction of a customer's name or address.

Thin: the rules are in ``helpdesk.privacy`` (requests, erasure, correction); every action
there writes the privacy audit log.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk.db import as_utc, utcnow
from helpdesk.models import PrivacyRequest, PrivacyRequestKind, PrivacyRequestState, Ticket
from helpdesk.privacy.correction import CorrectionError, correct
from helpdesk.security import verify_csrf
from helpdesk.web.auth import require_agent
from helpdesk.web.console import render

#: Requests due within this many days are shown as nearing their deadline.
WARN_DAYS = 7
MAX_FIELDS = 10
KIND_LABELS = {PrivacyRequestKind.export: "写しの送付", PrivacyRequestKind.erasure: "削除"}
STATE_LABELS = {
    PrivacyRequestState.pending: "未対応",
    PrivacyRequestState.running: "実行中",
    PrivacyRequestState.done: "完了",
    PrivacyRequestState.failed: "失敗",
}
EXPIRED = "ページの有効期限が切れたため、実行できませんでした。もう一度お試しください。"


def _helpdesk(request: Request) -> Any:
    return request.app.state.helpdesk


async def _rows(request: Request) -> list[dict[str, Any]]:
    now = utcnow()
    async with _helpdesk(request).sessions() as session:
        found = (
            await session.execute(
                select(PrivacyRequest, Ticket)
                .outerjoin(Ticket, col(Ticket.id) == col(PrivacyRequest.ticket_id))
                .order_by(col(PrivacyRequest.state) == PrivacyRequestState.done.value)
                .order_by(col(PrivacyRequest.due_at))
                .limit(200)
            )
        ).all()
    rows = []
    for privacy_request, ticket in found:
        left = as_utc(privacy_request.due_at) - now
        open_ = privacy_request.state is not PrivacyRequestState.done
        rows.append(
            {
                "request": privacy_request,
                "ticket": ticket,
                "kind_label": KIND_LABELS[privacy_request.kind],
                "state_label": STATE_LABELS[privacy_request.state],
                "days_left": left.days,
                # What the erasure will remove (its preview), or what it removed.
                "counts": json.loads(
                    privacy_request.progress
                    if privacy_request.state is PrivacyRequestState.done
                    else privacy_request.preview
                )
                or {},
                "overdue": open_ and left < timedelta(0),
                "nearing": open_ and timedelta(0) <= left < timedelta(days=WARN_DAYS),
            }
        )
    return rows


async def _page(request: Request, agent: Any, **context: Any) -> Response:
    context = {
        "rows": await _rows(request),
        "warn_days": WARN_DAYS,
        "deletion_days": _helpdesk(request).faq.policy.deletion_days,
        **context,
    }
    return render(request, agent, "console/privacy.html", context, section="privacy")


async def privacy_page(request: Request) -> Response:
    agent = await require_agent(request)
    return await _page(request, agent)


async def run_now(request: Request) -> Response:
    """Carry out a pending erasure now (an admin). The page says what was done."""
    # The CSRF token first: the middleware's net refuses any answer below 400 (the login
    # redirect included) to an unsafe request whose handler did not check it.
    async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
        csrf_ok = await verify_csrf(request, form)
    agent = await require_agent(request, admin=True)
    if not csrf_ok:
        raise HTTPException(403, EXPIRED)
    helpdesk = _helpdesk(request)
    request_id = int(request.path_params["request_id"])
    async with helpdesk.sessions() as session:
        found = await session.get(PrivacyRequest, request_id)
    if found is None:
        raise HTTPException(404, "ご依頼が見つかりません。")
    if found.kind is PrivacyRequestKind.export:
        if found.state is not PrivacyRequestState.done:
            await helpdesk.privacy.build_export(request_id)
        return await _page(request, agent, notice=f"依頼 {request_id} の写しを送付しました。")
    if found.state is not PrivacyRequestState.done:
        await helpdesk.privacy.carry_out(request_id, actor=f"agent:{agent.id}")
    return await _page(request, agent, notice=f"依頼 {request_id} の削除を実行しました。")


async def correct_customer(request: Request) -> Response:
    """Correct a customer's name and/or address (an admin; fields left out stay)."""
    async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
        csrf_ok = await verify_csrf(request, form)
        name = form.get("name")
        email = form.get("email")
        back = str(form.get("reference") or "")
    agent = await require_agent(request, admin=True)
    if not csrf_ok:
        raise HTTPException(403, EXPIRED)
    assert agent.id is not None
    helpdesk = _helpdesk(request)
    try:
        result = await correct(
            helpdesk.sessions,
            int(request.path_params["customer_id"]),
            name=None if name is None else str(name),
            email=None if email is None else str(email),
            agent_id=agent.id,
            secret_key=helpdesk.settings.ensure_secret_key(),
        )
    except LookupError:
        raise HTTPException(404, "お客様が見つかりません。") from None
    except CorrectionError as error:
        context = {"error": error.message, "reference": back}
        return render(request, agent, "console/corrected.html", context, section="privacy")
    labels = {"name": "お名前", "email": "メールアドレス"}
    changed = "・".join(labels[f] for f in result.fields) or "変更なし"
    context = {"changed": changed, "reference": back}
    return render(request, agent, "console/corrected.html", context, section="privacy")


routes = [
    Route("/console/privacy", privacy_page, methods=["GET"]),
    Route("/console/privacy/{request_id:int}/run", run_now, methods=["POST"]),
    Route("/console/customers/{customer_id:int}/correct", correct_customer, methods=["POST"]),
]
