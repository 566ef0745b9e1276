# -*- test-case-name: tests.unit.test_bookmarks -*-
"""Keeping an account's three bookmark stores in step (XEP-0402 §7 '#compat' and
'#compat-pep', XEP-0411): the native PEP node, the legacy private XML and the legacy PEP node.

Each store is copied, not shared: whichever a client wrote is converted into the other two
right after the write, before the client's IQ is answered. Writes made here go through
IPep and IPrivateXml, which tell no events, so a conversion never starts another one. The
changes of one account are converted one at a time, in the order they came.

From a legacy list (either legacy store) the native node gets only what changed: new or
edited rooms are published, rooms no longer listed are retracted, the others untouched so
their watchers are not notified again (XEP-0402 §7).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.im.keyed_queue import KeyedQueue
from xmppd.jid import JID
from xmppd.personal import bookmarks
from xmppd.pubsub import PubSubError

PRIVATE, PEP = "private", "pep"  # where a legacy list came from


class BookmarkSync:
    """``stores()`` gives (IPep, IPrivateXml) at the time of use, either None when its plugin
    is not loaded (then that side is left alone)."""

    def __init__(self, stores) -> None:
        self._stores = stores
        self._queue = KeyedQueue()

    def from_native(self, account: JID) -> defer.Deferred:
        """The native node changed: rewrite both legacy stores from it."""
        return self._run(account, self._from_native, account.bare())

    def from_legacy(self, account: JID, storage: domish.Element, source: str) -> defer.Deferred:
        """A client wrote ``storage`` to ``source`` (PRIVATE or PEP): bring the native node
        and the other legacy store to it."""
        return self._run(account, self._from_legacy, account.bare(), storage, source)

    def adopt(self, account: JID) -> defer.Deferred:
        """XEP-0411 §4: a list kept in private XML before conversion began (the plugin
        newly enabled) reaches the native node when the account next logs in, so clients
        that read only PEP find it. Done when the native node is empty."""
        return self._run(account, self._adopt, account.bare())

    async def _adopt(self, account: JID) -> None:
        pep, private = self._stores()
        if pep is None or private is None:
            return
        # Private XML first: most accounts have no list there, and then one read is all a
        # login costs (the native node's look-up is two).
        storage = await private.element(account, ns.LEGACY_BOOKMARKS, "storage")
        if storage is None or not bookmarks.native_of(storage):
            return
        if not await pep.items(account, ns.BOOKMARKS):
            await self._from_legacy(account, storage, PRIVATE)

    def _run(self, account: JID, work, *args) -> defer.Deferred:
        return self._queue.run(account.userhost(),
                               lambda: defer.ensureDeferred(work(*args)))

    async def _from_native(self, account: JID) -> None:
        pep, private = self._stores()
        if pep is None:
            return
        items = await pep.items(account, ns.BOOKMARKS)
        kept = None
        if private is not None:
            kept = await private.element(account, ns.LEGACY_BOOKMARKS, "storage")
        storage = bookmarks.legacy_of(items, kept)
        await self._write_legacy(account, storage, (PRIVATE, PEP))

    async def _from_legacy(self, account: JID, storage: domish.Element, source: str) -> None:
        pep, _ = self._stores()
        if pep is not None:
            current = dict(await pep.items(account, ns.BOOKMARKS))
            wanted = bookmarks.native_of(storage, current)
            for jid, bookmark in wanted.items():
                if not bookmarks.same(current.get(jid), bookmark):
                    await pep.publish(account, ns.BOOKMARKS, jid, bookmark,
                                      bookmarks.NATIVE_OPTIONS)
            gone = [jid for jid in current if jid not in wanted]
            await pep.retract(account, ns.BOOKMARKS, gone)
        await self._write_legacy(account, storage,
                                 tuple(other for other in (PRIVATE, PEP) if other != source))

    async def _write_legacy(self, account: JID, storage: domish.Element,
                            targets: tuple[str, ...]) -> None:
        pep, private = self._stores()
        if PRIVATE in targets and private is not None:
            await private.store(account, storage)
        if PEP in targets and pep is not None:
            try:
                await pep.publish(account, ns.LEGACY_BOOKMARKS, bookmarks.LEGACY_ITEM, storage,
                                  bookmarks.LEGACY_OPTIONS)
            except PubSubError as refused:
                # The account made that node readable by others: XEP-0411 §5 says copy
                # nothing there rather than leak the list.
                if refused.condition != "conflict":
                    raise
