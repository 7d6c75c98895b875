"""The customer's answer reopens the ticket whatever their mailer makes of From (issue 8).

Some mailers write the whole From header as one encoded word (``=?utf-8?b?...?=`` holding
「山田 花子 <hanako@example.jp>」); the address was not recognised and the answer was filed
as a stranger's. Here the customer answers the agent's reply, over real SMTP, with the From
forms seen in the fixtures; each must be their own message and reopen the ticket.

The whole-encoded forms depend on ``parse_message`` (helpdesk/mail/decode.py), fixed on the
mail parsing branch: they fail until that branch is merged.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from starlette.applications import Starlette

from helpdesk.models import Message, TicketStatus, Trust
from tests.helpers import SUPPORT, MailLoop, add_agent, api_inquiry, rows, the_ticket


def _b(text: str, charset: str = "utf-8") -> str:
    return base64.b64encode(text.encode(charset)).decode("ascii")


FROM_FORMS = {
    "whole-encoded-utf8": f"From: =?utf-8?b?{_b('山田 花子 <hanako@example.jp>')}?=",
    "whole-encoded-iso-2022-jp": (
        f"From: =?iso-2022-jp?b?{_b('山田 花子 <hanako@example.jp>', 'iso-2022-jp')}?="
    ),
    "no-space-after-colon": "From:hanako@example.jp",
    "angle-brackets-only": "From: <hanako@example.jp>",
    "address-then-comment": "From: hanako@example.jp (山田 花子)",
    "upper-case-address": "From: =?utf-8?b?" + _b("山田 花子") + "?= <HANAKO@Example.JP>",
    "encoded-name-without-space": "From: =?utf-8?b?" + _b("山田") + "?=<hanako@example.jp>",
}


@pytest.mark.parametrize("form", sorted(FROM_FORMS))
async def test_the_customers_answer_reopens_whatever_the_from_form(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop, form: str
) -> None:
    agent = await add_agent(app)
    created = await api_inquiry(client)
    reference = created["reference"]
    await mail_loop.drain()
    [notification] = mail_loop.to(SUPPORT)
    resolve = mail_loop.answer(notification, agent.email, "#status resolved\n\n発送しました。")
    await mail_loop.send(resolve)
    await mail_loop.drain()
    [_, reply] = mail_loop.to("hanako@example.jp")
    assert (await the_ticket(app, reference)).status == TicketStatus.resolved

    raw = (
        f"{FROM_FORMS[form]}\r\nTo: {reply['Reply-To']}\r\n"
        f"Subject: =?utf-8?b?{_b('Re: ' + str(reply['Subject']))}?=\r\n"
        f"Message-ID: <answer-{form}@example.jp>\r\nIn-Reply-To: {reply['Message-ID']}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{_b('まだ届いていません。')}\r\n"
    ).encode()  # a raw 8-bit header where the form has one
    await mail_loop.send(raw, to=[str(reply["Reply-To"])])

    ticket = await the_ticket(app, reference)
    [*_, message] = await rows(app, Message, Message.ticket_id == ticket.id)
    assert message.body == "まだ届いていません。"
    assert (message.sender, message.trust) == ("hanako@example.jp", Trust.verified)
    assert ticket.status == TicketStatus.open
