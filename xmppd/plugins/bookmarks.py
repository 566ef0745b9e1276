# -*- test-case-name: tests.unit.test_bookmarks -*-
"""Bookmarks for every client generation: XEP-0402 native bookmarks are plain PEP (the pep
plugin does them); this plugin keeps them in step with the XEP-0048 list that older
clients keep in private XML (XEP-0049) or on the PEP node 'storage:bookmarks'.

It advertises on the account what it does, the features Dino, Gajim and Conversations look
for before they trust the native node alone:

* ``urn:xmpp:bookmarks:1#compat``: native bookmarks and private XML are unified (§7);
* ``urn:xmpp:bookmarks:1#compat-pep``: native bookmarks and the XEP-0048 PEP node are;
* ``urn:xmpp:bookmarks-conversion:0`` (XEP-0411): the XEP-0048 PEP node and private XML are.

How the three stores are kept in step, without loops, is xmppd.personal.bookmark_sync.
A list already in private XML when the plugin is enabled reaches the native node at the
account's first login after that (XEP-0411 §4); each account is looked at once per run,
so later logins cost nothing, and a first login without a list in private XML costs one
read (the native node is looked at only when there is a list to bring).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.interfaces import IPep, IPrivateXml, IXmppdPlugin
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.pep.changes import PepChange
from xmppd.personal.bookmark_sync import PEP, PRIVATE, BookmarkSync
from xmppd.personal.bookmarks import is_legacy_storage
from xmppd.plugins._config import reject_unknown_keys

log = get_logger(__name__)

FEATURES = (ns.BOOKMARKS_COMPAT, ns.BOOKMARKS_COMPAT_PEP, ns.BOOKMARKS_CONVERSION)


@implementer(IXmppdPlugin)
class Bookmarks:
    name = "bookmarks"
    requires = ("pep", "private")

    def configure(self, options) -> None:
        """No settings: any key in [plugins.bookmarks] stops start-up."""
        reject_unknown_keys(options, ())

    def setup(self, ctx) -> None:
        self.sync = BookmarkSync(lambda: (ctx.query(IPep), ctx.query(IPrivateXml)))
        for feature in FEATURES:
            ctx.feature(feature, to="account")
        ctx.on(events.PEP_CHANGED, self.on_pep_changed)
        ctx.on(events.PRIVATE_STORED, self.on_private_stored)
        ctx.on(events.SESSION_BOUND, self.on_bound)
        ctx.on(events.USER_DELETED, lambda account: self._adopted.discard(account.userhost()))
        self._adopted: set[str] = set()
        self.pending: set[defer.Deferred] = set()

    def on_bound(self, session) -> None:
        """In the background (binding does not wait for its listeners): cancelled if the
        plugin stops first, failures logged."""
        owner = session.account.userhost()
        if owner in self._adopted:
            return
        self._adopted.add(owner)
        d = self.sync.adopt(session.account)
        self.pending.add(d)
        d.addBoth(self._settled, d)

    def _settled(self, result, d: defer.Deferred) -> None:
        self.pending.discard(d)
        if isinstance(result, Failure) and not result.check(defer.CancelledError):
            log.failure("could not bring private XML bookmarks to PEP", result)

    def teardown(self) -> None:
        while self.pending:
            self.pending.pop().cancel()

    def on_pep_changed(self, change: PepChange) -> defer.Deferred | None:
        if change.node == ns.BOOKMARKS:
            return self.sync.from_native(change.account)
        if change.node == ns.LEGACY_BOOKMARKS and is_legacy_storage(change.payload):
            return self.sync.from_legacy(change.account, change.payload, PEP)
        return None

    def on_private_stored(self, account: JID, element: domish.Element) -> defer.Deferred | None:
        if is_legacy_storage(element):
            return self.sync.from_legacy(account, element, PRIVATE)
        return None


bookmarks = Bookmarks()
