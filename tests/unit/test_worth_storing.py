"""Which messages are kept for later (XEP-0160 §3, XEP-0085, XEP-0334)."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd.im.worth_storing import worth_storing
from xmppd.xml.stored import stanza_from_text


def message(inner: str, type: str | None = "chat") -> object:
    type_attribute = f" type='{type}'" if type else ""
    return stanza_from_text(f"<message xmlns='jabber:client' to='a@localhost'{type_attribute}>"
                         f"{inner}</message>")


@pytest.mark.parametrize("inner, type, kept", [
    ("<body>hi</body>", "chat", True),
    ("<body>hi</body>", None, True),
    ("<body>hi</body>", "normal", True),
    ("<body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/>", "chat", True),
    ("<composing xmlns='http://jabber.org/protocol/chatstates'/>", "chat", False),
    ("<paused xmlns='http://jabber.org/protocol/chatstates'/>", None, False),
    ("<received xmlns='urn:xmpp:receipts' id='x'/>", "chat", False),
    ("<displayed xmlns='urn:xmpp:chat-markers:0' id='x'/>", "chat", False),
    ("", "chat", False),
    ("<body>hi</body>", "headline", False),
    ("<body>hi</body>", "groupchat", False),
    ("<body>hi</body>", "error", False),
    ("<body>secret</body><no-store xmlns='urn:xmpp:hints'/>", "chat", False),
    ("<store xmlns='urn:xmpp:hints'/>", "chat", True),
    ("<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/></encrypted>", "chat", True),
    ("<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted>",
     "chat", True),
    ("<openpgp xmlns='urn:xmpp:openpgp:0'>AAA=</openpgp>", "chat", True),
    ("<x xmlns='jabber:x:conference' jid='room@muc.localhost'/>", "normal", True),
    ("<x xmlns='http://jabber.org/protocol/muc#user'><invite from='b@localhost'/></x>",
     "normal", True),
    ("<x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x>", "normal", False),
    ("<body xmlns='urn:example:other'>not a body</body>", "chat", False),
])
def test_worth_storing(inner, type, kept):
    assert worth_storing(message(inner, type)) is kept


def test_a_message_the_server_made_without_a_namespace_is_kept():
    """Server-made stanzas (admin notices) carry no namespace until serialized."""
    message = domish.Element((None, "message"))
    message["type"] = "normal"
    message.addElement("body", content="a server wants to subscribe")
    assert worth_storing(message)
