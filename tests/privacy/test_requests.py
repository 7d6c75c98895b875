"""Customers' privacy requests on /privacy: the same answer for any address, a signed
confirmation link, a ticket of its own with the policy's deadline, the copy as a ZIP
behind a signed expiring link, and the erasure mailed as done."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta

import httpx
from starlette.applications import Starlette

from helpdesk.db import as_utc, utcnow
from helpdesk.mail.outbox import SCRUBBED_ADDRESS
from helpdesk.models import (
    Attachment,
    Customer,
    Outbox,
    PrivacyAudit,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestState,
    Ticket,
)
from helpdesk.privacy.export import TICKET_FIELDS
from helpdesk.privacy.inventory import Handling, place
from tests.helpers import MailLoop, api_defect, csrf_token, rows, soup

EMAIL = "hanako@example.jp"


async def _ask(client: httpx.AsyncClient, email: str, kind: str) -> httpx.Response:
    token = await csrf_token(client)
    return await client.post(
        "/privacy/request", data={"email": email, "kind": kind, "csrf_token": token}
    )


def _link(outbox: Outbox, path: str) -> str:
    match = re.search(rf"http://testserver({path}\?token=[^\s]+)", outbox.text)
    assert match, outbox.text
    return match[1]


async def test_the_page_answers_the_same_whether_or_not_the_address_is_known(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await api_defect(client, app, email=EMAIL)
    page = soup(await client.get("/privacy"))
    assert page.select_one("form.privacy-form input[name=csrf_token]") is not None
    known = await _ask(client, EMAIL, "erasure")
    unknown = await _ask(client, "nobody@example.jp", "erasure")
    assert known.status_code == unknown.status_code == 200
    assert (
        soup(known).select_one("main, body").get_text()
        == soup(unknown).select_one("main, body").get_text()
    )
    mails = {row.to_address: row for row in await rows(app, Outbox, Outbox.ticket_id.is_(None))}  # type: ignore[union-attr]
    assert mails[EMAIL].kind == "privacy_confirm" and "/privacy/confirm?token=" in mails[EMAIL].text
    assert mails["nobody@example.jp"].kind == "privacy_unknown"
    assert "/privacy/confirm" not in mails["nobody@example.jp"].text
    # Nothing was requested yet: only the confirmation makes a request.
    assert await rows(app, PrivacyRequest) == []


async def test_a_bad_form_keeps_what_was_typed(client: httpx.AsyncClient) -> None:
    response = await _ask(client, "hanako@example.jp", "")
    assert response.status_code == 400
    page = soup(response)
    assert page.select_one("#kind-error") is not None
    assert page.select_one("input[name=email]")["value"] == "hanako@example.jp"


async def test_confirming_makes_one_request_with_a_ticket_due_by_the_policy(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await api_defect(client, app, email=EMAIL)
    await _ask(client, EMAIL, "erasure")
    [mail] = await rows(app, Outbox, Outbox.kind == "privacy_confirm")
    link = _link(mail, "/privacy/confirm")
    opened = await client.get(link)
    assert opened.status_code == 200 and await rows(app, PrivacyRequest) == []  # a GET acts not
    token = soup(opened).select_one("form.privacy-confirm input[name=token]")["value"]
    data = {"token": token, "csrf_token": await csrf_token(client)}
    first = await client.post("/privacy/confirm", data=data)
    again = await client.post("/privacy/confirm", data=data)
    assert first.status_code == again.status_code == 200
    [request] = await rows(app, PrivacyRequest)
    assert request.kind is PrivacyRequestKind.erasure
    assert request.state is PrivacyRequestState.pending
    days = app.state.helpdesk.faq.policy.deletion_days
    assert abs(as_utc(request.due_at) - (utcnow() + timedelta(days=days))) < timedelta(minutes=5)
    [ticket] = await rows(app, Ticket, Ticket.id == request.ticket_id)
    assert ticket.category == "privacy"
    assert json.loads(request.preview)["tickets"] == 2  # the defect and the request's own
    # A forged or altered link opens nothing.
    assert (
        await client.get("/privacy/confirm?token=erasure.1.99999999999.forged")
    ).status_code == 404
    forged = link.replace("erasure.", "export.", 1)
    assert (await client.get(forged)).status_code == 404


async def test_the_copy_holds_every_ticket_message_and_photo_and_expires(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    helpdesk = app.state.helpdesk
    created = await api_defect(client, app, email=EMAIL, order_number="#24680")
    [customer] = await rows(app, Customer, Customer.email == EMAIL)
    token = helpdesk.privacy.confirm_token(
        PrivacyRequestKind.export, customer, utcnow() + timedelta(hours=1)
    )
    request = await helpdesk.privacy.confirm(token, client=None)
    assert request.kind is PrivacyRequestKind.export and request.export_file is None
    assert await helpdesk.privacy.build_exports() == 1
    [mail] = await rows(app, Outbox, Outbox.kind == "privacy_export")
    assert mail.to_address == EMAIL
    response = await client.get(_link(mail, "/privacy/export"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    document = json.loads(archive.read("data.json"))
    assert document["customer"]["email"] == EMAIL
    tickets = await rows(app, Ticket, Ticket.customer_id == customer.id)
    assert [t["reference"] for t in document["tickets"]] == [t.reference for t in tickets]
    defect = next(t for t in document["tickets"] if t["reference"] == created["reference"])
    assert defect["order_number"] == "#24680"
    # Every personal column of the ticket the inventory lists is in the copy (but the
    # secrets that open it: the link nonce and the submission keys).
    secrets = {"token_nonce", "submission_key", "submission_fingerprint"}
    for column in set(place("ticket").columns_with(Handling.erased)) - secrets:
        assert column in TICKET_FIELDS and column in defect
    assert defect["messages"] and "ひび" in defect["messages"][0]["body"]
    files = {name for name in archive.namelist() if name.startswith("photos/")}
    attachments = await rows(app, Attachment, Attachment.ticket_id == tickets[0].id)
    assert {a.digest for a in attachments} == {name.split("/")[1].split(".")[0] for name in files}
    for attachment in attachments:
        name = next(n for n in files if attachment.digest in n)
        assert archive.read(name) == helpdesk.photos.open(attachment.digest)
    assert [a.action for a in await rows(app, PrivacyAudit)] == ["export_requested", "export_sent"]
    # Once the link has expired, it opens nothing.
    async with helpdesk.sessions() as session, session.begin():
        stored = await session.get(PrivacyRequest, request.id)
        stored.expires_at = utcnow() - timedelta(seconds=1)
    assert (await client.get(_link(mail, "/privacy/export"))).status_code == 404


async def test_an_erasure_carried_out_is_mailed_and_the_mail_leaves_no_address(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop
) -> None:
    helpdesk = app.state.helpdesk
    await api_defect(client, app, email=EMAIL)
    [customer] = await rows(app, Customer, Customer.email == EMAIL)
    token = helpdesk.privacy.confirm_token(
        PrivacyRequestKind.erasure, customer, utcnow() + timedelta(hours=1)
    )
    request = await helpdesk.privacy.confirm(token, client=None)
    done = await helpdesk.privacy.carry_out(request.id, actor="agent:1")
    assert done.state is PrivacyRequestState.done
    await mail_loop.drain()
    [told] = mail_loop.to(EMAIL)[-1:]
    assert "削除が完了しました" in str(told["Subject"])
    [row] = await rows(app, Outbox, Outbox.kind == "privacy_erased")
    assert row.status == "sent" and row.to_address == SCRUBBED_ADDRESS and row.text == ""
    outbox = await rows(app, Outbox)
    assert not [r for r in outbox if EMAIL in r.to_address or EMAIL in r.text]
    # The erased customer's confirmation link opens nothing any more.
    assert await helpdesk.privacy.check_token(token) is None
