"""One room without a network: joining (checks, status codes, what the newcomer gets),
nick changes, leaving, multi-session nicks, groupchat and private messages, the subject,
forged elements stripped (xmppd.muc.room, join, messages, presence)."""

from __future__ import annotations

import itertools

import pytest
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.muc import join, messages
from xmppd.muc.config import RoomConfig
from xmppd.muc.room import Room
from xmppd.stanza import Stanza
from xmppd.xml.stored import stanza_from_text

ROOM = "room@conference.example.org"


class Harness:
    """A room whose output is a list; ``to(jid)`` the elements sent to one session."""

    def __init__(self, **config) -> None:
        self.sent: list[domish.Element] = []
        self.archived: list[tuple[str, str]] = []
        self.saved = 0
        ids = itertools.count(1)
        self.room = Room(parse_jid(ROOM), RoomConfig(**config), b"k" * 32,
                         send=self.sent.append, clock=lambda: 1000.0,
                         changed=self._changed, new_id=lambda: f"sid{next(ids)}",
                         archive=self._archive)

    def _changed(self, room) -> None:
        self.saved += 1

    def _archive(self, room, message, stanza_id, stamp) -> None:
        self.archived.append((stanza_id, message.toXml()))

    def to(self, jid: str) -> list[domish.Element]:
        return [each for each in self.sent if each["to"] == jid]

    def clear(self) -> None:
        self.sent.clear()

    def presence(self, sender: str, nick: str, xml: str = "", type: str | None = None,
                 created: bool = False) -> None:
        element = stanza_from_text(
            f"<presence xmlns='jabber:client' from='{sender}' to='{ROOM}/{nick}'"
            + (f" type='{type}'" if type else "") + f">{xml}</presence>")
        stanza = Stanza(element, parse_jid(sender), parse_jid(f"{ROOM}/{nick}"))
        join.on_presence(self.room, stanza, created)

    def enter(self, sender: str, nick: str, affiliation: str | None = None,
              xml: str = "") -> None:
        if affiliation is not None:
            self.room.set_affiliation(parse_jid(sender).bare(), affiliation)
        self.presence(sender, nick, f"<x xmlns='{ns.MUC}'>{xml}</x>")

    def message(self, sender: str, to: str, xml: str, type: str = "groupchat") -> None:
        element = stanza_from_text(
            f"<message xmlns='jabber:client' from='{sender}' to='{to}' type='{type}'"
            f" id='m1'>{xml}</message>")
        stanza = Stanza(element, parse_jid(sender), parse_jid(to))
        if parse_jid(to).resource:
            messages.on_private(self.room, stanza)
        elif type == "groupchat":
            messages.on_groupchat(self.room, stanza)
        else:
            messages.on_normal(self.room, stanza)


def codes_of(element: domish.Element) -> set[int]:
    return {int(status["code"]) for x in element.elements(ns.MUC_USER, "x")
            for status in x.elements(ns.MUC_USER, "status")}


def item_of(element: domish.Element) -> domish.Element:
    x = next(element.elements(ns.MUC_USER, "x"))
    return next(x.elements(ns.MUC_USER, "item"))


def child(element: domish.Element, uri: str | None, name: str) -> domish.Element | None:
    """The first child named ``name`` (of ``uri``, or of any namespace for None)."""
    return next((each for each in element.elements()
                 if each.name == name and (uri is None or each.uri == uri)), None)


ALICE, BOB, CAROL = "alice@example.org/a", "bob@example.org/b", "carol@example.net/c"


def owned_room(*occupants: tuple[str, str]) -> Harness:
    """A room Alice owns and is in, then the ``(jid, nick)`` occupants; what their entering
    sent is cleared."""
    harness = Harness()
    harness.enter(ALICE, "Alice", "owner")
    for jid, nick in occupants:
        harness.enter(jid, nick)
    harness.clear()
    return harness


def set_payload(xml: str) -> domish.Element:
    """The payload of an IQ set, parsed as the room's handlers get it."""
    return stanza_from_text(f"<iq xmlns='jabber:client' type='set'>{xml}</iq>"
                            ).firstChildElement()


@pytest.fixture
def h() -> Harness:
    return owned_room()


def test_newcomer_gets_occupants_then_itself_then_history_then_subject(h):
    h.message(ALICE, ROOM, "<body>before</body>")
    h.clear()
    h.enter(BOB, "Bob")
    to_bob = h.to(BOB)
    assert [e.name for e in to_bob] == ["presence", "presence", "message", "message"]
    assert to_bob[0]["from"] == f"{ROOM}/Alice" and item_of(to_bob[0])["role"] == "moderator"
    assert "jid" not in item_of(to_bob[0]).attributes  # semi-anonymous
    assert to_bob[1]["from"] == f"{ROOM}/Bob" and codes_of(to_bob[1]) == {110}
    assert child(to_bob[2], ns.DELAY, "delay")["from"] == ROOM
    assert child(to_bob[3], None, "subject") is not None
    # the moderator sees Bob's real JID
    to_alice = h.to(ALICE)
    assert [e["from"] for e in to_alice] == [f"{ROOM}/Bob"]
    assert item_of(to_alice[0])["jid"] == BOB
    assert child(to_alice[0], ns.OCCUPANT_ID, "occupant-id") is not None


def test_status_codes_of_creation_logging_and_non_anonymous():
    h = Harness(enable_logging=True, whois="anyone")
    h.room.set_affiliation(parse_jid(ALICE).bare(), "owner")
    h.presence(ALICE, "Alice", f"<x xmlns='{ns.MUC}'/>", created=True)
    assert codes_of(h.to(ALICE)[0]) == {110, 100, 170, 201}


@pytest.mark.parametrize(("setup", "condition"), [
    (dict(members_only=True), "registration-required"),
    (dict(password="secret"), "not-authorized"),
    (dict(max_users=1), "service-unavailable")])
def test_entry_refused(setup, condition):
    h = Harness(**setup)
    h.enter(ALICE, "Alice", "owner")
    with pytest.raises(StanzaError) as error:
        h.enter(BOB, "Bob")
    assert error.value.condition == condition


def test_banned_locked_and_conflict(h):
    h.room.set_affiliation(parse_jid(BOB).bare(), "outcast")
    with pytest.raises(StanzaError) as banned:
        h.enter(BOB, "Bob")
    assert banned.value.condition == "forbidden"
    with pytest.raises(StanzaError) as taken:
        h.enter(CAROL, "Alice")
    assert taken.value.condition == "conflict"
    h.room.locked = True
    with pytest.raises(StanzaError) as locked:
        h.enter(CAROL, "Carol")
    assert locked.value.condition == "item-not-found"


def test_password_given(h):
    h.room.config = RoomConfig(password="secret")
    h.enter(BOB, "Bob", xml="<password>secret</password>")
    assert h.room.occupants.get("Bob") is not None


def test_nick_change_and_leave(h):
    h.enter(BOB, "Bob")
    h.clear()
    h.presence(BOB, "Robert")
    old, new = h.to(ALICE)
    assert old["type"] == "unavailable" and old["from"] == f"{ROOM}/Bob"
    assert codes_of(old) == {303} and item_of(old)["nick"] == "Robert"
    assert new["from"] == f"{ROOM}/Robert"
    assert codes_of(h.to(BOB)[0]) == {303, 110}
    with pytest.raises(StanzaError):
        h.presence(BOB, "Alice")
    h.clear()
    h.presence(BOB, "Robert", "<status>bye</status>", type="unavailable")
    gone = h.to(ALICE)[0]
    assert gone["type"] == "unavailable" and str(child(gone, None, "status")) == "bye"
    assert codes_of(h.to(BOB)[0]) == {110}
    assert h.room.occupants.get("Robert") is None


def test_a_joined_session_joining_again_gets_the_whole_state(h):
    h.enter(BOB, "Bob")
    h.message(ALICE, ROOM, "<body>said</body>")
    h.clear()
    h.enter(BOB, "Bob")
    assert [e.name for e in h.to(BOB)] == ["presence", "presence", "message", "message"]
    assert codes_of(h.to(BOB)[1]) == {110}
    assert len(h.room.occupants) == 2


def test_multi_session_nick(h):
    h.enter(BOB, "Bob")
    h.enter("bob@example.org/other", "Bob")
    assert len(h.room.occupants) == 2
    h.clear()
    h.message(ALICE, ROOM, "<body>hi</body>")
    assert {e["to"] for e in h.sent} == {ALICE, BOB, "bob@example.org/other"}
    h.clear()
    h.presence(BOB, "Bob", type="unavailable")
    assert all(e.getAttribute("type") != "unavailable" for e in h.to(ALICE))
    assert h.room.occupants.get("Bob") is not None


def test_groupchat_is_stamped_stripped_kept_and_archived(h):
    h.room.config = RoomConfig(enable_logging=True)
    h.enter(BOB, "Bob")
    h.clear()
    h.message(BOB, ROOM, f"<body>hello</body><occupant-id xmlns='{ns.OCCUPANT_ID}' id='x'/>"
                         f"<stanza-id xmlns='{ns.STANZA_ID}' by='{ROOM}' id='forged'/>"
                         f"<x xmlns='{ns.MUC_USER}'><item role='moderator'/></x>"
                         f"<stanza-id xmlns='{ns.STANZA_ID}' by='elsewhere' id='kept'/>")
    message = h.to(ALICE)[0]
    assert message["from"] == f"{ROOM}/Bob" and message["type"] == "groupchat"
    ids = [(e["by"], e["id"]) for e in message.elements(ns.STANZA_ID, "stanza-id")]
    assert ids == [("elsewhere", "kept"), (ROOM, "sid1")]
    occupant_ids = [e["id"] for e in message.elements(ns.OCCUPANT_ID, "occupant-id")]
    assert occupant_ids == [h.room.occupant_id(parse_jid(BOB))]
    assert child(message, ns.MUC_USER, "x") is None
    assert [stanza_id for stanza_id, _ in h.archived] == ["sid1"]
    assert [e.stanza_id for e in h.room.history.entries] == ["sid1"]


def test_visitors_and_outsiders_may_not_speak(h):
    with pytest.raises(StanzaError) as outsider:
        h.message(BOB, ROOM, "<body>hi</body>")
    assert outsider.value.condition == "not-acceptable"
    h.room.config = RoomConfig(moderated=True)
    h.enter(BOB, "Bob")
    with pytest.raises(StanzaError) as visitor:
        h.message(BOB, ROOM, "<body>hi</body>")
    assert visitor.value.condition == "forbidden"


def test_subject(h):
    h.enter(BOB, "Bob")
    with pytest.raises(StanzaError):
        h.message(BOB, ROOM, "<subject>mine</subject>")
    h.message(ALICE, ROOM, "<subject>news</subject>")
    assert h.room.subject == "news" and h.room.subject_by == "Alice"
    h.room.config = RoomConfig(change_subject=True)
    h.message(BOB, ROOM, "<subject>mine</subject>")
    assert h.room.subject == "mine"


def test_private_messages(h):
    h.enter(BOB, "Bob")
    h.clear()
    h.message(BOB, f"{ROOM}/Alice", "<body>psst</body>", type="chat")
    pm = h.to(ALICE)[0]
    assert pm["from"] == f"{ROOM}/Bob" and pm["type"] == "chat"
    assert child(pm, ns.MUC_USER, "x") is not None
    with pytest.raises(StanzaError) as nobody:
        h.message(BOB, f"{ROOM}/Nobody", "<body>?</body>", type="chat")
    assert nobody.value.condition == "item-not-found"
    with pytest.raises(StanzaError) as groupchat:
        h.message(BOB, f"{ROOM}/Alice", "<body>?</body>")
    assert groupchat.value.condition == "bad-request"
    h.room.config = RoomConfig(allow_pms="moderators")
    with pytest.raises(StanzaError) as refused:
        h.message(BOB, f"{ROOM}/Alice", "<body>?</body>", type="chat")
    assert refused.value.condition == "forbidden"


def test_invitation_to_members_only_makes_a_member(h):
    h.room.config = RoomConfig(members_only=True, password="pw")
    h.message(ALICE, ROOM, f"<x xmlns='{ns.MUC_USER}'><invite to='carol@example.net'>"
                           f"<reason>come</reason></invite></x>", type="normal")
    invitation = h.to("carol@example.net")[0]
    x = child(invitation, ns.MUC_USER, "x")
    assert child(x, None, "invite")["from"] == ALICE
    assert str(child(x, None, "password")) == "pw"
    assert h.room.affiliation(parse_jid(CAROL)) == "member"


def test_a_member_may_not_invite_unless_allowed(h):
    h.room.config = RoomConfig(members_only=True)
    h.enter(BOB, "Bob", "member")
    with pytest.raises(StanzaError) as error:
        h.message(BOB, ROOM, f"<x xmlns='{ns.MUC_USER}'><invite to='{CAROL}'/></x>",
                  type="normal")
    assert error.value.condition == "forbidden"


def test_voice_request_and_approval(h):
    h.room.config = RoomConfig(moderated=True)
    h.enter(BOB, "Bob")
    h.clear()
    form = (f"<x xmlns='{ns.DATA_FORMS}' type='submit'><field var='FORM_TYPE'>"
            f"<value>{ns.MUC_REQUEST}</value></field><field var='muc#role'>"
            f"<value>participant</value></field></x>")
    h.message(BOB, ROOM, form, type="normal")
    request = h.to(ALICE)[0]
    assert "muc#roomnick" in request.toXml() and "Bob" in request.toXml()
    approval = (f"<x xmlns='{ns.DATA_FORMS}' type='submit'><field var='FORM_TYPE'>"
                f"<value>{ns.MUC_REQUEST}</value></field><field var='muc#roomnick'>"
                f"<value>Bob</value></field><field var='muc#request_allow'><value>true</value>"
                f"</field></x>")
    h.message(ALICE, ROOM, approval, type="normal")
    assert h.room.occupants.get("Bob").role == "participant"


def test_iqs_between_occupants_are_relayed_and_self_pings_answered(h):
    from xmppd.muc.iq_relay import IqRelay

    relay = IqRelay()
    h.enter(BOB, "Bob")

    def iq(sender: str, to: str, type: str, id: str, payload: str = "") -> Stanza:
        element = stanza_from_text(f"<iq xmlns='jabber:client' from='{sender}' to='{to}' "
                                   f"type='{type}' id='{id}'>{payload}</iq>")
        return Stanza(element, parse_jid(sender), parse_jid(to))

    ping = f"<ping xmlns='{ns.PING}'/>"
    pong = relay.request(h.room, iq(BOB, f"{ROOM}/Bob", "get", "p1", ping))
    assert pong["type"] == "result" and pong["id"] == "p1"
    with pytest.raises(StanzaError) as outsider:
        relay.request(h.room, iq(CAROL, f"{ROOM}/Bob", "get", "p2", ping))
    assert outsider.value.condition == "not-acceptable"
    relayed = relay.request(h.room, iq(BOB, f"{ROOM}/Alice", "get", "v1",
                                       "<query xmlns='jabber:iq:version'/>"))
    assert (relayed["from"], relayed["to"]) == (f"{ROOM}/Bob", ALICE)
    assert relayed["id"] != "v1"
    answer = relay.answer(h.room, iq(ALICE, f"{ROOM}/Bob", "result", relayed["id"]))
    assert (answer["from"], answer["to"], answer["id"]) == (f"{ROOM}/Alice", BOB, "v1")
    assert relay.answer(h.room, iq(ALICE, f"{ROOM}/Bob", "result", relayed["id"])) is None
    assert relay.answer(h.room, iq(CAROL, f"{ROOM}/Bob", "result", "forged")) is None


def test_forged_room_elements_in_presence_are_dropped(h):
    h.enter(BOB, "Bob", xml="")
    h.clear()
    h.presence(BOB, "Bob", f"<show>away</show><x xmlns='{ns.MUC_USER}'><item "
                           f"affiliation='owner' role='moderator'/><status code='201'/></x>"
                           f"<occupant-id xmlns='{ns.OCCUPANT_ID}' id='alice-id'/>")
    seen = h.to(ALICE)[0]
    assert str(child(seen, None, "show")) == "away"
    assert len(list(seen.elements(ns.MUC_USER, "x"))) == 1
    assert (item_of(seen)["affiliation"], item_of(seen)["role"]) == ("none", "participant")
    assert codes_of(seen) == set()
    assert [e["id"] for e in seen.elements(ns.OCCUPANT_ID, "occupant-id")] == [
        h.room.occupant_id(parse_jid(BOB))]


def test_presence_broadcast_hides_roles_it_does_not_name():
    h = Harness(moderated=True, presence_broadcast=("moderator", "participant"))
    h.enter(ALICE, "Alice", "owner")
    h.clear()
    h.enter(BOB, "Bob")  # a visitor: only Bob sees Bob
    assert h.to(ALICE) == []
    assert [e["from"] for e in h.to(BOB) if e.name == "presence"] == [
        f"{ROOM}/Alice", f"{ROOM}/Bob"]
    h.clear()
    h.enter(CAROL, "Carol", "member")  # a participant does not see the hidden visitor
    assert [e["from"] for e in h.to(CAROL) if e.name == "presence"] == [
        f"{ROOM}/Alice", f"{ROOM}/Carol"]
    h.clear()
    h.presence(BOB, "Bob", type="unavailable")  # leaving is told to everyone
    assert h.to(ALICE)[0]["type"] == "unavailable"
