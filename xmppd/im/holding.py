# -*- test-case-name: tests.unit.test_holding -*-
"""Which accounts hold something rarely there (offline messages, stored subscription
requests), known in memory so that finding nothing costs no storage read.

Every initial presence asked storage for the account's offline messages and its stored
subscription requests (RFC 6121 §3.1.3); nearly always there are none. On a single node the
server is the only writer of both while it runs (``xmppdctl import`` wants it stopped), so
one read at start (the accounts that hold any) and the server's own writes keep the answer
exact. It rests on what every storage engine promises: a read never overtakes a write asked
for before it (xmppd.storage.sqlite, xmppd.storage.postgresql).

* ``adding(account)`` before each write starts;
* ``taking(account)`` just before a read that takes (or shows) everything there is: a write
  asked for before it is in what the read finds, one asked for after marks the account again;
* ``left(account)`` when that read found something it did not take away (requests stay until
  answered), or stopped short (the session went away, a storage error).

Until the first read has come back, and whenever ``exact()`` says no (in a cluster every node
writes for accounts whose sessions are elsewhere), ``may_hold`` answers True: storage is read
as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet import defer

from xmppd.jid import JID, jid_from_parts
from xmppd.logs import get_logger

log = get_logger(__name__)


class Holding:
    """The bare JIDs of the accounts that may hold ``what`` (see the module docstring)."""

    def __init__(self, what: str, exact: Callable[[], bool]) -> None:
        """``what``: for the log; ``exact``: whether this process sees every write of it
        (asked at each use)."""
        self.what = what
        self._exact = exact
        self._holders: set[JID] | None = None  # None until the first read came back
        self._early: set[JID] = set()  # marked while that read was in flight

    def load(self, read: Callable[[], defer.Deferred]) -> defer.Deferred:
        """Fill from ``read()`` (firing (localpart, domain) pairs); a failed read is logged
        and leaves every account a possible holder."""
        d = defer.maybeDeferred(read)
        d.addCallbacks(self._loaded, self._not_loaded)
        return d

    def may_hold(self, account: JID) -> bool:
        """False only when ``account`` is known to hold nothing."""
        holders = self._holders
        return holders is None or account in holders or not self._exact()

    def adding(self, account: JID) -> None:
        if self._holders is None:
            self._early.add(account)
        else:
            self._holders.add(account)

    def taking(self, account: JID) -> None:
        if self._holders is not None:
            self._holders.discard(account)

    left = adding

    def __len__(self) -> int:
        return len(self._holders or ())

    def _loaded(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._holders = {jid_from_parts(localpart, domain, None) for localpart, domain in pairs}
        self._holders |= self._early
        self._early = set()

    def _not_loaded(self, failure) -> None:
        log.failure("could not read which accounts hold {what}: reading them at every login",
                    failure, what=self.what)
