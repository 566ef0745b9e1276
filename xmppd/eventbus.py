"""Server events: typed constants (xmppd.events) mapped to prioritised listeners."""

from __future__ import annotations

from collections.abc import Callable
from types import CoroutineType

from twisted.internet import defer
from twisted.python.failure import Failure

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
        """Call every listener; the Deferred fires when all of them (and theirs) are done.

        As ``maybeDeferred`` would, but a listener that is done when it returns (most are; a
        login emits about fifteen calls) costs no Deferred of its own.
        """
        handlers = self._listeners.get(event)
        if not handlers:
            return defer.succeed([])
        results = []
        waiting = False
        for handler in handlers:
            try:
                result = handler(*args)
            except BaseException:
                result = self._report(Failure(), event, handler)
            else:
                if type(result) is CoroutineType:
                    result = defer.Deferred.fromCoroutine(result)
                if isinstance(result, defer.Deferred):
                    result.addErrback(self._report, event, handler)
                    waiting = True
                elif isinstance(result, Failure):
                    result = self._report(result, event, handler)
            results.append(result)
        if not waiting:
            return defer.succeed(results)
        return defer.gatherResults([result if isinstance(result, defer.Deferred)
                                    else defer.succeed(result) for result in results])

    @staticmethod
    def _report(failure, event: Event, handler: Callable) -> None:
        log.failure("listener {handler!r} failed on {event}", failure, handler=handler,
                    event=event.name)
