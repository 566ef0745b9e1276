# -*- test-case-name: tests.unit.test_limits -*-
"""A token bucket: a rate with a burst, that says how long to wait instead of dropping.

The shapers never refuse what a peer already sent (the bytes were read, the stanza was
parsed); they make the peer wait before the next one, so a bucket may go into debt and
``take`` answers how long it takes to pay it back.
"""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full."""

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self, amount: float) -> float:
        """Spend ``amount``; the seconds until the bucket is out of debt (0.0: no wait)."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate) - amount
        self._tokens = tokens
        self._stamp = now
        return 0.0 if tokens >= 0 else -tokens / self.rate

    def try_take(self, amount: float) -> bool:
        """Spend ``amount`` only if the bucket holds it; False leaves the bucket as it was."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if tokens < amount:
            self._tokens = tokens
            return False
        self._tokens = tokens - amount
        return True
