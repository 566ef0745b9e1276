"""Bookmarks on a real server with real SQLite: XEP-0402 native bookmarks as plain PEP,
and the bookmarks plugin keeping them in step with XEP-0048 lists in private XML (XEP-0049)
and on the 'storage:bookmarks' PEP node, in every direction, without loops."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from tests.personal_case import PersonalCase, error_condition
from tests.unit.test_pep_plugin import event_of, publish_options, wait_for
from xmppd import ns
from xmppd.caps import Caps, DiscoInfo, Identity
from xmppd.interfaces import IPep, IPrivateXml
from xmppd.jid import parse_jid
from xmppd.personal import bookmarks
from xmppd.plugins.bookmarks import bookmarks as plugin
from xmppd.plugins.pep import pep
from xmppd.xml.stored import stanza_from_text

ALICE = parse_jid("alice@localhost")
ROOM = "room@conference.localhost"
OTHER_ROOM = "other@conference.localhost"
NATIVE_OPTIONS = publish_options(**{name: value for name, value in
                                    bookmarks.NATIVE_OPTIONS.items()})
CAPS_NODE = "https://example.org/bm"


def native_publish(jid: str = ROOM, name: str = "The Room", nick: str = "al",
                   extensions: str = "") -> str:
    return (f"<pubsub xmlns='{ns.PUBSUB}'><publish node='{ns.BOOKMARKS}'>"
            f"<item id='{jid}'><conference xmlns='{ns.BOOKMARKS}' name='{name}' "
            f"autojoin='true'><nick>{nick}</nick>{extensions}</conference></item></publish>"
            f"{NATIVE_OPTIONS}</pubsub>")


def legacy_storage(*rooms: tuple[str, str], extra: str = "") -> str:
    conferences = "".join(f"<conference jid='{jid}' name='{name}' autojoin='1'>"
                          f"<nick>al</nick></conference>" for jid, name in rooms)
    return f"<storage xmlns='{ns.LEGACY_BOOKMARKS}'>{conferences}{extra}</storage>"


def private_set(storage: str) -> str:
    return f"<query xmlns='{ns.PRIVATE}'>{storage}</query>"


PRIVATE_GET = private_set(f"<storage xmlns='{ns.LEGACY_BOOKMARKS}'/>")


def items_get(node: str) -> str:
    return f"<pubsub xmlns='{ns.PUBSUB}'><items node='{node}'/></pubsub>"


def items_of(answer: domish.Element) -> dict[str, domish.Element]:
    assert answer["type"] == "result", answer.toXml()
    (pubsub,) = answer.elements(ns.PUBSUB, "pubsub")
    (items,) = pubsub.elements(ns.PUBSUB, "items")
    return {item["id"]: next(item.elements()) for item in items.elements()}


def private_storage(answer: domish.Element) -> domish.Element:
    assert answer["type"] == "result", answer.toXml()
    (query,) = answer.elements(ns.PRIVATE, "query")
    (storage,) = query.elements(ns.LEGACY_BOOKMARKS, "storage")
    return storage


def rooms_of(storage: domish.Element) -> dict[str, str]:
    return {c["jid"]: c.getAttribute("name") for c in storage.elements() if c.name == "conference"}


class BookmarksCase(PersonalCase):
    enabled = ("vcard", "avatar_hash", "private", "pep", "bookmarks")


class NativeIsPlainPepTest(BookmarksCase):
    enabled = ("private", "pep")

    async def test_one_item_per_room_with_publish_options_and_only_for_the_account(self):
        alice = await self.client("alice", "phone")
        self.assertIsNone(error_condition(await self.ask(alice, "set", native_publish())))
        self.assertIsNone(error_condition(await self.ask(
            alice, "set", native_publish("other@conference.localhost", "Other"))))
        found = items_of(await self.ask(alice, "get", items_get(ns.BOOKMARKS)))
        self.assertEqual(sorted(found), sorted([ROOM, "other@conference.localhost"]))
        self.assertEqual(found[ROOM]["name"], "The Room")
        bob = await self.client("bob", "pc")
        answer = await self.ask(bob, "get", items_get(ns.BOOKMARKS), to="alice@localhost")
        self.assertEqual(error_condition(answer), "not-allowed")  # whitelist: closed-node


class DiscoTest(BookmarksCase):
    async def test_compat_features_on_the_account(self):
        alice = await self.client("alice", "phone")
        answer = await self.ask(alice, "get", f"<query xmlns='{ns.DISCO_INFO}'/>",
                                to="alice@localhost")
        (query,) = answer.elements(ns.DISCO_INFO, "query")
        features = {f["var"] for f in query.elements() if f.name == "feature"}
        for feature in (ns.BOOKMARKS_COMPAT, ns.BOOKMARKS_COMPAT_PEP, ns.BOOKMARKS_CONVERSION):
            self.assertIn(feature, features)


class FromLegacyPrivateTest(BookmarksCase):
    async def test_private_list_becomes_native_items_and_legacy_pep_node(self):
        alice = await self.client("alice", "phone")
        storage = legacy_storage((ROOM, "The Room"), ("b@conference.localhost", "B"),
                                 extra="<url name='site' url='https://example.org'/>")
        self.assertIsNone(error_condition(await self.ask(alice, "set", private_set(storage))))
        native = items_of(await self.ask(alice, "get", items_get(ns.BOOKMARKS)))
        self.assertEqual(sorted(native), sorted([ROOM, "b@conference.localhost"]))
        self.assertEqual((native[ROOM]["name"], native[ROOM]["autojoin"]), ("The Room", "true"))
        legacy = items_of(await self.ask(alice, "get", items_get(ns.LEGACY_BOOKMARKS)))
        self.assertEqual(rooms_of(legacy[bookmarks.LEGACY_ITEM]),
                         {ROOM: "The Room", "b@conference.localhost": "B"})

    async def test_a_room_left_out_is_retracted_and_unchanged_rooms_are_not_notified(self):
        alice = await self.client("alice", "phone")
        both = legacy_storage((ROOM, "The Room"), ("b@conference.localhost", "B"))
        await self.ask(alice, "set", private_set(both))
        pep = self.server.query(IPep)
        published = []
        original = pep.publish

        def counting(*args, **kwargs):
            published.append(args[1:3])
            return original(*args, **kwargs)
        pep.publish = counting
        try:
            await self.ask(alice, "set", private_set(legacy_storage((ROOM, "The Room"))))
        finally:
            del pep.publish
        native = items_of(await self.ask(alice, "get", items_get(ns.BOOKMARKS)))
        self.assertEqual(list(native), [ROOM])
        self.assertNotIn((ns.BOOKMARKS, ROOM), published)

    async def test_native_extensions_survive_a_legacy_rewrite(self):
        alice = await self.client("alice", "phone")
        state = "<extensions><state xmlns='urn:example:state' minimized='true'/></extensions>"
        await self.ask(alice, "set", native_publish(extensions=state))
        await self.ask(alice, "set", private_set(legacy_storage((ROOM, "Renamed"))))
        native = items_of(await self.ask(alice, "get", items_get(ns.BOOKMARKS)))
        self.assertEqual(native[ROOM]["name"], "Renamed")
        (extensions,) = native[ROOM].elements(ns.BOOKMARKS, "extensions")
        self.assertEqual(next(extensions.elements()).name, "state")


class FromNativeTest(BookmarksCase):
    async def test_publish_and_retract_update_private_xml_and_legacy_node(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", private_set(legacy_storage(
            extra="<url name='site' url='https://example.org'/>")))
        await self.ask(alice, "set", native_publish())
        storage = private_storage(await self.ask(alice, "get", PRIVATE_GET))
        self.assertEqual(rooms_of(storage), {ROOM: "The Room"})
        self.assertEqual([c.name for c in storage.elements()], ["conference", "url"])
        (nick,) = next(storage.elements()).elements(ns.LEGACY_BOOKMARKS, "nick")
        self.assertEqual(str(nick), "al")
        retract = (f"<pubsub xmlns='{ns.PUBSUB}'><retract node='{ns.BOOKMARKS}'>"
                   f"<item id='{ROOM}'/></retract></pubsub>")
        self.assertIsNone(error_condition(await self.ask(alice, "set", retract)))
        storage = private_storage(await self.ask(alice, "get", PRIVATE_GET))
        self.assertEqual(rooms_of(storage), {})
        legacy = items_of(await self.ask(alice, "get", items_get(ns.LEGACY_BOOKMARKS)))
        self.assertEqual(rooms_of(legacy[bookmarks.LEGACY_ITEM]), {})


class FromLegacyPepTest(BookmarksCase):
    async def test_legacy_pep_publish_reaches_native_and_private(self):
        alice = await self.client("alice", "phone")
        publish = (f"<pubsub xmlns='{ns.PUBSUB}'><publish node='{ns.LEGACY_BOOKMARKS}'>"
                   f"<item id='current'>{legacy_storage((ROOM, 'The Room'))}</item></publish>"
                   f"{publish_options(persist_items='true', access_model='whitelist')}"
                   f"</pubsub>")
        self.assertIsNone(error_condition(await self.ask(alice, "set", publish)))
        native = items_of(await self.ask(alice, "get", items_get(ns.BOOKMARKS)))
        self.assertEqual(list(native), [ROOM])
        storage = private_storage(await self.ask(alice, "get", PRIVATE_GET))
        self.assertEqual(rooms_of(storage), {ROOM: "The Room"})


class NotificationTest(BookmarksCase):
    async def test_a_private_set_notifies_own_resources_watching_either_pep_node(self):
        """XEP-0402 clients hear of the native items, XEP-0048-over-PEP clients of the
        legacy node (XEP-0411 §3: a MUST)."""
        info = DiscoInfo((Identity("client", "pc"),),
                         (ns.DISCO_INFO, ns.BOOKMARKS + "+notify",
                          ns.LEGACY_BOOKMARKS + "+notify"))
        caps = Caps.of(info, CAPS_NODE)
        pep._handlers.caps.learn(caps, frozenset(info.features))
        modern = await self.client("alice", "laptop")
        modern.feed(f"<presence>{caps.to_element().toXml()}</presence>")
        legacy = await self.client("alice", "old")
        await self.ask(legacy, "set", private_set(legacy_storage((ROOM, "The Room"))))
        heard = {}

        def both(element: domish.Element) -> bool:
            for node in (ns.BOOKMARKS, ns.LEGACY_BOOKMARKS):
                if event_of(node)(element):
                    heard[node] = element.toXml()
            return len(heard) == 2
        await wait_for(modern, both)
        self.assertTrue(all(ROOM in event for event in heard.values()))


class ShapesTest(TestCase):
    """The conversion itself, without a server."""

    def test_round_trip_keeps_what_both_shapes_hold(self):
        legacy = stanza_from_text(
            f"<storage xmlns='{ns.LEGACY_BOOKMARKS}'><conference jid='{ROOM}' name='R' "
            f"autojoin='1'><nick>al</nick><password>pw</password></conference>"
            f"<conference jid='b@c' autojoin='false'/><url name='u' url='https://e.org'/>"
            f"</storage>")
        native = bookmarks.native_of(legacy)
        self.assertEqual(native[ROOM]["autojoin"], "true")
        self.assertIsNone(native["b@c"].getAttribute("autojoin"))
        back = bookmarks.legacy_of(native.items(), legacy)
        self.assertEqual([c.name for c in back.elements()], ["conference", "conference", "url"])
        first = next(back.elements())
        self.assertEqual((first["jid"], first["name"], first["autojoin"]), (ROOM, "R", "true"))
        self.assertEqual([(c.name, str(c)) for c in first.elements()],
                         [("nick", "al"), ("password", "pw")])
        self.assertTrue(bookmarks.same(native[ROOM], bookmarks.native_of(back)[ROOM]))

    def test_same_sees_edits(self):
        one = bookmarks.native_of(stanza_from_text(legacy_storage((ROOM, "A"))))[ROOM]
        other = bookmarks.native_of(stanza_from_text(legacy_storage((ROOM, "B"))))[ROOM]
        self.assertFalse(bookmarks.same(one, other))
        self.assertFalse(bookmarks.same(one, None))


class AdoptTest(BookmarksCase):
    async def test_a_list_kept_before_conversion_reaches_the_native_node_at_login(self):
        storage = stanza_from_text(legacy_storage((ROOM, "The Room")))
        await self.server.query(IPrivateXml).store(ALICE, storage)  # tells no event
        alice = await self.client("alice", "phone")
        await defer.DeferredList(list(plugin.pending))
        native = items_of(await self.ask(alice, "get", items_get(ns.BOOKMARKS)))
        self.assertEqual(list(native), [ROOM])

    async def test_without_a_private_list_a_login_does_not_read_the_native_node(self):
        asked: list = []
        self.patch(type(self.server.query(IPep)), "items",
                   lambda self, account, node: asked.append(node) or defer.succeed([]))
        await self.client("alice", "phone")
        await defer.DeferredList(list(plugin.pending))
        self.assertEqual(asked, [])

    async def test_a_native_node_with_items_is_left_alone_at_login(self):
        bob = await self.client("bob", "phone")
        await self.ask(bob, "set", native_publish(jid=OTHER_ROOM, name="Native"))
        storage = stanza_from_text(legacy_storage((ROOM, "The Room")))
        await self.server.query(IPrivateXml).store(parse_jid("bob@localhost"), storage)
        plugin._adopted.discard("bob@localhost")  # as after a restart
        bob_again = await self.client("bob", "laptop")
        await defer.DeferredList(list(plugin.pending))
        native = items_of(await self.ask(bob_again, "get", items_get(ns.BOOKMARKS)))
        self.assertEqual(list(native), [OTHER_ROOM])


class PurgeTest(BookmarksCase):
    async def test_purging_the_native_node_empties_the_legacy_lists(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", native_publish())
        purge = (f"<pubsub xmlns='{ns.PUBSUB_OWNER}'><purge node='{ns.BOOKMARKS}'/></pubsub>")
        self.assertIsNone(error_condition(await self.ask(alice, "set", purge)))
        storage = private_storage(await self.ask(alice, "get", PRIVATE_GET))
        self.assertEqual(rooms_of(storage), {})
