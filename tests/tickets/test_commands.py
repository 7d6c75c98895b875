"""``helpdesk.tickets.commands``: changes as data, and who makes them through which channel."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest

from helpdesk.models import Priority, TicketStatus
from helpdesk.tickets import Actor, ActorRole, AddNote, Channel, Reply, SetPriority, SetStatus


def test_commands_are_values() -> None:
    assert SetStatus(TicketStatus.resolved) == SetStatus(TicketStatus.resolved)
    assert {SetPriority(Priority.high), SetPriority(Priority.high)} == {SetPriority("high")}
    assert AddNote() == AddNote("")
    with pytest.raises(dataclasses.FrozenInstanceError):
        Reply("a").body = "b"  # type: ignore[misc]


def test_an_agent_is_recorded_by_address_whatever_the_channel() -> None:
    agent: Any = SimpleNamespace(id=7, email="sato@interiorltd.jp", name="佐藤")
    by_mail, by_web = Actor.agent(agent, channel="mail"), Actor.agent(agent, channel=Channel.web)
    assert by_mail.address == by_web.address == "sato@interiorltd.jp"
    assert (by_mail.channel, by_web.channel) == (Channel.mail, Channel.web)
    assert by_mail.role is ActorRole.agent and (by_mail.name, by_mail.agent_id) == ("佐藤", 7)
    with pytest.raises(ValueError):
        Actor.agent(agent, channel="fax")


def test_customers_and_the_system_are_actors_too() -> None:
    customer = Actor.customer("hanako@example.jp", channel="web", name="山田 花子")
    assert (customer.role, customer.address) == (ActorRole.customer, "hanako@example.jp")
    assert (Actor.system().role, Actor.system().address) == (ActorRole.system, "system")


def test_commands_go_to_data_and_back() -> None:
    """A held reply keeps its commands as JSON (``HeldReply.commands``)."""
    import json

    from helpdesk.tickets.commands import (
        AcceptMessage,
        Assign,
        Confirm,
        Merge,
        from_data,
        to_data,
    )

    commands = (
        SetStatus(TicketStatus.pending),
        SetPriority(Priority.urgent),
        Assign("佐藤"),
        AddNote("メモ"),
        Reply("お待たせしました。"),
        AcceptMessage(12),
        Merge("HD-26-00001"),
        Confirm(),
    )
    back = from_data(json.loads(json.dumps(to_data(commands))))
    assert back == commands
    assert isinstance(back[0], SetStatus) and back[0].status is TicketStatus.pending
