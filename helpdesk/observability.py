"""Logs and request ids: structured JSON logs, one id per request (``X-Request-ID``).

Every request gets an id (the proxy's ``X-Request-ID`` when it sent a sane one, else a new
one); it is in each log line written while the request runs, in the response's
``X-Request-ID`` header, and on the error page a user sees, so that a customer's "it said
error 3f2a..." finds the log lines at once.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import random
import re
import time
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk.metrics import observe_request
from helpdesk.privacy.masking import MASKED, mask_personal_data
from helpdesk.security import loggable_path, parse_networks, remember_client

REQUEST_ID_HEADER = "X-Request-ID"
# What is kept from a proxy's id: printable, short, and safe in a log and a page.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
_STATE_KEY = "request_id"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = logging.getLogger("helpdesk.access")


def new_request_id() -> str:
    # Not a secret: a client may send its own (a proxy's); it only has to be unique enough
    # to find a request's lines, and cost a request nothing.
    return f"{random.getrandbits(64):016x}"


def request_id_of(scope_or_request: Any) -> str | None:
    """The id of a request (a ``Request`` or an ASGI scope)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    state = scope.get("state") or {}
    value = state.get(_STATE_KEY)
    return value if isinstance(value, str) else None


class RequestObservationMiddleware:
    """The outermost layer: what every request gets on its way in and out, in one pass.

    In: an id (``X-Request-ID``, set on the response too), its client address, decided
    once (``helpdesk.security.remember_client``: trusted proxies only). Out: one access
    log line (logger ``helpdesk.access``) naming that client, the peer when a proxy
    forwarded the request, and the path without its query string (status pages carry the
    customer's token there; a secret in a path segment is masked, ``loggable_path``, and
    personal data typed into a URL too; lines are written together, ``ACCESS_LOG_DELAY``);
    then the request's latency by route template
    (``helpdesk.metrics.observe_request``). One layer instead of three: each layer of
    middleware costs every request a call and a wrapped ``send``.
    """

    def __init__(self, app: ASGIApp, *, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.networks = parse_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                remember_client(scope, self.networks)
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope["headers"])
        scope.setdefault("state", {})[_STATE_KEY] = request_id
        client = remember_client(scope, self.networks)
        token = request_id_var.set(request_id)
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": _with_id(message.get("headers", ()), request_id)}
                _log_access(scope, client, status, request_id)
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            request_id_var.reset(token)
            observe_request(scope, status, time.perf_counter() - started)


_ID_HEADER = REQUEST_ID_HEADER.lower().encode()


def _request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The proxy's id when it sent a sane one, else a new one. The last header is the
    proxy's: one before it may come from the client."""
    given = None
    for name, value in headers:
        if name == _ID_HEADER:
            given = value
    if given is not None:
        text = given.decode("latin-1")
        if _SANE_ID.fullmatch(text):
            return text
    return new_request_id()


def _with_id(headers: Iterable[tuple[bytes, bytes]], request_id: str) -> list[tuple[bytes, bytes]]:
    """The response's headers with ours as its only ``X-Request-ID``."""
    kept = [(name, value) for name, value in headers if name.lower() != _ID_HEADER]
    kept.append((_ID_HEADER, request_id.encode("latin-1")))
    return kept


def _log_access(scope: Scope, client: str, status: int, request_id: str) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    peer = scope["client"][0] if scope.get("client") else "unknown"
    via = f" (via {peer})" if peer != client else ""
    # Only the method and path come from the request as sent: masked here, so that the
    # filter does not scan the whole line again (``MASKED``).
    request = mask_personal_data(f"{scope.get('method', '')} {loggable_path(scope['path'])}")
    line = f'{client}{via} - "{request} HTTP/{scope.get("http_version", "1.1")}" {status}'
    _access_lines.note(line, request_id)


#: How long an access log line may wait to be written with the others of that moment (as
#: nginx's ``access_log ... buffer= flush=``): one line through ``logging`` costs a request
#: tens of microseconds when it is written alone between two searches (the logging code
#: runs from cold caches), a few when lines are written together.
ACCESS_LOG_DELAY = 0.05


class _AccessLines:
    """Access log lines noted by requests, written together at most ``ACCESS_LOG_DELAY``
    later by the event loop (each as its own record, with its request's time and id), and
    at shutdown (``flush_access_log``) or exit."""

    def __init__(self) -> None:
        self._pending: list[tuple[float, str, str]] = []
        # The loop a flush is scheduled on (None: none is); another one (tests start a
        # loop each) schedules its own.
        self._loop: asyncio.AbstractEventLoop | None = None

    def note(self, line: str, request_id: str) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): at once
            loop = None
        if self._pending and self._loop is not loop:
            # Lines of a loop that ended before its flush ran (tests run a loop each):
            # written now, before this one's.
            self.flush()
        self._pending.append((time.time(), request_id, line))
        if loop is None:
            self.flush()
        elif self._loop is not loop:
            self._loop = loop
            loop.call_later(ACCESS_LOG_DELAY, self.flush)

    def flush(self) -> None:
        self._loop = None
        pending, self._pending = self._pending, []
        for created, request_id, line in pending:
            record = access_log.makeRecord(
                access_log.name,
                logging.INFO,
                __file__,
                0,
                line,
                (),  # no arguments: the line is never %-formatted
                None,
                extra={**MASKED, "request_id": request_id},
            )
            record.created, record.msecs = created, (created % 1) * 1000
            access_log.handle(record)


_access_lines = _AccessLines()
flush_access_log = _access_lines.flush
atexit.register(flush_access_log)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) for formatters, unless the
    record has it already (access log lines are written after their request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request id, error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id and request_id != "-":
            entry["request_id"] = request_id
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
