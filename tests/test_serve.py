"""``main.py serve`` as a real uvicorn server: whose address the app believes (issue 7, #5).

uvicorn rewrites the client address from ``X-Forwarded-For`` for requests from 127.0.0.1 by
default, so rotating that header from loopback bypassed the submission rate limit
(12 × 201). The server now runs with proxy headers off and the app believes them only from
``HELPDESK_TRUSTED_PROXIES``, in one place used by rate limits, the audit trail and the
access log.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from helpdesk.app import create_app
from helpdesk.settings import Settings
from main import server_config
from tests.helpers import Lines

INQUIRY = {
    "kind": "inquiry",
    "category": "not_arrived",
    "name": "山田 花子",
    "email": "hanako@example.jp",
}


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The app behind uvicorn, configured as ``serve`` configures it, on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(settings), host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def submit_with_rotating_forwarded_for(url: str, count: int) -> list[int]:
    with httpx.Client(base_url=url, timeout=30) as client:
        return [
            client.post(
                "/api/tickets",
                json={**INQUIRY, "description": f"{n}件目の問い合わせです。"},
                headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
            ).status_code
            for n in range(count)
        ]


def test_rotating_x_forwarded_for_from_loopback_does_not_bypass_the_limit(
    settings: Settings, access_log: Lines
) -> None:
    settings.submission_rate = "3/10m"
    settings.send_mail_in_process = False
    with serving(settings) as url:
        codes = submit_with_rotating_forwarded_for(url, 6)
    assert codes == [201, 201, 201, 429, 429, 429]
    # The access log names the peer, never an address the client made up.
    posts = [line for line in access_log.lines if "POST /api/tickets" in line]
    assert len(posts) == 6
    assert all(line.startswith("127.0.0.1 - ") for line in posts), posts


def test_a_configured_proxy_is_believed(settings: Settings, access_log: Lines) -> None:
    settings.submission_rate = "3/10m"
    settings.send_mail_in_process = False
    settings.trusted_proxies = "127.0.0.1"
    with serving(settings) as url:
        codes = submit_with_rotating_forwarded_for(url, 6)
        with httpx.Client(base_url=url, timeout=30) as client:
            # The same client behind the proxy is limited like anyone else.
            same = [
                client.post(
                    "/api/tickets",
                    json={**INQUIRY, "description": f"同じ人から{n}件目"},
                    headers={"X-Forwarded-For": "203.0.113.9"},
                ).status_code
                for n in range(4)
            ]
            # What the client wrote left of the proxy's own entry is not believed.
            spoofed = client.post(
                "/api/tickets",
                json={**INQUIRY, "description": "偽装"},
                headers={"X-Forwarded-For": "192.0.2.1, 203.0.113.9"},
            ).status_code
    assert codes == [201] * 6
    assert same == [201, 201, 201, 429]
    assert spoofed == 429
    posts = [line for line in access_log.lines if "POST /api/tickets" in line]
    assert posts[0].startswith("198.51.100.1 (via 127.0.0.1) - ")
    assert "token=" not in " ".join(access_log.lines)


async def test_the_audit_trail_records_the_address_the_app_decided(settings: Settings) -> None:
    """The same decision reaches the audit trail (``created`` event)."""
    settings.trusted_proxies = "10.0.0.0/8"
    app = create_app(settings)
    await app.state.helpdesk.startup()
    try:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.post(
                "/api/tickets",
                json={**INQUIRY, "description": "プロキシ経由"},
                headers={"X-Forwarded-For": "203.0.113.50, 10.9.9.9"},
            )
        assert response.status_code == 201
        from helpdesk.models import TicketEvent
        from tests.helpers import rows

        [created] = await rows(app, TicketEvent, TicketEvent.kind == "created")
        assert json.loads(created.data)["client"] == "203.0.113.50"
    finally:
        await app.state.helpdesk.shutdown()


def test_serve_runs_uvicorn_without_its_proxy_headers() -> None:
    config = server_config(object(), host="127.0.0.1", port=8000)
    assert config.proxy_headers is False
    assert config.access_log is False  # ours names the client the app decided on


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    settings = Settings(_env_file=None, trusted_proxies="127.0.0.1, 10.0.0.0/8, ::1")
    assert settings.trusted_proxy_list == ("127.0.0.1", "10.0.0.0/8", "::1")
    with pytest.raises(ValueError, match="HELPDESK_TRUSTED_PROXIES"):
        Settings(_env_file=None, trusted_proxies="proxy.example")
