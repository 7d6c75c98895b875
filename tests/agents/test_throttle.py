"""Login throttling: free tries, then a doubling wait, per account and per client."""

from __future__ import annotations

from helpdesk.agents.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_past_the_free_ones_make_a_doubling_wait() -> None:
    clock = Clock()
    throttle = LoginThrottle(account_free=3, client_free=100, base=30, max_wait=100, clock=clock)
    keys = LoginThrottle.keys(" Sato@Example.jp ", "203.0.113.5")
    assert keys == ("account:sato@example.jp", "client:203.0.113.5")
    for _ in range(3):
        assert throttle.wait(*keys) is None
        throttle.failed(*keys)
    assert throttle.wait(*keys) == 30
    clock.now += 30
    assert throttle.wait(*keys) is None
    throttle.failed(*keys)
    assert throttle.wait(*keys) == 60
    throttle.failed(*keys)
    throttle.failed(*keys)
    assert throttle.wait(*keys) == 100  # capped
    throttle.succeeded(keys[0])
    assert throttle.wait(*keys) is None


def test_a_client_trying_many_accounts_is_throttled_too() -> None:
    clock = Clock()
    throttle = LoginThrottle(account_free=5, client_free=3, clock=clock)
    for number in range(3):
        throttle.failed(*LoginThrottle.keys(f"user{number}@example.jp", "198.51.100.7"))
    fresh = LoginThrottle.keys("another@example.jp", "198.51.100.7")
    assert throttle.wait(*fresh) is not None
    assert throttle.wait(*LoginThrottle.keys("another@example.jp", "192.0.2.1")) is None


def test_failures_are_forgotten_and_memory_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(account_free=1, window=600, max_keys=10, clock=clock)
    keys = LoginThrottle.keys("a@example.jp", "192.0.2.1")
    throttle.failed(*keys)
    assert throttle.wait(*keys) is not None
    clock.now += 601
    assert throttle.wait(*keys) is None
    for number in range(50):
        throttle.failed(f"account:{number}")
    assert len(throttle._failures) <= 10
