"""Probes, metrics, request ids (issue 13)."""

from __future__ import annotations

import json
import logging

import httpx
from starlette.applications import Starlette

from helpdesk.leader import write_heartbeat
from helpdesk.observability import JsonFormatter, request_id_var
from helpdesk.web.ops import may_read_metrics
from tests.helpers import api_inquiry, free_port, smtp_server, soup


async def test_healthz_answers_without_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database_media_smtp_and_background_work(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    helpdesk = app.state.helpdesk
    waiting = await client.get("/readyz")
    assert waiting.status_code == 503
    checks = waiting.json()["checks"]
    assert checks["database"] == "ok" and checks["media"] == "ok"
    assert "no process has run the background work" in checks["background"]
    assert "smtp" not in checks  # not configured

    await write_heartbeat(helpdesk.sessions, "host:1", since=True)
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "media": "ok", "background": "ok"},
    }

    with smtp_server() as (_recorder, port):
        helpdesk.settings.smtp_host, helpdesk.settings.smtp_port = "127.0.0.1", port
        assert (await client.get("/readyz")).json()["checks"]["smtp"] == "ok"
    helpdesk.settings.smtp_port = free_port()  # nobody listens there
    down = await client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["smtp"] != "ok"


async def test_the_leader_heartbeat_going_stale_makes_readyz_fail(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    from datetime import timedelta

    from helpdesk.db import utcnow
    from helpdesk.models import LeaderHeartbeat

    async with app.state.helpdesk.sessions() as session:
        old = utcnow() - timedelta(minutes=5)
        session.add(LeaderHeartbeat(name="background", holder="h:9", since=old, heartbeat_at=old))
        await session.commit()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert "h:9" in response.json()["checks"]["background"]


async def test_metrics_count_requests_by_route_faq_answers_tickets_and_mail(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    await client.get("/api/faq/search", params={"q": "領収書"})
    await client.get("/api/faq/search", params={"q": "宇宙旅行の予約"})
    await client.get("/t/HD-26-99999", params={"token": "x"})
    await client.get("/no/such/page/12345")
    await api_inquiry(client)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()

    def value(prefix: str) -> float:
        [line] = [line for line in lines if line.startswith(prefix)]
        return float(line.rsplit(" ", 1)[1])

    search = 'helpdesk_http_request_duration_seconds_count{method="GET",route="/api/faq/search"'
    assert value(search + ',status="200"}') >= 2
    # By template, never by path: one series for every ticket, one for unknown paths.
    assert any('route="/t/{reference}"' in line for line in lines)
    # Looked for in the series' names and labels, not in their values: a duration or a
    # timestamp may hold the digits 12345 by chance (seen once in CI).
    series = [line.rsplit(" ", 1)[0] for line in lines if not line.startswith("#")]
    assert not any("HD-26-99999" in name or "12345" in name for name in series)
    assert any('route="(unmatched)"' in line for line in lines)
    assert value('helpdesk_faq_questions_total{answered="yes"}') >= 1
    assert value('helpdesk_faq_questions_total{answered="no"}') >= 1
    assert value('helpdesk_tickets_created_total{channel="api",kind="inquiry"}') >= 1
    assert value('helpdesk_outbox_mails{status="queued"}') >= 1  # the confirmation
    assert value('helpdesk_outbox_mails{status="dead"}') == 0
    assert value('helpdesk_inbound_mails{status="failed"}') == 0


def test_metrics_addresses() -> None:
    assert may_read_metrics("127.0.0.1", ())
    assert may_read_metrics("::1", ())
    assert not may_read_metrics("203.0.113.9", ())
    assert may_read_metrics("203.0.113.9", ("203.0.113.0/24",))
    assert not may_read_metrics("unknown", ("203.0.113.0/24",))


async def test_each_response_carries_a_request_id_shown_on_the_error_page(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    given = await client.get("/healthz", headers={"X-Request-ID": "proxy-abc-12345"})
    assert given.headers["x-request-id"] == "proxy-abc-12345"
    # A header that could inject into logs or pages is replaced.
    odd = await client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert odd.headers["x-request-id"] != "<script>alert(1)</script>"

    refused = await client.get("/console/logout")  # POST only: the error page
    assert refused.status_code == 405
    shown = soup(refused).select_one(".request-id code")
    assert shown is not None and shown.text == refused.headers["x-request-id"]


async def test_a_server_error_shows_its_request_id_and_logs_it(app: Starlette, caplog) -> None:  # type: ignore[no-untyped-def]
    async def broken(query: str) -> None:
        raise RuntimeError("boom")

    app.state.helpdesk.faq.ask_and_log = broken
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        page = await http.get("/faq/ask", params={"q": "領収書"})
        api = await http.get("/api/faq/search", params={"q": "領収書"})
    assert page.status_code == 500
    shown = soup(page).select_one(".request-id code")
    assert shown is not None and shown.text == page.headers["x-request-id"]
    assert api.json()["request_id"] == api.headers["x-request-id"]
    assert "boom" not in page.text
    logged = [r.getMessage() for r in caplog.records if r.name == "helpdesk"]
    assert any(page.headers["x-request-id"] in message for message in logged), logged


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("helpdesk", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
    token = request_id_var.set("abc123abc123")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "failed x"
    assert line["request_id"] == "abc123abc123"
    assert line["level"] == "error" and line["logger"] == "helpdesk"
    outside = json.loads(JsonFormatter().format(record))
    assert "request_id" not in outside
