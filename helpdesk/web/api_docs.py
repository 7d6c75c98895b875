"""The OpenAPI document of the HTTP API, at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helpdesk.models import TicketKind
from helpdesk.tickets.labels import FIELD_LABELS, INQUIRY_CATEGORIES

_ERRORS = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "field name -> message in Japanese",
        }
    },
}
_FAQ_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("id", "question", "answer")},
}


def _string(field: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": FIELD_LABELS.get(field, field), **extra}


_CREATED = {
    "type": "object",
    "properties": {
        "reference": {"type": "string"},
        "status": {"type": "string"},
        "status_url": {"type": "string", "format": "uri"},
        "late": {"type": "boolean"},
        "confirmation_mail": {
            "type": "boolean",
            "description": "Whether a confirmation mail was queued to the customer "
            "(false when the hourly cap on automatic mail to the address was reached)",
        },
        "first_reply_due_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "When the first reply is due, in the shop's support hours "
            "(data/shop.toml [support]); null when the shop sets no support calendar",
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERRORS}}}


def _ticket_fields(*, photos: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "kind": _string("kind", enum=[k.value for k in TicketKind]),
        "name": _string(
            "name", maxLength=100, description="No URLs, mail addresses or domain names"
        ),
        "email": _string("email", format="email"),
        "order_number": _string("order_number", description="Required except for inquiry"),
        "arrived_on": _string(
            "arrived_on", format="date", description="YYYY-MM-DD; required except for inquiry"
        ),
        "description": _string("description", maxLength=5000),
        "desired_variant": _string("desired_variant", description="Required for exchange"),
        "category": _string(
            "category", enum=list(INQUIRY_CATEGORIES), description="Required for inquiry"
        ),
    }
    if photos:
        for name in ("photo_overall", "photo_defect"):
            properties[name] = {
                "type": "string",
                "format": "binary",
                "description": "JPEG/PNG/WebP/HEIC; required for defect and wrong_item",
            }
    return {"type": "object", "required": ["kind", "name", "email"], "properties": properties}


def document(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "madoguchi helpdesk API", "version": "1"},
        "servers": [{"url": base_url}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
        },
        "paths": {
            "/api/faq/search": {
                "get": {
                    "summary": "Ask the FAQ",
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 5, "default": 5},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The bot's answer and the results, best first",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "query": {"type": "string"},
                                            "answered": {"type": "boolean"},
                                            "answer": {
                                                "oneOf": [
                                                    {
                                                        **_FAQ_ITEM,
                                                        "properties": {
                                                            **_FAQ_ITEM["properties"],
                                                            "html": {"type": "string"},
                                                        },
                                                    },
                                                    {"type": "null"},
                                                ]
                                            },
                                            "searched_as": {"type": ["string", "null"]},
                                            "contact_url": {"type": "string"},
                                            "results": {
                                                "type": "array",
                                                "items": {
                                                    **_FAQ_ITEM,
                                                    "properties": {
                                                        **_FAQ_ITEM["properties"],
                                                        "score": {"type": "number"},
                                                    },
                                                },
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "400": {"description": "Empty or too long query (Japanese message)"},
                    },
                }
            },
            "/api/tickets": {
                "post": {
                    "summary": "Open a ticket (return, defect, exchange or inquiry)",
                    "description": (
                        "Send application/json (text fields only) or multipart/form-data "
                        "(text fields and photos). Other content types, including "
                        "application/x-www-form-urlencoded and text/plain, get 415: they are "
                        "what a cross-site page can make a browser send. Integrations send "
                        "an API key (`Authorization: Bearer KEY` or `X-API-Key`); when the "
                        "shop configures keys (HELPDESK_API_KEYS) every call needs one. A "
                        "call without a key from a browser (Origin or Sec-Fetch-* headers) "
                        "needs the CSRF token of this site's pages (X-CSRF-Token)."
                    ),
                    "security": [{}, {"bearer": []}, {"apiKey": []}],
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string"},
                            "description": (
                                "Repeating a key with the same content returns the first "
                                "ticket (200); with other content, 409 and nothing else."
                            ),
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _ticket_fields(photos=False)},
                            "multipart/form-data": {"schema": _ticket_fields(photos=True)},
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Created",
                            "content": {"application/json": {"schema": _CREATED}},
                        },
                        "200": {
                            "description": "Same Idempotency-Key and content: the first ticket",
                            "content": {"application/json": {"schema": _CREATED}},
                        },
                        "400": _error("Unreadable body (not JSON, not an object)"),
                        "401": _error("API key missing (keys configured) or wrong"),
                        "403": _error("From a browser without this site's CSRF token"),
                        "409": _error("Idempotency-Key already used for other content"),
                        "413": {"description": "Body over the size limit (JSON: 64 KB)"},
                        "415": _error("Not application/json or multipart/form-data"),
                        "422": _error("Invalid fields"),
                        "429": {"description": "Too many submissions from this address"},
                    },
                }
            },
            "/t/{reference}": {
                "get": {
                    "summary": "A ticket as its customer sees it (Accept: application/json)",
                    "parameters": [
                        {
                            "name": "reference",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "token",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "reference, kind, status, late, "
                            "first_reply_due_at, messages"
                        }
                    },
                }
            },
        },
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document(request.app.state.helpdesk.settings.base_url))


routes = [Route("/api/openapi.json", openapi)]
