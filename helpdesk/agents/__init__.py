"""Agents' accounts and the console's sign-in.

- ``passwords``: argon2id hashing (off the event loop) and the rules of a new password.
- ``throttle``: failed logins per account and per client, with backoff.
- ``sessions``: the signed session cookie (idle and absolute expiry, versioned).
- ``accounts``: ``AgentAccounts``, the use cases (add, links, login, disable, remove).
- ``urls``: every console URL (``ConsoleUrls``) and ``safe_next``.

The web side (login pages, ``require_agent``) is ``helpdesk.web.auth``.
"""

from __future__ import annotations

from helpdesk.agents.accounts import (
    LINK_LIFETIME,
    AccountError,
    AgentAccounts,
    LoginResult,
    PasswordRefused,
)
from helpdesk.agents.throttle import LoginThrottle
from helpdesk.agents.urls import ConsoleUrls, safe_next

__all__ = [
    "LINK_LIFETIME",
    "AccountError",
    "AgentAccounts",
    "ConsoleUrls",
    "LoginResult",
    "LoginThrottle",
    "PasswordRefused",
    "safe_next",
]
