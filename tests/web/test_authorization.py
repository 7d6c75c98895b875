"""Every route has an access rule, and every rule holds (issue 10, #9).

The test walks the routing table itself (through mounts): a route added without a line in
``helpdesk.web.authorization.ROUTE_ACCESS`` fails here, and so does a rule its handler does
not enforce. Unsafe routes are walked too: a cross-site request is refused by every one of
them, and one without the CSRF token is refused by its handler (never by the middleware's
fail-closed net, which would mean the handler forgot to check).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from helpdesk.app import CSRF_EXEMPT
from helpdesk.db import utcnow
from helpdesk.models import (
    AgentRole,
    Attachment,
    Customer,
    Outbox,
    PrivacyRequestKind,
    TicketStatus,
)
from helpdesk.replies.saved import SavedReplyIn
from helpdesk.security import SAFE_METHODS
from helpdesk.tickets import Actor, Channel, Reply, SetStatus
from helpdesk.web.authorization import ROUTE_ACCESS, Access
from tests.helpers import (
    add_agent,
    api_defect,
    csrf_token,
    logged_in_client,
    rows,
    submit_inquiry,
    the_ticket,
)

CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}


def walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, method) the app answers; HEAD goes with GET."""
    for route in routes:
        if isinstance(route, Mount):
            inner = route.routes
            if inner:
                yield from walk(inner, prefix + route.path)
            else:  # an app of its own (the static files)
                yield prefix + route.path, "GET"
        elif isinstance(route, Route):
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    yield prefix + route.path, method
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")


def test_every_route_has_exactly_one_access_rule(app: Starlette) -> None:
    found = list(walk(app.routes))
    assert len(found) == len(set(found))
    missing = sorted(set(found) - set(ROUTE_ACCESS))
    assert not missing, f"routes without an access rule in ROUTE_ACCESS: {missing}"
    stale = sorted(set(ROUTE_ACCESS) - set(found))
    assert not stale, f"rules for routes that do not exist: {stale}"


def test_the_walk_finds_a_route_without_a_rule(app: Starlette) -> None:
    """The check above can fail: a route added without a rule is reported."""

    async def nothing(request: Any) -> Any:
        raise AssertionError

    extra = [*app.routes, Mount("/extra", routes=[Route("/new", nothing, methods=["POST"])])]
    assert ("/extra/new", "POST") in set(walk(extra)) - set(ROUTE_ACCESS)


def test_only_the_ticket_api_is_exempt_from_the_csrf_middleware() -> None:
    assert CSRF_EXEMPT == (("POST", "/api/tickets"),)
    assert ROUTE_ACCESS[("/api/tickets", "POST")] is Access.api


@dataclass
class World:
    """A ticket with photos, and the secrets that open its pages."""

    values: dict[str, str]
    token: str
    kept_sig: str
    password_token: str
    customer_name: str
    csat_path: str
    csat_params: dict[str, str]
    #: Query parameters that open each signed route without a token in its path.
    signed_params: dict[str, dict[str, str]]

    def path(self, template: str) -> str:
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: self.values[m[1]], template)


@pytest.fixture
async def world(client: httpx.AsyncClient, app: Starlette) -> World:
    helpdesk = app.state.helpdesk
    created = await api_defect(client, app)
    ticket = await the_ticket(app, created["reference"])
    [first, *_] = await rows(app, Attachment)
    agent, password_token = await helpdesk.accounts.add("new@interiorltd.jp", "新人")
    # A saved reply, and a reply of the new agent waiting for approval, for their pages.
    owner, _ = await helpdesk.accounts.add("owner@interiorltd.jp", "店長", role=AgentRole.admin)
    saved = await helpdesk.saved_replies.save(SavedReplyIn("お詫び", "{お客様名} 様"), by=owner)
    agent = await helpdesk.accounts.set_needs_approval(agent.id, True, by=owner)
    held = await helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), [Reply("確認いたします。")]
    )
    assert held.awaiting_approval is not None
    # Another ticket, resolved, whose customer mail carries the survey's signed links (the
    # first one's customer writes again during the walk, which reopens it).
    surveyed = await the_ticket(app, (await api_defect(client, app))["reference"])
    resolver = await add_agent(app)
    resolved = await helpdesk.tickets.apply(
        surveyed, Actor.agent(resolver, channel="web"), [SetStatus(TicketStatus.resolved)]
    )
    assert resolved.ok, resolved.problems
    mails = await rows(app, Outbox, Outbox.ticket_id == surveyed.id)
    [link] = [found for m in mails if (found := re.search(r"/csat/1\?(\S+)", m.text))]
    csat_params = dict(pair.split("=", 1) for pair in link[1].split("&"))
    # A customer's confirmed request for a copy, built: its confirmation and download links.
    [customer] = await rows(app, Customer, Customer.id == ticket.customer_id)
    confirm = helpdesk.privacy.confirm_token(
        PrivacyRequestKind.export, customer, utcnow() + timedelta(hours=1)
    )
    request_made = await helpdesk.privacy.confirm(confirm, client=None)
    built = await helpdesk.privacy.build_export(request_made.id)
    # Another customer's erasure request, which an admin may carry out.
    other = await submit_inquiry(app, email="other@example.jp", name="別の 客")
    [other_customer] = await rows(app, Customer, Customer.id == other.customer_id)
    erasure = await helpdesk.privacy.open_request(
        PrivacyRequestKind.erasure, other_customer, actor="system"
    )
    return World(
        values={
            "reference": ticket.reference,
            "digest": first.thumb_digest,
            "entry_id": "other-receipt",
            "token": password_token,
            "reply_id": str(saved.id),
            "pending_id": str(held.awaiting_approval),
            "agent_id": str(agent.id),
            "resolution": "1",
            "table": "daily",
            "request_id": str(erasure.id),
            # Corrected with no field given: nothing changes (the other one is erased first).
            "customer_id": str(ticket.customer_id),
        },
        token=helpdesk.tickets.access.access_token(ticket),
        kept_sig=helpdesk.tickets.access.kept_thumb_signature(first.thumb_digest),
        password_token=password_token,
        customer_name=ticket.customer_name,
        csat_path=f"/t/{surveyed.reference}/csat/1",
        csat_params=csat_params,
        signed_params={
            "/photos/kept/{digest}": {
                "sig": helpdesk.tickets.access.kept_thumb_signature(first.thumb_digest)
            },
            "/privacy/confirm": {"token": confirm},
            "/privacy/export": {"token": helpdesk.privacy.download_token(built)},
        },
    )


@pytest.fixture
async def agent_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in_client(app) as http:
        yield http


@pytest.fixture
async def admin_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in_client(app, admin=True) as http:
        yield http


async def request(
    http: httpx.AsyncClient, method: str, path: str, *, csrf: bool = True, **kwargs: Any
) -> httpx.Response:
    """GET, or POST with the client's CSRF token (the rule, not the token, is tested)."""
    if method == "GET":
        return await http.get(path, **kwargs)
    data = {
        "body": "届いた商品について確認です。",
        "title": f"確認 {method} {path}",  # saved replies' titles are unique
        **kwargs.pop("data", {}),
    }
    if csrf:
        data["csrf_token"] = await csrf_token(http)
    return await http.request(method, path, data=data, **kwargs)


def sent_to_login(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/console/login")


CHECKED: set[Access] = set()


async def test_every_rule_holds(
    client: httpx.AsyncClient,
    app: Starlette,
    world: World,
    agent_client: httpx.AsyncClient,
    admin_client: httpx.AsyncClient,
) -> None:
    # Logging out last: the agent's client stays logged in for every other check.
    for (template, method), rule in sorted(
        ROUTE_ACCESS.items(), key=lambda item: item[0] == ("/console/logout", "POST")
    ):
        path = world.path(template)
        where = f"{method} {template} ({rule})"
        if rule is Access.public:
            response = await request(client, method, path)
            assert response.status_code not in (401, 403), where
            assert not sent_to_login(response), where
        elif rule is Access.static:
            assert (await client.get(f"{path}/style.css")).status_code == 200, where
        elif rule is Access.customer:
            anonymous = await request(client, method, path)
            assert anonymous.status_code == 404, where
            wrong = await request(client, method, path, params={"token": "forged"})
            assert wrong.status_code == 404, where
            agent = await request(agent_client, method, path)  # agents use the console
            assert agent.status_code == 404, where
            allowed = await request(client, method, path, params={"token": world.token})
            assert allowed.status_code in (200, 303), where
        elif rule is Access.signed:
            if "{token}" in template:
                wrong, right = path.replace(world.password_token, "forged"), path
                params: dict[str, str] = {}
            elif "/csat/" in template:
                wrong = right = world.csat_path
                params = world.csat_params
            else:
                wrong, right, params = path, path, world.signed_params[template]
            assert (await request(client, method, wrong)).status_code == 404, where
            allowed = await request(client, method, right, params=params)
            assert allowed.status_code in (200, 422), where
        elif rule in (Access.agent, Access.admin):
            anonymous = await request(client, method, path)
            assert sent_to_login(anonymous), where
            if method == "GET":
                as_json = await client.get(path, headers={"Accept": "application/json"})
                assert as_json.status_code == 401, where
            agent = await request(agent_client, method, path)
            if rule is Access.admin:
                assert agent.status_code == 403, where
                admitted = await request(admin_client, method, path)
                if method == "GET":
                    assert admitted.status_code == 200, where
                else:  # let in: done (200, 303), or told what the form lacks (409, 422)
                    assert admitted.status_code in (200, 303, 409, 422), where
                    assert not sent_to_login(admitted), where
            elif method == "GET":
                assert agent.status_code == 200, where
            elif template == "/console/logout":
                assert agent.status_code == 303 and not sent_to_login(
                    await agent_client.get("/console/login")
                ), where
            else:  # the ticket page's actions: let in, then done (303) or told what is wrong
                assert agent.status_code in (200, 303, 409, 422), where
                assert not sent_to_login(agent), where
        elif rule is Access.redirect:
            response = await client.get(path, params={"key": "anything"})
            assert response.status_code == 303, where
            target = response.headers["location"]
            assert "key" not in target and world.customer_name not in response.text, where
            console = [t for t in ROUTE_ACCESS if re.fullmatch(_pattern(t[0]), target)]
            assert console and all(ROUTE_ACCESS[t] is Access.agent for t in console), where
        elif rule is Access.api:
            app.state.helpdesk.settings.api_keys = "the-shops-key"
            try:
                keyless = await client.post(path, json={})
                assert keyless.status_code == 401, where
                wrong = await client.post(path, json={}, headers={"X-API-Key": "wrong"})
                assert wrong.status_code == 401, where
                keyed = await client.post(path, json={}, headers={"X-API-Key": "the-shops-key"})
                assert keyed.status_code == 422, where  # let in, then told what is missing
            finally:
                app.state.helpdesk.settings.api_keys = ""
        elif rule is Access.monitoring:
            # The test client is 127.0.0.1 (loopback): let in; anyone else is refused.
            assert (await request(client, method, path)).status_code == 200, where
            far = httpx.ASGITransport(app=app, client=("203.0.113.9", 4321))
            async with httpx.AsyncClient(transport=far, base_url="http://testserver") as http:
                assert (await http.get(path)).status_code == 403, where
                app.state.helpdesk.settings.metrics_allow = "203.0.113.0/24"
                try:
                    assert (await http.get(path)).status_code == 200, where
                finally:
                    app.state.helpdesk.settings.metrics_allow = ""
        else:
            raise AssertionError(f"no check for {rule}")
        CHECKED.add(rule)
    assert set(Access) == CHECKED


def _pattern(template: str) -> str:
    return re.sub(r"\{\w+(?::\w+)?\}", "[^/]+", template)


async def test_every_unsafe_route_refuses_cross_site_requests_and_missing_tokens(
    client: httpx.AsyncClient,
    app: Starlette,
    world: World,
    admin_client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unsafe = [(p, m) for p, m in walk(app.routes) if m not in SAFE_METHODS]
    assert unsafe  # the forms, the API, the console's login and logout ...
    for template, method in unsafe:
        path = world.path(template)
        params = {"token": world.token}
        if "/csat/" in template:  # a valid survey link: only the CSRF token is missing
            path, params = world.csat_path, world.csat_params
        # Multipart, the body a cross-site form can send without asking the browser.
        files = {"nothing": ("", b"")}
        cross = await admin_client.request(
            method, path, params=params, files=files, headers=CROSS_SITE
        )
        assert cross.status_code == 403, f"cross-site {method} {template}"
        if (method, template) in CSRF_EXEMPT:
            continue
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="helpdesk.csrf"):
            same_site = await admin_client.request(
                method,
                path,
                params=params,
                data={"helpful": "yes", "email": "x@example.jp", "password": "x" * 12},
                headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
            )
        # Refused (403, or the status page's 422 with its "expired page" message, which
        # keeps what the customer typed) ...
        assert same_site.status_code in (403, 422), f"no token: {method} {template}"
        # Refused by the handler itself: the middleware's net caught nothing.
        assert not [r for r in caplog.records if r.name == "helpdesk.csrf"], template
