"""Agents' accounts in the console: password links, login, sessions, logout, roles,
disabling and removal, the links in notification mails (issue 10 #2, issue 7 #19)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from starlette.applications import Starlette

from helpdesk.agents.sessions import SessionData
from helpdesk.db import utcnow
from helpdesk.models import Agent, Outbox, TicketEvent
from helpdesk.tickets import Actor, Assign, Channel
from tests.helpers import (
    PASSWORD,
    api_defect,
    console_agent,
    log_in,
    log_out,
    rows,
    soup,
    submit_inquiry,
    the_ticket,
)

SATO = "sato@interiorltd.jp"


async def events(app: Starlette, kind: str) -> list[TicketEvent]:
    return await rows(app, TicketEvent, TicketEvent.kind == kind)


def session_cookie(response: httpx.Response) -> str:
    [cookie] = [c for c in response.headers.get_list("set-cookie") if "madoguchi_agent" in c]
    return cookie


async def test_the_one_time_link_sets_a_password_and_logs_the_agent_in(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    accounts = app.state.helpdesk.accounts
    _agent, token = await accounts.add(SATO, "佐藤")
    link = app.state.helpdesk.console_urls.password(token)
    page = soup(await client.get(link))
    assert page.html["lang"] == "ja"
    rules = page.select_one(".rules").get_text()
    assert "12文字以上" in rules and "メールアドレス" in rules
    csrf = page.select_one("input[name=csrf_token]")["value"]

    short = await client.post(
        link, data={"csrf_token": csrf, "password": "short", "password_confirmation": "short"}
    )
    assert short.status_code == 422
    assert "12文字以上" in soup(short).select_one(".error-summary").get_text()
    assert "short" not in short.text  # a password is never echoed back
    mine = "sato@interiorltd.jp-2026"
    personal = await client.post(
        link, data={"csrf_token": csrf, "password": mine, "password_confirmation": mine}
    )
    assert "メールアドレスやお名前" in soup(personal).select_one(".error-summary").get_text()
    differ = await client.post(
        link, data={"csrf_token": csrf, "password": PASSWORD, "password_confirmation": "x" * 12}
    )
    assert "一致しません" in soup(differ).select_one(".error-summary").get_text()
    forged = await client.post(
        link, data={"csrf_token": "forged", "password": PASSWORD, "password_confirmation": PASSWORD}
    )
    assert forged.status_code == 403

    done = await client.post(
        link, data={"csrf_token": csrf, "password": PASSWORD, "password_confirmation": PASSWORD}
    )
    assert done.status_code == 303 and done.headers["location"] == "/console"
    assert "佐藤" in soup(await client.get("/console")).select_one(".agent-name").get_text()
    # One use: the link is spent, and the database never held the token itself.
    again = await client.get(link)
    assert again.status_code == 404 and "無効か、有効期限が切れています" in again.text
    [stored] = await rows(app, Agent, Agent.email == SATO)
    assert stored.password_token_hash is None and token not in (stored.password_hash or "")
    assert stored.password_hash and stored.password_hash.startswith("$argon2id$")
    assert [e.actor for e in await events(app, "agent_password_set")] == [SATO]


async def test_an_expired_or_unknown_link_opens_nothing(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    accounts = app.state.helpdesk.accounts
    _agent, token = await accounts.add(SATO, "佐藤")
    accounts.clock = lambda: utcnow() + accounts_link_lifetime() + _minute()
    assert (await client.get(f"/console/password/{token}")).status_code == 404
    assert (await client.get("/console/password/not-a-token")).status_code == 404
    assert (await client.get("/console/password/" + "é" * 10)).status_code == 404


def accounts_link_lifetime():  # type: ignore[no-untyped-def]
    from helpdesk.agents import LINK_LIFETIME

    return LINK_LIFETIME


def _minute():  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(minutes=1)


@pytest.mark.parametrize("https", [False, True])
async def test_login_sets_a_strict_session_cookie(app: Starlette, https: bool) -> None:
    await console_agent(app)
    if https:
        app.state.helpdesk.settings.base_url = "https://help.example.jp"
    # The middleware read the base URL when the app was built: rebuild it as serve would.
    from helpdesk.app import create_app

    application = create_app(app.state.helpdesk.settings) if https else app
    if https:
        application.state.helpdesk = app.state.helpdesk
    transport = httpx.ASGITransport(app=application)
    base = "https://help.example.jp" if https else "http://testserver"
    async with httpx.AsyncClient(transport=transport, base_url=base) as http:
        response = await log_in(http)
        assert response.status_code == 303 and response.headers["location"] == "/console"
        cookie = session_cookie(response)
        name, _, rest = cookie.partition("=")
        flags = {part.strip().split("=")[0].lower() for part in rest.split(";")[1:]}
        assert {"httponly", "samesite", "path", "max-age"} <= flags
        assert "SameSite=Lax" in cookie
        assert ("secure" in flags) is https
        assert name == ("__Host-madoguchi_agent" if https else "madoguchi_agent")
        assert (await http.get("/console")).status_code == 200
    [login] = await events(app, "agent_login")
    assert login.actor == SATO and json.loads(login.data)["client"]


@pytest.mark.parametrize(
    ("email", "password", "why"),
    [
        (SATO, "wrong password!!", "wrong password"),
        ("nobody@interiorltd.jp", PASSWORD, "unknown address"),
        ("suzuki@interiorltd.jp", PASSWORD, "disabled agent"),
        ("kato@interiorltd.jp", PASSWORD, "no password set yet"),
    ],
)
async def test_every_failed_login_gets_the_same_answer(
    client: httpx.AsyncClient, app: Starlette, email: str, password: str, why: str
) -> None:
    await console_agent(app)
    await console_agent(app, "suzuki@interiorltd.jp", "鈴木")
    await app.state.helpdesk.accounts.disable("suzuki@interiorltd.jp")
    await app.state.helpdesk.accounts.add("kato@interiorltd.jp", "加藤")
    response = await log_in(client, email, password)
    assert response.status_code == 401, why
    page = soup(response)
    assert page.select_one(".error-summary").get_text() == (
        "メールアドレスまたはパスワードが正しくありません。"
    )
    assert page.select_one("input[name=email]")["value"] == email  # kept for the next try
    assert "madoguchi_agent" not in response.headers.get("set-cookie", "")
    assert (await client.get("/console")).status_code == 303
    [failed] = await events(app, "agent_login_failed")
    # What a stranger typed is not recorded; an agent's own address is.
    assert failed.actor == (email if email != "nobody@interiorltd.jp" else "unknown")
    assert password not in failed.data


async def test_failed_logins_are_throttled_alike_for_known_and_unknown_addresses(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    await console_agent(app)
    answers = {}
    for email in (SATO, "nobody@interiorltd.jp"):
        codes = [(await log_in(client, email, "wrong password!!")).status_code for _ in range(6)]
        answers[email] = codes
    assert answers[SATO] == answers["nobody@interiorltd.jp"] == [401] * 5 + [429]
    refused = await log_in(client, SATO, PASSWORD)  # even the right password waits now
    assert refused.status_code == 429
    assert "しばらくログインできません" in soup(refused).select_one(".error-summary").get_text()
    # Another account from the same client is not locked out by these.
    await console_agent(app, "tanaka@interiorltd.jp", "田中")
    assert (await log_in(client, "tanaka@interiorltd.jp")).status_code == 303


async def test_logout_ends_the_session_even_for_a_copy_of_the_cookie(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    await console_agent(app)
    await log_in(client)
    copied = dict(client.cookies)
    response = await log_out(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?logged_out=1"
    assert "Max-Age=0" in session_cookie(response)
    assert "ログアウトしました" in (await client.get(response.headers["location"])).text
    client.cookies.clear()
    client.cookies.update(copied)
    assert (await client.get("/console")).status_code == 303
    assert [e.actor for e in await events(app, "agent_logout")] == [SATO]


async def test_disabling_resetting_and_removing_end_sessions(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    accounts = app.state.helpdesk.accounts
    await console_agent(app)
    for change in ("disable", "reset_password", "remove"):
        if change != "disable":
            await accounts.enable(SATO) if change == "reset_password" else None
        await log_in(client)
        assert (await client.get("/console")).status_code == 200, change
        await getattr(accounts, change)(SATO)
        assert (await client.get("/console")).status_code == 303, change
        if change == "reset_password":
            # The old password no longer works; a new link sets a new one.
            assert (await log_in(client)).status_code == 401
            _agent, token = await accounts.reset_password(SATO)
            await accounts.set_password(token, PASSWORD, client="127.0.0.1")
    [removed] = await rows(app, Agent, Agent.email == SATO)
    assert removed.removed_at is not None and removed.password_hash is None
    assert (await log_in(client)).status_code == 401
    kinds = [e.kind for e in await rows(app, TicketEvent) if e.kind.startswith("agent_")]
    for kind in ("agent_added", "agent_disabled", "agent_enabled", "agent_removed"):
        assert kind in kinds


async def test_a_session_ends_after_idle_time_and_after_its_absolute_lifetime(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    from helpdesk.agents.sessions import ABSOLUTE, IDLE

    agent = await console_agent(app)
    codec = app.state.helpdesk.session_codec
    now = int(time.time())
    cases = {
        "fresh": (SessionData(agent.id, agent.session_version, now - 60, now - 60), 200),
        "idle": (
            SessionData(agent.id, agent.session_version, now - 100, now - IDLE.seconds - 60),
            303,
        ),
        "too old": (
            SessionData(
                agent.id, agent.session_version, now - int(ABSOLUTE.total_seconds()) - 1, now
            ),
            303,
        ),
        "old version": (SessionData(agent.id, agent.session_version - 1, now, now), 303),
    }
    for name, (data, status) in cases.items():
        client.cookies.set("madoguchi_agent", codec.dumps(data))
        assert (await client.get("/console")).status_code == status, name
    # A forged cookie (another agent's id, signed by no one) opens nothing either.
    client.cookies.set("madoguchi_agent", "WzEsMSwxLDFd.forged")
    assert (await client.get("/console")).status_code == 303


async def test_a_used_session_is_renewed(client: httpx.AsyncClient, app: Starlette) -> None:
    agent = await console_agent(app)
    codec = app.state.helpdesk.session_codec
    now = int(time.time())
    client.cookies.set(
        "madoguchi_agent",
        codec.dumps(SessionData(agent.id, agent.session_version, now - 3600, now - 3600)),
    )
    response = await client.get("/console")
    assert response.status_code == 200
    renewed = codec.loads(session_cookie(response).split(";")[0].split("=", 1)[1], now=now)
    assert renewed.issued_at == now - 3600 and renewed.seen_at >= now


@pytest.mark.parametrize(
    ("next_path", "landing"),
    [
        ("/console/t/HD-26-00001", "/console/t/HD-26-00001"),
        ("//evil.example/console", "/console"),
        ("https://evil.example/", "/console"),
        ("/\\evil.example", "/console"),
    ],
)
async def test_login_goes_back_only_to_a_page_of_this_site(
    client: httpx.AsyncClient, app: Starlette, next_path: str, landing: str
) -> None:
    await console_agent(app)
    response = await log_in(client, next_path=next_path)
    assert response.headers["location"] == landing


async def test_the_notification_link_asks_for_login_then_opens_the_ticket(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    created = await api_defect(client, app)
    notice = next(m for m in await rows(app, Outbox) if m.kind == "ticket_notification")
    link = next(w for w in notice.text.split() if "/console/t/" in w)
    assert link == f"http://testserver/console/t/{created['reference']}"
    assert "key=" not in notice.text and "key=" not in (notice.html or "")
    path = httpx.URL(link).path
    asked = await client.get(path)
    assert asked.status_code == 303
    assert (
        asked.headers["location"] == f"/console/login?next=%2Fconsole%2Ft%2F{created['reference']}"
    )
    # A script (JSON) gets 401, not a login page.
    assert (await client.get(path, headers={"Accept": "application/json"})).status_code == 401
    await console_agent(app)
    login_page = soup(await client.get(asked.headers["location"]))
    assert login_page.select_one("input[name=next]")["value"] == path
    response = await log_in(client, next_path=path)
    assert response.headers["location"] == path
    page = soup(await client.get(path))
    assert "山田 花子" in page.select_one(".status").get_text()
    photo = page.select_one(".thumbs img")["src"]
    assert photo.startswith(f"/console/t/{created['reference']}/photos/")
    assert (await client.get(photo)).headers["content-type"] == "image/jpeg"
    client.cookies.clear()
    assert (await client.get(photo)).status_code == 303  # photos too need the login


async def test_old_key_links_only_lead_to_the_login(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    ticket = await submit_inquiry(app)
    key = app.state.helpdesk.tickets.access.agent_key(ticket)
    for path in (f"/agent/t/{ticket.reference}", f"/agent/t/{ticket.reference}/photos/abc"):
        response = await client.get(path, params={"key": key}, follow_redirects=True)
        assert response.url.path == "/console/login"
        assert key not in str(response.url)  # the key is dropped, not carried along
        assert ticket.customer_name not in response.text


async def test_admins_see_the_agents_and_agents_do_not(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    await console_agent(app)
    await console_agent(app, "boss@interiorltd.jp", "店長", admin=True)
    await log_in(client)
    page = soup(await client.get("/console"))
    assert [a.get_text() for a in page.select(".console-nav ul a")] == ["キュー"]
    refused = await client.get("/console/agents")
    assert refused.status_code == 403 and "管理者" in refused.text
    await log_out(client)
    await log_in(client, "boss@interiorltd.jp")
    page = soup(await client.get("/console"))
    assert "設定" in [a.get_text() for a in page.select(".console-nav ul a")]
    agents = soup(await client.get("/console/agents"))
    listed = [td.get_text() for td in agents.select("table.agents td:nth-of-type(2)")]
    assert listed == [SATO, "boss@interiorltd.jp"]


async def test_the_queue_lists_the_oldest_tickets_first(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """Sorted by age, the longest waiting first (issue 10 item 3; tests/web/test_queue.py
    has the filters)."""
    first = await submit_inquiry(app)
    second = await submit_inquiry(app, email="ichiro@example.jp", name="佐藤 一郎")
    await console_agent(app)
    await log_in(client)
    page = soup(await client.get("/console"))
    links = [a.get_text() for a in page.select("table.queue td a")]
    assert links == [first.reference, second.reference]
    assert page.select_one("nav a[aria-current=page]").get_text() == "キュー"


async def test_disabled_and_removed_agents_act_by_mail_no_more(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    accounts = app.state.helpdesk.accounts
    await console_agent(app)
    await console_agent(app, "tanaka@interiorltd.jp", "田中")
    assert await tickets.agent_by_email(SATO) is not None
    await accounts.disable(SATO)
    assert await tickets.agent_by_email(SATO) is None
    ticket = await submit_inquiry(app)
    refused = await tickets.apply(ticket, Actor.system(), [Assign("佐藤")])
    assert refused.problems  # a disabled agent is not assigned
    await accounts.enable(SATO)
    tanaka = await tickets.agent_by_email("tanaka@interiorltd.jp")
    assert (
        await tickets.apply(ticket, Actor.agent(tanaka, channel=Channel.web), [Assign("佐藤")])
    ).ok
    _agent, unassigned = await accounts.remove(SATO)
    assert unassigned == [ticket.reference]
    current = await the_ticket(app, ticket.reference)
    assert current.assignee_id is None
    [event] = await rows(app, TicketEvent, TicketEvent.kind == "unassigned")
    assert event.ticket_id == ticket.id and json.loads(event.data)["from"] == SATO
    assert await tickets.agent_by_email(SATO) is None
    # The row stays: the audit trail's addresses still say who acted.
    assert [a.email for a in await rows(app, Agent)] == [SATO, "tanaka@interiorltd.jp"]
    # Adding the address again brings the agent back with a new link.
    agent, token = await accounts.add(SATO, "佐藤")
    assert agent.removed_at is None and token


async def test_role_changes_are_recorded_and_end_sessions(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    from helpdesk.models import AgentRole

    await console_agent(app)
    await log_in(client)
    await app.state.helpdesk.accounts.add(SATO, "佐藤", role=AgentRole.admin)
    assert (await client.get("/console")).status_code == 303
    [change] = await events(app, "agent_role_changed")
    assert json.loads(change.data) == {"agent": SATO, "old": "agent", "new": "admin"}


async def test_a_hash_with_old_parameters_is_replaced_at_login(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    from argon2 import PasswordHasher

    agent = await console_agent(app)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    async with app.state.helpdesk.sessions() as session:
        stored = await session.get(Agent, agent.id)
        stored.password_hash = weak
        await session.commit()
    assert (await log_in(client)).status_code == 303
    [current] = await rows(app, Agent, Agent.id == agent.id)
    assert current.password_hash != weak and "m=65536" in current.password_hash
