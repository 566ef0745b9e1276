# -*- test-case-name: tests.unit.test_muc_room -*-
"""Presence to a room (XEP-0045 §7.2, §7.6, §7.14): entering with the checks in the order
of §7.2.6-§7.2.10, the room's state sent to the newcomer (occupants, itself, history,
subject), presence updates, nick changes (303) and leaving; a second session of an account
under its nick joins the same occupant (multi-session nicks)."""

from __future__ import annotations

from collections.abc import Iterable

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import JID
from xmppd.muc import presence as codes
from xmppd.muc.history import HistoryRequest, delay, parse_request
from xmppd.muc.occupants import Occupant
from xmppd.muc.registration import holder_of
from xmppd.muc.room import Room, addressed
from xmppd.stanza import Stanza


def muc_join_element(element: domish.Element) -> domish.Element | None:
    for child in element.elements():
        if child.uri == ns.MUC and child.name == "x":
            return child
    return None


def on_presence(room: Room, stanza: Stanza, created: bool = False) -> bool:
    """Presence from ``stanza.sender`` to room/nick; True when the room may now be empty."""
    sender, nick = stanza.sender, stanza.recipient.resource
    occupant = room.occupants.of_session(sender)
    if stanza.type in ("unavailable", "error"):
        if occupant is not None:
            leave(room, occupant, sender, stanza.element if stanza.type == "unavailable"
                  else None)
        return True
    if stanza.type != "available":
        return False  # subscriptions to a room mean nothing (§7.2.1)
    if not nick:
        raise StanzaError("jid-malformed", "a nick is the resource of the room/nick JID")
    if occupant is None:
        enter(room, sender, nick, stanza.element, created)
    elif occupant.nick != nick:
        change_nick(room, occupant, sender, nick, stanza.element)
    elif muc_join_element(stanza.element) is not None:
        # A client that thinks it is out (a failed XEP-0410 self-ping) joins again: it gets
        # the whole state again, as on entering.
        room.occupants.add_session(occupant, sender, stanza.element)
        welcome(room, occupant, sender, parse_request(muc_join_element(stanza.element)))
    else:
        room.occupants.add_session(occupant, sender, stanza.element)
        room.broadcast_presence(occupant, source=stanza.element)
    return False


def enter(room: Room, sender: JID, nick: str, element: domish.Element,
          created: bool = False) -> None:
    """A new session enters, or is refused with the error of §7.2."""
    affiliation = room.affiliation(sender)
    holder = room.occupants.get(nick)
    if room.locked and affiliation != "owner":
        raise StanzaError("item-not-found", "the room is being set up by its owner")
    if affiliation == "outcast":
        raise StanzaError("forbidden", "you are banned from this room")
    if ((holder is not None and holder.bare != sender.bare())
            or reserved_by_other(room, nick, sender)):
        raise StanzaError("conflict", "this nick is taken in the room")
    if room.config.members_only and affiliation == "none":
        raise StanzaError("registration-required", "the room is for its members only")
    join = muc_join_element(element)
    if room.config.password and affiliation not in ("owner", "admin"):
        given = _password(join)
        if given != room.config.password:
            raise StanzaError("not-authorized", "a password is required to enter")
    if (holder is None and len(room.occupants) >= room.config.max_users
            and affiliation not in ("owner", "admin")):
        raise StanzaError("service-unavailable", "the room is full")
    history = parse_request(join)
    occupant = holder or Occupant(nick, sender.bare(), room.role_for(affiliation), affiliation)
    room.occupants.add_session(occupant, sender, element)
    welcome(room, occupant, sender, history, [codes.CREATED] if created else [])


def welcome(room: Room, occupant: Occupant, sender: JID, history: HistoryRequest,
            self_codes: Iterable[int] = ()) -> None:
    """What a session that enters gets (§7.2.3-§7.2.15), in order: the others' presence, its
    own (broadcast to everyone), the history, the subject."""
    send_occupants_to(room, occupant, sender)
    self_codes = list(self_codes)
    if room.config.enable_logging:
        self_codes.append(codes.LOGGING)
    room.broadcast_presence(occupant, self_codes=self_codes)
    for entry in room.history.select(history, room.clock()):
        message = addressed(entry.message, sender)
        message.addChild(delay(entry.stamp, room.jid.full()))
        room.send(message)
    room.send(subject_message(room, sender))


def reserved_by_other(room: Room, nick: str, sender: JID) -> bool:
    """Whether someone else registered ``nick`` with the room (§7.10)."""
    holder = holder_of(room, nick)
    return holder is not None and holder != sender.bare()


def _password(join: domish.Element | None) -> str | None:
    if join is None:
        return None
    for child in join.elements():
        if child.name == "password":
            return str(child)
    return None


def send_occupants_to(room: Room, newcomer: Occupant, to: JID) -> None:
    """Every other occupant's presence to a session that enters (§7.2.3)."""
    for other in room.occupants:
        if other is not newcomer and room.shows(other):
            room.send(room.presence_of(other, newcomer, to))


def subject_message(room: Room, to: JID) -> domish.Element:
    """The subject, last of what an entering occupant gets (§7.2.15), empty when unset."""
    message = domish.Element((None, "message"))
    by = room.nick_jid(room.subject_by) if room.subject_by else room.jid
    message["from"], message["to"], message["type"] = by.full(), to.full(), "groupchat"
    message["id"] = "subject"
    message.addElement("subject", content=room.subject)
    return message


def change_nick(room: Room, occupant: Occupant, sender: JID, nick: str,
                element: domish.Element) -> None:
    """§7.6: unavailable from the old nick with 303 and the new nick, then the presence of
    the new one; every session of the occupant moves with it."""
    holder = room.occupants.get(nick)
    if holder is not None or reserved_by_other(room, nick, sender):
        raise StanzaError("conflict", "this nick is taken in the room")
    old_jid = room.nick_jid(occupant.nick)
    for viewer, jid in room.occupants.sessions():
        presence = room.presence_of(occupant, viewer, jid, [codes.NEW_NICK], "unavailable",
                                    nick=nick)
        presence["from"] = old_jid.full()
        room.send(presence)
    room.occupants.rename(occupant, nick)
    room.occupants.add_session(occupant, sender, element)
    room.broadcast_presence(occupant)


def leave(room: Room, occupant: Occupant, sender: JID, element: domish.Element | None,
          extra_codes=(), **item) -> None:
    """One session goes: it gets its unavailable presence; the others see the occupant go,
    or, with sessions left, its presence as it now is."""
    room.occupants.remove_session(sender)
    if occupant.sessions:
        room.send(room.presence_of(occupant, occupant, sender, extra_codes, "unavailable",
                                   element, **item))
        room.broadcast_presence(occupant)
        return
    room.broadcast_presence(occupant, extra_codes, type="unavailable", source=element,
                            also=[(occupant, sender)], **item)
