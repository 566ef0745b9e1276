"""XEP-0030 service discovery for the server itself, built from what plugins advertise, and
for an account asking about itself (its own bare JID, or no 'to': RFC 6120 §10.3.3)."""

from __future__ import annotations

from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IXmppdPlugin
from xmppd.plugins._config import reject_unknown_keys


@implementer(IXmppdPlugin)
class Disco:
    name = "disco"
    requires = ()

    def setup(self, ctx) -> None:
        reject_unknown_keys(ctx, ())
        self.features = ctx.server.features
        ctx.identity("server", "im", "xmppd")
        ctx.feature(ns.DISCO_INFO)
        ctx.feature(ns.DISCO_ITEMS)
        ctx.iq("get", ns.DISCO_INFO, "query", self.on_info)
        ctx.iq("get", ns.DISCO_ITEMS, "query", self.on_items)
        ctx.iq("get", ns.DISCO_INFO, "query", self.on_account_info, to="self")
        ctx.iq("get", ns.DISCO_ITEMS, "query", self.on_items, to="self")

    def on_info(self, stanza, origin) -> domish.Element:
        query = _query(stanza, ns.DISCO_INFO)
        for category, type_, name in self.features.identities():
            identity = query.addElement("identity")
            identity["category"] = category
            identity["type"] = type_
            if name:
                identity["name"] = name
        for namespace in self.features.features():
            query.addElement("feature")["var"] = namespace
        return query

    def on_account_info(self, stanza, origin) -> domish.Element:
        """The account itself (XEP-0030 §3.1: a registered account), not the server."""
        query = _query(stanza, ns.DISCO_INFO)
        identity = query.addElement("identity")
        identity["category"] = "account"
        identity["type"] = "registered"
        for namespace in (ns.DISCO_INFO, ns.DISCO_ITEMS):
            query.addElement("feature")["var"] = namespace
        return query

    def on_items(self, stanza, origin) -> domish.Element:
        return _query(stanza, ns.DISCO_ITEMS)


def _query(stanza, namespace: str) -> domish.Element:
    """An empty answer; nodes are not published yet, so any node is item-not-found."""
    if stanza.payload().getAttribute("node"):
        raise StanzaError("item-not-found")
    return domish.Element((namespace, "query"))


disco = Disco()
