# -*- test-case-name: tests.unit.test_offline_holders -*-
"""Which accounts hold offline messages, known in memory so an empty store costs no read.

Every initial presence (with a non-negative priority) asks the offline plugin to deliver what
was kept; nearly always there is nothing, and a storage read found that out at every login.
On a single node the server is the only writer of offline messages while it runs (``xmppdctl
import`` wants it stopped), so one read at start (the accounts that hold any) and the
server's own writes keep the answer exact:

* ``stored(account)`` before each write starts: a message on its way to storage already
  counts (a login in between reads, and finds it once it is committed, or on a later login);
* ``delivering(account)`` before the delivery's read: the read takes every message stored up
  to then, and any stored after it marks the account again;
* ``undelivered(account)`` when a delivery stops short (the session went away, a storage
  error): what is left is kept, so the account holds messages again.

Until the first read has come back, and whenever ``exact()`` says no (in a cluster every node
stores messages for accounts whose sessions are elsewhere), ``may_hold`` answers True: the
store is read as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet import defer

from xmppd.jid import JID, jid_from_parts
from xmppd.logs import get_logger

log = get_logger(__name__)


class OfflineHolders:
    """The bare JIDs of the accounts that may hold offline messages (see the module doc)."""

    def __init__(self, exact: Callable[[], bool]) -> None:
        """``exact``: whether this process sees every offline write (asked at each use)."""
        self._exact = exact
        self._holders: set[JID] | None = None  # None until the first read came back
        self._early: set[JID] = set()  # marked while that read was in flight

    def load(self, read: Callable[[], defer.Deferred]) -> defer.Deferred:
        """Fill from ``read()`` (firing (localpart, domain) pairs); a failed read is logged
        and leaves every account marked as a possible holder."""
        d = defer.maybeDeferred(read)
        d.addCallbacks(self._loaded, self._not_loaded)
        return d

    def may_hold(self, account: JID) -> bool:
        """False only when ``account`` is known to hold nothing."""
        holders = self._holders
        return holders is None or account in holders or not self._exact()

    def stored(self, account: JID) -> None:
        if self._holders is None:
            self._early.add(account)
        else:
            self._holders.add(account)

    def delivering(self, account: JID) -> None:
        if self._holders is not None:
            self._holders.discard(account)

    undelivered = stored

    def __len__(self) -> int:
        return len(self._holders or ())

    def _loaded(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._holders = {jid_from_parts(localpart, domain, None) for localpart, domain in pairs}
        self._holders |= self._early
        self._early = set()

    def _not_loaded(self, failure) -> None:
        log.failure("could not read which accounts hold offline messages: reading at every "
                    "login", failure)
