# -*- test-case-name: tests.unit.test_muc_room -*-
"""Messages to a room (XEP-0045 §7.4-§7.5, §7.8, §7.13, §8.1): groupchat messages stamped
with the room's stanza-id and the sender's occupant-id, the subject, private messages
between occupants, mediated invitations and declines, voice requests and their approval.
What a client claims of the room (``muc#user`` items, occupant-ids, stanza-ids by the room)
is stripped before anything is relayed."""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import Form, find_form, make_field
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.muc.history import Entry
from xmppd.muc.occupants import Occupant
from xmppd.muc.presence import stripped_children
from xmppd.muc.room import Room
from xmppd.stanza import Stanza

ALLOW_PM_ROLES = {"anyone": ("moderator", "participant", "visitor"),
                  "participants": ("moderator", "participant"),
                  "moderators": ("moderator",), "none": ()}


def relayed_children(room: Room, element: domish.Element) -> list:
    """A client's children without the room's elements and stanza-ids claimed by the room."""
    def forged(child) -> bool:
        return (isinstance(child, domish.Element) and child.uri == ns.STANZA_ID
                and child.name == "stanza-id" and child.getAttribute("by") == room.jid.full())
    return [child for child in stripped_children(element) if not forged(child)]


def occupant_of(room: Room, sender: JID, what: str) -> Occupant:
    occupant = room.occupants.of_session(sender)
    if occupant is None:
        raise StanzaError("not-acceptable", f"only occupants may {what}")
    return occupant


def on_groupchat(room: Room, stanza: Stanza) -> defer.Deferred | None:
    """A groupchat message to the room: a subject change, or a message for everyone; the
    archive's Deferred when its disk is behind, else None."""
    occupant = occupant_of(room, stanza.sender, "send messages to the room")
    element = stanza.element
    subject = _child(element, None, "subject")
    body = _child(element, None, "body")
    if subject is not None and body is None:
        set_subject(room, occupant, element, str(subject))
        return None
    if occupant.role == "visitor":
        raise StanzaError("forbidden", "visitors may not speak in this moderated room")
    message = domish.Element((None, "message"))
    for key in ("id", "xml:lang"):
        if element.hasAttribute(key):
            message[key] = element[key]
    message["from"] = room.nick_jid(occupant.nick).full()
    message["type"] = "groupchat"
    message.children = relayed_children(room, element)
    message.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = room.occupant_id(occupant.bare)
    stanza_id = room.new_id()
    sid = message.addElement((ns.STANZA_ID, "stanza-id"))
    sid["by"], sid["id"] = room.jid.full(), stanza_id
    now = room.clock()
    waiting = None
    if body is not None or subject is not None:
        room.history.add(Entry(now, message, len(message.toXml()), stanza_id))
        if room.config.enable_logging:
            waiting = room.archive(room, message, stanza_id, now)
    room.broadcast(message)
    return waiting


def set_subject(room: Room, occupant: Occupant, element: domish.Element, text: str) -> None:
    """§8.1: moderators change the subject; others only where the config lets them."""
    allowed = occupant.role == "moderator" or (room.config.change_subject
                                               and occupant.role == "participant")
    if not allowed:
        raise StanzaError("forbidden", "you may not change the subject of this room")
    room.subject, room.subject_by = text, occupant.nick
    message = domish.Element((None, "message"))
    message["from"] = room.nick_jid(occupant.nick).full()
    message["type"] = "groupchat"
    if element.hasAttribute("id"):
        message["id"] = element["id"]
    message.addElement("subject", content=text)
    room.broadcast(message)
    room.changed(room)


def on_private(room: Room, stanza: Stanza) -> None:
    """A message to room/nick (§7.5): to every session of that occupant, from the sender's
    occupant JID, marked with an empty muc#user element (XEP-0045 §7.5, so that carbons
    and clients know it for a private message)."""
    if stanza.type == "groupchat":
        raise StanzaError("bad-request", "a groupchat message goes to the room, not a nick")
    occupant = occupant_of(room, stanza.sender, "send private messages")
    if occupant.role not in ALLOW_PM_ROLES[room.config.allow_pms]:
        raise StanzaError("forbidden", "private messages are not allowed in this room")
    target = room.occupants.get(stanza.recipient.resource)
    if target is None:
        raise StanzaError("item-not-found", "nobody has this nick in the room")
    element = stanza.element
    message = domish.Element((None, "message"))
    for key in ("id", "type", "xml:lang"):
        if element.hasAttribute(key):
            message[key] = element[key]
    message["from"] = room.nick_jid(occupant.nick).full()
    message.children = relayed_children(room, element)
    message.addElement((ns.MUC_USER, "x"))
    message.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = room.occupant_id(occupant.bare)
    room.send_to_occupant(target, message)


def on_normal(room: Room, stanza: Stanza) -> None:
    """A non-groupchat message to the room: an invitation, a decline or a voice request."""
    x = _child(stanza.element, ns.MUC_USER, "x")
    if x is not None:
        for child in x.elements():
            if child.name == "invite":
                invite(room, stanza, child)
                return
            if child.name == "decline":
                decline(room, stanza, child)
                return
    form = find_form(stanza.element, ns.MUC_REQUEST)
    if form is not None:
        voice_request(room, stanza, form)
        return
    raise StanzaError("bad-request", "a message to the room is groupchat, an invitation "
                                     "or a voice request")


def invite(room: Room, stanza: Stanza, element: domish.Element) -> None:
    """§7.8.2: the room relays the invitation from itself; an admin's invitation to a
    members-only room makes the invitee a member."""
    occupant = occupant_of(room, stanza.sender, "invite")
    invitee = _jid(element.getAttribute("to"))
    privileged = occupant.affiliation in ("owner", "admin")
    if room.config.members_only and not (privileged or room.config.allow_invites):
        raise StanzaError("forbidden", "only admins may invite to this members-only room")
    if room.affiliation(invitee) == "outcast":
        raise StanzaError("forbidden", "this user is banned from the room")
    if room.config.members_only and room.affiliation(invitee) == "none":
        room.set_affiliation(invitee.bare(), "member")
        room.changed(room)
    message = domish.Element((None, "message"))
    message["from"], message["to"] = room.jid.full(), invitee.full()
    if stanza.id:
        message["id"] = stanza.id
    x = message.addElement((ns.MUC_USER, "x"))
    relayed = x.addElement("invite")
    relayed["from"] = stanza.sender.full() if room.config.non_anonymous or privileged \
        else room.nick_jid(occupant.nick).full()
    reason = _child(element, None, "reason")
    if reason is not None:
        relayed.addElement("reason", content=str(reason))
    if room.config.password:
        x.addElement("password", content=room.config.password)
    message.addElement("body", content=f"{occupant.nick} invites you to the room "
                                       f"{room.jid.full()}")
    room.send(message)


def decline(room: Room, stanza: Stanza, element: domish.Element) -> None:
    """§7.8.3: to the inviter, from the room, naming who declined."""
    inviter = _jid(element.getAttribute("to"))
    message = domish.Element((None, "message"))
    message["from"], message["to"] = room.jid.full(), inviter.full()
    x = message.addElement((ns.MUC_USER, "x"))
    relayed = x.addElement("decline")
    relayed["from"] = stanza.sender.bare().full()
    reason = _child(element, None, "reason")
    if reason is not None:
        relayed.addElement("reason", content=str(reason))
    room.send(message)


def voice_request(room: Room, stanza: Stanza, form: Form) -> None:
    """§7.13 (a visitor asks, every moderator gets the form) and §8.6 (a moderator's
    submitted form with ``muc#request_allow`` grants voice)."""
    occupant = occupant_of(room, stanza.sender, "request voice")
    if form.type == "submit" and occupant.role == "moderator" and "muc#request_allow" in form:
        nick = form.get_text("muc#roomnick")
        target = room.occupants.get(nick or "")
        if target is None:
            raise StanzaError("item-not-found", "nobody has this nick in the room")
        if form.get_bool("muc#request_allow", False) and target.role == "visitor":
            target.role = "participant"
            room.broadcast_presence(target)
        return
    if occupant.role != "visitor":
        raise StanzaError("unexpected-request", "you have voice already")
    fields = [
        make_field("muc#role", "participant", type="list-single", label="Requested role"),
        make_field("muc#jid", stanza.sender.full(), type="jid-single", label="User ID"),
        make_field("muc#roomnick", occupant.nick, type="text-single", label="Room nickname"),
        make_field("muc#request_allow", False, type="boolean",
                   label="Grant voice to this person?"),
    ]
    request = Form.build("form", fields, form_type=ns.MUC_REQUEST, title="Voice request")
    message = domish.Element((None, "message"))
    message["from"] = room.jid.full()
    message.addChild(request.to_element())
    for moderator in room.occupants:
        if moderator.role == "moderator":
            room.send_to_occupant(moderator, message)


def _child(element: domish.Element, uri: str | None, name: str) -> domish.Element | None:
    for child in element.elements():
        if child.name == name and (uri is None or child.uri == uri):
            return child
    return None


def _jid(text: str | None) -> JID:
    if not text:
        raise StanzaError("bad-request", "an invitation names its invitee in 'to'")
    try:
        return parse_jid(text)
    except InvalidJID:
        raise StanzaError("jid-malformed", "the invitee's JID is malformed") from None
