"""Timing probes: the seams through which a plugin (metrics) times the core's hot paths.

The router and the storage engines call ``PROBE.observe(...)`` when an observer is set, and
go straight on when none is (one attribute read: the cost when metrics are off). A probe is
process-wide, as the server is: the plugin that sets it unsets it at teardown
(``set`` returns the undo function). The core never imports the metrics code.

* ``ROUTING.observe(route, stanza, origin)``: must return ``route(stanza, origin)``;
* ``STORAGE.observe(operation, call, function, *args)``: ``operation`` is "read" or
  "write"; must return ``call(function, *args)`` (a Deferred).
"""

from __future__ import annotations

from collections.abc import Callable


class Probe:
    """One slot for one observer."""

    __slots__ = ("name", "observe")

    def __init__(self, name: str) -> None:
        self.name = name
        self.observe: Callable | None = None

    def set(self, observer: Callable) -> Callable[[], None]:
        """Install ``observer``; returns the function that removes it."""
        if self.observe is not None:
            raise ValueError(f"the {self.name} probe already has an observer")
        self.observe = observer

        def unset() -> None:
            if self.observe is observer:
                self.observe = None

        return unset


ROUTING = Probe("routing")
STORAGE = Probe("storage")
