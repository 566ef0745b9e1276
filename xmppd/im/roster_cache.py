# -*- test-case-name: tests.unit.test_roster_cache -*-
"""The rosters of online accounts, kept in memory so presence never waits on storage.

Every presence broadcast needs the sender's roster (RFC 6121 §4.2.2, §4.4.2); reading it from
storage each time would put storage I/O on the presence path of an online account. The roster
plugin keeps here the roster of each account that has a bound session: the first read fills
it, each write the plugin makes is applied to it, and it is dropped with the account's last
session.

Never stale: what is kept is storage's roster with every write that landed applied to it.

* Only the roster plugin writes rosters while the server runs, and it tells the cache of each
  write that lands (``stored``/``removed``), which applies it to the kept roster. (Deleting an
  account drops its roster in storage: the plugin then ``forget``s it.)
* A fill is a storage read, and a write may land while it is in flight: then the read may
  predate the write, so it is not kept (its readers still get what they asked for, as from an
  uncached read) and later readers do not join it.
* A fill that completes while a write is still in flight sees storage before or after that
  write; either way the write is applied when it lands (putting or removing one item twice
  gives the same roster).
* A write that fails leaves storage in a state we cannot know: the account's roster is dropped.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from twisted.internet import defer

from xmppd.im.contacts import Contacts, contacts_of
from xmppd.jid import JID
from xmppd.storage.records import RosterItem, RosterSnapshot


def _contact(item: RosterItem) -> str:
    return item.contact


class CachedRoster:
    """One account's roster as storage holds it. Never changed: a write makes a new one, so a
    broadcast going through ``contacts`` is never disturbed by a change."""

    __slots__ = ("version", "items", "_by_contact", "_contacts")

    def __init__(self, version: int, items: tuple[RosterItem, ...]) -> None:
        self.version = version
        self.items = items  # sorted by contact, as the store hands them out
        self._by_contact = {item.contact: item for item in items}
        self._contacts: Contacts | None = None

    @classmethod
    def of(cls, snapshot: RosterSnapshot) -> CachedRoster:
        return cls(snapshot.version, tuple(sorted(snapshot.items, key=_contact)))

    def item(self, contact: str) -> RosterItem | None:
        return self._by_contact.get(contact)

    @property
    def contacts(self) -> Contacts:
        """The subscribers and subscriptions, parsed once for every broadcast to come."""
        if self._contacts is None:
            self._contacts = contacts_of(self.items)
        return self._contacts

    def with_item(self, version: int, item: RosterItem) -> CachedRoster:
        items = [old for old in self.items if old.contact != item.contact]
        bisect.insort(items, item, key=_contact)
        return CachedRoster(version, tuple(items))

    def without(self, version: int, contact: str) -> CachedRoster:
        return CachedRoster(version, tuple(old for old in self.items if old.contact != contact))

    def __len__(self) -> int:
        return len(self.items)


class _Fill:
    """A storage read in flight, and the readers waiting for it."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[defer.Deferred] = []


class RosterCache:
    """Cached rosters by bare JID, for the accounts ``online`` says have a bound session."""

    def __init__(self, online: Callable[[JID], bool]) -> None:
        self._online = online
        self._rosters: dict[JID, CachedRoster] = {}
        self._fills: dict[JID, _Fill] = {}  # reads that may still be kept, one per account

    def get(self, account: JID) -> CachedRoster | None:
        """The cached roster, or None: then ask ``load``."""
        return self._rosters.get(account)

    def load(self, account: JID, read: Callable[[], defer.Deferred]) -> defer.Deferred:
        """Deferred firing the account's CachedRoster: from memory, else from ``read()`` (a
        Deferred firing its RosterSnapshot), kept if the account is online and no write came
        in between. Readers arriving while a read can still be kept share it."""
        cached = self._rosters.get(account)
        if cached is not None:
            return defer.succeed(cached)
        waiter: defer.Deferred = defer.Deferred()
        fill = self._fills.get(account)
        if fill is not None:
            fill.waiters.append(waiter)
            return waiter
        fill = self._fills[account] = _Fill()
        fill.waiters.append(waiter)
        defer.maybeDeferred(read).addCallbacks(self._filled, self._failed,
                                               (account, fill), None, (account, fill))
        return waiter

    def stored(self, account: JID, version: int, item: RosterItem) -> None:
        """``item`` was written, making roster ``version``."""
        self._fills.pop(account, None)
        cached = self._rosters.get(account)
        if cached is not None:
            self._rosters[account] = cached.with_item(version, item)

    def removed(self, account: JID, version: int, contact: str) -> None:
        """The item of ``contact`` was removed, making roster ``version``."""
        self._fills.pop(account, None)
        cached = self._rosters.get(account)
        if cached is not None:
            self._rosters[account] = cached.without(version, contact)

    def forget(self, account: JID) -> None:
        """Drop what is known of the account (last session gone, account deleted, a write
        failed); a read in flight is not kept either."""
        self._rosters.pop(account, None)
        self._fills.pop(account, None)

    def __contains__(self, account: JID) -> bool:
        return account in self._rosters

    def __len__(self) -> int:
        return len(self._rosters)

    # -- a read ends

    def _filled(self, snapshot: RosterSnapshot, account: JID, fill: _Fill) -> None:
        roster = CachedRoster.of(snapshot)
        if self._fills.get(account) is fill:
            del self._fills[account]
            if self._online(account):
                self._rosters[account] = roster
        for waiter in fill.waiters:
            waiter.callback(roster)

    def _failed(self, failure, account: JID, fill: _Fill) -> None:
        if self._fills.get(account) is fill:
            del self._fills[account]
        for waiter in fill.waiters:
            waiter.errback(failure)
