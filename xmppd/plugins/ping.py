"""XEP-0199: answer pings addressed to the server."""

from __future__ import annotations

from zope.interface import implementer

from xmppd import ns
from xmppd.interfaces import IXmppdPlugin
from xmppd.plugins._config import reject_unknown_keys


@implementer(IXmppdPlugin)
class Ping:
    name = "ping"
    requires = ()

    def setup(self, ctx) -> None:
        reject_unknown_keys(ctx, ())
        ctx.feature(ns.PING)
        ctx.iq("get", ns.PING, "ping", self.on_ping)

    def on_ping(self, stanza, origin) -> None:
        return None  # an empty result is the pong


ping = Ping()
