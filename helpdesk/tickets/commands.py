"""Changes to a ticket as data, and who makes them.

A mail reply (``#status resolved`` ...) and, next, a console button both become these
commands; ``TicketService.apply`` carries them out with one set of rules, events and mails,
whatever the channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from helpdesk.models import Agent, Priority, TicketStatus


@dataclass(frozen=True, slots=True)
class SetStatus:
    status: TicketStatus


@dataclass(frozen=True, slots=True)
class Assign:
    who: str  # an agent's e-mail address or name, as written; the service resolves it


@dataclass(frozen=True, slots=True)
class SetPriority:
    priority: Priority


@dataclass(frozen=True, slots=True)
class AddNote:
    """An internal note: never shown or sent to the customer; the change stays internal."""

    body: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """A message to the customer, mailed with any status change it comes with."""

    body: str


@dataclass(frozen=True, slots=True)
class AcceptMessage:
    """Make an unverified message (held for agents) the customer's own: shown on their page,
    and the ticket reopens as if the customer had written it then."""

    message_id: int


@dataclass(frozen=True, slots=True)
class MarkSpam:
    """Mark the ticket as spam (``spam`` True) or not: a spam ticket leaves the queue, and
    its sender's later mail is kept but opens no ticket and sends no mail."""

    spam: bool = True


@dataclass(frozen=True, slots=True)
class Merge:
    """Merge this ticket (a duplicate) into the ticket ``into`` (its reference): its
    messages, photos and history move there, and its customer's links lead there."""

    into: str


@dataclass(frozen=True, slots=True)
class Confirm:
    """Send the reply held for this agent (二重対応防止) after all: the agent has read the
    other answer. A ``Reply`` given with it replaces the held reply's text."""


Command = (
    AcceptMessage | SetStatus | Assign | SetPriority | MarkSpam | AddNote | Reply | Merge | Confirm
)

_COMMAND_TYPES: dict[str, type] = {
    kind.__name__: kind
    for kind in (
        AcceptMessage,
        SetStatus,
        Assign,
        SetPriority,
        MarkSpam,
        AddNote,
        Reply,
        Merge,
        Confirm,
    )
}


def to_data(commands: Sequence[Command]) -> list[dict[str, Any]]:
    """The commands as JSON-ready data (a held reply keeps its commands so)."""
    return [
        {"type": type(command).__name__}
        | {name: getattr(command, name) for name in getattr(command, "__slots__", ())}
        for command in commands
    ]


def from_data(data: Sequence[Mapping[str, Any]]) -> tuple[Command, ...]:
    """The commands ``to_data`` gave (enum values come back as their enums)."""
    found: list[Command] = []
    for item in data:
        fields = {key: value for key, value in item.items() if key != "type"}
        kind = _COMMAND_TYPES[item["type"]]
        if kind is SetStatus:
            fields["status"] = TicketStatus(fields["status"])
        elif kind is SetPriority:
            fields["priority"] = Priority(fields["priority"])
        found.append(kind(**fields))
    return tuple(found)


class Channel(StrEnum):
    web = "web"
    mail = "mail"
    api = "api"
    system = "system"


class ActorRole(StrEnum):
    agent = "agent"
    customer = "customer"
    system = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts on a ticket and through which channel.

    ``address`` is what the audit trail records as the actor (the agent's or the customer's
    address, or ``system``), the same whatever the channel.
    """

    role: ActorRole
    address: str
    channel: Channel
    name: str = ""
    agent_id: int | None = None

    @classmethod
    def agent(cls, agent: Agent, *, channel: Channel | str) -> Actor:
        return cls(ActorRole.agent, agent.email, Channel(channel), agent.name, agent.id)

    @classmethod
    def customer(cls, address: str, *, channel: Channel | str, name: str = "") -> Actor:
        return cls(ActorRole.customer, address, Channel(channel), name)

    @classmethod
    def system(cls) -> Actor:
        return cls(ActorRole.system, "system", Channel.system, "システム")
