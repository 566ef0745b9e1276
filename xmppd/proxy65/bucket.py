# -*- test-case-name: tests.unit.test_proxy65 -*-
"""A token bucket: the per-user bandwidth cap of the bytestreams proxy."""

from __future__ import annotations


class TokenBucket:
    """``rate`` bytes per second on average, bursts up to ``capacity`` (one second's worth
    unless said otherwise). Bytes already read are always taken: the bucket goes into debt
    and says how long the reader must pause to pay it back."""

    def __init__(self, clock, rate: int, capacity: int | None = None) -> None:
        self.clock = clock
        self.rate = rate
        self.capacity = capacity or rate
        self.tokens = float(self.capacity)
        self.updated = clock.seconds()

    def take(self, amount: int) -> float:
        """Take ``amount`` bytes; the seconds to wait before reading more (0: go on)."""
        now = self.clock.seconds()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
