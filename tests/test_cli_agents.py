"""``main.py agent ...`` and ``main.py ticket revoke-link``, run as the shop owner runs them."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from helpdesk.app import create_app
from helpdesk.models import Outbox
from helpdesk.settings import Settings
from tests.helpers import PASSWORD, rows, soup, submit_inquiry
from tests.test_cli import run


def test_agents_are_managed_from_the_command_line(tmp_path: Path) -> None:
    env = {
        "HELPDESK_VAR_DIR": str(tmp_path / "var"),
        "HELPDESK_SECRET_KEY": "cli-test-secret",
        "HELPDESK_BASE_URL": "https://help.example.jp",
    }
    added = run("agent", "add", "Boss@InteriorLtd.jp", "--name", "店長", "--admin", env=env)
    assert added.returncode == 0, added.stderr
    assert "boss@interiorltd.jp" in added.stdout and "(admin)" in added.stdout
    [link] = re.findall(r"https://help\.example\.jp/console/password/\S+", added.stdout)
    listed = run("agent", "list", env=env)
    assert re.search(r"boss@interiorltd\.jp\s+admin\s+no password yet\s+店長", listed.stdout)

    settings = Settings(
        _env_file=None,
        var_dir=tmp_path / "var",
        secret_key="cli-test-secret",
        base_url="https://help.example.jp",
    )

    async def use_the_link() -> str:
        app = create_app(settings)
        await app.state.helpdesk.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            base = "https://help.example.jp"
            async with httpx.AsyncClient(transport=transport, base_url=base) as http:
                path = httpx.URL(link).path
                csrf = soup(await http.get(path)).select_one("input[name=csrf_token]")["value"]
                data = {"csrf_token": csrf, "password": PASSWORD, "password_confirmation": PASSWORD}
                done = await http.post(path, data=data)
                assert done.status_code == 303
                assert (await http.get("/console/agents")).status_code == 200
            ticket = await submit_inquiry(app)
            return ticket.reference
        finally:
            await app.state.helpdesk.shutdown()

    reference = asyncio.run(use_the_link())
    assert "active" in run("agent", "list", env=env).stdout

    disabled = run("agent", "disable", "boss@interiorltd.jp", env=env)
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    assert "disabled" in run("agent", "list", env=env).stdout
    reset = run("agent", "reset-password", "boss@interiorltd.jp", env=env)
    assert reset.returncode == 0 and "/console/password/" in reset.stdout
    removed = run("agent", "remove", "boss@interiorltd.jp", env=env)
    assert removed.returncode == 0 and "removed" in removed.stdout
    unknown = run("agent", "disable", "nobody@interiorltd.jp", env=env)
    assert unknown.returncode == 1 and "no agent" in unknown.stderr
    odd = run("agent", "add", "not an address", "--name", "x", env=env)
    assert odd.returncode == 1 and "error" in odd.stderr

    revoked = run("ticket", "revoke-link", reference.lower(), env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert "no longer open" in revoked.stdout
    assert run("ticket", "revoke-link", "HD-99-99999", env=env).returncode == 1

    async def mails() -> list[Outbox]:
        app = create_app(settings)
        await app.state.helpdesk.startup()
        try:
            return await rows(app, Outbox, Outbox.kind == "customer_link")
        finally:
            await app.state.helpdesk.shutdown()

    [mail] = asyncio.run(mails())
    assert mail.to_address == "hanako@example.jp"
