# -*- test-case-name: tests.unit.test_muc_registration -*-
"""Registering with a room (XEP-0045 §7.10, §7.12): a user reserves a nick and becomes a
member; nobody else enters under a reserved nick; the reserved nick is found in the room's
disco#info node ``x-roomuser-item``; ``<remove/>`` gives it up."""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns
from xmppd.caps import DiscoInfo, Identity
from xmppd.errors import StanzaError
from xmppd.forms import Form, FormError, find_form, make_field
from xmppd.jid import JID, InvalidJID, prepare_resource
from xmppd.muc.room import Room

FORM_TYPE = "http://jabber.org/protocol/muc#register"
NICK_FIELD = "muc#register_roomnick"
NICK_NODE = "x-roomuser-item"


def holder_of(room: Room, nick: str) -> JID | None:
    """The account that reserved ``nick`` in the room, if any."""
    return next((jid for jid, each in room.nicks.items() if each == nick), None)


def get_form(room: Room, sender: JID) -> domish.Element:
    """What a registered user has, or the form to fill."""
    query = domish.Element((ns.REGISTER, "query"))
    nick = room.nicks.get(sender.bare())
    if nick is not None:
        query.addElement("registered")
        query.addElement("username", content=nick)
        return query
    query.addElement("instructions", content="Reserve a nick in this room")
    field = make_field(NICK_FIELD, type="text-single", label="Desired nickname", required=True)
    query.addChild(Form.build("form", [field], form_type=FORM_TYPE,
                              title="Room registration").to_element())
    return query


def register(room: Room, sender: JID, query: domish.Element) -> None:
    """A submitted form reserves the nick (and makes a member of a non-member); ``<remove/>``
    gives the registration up."""
    bare = sender.bare()
    affiliation = room.affiliation(bare)
    if any(child.name == "remove" for child in query.elements()):
        if bare not in room.nicks:
            raise StanzaError("item-not-found", "you are not registered with this room")
        del room.nicks[bare]
        if affiliation == "member":
            room.set_affiliation(bare, "none")
        room.changed(room)
        return
    if affiliation == "outcast":
        raise StanzaError("forbidden", "you are banned from this room")
    if room.config.members_only and affiliation == "none":
        raise StanzaError("not-allowed", "only members register with a members-only room")
    form = find_form(query, FORM_TYPE)
    if form is None or form.type != "submit":
        raise StanzaError("bad-request", f"a submitted {FORM_TYPE} form is expected")
    nick = _nick(form.get_text(NICK_FIELD))
    holder = holder_of(room, nick)
    in_use = room.occupants.get(nick)
    if (holder is not None and holder != bare) or (in_use is not None and in_use.bare != bare):
        raise StanzaError("conflict", "this nick is taken in the room")
    room.nicks[bare] = nick
    if affiliation == "none":
        room.set_affiliation(bare, "member")
        for occupant in room.occupants.of_account(bare):
            occupant.affiliation = "member"
            occupant.role = room.role_for("member")
            room.broadcast_presence(occupant)
    room.changed(room)


def _nick(text: str | None) -> str:
    if not text:
        raise FormError("a nick is required", NICK_FIELD, "not-acceptable")
    try:
        return prepare_resource(text)
    except InvalidJID:
        raise FormError("this nick cannot be a resource", NICK_FIELD, "jid-malformed") from None


def nick_info(room: Room, sender: JID) -> DiscoInfo:
    """§7.12: the nick the sender reserved, as the identity of ``x-roomuser-item``."""
    nick = room.nicks.get(sender.bare())
    identities = (Identity("conference", "text", name=nick),) if nick else ()
    return DiscoInfo(identities, ())
