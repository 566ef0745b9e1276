"""Server events: typed constants (xmppd.events) mapped to prioritised listeners."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer

from xmppd.events import Event
from xmppd.handlers import PrioritizedHandlers
from xmppd.logs import get_logger

log = get_logger(__name__)


class EventBus:
    """Listeners run by priority (highest first); one listener's failure never stops the rest."""

    def __init__(self) -> None:
        self._listeners: dict[Event, PrioritizedHandlers] = {}

    def on(self, event: Event, handler: Callable, priority: int = 0) -> Callable[[], None]:
        """Subscribe; returns a function that undoes the subscription."""
        if not isinstance(event, Event):
            raise TypeError(f"events are xmppd.events constants, not {event!r}")
        return self._listeners.setdefault(event, PrioritizedHandlers()).add(handler, priority)

    def emit(self, event: Event, *args) -> defer.Deferred:
        """Call every listener; the Deferred fires when all of them (and theirs) are done."""
        calls = []
        for handler in self._listeners.get(event, ()):
            d = defer.maybeDeferred(handler, *args)
            d.addErrback(self._report, event, handler)
            calls.append(d)
        return defer.gatherResults(calls) if calls else defer.succeed([])

    @staticmethod
    def _report(failure, event: Event, handler: Callable) -> None:
        log.failure("listener {handler!r} failed on {event}", failure, handler=handler,
                    event=event.name)
