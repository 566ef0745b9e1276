# -*- test-case-name: tests.unit.test_cluster_rooms -*-
"""The rooms this node's sessions are in, so that they can be told when a room is lost.

A room's occupant list lives in the memory of the node that runs the room; when that node
dies, nobody else knows who was in it. Each node therefore notes, from the presence its own
clients send to a room (the 'outgoing' chain), which rooms they entered under which nick, and
forgets it when they leave or their session ends. When a room's node dies, the node of each
occupant sends it what a MUC service sends on shutting down (XEP-0045 §15.6.2, status 332):
unavailable presence from room/nick with 110 and 332. Clients take that as "you are out of
the room" and rejoin when they want to (a bookmark's autojoin, the user); a persistent room
is then there again, on its new node, with its configuration and affiliations.

A refused join or a kick is noted as a membership too (the room's answer is not watched):
such a session may get a 332 for a room it was not in, which clients ignore.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.words.xish import domish

from xmppd.jid import JID, parse_jid
from xmppd.muc import presence as codes
from xmppd.muc.presence import Item, occupant_presence
from xmppd.stanza import Stanza

MAX_ROOMS_PER_SESSION = 1000  # the oldest forgotten beyond: a client cannot grow it for ever


class Memberships:
    """Full JID of a local session -> {bare room JID: nick}."""

    def __init__(self, is_room: Callable[[JID], bool]) -> None:
        self.is_room = is_room  # whether a JID is at one of our MUC services
        self.joined: dict[JID, dict[JID, str]] = {}

    def outgoing(self, stanza: Stanza, origin) -> None:
        """A chain link that only looks: a local client's presence to room/nick."""
        room = stanza.recipient
        if room is None or room.user is None or not self.is_room(room):
            return None
        session, bare = stanza.sender, room.bare()
        if stanza.type == "unavailable" or stanza.type == "error":
            rooms = self.joined.get(session)
            if rooms is not None:
                rooms.pop(bare, None)
                if not rooms:
                    del self.joined[session]
        elif stanza.type == "available" and room.resource:
            rooms = self.joined.setdefault(session, {})
            rooms.pop(bare, None)
            rooms[bare] = room.resource
            if len(rooms) > MAX_ROOMS_PER_SESSION:
                del rooms[next(iter(rooms))]
        return None

    def session_closed(self, session, polite=None) -> None:
        if session.jid is not None:
            self.joined.pop(session.jid, None)

    def export(self, session) -> dict | None:
        """The rooms of a session moving to another node (XEP-0198 resumption there): that
        node sends it the 332 presences if one of those rooms' nodes dies later."""
        rooms = self.joined.get(session.jid) if session.jid is not None else None
        return {room.full(): nick for room, nick in rooms.items()} if rooms else None

    def restore(self, session, rooms: dict) -> None:
        self.joined[session.jid] = {parse_jid(str(room)): str(nick)
                                    for room, nick in rooms.items()}

    def lost(self, lost: Callable[[JID], bool]) -> list[domish.Element]:
        """The 332 presences for every local session in a room for which ``lost(room)`` is
        true; those memberships are forgotten."""
        presences = []
        for session, rooms in list(self.joined.items()):
            for room, nick in list(rooms.items()):
                if lost(room):
                    del rooms[room]
                    presences.append(shutdown_presence(room, nick, session))
            if not rooms:
                del self.joined[session]
        return presences


def shutdown_presence(room: JID, nick: str, to: JID) -> domish.Element:
    """What a room says to an occupant it drops on shutting down (§15.6.2): its own
    unavailable presence with 110 and 332 (affiliation unknown here: 'none')."""
    return occupant_presence(None, JID(room.user, room.host, nick), to, Item("none", "none"),
                             [codes.SELF, codes.SHUTDOWN], type="unavailable")
