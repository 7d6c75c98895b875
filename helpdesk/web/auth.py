"""Agents' sign-in: the login, logout and password pages, and ``require_agent``.

Handlers of agents' pages start with ``agent = await require_agent(request)`` (or
``admin=True``): without a valid session it raises ``LoginRequired``, which the app answers
with a redirect to the login page (HTML; back to the page after login) or 401 (JSON and
``/api/``); an agent who is not an admin gets 403.

The session cookie (``helpdesk.agents.sessions``) is written by ``AgentSessionMiddleware``
when a handler logs someone in or out, or when a session in use is due to be re-signed.

Login failures all get one message, whatever failed (unknown address, wrong password, no
password yet, disabled or removed agent), after about the same time; repeated failures are
throttled per address typed and per client (``helpdesk.agents.throttle``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk.agents.accounts import PasswordRefused
from helpdesk.agents.passwords import MAX_LENGTH, PASSWORD_RULES
from helpdesk.agents.sessions import (
    ABSOLUTE,
    COOKIE,
    IDLE,
    REFRESH_AFTER,
    SECURE_COOKIE,
    SessionData,
    cookie_header,
)
from helpdesk.agents.urls import LOGIN, LOGOUT, safe_next
from helpdesk.models import Agent
from helpdesk.security import UNVERIFIED_MESSAGE, client_ip, verify_csrf

LOGIN_FAILED = "メールアドレスまたはパスワードが正しくありません。"
NEED_LOGIN = "このページを開くには、ログインしてください。"
NEED_ADMIN = "このページは管理者だけが利用できます。"
LINK_INVALID = (
    "このリンクは無効か、有効期限が切れています。"
    "お手数ですが、管理者に新しいリンクの発行を依頼してください。"
)
PASSWORDS_DIFFER = "確認のために入力したパスワードが一致しません。"
LOGGED_OUT = "ログアウトしました。"
# Small forms: an address, a password, the token and the page to go back to.
MAX_FIELDS = 10
_STATE_KEY = "madoguchi_agent_session"
_AGENT_KEY = "madoguchi_agent"


class LoginRequired(HTTPException):
    """No valid session: HTML gets a redirect to the login page, JSON a 401."""

    def __init__(self, next_path: str) -> None:
        super().__init__(401, NEED_LOGIN)
        self.next_path = next_path


def _helpdesk(connection: HTTPConnection) -> Any:
    return connection.app.state.helpdesk


# -- the session cookie ----------------------------------------------------------------------


@dataclass
class _SessionState:
    https: bool
    #: A new cookie value to set, or "" to clear the cookie; None: leave it.
    outgoing: str | None = None


def _scope_state(connection: HTTPConnection) -> dict[str, Any]:
    return connection.scope.setdefault("state", {})


def _session_state(connection: HTTPConnection) -> _SessionState:
    state = _scope_state(connection).get(_STATE_KEY)
    if state is None:
        raise RuntimeError("AgentSessionMiddleware is not installed")
    return state


def cookie_name(connection: HTTPConnection) -> str:
    return SECURE_COOKIE if _session_state(connection).https else COOKIE


class AgentSessionMiddleware:
    """Set or clear the agent's session cookie when a handler asked for it (pure ASGI).

    ``https``: the public base URL is https (behind a proxy the request itself may not
    be); the request's own scheme counts too. Over https the cookie is ``Secure`` and named
    with the ``__Host-`` prefix.
    """

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = _SessionState(https=self.https or scope.get("scheme") == "https")
        scope.setdefault("state", {})[_STATE_KEY] = state

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and state.outgoing is not None:
                name = SECURE_COOKIE if state.https else COOKIE
                max_age = int(IDLE.total_seconds()) if state.outgoing else 0
                value = cookie_header(name, state.outgoing, secure=state.https, max_age=max_age)
                headers = [*message.get("headers", []), (b"set-cookie", value.encode("latin-1"))]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def start_session(request: Request, agent: Agent) -> None:
    """Log ``agent`` in: the response carries a new session cookie."""
    now = int(time.time())
    assert agent.id is not None
    data = SessionData(agent.id, agent.session_version, now, now)
    _session_state(request).outgoing = _helpdesk(request).session_codec.dumps(data)
    _scope_state(request)[_AGENT_KEY] = agent


def end_session(request: Request) -> None:
    """The response clears the session cookie."""
    _session_state(request).outgoing = ""
    _scope_state(request)[_AGENT_KEY] = None


async def current_agent(request: HTTPConnection) -> Agent | None:
    """The agent logged in with this request's session cookie, or None (cached per request).

    An active session is re-signed when ``REFRESH_AFTER`` has passed since it was last, so
    that it lasts ``IDLE`` from the last use (and never beyond ``ABSOLUTE`` from login).
    """
    cached = _scope_state(request).get(_AGENT_KEY, ...)
    if cached is not ...:
        return cached
    helpdesk = _helpdesk(request)
    now = time.time()
    data = helpdesk.session_codec.loads(request.cookies.get(cookie_name(request)), now=now)
    agent: Agent | None = None
    if data is not None:
        agent = await helpdesk.accounts.for_session(data.agent_id, data.version)
    if (
        agent is not None
        and data is not None
        and now - data.seen_at > REFRESH_AFTER.total_seconds()
    ):
        renewed = SessionData(data.agent_id, data.version, data.issued_at, int(now))
        _session_state(request).outgoing = helpdesk.session_codec.dumps(renewed)
    _scope_state(request)[_AGENT_KEY] = agent
    return agent


async def require_agent(request: HTTPConnection, *, admin: bool = False) -> Agent:
    """The logged-in agent, for a handler of an agents' page.

    Raises:
        LoginRequired: no valid session (the app redirects HTML to the login page).
        HTTPException: 403 when ``admin`` is asked for and the agent is not one.
    """
    agent = await current_agent(request)
    if agent is None:
        path = request.url.path
        if request.url.query:
            path += "?" + request.url.query
        raise LoginRequired(path)
    if admin and not agent.is_admin:
        raise HTTPException(403, NEED_ADMIN)
    return agent


# -- pages -----------------------------------------------------------------------------------


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Any:
    return _helpdesk(request).templates.TemplateResponse(
        request, template, context, status_code=status
    )


def _form(request: Request) -> Any:
    """``async with _form(request) as form``: a small urlencoded (or multipart) form."""
    return request.form(max_files=0, max_fields=MAX_FIELDS)


def _login_page(
    request: Request,
    *,
    email: str = "",
    next_path: str = "",
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> Response:
    context = {
        "email": email,
        "next": safe_next(next_path),
        "error": error,
        "notice": notice,
        "max_password_length": MAX_LENGTH,
    }
    return _render(request, "console/login.html", context, status)


async def login_page(request: Request) -> Response:
    next_path = request.query_params.get("next", "")
    if await current_agent(request) is not None:
        return RedirectResponse(safe_next(next_path), status_code=303)
    notice = LOGGED_OUT if request.query_params.get("logged_out") == "1" else ""
    return _login_page(request, next_path=next_path, notice=notice)


async def login(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    async with _form(request) as form:
        email = str(form.get("email") or "").strip()[:254]
        password = str(form.get("password") or "")
        next_path = str(form.get("next") or "")
        if not await verify_csrf(request, form):
            return _login_page(
                request, email=email, next_path=next_path, error=UNVERIFIED_MESSAGE, status=403
            )
    if not email or not password:
        error = "メールアドレスとパスワードを入力してください。"
        return _login_page(request, email=email, next_path=next_path, error=error, status=422)
    result = await helpdesk.accounts.login(email, password, client=client_ip(request))
    if result.retry_after is not None:
        minutes = max(1, math.ceil(result.retry_after / 60))
        error = (
            "ログインの失敗が続いたため、しばらくログインできません。"
            f"約{minutes}分後にもう一度お試しください。"
        )
        return _login_page(request, email=email, next_path=next_path, error=error, status=429)
    if result.agent is None:
        return _login_page(
            request, email=email, next_path=next_path, error=LOGIN_FAILED, status=401
        )
    start_session(request, result.agent)
    return RedirectResponse(safe_next(next_path), status_code=303)


async def logout(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    async with _form(request) as form:
        if not await verify_csrf(request, form):
            raise HTTPException(403, UNVERIFIED_MESSAGE)
    agent = await current_agent(request)
    if agent is not None:
        await helpdesk.accounts.logout(agent, client=client_ip(request))
    end_session(request)
    return RedirectResponse(f"{LOGIN}?logged_out=1", status_code=303)


def _password_page(
    request: Request,
    agent: Agent,
    token: str,
    *,
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "target": agent,
        "action": _helpdesk(request).console_urls.password(token),
        "rules": PASSWORD_RULES,
        "errors": errors or [],
        "max_password_length": MAX_LENGTH,
    }
    return _render(request, "console/password.html", context, status)


async def password_page(request: Request) -> Response:
    token = request.path_params["token"]
    agent = await _helpdesk(request).accounts.by_password_token(token)
    if agent is None:
        raise HTTPException(404, LINK_INVALID)
    return _password_page(request, agent, token)


async def set_password(request: Request) -> Response:
    helpdesk = _helpdesk(request)
    token = request.path_params["token"]
    async with _form(request) as form:
        password = str(form.get("password") or "")
        confirmation = str(form.get("password_confirmation") or "")
        verified = await verify_csrf(request, form)
    agent = await helpdesk.accounts.by_password_token(token)
    if agent is None:
        raise HTTPException(404, LINK_INVALID)
    if not verified:
        return _password_page(request, agent, token, errors=[UNVERIFIED_MESSAGE], status=403)
    if password != confirmation:
        return _password_page(request, agent, token, errors=[PASSWORDS_DIFFER], status=422)
    try:
        updated = await helpdesk.accounts.set_password(token, password, client=client_ip(request))
    except PasswordRefused as exc:
        return _password_page(request, agent, token, errors=exc.problems, status=422)
    if updated is None:
        raise HTTPException(404, LINK_INVALID)
    start_session(request, updated)
    return RedirectResponse(helpdesk.console_urls.home(), status_code=303)


routes = [
    Route(LOGIN, login_page, methods=["GET"]),
    Route(LOGIN, login, methods=["POST"]),
    Route(LOGOUT, logout, methods=["POST"]),
    Route("/console/password/{token}", password_page, methods=["GET"]),
    Route("/console/password/{token}", set_password, methods=["POST"]),
]

__all__ = [
    "ABSOLUTE",
    "AgentSessionMiddleware",
    "LoginRequired",
    "current_agent",
    "end_session",
    "require_agent",
    "routes",
    "start_session",
]
