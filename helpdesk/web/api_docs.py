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
_FAQ_ITEM = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("id", "question", "answer")},
}


def _string(field: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": FIELD_LABELS.get(field, field), **extra}


def document(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "madoguchi helpdesk API", "version": "1"},
        "servers": [{"url": base_url}],
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
                                            "answer": {"oneOf": [_FAQ_ITEM, {"type": "null"}]},
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
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string"},
                            "description": "Repeating a key returns the first ticket (200).",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["kind", "name", "email"],
                                    "properties": {
                                        "kind": _string("kind", enum=[k.value for k in TicketKind]),
                                        "name": _string("name", maxLength=100),
                                        "email": _string("email", format="email"),
                                        "order_number": _string(
                                            "order_number",
                                            description="Required except for inquiry",
                                        ),
                                        "arrived_on": _string(
                                            "arrived_on",
                                            format="date",
                                            description="YYYY-MM-DD; required except for inquiry",
                                        ),
                                        "description": _string("description", maxLength=5000),
                                        "desired_variant": _string(
                                            "desired_variant", description="Required for exchange"
                                        ),
                                        "category": _string(
                                            "category",
                                            enum=list(INQUIRY_CATEGORIES),
                                            description="Required for inquiry",
                                        ),
                                        "photo_overall": {
                                            "type": "string",
                                            "format": "binary",
                                            "description": "JPEG/PNG/WebP/HEIC; "
                                            "required for defect and wrong_item",
                                        },
                                        "photo_defect": {
                                            "type": "string",
                                            "format": "binary",
                                            "description": "JPEG/PNG/WebP/HEIC; "
                                            "required for defect and wrong_item",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Created",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "reference": {"type": "string"},
                                            "status": {"type": "string"},
                                            "status_url": {"type": "string", "format": "uri"},
                                            "late": {"type": "boolean"},
                                        },
                                    }
                                }
                            },
                        },
                        "200": {"description": "Same Idempotency-Key: the first ticket"},
                        "413": {"description": "Body over the size limit"},
                        "422": {
                            "description": "Invalid fields",
                            "content": {"application/json": {"schema": _ERRORS}},
                        },
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
                        "200": {"description": "reference, kind, status, late, messages"}
                    },
                }
            },
        },
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document(request.app.state.helpdesk.settings.base_url))


routes = [Route("/api/openapi.json", openapi)]
