"""The agents' private link never reaches the customer, whatever the agent's mailer quotes.

Issue 8: an agent's mailer quoted the notification in a form the quote stripper did not
know, and the notification, with its ``/console/t/...`` link, went to the customer and
onto their status page (5 of 13 styles). Here an agent answers the real notification,
quoted in 13 styles (some carrying the agents' signed address in a quoted header block),
over real SMTP; the customer's mail (text and HTML) and status page (HTML and JSON) carry
the answer and nothing of the agents': no link, key, signed address or quoted notification.

The quote stripper leaves the notification in 5 of them (pipe, indentation, a Chinese
Outlook header block, Lotus Notes, pasted under an unknown rule and wrapped): the redaction
at the customer's side must hold alone there. The mail parsing branch builds its own
corpus for the stripper; these are the loop's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette

from tests.helpers import (
    SUPPORT,
    MailLoop,
    add_agent,
    api_inquiry,
    html_of,
    logged_in_client,
    soup,
    text_of,
    the_ticket,
)

ANSWER = "お待たせいたしました。本日、代わりの商品を発送いたしました。"
AGENT = "佐藤 <sato@interiorltd.jp>"
ATTRIBUTED_BY = f"COCO case <{SUPPORT}>"
# What the customer must never see of the notification (its first line, its footer).
NOTIFICATION_LINES = ("新しいお問い合わせが届きました", "返信のしかた")


@dataclass(frozen=True)
class Quoted:
    """The notification as the agent's mailer gives it: its text, subject, the agents'
    signed address it came from."""

    text: str
    subject: str
    agents_address: str

    def prefixed(self, prefix: str) -> str:
        return "\n".join(
            f"{prefix}{line}" if line else prefix.rstrip() for line in self.text.splitlines()
        )

    def header_block(self, keys: tuple[str, str, str, str, str]) -> str:
        frm, sent, to, reply_to, subject = keys
        return (
            f"{frm}: {ATTRIBUTED_BY}\n{sent}: 2026年11月24日 15:00\n{to}: {AGENT}\n"
            f"{reply_to}: {self.agents_address}\n{subject}: {self.subject}\n\n{self.text}"
        )


def wrapped(text: str, width: int = 60) -> str:
    """Long lines cut at ``width`` characters, as old mailers do (the link is cut too)."""
    out: list[str] = []
    for line in text.splitlines():
        while len(line) > width:
            out.append(line[:width])
            line = line[width:]
        out.append(line)
    return "\n".join(out)


STYLES: dict[str, Callable[[Quoted], str]] = {
    "gmail-ja": lambda q: (
        f"{ANSWER}\n\n2026年11月24日(火) 15:00 {ATTRIBUTED_BY}:\n\n" + q.prefixed("> ")
    ),
    "apple-mail-ja": lambda q: (
        f"{ANSWER}\n\n2026/11/24 15:00、{ATTRIBUTED_BY}のメール:\n\n" + q.prefixed("> ")
    ),
    "outlook-en-header-block": lambda q: (
        f"{ANSWER}\n\n________________________________\n"
        + q.header_block(("From", "Sent", "To", "Reply-To", "Subject"))
    ),
    "outlook-ja-header-block": lambda q: (
        f"{ANSWER}\n\n" + q.header_block(("差出人", "送信日時", "宛先", "返信先", "件名"))
    ),
    "original-message": lambda q: (
        f"{ANSWER}\n\n-----Original Message-----\n"
        + q.header_block(("From", "Sent", "To", "Reply-To", "Subject"))
    ),
    "forwarded": lambda q: (
        f"{ANSWER}\n\n---------- Forwarded message ---------\n"
        + q.header_block(("From", "Date", "To", "Reply-To", "Subject"))
    ),
    "pipe-quote": lambda q: f"{ANSWER}\n\nCOCO case wrote:\n" + q.prefixed("| "),
    "full-width-quote": lambda q: (
        f"{ANSWER}\n\n{ATTRIBUTED_BY} さんは書きました:\n" + q.prefixed("＞")
    ),
    "indented": lambda q: f"{ANSWER}\n\n{ATTRIBUTED_BY} 2026/11/24 15:00\n\n" + q.prefixed("\t"),
    "bottom-posted": lambda q: (
        f"2026年11月24日 15:00 {ATTRIBUTED_BY}:\n" + q.prefixed("> ") + f"\n\n{ANSWER}"
    ),
    "outlook-zh-header-block": lambda q: (
        f"{ANSWER}\n\n" + q.header_block(("发件人", "发送时间", "收件人", "回复", "主题"))
    ),
    "lotus-notes": lambda q: (
        f"{ANSWER}\n\n{ATTRIBUTED_BY}\n2026/11/24 15:00\n\n宛先\n{AGENT}\n\n"
        f"件名\n{q.subject}\n\n{q.text}"
    ),
    "pasted-and-wrapped": lambda q: f"{ANSWER}\n\n--- 元のメール ---\n" + wrapped(q.text),
}


def test_thirteen_styles() -> None:
    assert len(STYLES) == 13


@pytest.mark.parametrize("style", sorted(STYLES))
async def test_a_quoted_notification_never_reaches_the_customer(
    app: Starlette, client: httpx.AsyncClient, mail_loop: MailLoop, style: str
) -> None:
    await add_agent(app)
    created = await api_inquiry(client)
    ticket = await the_ticket(app, created["reference"])
    assert await mail_loop.drain() == 2
    [notification] = mail_loop.to(SUPPORT)
    access, urls = app.state.helpdesk.tickets.access, app.state.helpdesk.tickets.urls
    agent_key = access.agent_key(ticket)
    agents_address = access.reply_address(ticket, agents=True)
    quoted = Quoted(text_of(notification), str(notification["Subject"]), agents_address)
    assert urls.agent_url(ticket) in quoted.text  # what the agent's mailer quotes

    await mail_loop.send(mail_loop.answer(notification, AGENT, STYLES[style](quoted)))
    assert await mail_loop.drain() == 1
    [_, to_customer] = mail_loop.to("hanako@example.jp")

    status = httpx.URL(created["status_url"])
    page = await client.get(status.path, params=dict(status.params))
    as_json = await client.get(
        status.path, params=dict(status.params), headers={"Accept": "application/json"}
    )
    [_, answer] = as_json.json()["messages"]
    seen = {
        "mail text": text_of(to_customer),
        "mail html": html_of(to_customer),
        "mail subject": str(to_customer["Subject"]),
        "page": page.text,
        "json": as_json.text,
    }
    for where, text in seen.items():
        leaked = [
            value
            for value in (
                agent_key,
                agents_address,
                "/agent/",
                "/console/",
                "key=",
                *NOTIFICATION_LINES,
            )
            if value in text
        ]
        assert leaked == [], f"{where} of the customer carries {leaked}"
    assert ANSWER in text_of(to_customer) and ANSWER in page.text
    # The whole quoted notification went, not only its link: the answer alone is left.
    assert answer["author"] == "agent" and answer["body"] == ANSWER
    # The agents still see what the agent sent, link and all, on their own page.
    async with logged_in_client(app) as console:
        agents_page = soup(await console.get(urls.agent(ticket)))
    assert ANSWER in agents_page.select(".conversation .message.agent .body")[0].get_text()
