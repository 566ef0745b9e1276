# -*- test-case-name: tests.unit.test_muc_room -*-
"""The presence a room sends of an occupant (XEP-0045 §7.2.3 and on): the occupant's own
presence with its ``muc#user`` item (affiliation, role, real JID for those allowed to see
it), status codes, and its XEP-0421 occupant id; whatever MUC elements the client put in
are its claims and are dropped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.jid import JID

# What a client may not say about itself in a room: the room says it.
ROOM_NAMESPACES = frozenset((ns.MUC, ns.MUC_USER, ns.OCCUPANT_ID))

# Status codes (XEP-0045 §15.6.2)
SELF = 110
NON_ANONYMOUS = 100
LOGGING = 170
CREATED = 201
NICK_ASSIGNED = 210
NEW_NICK = 303
KICKED = 307
BANNED = 301
AFFILIATION_CHANGED = 321
MEMBERS_ONLY = 322
SHUTDOWN = 332
CONFIG_CHANGED = 104
SHOWS_UNAVAILABLE = 102
SHOWS_AVAILABLE = 103
NOW_NON_ANONYMOUS = 172
NOW_SEMI_ANONYMOUS = 173
LOGGING_ON = 170
LOGGING_OFF = 171


@dataclass(frozen=True)
class Item:
    """The ``<item/>`` of a ``muc#user`` presence."""

    affiliation: str
    role: str
    jid: JID | None = None  # for who may see it
    nick: str | None = None  # the new nick (303)
    actor: str | None = None  # the nick of who kicked or banned
    reason: str | None = None


def stripped_children(element: domish.Element) -> list:
    """The children of a client's stanza without the room's own elements."""
    return [child for child in element.children
            if not (isinstance(child, domish.Element) and child.uri in ROOM_NAMESPACES)]


def occupant_presence(source: domish.Element | None, sender: JID, to: JID, item: Item,
                      codes: Iterable[int] = (), occupant_id: str | None = None,
                      type: str | None = None, extra: Iterable[domish.Element] = ()
                      ) -> domish.Element:
    """One presence of the room from ``sender`` (room/nick) to ``to``."""
    presence = domish.Element((None, "presence"))
    presence["from"] = sender.full()
    presence["to"] = to.full()
    if type is not None:
        presence["type"] = type
    if source is not None:
        for child in stripped_children(source):
            if isinstance(child, domish.Element):
                presence.addChild(child)
    x = presence.addElement((ns.MUC_USER, "x"))
    element = x.addElement("item")
    element["affiliation"] = item.affiliation
    element["role"] = item.role
    if item.jid is not None:
        element["jid"] = item.jid.full()
    if item.nick is not None:
        element["nick"] = item.nick
    if item.actor is not None:
        element.addElement("actor")["nick"] = item.actor
    if item.reason:
        element.addElement("reason", content=item.reason)
    for child in extra:
        x.addChild(child)
    for code in sorted(set(codes)):
        x.addElement("status")["code"] = str(code)
    if occupant_id is not None:
        presence.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = occupant_id
    return presence


def status_message(room: JID, to: JID, codes: Iterable[int]) -> domish.Element:
    """A groupchat message with status codes only (§10.2.1: configuration changed)."""
    message = domish.Element((None, "message"))
    message["from"], message["to"], message["type"] = room.full(), to.full(), "groupchat"
    x = message.addElement((ns.MUC_USER, "x"))
    for code in sorted(set(codes)):
        x.addElement("status")["code"] = str(code)
    return message
