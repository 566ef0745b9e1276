# -*- test-case-name: tests.unit.test_server_trust -*-
"""How the administrators hear what needs them: a log line, and a message to each admin JID.

The message is type 'normal', not 'headline', so an admin who is offline finds it on the next
login (RFC 6121 §8.5.2.2.1 keeps headlines for nobody). It comes from the domain of ours the
matter concerns, and goes through the router like any other stanza, so an admin on another
server gets it over federation.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd.jid import parse_jid
from xmppd.logs import get_logger
from xmppd.stanza import Stanza

log = get_logger(__name__)


class AdminNotifier:
    """Callable as ``notify(local, text)``; ``subject`` names the matter in logs and messages."""

    def __init__(self, ctx, subject: str) -> None:
        self.ctx = ctx  # the plugin's context: the admins from its server_config, route
        self.subject = subject

    def __call__(self, local: str, text: str) -> None:
        admins = self.ctx.server_config.server.admins
        log.info("{subject}: {text} (told {count} admin(s))", subject=self.subject, text=text,
                 count=len(admins))
        sender = parse_jid(local)
        for admin in admins:
            message = admin_message(sender, admin, self.subject, text)
            self.ctx.route(Stanza(message, sender, admin), None)


def admin_message(sender, recipient, subject: str, text: str) -> domish.Element:
    message = domish.Element((None, "message"))
    message["type"] = "normal"
    message["from"] = sender.full()
    message["to"] = recipient.full()
    message.addElement("subject", content=subject)
    message.addElement("body", content=text)
    return message
