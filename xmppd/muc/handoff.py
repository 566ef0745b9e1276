# -*- test-case-name: tests.unit.test_muc_handoff -*-
"""A live room handed from one process to another (a cluster node that joins takes the
rooms it now owns from the node that ran them): everything the store keeps
(``store.room_record``) plus what only memory holds, the occupants with each session's last
presence, the history, and whether the room is still locked. JSON-able, stanzas as text,
read back through the same restricted parser as the network."""

from __future__ import annotations

from xmppd.jid import InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.muc import store
from xmppd.muc.history import Entry
from xmppd.muc.occupants import Occupant
from xmppd.muc.roles import AFFILIATIONS, ROLES
from xmppd.xml.stored import stanza_from_text, stanza_to_text

log = get_logger(__name__)


def room_state(room) -> dict:
    """All of ``room``, for ``restore_state`` elsewhere."""
    return {
        "jid": room.jid.full(),
        "record": store.room_record(room),
        "locked": room.locked,
        "occupants": [{"nick": each.nick, "bare": each.bare.full(), "role": each.role,
                       "affiliation": each.affiliation,
                       "sessions": [[jid.full(), stanza_to_text(presence)]
                                    for jid, presence in each.sessions.items()]}
                      for each in room.occupants],
        "history": [[entry.stamp, stanza_to_text(entry.message), entry.chars, entry.stanza_id]
                    for entry in room.history.entries],
    }


def restore_state(room, state: dict) -> None:
    """Put a handed-over state into a fresh room (made with ``store.secret_of`` of its
    record); an unreadable occupant or history entry is logged and left out. KeyError,
    TypeError or ValueError when the state itself is not one."""
    store.restore(room, state["record"])
    room.locked = bool(state.get("locked", False))
    for each in state.get("occupants", ()):
        try:
            occupant = Occupant(str(each["nick"]), parse_jid(each["bare"]), each["role"],
                                each["affiliation"])
            if occupant.role not in ROLES or occupant.affiliation not in AFFILIATIONS:
                raise ValueError(occupant.role)
            sessions = [(parse_jid(full), stanza_from_text(text))
                        for full, text in each["sessions"]]
        except (KeyError, TypeError, ValueError, InvalidJID):
            log.error("room {room}: an unreadable occupant left out of the hand-over",
                      room=room.jid.full())
            continue
        for jid, presence in sessions:
            if presence is not None:
                room.occupants.add_session(occupant, jid, presence)
    for stamp, text, chars, stanza_id in state.get("history", ()):
        message = stanza_from_text(text)
        if message is not None:
            room.history.add(Entry(float(stamp), message, int(chars), str(stanza_id)))
