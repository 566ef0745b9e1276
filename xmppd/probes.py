"""Timing probes: the seams through which a plugin (metrics) times the core's hot paths.

The router and the storage engines call ``PROBE.observe(...)`` when an observer is set and
``next(PROBE.ticks)`` is true, and go straight on otherwise (one attribute read: the cost
when metrics are off). ``ticks`` is a C iterator cycling through ``every`` values, one of
them true: sampling one call in N costs the others one builtin call, not a Python one. A
probe is process-wide, as the server is: the plugin that sets it unsets it at teardown
(``set`` returns the undo function). The core never imports the metrics code.

* ``ROUTING.observe(route, stanza, origin)``: must return ``route(stanza, origin)``;
* ``STORAGE.observe(operation, call, function, *args)``: ``operation`` is "read" or
  "write"; must return ``call(function, *args)`` (a Deferred).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import cycle


class Probe:
    """One slot for one observer."""

    __slots__ = ("name", "observe", "ticks")

    def __init__(self, name: str) -> None:
        self.name = name
        self.observe: Callable | None = None
        self.ticks = cycle((True,))

    def set(self, observer: Callable, every: int = 1) -> Callable[[], None]:
        """Install ``observer``, called for one call in ``every``; returns the function that
        removes it."""
        if self.observe is not None:
            raise ValueError(f"the {self.name} probe already has an observer")
        if every < 1:
            raise ValueError(f"every must be 1 or more, not {every!r}")
        self.ticks = cycle((False,) * (every - 1) + (True,))
        self.observe = observer

        def unset() -> None:
            if self.observe is observer:
                self.observe = None

        return unset


ROUTING = Probe("routing")
STORAGE = Probe("storage")
