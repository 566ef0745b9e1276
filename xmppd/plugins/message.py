"""Messages to local accounts are delivered by this plugin's links (RFC 6121 §8.5), at the
lowest priority: any plugin may archive, copy, hold or drop a message before it, without
touching the router (Prosody's mod_message, which hooks ``message/full`` at -1).

A core plugin: always loaded, whatever ``[plugins] enabled`` says, since a server that
never delivers a message is not one. Delivery to all resources or to the highest-priority
ones is ``[c2s] bare_message_delivery``.
"""

from __future__ import annotations

from zope.interface import implementer

from xmppd.dispatch import DELIVERY_PRIORITY
from xmppd.im.message_delivery import MessageDelivery
from xmppd.interfaces import IXmppdPlugin
from xmppd.options import no_options
from xmppd.stanza import MESSAGE_TYPES


@implementer(IXmppdPlugin)
class Message:
    name = "message"
    requires = ()

    configure = staticmethod(no_options)  # checked before the database opens

    def setup(self, ctx) -> None:
        delivery = MessageDelivery(ctx.sessions, ctx.query, ctx.bounce,
                                   ctx.server_config.c2s.bare_message_delivery == "all")
        for type in MESSAGE_TYPES:
            for target, link in delivery.links():
                ctx.stanza("message", type, target, link, DELIVERY_PRIORITY)


message = Message()
