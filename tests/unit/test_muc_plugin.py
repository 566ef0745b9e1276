"""The muc plugin on a real server (in memory streams, SQLite storage): its options, the
service in the host's disco#items, a room's life through the server's router, persistent
rooms saved and loaded again by a new service, the archive's in-place tombstone."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.words.xish import domish

from tests.plugin_case import PluginServerCase
from tests.unit.test_pep_plugin import error_conditions, iq_answer, wait_for
from xmppd import ns
from xmppd.jid import parse_jid
from xmppd.muc.admin import Limits
from xmppd.muc.archive import RoomArchive, tombstone_of
from xmppd.muc.config import RoomConfig
from xmppd.muc.service import MucService
from xmppd.muc.store import RoomStore
from xmppd.options import PluginOptions
from xmppd.plugins.muc import read_options
from xmppd.storage.records import ArchiveEntry
from xmppd.xml.stored import stanza_from_text

SERVICE = "rooms.localhost"
ROOM = f"lounge@{SERVICE}"


def test_defaults_and_bad_options():
    options = read_options(PluginOptions("muc", {}))
    assert options["subdomain"] == "conference" and options["create"] == "local"
    assert options["max_history"] == 50 and options["default_history"] == 20
    assert options["max_rooms_per_owner"] == 100 and options["archive"] is True
    for bad, key in (({"colour": 1}, "colour"), ({"create": "anyone"}, "create"),
                     ({"max_users": 0}, "max_users"), ({"archive": "yes"}, "archive"),
                     ({"max_rooms_per_owner": -1}, "max_rooms_per_owner"),
                     ({"max_history": 5, "default_history": 6}, "default_history")):
        with pytest.raises(ValueError) as error:
            read_options(PluginOptions("muc", bad))
        assert f"[plugins.muc] {key}" in str(error.value)


def presence_xml(nick: str, x: str = f"<x xmlns='{ns.MUC}'/>") -> str:
    return f"<presence to='{ROOM}/{nick}'>{x}</presence>"


class MucPluginTest(PluginServerCase):
    enabled = ("muc",)
    sections = {"muc": {"subdomain": "rooms"}}
    users = ("alice", "bob")

    async def test_service_in_disco_and_a_room_through_the_router(self):
        alice = await self.client("alice", "phone", available=True)
        alice.feed(f"<iq type='get' id='d1' to='localhost'><query xmlns='{ns.DISCO_ITEMS}'/>"
                   f"</iq>")
        items = await wait_for(alice, iq_answer("d1"))
        self.assertIn(SERVICE, [i["jid"] for i in items.firstChildElement().elements()])
        alice.feed(presence_xml("Alice"))
        await wait_for(alice, lambda e: e.name == "message" and e["from"] == ROOM)
        # locked until configured: bob cannot enter, the room is not listed
        bob = await self.client("bob", "pc", available=True)
        bob.feed(presence_xml("Bob"))
        refused = await wait_for(bob, lambda e: e.name == "presence"
                                 and e.getAttribute("type") == "error")
        self.assertEqual(error_conditions(refused), {"item-not-found"})
        alice.feed(f"<iq type='set' id='c1' to='{ROOM}'><query xmlns='{ns.MUC_OWNER}'>"
                   f"<x xmlns='{ns.DATA_FORMS}' type='submit'/></query></iq>")
        self.assertEqual((await wait_for(alice, iq_answer("c1")))["type"], "result")
        bob.feed(presence_xml("Bob"))
        await wait_for(bob, lambda e: e.name == "message" and e["from"] == ROOM)
        bob.feed(f"<iq type='get' id='p1' to='{ROOM}/Bob'><ping xmlns='{ns.PING}'/></iq>")
        self.assertEqual((await wait_for(bob, iq_answer("p1")))["type"], "result")
        alice.feed(f"<iq type='get' id='p2' to='{ROOM}/Nobody'><ping xmlns='{ns.PING}'/>"
                   f"</iq>")
        self.assertEqual((await wait_for(alice, iq_answer("p2")))["type"], "error")
        bob.feed(f"<presence type='unavailable' to='{ROOM}/Bob'/>")
        bob.feed(f"<iq type='get' id='p3' to='{ROOM}/Bob'><ping xmlns='{ns.PING}'/></iq>")
        self.assertEqual(error_conditions(await wait_for(bob, iq_answer("p3"))),
                         {"not-acceptable"})

    async def test_service_disco_says_exactly_what_works(self):
        alice = await self.client("alice", "phone", available=True)
        alice.feed(f"<iq type='get' id='i1' to='{SERVICE}'><query xmlns='{ns.DISCO_INFO}'/>"
                   f"</iq>")
        query = (await wait_for(alice, iq_answer("i1"))).firstChildElement()
        features = {f["var"] for f in query.elements() if f.name == "feature"}
        self.assertEqual(features, {ns.DISCO_INFO, ns.DISCO_ITEMS, ns.MUC})
        identities = [(i["category"], i["type"]) for i in query.elements()
                      if i.name == "identity"]
        self.assertEqual(identities, [("conference", "text")])

    async def test_registration_through_the_router(self):
        alice = await self.client("alice", "phone", available=True)
        alice.feed(f"<presence to='{ROOM}/Alice'/>")
        await wait_for(alice, lambda e: e.name == "message" and e["from"] == ROOM)
        bob = await self.client("bob", "pc", available=True)
        bob.feed(f"<iq type='get' id='r1' to='{ROOM}'><query xmlns='{ns.REGISTER}'/></iq>")
        self.assertIn("muc#register_roomnick", (await wait_for(bob, iq_answer("r1"))).toXml())
        bob.feed(f"<iq type='set' id='r2' to='{ROOM}'><query xmlns='{ns.REGISTER}'>"
                 f"<x xmlns='{ns.DATA_FORMS}' type='submit'><field var='FORM_TYPE'><value>"
                 f"http://jabber.org/protocol/muc#register</value></field><field var="
                 f"'muc#register_roomnick'><value>Bobby</value></field></x></query></iq>")
        self.assertEqual((await wait_for(bob, iq_answer("r2")))["type"], "result")
        bob.feed(f"<iq type='get' id='n1' to='{ROOM}'><query xmlns='{ns.DISCO_INFO}' "
                 f"node='x-roomuser-item'/></iq>")
        nick = await wait_for(bob, iq_answer("n1"))
        self.assertIn("name='Bobby'", nick.toXml().replace('"', "'"))
        alice.feed(f"<presence to='{ROOM}/Bobby'/>")
        refused = await wait_for(alice, lambda e: e.name == "presence"
                                 and e.getAttribute("type") == "error")
        self.assertEqual(error_conditions(refused), {"conflict"})

    async def test_a_message_to_a_room_that_is_not_there(self):
        alice = await self.client("alice", "phone", available=True)
        alice.feed(f"<message type='groupchat' to='nowhere@{SERVICE}'><body>?</body>"
                   f"</message>")
        error = await wait_for(alice, lambda e: e.name == "message")
        self.assertEqual(error_conditions(error), {"item-not-found"})

    async def test_persistent_rooms_come_back_and_temporary_ones_go(self):
        store = RoomStore(self.server.storage.open_store("muc_rooms", "map"))

        def service() -> MucService:
            return MucService(send=lambda e: None, clock=lambda: 0.0, rooms=store,
                              archive=None, limits=Limits(), may_create=lambda j: True,
                              defaults=RoomConfig(), new_id=lambda: "id")

        first = service()
        kept = first.new_room(parse_jid(f"kept@{SERVICE}"), RoomConfig(persistent=True))
        kept.set_affiliation(parse_jid("alice@localhost"), "owner")
        kept.subject = "hello"
        await first.changed(kept)
        gone = first.new_room(parse_jid(f"gone@{SERVICE}"), RoomConfig(persistent=True))
        await first.changed(gone)
        gone.config = RoomConfig(persistent=False)
        await first.changed(gone)
        await store.store.set(SERVICE, "broken", {"config": {"persistent": True}})
        await store.store.set(SERVICE, "worse", {"secret": "!!", "config": 3})
        second = service()
        self.assertEqual(await second.load([SERVICE]), 1)
        self.flushLoggedErrors()
        again = second.rooms[parse_jid(f"kept@{SERVICE}")]
        self.assertEqual(again.subject, "hello")
        self.assertEqual(again.affiliation(parse_jid("alice@localhost/x")), "owner")
        self.assertEqual(again.occupant_id(parse_jid("bob@localhost")),
                         kept.occupant_id(parse_jid("bob@localhost")))

    async def test_a_logging_room_comes_back_with_its_history_from_its_archive(self):
        from twisted.internet import reactor

        store = RoomStore(self.server.storage.open_store("muc_rooms", "map"))
        archive = RoomArchive(self.server.storage.open_store("muc_archive", "archive"),
                              reactor.callLater)
        ids = iter(f"s{n:02}" for n in range(100))

        def service() -> MucService:
            return MucService(send=lambda e: None, clock=lambda: 1000.0, rooms=store,
                              archive=archive, limits=Limits(), may_create=lambda j: True,
                              defaults=RoomConfig(), new_id=lambda: next(ids))

        def said(room, text: str | None) -> str:
            message = domish.Element((None, "message"))
            message["from"], message["type"] = f"{room.jid.full()}/Bob", "groupchat"
            if text is not None:
                message.addElement("body", content=text)
            stanza_id = room.new_id()
            room.archive(room, message, stanza_id, 1000.0)
            return stanza_id

        first = service()
        config = RoomConfig(persistent=True, enable_logging=True, history_length=3)
        logged = first.new_room(parse_jid(f"logged@{SERVICE}"), config)
        await first.changed(logged)
        quiet = first.new_room(parse_jid(f"quiet@{SERVICE}"),
                               RoomConfig(persistent=True, history_length=3))
        await first.changed(quiet)
        for n in range(5):
            said(logged, f"message {n}")
        said(logged, None)  # no body (a retraction's announcement, say): not history
        moderated = said(logged, "rude")
        said(quiet, "never archived")
        retracted = stanza_from_text(f"<retracted xmlns='{ns.MESSAGE_RETRACT}'/>")
        self.assertTrue(await archive.tombstone(logged, moderated, retracted))

        second = service()
        self.assertEqual(await second.load([SERVICE]), 2)
        history = second.rooms[parse_jid(f"logged@{SERVICE}")].history.entries
        self.assertEqual([str(entry.message.body) for entry in history],
                         ["message 2", "message 3", "message 4"])
        self.assertEqual([entry.stanza_id for entry in history], ["s02", "s03", "s04"])
        self.assertEqual({entry.stamp for entry in history}, {1000.0})
        self.assertEqual(list(second.rooms[parse_jid(f"quiet@{SERVICE}")].history.entries), [])

    @defer.inlineCallbacks
    def test_update_payload_keeps_the_place(self):
        store = self.server.storage.open_store("muc_archive_test", "archive")
        for n in range(3):
            yield store.append(ROOM, ArchiveEntry(float(n), "x", f"<m>{n}</m>", f"id{n}"))
        self.assertTrue((yield store.update_payload(ROOM, "id1", "<gone/>")))
        self.assertFalse((yield store.update_payload(ROOM, "nope", "<gone/>")))
        page = yield store.query(ROOM)
        self.assertEqual([(e.id, e.payload) for e in page.entries],
                         [("id0", "<m>0</m>"), ("id1", "<gone/>"), ("id2", "<m>2</m>")])


def test_tombstone_keeps_addresses_and_ids_only():
    original = stanza_from_text(
        f"<message xmlns='jabber:client' from='{ROOM}/Bob' type='groupchat' id='m'>"
        f"<body>secret</body><occupant-id xmlns='{ns.OCCUPANT_ID}' id='o'/>"
        f"<stanza-id xmlns='{ns.STANZA_ID}' by='{ROOM}' id='s'/></message>")
    retracted = stanza_from_text(f"<retracted xmlns='{ns.MESSAGE_RETRACT}'/>")
    tombstone = tombstone_of(original, retracted).toXml()
    assert "secret" not in tombstone and "occupant-id" in tombstone and "retracted" in tombstone


class RoomCapTest(PluginServerCase):
    enabled = ("muc",)
    sections = {"muc": {"subdomain": "rooms", "max_rooms_per_owner": 2}}

    async def test_an_account_owns_at_most_max_rooms_per_owner(self):
        alice = await self.client("alice", "phone", available=True)
        for name in ("one", "two"):
            alice.feed(f"<presence to='{name}@{SERVICE}/Alice'/>")
            await wait_for(alice, lambda e, room=f"{name}@{SERVICE}": e.name == "message"
                           and e["from"] == room)
        alice.feed(f"<presence to='three@{SERVICE}/Alice'/>")
        refused = await wait_for(alice, lambda e: e.name == "presence"
                                 and e.getAttribute("type") == "error")
        self.assertEqual(error_conditions(refused), {"policy-violation"})
        # leaving a temporary room ends it, and makes room for another
        alice.feed(f"<presence type='unavailable' to='one@{SERVICE}/Alice'/>")
        alice.feed(f"<presence to='three@{SERVICE}/Alice'/>")
        await wait_for(alice, lambda e: e.name == "message" and e["from"] == f"three@{SERVICE}")


class ReloadTest(PluginServerCase):
    enabled = ("muc",)
    users = ("alice",)

    async def test_stop_removes_the_service_and_start_brings_back_persistent_rooms(self):
        service = "conference.localhost"
        self.assertIn(service, self.server.router.served)
        alice = await self.client("alice", "phone", available=True)
        room = f"kept@{service}"
        alice.feed(f"<presence to='{room}/Alice'/>")  # no <x/>: an unlocked room at once
        await wait_for(alice, lambda e: e.name == "message" and e["from"] == room)
        alice.feed(f"<iq type='set' id='c1' to='{room}'><query xmlns='{ns.MUC_OWNER}'>"
                   f"<x xmlns='{ns.DATA_FORMS}' type='submit'><field var="
                   f"'muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>")
        self.assertEqual((await wait_for(alice, iq_answer("c1")))["type"], "result")
        self.fixture.registry.stop("muc")
        out = await wait_for(alice, lambda e: e.name == "presence"
                             and e.getAttribute("type") == "unavailable")
        self.assertIn("code='332'", out.toXml().replace('"', "'"))
        self.assertNotIn(service, self.server.router.served)
        await self.fixture.registry.start("muc")
        alice.feed(f"<iq type='get' id='d1' to='{service}'><query xmlns='{ns.DISCO_ITEMS}'/>"
                   f"</iq>")
        items = await wait_for(alice, iq_answer("d1"))
        self.assertEqual([i["jid"] for i in items.firstChildElement().elements()], [room])
