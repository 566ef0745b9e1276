"""A drop-in test plugin: a service on ``echo.DOMAIN`` that sends every chat or normal
message back to its sender, from the address it was sent to. Enabled as ``echo``; it
touches neither the router nor federation."""

from __future__ import annotations

from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.interfaces import IXmppdPlugin

ECHO_NS = "urn:example:echo"


@implementer(IXmppdPlugin)
class Echo:
    name, requires = "echo", ()

    def setup(self, ctx) -> None:
        self.ctx = ctx
        echo = ctx.service("echo", title="Echo")
        echo.identity("component", "generic", "Echo")
        echo.feature(ECHO_NS)
        for type in ("normal", "chat"):
            echo.stanza("message", type, ("host", "bare", "full"), self.on_message)

    def on_message(self, stanza, origin) -> bool:
        reply = domish.Element((None, "message"))
        reply["type"] = stanza.type
        reply["from"], reply["to"] = stanza.recipient.full(), stanza.sender.full()
        reply.addElement("body", content=str(stanza.element.body or ""))
        self.ctx.send(reply)
        return True


echo = Echo()
