"""A list of handlers kept in priority order, shared by the dispatcher and the event bus."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

_registration_order = itertools.count()


class PrioritizedHandlers:
    """Highest priority first; equal priorities in registration order. Sorted on change only."""

    __slots__ = ("_entries", "handlers")

    def __init__(self) -> None:
        self._entries: list[tuple[int, int, Callable]] = []
        self.handlers: tuple[Callable, ...] = ()  # the order to call them in, ready to iterate

    def add(self, handler: Callable, priority: int = 0) -> Callable[[], None]:
        """Add a handler; returns the function that removes exactly this registration."""
        entry = (-priority, next(_registration_order), handler)
        self._entries.append(entry)
        self._entries.sort(key=lambda item: item[:2])
        self.handlers = tuple(item[2] for item in self._entries)
        return Registration(self, entry)

    def _remove(self, entry: tuple) -> None:
        if entry in self._entries:
            self._entries.remove(entry)
            self.handlers = tuple(item[2] for item in self._entries)

    def __iter__(self) -> Iterator[Callable]:
        return iter(self.handlers)

    def __bool__(self) -> bool:
        return bool(self.handlers)


class Registration:
    """What ``PrioritizedHandlers.add`` returns: calling it removes exactly that registration.

    A small object rather than a closure over the entry: every client session keeps one per
    filter (xmppd.c2s.filters), and a closure with its cells costs four times as much.
    """

    __slots__ = ("_entry", "_handlers")

    def __init__(self, handlers: PrioritizedHandlers, entry: tuple) -> None:
        self._handlers = handlers
        self._entry = entry

    def __call__(self) -> None:
        self._handlers._remove(self._entry)
