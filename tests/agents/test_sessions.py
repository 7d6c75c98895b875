"""The session cookie's value: signed, versioned, idle and absolute expiry."""

from __future__ import annotations

from helpdesk.agents.sessions import ABSOLUTE, IDLE, SessionCodec, SessionData, cookie_header

NOW = 1_800_000_000


def test_a_session_round_trips_and_expires() -> None:
    codec = SessionCodec("secret-one")
    data = SessionData(7, 3, NOW - 100, NOW - 50)
    value = codec.dumps(data)
    assert codec.loads(value, now=NOW) == data
    assert codec.loads(value, now=NOW - 50 + IDLE.total_seconds() + 1) is None
    old = codec.dumps(SessionData(7, 3, NOW - int(ABSOLUTE.total_seconds()) - 1, NOW))
    assert codec.loads(old, now=NOW) is None


def test_forged_or_odd_values_are_no_session() -> None:
    codec = SessionCodec("secret-one")
    value = codec.dumps(SessionData(7, 3, NOW, NOW))
    assert SessionCodec("secret-two").loads(value, now=NOW) is None
    payload, _, signature = value.rpartition(".")
    assert codec.loads(payload + ".x" + signature[1:], now=NOW) is None
    for odd in (None, "", "x" * 600, "abc", "é.é"):
        assert codec.loads(odd, now=NOW) is None
    # Signed, but not a session (another shape of payload).
    from itsdangerous import URLSafeSerializer

    other = URLSafeSerializer("secret-one", salt="madoguchi-agent-session")
    for payload_value in ({"a": 7}, [7, 3, NOW], [7, "3", NOW, NOW], [True, 3, NOW, NOW]):
        assert codec.loads(str(other.dumps(payload_value)), now=NOW) is None


def test_cookie_flags() -> None:
    plain = cookie_header("madoguchi_agent", "v", secure=False, max_age=60)
    assert plain == "madoguchi_agent=v; HttpOnly; Max-Age=60; Path=/; SameSite=Lax"
    assert cookie_header("__Host-madoguchi_agent", "v", secure=True, max_age=0).endswith("; Secure")
