"""Test helpers in one place: a free port, an SMTP recorder, HTML, rows, and factories.

Test files import these instead of writing their own; fixtures built on them live in
``conftest.py`` (the app and its client) or in the one test file that needs them.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import date
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib
import httpx
from aiosmtpd.controller import Controller
from bs4 import BeautifulSoup
from sqlalchemy import func, select
from starlette.applications import Starlette

from helpdesk.models import Agent, AgentRole, Ticket, TicketKind
from helpdesk.tickets import Submission, today_in_japan
from tests import imaging


class Lines(logging.Handler):
    """Keeps the records a logger writes (``access_log`` in conftest.py attaches one to
    the access log)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]


# The shop's support inbox in data/shop.toml: mail to the agents goes there.
SUPPORT = "admin@interiorltd.jp"

# -- network -------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpRecorder:
    """An aiosmtpd handler that keeps every message it receives, with its recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.messages if address in rcpt]


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpRecorder, int]]:
    """A real SMTP server on loopback recording what it receives: ``(recorder, port)``."""
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


# -- mail ----------------------------------------------------------------------------------------


def mail(frm: str, to: str, subject: str, body: str, **headers: str) -> EmailMessage:
    """A plain-text mail with a fresh Message-ID; ``In_Reply_To="..."`` sets In-Reply-To."""
    message = EmailMessage()
    message["From"] = frm
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.jp")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


async def deliver(port: int, message: EmailMessage | bytes, *, to: list[str] | None = None) -> None:
    """Send over SMTP to 127.0.0.1:``port`` (raw bytes go to the support inbox by default)."""
    if isinstance(message, bytes):
        await aiosmtplib.send(
            message,
            hostname="127.0.0.1",
            port=port,
            sender="x@example.jp",
            recipients=to or [SUPPORT],
        )
    else:
        await aiosmtplib.send(message, hostname="127.0.0.1", port=port, recipients=to)


def text_of(message: EmailMessage) -> str:
    """The plain-text body of a received mail."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    """The HTML body of a received mail."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


class MailLoop:
    """The app between two real SMTP servers on loopback: its own receiver (mail sent to
    the shop) and a recorder standing for the shop's outgoing server (mail the app sends).
    """

    def __init__(self, app: Starlette, recorder: SmtpRecorder) -> None:
        self.app = app
        self.recorder = recorder

    @property
    def port(self) -> int:
        """The app's own receiver."""
        return int(self.app.state.helpdesk.settings.inbound_smtp_port)

    async def send(self, message: EmailMessage | bytes, *, to: list[str] | None = None) -> None:
        """Deliver ``message`` to the shop by SMTP (to its To header, or ``to``)."""
        await deliver(self.port, message, to=to)

    async def drain(self) -> int:
        """Send what the outbox holds through the recording server; how many were sent."""
        return int(await self.app.state.helpdesk.mail_sender().drain())

    def to(self, address: str) -> list[EmailMessage]:
        return self.recorder.to(address)

    def answer(self, original: EmailMessage, frm: str, body: str, **headers: str) -> EmailMessage:
        """A reply to ``original`` as mail clients write one: to its Reply-To, threaded."""
        return mail(
            frm,
            str(original["Reply-To"]),
            f"Re: {original['Subject']}",
            body,
            In_Reply_To=str(original["Message-ID"]),
            References=str(original["Message-ID"]),
            **headers,
        )


# -- HTML ----------------------------------------------------------------------------------------


def soup(response: httpx.Response | str) -> BeautifulSoup:
    """The page parsed, to check with selectors rather than substrings."""
    return BeautifulSoup(response if isinstance(response, str) else response.text, "html.parser")


async def form_state(client: httpx.AsyncClient, path: str) -> dict[str, str]:
    """The hidden fields of a freshly loaded form (CSRF token, submission id)."""
    page = soup(await client.get(path))
    return {
        field["name"]: field.get("value", "")
        for field in page.select("form.ticket-form input[type=hidden]")
    }


async def csrf_token(client: httpx.AsyncClient) -> str:
    """The CSRF token of this client's cookie (a page that sets one is loaded first)."""
    page = soup(await client.get("/faq/ask"))
    meta = page.select_one("meta[name=csrf-token]")
    assert meta is not None
    return str(meta["content"])


# -- the database --------------------------------------------------------------------------------


async def rows(app: Starlette, model: type, *where: Any) -> list[Any]:
    """The rows of ``model`` matching ``where``, in the order they were added (by primary
    key: PostgreSQL returns updated rows in any order otherwise)."""
    order = model.__table__.primary_key.columns  # type: ignore[attr-defined]
    query = select(model).where(*where).order_by(*order)
    async with app.state.helpdesk.sessions() as session:
        return list((await session.execute(query)).scalars().all())


async def count(app: Starlette, model: type) -> int:
    async with app.state.helpdesk.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def the_ticket(app: Starlette, reference: str) -> Ticket:
    [ticket] = await rows(app, Ticket, Ticket.reference == reference)
    return ticket


# -- factories -----------------------------------------------------------------------------------


def today(app: Starlette) -> date:
    """Today in Japan, as the forms see it."""
    return today_in_japan(app.state.helpdesk.faq.policy)


def defect_fields(app: Starlette, **overrides: str) -> dict[str, str]:
    """The returns form filled in for a defect that arrived today (full-width order number)."""
    fields = {
        "kind": "defect",
        "name": "山田 花子",
        "email": "Hanako@Example.jp",
        "order_number": "＃１２３４",
        "arrived_on": today(app).isoformat(),
        "description": "ケースの角にひびが入っていました。",
    }
    return {**fields, **overrides}


def photos(overall: bytes | None = None, defect: bytes | None = None) -> dict[str, Any]:
    """The two photos a defect needs, as uploads (the first with GPS in its EXIF)."""
    return {
        "photo_overall": ("IMG_0001.jpg", overall or imaging.jpeg(gps=True), "image/jpeg"),
        "photo_defect": ("IMG_0002.jpg", defect or imaging.jpeg(color="red"), "image/jpeg"),
    }


async def api_defect(client: httpx.AsyncClient, app: Starlette, **fields: str) -> dict[str, Any]:
    """A defect ticket with both photos, made through the API; its JSON answer."""
    data = {**defect_fields(app), **fields}
    response = await client.post("/api/tickets", data=data, files=photos())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def api_inquiry(client: httpx.AsyncClient, **fields: str) -> dict[str, Any]:
    """山田 花子's inquiry (a parcel not arrived), made through the API as JSON; its answer."""
    data = {
        "kind": "inquiry",
        "category": "not_arrived",
        "name": "山田 花子",
        "email": "hanako@example.jp",
        "description": "注文した商品がまだ届きません。",
        **fields,
    }
    response = await client.post("/api/tickets", json=data)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def submit_inquiry(
    app: Starlette, *, email: str = "hanako@example.jp", name: str = "山田 花子", **fields: Any
) -> Ticket:
    """An inquiry made straight through the service (no HTTP), with its mails queued."""
    return await inquiry(app.state.helpdesk.tickets, email=email, name=name, **fields)


async def inquiry(
    tickets: Any, *, email: str = "hanako@example.jp", name: str = "山田 花子", **fields: Any
) -> Ticket:
    """``submit_inquiry`` through a ``TicketService`` (a helpdesk without a web app)."""
    submission = Submission(
        kind=TicketKind.inquiry,
        name=name,
        email=email,
        description=fields.pop("description", "注文した商品がまだ届きません。"),
        category=fields.pop("category", "not_arrived"),
        **fields,
    )
    ticket, created = await tickets.submit(submission, {}, late=False)
    assert created
    return ticket  # type: ignore[no-any-return]


async def add_agent(
    app: Starlette, email: str = "sato@interiorltd.jp", name: str = "佐藤"
) -> Agent:
    return await app.state.helpdesk.tickets.add_agent(email, name)  # type: ignore[no-any-return]


async def reply_address(app: Starlette, reference: str, *, agents: bool = False) -> str:
    """The signed address replies to the ticket's mails go to (the agents' one if asked)."""
    ticket = await the_ticket(app, reference)
    return app.state.helpdesk.tickets.access.reply_address(ticket, agents=agents)  # type: ignore[no-any-return]


# -- agents in the console -----------------------------------------------------------------------

#: A password that passes the rules, for agents made by the tests.
PASSWORD = "correct horse battery staple"


async def console_agent(
    app: Starlette,
    email: str = "sato@interiorltd.jp",
    name: str = "佐藤",
    *,
    admin: bool = False,
    password: str = PASSWORD,
) -> Agent:
    """An agent with a password set (through the one-time link, as a person does)."""
    role = AgentRole.admin if admin else None
    accounts = app.state.helpdesk.accounts
    return await agent_with_password(accounts, email, name, role=role, password=password)


async def agent_with_password(
    accounts: Any,
    email: str,
    name: str,
    *,
    role: AgentRole | None = None,
    password: str = PASSWORD,
) -> Agent:
    """``console_agent`` through the accounts service (a helpdesk without a web app)."""
    _agent, token = await accounts.add(email, name, role=role)
    updated = await accounts.set_password(token, password, client="127.0.0.1")
    assert updated is not None
    return updated  # type: ignore[no-any-return]


async def log_in(
    client: httpx.AsyncClient,
    email: str = "sato@interiorltd.jp",
    password: str = PASSWORD,
    *,
    next_path: str = "",
) -> httpx.Response:
    """Post the login form as a browser does (the page first, for its CSRF token); a
    session the client holds is dropped first (the login page sends it on otherwise)."""
    for name in ("madoguchi_agent", "__Host-madoguchi_agent"):
        client.cookies.delete(name)
    page = soup(await client.get("/console/login"))
    field = page.select_one("form.login-form input[name=csrf_token]")
    assert field is not None, page
    data = {"email": email, "password": password, "csrf_token": field["value"], "next": next_path}
    return await client.post("/console/login", data=data)


async def log_out(client: httpx.AsyncClient) -> httpx.Response:
    """Press ログアウト on a console page."""
    page = soup(await client.get("/console"))
    field = page.select_one("form.logout input[name=csrf_token]")
    assert field is not None, page
    return await client.post("/console/logout", data={"csrf_token": field["value"]})


@asynccontextmanager
async def logged_in_client(
    app: Starlette, *, admin: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    """``async with logged_in_client(app) as console``: a client of its own (its own
    cookies) logged in as an agent (田中, or an admin)."""
    email = "admin@example.jp" if admin else "tanaka@example.jp"
    await console_agent(app, email, "管理 太郎" if admin else "田中", admin=admin)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await log_in(http, email)
        assert response.status_code == 303, response.text
        yield http
