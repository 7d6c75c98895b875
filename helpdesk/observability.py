"""Logs and request ids: structured JSON logs, one id per request (``X-Request-ID``).

Every request gets an id (the proxy's ``X-Request-ID`` when it sent a sane one, else a new
one); it is in each log line written while the request runs, in the response's
``X-Request-ID`` header, and on the error page a user sees, so that a customer's "it said
error 3f2a..." finds the log lines at once.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from helpdesk.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
# What is kept from a proxy's id: printable, short, and safe in a log and a page.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
_STATE_KEY = "request_id"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    return secrets.token_hex(8)


def request_id_of(scope_or_request: Any) -> str | None:
    """The id of a request (a ``Request`` or an ASGI scope)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    state = scope.get("state") or {}
    value = state.get(_STATE_KEY)
    return value if isinstance(value, str) else None


class RequestIdMiddleware:
    """Give each request an id (outermost: the access log line carries it too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"")
        text = given.decode("latin-1")
        request_id = text if _SANE_ID.fullmatch(text) else new_request_id()
        scope.setdefault("state", {})[_STATE_KEY] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) for formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
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


def prepare_metrics_dir(settings: Settings) -> Path:
    """An empty ``var/metrics`` for prometheus-client's multiprocess mode (``serve`` calls
    this before starting workers; files of an earlier run would be counted again)."""
    folder = settings.var_dir / "metrics"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, mode=0o750)
    return folder
