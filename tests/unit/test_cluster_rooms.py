"""MUC rooms in a cluster without Redis or sockets: rendezvous placement, the live set from
heartbeat readings, a room handed over whole, occupants of a dead node dropped, the rooms a
node's sessions are in and the 332 they get when a room is lost, and the link that carries a
room's stanzas to its node (xmppd.cluster.placement, rooms, memberships; xmppd.muc.handoff)."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest
from twisted.internet import defer

from xmppd.cluster.memberships import MAX_ROOMS_PER_SESSION, Memberships
from xmppd.cluster.placement import Liveness, owner
from xmppd.cluster.rooms import FORWARDED, RoomCluster
from xmppd.disco import DiscoItem
from xmppd.dispatch import Dispatcher
from xmppd.jid import parse_jid
from xmppd.muc.admin import Limits
from xmppd.muc.config import RoomConfig
from xmppd.muc.service import MucService
from xmppd.muc.store import RoomStore
from xmppd.stanza import Stanza
from xmppd.xml.stored import stanza_from_text

SERVICE = "conference.example.org"
ROOMS = [f"room{n}@{SERVICE}" for n in range(3000)]


# -- placement


def test_each_room_has_one_node_and_only_a_dead_nodes_rooms_move():
    three = {room: owner(room, ["a", "b", "c"]) for room in ROOMS}
    assert three == {room: owner(room, ["c", "b", "a"]) for room in ROOMS}  # order-free
    counts = Counter(three.values())
    assert min(counts.values()) > len(ROOMS) / 4  # spread over the nodes
    without_c = {room: owner(room, ["a", "b"]) for room in ROOMS}
    moved = [room for room in ROOMS if three[room] != without_c[room]]
    assert moved and all(three[room] == "c" for room in moved)
    with_d = {room: owner(room, ["a", "b", "c", "d"]) for room in ROOMS}
    assert all(with_d[room] in (three[room], "d") for room in ROOMS)
    assert owner(ROOMS[0], []) is None


def test_a_node_comes_and_goes_when_two_readings_say_so_or_when_it_says_it_started():
    live = Liveness("a")
    seen = []

    def read(*alive):
        live.live = live.reading(set(alive))
        seen.append(set(live.live))

    read("a", "b")  # b's key, b not listening yet perhaps
    read("a", "b")
    read("a", "b", "c")
    live.live = live.joined("c")  # c said rooms-up: at once
    read("a", "b", "c")
    read("a", "b")  # c missing once: Redis may have restarted empty
    read("a", "b", "c")  # back: stays
    read("a", "b")
    read("a", "b")  # twice: gone
    read()  # never without itself (and b goes at the second)
    read()
    assert seen == [{"a"}, {"a", "b"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b", "c"},
                    {"a", "b", "c"}, {"a", "b", "c"}, {"a", "b"}, {"a", "b"}, {"a"}]


# -- a MUC service with its stored rooms in memory


class MapStore:
    def __init__(self) -> None:
        self.data: dict = {}

    def items(self, domain):
        return defer.succeed(dict(self.data.get(domain, {})))

    def set(self, domain, key, value):
        self.data.setdefault(domain, {})[key] = json.loads(json.dumps(value))
        return defer.succeed(None)

    def delete(self, domain, key):
        self.data.get(domain, {}).pop(key, None)
        return defer.succeed(None)


def service(store: MapStore | None = None, sent: list | None = None) -> MucService:
    muc = MucService(send=(sent if sent is not None else []).append, clock=lambda: 1000.0,
                     rooms=RoomStore(store or MapStore()), archive=None, limits=Limits(),
                     may_create=lambda jid: True, defaults=RoomConfig(),
                     new_id=iter(f"sid{n}" for n in range(100)).__next__)
    muc.service = SimpleNamespace(domains=frozenset((SERVICE,)), dispatcher=Dispatcher(print),
                                  route=lambda stanza, origin: None)
    return muc


def presence(sender: str, to: str, type: str | None = None, xml: str = "") -> Stanza:
    element = stanza_from_text(
        f"<presence xmlns='jabber:client' from='{sender}' to='{to}'"
        + (f" type='{type}'" if type else "") + f">{xml}</presence>")
    return Stanza(element, parse_jid(sender), parse_jid(to))


def groupchat(sender: str, room: str, body: str) -> Stanza:
    element = stanza_from_text(f"<message xmlns='jabber:client' from='{sender}' to='{room}' "
                               f"type='groupchat'><body>{body}</body></message>")
    return Stanza(element, parse_jid(sender), parse_jid(room))


ROOM = f"lounge@{SERVICE}"
JOIN = "<x xmlns='http://jabber.org/protocol/muc'/>"


def busy_room(muc: MucService) -> None:
    muc.on_presence(presence("alice@example.org/phone", f"{ROOM}/Alice"))  # open at once
    muc.on_presence(presence("bob@example.org/pc", f"{ROOM}/Bob", xml="<show>away</show>"))
    muc.on_presence(presence("bob@example.org/tablet", f"{ROOM}/Bob"))  # one nick, 2 sessions
    muc.on_message(groupchat("alice@example.org/phone", ROOM, "one"))
    muc.on_message(groupchat("bob@example.org/pc", ROOM, "two"))
    room = muc.rooms[parse_jid(ROOM)]
    room.set_affiliation(parse_jid("carol@example.org"), "member")
    room.subject = "talk"


def test_a_room_handed_over_whole():
    first, second = service(), service()
    busy_room(first)
    before = first.rooms[parse_jid(ROOM)]
    state = json.loads(json.dumps(first.export(parse_jid(ROOM))))  # through the wire
    assert parse_jid(ROOM) not in first.rooms
    room = second.adopt(state)
    assert room.jid == parse_jid(ROOM) and second.rooms[room.jid] is room
    assert [o.nick for o in room.occupants] == ["Alice", "Bob"]
    bob = room.occupants.get("Bob")
    assert [j.full() for j in bob.jids()] == ["bob@example.org/pc", "bob@example.org/tablet"]
    assert bob.role == "participant" and room.occupants.of_session(
        parse_jid("bob@example.org/pc")) is bob
    assert [str(e.message.body) for e in room.history.entries] == ["one", "two"]
    assert [e.stanza_id for e in room.history.entries] == [
        e.stanza_id for e in before.history.entries]
    assert room.affiliation(parse_jid("carol@example.org")) == "member"
    assert room.subject == "talk" and room.secret == before.secret
    # the occupants go on as before: a message reaches all three sessions
    sent = []
    room.send = sent.append
    second.on_message(groupchat("alice@example.org/phone", ROOM, "three"))
    assert sorted(e["to"] for e in sent) == ["alice@example.org/phone", "bob@example.org/pc",
                                             "bob@example.org/tablet"]


def test_an_unreadable_occupant_is_left_out_of_a_hand_over():
    first, second = service(), service()
    busy_room(first)
    state = first.export(parse_jid(ROOM))
    state["occupants"][0]["role"] = "king"
    room = second.adopt(state)
    assert [o.nick for o in room.occupants] == ["Bob"]
    for broken in ("not a record", {"secret": "AAAA", "config": 3}):
        state["record"] = broken
        with pytest.raises((KeyError, TypeError, ValueError, AttributeError)):
            second.adopt(state)
        assert parse_jid(ROOM) not in second.rooms
    # on the wire: logged and left out, the node goes on
    rooms = cluster(second)
    rooms.on_message("handoff", json.dumps(state))
    rooms.on_message("handoff", "{not json")
    rooms.on_message("room", "<presence")
    assert parse_jid(ROOM) not in second.rooms


def test_sessions_of_a_dead_node_leave_and_the_others_are_told():
    sent: list = []
    muc = service(sent=sent)
    busy_room(muc)
    sent.clear()
    gone = {"bob@example.org/tablet", "alice@example.org/phone"}
    assert muc.leave_sessions(lambda session: session.full() in gone) == 2
    room = muc.rooms[parse_jid(ROOM)]
    assert [o.nick for o in room.occupants] == ["Bob"]
    told = [(e["to"], e["from"], e.getAttribute("type")) for e in sent]
    assert ("bob@example.org/pc", f"{ROOM}/Alice", "unavailable") in told
    # the last session empties a temporary room: it goes
    assert muc.leave_sessions(lambda session: True) == 1
    assert not muc.rooms


def test_a_room_closed_tells_its_occupants_332_and_keeps_what_is_stored():
    store, sent = MapStore(), []
    muc = service(store, sent)
    busy_room(muc)
    room = muc.rooms[parse_jid(ROOM)]
    room.config = RoomConfig(persistent=True)
    muc.changed(room)
    sent.clear()
    muc.close(parse_jid(ROOM))
    assert sorted(e["to"] for e in sent) == ["alice@example.org/phone", "bob@example.org/pc",
                                             "bob@example.org/tablet"]
    assert all("code=\"332\"" in e.toXml().replace("'", '"') for e in sent)
    assert "lounge" in store.data[SERVICE]
    again = service(store)
    count = defer.ensureDeferred(again.load([SERVICE], lambda jid: jid.user != "lounge"))
    assert count.result == 0 and not again.rooms
    assert defer.ensureDeferred(again.load([SERVICE])).result == 1


# -- the rooms a node's own sessions are in


def test_memberships_follow_a_clients_presence_and_make_the_332():
    members = Memberships(lambda jid: jid.host == SERVICE)
    alice = "alice@example.org/phone"
    members.outgoing(presence(alice, f"{ROOM}/Alice", xml=JOIN), None)
    members.outgoing(presence(alice, f"other@{SERVICE}/Al"), None)
    members.outgoing(presence(alice, f"other@{SERVICE}/Alf"), None)  # a nick change
    members.outgoing(presence(alice, "bob@example.org"), None)  # not a room
    members.outgoing(presence(alice, f"third@{SERVICE}/A"), None)
    members.outgoing(presence(alice, f"third@{SERVICE}/A", "unavailable"), None)
    assert {j.full(): n for j, n in members.joined[parse_jid(alice)].items()} == {
        ROOM: "Alice", f"other@{SERVICE}": "Alf"}
    lost = members.lost(lambda room: room.user == "other")
    [element] = lost
    assert (element["from"], element["to"], element["type"]) == (
        f"other@{SERVICE}/Alf", alice, "unavailable")
    codes = {s["code"] for s in element.elements().__next__().elements() if s.name == "status"}
    assert codes == {"110", "332"}
    assert members.lost(lambda room: room.user == "other") == []
    members.session_closed(SimpleNamespace(jid=parse_jid(alice)))
    assert not members.joined


def test_memberships_of_one_session_are_bounded():
    members = Memberships(lambda jid: True)
    for n in range(MAX_ROOMS_PER_SESSION + 5):
        members.outgoing(presence("a@example.org/x", f"r{n}@{SERVICE}/n"), None)
    rooms = members.joined[parse_jid("a@example.org/x")]
    assert len(rooms) == MAX_ROOMS_PER_SESSION and parse_jid(f"r0@{SERVICE}") not in rooms


# -- the link that carries a room's stanzas to its node


class FakeRedis:
    def __init__(self, listeners: int = 1) -> None:
        self.published: list[tuple[str, str]] = []
        self.listeners = listeners

    def publish(self, channel, message):
        self.published.append((channel, message))
        return defer.succeed(self.listeners)

    def delete(self, key):
        self.published.append(("DEL", key))
        return defer.succeed(1)

    alive = frozenset()

    def smembers(self, key):
        return defer.succeed(set(self.alive))

    def exists(self, key):
        return defer.succeed(1)

    def hmset(self, key, mapping):
        self.published.append(("HMSET", key))
        return defer.succeed(None)


def cluster(muc: MucService, live=("a", "b", "c"), me="a", listeners=1):
    server = SimpleNamespace(router=SimpleNamespace(domains=frozenset(("example.org",)),
                                                    bounced=[]),
                             sessions={}, dispatcher=Dispatcher(print))
    server.router.bounce = lambda stanza, condition, text=None: server.router.bounced.append(
        (stanza, condition))
    server.router.sent = []
    server.router.send_from_server = server.router.sent.append
    server.query = lambda interface: muc
    server.events = SimpleNamespace(on=lambda event, handler: lambda: None)
    rooms = RoomCluster(me, 1.0, FakeRedis(listeners), muc, server,
                        SimpleNamespace(get=lambda jid: None), None)
    rooms.liveness.live = frozenset(live)
    return rooms


def room_of(node: str, nodes=("a", "b", "c")) -> str:
    return next(room for room in ROOMS if owner(room, nodes) == node)


def test_a_rooms_stanza_goes_to_its_node_and_one_from_there_is_run_here():
    rooms = cluster(service())
    there = room_of("b")
    stanza = presence("alice@example.org/phone", f"{there}/Alice", xml=JOIN)
    assert rooms.place(stanza, None) is True
    [(channel, message)] = rooms.redis.published
    assert channel == "xmppd:stanzas:b" and message.startswith("room\n<presence")
    assert rooms.place(stanza, FORWARDED) is None  # sent here by b: run here
    assert rooms.place(presence("alice@example.org/phone", f"{room_of('a')}/A"), None) is None
    assert rooms.place(presence("x@example.org/y", SERVICE + "/z"), None) is None  # the service


def test_a_room_whose_node_is_not_listening_is_refused():
    rooms = cluster(service(), listeners=0)
    rooms.place(groupchat("alice@example.org/phone", room_of("c"), "hi"), None)
    [(_, condition)] = rooms.server.router.bounced
    assert condition == "service-unavailable"
    rooms.place(presence("alice@example.org/phone", f"{room_of('c')}/A", "unavailable"), None)
    assert len(rooms.server.router.bounced) == 1  # leaving needs no answer


def test_rooms_move_to_a_node_that_joins_and_wait_for_a_load_after_a_death():
    muc = service()
    stays = next(room for room in ROOMS if owner(room, ("a", "b")) == "a"
                 and owner(room, ("a", "b", "c")) == "a")
    to_c = next(room for room in ROOMS if owner(room, ("a", "b")) == "a"
                and owner(room, ("a", "b", "c")) == "c")
    rooms = cluster(muc, live=("a", "b"))
    rooms.server.sessions[parse_jid("bob@example.org/pc")] = object()  # bound here
    for room in (stays, to_c):
        muc.on_presence(presence("bob@example.org/pc", f"{room}/Bob"))
    rooms.on_registry("rooms-up c")
    assert set(muc.rooms) == {parse_jid(stays)}
    [(channel, handoff), (again, handed)] = rooms.redis.published
    assert channel == again == "xmppd:stanzas:c"
    kind, _, state = handoff.partition("\n")
    assert kind == "handoff" and json.loads(state)["jid"] == to_c
    assert handed == "handed\na"  # after the rooms: c may run its own now
    # c dies: its stored rooms load here; a stanza for one of them waits for the load
    waiting: defer.Deferred = defer.Deferred()
    rooms.muc.load = lambda domains, wanted: waiting
    rooms._changed(frozenset(("a", "b")), {"c"})
    assert ("DEL", "xmppd:rooms:c") in rooms.redis.published  # its room list
    held = rooms.place(presence("bob@example.org/pc", f"{to_c}/Bob"), None)
    assert isinstance(held, defer.Deferred) and not held.called
    assert rooms.place(presence("bob@example.org/pc", f"{stays}/Bob"), None) is None
    waiting.callback(0)
    assert held.called and held.result is None  # goes on to the MUC plugin
    assert rooms.place(presence("bob@example.org/pc", f"{to_c}/Bob"), None) is None


def test_the_room_list_adds_the_public_rooms_of_the_other_nodes():
    muc = service()
    muc.on_presence(presence("alice@example.org/phone", f"{ROOM}/Alice"))
    muc.rooms[parse_jid(ROOM)].config = RoomConfig(public=True, name="Here")
    asked = []

    def elsewhere(domain):
        asked.append(domain)
        return defer.succeed([DiscoItem(f"there@{SERVICE}", name="There"),
                              DiscoItem(ROOM, name="Here")])  # a room just handed over

    request = Stanza(stanza_from_text(f"<iq xmlns='jabber:client' type='get' to='{SERVICE}' "
                                      f"from='bob@example.org/x' id='1'/>"),
                     parse_jid("bob@example.org/x"), parse_jid(SERVICE))
    assert [item.jid for item in muc.service_items(request, None)] == [ROOM]
    muc.elsewhere = elsewhere
    listed = muc.service_items(request, None).result
    assert [(item.jid, item.name) for item in listed] == [(ROOM, "Here"),
                                                         (f"there@{SERVICE}", "There")]
    assert asked == [SERVICE]


def test_a_node_that_starts_holds_its_rooms_stanzas_until_the_others_handed_theirs():
    muc = service()
    rooms = cluster(muc, live=("a", "b", "c"))
    rooms._awaiting = {"b", "c"}
    mine = room_of("a")
    held = rooms.place(presence("bob@example.org/pc", f"{mine}/Bob"), None)
    assert isinstance(held, defer.Deferred)
    assert rooms.place(presence("bob@example.org/pc", f"{room_of('b')}/Bob"), None) is True
    carried = rooms.place(presence("carol@example.org/x", f"{mine}/C"), FORWARDED)
    assert isinstance(carried, defer.Deferred)  # carried here by a third node: held too
    rooms.on_message("handed", "b")
    assert not held.called
    rooms._changed(frozenset(("a", "b")), {"c"})  # c died meanwhile: nothing to wait for
    assert held.called and held.result is None and carried.called
    rooms._awaiting = {"b"}
    held = rooms.place(presence("bob@example.org/pc", f"{mine}/Bob"), None)
    rooms._settled(None)  # the wait is over (SETTLE_HEARTBEATS)
    assert held.called


def test_a_death_is_seen_at_the_second_heartbeat_without_the_node():
    muc = service()
    rooms = cluster(muc, live=("a", "b", "c"))
    lost_room = room_of("c")
    rooms.memberships.outgoing(presence("alice@example.org/phone", f"{lost_room}/Al"), None)
    rooms.muc.load = lambda domains, wanted: defer.succeed(0)
    rooms.redis.alive = frozenset(("a", "b"))
    rooms.tick()
    assert rooms.live == {"a", "b", "c"} and not rooms.server.router.sent
    rooms.tick()
    assert rooms.live == {"a", "b"}
    [shutdown] = rooms.server.router.sent
    assert (shutdown["from"], shutdown["to"]) == (f"{lost_room}/Al", "alice@example.org/phone")


def test_a_reloaded_muc_plugin_is_placed_again_at_the_next_heartbeat():
    old, new = service(), service()
    rooms = cluster(old, live=("a", "b"))
    rooms._wire()
    rooms.redis.alive = frozenset(("a", "b"))
    elsewhere = room_of("b", ("a", "b"))
    new.on_presence(presence("bob@example.org/pc", f"{elsewhere}/Bob"))  # loaded by the new one
    rooms.server.query = lambda interface: new
    rooms.tick()
    assert rooms.muc is new and new.elsewhere is not None and old.elsewhere is None
    assert parse_jid(elsewhere) not in new.rooms  # b's
    stanza = presence("bob@example.org/pc", f"{elsewhere}/Bob")
    assert new.dispatcher.dispatch(stanza, "full", None) is True  # carried to b


def test_a_node_that_stops_hands_every_room_over_then_says_so():
    muc = service()
    rooms = cluster(muc, live=("a", "b", "c"))
    mine = [room for room in ROOMS if owner(room, "abc") == "a"][:4]
    for room in mine:
        muc.on_presence(presence("bob@example.org/pc", f"{room}/Bob"))
    rooms.stop()
    assert not muc.rooms
    published = rooms.redis.published
    handed = [(channel, json.loads(message.split("\n", 1)[1])["jid"])
              for channel, message in published[:4]]
    assert handed == [(f"xmppd:stanzas:{owner(room, 'bc')}", room) for room in mine]
    assert published[4:] == [("xmppd:registry", "rooms-down a"), ("DEL", "xmppd:rooms:a")]
