# -*- test-case-name: tests.unit.test_muc_room -*-
"""IQs between occupants (XEP-0045 §7.5: vCards, versions, pings of another occupant): the
room relays a request from ``room/asker`` to the target occupant's newest session under an
id of its own, and the answer back to the asker from ``room/target``, so neither learns the
other's real JID. XEP-0410 self-pings are the room's to answer: a ping to one's own occupant
JID is answered at once while joined, ``not-acceptable`` when not."""

from __future__ import annotations

import os
from collections import OrderedDict

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import JID
from xmppd.muc.room import Room
from xmppd.stanza import Stanza, make_iq_result

MAX_PENDING = 10_000  # relayed requests waiting for their answer; the oldest are forgotten


class IqRelay:
    """Requests relayed and waiting, by (room, target session, our id)."""

    def __init__(self) -> None:
        self.pending: OrderedDict[tuple[JID, JID, str], tuple[JID, str | None, str]] = \
            OrderedDict()

    def request(self, room: Room, stanza: Stanza) -> domish.Element:
        """What the room sends for an IQ get or set to room/nick: the answer to a
        self-ping, or the request relayed to the target."""
        asker = room.occupants.of_session(stanza.sender)
        if asker is None:
            raise StanzaError("not-acceptable", "you are not joined in this room")
        nick = stanza.recipient.resource
        payload = stanza.payload()
        if (asker.nick == nick and payload is not None and payload.uri == ns.PING
                and payload.name == "ping"):
            return make_iq_result(stanza.element)
        target = room.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", "nobody has this nick in the room")
        session = target.jids()[-1]
        our_id = os.urandom(9).hex()
        self.pending[(room.jid, session, our_id)] = (stanza.sender, stanza.id, nick)
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        relayed = domish.Element((None, "iq"))
        relayed["type"], relayed["id"] = stanza.type, our_id
        relayed["from"] = room.nick_jid(asker.nick).full()
        relayed["to"] = session.full()
        relayed.children = list(stanza.element.children)
        return relayed

    def answer(self, room: Room, stanza: Stanza) -> domish.Element | None:
        """The answer of a relayed request, back to its asker; None for an answer we did
        not ask for."""
        key = (room.jid, stanza.sender, stanza.id or "")
        found = self.pending.pop(key, None)
        if found is None:
            return None
        asker, asker_id, nick = found
        answer = domish.Element((None, "iq"))
        answer["type"] = stanza.type
        if asker_id is not None:
            answer["id"] = asker_id
        answer["from"] = room.nick_jid(nick).full()
        answer["to"] = asker.full()
        answer.children = list(stanza.element.children)
        return answer
