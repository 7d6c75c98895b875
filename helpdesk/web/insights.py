"""The admins' insights page and its tables as CSV (``helpdesk.insights`` does the work)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk.agents.urls import INSIGHTS
from helpdesk.db import utcnow
from helpdesk.insights.charts import charts, duration_text
from helpdesk.insights.export import TABLE_NAMES, csv_bytes, tables
from helpdesk.insights.period import Period, PeriodError, parse_period
from helpdesk.insights.queries import Insights, insights
from helpdesk.web.auth import require_agent
from helpdesk.web.console import render

TABLE_NOT_FOUND = "その表はありません。"


async def _figures(request: Request) -> Insights:
    """The figures of the range asked for.

    Raises:
        PeriodError: the range cannot be shown (the message says why, in Japanese).
    """
    helpdesk: Any = request.app.state.helpdesk
    policy = helpdesk.faq.policy
    now = utcnow()
    period: Period = parse_period(request.query_params, policy.local(now).date())
    return await insights(
        helpdesk.sessions, period=period, now=now, timezone=policy.timezone, calendar=policy.support
    )


async def insights_page(request: Request) -> Response:
    agent = await require_agent(request, admin=True)
    values = {name: request.query_params.get(name, "")[:40] for name in ("from", "to")}
    try:
        found = await _figures(request)
    except PeriodError as exc:
        context: dict[str, Any] = {"error": str(exc), "values": values}
        response = render(request, agent, "console/insights.html", context, section="insights")
        response.status_code = 400
        return response
    page: dict[str, Any] = {
        "found": found,
        "values": found.period.params(),
        "params": found.period.params(),
        "charts": charts(found),
        "tables": tables(found),
        "duration": duration_text,
    }
    return render(request, agent, "console/insights.html", page, section="insights")


async def insights_csv(request: Request) -> Response:
    await require_agent(request, admin=True)
    name = request.path_params["table"]
    if name not in TABLE_NAMES:
        raise HTTPException(404, TABLE_NOT_FOUND)
    try:
        found = await _figures(request)
    except PeriodError as exc:
        raise HTTPException(400, str(exc)) from None
    table = tables(found)[name]
    period = found.period
    filename = f"insights-{name}-{period.first:%Y%m%d}-{period.last:%Y%m%d}.csv"
    return Response(
        csv_bytes(table.header, table.rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


routes = [
    Route(INSIGHTS, insights_page, methods=["GET"]),
    Route(INSIGHTS + "/{table}.csv", insights_csv, methods=["GET"]),
]
