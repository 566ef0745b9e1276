"""Registering with a room (XEP-0045 §7.10, §7.12; xmppd.muc.registration)."""

from __future__ import annotations

import pytest

from tests.unit.test_muc_room import BOB, CAROL, Harness, owned_room, set_payload
from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.muc import registration
from xmppd.muc.config import RoomConfig
from xmppd.muc.store import restore, room_record


def submit(nick: str):
    return set_payload(
        f"<query xmlns='{ns.REGISTER}'>"
        f"<x xmlns='{ns.DATA_FORMS}' type='submit'><field var='FORM_TYPE'><value>"
        f"{registration.FORM_TYPE}</value></field><field var='muc#register_roomnick'>"
        f"<value>{nick}</value></field></x></query>")


def remove():
    return set_payload(f"<query xmlns='{ns.REGISTER}'><remove/></query>")


@pytest.fixture
def h() -> Harness:
    return owned_room()


def test_form_register_and_registered(h):
    form = registration.get_form(h.room, parse_jid(BOB)).toXml()
    assert "muc#register_roomnick" in form
    registration.register(h.room, parse_jid(BOB), submit("Bobby"))
    assert h.room.affiliation(parse_jid(BOB)) == "member"
    answer = registration.get_form(h.room, parse_jid(BOB))
    assert [e.name for e in answer.elements()] == ["registered", "username"]
    assert registration.nick_info(h.room, parse_jid(BOB)).identities[0].name == "Bobby"
    assert registration.nick_info(h.room, parse_jid(CAROL)).identities == ()


def test_a_reserved_nick_is_nobody_elses(h):
    registration.register(h.room, parse_jid(BOB), submit("Bobby"))
    with pytest.raises(StanzaError) as taken:
        h.enter(CAROL, "Bobby")
    assert taken.value.condition == "conflict"
    with pytest.raises(StanzaError) as registered:
        registration.register(h.room, parse_jid(CAROL), submit("Bobby"))
    assert registered.value.condition == "conflict"
    with pytest.raises(StanzaError) as in_use:
        registration.register(h.room, parse_jid(CAROL), submit("Alice"))
    assert in_use.value.condition == "conflict"
    h.enter(BOB, "Bobby")  # its holder enters under it


def test_refusals_and_removal(h):
    h.room.set_affiliation(parse_jid(CAROL).bare(), "outcast")
    with pytest.raises(StanzaError) as banned:
        registration.register(h.room, parse_jid(CAROL), submit("Carol"))
    assert banned.value.condition == "forbidden"
    h.room.config = RoomConfig(members_only=True)
    with pytest.raises(StanzaError) as members:
        registration.register(h.room, parse_jid(BOB), submit("Bob"))
    assert members.value.condition == "not-allowed"
    h.room.config = RoomConfig()
    registration.register(h.room, parse_jid(BOB), submit("Bob"))
    registration.register(h.room, parse_jid(BOB), remove())
    assert h.room.affiliation(parse_jid(BOB)) == "none" and not h.room.nicks
    with pytest.raises(StanzaError):
        registration.register(h.room, parse_jid(BOB), remove())


def test_a_ban_drops_the_reservation_and_it_is_kept_with_the_room(h):
    registration.register(h.room, parse_jid(BOB), submit("Bobby"))
    record = room_record(h.room)
    again = Harness()
    restore(again.room, record)
    assert again.room.nicks == {parse_jid("bob@example.org"): "Bobby"}
    h.room.set_affiliation(parse_jid(BOB).bare(), "outcast")
    assert not h.room.nicks
