# -*- test-case-name: tests.unit.test_presence -*-
"""One operation at a time per key, in arrival order.

Subscription state is read, decided on and written back across storage round trips; two
stanzas about the same (account, contact) pair handled at once would each read the old state
and one change would be lost. Running them in order per pair also keeps a contact's presence
behind the 'subscribed' that preceded it. Different keys never wait for each other.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from twisted.internet import defer


class KeyedQueue:
    """Runs operations for one key one after the other; a free key runs at once."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, defer.DeferredLock] = {}

    def run(self, key: Hashable, operation: Callable, *args) -> defer.Deferred:
        """Run ``operation(*args)`` after those queued before it under ``key``; fires with its
        result. An operation must not wait for another under the same key (it would wait
        forever)."""
        lock = self._locks.setdefault(key, defer.DeferredLock())
        d = lock.run(operation, *args)
        d.addBoth(self._forget_if_idle, key, lock)
        return d

    def _forget_if_idle(self, result, key: Hashable, lock: defer.DeferredLock):
        if not lock.locked and not lock.waiting and self._locks.get(key) is lock:
            del self._locks[key]
        return result

    def __contains__(self, key: Hashable) -> bool:
        """Whether work for ``key`` is queued or running: if not, work that needs no waiting
        of its own may simply run now, in order all the same."""
        return key in self._locks

    def __len__(self) -> int:
        """How many keys have work queued or running."""
        return len(self._locks)
