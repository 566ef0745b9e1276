"""Occupants by nick and session, and XEP-0421 occupant ids (xmppd.muc.occupants); the
room's disco (xmppd.muc.discovery) and vCard (xmppd.muc.vcard)."""

from __future__ import annotations

import base64

import pytest
from twisted.words.xish import domish

from tests.unit.test_muc_room import ALICE, BOB, Harness
from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.muc import vcard
from xmppd.muc.discovery import info_query, public_items, room_info
from xmppd.muc.occupants import Occupant, Occupants, occupant_id


def test_occupant_ids_are_stable_per_room_and_account_and_say_nothing():
    bob, other = parse_jid("bob@example.org"), parse_jid("bob@example.net")
    first = occupant_id(b"a" * 32, bob)
    assert first == occupant_id(b"a" * 32, bob)
    assert first != occupant_id(b"b" * 32, bob)  # another room
    assert first != occupant_id(b"a" * 32, other)
    assert "bob" not in first and len(first) == 24


def test_sessions_of_one_nick():
    occupants = Occupants()
    bob = Occupant("Bob", parse_jid("bob@example.org"), "participant", "none")
    pc, phone = parse_jid("bob@example.org/pc"), parse_jid("bob@example.org/phone")
    first, second = domish.Element((None, "presence")), domish.Element((None, "presence"))
    occupants.add_session(bob, pc, first)
    occupants.add_session(bob, phone, second)
    assert len(occupants) == 1 and occupants.of_session(phone) is bob
    assert bob.presence() is second  # the newest session's presence is shown
    assert occupants.sessions() == [(bob, pc), (bob, phone)]
    occupants.rename(bob, "Robert")
    assert occupants.get("Robert") is bob and occupants.get("Bob") is None
    assert occupants.remove_session(pc) is bob and len(occupants) == 1
    occupants.remove_session(phone)
    assert len(occupants) == 0 and occupants.of_session(phone) is None


def test_room_info_and_public_items():
    h = Harness(name="Lounge", enable_logging=True)
    h.enter(ALICE, "Alice", "owner")
    info = room_info(h.room, archive_enabled=True)
    assert {ns.MUC, ns.MAM, ns.OCCUPANT_ID, "muc_open"} <= set(info.features)
    assert ns.MAM not in room_info(h.room, archive_enabled=False).features
    query = info_query(info).toXml()
    assert "muc#roominfo_occupants" in query and "name=\"Lounge\"" in query.replace("'", '"')
    hidden = Harness(public=False)
    locked = Harness()
    locked.room.locked = True
    assert [item.jid for item in public_items([h.room, hidden.room, locked.room])] == [
        h.room.jid.full()]


def test_room_vcard():
    h = Harness()
    h.enter(ALICE, "Alice", "owner")
    h.enter(BOB, "Bob")
    card = domish.Element((ns.VCARD, "vCard"))
    photo = card.addElement("PHOTO")
    photo.addElement("BINVAL", content=base64.b64encode(b"png").decode())
    with pytest.raises(StanzaError) as not_owner:
        vcard.set_vcard(h.room, parse_jid(BOB), card, 65536)
    assert not_owner.value.condition == "forbidden"
    with pytest.raises(StanzaError) as too_big:
        vcard.set_vcard(h.room, parse_jid(ALICE), card, 10)
    assert too_big.value.condition == "not-acceptable"
    h.clear()
    vcard.set_vcard(h.room, parse_jid(ALICE), card, 65536)
    assert h.room.avatar_hash and "BINVAL" in vcard.get_vcard(h.room).toXml()
    assert {e["to"] for e in h.sent if e.name == "presence"} == {ALICE, BOB}
    vcard.set_vcard(h.room, parse_jid(ALICE), domish.Element((ns.VCARD, "vCard")), 65536)
    assert h.room.avatar is None and h.room.avatar_hash is None
