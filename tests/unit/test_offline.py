"""XEP-0160 offline messages on a real server with real SQLite: store, deliver once, delete."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from tests.helpers import ServerFixture, StreamHarness
from xmppd import events, ns
from xmppd.interfaces import IOfflineDelivery
from xmppd.jid import parse_jid
from xmppd.registry import PluginError
from xmppd.stanza import Stanza

PASSWORD = "pencil and paper"
NOW = 1700000000.25  # 2023-11-14T22:13:20.250Z
NOW_STAMP = "2023-11-14T22:13:20.250Z"


def plugins_toml(offline_section: str = "") -> str:
    return ("require_encryption = false\n"
            "[plugins]\n"
            "enabled = [\"disco\", \"offline\"]\n"
            f"[plugins.offline]\n{offline_section}\n")


def chat(body: str, to: str = "alice@localhost", sender: str = "bob@localhost/home",
         type: str | None = "chat") -> Stanza:
    """A message as the router hands it over: 'from' already stamped with the full JID."""
    element = domish.Element((ns.CLIENT, "message"))
    element["to"] = to
    element["from"] = sender
    if type is not None:
        element["type"] = type
    element.addElement("body", content=body)
    return Stanza(element, parse_jid(sender), parse_jid(to))


def delay_of(element: domish.Element) -> list[domish.Element]:
    return [child for child in element.elements() if (child.uri, child.name) == (ns.DELAY, "delay")]


def body_of(element: domish.Element) -> str:
    return str(next(child for child in element.elements() if child.name == "body"))


def new_fixture(test: TestCase, offline_section: str = "") -> ServerFixture:
    path = Path(test.mktemp())
    path.mkdir(parents=True)
    return ServerFixture(path, plugins_toml(offline_section))


class OfflineTestCase(TestCase):
    offline_section = ""

    def setUp(self):
        self.fixture = new_fixture(self, self.offline_section)
        self.server = self.fixture.server
        self.storage = self.fixture.storage
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self.fixture.start()
        await self.fixture.add_user("alice", PASSWORD)
        self.fixture.clock.advance(NOW)
        self.offline = self.server.query(IOfflineDelivery)

    async def online(self, resource: str, priority: int = 0) -> StreamHarness:
        """A logged-in alice session that has just become available at ``priority``."""
        harness = StreamHarness(self.server)
        await harness.login("alice", PASSWORD, resource)
        session = harness.stream.session
        session.available = True
        session.priority = priority
        return harness

    def available(self, harness: StreamHarness) -> defer.Deferred:
        return self.server.emit(events.RESOURCE_AVAILABLE, harness.stream.session)

    def count(self, localpart: str = "alice") -> defer.Deferred:
        return self.storage.offline.count(localpart, "localhost")


class StoreTests(OfflineTestCase):
    offline_section = "max_messages = 3"

    async def test_stores_chat_and_normal_messages(self):
        self.assertTrue(await self.offline.store(chat("one")))
        self.assertTrue(await self.offline.store(chat("two", type=None)))
        self.assertTrue(await self.offline.store(chat("three", type="normal")))
        self.assertEqual(await self.count(), 3)

    async def test_other_types_are_refused(self):
        for type_ in ("headline", "groupchat", "error"):
            self.assertFalse(await self.offline.store(chat("x", type=type_)), type_)
        self.assertEqual(await self.count(), 0)

    async def test_notifications_are_dropped_without_an_error(self):
        """XEP-0160 §3 / XEP-0085: a typing notification replayed at login is noise."""
        typing = chat("x")
        typing.element.children = []
        typing.element.addElement((ns.CHAT_STATES, "composing"))
        self.assertTrue(await self.offline.store(typing))
        self.assertEqual(await self.count(), 0)

    async def test_a_body_with_a_chat_state_is_kept(self):
        message = chat("hello")
        message.element.addElement((ns.CHAT_STATES, "active"))
        self.assertTrue(await self.offline.store(message))
        self.assertEqual(await self.count(), 1)

    async def test_refused_at_the_limit(self):
        for body in ("one", "two", "three"):
            self.assertTrue(await self.offline.store(chat(body)))
        self.assertFalse(await self.offline.store(chat("four")))
        self.assertEqual(await self.count(), 3)

    async def test_unknown_account_is_refused(self):
        self.assertFalse(await self.offline.store(chat("hello", to="nobody@localhost")))

    async def test_the_callers_element_is_not_changed(self):
        stanza = chat("hello")
        before = stanza.element.toXml()
        children = list(stanza.element.children)
        self.assertTrue(await self.offline.store(stanza))
        self.assertEqual(stanza.element.toXml(), before)
        self.assertEqual(stanza.element.children, children)
        self.assertEqual(delay_of(stanza.element), [])

    async def test_advertises_msgoffline(self):
        self.assertIn(ns.MSG_OFFLINE, self.server.features.features())


class StorageDisabledTests(OfflineTestCase):
    offline_section = "max_messages = 0"

    async def test_nothing_is_stored_and_nothing_advertised(self):
        self.assertFalse(await self.offline.store(chat("hello")))
        self.assertEqual(await self.count(), 0)
        self.assertNotIn(ns.MSG_OFFLINE, self.server.features.features())


class DeliveryTests(OfflineTestCase):
    async def test_delivered_in_order_with_delay_then_deleted(self):
        for body in ("one", "two", "three"):
            self.assertTrue(await self.offline.store(chat(body)))
        harness = await self.online("phone", priority=0)
        await self.available(harness)

        delivered = harness.elements()
        self.assertEqual([body_of(m) for m in delivered], ["one", "two", "three"])
        for message in delivered:
            self.assertEqual(message.name, "message")
            self.assertEqual(message["from"], "bob@localhost/home")
            self.assertEqual(message["to"], "alice@localhost")
            self.assertEqual(message["type"], "chat")
            (delay,) = delay_of(message)
            self.assertEqual(delay["from"], "localhost")
            self.assertEqual(delay["stamp"], NOW_STAMP)
        self.assertEqual(await self.count(), 0)

    async def test_nothing_twice(self):
        await self.offline.store(chat("once"))
        harness = await self.online("phone")
        await self.available(harness)
        self.assertEqual(len(harness.elements()), 1)
        await self.available(harness)
        self.assertEqual(harness.elements(), [])

    async def test_negative_priority_gets_nothing(self):
        await self.offline.store(chat("hello"))
        harness = await self.online("phone", priority=-1)
        await self.available(harness)
        self.assertEqual(harness.elements(), [])
        self.assertEqual(await self.count(), 1)

    async def test_two_resources_at_once_get_them_once(self):
        for body in ("one", "two"):
            await self.offline.store(chat(body))
        first = await self.online("phone")
        second = await self.online("laptop", priority=5)
        await defer.gatherResults([self.available(first), self.available(second)])
        received = [harness.elements() for harness in (first, second)]
        self.assertEqual(sorted(len(messages) for messages in received), [0, 2])
        self.assertEqual(await self.count(), 0)

    async def test_kept_when_the_session_ends_before_delivery(self):
        await self.offline.store(chat("hello"))
        harness = await self.online("phone")
        delivering = self.available(harness)  # the database read is still in its thread
        harness.stream.session.close()
        await delivering
        self.assertEqual(await self.count(), 1)

        later = await self.online("laptop")
        await self.available(later)
        self.assertEqual([body_of(m) for m in later.elements()], ["hello"])

    async def test_existing_delay_from_our_domain_is_kept_alone(self):
        stanza = chat("hello")
        ours = stanza.element.addElement((ns.DELAY, "delay"))
        ours["from"] = "localhost"
        ours["stamp"] = "2002-09-10T23:08:25.000Z"
        theirs = stanza.element.addElement((ns.DELAY, "delay"))
        theirs["from"] = "elsewhere.example"
        theirs["stamp"] = "2002-09-10T23:05:00.000Z"
        await self.offline.store(stanza)
        harness = await self.online("phone")
        await self.available(harness)
        (message,) = harness.elements()
        stamps = [(d["from"], d["stamp"]) for d in delay_of(message)]
        self.assertEqual(stamps, [("localhost", "2002-09-10T23:08:25.000Z"),
                                  ("elsewhere.example", "2002-09-10T23:05:00.000Z")])

    async def test_delay_added_beside_another_entitys(self):
        stanza = chat("hello")
        theirs = stanza.element.addElement((ns.DELAY, "delay"))
        theirs["from"] = "elsewhere.example"
        theirs["stamp"] = "2002-09-10T23:05:00.000Z"
        await self.offline.store(stanza)
        harness = await self.online("phone")
        await self.available(harness)
        (message,) = harness.elements()
        self.assertEqual([d["from"] for d in delay_of(message)],
                         ["elsewhere.example", "localhost"])

    async def test_an_account_known_to_hold_nothing_costs_no_read(self):
        fetches = []
        fetch = self.storage.offline.fetch
        self.patch(self.storage.offline, "fetch", lambda *args: fetches.append(args)
                   or fetch(*args))
        harness = await self.online("phone")
        await self.available(harness)
        self.assertEqual(fetches, [])
        # A message stored meanwhile is read and delivered at the next initial presence.
        self.assertTrue(await self.offline.store(chat("later")))
        await self.available(harness)
        self.assertEqual(fetches, [("alice", "localhost")])
        self.assertEqual([body_of(m) for m in harness.elements()], ["later"])
        await self.available(harness)  # delivered: known empty again
        self.assertEqual(len(fetches), 1)

    async def test_unreadable_message_is_skipped_and_removed(self):
        # Written past the plugin (as by another process), then one through it: the plugin
        # knows alice holds messages, and finds both.
        await self.storage.offline.store("alice", "localhost", "<message><body>", NOW, 10)
        await self.offline.store(chat("fine"))
        harness = await self.online("phone")
        await self.available(harness)
        self.assertEqual([body_of(m) for m in harness.elements()], ["fine"])
        self.assertEqual(await self.count(), 0)

    async def test_deleting_the_account_deletes_its_messages(self):
        await self.offline.store(chat("hello"))
        await self.storage.users.delete_user("alice", "localhost")
        await self.fixture.add_user("alice", PASSWORD)
        self.assertEqual(await self.count(), 0)


class ConfigTests(TestCase):
    async def assert_refused(self, section: str, key: str) -> None:
        fixture = new_fixture(self, section)
        self.addCleanup(lambda: defer.ensureDeferred(fixture.stop()))
        with self.assertRaises(PluginError) as raised:
            await fixture.start()
        self.assertIn(f"[plugins.offline] {key}", str(raised.exception))

    async def test_negative_limit(self):
        await self.assert_refused("max_messages = -1", "max_messages")

    async def test_limit_not_an_integer(self):
        await self.assert_refused("max_messages = \"many\"", "max_messages")
        await self.assert_refused("max_messages = true", "max_messages")
        await self.assert_refused("max_messages = 1.5", "max_messages")

    async def test_unknown_key(self):
        await self.assert_refused("max_mesages = 5", "max_mesages")
