# -*- test-case-name: tests.unit.test_muc_occupants -*-
"""Disco of the service and its rooms (XEP-0045 §6): the service's identity and features,
the public rooms in its disco#items, each room's identity, the features its config makes
true and the ``muc#roominfo`` form; a room's occupants are not listed (§6.5 allows
refusing, and a semi-anonymous room must not leak them)."""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns
from xmppd.caps import DiscoInfo, Identity
from xmppd.disco import DiscoItem
from xmppd.muc.config import room_features, roominfo_form

# What every room answers to, whatever its config.
ROOM_FEATURES = (ns.MUC, ns.DISCO_INFO, ns.DISCO_ITEMS, ns.STANZA_ID, ns.OCCUPANT_ID,
                 ns.MUC_SELF_PING, ns.VCARD, ns.MESSAGE_MODERATE, ns.MUC_REQUEST,
                 ns.REGISTER)
SERVICE_FEATURES = (ns.MUC,)  # vcard-temp is a room's, not the service's


def room_info(room, archive_enabled: bool) -> DiscoInfo:
    features = [*ROOM_FEATURES, *room_features(room.config)]
    if archive_enabled and room.config.enable_logging:
        features += [ns.MAM, ns.MAM_EXTENDED]
    form = roominfo_form(room.config, len(room.occupants), room.subject, room.avatar_hash)
    identity = Identity("conference", "text", name=room.config.name or room.jid.user)
    return DiscoInfo((identity,), tuple(dict.fromkeys(features)), (form,))


def info_query(info: DiscoInfo) -> domish.Element:
    """A room's disco#info answer."""
    query = domish.Element((ns.DISCO_INFO, "query"))
    for identity in info.identities:
        query.addChild(identity.to_element())
    for feature in sorted(info.features):
        query.addElement("feature")["var"] = feature
    for form in info.forms:
        query.addChild(form.to_element())
    return query


def public_items(rooms) -> list[DiscoItem]:
    """The public, configured rooms, by JID."""
    return [DiscoItem(room.jid.full(), name=room.config.name or room.jid.user)
            for room in sorted(rooms, key=lambda room: room.jid.full())
            if room.config.public and not room.locked]
