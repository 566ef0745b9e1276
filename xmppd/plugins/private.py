# -*- test-case-name: tests.unit.test_private -*-
"""XEP-0049 private XML storage: XML an account keeps on its server for itself alone
(client preferences, legacy bookmarks of XEP-0048).

Only the account reads and writes its data, with no 'to' or its own bare JID; anyone else
asking at its bare JID gets ``forbidden``, the condition XEP-0049 §2.3 prefers. What is
stored and refused is decided in :mod:`xmppd.personal.private_xml`. ``jabber:iq:private`` is
advertised on the host and on the account's own disco, as Prosody does on the host; the data
goes with the account (the store's owner is its bare JID).

Other plugins read and write it through IPrivateXml, and hear of each element a client
stores through ``events.PRIVATE_STORED``, emitted before the set is answered (the
bookmarks plugin converts XEP-0048 bookmarks that way).
"""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IPrivateXml, IXmppdPlugin
from xmppd.personal.private_xml import PrivateXML
from xmppd.plugins._config import max_size_only
from xmppd.stanza import Stanza

DEFAULT_MAX_SIZE = 262_144  # bytes of one account's private XML, all namespaces together


@implementer(IXmppdPlugin)
class Private:
    name = "private"
    requires = ()

    def configure(self, options) -> int:
        """max_size, checked before the database opens."""
        return max_size_only(options, DEFAULT_MAX_SIZE)

    def setup(self, ctx) -> None:
        self.ctx = ctx
        self.data = PrivateXML(ctx.open_store("private", "map"), ctx.settings)
        ctx.provide(IPrivateXml, self.data)
        for entity in ("host", "account"):
            ctx.feature(ns.PRIVATE, to=entity)
        for type in ("get", "set"):
            ctx.iq(type, ns.PRIVATE, "query", self.on_other, to="bare")
        ctx.iq("get", ns.PRIVATE, "query", self.on_get, to="self")
        ctx.iq("set", ns.PRIVATE, "query", self.on_set, to="self")

    def on_get(self, stanza: Stanza, origin) -> defer.Deferred:
        return self.data.get(stanza.recipient, stanza.payload())

    def on_set(self, stanza: Stanza, origin) -> defer.Deferred:
        return defer.ensureDeferred(self._set(stanza.recipient, stanza.payload()))

    async def _set(self, account, query) -> None:
        await self.data.set(account, query)
        for element in query.elements():
            await self.ctx.emit(events.PRIVATE_STORED, account, element)

    def on_other(self, stanza: Stanza, origin) -> None:
        raise StanzaError("forbidden", "private XML belongs to the account alone")


private = Private()
