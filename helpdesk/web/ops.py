"""For the machines around the app: liveness, readiness and Prometheus metrics.

- ``/healthz``: the process answers (no database: a restart would not help a database).
- ``/readyz``: the checks of ``helpdesk.health.readiness``; 503 when one fails.
- ``/metrics``: from loopback and ``HELPDESK_METRICS_ALLOW`` only (``Access.monitoring``).
"""

from __future__ import annotations

import ipaddress

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helpdesk import health, metrics
from helpdesk.security import client_ip


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: Request) -> Response:
    result = await health.readiness(request.app.state.helpdesk)
    body = {"status": "ok" if result.ready else "failing", "checks": result.checks}
    return JSONResponse(body, 200 if result.ready else 503, headers={"Cache-Control": "no-store"})


def may_read_metrics(address: str, allowed: tuple[str, ...]) -> bool:
    """Loopback, or an address in ``HELPDESK_METRICS_ALLOW``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    return any(ip in ipaddress.ip_network(item, strict=False) for item in allowed)


async def metrics_endpoint(request: Request) -> Response:
    helpdesk = request.app.state.helpdesk
    if not may_read_metrics(client_ip(request), helpdesk.settings.metrics_allow_list):
        raise HTTPException(403, "このページを表示する権限がありません。")
    outbox, inbound, age = await health.database_figures(helpdesk)
    families = metrics.database_families(outbox=outbox, inbound=inbound, heartbeat_age=age)
    return Response(
        metrics.exposition(families),
        media_type=metrics.CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
]
