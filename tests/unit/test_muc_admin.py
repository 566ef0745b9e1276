"""The muc#admin and muc#owner requests on a room (xmppd.muc.admin): all or none of a
request's items, the last owner kept, kicks and bans with their codes, the config form,
members-only removing non-members, destruction."""

from __future__ import annotations

import pytest

from tests.unit.test_muc_room import (
    ALICE,
    BOB,
    CAROL,
    ROOM,
    Harness,
    codes_of,
    item_of,
    owned_room,
    set_payload,
)
from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.muc import admin
from xmppd.muc.admin import Limits


def query(namespace: str, items: str) -> object:
    return set_payload(f"<query xmlns='{namespace}'>{items}</query>")


@pytest.fixture
def h() -> Harness:
    return owned_room((BOB, "Bob"))


def test_kick_sends_307_with_actor_and_reason(h):
    admin.set_list(h.room, parse_jid(ALICE), query(
        ns.MUC_ADMIN, "<item nick='Bob' role='none'><reason>out</reason></item>"))
    kicked = h.to(BOB)[0]
    assert kicked["type"] == "unavailable" and codes_of(kicked) == {110, 307}
    assert next(item_of(kicked).elements()).name == "actor"
    assert h.room.occupants.get("Bob") is None


def test_ban_sends_301_and_is_kept(h):
    admin.set_list(h.room, parse_jid(ALICE), query(
        ns.MUC_ADMIN, "<item jid='bob@example.org' affiliation='outcast'/>"))
    assert codes_of(h.to(BOB)[0]) == {110, 301}
    assert h.room.affiliation(parse_jid(BOB)) == "outcast"
    assert h.saved == 1


def test_one_bad_item_changes_nothing(h):
    with pytest.raises(StanzaError) as error:
        admin.set_list(h.room, parse_jid(ALICE), query(
            ns.MUC_ADMIN, "<item jid='carol@example.net' affiliation='member'/>"
                          "<item nick='Nobody' role='none'/>"))
    assert error.value.condition == "item-not-found"
    assert h.room.affiliation(parse_jid(CAROL)) == "none"


def test_the_last_owner_stays(h):
    with pytest.raises(StanzaError) as error:
        admin.set_list(h.room, parse_jid(ALICE), query(
            ns.MUC_ADMIN, "<item jid='alice@example.org' affiliation='member'/>"))
    assert error.value.condition == "conflict"


def test_non_admins_and_admins_over_owners(h):
    with pytest.raises(StanzaError) as participant:
        admin.set_list(h.room, parse_jid(BOB), query(ns.MUC_ADMIN,
                                                     "<item nick='Alice' role='none'/>"))
    assert participant.value.condition == "forbidden"
    h.room.set_affiliation(parse_jid(BOB).bare(), "admin")
    with pytest.raises(StanzaError) as over:
        admin.set_list(h.room, parse_jid(BOB), query(
            ns.MUC_ADMIN, "<item jid='alice@example.org' affiliation='outcast'/>"))
    assert over.value.condition == "not-allowed"


def test_lists(h):
    h.room.set_affiliation(parse_jid(CAROL).bare(), "member")
    members = admin.get_list(h.room, parse_jid(ALICE), query(
        ns.MUC_ADMIN, "<item affiliation='member'/>"))
    assert [(i["jid"], i["affiliation"]) for i in members.elements()] == [
        ("carol@example.net", "member")]
    with pytest.raises(StanzaError):
        admin.get_list(h.room, parse_jid(BOB), query(ns.MUC_ADMIN,
                                                     "<item affiliation='member'/>"))
    moderators = admin.get_list(h.room, parse_jid(ALICE), query(
        ns.MUC_ADMIN, "<item role='moderator'/>"))
    assert [i["nick"] for i in moderators.elements()] == ["Alice"]


def test_config_form_submit_and_members_only(h):
    with pytest.raises(StanzaError):
        admin.get_config(h.room, parse_jid(BOB), Limits())
    form = admin.get_config(h.room, parse_jid(ALICE), Limits())
    assert "muc#roomconfig_membersonly" in form.toXml()
    admin.set_owner(h.room, parse_jid(ALICE), query(
        ns.MUC_OWNER, f"<x xmlns='{ns.DATA_FORMS}' type='submit'><field var='FORM_TYPE'>"
                      f"<value>{ns.MUC_ROOMCONFIG}</value></field>"
                      f"<field var='muc#roomconfig_membersonly'><value>1</value></field></x>"),
        Limits(), lambda room, element: None)
    assert h.room.config.members_only
    assert codes_of(h.to(ALICE)[0]) == {104}
    bob_out = [e for e in h.to(BOB) if e.name == "presence"][0]
    assert codes_of(bob_out) == {110, 322}


def test_an_instant_room_and_a_cancelled_one():
    h = Harness()
    h.room.set_affiliation(parse_jid(ALICE).bare(), "owner")
    h.room.locked = True
    h.presence(ALICE, "Alice", f"<x xmlns='{ns.MUC}'/>")
    destroyed = []
    admin.set_owner(h.room, parse_jid(ALICE), query(
        ns.MUC_OWNER, f"<x xmlns='{ns.DATA_FORMS}' type='cancel'/>"), Limits(),
        lambda room, element: destroyed.append(room))
    assert destroyed == [h.room]
    admin.set_owner(h.room, parse_jid(ALICE), query(
        ns.MUC_OWNER, f"<x xmlns='{ns.DATA_FORMS}' type='submit'/>"), Limits(),
        lambda room, element: None)
    assert not h.room.locked


def test_destruction_notice(h):
    destroy = query(ns.MUC_OWNER, f"<destroy jid='other@{ROOM.split('@')[1]}'>"
                                  "<reason>moved</reason></destroy>").firstChildElement()
    admin.destruction_notice(h.room, destroy)
    notice = h.to(BOB)[0]
    assert notice["type"] == "unavailable" and "moved" in notice.toXml()
    assert len(h.room.occupants) == 0


def submitted(fields: str):
    return query(ns.MUC_OWNER, f"<x xmlns='{ns.DATA_FORMS}' type='submit'><field var="
                               f"'FORM_TYPE'><value>{ns.MUC_ROOMCONFIG}</value></field>"
                               f"{fields}</x>")


def test_the_full_lists_of_owners_and_admins_in_the_form(h):
    form = admin.get_config(h.room, parse_jid(ALICE), Limits()).toXml()
    assert "muc#roomconfig_roomowners" in form and "alice@example.org" in form
    admin.set_owner(h.room, parse_jid(ALICE), submitted(
        "<field var='muc#roomconfig_roomadmins'><value>bob@example.org</value></field>"),
        Limits(), lambda room, element: None)
    assert h.room.affiliation(parse_jid(BOB)) == "admin"
    assert h.room.occupants.get("Bob").role == "moderator"
    admin.set_owner(h.room, parse_jid(ALICE), submitted(
        "<field var='muc#roomconfig_roomadmins'/>"
        "<field var='muc#roomconfig_roomowners'><value>alice@example.org</value>"
        "<value>carol@example.net</value></field>"), Limits(), lambda room, element: None)
    assert h.room.affiliation(parse_jid(BOB)) == "none"
    assert h.room.affiliation(parse_jid(CAROL)) == "owner"
    with pytest.raises(StanzaError) as no_owner:
        admin.set_owner(h.room, parse_jid(ALICE), submitted(
            "<field var='muc#roomconfig_roomowners'/>"), Limits(), lambda room, element: None)
    assert no_owner.value.condition == "not-acceptable"
