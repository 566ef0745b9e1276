"""XEP-0030 service discovery for the server and for an account asking about itself (its own
bare JID, or no 'to': RFC 6120 §10.3.3), answered from what plugins declare for each
(xmppd.disco): identities and features, providers per node, services under their host.
Services answer their own disco (xmppd.services)."""

from __future__ import annotations

from zope.interface import implementer

from xmppd.interfaces import IXmppdPlugin
from xmppd.options import no_options


@implementer(IXmppdPlugin)
class Disco:
    name = "disco"
    requires = ()

    configure = staticmethod(no_options)  # checked before the database opens

    def setup(self, ctx) -> None:
        ctx.identity("server", "im", "xmppd")
        # XEP-0030 §3.1: a registered account, not the server, when it asks about itself
        ctx.identity("account", "registered", to="account")
        ctx.serve_disco()


disco = Disco()
