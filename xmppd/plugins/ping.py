"""XEP-0199: answer pings addressed to the server, or sent with no 'to' (RFC 6120 §10.3.3).

Clients such as profanity ping without a 'to' (or to their own bare JID) for their keepalive
and give up on server pings when that fails, so the server answers both.
"""

from __future__ import annotations

from zope.interface import implementer

from xmppd import ns
from xmppd.interfaces import IXmppdPlugin
from xmppd.options import no_options


@implementer(IXmppdPlugin)
class Ping:
    name = "ping"
    requires = ()

    configure = staticmethod(no_options)  # checked before the database opens

    def setup(self, ctx) -> None:
        ctx.feature(ns.PING)
        ctx.iq("get", ns.PING, "ping", self.on_ping, to=("host", "self"))

    def on_ping(self, stanza, origin) -> None:
        return None  # an empty result is the pong


ping = Ping()
