"""Login throttling: failed attempts per account and per client address, with backoff.

A key (``account:<address typed>`` or ``client:<ip>``) may fail ``free`` times; each failure
after that doubles the wait before the next try (``base`` seconds, then twice that ...,
capped at ``max_wait``). Failures are forgotten ``window`` after the last one, and an
account's on a successful login. The address typed is the key whether an agent has it or
not, so throttling says nothing about which addresses exist.

In memory, per process, bounded (least recently failed keys are dropped beyond
``max_keys``), like ``security.RateLimiter``: with several workers each keeps its own count,
which multiplies an attacker's tries by the number of workers and no more.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        *,
        account_free: int = 5,
        client_free: int = 20,
        base: float = 30.0,
        max_wait: float = 900.0,
        window: float = 3600.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = {"account": account_free, "client": client_free}
        self.base = base
        self.max_wait = max_wait
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        # key -> (failures, time of the last one); keys in order of last failure.
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    @staticmethod
    def keys(account: str, client: str) -> tuple[str, str]:
        return f"account:{account.strip().casefold()}", f"client:{client}"

    def wait(self, *keys: str) -> float | None:
        """Seconds to wait before any of ``keys`` may try again; None when they may now."""
        now = self.clock()
        longest = 0.0
        for key in keys:
            entry = self._failures.get(key)
            if entry is None:
                continue
            failures, last = entry
            if now - last > self.window:
                del self._failures[key]
                continue
            free = self.free[key.partition(":")[0]]
            if failures >= free:
                delay = min(self.base * 2 ** (failures - free), self.max_wait)
                longest = max(longest, delay - (now - last))
        return longest if longest > 0 else None

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            failures, last = self._failures.pop(key, (0, now))
            if now - last > self.window:
                failures = 0
            self._failures[key] = (failures + 1, now)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
