"""Request hardening: body size limit, CSRF tokens for HTML forms, per-IP rate limiting.

Body size limit
    ``BodySizeLimitMiddleware`` is pure ASGI so that it sees the body as it streams in and
    never buffers it. A declared ``Content-Length`` over the limit is refused with 413 before
    the app runs (so a client waiting on ``Expect: 100-continue`` never sends the body).
    A chunked body is counted as the app reads it; past the limit the app's ``receive()``
    raises, the middleware answers 413 itself (unless the app has already started its
    response) and every later ``receive()`` returns ``http.disconnect``. The server discards
    whatever the client still sends, so memory stays flat however large the upload is.

CSRF protection: checked in middleware for every unsafe request, fail-closed
    Every POST, PUT, PATCH and DELETE goes through ``CSRFMiddleware`` unless its (method,
    path) is in the app's explicit ``exempt`` list (routes with a scheme of their own: only
    ``POST /api/tickets``, whose callers identify with an API key and whose browser callers
    must carry the token, checked by its handler). Two checks, both by the middleware:

    1. **Where the request comes from**, before the app runs and without reading the body:
       ``Sec-Fetch-Site: cross-site`` or ``same-site``, or an ``Origin`` that is neither this
       host nor the configured base URL (``null`` included), gets 403 at once. Every
       current browser sends one of these headers with a form post, so a forged request
       from another site never reaches a handler.
    2. **The token (double submit with a signature)**: the cookie ``madoguchi_csrf`` holds a
       random value; the form carries ``HMAC-SHA256(secret, "madoguchi-csrf:" + cookie)``
       in the hidden field ``csrf_token`` (or the ``X-CSRF-Token`` header). A cross-site
       attacker can neither read the cookie nor compute the HMAC, and one able to plant a
       cookie (a sibling subdomain) cannot forge the matching token without the secret.
       The message is prefixed so that no other signature of the app passes for a token.

       Reading a form inside middleware would consume (or buffer) the body the endpoint
       streams, photos included, and would refuse an expired page without the form that
       keeps what the customer typed. So the handler reads its form and calls
       ``verify_csrf(request, form)`` where its order of checks puts it (the forms: rate
       limit peek, then the token, before any photo is decoded), answering a refusal with
       the form re-rendered. The middleware makes this **fail closed**: a response of a
       handler that never called ``verify_csrf``, or that answered with a success (below
       400) although the token did not match, is replaced by 403 (and logged as the
       programming error it is). A route that forgets the check is refused, never open;
       ``tests/web/test_authorization.py`` walks the routing table so that it also fails.

    ``CSRFMiddleware`` also sets the cookie (``HttpOnly; SameSite=Lax; Path=/``, plus
    ``Secure`` over https) on the response when ``csrf_token(request)`` had to create one.
    Templates call ``csrf_input(request)`` in every form; scripts read the token from the
    ``<meta name="csrf-token">`` of ``base.html`` and send it as ``X-CSRF-Token``.

    ``secret`` may be a string or a zero-argument callable returning one (for example
    ``settings.ensure_secret_key``), resolved on first use.

Security headers
    ``SecurityHeadersMiddleware`` gives every response a Content-Security-Policy with no
    inline script (``script-src 'self'``; templates hold no ``<script>`` body and no
    ``on*=`` handler, and no ``style=`` attribute, so ``style-src 'self'`` too),
    ``frame-ancestors 'none'``, ``X-Frame-Options: DENY``, ``nosniff`` and
    ``Referrer-Policy: same-origin`` (``no-referrer`` on pages whose URL carries a secret:
    status pages, the password link). Console, agents' and status pages get
    ``Cache-Control: no-store`` unless they set their own.

Client address
    The outermost layer (``helpdesk.observability.RequestObservationMiddleware``) decides
    each request's client address once (``remember_client``): the TCP peer, or
    ``X-Forwarded-For`` only when the peer is one of the trusted proxies
    (``HELPDESK_TRUSTED_PROXIES``). ``client_ip(request)`` returns that decision to rate
    limits and the audit trail, and the access log line uses it too. The
    server must not rewrite the peer itself (uvicorn runs with ``proxy_headers`` off).

Rate limiting
    ``RateLimiter`` is an in-memory sliding-window log per key (the client IP from
    ``client_ip``), bounded in memory: stale keys are dropped as time passes and at most
    ``max_keys`` keys are kept, least recently seen evicted first. It lives in one process;
    several workers each keep their own count.

The API and browsers
    ``POST /api/tickets`` takes no cookies of its own, but a browser sends them anyway and a
    cross-site page can make a browser post ``multipart/form-data`` without asking. So a
    request that ``looks_like_browser`` must carry the CSRF token like a form, and
    integrations identify themselves with a key (``api_key_matches``, constant time).

Redirects
    ``relative_slash_redirects`` replaces Starlette's trailing-slash redirect, which built
    its Location from the Host header, with a relative one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import ipaddress
import json
import logging
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup
from starlette.datastructures import FormData, Headers
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "BodySizeLimitMiddleware",
    "CSRFMiddleware",
    "RateLimiter",
    "SecurityHeadersMiddleware",
    "api_key_matches",
    "client_ip",
    "cross_site_reason",
    "csrf_input",
    "csrf_token",
    "loggable_path",
    "looks_like_browser",
    "parse_networks",
    "parse_rate",
    "rate_limited_message",
    "relative_slash_redirects",
    "remember_client",
    "resolve_client",
    "verify_csrf",
]

MB = 1024 * 1024

# -- Body size limit ---------------------------------------------------------------------------

#: Methods that carry a body worth limiting.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _BodyTooLarge(Exception):
    """Raised inside the wrapped ``receive`` once the body passes the limit."""


def _megabytes(n_bytes: int) -> str:
    value = n_bytes / MB
    return str(int(value)) if value == int(value) else f"{value:.1f}"


class BodySizeLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with 413, without buffering them.

    Applies to POST, PUT and PATCH on paths starting with one of ``paths``. ``photo_mb`` is
    the per-photo limit named in the message (``None`` leaves that sentence out).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        paths: tuple[str, ...] = ("/",),
        photo_mb: int | None = 10,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths
        self.photo_mb = photo_mb

    @property
    def message(self) -> str:
        text = f"送信データが大きすぎます(上限 {_megabytes(self.max_bytes)} MB)。"
        if self.photo_mb is not None:
            text += f"写真は1枚{self.photo_mb}MBまでです。"
        return text

    def _applies(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] in BODY_METHODS
            and scope["path"].startswith(self.paths)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope):
            await self.app(scope, receive, send)
            return

        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._send_413(scope, send)
            return

        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded and not response_started:
                # Whatever the app answers after its body was cut off, the answer is 413.
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # Our own exception, or whatever the app turned it into (a ClientDisconnect, an
            # exception group): once over the limit it all means "too large".
            if not exceeded:
                raise
        if exceeded and not response_started:
            response_started = True
            await self._send_413(scope, send)

    async def _send_413(self, scope: Scope, send: Send) -> None:
        headers = Headers(scope=scope)
        if _wants_json(scope["path"], headers):
            body = json.dumps({"error": self.message}, ensure_ascii=False).encode()
            content_type = b"application/json"
        else:
            body = _too_large_page(self.message).encode()
            content_type = b"text/html; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _wants_json(path: str, headers: Headers) -> bool:
    return path.startswith("/api/") or "application/json" in headers.get("accept", "")


def _too_large_page(message: str) -> str:
    """The 413 page. It links to no form: a link opens the form empty, while the browser's
    own back button returns to it as filled in (typed values and chosen files)."""
    return (
        "<!doctype html>\n"
        '<html lang="ja">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>送信データが大きすぎます | サポート窓口</title>\n"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">\n'
        '<link rel="stylesheet" href="/static/style.css">\n</head>\n<body>\n'
        '<main id="main">\n<h1>送信データが大きすぎます</h1>\n'
        f"<p>{html.escape(message)}</p>\n"
        '<div class="back-hint">\n'
        "<p><strong>入力した内容は消えていません。</strong>"
        "ブラウザの「戻る」ボタン(「←」)で前のページに戻ると、"
        "入力した内容がそのまま残っています。</p>\n"
        "<p>戻ったら、大きすぎる写真を上限以下のものに選び直して、"
        "もう一度送信してください。</p>\n"
        "</div>\n"
        '<p><a href="/">トップページへ</a>(入力した内容は引き継がれません)</p>\n'
        "</main>\n</body>\n</html>\n"
    )


# -- CSRF --------------------------------------------------------------------------------------

CSRF_COOKIE = "madoguchi_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: The cookie outlives the browser session so that a form restored with its tab (common on
#: phones) still submits; the value carries no authority on its own.
CSRF_COOKIE_MAX_AGE = 30 * 24 * 3600
#: Separates CSRF signatures from every other HMAC the app makes with the same secret.
_CSRF_CONTEXT = b"madoguchi-csrf:"
#: The shape of cookie values we create (``secrets.token_urlsafe(32)``); anything else is
#: replaced rather than signed.
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")
#: Longest submitted token looked at (hex SHA-256 is 64 characters).
_MAX_TOKEN_LENGTH = 128
_STATE_KEY = "madoguchi_csrf"
#: Methods that change nothing (RFC 9110 "safe"): never checked.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CROSS_SITE_MESSAGE = (
    "別のサイトからの送信のため、受け付けませんでした。"
    "お手数ですが、このサイトのページを開き直してから、もう一度お試しください。"
)
UNVERIFIED_MESSAGE = (
    "ページの有効期限が切れたため、受け付けませんでした。"
    "お手数ですが、ページを開き直してから、もう一度お試しください。"
)

Secret = str | Callable[[], str]
csrf_log = logging.getLogger("helpdesk.csrf")


@dataclass
class _CSRFState:
    """Per-request CSRF bookkeeping, kept in ``request.state``."""

    secret: Secret
    new_cookie: str | None = None
    #: An unsafe, not exempt request: the handler must verify the token.
    required: bool = False
    #: ``verify_csrf`` was called, and what it found.
    checked: bool = False
    valid: bool = False


def _key(secret: Secret) -> bytes:
    value = secret() if callable(secret) else secret
    if not value:
        raise RuntimeError("the CSRF secret is empty")
    return value.encode()


def _sign(key: bytes, cookie: str) -> bytes:
    return hmac.new(key, _CSRF_CONTEXT + cookie.encode(), hashlib.sha256).digest()


def _state(connection: HTTPConnection, secret: Secret | None) -> _CSRFState:
    state: _CSRFState | None = getattr(connection.state, _STATE_KEY, None)
    if state is None:
        if secret is None:
            raise RuntimeError(
                "no CSRF secret: add CSRFMiddleware to the app or pass secret= explicitly"
            )
        state = _CSRFState(secret)
        setattr(connection.state, _STATE_KEY, state)
    return state


def _request_cookie(connection: HTTPConnection) -> str | None:
    value = connection.cookies.get(CSRF_COOKIE)
    return value if value and _COOKIE_VALUE.fullmatch(value) else None


def csrf_token(request: HTTPConnection, *, secret: Secret | None = None) -> str:
    """The token to put in this request's forms (urlsafe base64, no padding).

    Creates a new cookie value when the request has none (or a malformed one); the
    ``CSRFMiddleware`` then sets it on the response. The same value is reused for every call
    within the request.

    Raises:
        RuntimeError: without ``CSRFMiddleware`` and without ``secret``.
    """
    state = _state(request, secret)
    cookie = state.new_cookie or _request_cookie(request)
    if cookie is None:
        cookie = state.new_cookie = secrets.token_urlsafe(32)
    signature = _sign(_key(secret or state.secret), cookie)
    return base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def csrf_input(request: HTTPConnection) -> Markup:
    """The hidden form field, for templates: ``{{ csrf_input(request) }}``."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, csrf_token(request)
    )


async def verify_csrf(request: Request, form: FormData, *, secret: Secret | None = None) -> bool:
    """Whether the form (or the ``X-CSRF-Token`` header) carries the token for the cookie.

    Call it after parsing the form of every unsafe request (``CSRFMiddleware`` refuses the
    response of a handler that did not, or that succeeded although this returned False).
    False when the cookie is missing or malformed, the token is missing or does not match;
    accepts the signature in urlsafe base64 (with or without padding) or in hex.

    Raises:
        RuntimeError: without ``CSRFMiddleware`` and without ``secret``.
    """
    state = _state(request, secret)
    valid = _matches(request, form, secret or state.secret)
    state.checked, state.valid = True, valid
    return valid


def _matches(request: Request, form: FormData, secret: Secret) -> bool:
    cookie = _request_cookie(request)
    submitted = form.get(CSRF_FIELD)
    if not isinstance(submitted, str) or not submitted:
        submitted = request.headers.get(CSRF_HEADER, "")
    if cookie is None or not submitted or len(submitted) > _MAX_TOKEN_LENGTH:
        return False
    try:
        given = submitted.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = _sign(_key(secret), cookie)
    as_b64 = base64.urlsafe_b64encode(expected)
    candidates = (as_b64.rstrip(b"="), as_b64, expected.hex().encode())
    # Compare against every form so that the time taken does not depend on which one matched.
    matches = [hmac.compare_digest(given, candidate) for candidate in candidates]
    return any(matches)


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}" if rest else ""


def cross_site_reason(headers: Headers, *, allowed_origins: Iterable[str] = ()) -> str | None:
    """Why a request comes from another site (for the log), or None when it may be ours.

    Fetch Metadata first (``Sec-Fetch-Site`` other than ``same-origin`` or ``none``; a
    browser's ``same-origin`` is ours whatever its ``Origin``), then ``Origin``: ours when
    its host is the request's ``Host`` or it is one of ``allowed_origins`` (the public base
    URL's). A request with neither header (an old
    browser, a script) is left to the token.
    """
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {site}"
    if site == "same-origin":
        # The browser says so itself; its Origin may be "null" (a page served with
        # Referrer-Policy: no-referrer, as the pages whose URL holds a secret are).
        return None
    origin = headers.get("origin")
    if origin is None:
        return None
    origin = origin.strip().lower()
    if origin in {_origin_of(allowed) for allowed in allowed_origins}:
        return None
    host = headers.get("host", "").strip().lower()
    if host and origin.partition("://")[2] == host:
        return None
    return f"Origin: {origin[:100]}"


def _forbidden(scope: Scope, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    if _wants_json(scope["path"], Headers(scope=scope)):
        body = json.dumps({"error": message}, ensure_ascii=False).encode()
        content_type = b"application/json"
    else:
        body = _forbidden_page(message).encode()
        content_type = b"text/html; charset=utf-8"
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    return 403, headers, body


def _forbidden_page(message: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="ja">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>受け付けできませんでした | サポート窓口</title>\n"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">\n'
        '<link rel="stylesheet" href="/static/style.css">\n</head>\n<body>\n'
        '<main id="main">\n<h1>受け付けできませんでした</h1>\n'
        f"<p>{html.escape(message)}</p>\n"
        '<p><a href="/">トップページへ</a></p>\n'
        "</main>\n</body>\n</html>\n"
    )


class CSRFMiddleware:
    """Check every unsafe request (see the module docstring) and set the CSRF cookie.

    ``exempt``: ``(method, path)`` pairs of routes with their own scheme, checked by their
    handlers; ``allowed_origins``: origins besides the request's own host that are ours
    (the public base URL, which differs from ``Host`` behind some proxies). Pure ASGI; it
    never reads the body.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: Secret,
        exempt: Iterable[tuple[str, str]] = (),
        allowed_origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.secret = secret
        self.exempt = frozenset((method.upper(), path) for method, path in exempt)
        self.allowed_origins = tuple(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = _CSRFState(self.secret)
        scope.setdefault("state", {})[_STATE_KEY] = state
        secure = scope.get("scheme") == "https"
        method, path = scope["method"], scope["path"]
        if method not in SAFE_METHODS and (method, path) not in self.exempt:
            reason = cross_site_reason(Headers(scope=scope), allowed_origins=self.allowed_origins)
            if reason is not None:
                csrf_log.warning(
                    "refused a cross-site %s %s (%s)", method, loggable_path(path), reason
                )
                await self._send(send, *_forbidden(scope, CROSS_SITE_MESSAGE))
                return
            state.required = True
        replaced = False

        async def checked_send(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the app's own body, after its start was replaced by a 403
            if message["type"] == "http.response.start":
                if (
                    state.required
                    and message["status"] < 400
                    and not (state.checked and state.valid)
                ):
                    replaced = True
                    why = "without verifying" if not state.checked else "despite a bad"
                    csrf_log.error(
                        "%s %s answered %d %s CSRF token: refused with 403",
                        method,
                        loggable_path(path),
                        message["status"],
                        why,
                    )
                    status, headers, body = _forbidden(scope, UNVERIFIED_MESSAGE)
                    await send(self._start(status, headers, state, secure))
                    await send({"type": "http.response.body", "body": body})
                    return
                if state.new_cookie is not None:
                    headers = list(message.get("headers", []))
                    headers.append(self._cookie(state.new_cookie, secure))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, checked_send)

    @staticmethod
    def _cookie(value: str, secure: bool) -> tuple[bytes, bytes]:
        cookie = f"{CSRF_COOKIE}={value}; HttpOnly; Max-Age="
        cookie += f"{CSRF_COOKIE_MAX_AGE}; Path=/; SameSite=Lax"
        if secure:
            cookie += "; Secure"
        return (b"set-cookie", cookie.encode("latin-1"))

    def _start(
        self, status: int, headers: list[tuple[bytes, bytes]], state: _CSRFState, secure: bool
    ) -> Message:
        if state.new_cookie is not None:
            headers = [*headers, self._cookie(state.new_cookie, secure)]
        return {"type": "http.response.start", "status": status, "headers": headers}

    @staticmethod
    async def _send(
        send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# -- Security headers --------------------------------------------------------------------------

#: No inline script or style, nothing from elsewhere, never framed (clickjacking), forms
#: post only here, no <base> to redirect relative URLs. ``blob:`` images: the returns form
#: previews a chosen photo with ``URL.createObjectURL`` before it is sent.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'"
)
#: Pages private to one person or to agents: never stored by a browser or a proxy.
NO_STORE_PREFIXES = ("/console", "/agent/", "/t/")
#: Pages whose URL carries a secret (a status token, a one-time password link): no
#: Referer at all, even to our own static files.
NO_REFERRER_PREFIXES = ("/t/", "/console/password/")


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response (a header the app set is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The four sets a response can get, made once: (no Referer, no storing) -> headers.
        self.headers = {
            (no_referrer, no_store): _security_headers(no_referrer=no_referrer, no_store=no_store)
            for no_referrer in (False, True)
            for no_store in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        extra = self.headers[
            path.startswith(NO_REFERRER_PREFIXES), path.startswith(NO_STORE_PREFIXES)
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _security_headers(*, no_referrer: bool, no_store: bool) -> tuple[tuple[bytes, bytes], ...]:
    headers = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"referrer-policy", b"no-referrer" if no_referrer else b"same-origin"),
    ]
    if no_store:
        headers.append((b"cache-control", b"no-store"))
    return tuple(headers)


# -- Rate limiting -----------------------------------------------------------------------------

_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([A-Za-z]+)\s*")
_UNITS: dict[str, float] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}


def parse_rate(text: str) -> tuple[int, float]:
    """Parse ``"10/10m"``, ``"20/hour"`` or ``"5/30s"`` into ``(limit, window_seconds)``.

    Raises:
        ValueError: when the text is not ``COUNT/[NUMBER]UNIT`` with a positive count and
            window, or the unit is unknown.
    """
    expected = "expected COUNT/WINDOW such as '10/10m', '20/hour' or '5/30s'"
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid rate {text!r}: {expected}")
    count, amount, unit = match.groups()
    seconds = _UNITS.get(unit.lower())
    if seconds is None:
        known = "s, m, h, d (or second, minute, hour, day)"
        raise ValueError(f"invalid rate {text!r}: unknown unit {unit!r}; use one of {known}")
    limit = int(count)
    window = float(amount if amount is not None else 1) * seconds
    if limit <= 0 or window <= 0:
        raise ValueError(f"invalid rate {text!r}: count and window must be positive")
    return limit, window


class RateLimiter:
    """Sliding-window limiter: at most ``limit`` hits per key within ``window_seconds``.

    Refused hits are not counted, so someone who waits as told always gets through. Memory is
    bounded: keys idle for a whole window are dropped, and beyond ``max_keys`` keys the least
    recently seen is evicted. Not thread-safe; meant for one event loop.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds}")
        if max_keys <= 0:
            raise ValueError(f"max_keys must be positive, got {max_keys}")
        self.limit = limit
        self.window = float(window_seconds)
        self.clock = clock
        self.max_keys = max_keys
        # Key -> times of its accepted hits, oldest first; keys in order of last hit.
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """How many keys are tracked."""
        return len(self._hits)

    def hit(self, key: str) -> float | None:
        """Record an attempt: None when allowed, else seconds until the next allowed one."""
        now = self.clock()
        horizon = now - self.window
        self._evict_idle(horizon)
        times = self._hits.get(key)
        if times is None:
            times = self._hits[key] = deque()
        else:
            self._hits.move_to_end(key)
            while times and times[0] <= horizon:
                times.popleft()
        if len(times) >= self.limit:
            return max(times[0] - horizon, 0.0)
        times.append(now)
        while len(self._hits) > self.max_keys:
            self._hits.popitem(last=False)
        return None

    def peek(self, key: str) -> float | None:
        """What ``hit`` would answer now, recording nothing: None when a hit would be allowed,
        else seconds until one is. Lets a caller refuse early, before any costly work, and
        count the hit only for a request that goes on."""
        horizon = self.clock() - self.window
        recent = [t for t in self._hits.get(key, ()) if t > horizon]
        if len(recent) < self.limit:
            return None
        return max(recent[0] - horizon, 0.0)

    def _evict_idle(self, horizon: float) -> None:
        # Keys are ordered by last hit, so idle ones are at the front. A key refused while
        # over its limit moves to the back without a new time; checking its newest accepted
        # hit keeps the test right.
        while self._hits:
            key, times = next(iter(self._hits.items()))
            if times and times[-1] > horizon:
                break
            del self._hits[key]

    def reset(self, key: str | None = None) -> None:
        """Forget one key, or every key."""
        if key is None:
            self._hits.clear()
        else:
            self._hits.pop(key, None)


def client_ip(request: HTTPConnection, *, trusted_proxies: Iterable[str] | None = None) -> str:
    """The client's address: the one function rate limits, logs and the audit trail use.

    Without ``trusted_proxies``, the address ``remember_client`` decided for this
    request (from the app's ``HELPDESK_TRUSTED_PROXIES``), or the TCP peer without the
    middleware. With them, decided here: see ``resolve_client``.
    """
    if trusted_proxies is None:
        decided = request.scope.get("state", {}).get(_CLIENT_KEY)
        if isinstance(decided, str):
            return decided
        trusted_proxies = ()
    networks = parse_networks(trusted_proxies)
    return resolve_client(request.scope, networks)


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or networks ("10.0.0.1", "10.0.0.0/8") as networks; ``ValueError`` if not."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items)


def resolve_client(scope: Scope, networks: Sequence[Network]) -> str:
    """The TCP peer, or ``X-Forwarded-For`` only when the peer is a trusted proxy.

    When the peer is in ``networks``, the rightmost ``X-Forwarded-For`` entry that is not a
    trusted proxy is taken (entries further left are set by the client and cannot be
    believed). Returns ``"unknown"`` when the server gives no peer address.
    """
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if not networks or not _in_networks(peer, networks):
        return peer
    forwarded = ",".join(Headers(scope=scope).getlist("x-forwarded-for"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in_networks(hop, networks):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


_CLIENT_KEY = "client_address"
#: Paths whose next segment is a secret (the one-time password link): the access log
#: shows the route, never the secret. Any other path is shown as it is, without a search.
_SECRET_PREFIXES = ("/console/password/",)
_SECRET_PATHS = tuple(re.compile(rf"^({re.escape(prefix)})[^/]+") for prefix in _SECRET_PREFIXES)


def loggable_path(path: str) -> str:
    """``path`` as the access log shows it: secrets in path segments masked. (The query
    string, which carries the customers' tokens, is never logged at all.)"""
    if not path.startswith(_SECRET_PREFIXES):
        return path
    for pattern in _SECRET_PATHS:
        path = pattern.sub(r"\1***", path)
    return path


def remember_client(scope: Scope, networks: Sequence[Network]) -> str:
    """Decide the request's client address once (``resolve_client``) and keep it in the
    scope, where ``client_ip`` finds it: rate limits, the audit trail and the access log
    all name the same client. (``helpdesk.observability.RequestObservationMiddleware``
    calls this first thing for every request.)"""
    client = resolve_client(scope, networks)
    scope.setdefault("state", {})[_CLIENT_KEY] = client
    return client


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _in_networks(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


# -- API clients and browsers -----------------------------------------------------------------

#: Headers only browsers send (Fetch Metadata and the Origin of a cross-origin or POST
#: request): a request carrying one came from a web page, maybe someone else's.
_BROWSER_HEADERS = ("origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest")


def looks_like_browser(headers: Headers) -> bool:
    """Whether a request came from a browser (so may be a cross-site forgery)."""
    return any(name in headers for name in _BROWSER_HEADERS)


def presented_api_key(headers: Headers) -> str | None:
    """The key in ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, if any."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key", "").strip() or None


def api_key_matches(presented: str | None, keys: Iterable[str]) -> bool:
    """Whether ``presented`` is one of ``keys``, compared in constant time against each."""
    if not presented:
        return False
    given = presented.encode("utf-8", "surrogatepass")
    matches = [hmac.compare_digest(given, key.encode()) for key in keys]
    return any(matches)


# -- Redirects -------------------------------------------------------------------------------


def relative_slash_redirects(router: Router) -> None:
    """Make ``router`` redirect ``/path/`` to ``/path`` (and back) with a relative Location.

    Starlette's own ``redirect_slashes`` builds an absolute URL from the request's Host
    header, so ``Host: evil.example`` got ``Location: http://evil.example/t/...?token=...``
    (issue 7, #20). The same routes are matched; only the Location differs: the path and
    query alone, never a host the client chose.
    """
    router.redirect_slashes = False
    fallback = router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in ("", "/"):
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            # One leading slash: "//evil.example" would be another host to a browser.
            other = "/" + other.lstrip("/")
            probe = {**scope, "path": other}
            if other != "/" and any(r.matches(probe)[0] is not Match.NONE for r in router.routes):
                location = other
                if scope.get("query_string"):
                    location += "?" + scope["query_string"].decode("latin-1")
                await RedirectResponse(location, status_code=307)(scope, receive, send)
                return
        await fallback(scope, receive, send)

    router.default = default


def rate_limited_message(retry_after: float) -> str:
    """The polite Japanese message for a refused submission, with a rounded-up wait."""
    minutes = max(1, math.ceil(retry_after / 60))
    wait = f"約{minutes}分後" if minutes < 60 else f"約{math.ceil(minutes / 60)}時間後"
    return f"送信が続いたため、しばらく受け付けを停止しています。{wait}にもう一度お試しください。"
