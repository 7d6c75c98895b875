"""Agents' accounts: adding, one-time password links, login, disabling, removal.

Every change is one transaction and leaves an event in the audit trail (``TicketEvent``
with no ticket): ``agent_added``, ``agent_role_changed``, ``agent_password_link``,
``agent_password_set``, ``agent_login``, ``agent_login_failed``, ``agent_logout``,
``agent_disabled``, ``agent_enabled``, ``agent_removed``, ``agent_approval_required``,
``agent_approval_lifted`` (and ``unassigned`` on each ticket
a removed agent held). The actor is who acted (an agent's address, or ``main.py`` for the
command line); the data names the agent concerned and, for logins, the client address.
No password, hash or token is ever recorded.

The one-time link carries a random token; only its SHA-256 is stored, with an expiry
(``LINK_LIFETIME``), and it is cleared when used: a link works once, and a copy of the
database opens nothing.

A removed agent's row stays (``removed_at``, no password, sessions ended): the audit trail
names agents by address, and the row says who that was. Adding the address again brings
the agent back with a new link.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.agents.passwords import hash_password, password_problems, verify_password
from helpdesk.agents.throttle import LoginThrottle
from helpdesk.db import as_utc, utcnow
from helpdesk.models import Agent, AgentRole, Ticket, TicketEvent
from helpdesk.tickets import store
from helpdesk.tickets.addresses import normalize_address

LINK_LIFETIME = timedelta(hours=48)
#: The actor recorded for changes made on the command line.
COMMAND_LINE = "main.py"


class AccountError(Exception):
    """An account operation that cannot be done (no such agent ...); ``str()`` says why."""


class PasswordRefused(Exception):
    """The new password breaks the rules; ``problems`` are Japanese sentences."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LoginResult:
    agent: Agent | None = None
    #: Seconds to wait when throttled (nothing was checked).
    retry_after: float | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(f"madoguchi-password-link:{token}".encode()).hexdigest()


class AgentAccounts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        throttle: LoginThrottle | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.throttle = throttle or LoginThrottle(sessions)
        self.clock = clock

    # -- the audit trail --------------------------------------------------------------------

    @staticmethod
    def _event(session: AsyncSession, kind: str, actor: str, **data: Any) -> None:
        store.add_event(session, ticket_id=None, kind=kind, actor=actor, data=data)

    async def events(self, *, limit: int = 100) -> list[TicketEvent]:
        """The latest account events (no ticket), newest first."""
        async with self.sessions() as session:
            found = await session.execute(
                select(TicketEvent)
                .where(col(TicketEvent.ticket_id).is_(None), col(TicketEvent.kind).like("agent%"))
                .order_by(col(TicketEvent.id).desc())
                .limit(limit)
            )
            return list(found.scalars().all())

    # -- reading ----------------------------------------------------------------------------

    async def agents(self) -> list[Agent]:
        async with self.sessions() as session:
            found = await session.execute(select(Agent).order_by(col(Agent.id)))
            return list(found.scalars().all())

    async def get(self, agent_id: int) -> Agent | None:
        async with self.sessions() as session:
            return await session.get(Agent, agent_id)

    async def _by_email(self, session: AsyncSession, email: str) -> Agent:
        agent = await store.agent_by_email(session, email=email.strip())
        if agent is None:
            raise AccountError(f"no agent has the address {email.strip()!r}")
        return agent

    # -- the command line's changes ---------------------------------------------------------

    async def add(
        self,
        email: str,
        name: str,
        *,
        role: AgentRole | None = None,
        actor: str = COMMAND_LINE,
    ) -> tuple[Agent, str]:
        """Register the agent (or update their name and role, or bring a removed agent
        back) and issue a one-time password link: ``(agent, token)``.

        ``role`` None keeps an existing agent's role (a new one is a plain agent).

        Raises:
            AddressError: (a ``ValueError``) for an address ``normalize_address`` refuses.
        """
        email = normalize_address(email)
        now = self.clock()
        async with self.sessions() as session, session.begin():
            agent = await store.agent_by_email(session, email=email)
            if agent is None:
                agent = Agent(email=email, name=name.strip() or email, role=role or AgentRole.agent)
                session.add(agent)
                self._event(session, "agent_added", actor, agent=email, role=agent.role)
            else:
                agent.name = name.strip() or agent.name
                if agent.removed_at is not None:
                    agent.removed_at = None
                    self._event(session, "agent_added", actor, agent=email, role=agent.role)
                if role is not None and role != agent.role:
                    self._event(
                        session, "agent_role_changed", actor, agent=email, old=agent.role, new=role
                    )
                    agent.role = role
                    agent.session_version += 1
            token = self._new_link(session, agent, actor, now)
        return agent, token

    def _new_link(self, session: AsyncSession, agent: Agent, actor: str, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        agent.password_token_hash = token_hash(token)
        agent.password_token_expires_at = now + LINK_LIFETIME
        self._event(session, "agent_password_link", actor, agent=agent.email)
        return token

    async def reset_password(self, email: str, *, actor: str = COMMAND_LINE) -> tuple[Agent, str]:
        """A new one-time link; the old password stops working and every session ends.

        Raises:
            AccountError: no agent has the address, or the agent was removed.
        """
        async with self.sessions() as session, session.begin():
            agent = await self._by_email(session, email)
            if agent.removed_at is not None:
                raise AccountError(f"{agent.email} was removed: add the agent again")
            agent.password_hash = None
            agent.session_version += 1
            token = self._new_link(session, agent, actor, self.clock())
        return agent, token

    async def disable(self, email: str, *, actor: str = COMMAND_LINE) -> Agent:
        """The agent can no longer log in or act by mail; their sessions end.

        Raises:
            AccountError: no agent has the address.
        """
        async with self.sessions() as session, session.begin():
            agent = await self._by_email(session, email)
            if agent.disabled_at is None:
                agent.disabled_at = self.clock()
                agent.session_version += 1
                self._event(session, "agent_disabled", actor, agent=agent.email)
        return agent

    async def enable(self, email: str, *, actor: str = COMMAND_LINE) -> Agent:
        """Undo ``disable``.

        Raises:
            AccountError: no agent has the address, or the agent was removed.
        """
        async with self.sessions() as session, session.begin():
            agent = await self._by_email(session, email)
            if agent.removed_at is not None:
                raise AccountError(f"{agent.email} was removed: add the agent again")
            if agent.disabled_at is not None:
                agent.disabled_at = None
                self._event(session, "agent_enabled", actor, agent=agent.email)
        return agent

    async def remove(self, email: str, *, actor: str = COMMAND_LINE) -> tuple[Agent, list[str]]:
        """Remove the agent: no login, no mail commands, no password or link, sessions
        ended, and every ticket they held unassigned (an ``unassigned`` event on each).
        Returns the agent and the references of the tickets unassigned.

        Raises:
            AccountError: no agent has the address.
        """
        now = self.clock()
        async with self.sessions() as session, session.begin():
            agent = await self._by_email(session, email)
            tickets = (
                (
                    await session.execute(
                        select(Ticket)
                        .where(col(Ticket.assignee_id) == agent.id)
                        .order_by(col(Ticket.id))
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            for ticket in tickets:
                ticket.assignee_id = None
                ticket.updated_at = now
                store.add_event(
                    session,
                    ticket_id=ticket.id,
                    kind="unassigned",
                    actor=actor,
                    data={"from": agent.email, "reason": "agent_removed"},
                )
            if agent.removed_at is None:
                agent.removed_at = now
                self._event(session, "agent_removed", actor, agent=agent.email)
            agent.password_hash = None
            agent.password_token_hash = None
            agent.password_token_expires_at = None
            agent.session_version += 1
        return agent, [ticket.reference for ticket in tickets]

    async def set_needs_approval(self, agent_id: int, required: bool, *, by: Agent) -> Agent:
        """Whether the agent's replies wait for an admin's approval before they leave
        (``TicketService.apply`` holds them). Audited (``agent_approval_required`` or
        ``agent_approval_lifted``) when it changes.

        Raises:
            AccountError: ``by`` is not an admin, or no agent has this id.
        """
        if not by.is_admin:
            raise AccountError("承認の設定を変更できるのは管理者だけです。")
        async with self.sessions() as session, session.begin():
            agent = await session.get(Agent, agent_id, with_for_update=True)
            if agent is None:
                raise AccountError("この担当者は見つかりません。")
            if agent.needs_approval != required:
                agent.needs_approval = required
                kind = "agent_approval_required" if required else "agent_approval_lifted"
                self._event(session, kind, by.email, agent=agent.email)
        return agent

    # -- the one-time link ------------------------------------------------------------------

    async def by_password_token(self, token: str) -> Agent | None:
        """The active agent this unexpired link is for; None otherwise."""
        if not token or len(token) > 128:
            return None
        async with self.sessions() as session:
            found = await session.execute(
                select(Agent).where(col(Agent.password_token_hash) == token_hash(token))
            )
            agent = found.scalar_one_or_none()
        if agent is None or not agent.active or agent.password_token_expires_at is None:
            return None
        if as_utc(agent.password_token_expires_at) <= self.clock():
            return None
        return agent

    async def set_password(self, token: str, password: str, *, client: str) -> Agent | None:
        """Set the password of the link's agent and use the link up; sessions signed
        before end. None when the link is not (or no longer) valid.

        Raises:
            PasswordRefused: the password breaks the rules (nothing changed).
        """
        agent = await self.by_password_token(token)
        if agent is None:
            return None
        problems = password_problems(password, email=agent.email, name=agent.name)
        if problems:
            raise PasswordRefused(problems)
        hashed = await hash_password(password)
        async with self.sessions() as session, session.begin():
            current = await session.get(Agent, agent.id, with_for_update=True)
            # The link may have been used by a parallel request meanwhile.
            if current is None or current.password_token_hash != token_hash(token):
                return None
            current.password_hash = hashed
            current.password_token_hash = None
            current.password_token_expires_at = None
            current.session_version += 1
            self._event(session, "agent_password_set", current.email, client=client)
        return current

    # -- login ------------------------------------------------------------------------------

    async def login(self, email: str, password: str, *, client: str) -> LoginResult:
        """The agent when the address and password are right and the agent is active.

        Wrong address, wrong password, no password set yet, disabled or removed: all the
        same ``LoginResult()`` (the caller shows one message), after about the same time (a
        password is always checked). Throttled (``throttle``): ``retry_after`` is set and
        nothing is checked. A hash made with older parameters is replaced.
        """
        keys = LoginThrottle.keys(email, client)
        if (wait := await self.throttle.wait(*keys)) is not None:
            await self._record_failure(email, client, "throttled")
            return LoginResult(retry_after=wait)
        async with self.sessions() as session:
            agent = await store.agent_by_email(session, email=email.strip())
        matches, rehash = await verify_password(agent.password_hash if agent else None, password)
        if agent is None or not matches or not agent.active:
            await self.throttle.failed(*keys)
            reason = "unknown" if agent is None else "password" if not matches else "disabled"
            await self._record_failure(email, client, reason)
            return LoginResult()
        await self.throttle.succeeded(keys[0])
        new_hash = await hash_password(password) if rehash else None
        async with self.sessions() as session, session.begin():
            current = await session.get(Agent, agent.id)
            assert current is not None
            if new_hash is not None:
                current.password_hash = new_hash
            self._event(session, "agent_login", current.email, client=client)
        return LoginResult(agent=current)

    async def _record_failure(self, email: str, client: str, reason: str) -> None:
        async with self.sessions() as session, session.begin():
            agent = await store.agent_by_email(session, email=email.strip())
            # Only an agent's own address is recorded: what a stranger typed may be anyone's.
            actor = agent.email if agent is not None else "unknown"
            self._event(session, "agent_login_failed", actor, client=client, reason=reason)

    async def logout(self, agent: Agent, *, client: str) -> None:
        """End the agent's sessions (every copy of the cookie, on every device)."""
        async with self.sessions() as session, session.begin():
            current = await session.get(Agent, agent.id)
            if current is not None:
                current.session_version += 1
                self._event(session, "agent_logout", current.email, client=client)

    async def for_session(self, agent_id: int, version: int) -> Agent | None:
        """The agent a session cookie names, while it is active, has a password and the
        session's version is current."""
        agent = await self.get(agent_id)
        if agent is None or not agent.active or agent.password_hash is None:
            return None
        return agent if agent.session_version == version else None
