# -*- test-case-name: tests.unit.test_session_filters -*-
"""Per-session filters: what a client session receives and sends, seen by plugins first.

Stream management counts every stanza in and out, client state indication holds presence
while the client is inactive, carbons and blocking copy or drop: all of them are filters on
one session (Prosody's ``util.filters``, "stanzas/in" and "stanzas/out"). A filter is
``fn(element, session)`` and returns the element to pass on (the same one, or a
replacement), or None when it consumed or held it. Filters run highest priority first; the
stream is after the last one, so the lowest priority sits closest to the wire (where stream
management counts).

The message path is benchmarked, so an unfiltered session pays nothing: the chains are made
on the first ``add``, and only then does the session's ``send`` (an instance attribute over
the class method) and ``inbound`` lead through them; when the last filter goes, both fall
back to the class's own.

Elements are often shared (one message delivered to several resources, one presence to
many): a filter that changes an element returns a changed copy.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.words.xish import domish

from xmppd.handlers import PrioritizedHandlers
from xmppd.logs import get_logger

log = get_logger(__name__)

IN = "in"  # stanzas the client sent, before they are handled and routed
OUT = "out"  # stanzas for the client, before they are written to its stream

Filter = Callable[[domish.Element, object], "domish.Element | None"]


class FilterChain:
    """One direction of one session's filters, then the sink that takes what passes."""

    __slots__ = ("_filters", "_session", "_sink")

    def __init__(self, session, sink: Callable) -> None:
        self._session = session
        self._sink = sink
        self._filters = PrioritizedHandlers()

    def run(self, element: domish.Element):
        """Pass ``element`` through every filter; the sink's result, or None when held."""
        return self._run(element, self._filters.handlers)

    def pass_on(self, element: domish.Element, after: Filter):
        """Send on what ``after`` held (a flush): through the filters after it, not again
        through it nor those before it."""
        filters = self._filters.handlers
        try:
            position = filters.index(after)
        except ValueError:
            raise ValueError(f"{after!r} is not a filter of this session") from None
        return self._run(element, filters[position + 1:])

    def _run(self, element: domish.Element, filters: tuple):
        session = self._session
        for fn in filters:
            try:
                element = fn(element, session)
            except Exception:
                # dropped, not passed on: a failed blocking or privacy filter must not leak
                log.failure("session filter {fn!r} failed on {session!r}; stanza dropped",
                            fn=fn, session=session)
                return None
            if element is None:
                return None
        return self._sink(element)

    def add(self, fn: Filter, priority: int) -> Callable[[], None]:
        return self._filters.add(fn, priority)

    def __bool__(self) -> bool:
        return bool(self._filters)


class SessionFilters:
    """The filters of one session, both directions; made on first use (see module doc)."""

    __slots__ = ("_in", "_out", "_session")

    def __init__(self, session) -> None:
        self._session = session
        self._in: FilterChain | None = None
        self._out: FilterChain | None = None

    def add(self, direction: str, fn: Filter, priority: int = 0) -> Callable[[], None]:
        """Filter what the session receives (IN) or sends (OUT); returns the undo."""
        if direction not in (IN, OUT):
            raise ValueError(f"a filter direction is filters.IN or filters.OUT, not "
                             f"{direction!r}")
        chain = self._chain(direction)
        if chain is None:
            if direction == OUT:
                chain = self._out = FilterChain(self._session, self._send_to_stream)
            else:
                chain = self._in = FilterChain(self._session, self._handle_on_stream)
        remove = chain.add(fn, priority)
        self._route_through(direction, chain)
        return _Undo(self, direction, chain, remove)

    def pass_on(self, direction: str, element: domish.Element, after: Filter):
        """Release an element the filter ``after`` held: the filters after it, then the
        stream (OUT) or the router (IN; its result, maybe a Deferred, is returned)."""
        chain = self._chain(direction)
        if chain is None:
            raise ValueError(f"this session has no {direction} filters")
        return chain.pass_on(element, after)

    def _chain(self, direction: str) -> FilterChain | None:
        return self._out if direction == OUT else self._in

    def _route_through(self, direction: str, chain: FilterChain | None) -> None:
        """Point the session's way out (``send``) or in (``inbound``) at the chain, or back
        at the class's unfiltered defaults."""
        attribute = "send" if direction == OUT else "inbound"
        # setattr/delattr, not __dict__: reading an object's __dict__ makes CPython give it
        # a dict of its own instead of the values it shares its class's keys with (870 bytes
        # more for every session that has a filter)
        if chain is None or not chain:
            try:
                delattr(self._session, attribute)
            except AttributeError:  # the class's own (not overridden on this session)
                pass
        else:
            setattr(self._session, attribute, chain.run)

    def _send_to_stream(self, element: domish.Element) -> None:
        self._session.stream.send(element)  # the session's stream now (it may have moved)

    def _handle_on_stream(self, element: domish.Element):
        return self._session.stream.handle_stanza(element)


class _Undo:
    """Removes one filter (``SessionFilters.add``'s result), and with the direction's last
    one, the chain from the session's way in or out. A small object rather than a closure:
    a session keeps one per filter (stream management: two), and a closure over four names
    with the removal's own closure cost 0.5 KiB."""

    __slots__ = ("_chain", "_direction", "_filters", "_remove")

    def __init__(self, filters: SessionFilters, direction: str, chain: FilterChain,
                 remove: Callable[[], None]) -> None:
        self._filters = filters
        self._direction = direction
        self._chain = chain
        self._remove = remove

    def __call__(self) -> None:
        self._remove()
        if not self._chain:
            self._filters._route_through(self._direction, None)
