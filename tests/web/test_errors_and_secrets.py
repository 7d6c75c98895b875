"""No stack trace reaches a user; no token, key, password or session reaches a log;
customers' links can be revoked (issue 10 #9, issue 7 #19)."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from helpdesk.models import Outbox, TicketEvent
from helpdesk.observability import flush_access_log
from helpdesk.tickets import Actor, ActorRole, Channel
from tests.helpers import (
    PASSWORD,
    api_defect,
    console_agent,
    log_in,
    rows,
    soup,
    submit_inquiry,
    the_ticket,
)


async def boom(request: object) -> object:
    raise RuntimeError("secret-detail: the database password is hunter2")


@pytest.mark.parametrize("path", ["/boom", "/api/boom"])
async def test_an_error_shows_the_japanese_page_and_never_a_traceback(
    app: Starlette, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    app.state.helpdesk.settings.debug = True  # HELPDESK_DEBUG changes nothing for users
    app.router.routes.append(Route(path, boom))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get(path)
    assert response.status_code == 500
    assert "Traceback" not in response.text and "hunter2" not in response.text
    if path.startswith("/api/"):
        assert "エラーが発生しました" in response.json()["error"]
    else:
        page = soup(response)
        assert page.html["lang"] == "ja"
        assert "エラーが発生しました" in page.select_one("main").get_text()
    assert "hunter2" in caplog.text  # it is in the log, for whoever runs the shop


async def test_no_token_key_password_or_session_reaches_the_logs(
    client: httpx.AsyncClient, app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    # INFO, the level serve logs at, for every logger (DEBUG of the database drivers would
    # print the rows written, outbox mails with their links included: a database dump).
    caplog.set_level(logging.INFO)
    created = await api_defect(client, app)
    ticket = await the_ticket(app, created["reference"])
    access = app.state.helpdesk.tickets.access
    token, key = access.access_token(ticket), access.agent_key(ticket)
    _agent, link_token = await app.state.helpdesk.accounts.add("sato@interiorltd.jp", "佐藤")
    await client.get(f"/t/{ticket.reference}", params={"token": token})
    await client.get(f"/t/{ticket.reference}", params={"token": "guessed-token"})
    await client.get(f"/agent/t/{ticket.reference}", params={"key": key})
    page = soup(await client.get(f"/console/password/{link_token}"))
    csrf = page.select_one("input[name=csrf_token]")["value"]
    await client.post(
        f"/console/password/{link_token}",
        data={"csrf_token": csrf, "password": PASSWORD, "password_confirmation": PASSWORD},
        headers={"Origin": "https://evil.example"},  # refused and logged: path masked
    )
    await client.post(
        f"/console/password/{link_token}",
        data={"csrf_token": csrf, "password": PASSWORD, "password_confirmation": PASSWORD},
    )
    await log_in(client, "sato@interiorltd.jp", "a wrong password 1")
    await log_in(client, "sato@interiorltd.jp", PASSWORD)
    session = client.cookies["madoguchi_agent"]
    await client.get(f"/console/t/{ticket.reference}")
    flush_access_log()  # the access log's lines wait a moment to be written together
    # Every logger but the test client's own (httpx logs the URLs it requests, tokens and
    # all: that is the customer's side, not ours).
    logged = "\n".join(
        record.getMessage() for record in caplog.records if not record.name.startswith("httpx")
    )
    assert f"/t/{ticket.reference}" in logged  # the access log is there ...
    assert "/console/password/***" in logged
    for secret in (token, "guessed-token", key, link_token, PASSWORD, "a wrong password", session):
        assert secret not in logged  # ... without any secret
    events = " ".join(e.data + e.actor for e in await rows(app, TicketEvent))
    for secret in (token, key, link_token, PASSWORD, session):
        assert secret not in events


async def test_revoking_a_customers_link_mails_a_new_one(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    ticket = await submit_inquiry(app)
    tickets = app.state.helpdesk.tickets
    old = tickets.urls.status(ticket)
    assert (await client.get(old)).status_code == 200
    agent = await console_agent(app)
    await tickets.revoke_customer_link(ticket, Actor.agent(agent, channel=Channel.web))
    current = await the_ticket(app, ticket.reference)
    assert (await client.get(old)).status_code == 404
    new = tickets.urls.status(current)
    assert new != old and (await client.get(new)).status_code == 200
    [mail] = await rows(app, Outbox, Outbox.kind == "customer_link")
    assert mail.to_address == "hanako@example.jp" and tickets.urls.status_url(current) in mail.text
    assert old.split("token=")[1] not in mail.text
    assert not mail.automatic  # an agent decided it: no hourly cap applies
    [event] = await rows(app, TicketEvent, TicketEvent.kind == "customer_link_revoked")
    assert event.actor == agent.email
    # The reply address is unchanged: it names the ticket, the sender decides the trust.
    assert tickets.access.reply_address(current) == tickets.access.reply_address(ticket)
    system = Actor(ActorRole.system, "main.py", Channel.system)
    await tickets.revoke_customer_link(current, system)
    assert (await client.get(new)).status_code == 404


async def test_agents_pages_carry_no_store_and_the_csp(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    await console_agent(app)
    await log_in(client)
    for path in ("/console", "/console/login"):
        response = await client.get(path)
        assert response.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in response.headers["content-security-policy"]
