# -*- test-case-name: tests.unit.test_muc_occupants -*-
"""Room avatars (XEP-0054 vcard-temp on the room, as XEP-0486 reads them): anyone reads the
room's vCard, owners set it; its photo hash goes in the ``muc#roominfo`` form and in a
presence from the room to its occupants, so clients fetch the new avatar."""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import JID
from xmppd.personal.elements import from_text, text_size, to_text
from xmppd.personal.vcards import photo_hash


def get_vcard(room) -> domish.Element:
    if room.avatar:
        vcard = from_text(room.avatar, f"vCard of room {room.jid.full()}")
        if vcard is not None:
            return vcard
    return domish.Element((ns.VCARD, "vCard"))


def set_vcard(room, sender: JID, vcard: domish.Element, max_size: int) -> None:
    """An owner's new vCard for the room, and the presence that tells its hash."""
    if room.affiliation(sender) != "owner":
        raise StanzaError("forbidden", "only owners set the room's vCard")
    text = to_text(vcard)
    if text_size(text) > max_size:
        raise StanzaError("not-acceptable", f"a room's vCard is at most {max_size} bytes")
    empty = not any(True for _ in vcard.elements())
    room.avatar_hash = None if empty else photo_hash(vcard)
    room.avatar = None if empty else text
    presence = domish.Element((None, "presence"))
    presence["from"] = room.jid.full()
    update = presence.addElement((ns.VCARD_UPDATE, "x"))
    update.addElement("photo", content=room.avatar_hash or "")
    room.broadcast(presence)
    room.changed(room)


def restore_hash(room) -> None:
    """The photo hash of a vCard read back from the store."""
    vcard = from_text(room.avatar, f"vCard of room {room.jid.full()}") if room.avatar else None
    try:
        room.avatar_hash = photo_hash(vcard) if vcard is not None else None
    except StanzaError:
        room.avatar_hash = None
