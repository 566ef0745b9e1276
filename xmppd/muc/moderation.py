# -*- test-case-name: tests.unit.test_muc_moderation -*-
"""XEP-0425 message moderation (``urn:xmpp:message-moderate:1``, version 0.3.0): a
moderator retracts a message by the room's stanza-id; every occupant gets the retraction
from the room, the history forgets the message, and its archive entry becomes a
tombstone."""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import JID
from xmppd.mam.dates import format_stamp
from xmppd.muc.room import Room


def parse_moderate(element: domish.Element) -> tuple[str, str | None]:
    """The stanza-id and the reason of a ``<moderate/>``; bad-request without a retract."""
    stanza_id = element.getAttribute("id")
    if not stanza_id:
        raise StanzaError("bad-request", "<moderate/> names the message's stanza-id in 'id'")
    children = list(element.elements())
    if not any(child.uri == ns.MESSAGE_RETRACT and child.name == "retract"
               for child in children):
        raise StanzaError("bad-request", "only <retract/> moderation is supported")
    reason = next((str(child) for child in children if child.name == "reason"), None)
    return stanza_id, reason


def check_moderator(room: Room, sender: JID) -> str:
    """The moderator's nick; forbidden for anyone else."""
    occupant = room.occupants.of_session(sender)
    if occupant is None or occupant.role != "moderator":
        raise StanzaError("forbidden", "only moderators may moderate messages")
    return occupant.nick


def moderated(room: Room, nick: str, moderator: JID, reason: str | None,
              tag: str, stamp: float | None = None) -> domish.Element:
    """``<retract/>`` (the broadcast) or ``<retracted/>`` (the tombstone) with its
    ``<moderated/>``."""
    element = domish.Element((ns.MESSAGE_RETRACT, tag))
    if stamp is not None:
        element["stamp"] = format_stamp(stamp)
    by = element.addElement((ns.MESSAGE_MODERATE, "moderated"))
    by["by"] = room.nick_jid(nick).full()
    by.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = room.occupant_id(moderator)
    if reason:
        element.addElement("reason", content=reason)
    return element


def retraction(room: Room, stanza_id: str, nick: str, moderator: JID,
               reason: str | None) -> tuple[domish.Element, str]:
    """The groupchat message every occupant gets (XEP-0425 §4.1), and its stanza-id."""
    message = domish.Element((None, "message"))
    message["from"], message["type"] = room.jid.full(), "groupchat"
    message["id"] = room.new_id()
    retract = moderated(room, nick, moderator, reason, "retract")
    retract["id"] = stanza_id
    message.addChild(retract)
    sid = message.addElement((ns.STANZA_ID, "stanza-id"))
    sid["by"], sid["id"] = room.jid.full(), room.new_id()
    return message, sid["id"]
