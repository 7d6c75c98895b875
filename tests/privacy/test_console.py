"""Agents: privacy requests listed with their deadlines, an admin carries one out now,
an admin corrects a customer; the privacy audit log holds ids and hashes only."""

from __future__ import annotations

from datetime import timedelta

from starlette.applications import Starlette

from helpdesk.db import utcnow
from helpdesk.models import (
    Customer,
    PrivacyAudit,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestState,
    Ticket,
)
from helpdesk.privacy.audit import subject_hash
from tests.helpers import logged_in_client, rows, soup, submit_inquiry

EMAIL = "hanako@example.jp"


async def _request(app: Starlette, *, days_left: int) -> PrivacyRequest:
    helpdesk = app.state.helpdesk
    ticket = await submit_inquiry(app, email=EMAIL)
    [customer] = await rows(app, Customer, Customer.id == ticket.customer_id)
    made = await helpdesk.privacy.open_request(
        PrivacyRequestKind.erasure, customer, actor="customer"
    )
    async with helpdesk.sessions() as session, session.begin():
        stored = await session.get(PrivacyRequest, made.id)
        stored.due_at = utcnow() + timedelta(days=days_left, hours=1)
    return made


async def test_requests_show_their_deadline_and_an_admin_carries_one_out(
    app: Starlette,
) -> None:
    made = await _request(app, days_left=3)
    async with logged_in_client(app) as agent:
        page = soup(await agent.get("/console/privacy"))
        [row] = page.select("tr.privacy-request")
        assert "nearing" in row["class"] and "残り3日" in row.get_text()
        # The preview: what the erasure will remove.
        assert "チケット2件" in row.select_one(".privacy-counts").get_text()
        assert row.select_one("form.privacy-run") is None  # agents see, admins act
    async with logged_in_client(app, admin=True) as admin:
        page = soup(await admin.get("/console/privacy"))
        form = page.select_one("form.privacy-run")
        token = form.select_one("input[name=csrf_token]")["value"]
        response = await admin.post(form["action"], data={"csrf_token": token})
        assert response.status_code == 200 and "削除を実行しました" in response.text
    [done] = await rows(app, PrivacyRequest, PrivacyRequest.id == made.id)
    assert done.state is PrivacyRequestState.done
    assert await rows(app, Customer, Customer.email == EMAIL) == []


async def test_an_overdue_request_is_marked(app: Starlette) -> None:
    await _request(app, days_left=-2)
    async with logged_in_client(app) as agent:
        [row] = soup(await agent.get("/console/privacy")).select("tr.privacy-request")
        assert "overdue" in row["class"] and "期限超過" in row.get_text()


async def test_erasures_due_within_a_day_are_carried_out_by_themselves(app: Starlette) -> None:
    soon = await _request(app, days_left=0)
    helpdesk = app.state.helpdesk
    ticket = await submit_inquiry(app, email="later@example.jp", name="後で 太郎")
    [later] = await rows(app, Customer, Customer.id == ticket.customer_id)
    not_yet = await helpdesk.privacy.open_request(PrivacyRequestKind.erasure, later, actor="x")
    assert await helpdesk.privacy.erase_due() == 1
    states = {r.id: r.state for r in await rows(app, PrivacyRequest)}
    assert states[soon.id] is PrivacyRequestState.done
    assert states[not_yet.id] is PrivacyRequestState.pending


async def test_an_admin_corrects_a_customer_and_the_audit_log_names_no_one(
    app: Starlette,
) -> None:
    ticket = await submit_inquiry(app, email=EMAIL, name="山田 花子")
    async with logged_in_client(app, admin=True) as admin:
        page = soup(await admin.get(f"/console/t/{ticket.reference}"))
        form = page.select_one("form.customer-correction")
        data = {i["name"]: i.get("value", "") for i in form.select("input")}
        data.update(name="山田 華子", email="hanako.new@example.jp")
        response = await admin.post(form["action"], data=data)
        assert response.status_code == 200 and "訂正しました" in response.text
        # An address another customer uses is refused, and nothing changes.
        await submit_inquiry(app, email="taken@example.jp", name="別人")
        data.update(email="taken@example.jp", name="山田 華子")
        refused = await admin.post(form["action"], data=data)
        assert "別のお客様" in refused.text
    [customer] = await rows(app, Customer, Customer.id == ticket.customer_id)
    assert (customer.name, customer.email) == ("山田 華子", "hanako.new@example.jp")
    [renamed] = await rows(app, Ticket, Ticket.id == ticket.id)
    assert renamed.customer_name == "山田 華子"
    [entry] = await rows(app, PrivacyAudit, PrivacyAudit.action == "correction")
    secret = app.state.helpdesk.settings.ensure_secret_key()
    assert entry.subject_hash == subject_hash(secret, EMAIL)
    assert entry.actor.startswith("agent:")
    for audit in await rows(app, PrivacyAudit):
        text = f"{audit.actor} {audit.subject_hash} {audit.data}"
        for value in ("山田", "花子", "華子", "hanako", "example.jp", "taken"):
            assert value not in text


async def test_an_agent_may_not_carry_out_or_correct(app: Starlette) -> None:
    made = await _request(app, days_left=10)
    async with logged_in_client(app) as agent:
        page = soup(await agent.get("/console/privacy"))
        token = page.select_one("form.logout input[name=csrf_token]")["value"]
        refused = await agent.post(f"/console/privacy/{made.id}/run", data={"csrf_token": token})
        assert refused.status_code == 403
    [still] = await rows(app, PrivacyRequest, PrivacyRequest.id == made.id)
    assert still.state is PrivacyRequestState.pending


async def test_agents_are_mailed_the_requests_nearing_their_deadline(app: Starlette) -> None:
    from helpdesk.models import Outbox
    from helpdesk.tickets.redact import AGENT_MAIL_MARKERS
    from tests.helpers import SUPPORT

    near = await _request(app, days_left=3)
    far = await _request(app, days_left=20)
    assert await app.state.helpdesk.privacy.warn_nearing() == 1
    [warning] = await rows(app, Outbox, Outbox.kind == "privacy_deadline")
    assert warning.to_address == SUPPORT
    assert f"依頼 {near.id}(" in warning.text and f"依頼 {far.id}(" not in warning.text
    assert "/console/privacy" in warning.text
    assert any(marker in warning.text for marker in AGENT_MAIL_MARKERS)
