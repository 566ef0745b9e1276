# -*- test-case-name: tests.unit.test_blocking -*-
"""Block lists (XEP-0191): what an account blocked, kept in a keyval store and in memory.

Every stanza for or from an account is checked against its list, so the lists an account
needs are read once and then answered from memory: ``lookup`` gives the set at once when it
is known (the usual case, also on the benchmarked message path: one dict look-up, and an
empty set for the many accounts that block nobody), else a Deferred of it. Only this module
writes the store, so memory is updated first and the write queued after it (writes are
applied in order): two commands in a row never lose one another's item.

Memory is bounded: at ``max_cached`` lists the oldest read is forgotten, to be read again
when needed.

Matching (§5, as XEP-0016): an item ``user@domain/resource`` matches that resource only,
``user@domain`` every resource of it, ``domain/resource`` that resource of the domain, and
``domain`` the domain itself and everyone at it.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet import defer

from xmppd.jid import JID

STORE = "blocking"


def candidates(jid: JID) -> tuple[str, ...]:
    """The item texts that would block ``jid``, most precise first."""
    host = jid.host
    if jid.resource is None:
        return (jid.full(), host) if jid.user is not None else (host,)
    if jid.user is None:
        return (jid.full(), host)
    return (jid.full(), jid.bare().full(), f"{host}/{jid.resource}", host)


def matches(items: frozenset[str], jid: JID) -> bool:
    """Whether ``jid`` is blocked by any of ``items`` (JID texts, as prepared)."""
    if not items:
        return False
    return any(candidate in items for candidate in candidates(jid))


class BlockLists:
    """The lists of the accounts seen lately, over the store that keeps them all."""

    def __init__(self, store, max_cached: int = 10000) -> None:
        self._store = store  # IKeyValStore: account -> list of JID texts
        self._max_cached = max_cached
        self._cache: dict[JID, frozenset[str]] = {}

    def cached(self, account: JID) -> frozenset[str] | None:
        return self._cache.get(account)

    def lookup(self, account: JID) -> frozenset[str] | defer.Deferred:
        """The list of ``account`` (a bare JID): the set itself when known, else a Deferred
        firing it once read."""
        items = self._cache.get(account)
        if items is not None:
            return items
        return self._store.get(account.full()).addCallback(self._read, account)

    def _read(self, value: list | None, account: JID) -> frozenset[str]:
        known = self._cache.get(account)
        if known is not None:  # a command changed it while we read: memory is newer
            return known
        items = frozenset(value or ())
        self._remember(account, items)
        return items

    def _remember(self, account: JID, items: frozenset[str]) -> None:
        cache = self._cache
        cache.pop(account, None)
        cache[account] = items
        if len(cache) > self._max_cached:
            del cache[next(iter(cache))]

    async def change(self, account: JID, add: Iterable[str] = (),
                     remove: Iterable[str] | None = ()) -> tuple[list[str], list[str]]:
        """Block ``add`` and unblock ``remove`` (None: everything); returns the items really
        added and removed, in the order given, once the store has them."""
        before = await defer.maybeDeferred(self.lookup, account)
        before = self._cache.get(account, before)  # newest, if a command ran meanwhile
        removed = (sorted(before) if remove is None
                   else list(dict.fromkeys(item for item in remove if item in before)))
        after = before.difference(removed)
        added = list(dict.fromkeys(item for item in add if item not in after))
        after = after.union(added)
        if after == before:
            return added, removed
        self._remember(account, after)
        if after:
            await self._store.set(account.full(), sorted(after))
        else:
            await self._store.delete(account.full())
        return added, removed

    def forget(self, account: JID, *ignored) -> None:
        """The account was deleted (its stored list went with it)."""
        self._cache.pop(account.bare(), None)
