"""XEP-0030 service discovery for the server and for an account asking about itself (its own
bare JID, or no 'to': RFC 6120 §10.3.3), answered from what plugins declare for each
(xmppd.disco): identities and features, providers per node, services under their host.
Services answer their own disco (xmppd.services)."""

from __future__ import annotations

from zope.interface import implementer

from xmppd import ns
from xmppd.interfaces import IXmppdPlugin
from xmppd.plugins._config import reject_unknown_keys


@implementer(IXmppdPlugin)
class Disco:
    name = "disco"
    requires = ()

    def setup(self, ctx) -> None:
        reject_unknown_keys(ctx, ())
        ctx.identity("server", "im", "xmppd")
        # XEP-0030 §3.1: a registered account, not the server, when it asks about itself
        ctx.identity("account", "registered", to="account")
        for target, entity_name, entity in (("host", "host", ctx.server.features),
                                            ("self", "account", ctx.server.account_features)):
            ctx.feature(ns.DISCO_INFO, to=entity_name)
            ctx.feature(ns.DISCO_ITEMS, to=entity_name)
            ctx.iq("get", ns.DISCO_INFO, "query", entity.on_info, to=target)
            ctx.iq("get", ns.DISCO_ITEMS, "query", entity.on_items, to=target)


disco = Disco()
