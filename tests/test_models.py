"""``helpdesk.models``: enum-typed columns over plain VARCHARs."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import StatementError
from starlette.applications import Starlette

from helpdesk.models import Author, Message, Priority, TicketKind, TicketStatus
from tests.helpers import rows, submit_inquiry, the_ticket


async def test_ticket_columns_read_back_as_their_enums(app: Starlette) -> None:
    ticket = await submit_inquiry(app)
    stored = await the_ticket(app, ticket.reference)
    assert type(stored.kind) is TicketKind and stored.kind is TicketKind.inquiry
    assert type(stored.status) is TicketStatus and stored.status is TicketStatus.new
    assert type(stored.priority) is Priority and stored.priority is Priority.normal
    [message] = await rows(app, Message)
    assert message.author is Author.customer
    # Found by value, as a string or an enum alike.
    assert await rows(app, Message, Message.author == "customer") == [message]


async def test_a_value_outside_the_enum_is_refused_not_stored(app: Starlette) -> None:
    ticket = await submit_inquiry(app)
    async with app.state.helpdesk.sessions() as session:
        stored = await session.get(type(ticket), ticket.id)
        stored.status = "archived"
        with pytest.raises(StatementError, match="archived"):
            await session.commit()
    assert (await the_ticket(app, ticket.reference)).status is TicketStatus.new
