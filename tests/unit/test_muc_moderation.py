"""XEP-0425 requests and the messages they make (xmppd.muc.moderation)."""

from __future__ import annotations

import pytest

from tests.unit.test_muc_room import ALICE, BOB, ROOM, Harness, child, set_payload
from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.muc import moderation


def test_parse():
    assert moderation.parse_moderate(set_payload(
        f"<moderate xmlns='{ns.MESSAGE_MODERATE}' id='s1'><retract xmlns="
        f"'{ns.MESSAGE_RETRACT}'/><reason>spam</reason></moderate>")) == ("s1", "spam")
    for bad in (f"<moderate xmlns='{ns.MESSAGE_MODERATE}'><retract xmlns="
                f"'{ns.MESSAGE_RETRACT}'/></moderate>",
                f"<moderate xmlns='{ns.MESSAGE_MODERATE}' id='s1'/>"):
        with pytest.raises(StanzaError) as error:
            moderation.parse_moderate(set_payload(bad))
        assert error.value.condition == "bad-request"


def test_only_moderators_and_the_retraction():
    h = Harness()
    h.enter(ALICE, "Alice", "owner")
    h.enter(BOB, "Bob")
    with pytest.raises(StanzaError):
        moderation.check_moderator(h.room, parse_jid(BOB))
    nick = moderation.check_moderator(h.room, parse_jid(ALICE))
    message, stanza_id = moderation.retraction(h.room, "s1", nick, parse_jid(ALICE), "spam")
    assert message["from"] == ROOM and message["type"] == "groupchat"
    retract = child(message, ns.MESSAGE_RETRACT, "retract")
    assert retract["id"] == "s1"
    moderated = child(retract, ns.MESSAGE_MODERATE, "moderated")
    assert moderated["by"] == f"{ROOM}/Alice"
    assert child(moderated, ns.OCCUPANT_ID, "occupant-id")["id"] == h.room.occupant_id(
        parse_jid(ALICE))
    assert child(message, ns.STANZA_ID, "stanza-id")["id"] == stanza_id
    tombstone = moderation.moderated(h.room, nick, parse_jid(ALICE), None, "retracted", 0.0)
    assert tombstone.name == "retracted" and tombstone["stamp"].startswith("1970-01-01T")
