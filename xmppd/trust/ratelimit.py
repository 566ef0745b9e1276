# -*- test-case-name: tests.unit.test_server_trust -*-
"""A per-key event counter with fixed windows: what keeps one peer from flooding the admins.

A peer's subscription requests and incident reports each reach a human; a peer that sends a
thousand of them must cost that human one notification, not a thousand. The memory it takes
is bounded too: at most ``max_keys`` windows are kept, the oldest dropped first.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable


class RateLimiter:
    """At most ``limit`` events per key in each window of ``period`` seconds."""

    def __init__(self, limit: int, period: float, now: Callable[[], float],
                 max_keys: int = 10_000) -> None:
        if limit < 1 or period <= 0 or max_keys < 1:
            raise ValueError("a rate limit needs limit >= 1, period > 0 and max_keys >= 1")
        self.limit = limit
        self.period = period
        self._now = now
        self._max_keys = max_keys
        self._windows: dict[Hashable, list] = {}  # key -> [start, count]; oldest start first

    def hit(self, key: Hashable) -> int:
        """Count one event; returns 0 when it is within the limit, else how far over it is
        (1 for the first refused, so the caller can log once per window)."""
        now = self._now()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.period:
            self._windows.pop(key, None)
            self._make_room(now)
            window = self._windows[key] = [now, 0]
        window[1] += 1
        return max(0, window[1] - self.limit)

    def _make_room(self, now: float) -> None:
        if len(self._windows) < self._max_keys:
            return
        expired = [k for k, (start, _) in self._windows.items() if now - start >= self.period]
        for key in expired:
            del self._windows[key]
        while len(self._windows) >= self._max_keys:
            del self._windows[next(iter(self._windows))]

    def __len__(self) -> int:
        """How many keys have a window kept."""
        return len(self._windows)
