"""What the agents' mails carry besides their event: mail the outbox gave up on."""

from __future__ import annotations

from datetime import timedelta

import httpx
from starlette.applications import Starlette

from helpdesk.db import utcnow
from helpdesk.models import Outbox, OutboxStatus
from tests.helpers import api_inquiry, rows


async def _dead_confirmation(app: Starlette) -> Outbox:
    async with app.state.helpdesk.sessions() as session, session.begin():
        row = Outbox(
            kind="ticket_confirmation",
            to_address="typo@exampel.jp",
            subject="[HD-26-00099] お問い合わせを受け付けました",
            text="...",
            message_id="dead-1@interiorltd.jp",
            status=OutboxStatus.dead,
            attempts=5,
            last_error="550 5.2.2 mailbox full",
            dead_at=utcnow() - timedelta(minutes=5),
        )
        session.add(row)
    return row


async def test_dead_mail_is_told_in_the_next_agents_mail_once(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Issue 7, #9: a mail given up on was seen only by `mail status`; the agents now hear
    of it in their next notification, with the command that sends it again."""
    dead = await _dead_confirmation(app)
    await api_inquiry(client)
    await api_inquiry(client, email="taro@example.jp", name="山田 太郎")
    first, second = await rows(app, Outbox, Outbox.kind == "ticket_notification")
    for part in (first.text, first.html or ""):
        assert f"番号 {dead.id}: typo@exampel.jp 宛" in part
        assert "mail retry" in part and "550 5.2.2 mailbox full" in part
    assert "送信できなかったメール" not in second.text  # told once
    assert "送信できなかったメール" not in (second.html or "")
    # Customers never hear of it.
    for confirmation in await rows(app, Outbox, Outbox.kind == "ticket_confirmation"):
        assert "送信できなかった" not in confirmation.text
