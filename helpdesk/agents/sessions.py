"""The agent's session: a signed cookie, no server-side session table.

The cookie holds the agent's id, their ``session_version``, when the session began and
when it was last used, signed with the app's secret key (itsdangerous, its own salt: no
other signature of the app can pass for a session). A session ends

- after ``IDLE`` without a request (the cookie is re-signed as it is used, at most every
  ``REFRESH_AFTER``),
- ``ABSOLUTE`` after login whatever the use,
- at once for every session of an agent whose ``session_version`` was bumped (password
  changed, disabled, removed, password reset), and at logout (the cookie is cleared and the
  version bumped, so a copy of the cookie is no use either).

Cookie flags: ``HttpOnly; SameSite=Lax; Path=/``; over https (the request's scheme or an
``https://`` base URL behind a proxy) also ``Secure`` and the ``__Host-`` name prefix, which
the browser accepts only from a secure origin, for the whole host, set by no subdomain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeSerializer

IDLE = timedelta(hours=12)
ABSOLUTE = timedelta(days=7)
#: A used session is re-signed (idle time restarted) when its last signing is this old.
REFRESH_AFTER = timedelta(minutes=5)
COOKIE = "madoguchi_agent"
SECURE_COOKIE = "__Host-madoguchi_agent"
_SALT = "madoguchi-agent-session"


@dataclass(frozen=True, slots=True)
class SessionData:
    agent_id: int
    version: int
    issued_at: int  # Unix seconds
    seen_at: int  # Unix seconds, when last signed


class SessionCodec:
    """Signs and reads session cookie values; ``now`` is always passed (testable time)."""

    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeSerializer(secret_key, salt=_SALT)

    def dumps(self, data: SessionData) -> str:
        payload = [data.agent_id, data.version, data.issued_at, data.seen_at]
        return str(self._serializer.dumps(payload))

    def loads(self, value: str | None, *, now: float) -> SessionData | None:
        """The session in ``value`` while it is valid at ``now``; None when it is missing,
        forged, malformed, idle too long or too old."""
        if not value or len(value) > 512:
            return None
        try:
            payload = self._serializer.loads(value)
        except BadSignature:
            return None
        if (
            not isinstance(payload, list)
            or len(payload) != 4
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in payload)
        ):
            return None
        data = SessionData(*payload)
        if now - data.seen_at > IDLE.total_seconds() or now < data.issued_at - 60:
            return None
        if now - data.issued_at > ABSOLUTE.total_seconds():
            return None
        return data


def cookie_header(name: str, value: str, *, secure: bool, max_age: int) -> str:
    """The Set-Cookie value for a session cookie (``max_age`` 0 clears it)."""
    cookie = f"{name}={value}; HttpOnly; Max-Age={max_age}; Path=/; SameSite=Lax"
    return cookie + "; Secure" if secure else cookie
