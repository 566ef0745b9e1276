"""The pep plugin on a real server (in-memory streams, real SQLite): PEP IQs at the bare
JID, disco, notifications filtered by caps, the last item on presence, and caps resolution
by disco#info to the contact's resource without holding its presence up."""

from __future__ import annotations

from twisted.internet import reactor, task
from twisted.words.xish import domish

from tests.plugin_case import PluginServerCase
from xmppd import events, ns
from xmppd.caps import Caps, DiscoInfo, Identity, find_caps, verify
from xmppd.im.subscription import SubState
from xmppd.interfaces import IRoster
from xmppd.jid import parse_jid
from xmppd.plugins.pep import pep

TUNE = "http://jabber.org/protocol/tune"
CLIENT_INFO = DiscoInfo((Identity("client", "pc"),),
                        (ns.DISCO_INFO, TUNE, TUNE + "+notify"))
CLIENT_CAPS = Caps.of(CLIENT_INFO, "https://example.org/client")


def publish_iq(node: str = TUNE, title: str = "Yesterday", to: str | None = None,
               item_id: str = "current", options: str = "") -> str:
    address = f" to='{to}'" if to else ""
    return (f"<iq type='set' id='pub1'{address}><pubsub xmlns='{ns.PUBSUB}'>"
            f"<publish node='{node}'><item id='{item_id}'><tune xmlns='{TUNE}'>"
            f"<title>{title}</title></tune></item></publish>{options}</pubsub></iq>")


def publish_options(**values: str) -> str:
    fields = "".join(f"<field var='pubsub#{name}'><value>{value}</value></field>"
                     for name, value in values.items())
    return (f"<publish-options><x xmlns='jabber:x:data' type='submit'>"
            f"<field var='FORM_TYPE' type='hidden'><value>{ns.PUBSUB_PUBLISH_OPTIONS}</value>"
            f"</field>{fields}</x></publish-options>")


def caps_presence(caps: Caps = CLIENT_CAPS) -> str:
    return f"<presence>{caps.to_element().toXml()}</presence>"


def error_conditions(element: domish.Element) -> set[str]:
    error = next(child for child in element.elements() if child.name == "error")
    return {child.name for child in error.elements()} - {"text"}


async def wait_for(harness, match, timeout: float = 5.0) -> domish.Element:
    """The first element written to ``harness`` that ``match`` accepts; the others seen
    before it are dropped. Storage answers from a thread, hence the real reactor."""
    waited = 0.0
    while waited < timeout:
        for element in harness.elements():
            if match(element):
                return element
        await task.deferLater(reactor, 0.01, lambda: None)
        waited += 0.01
    raise AssertionError(f"nothing matching within {timeout}s")


def iq_answer(id: str):
    return lambda element: element.name == "iq" and element.getAttribute("id") == id


def event_of(node: str):
    def match(element: domish.Element) -> bool:
        if element.name != "message":
            return False
        event = next((c for c in element.elements() if c.uri == ns.PUBSUB_EVENT), None)
        return event is not None and any(c.getAttribute("node") == node
                                         for c in event.elements())
    return match


class PepTestCase(PluginServerCase):
    enabled = ("pep",)
    sections = {"pep": {"max_nodes": 3, "max_item_size": 2000}}
    users = ("alice", "bob", "carol")

    async def befriend(self, one: str, other: str) -> None:
        roster = self.server.query(IRoster)
        for a, b in ((one, other), (other, one)):
            await roster.set_state(parse_jid(f"{a}@localhost"), parse_jid(f"{b}@localhost"),
                                   SubState("both"))

    def learn_client_caps(self) -> None:
        """As if an earlier resource had answered for CLIENT_CAPS."""
        pep._handlers.caps.learn(CLIENT_CAPS, frozenset(CLIENT_INFO.features))

    async def publish(self, harness, **kwargs) -> domish.Element:
        harness.feed(publish_iq(**kwargs))
        return await wait_for(harness, iq_answer("pub1"))


class PublishTest(PepTestCase):
    async def test_publish_auto_creates_and_items_are_retrieved(self):
        alice = await self.client("alice", "phone")
        result = await self.publish(alice)
        self.assertEqual(result["type"], "result")
        alice.feed(f"<iq type='get' id='get1'><pubsub xmlns='{ns.PUBSUB}'>"
                   f"<items node='{TUNE}'/></pubsub></iq>")
        items = await wait_for(alice, iq_answer("get1"))
        self.assertEqual(items["type"], "result")
        self.assertIn("Yesterday", items.toXml())

    async def test_publish_to_another_account_is_forbidden(self):
        bob = await self.client("bob", "pc")
        result = await self.publish(bob, to="alice@localhost")
        self.assertEqual(result["type"], "error")
        self.assertIn("forbidden", error_conditions(result))

    async def test_conflicting_publish_options_store_nothing(self):
        alice = await self.client("alice", "phone")
        await self.publish(alice)
        result = await self.publish(alice, title="Other",
                                    options=publish_options(access_model="open"))
        self.assertEqual(result["type"], "error")
        self.assertEqual(error_conditions(result), {"conflict", "precondition-not-met"})
        alice.feed(f"<iq type='get' id='get1'><pubsub xmlns='{ns.PUBSUB}'>"
                   f"<items node='{TUNE}'/></pubsub></iq>")
        items = await wait_for(alice, iq_answer("get1"))
        self.assertNotIn("Other", items.toXml())

    async def test_item_size_and_node_quota(self):
        alice = await self.client("alice", "phone")
        result = await self.publish(alice, title="x" * 3000)
        self.assertEqual(error_conditions(result), {"not-acceptable", "payload-too-big"})
        for index in range(3):
            self.assertEqual((await self.publish(alice, node=f"n{index}"))["type"], "result")
        result = await self.publish(alice, node="n3")
        self.assertEqual(error_conditions(result), {"not-allowed", "max-nodes-exceeded"})

    async def test_presence_node_is_refused_to_a_stranger(self):
        alice = await self.client("alice", "phone")
        await self.publish(alice)
        carol = await self.client("carol", "pc")
        carol.feed(f"<iq type='get' id='get1' to='alice@localhost'><pubsub xmlns='{ns.PUBSUB}'>"
                   f"<items node='{TUNE}'/></pubsub></iq>")
        result = await wait_for(carol, iq_answer("get1"))
        self.assertEqual(error_conditions(result),
                         {"not-authorized", "presence-subscription-required"})

    async def test_open_node_is_read_by_anyone(self):
        alice = await self.client("alice", "phone")
        await self.publish(alice, options=publish_options(access_model="open"))
        carol = await self.client("carol", "pc")
        carol.feed(f"<iq type='get' id='get1' to='alice@localhost'><pubsub xmlns='{ns.PUBSUB}'>"
                   f"<items node='{TUNE}'/></pubsub></iq>")
        result = await wait_for(carol, iq_answer("get1"))
        self.assertEqual(result["type"], "result")
        self.assertIn("Yesterday", result.toXml())

    async def test_deleting_the_account_deletes_its_nodes(self):
        alice = await self.client("alice", "phone")
        await self.publish(alice, options=publish_options(access_model="open"))
        alice.stream.transport.loseConnection()
        await self.server.storage.users.delete_user("alice", "localhost")
        nodes = await pep._handlers.pubsub.pep(parse_jid("alice@localhost")).store.nodes()
        self.assertEqual(nodes, [])


class DiscoTest(PepTestCase):
    async def test_account_disco_shows_pep(self):
        alice = await self.client("alice", "phone")
        alice.feed(f"<iq type='get' id='d1'><query xmlns='{ns.DISCO_INFO}'/></iq>")
        info = (await wait_for(alice, iq_answer("d1"))).toXml()
        self.assertIn("category='pubsub'", info.replace('"', "'"))
        for feature in ("publish-options", "publish", "subscribe", "create-nodes",
                        "delete-items", "delete-nodes", "persistent-items", "retrieve-items",
                        "auto-create", "filtered-notifications", "item-ids", "multi-items",
                        "config-node-max"):
            self.assertIn(f"{ns.PUBSUB}#{feature}'", info.replace('"', "'"))

    async def test_others_see_identity_and_only_visible_nodes(self):
        alice = await self.client("alice", "phone")
        await self.publish(alice)  # presence model: hidden from carol
        await self.publish(alice, node="public", options=publish_options(access_model="open"))
        carol = await self.client("carol", "pc")
        carol.feed(f"<iq type='get' id='d1' to='alice@localhost'>"
                   f"<query xmlns='{ns.DISCO_INFO}'/></iq>")
        info = await wait_for(carol, iq_answer("d1"))
        self.assertIn("pep", info.toXml())
        carol.feed(f"<iq type='get' id='d2' to='alice@localhost'>"
                   f"<query xmlns='{ns.DISCO_ITEMS}'/></iq>")
        items = await wait_for(carol, iq_answer("d2"))
        nodes = [item["node"] for item in items.children[0].elements()]
        self.assertEqual(nodes, ["public"])

    async def test_unknown_account_is_service_unavailable(self):
        carol = await self.client("carol", "pc")
        carol.feed(f"<iq type='get' id='d1' to='nobody@localhost'>"
                   f"<query xmlns='{ns.DISCO_INFO}'/></iq>")
        answer = await wait_for(carol, iq_answer("d1"))
        self.assertIn("service-unavailable", error_conditions(answer))


class NotifyTest(PepTestCase):
    async def test_contact_with_notify_caps_gets_events_and_last_item(self):
        await self.befriend("alice", "bob")
        self.learn_client_caps()
        alice = await self.client("alice", "phone")
        await self.publish(alice, title="Before")
        bob = await self.client("bob", "pc")
        bob.feed(caps_presence())
        last = await wait_for(bob, event_of(TUNE))
        self.assertIn("Before", last.toXml())
        self.assertEqual(last["from"], "alice@localhost")
        await self.publish(alice, title="After")
        event = await wait_for(bob, event_of(TUNE))
        self.assertIn("After", event.toXml())

    async def test_stranger_and_contact_without_notify_get_nothing(self):
        await self.befriend("alice", "bob")
        alice = await self.client("alice", "phone")
        bob = await self.client("bob", "pc")
        bob.feed("<presence/>")  # no caps
        await wait_for(bob, lambda element: element.name == "presence")
        await self.publish(alice)
        bob.feed("<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>")
        await wait_for(bob, iq_answer("ping1"))
        self.assertEqual([e for e in bob.elements() if event_of(TUNE)(e)], [])

    async def test_caps_are_resolved_by_asking_the_resource(self):
        await self.befriend("alice", "bob")
        alice = await self.client("alice", "phone", available=True)
        await self.publish(alice, title="Known")
        bob = await self.client("bob", "pc")
        bob.feed(caps_presence())
        request = await wait_for(bob, lambda element: element.name == "iq"
                                 and element.getAttribute("type") == "get")
        # the presence went on at once: alice sees bob before he answers the disco#info
        await wait_for(alice, lambda element: element.name == "presence"
                       and element.getAttribute("from") == "bob@localhost/pc")
        query = request.children[0]
        self.assertEqual(query["node"], CLIENT_CAPS.disco_node)
        answer = domish.Element((None, "iq"))
        answer["type"] = "result"
        answer["id"] = request["id"]
        answer["to"] = request["from"]
        reply = answer.addElement((ns.DISCO_INFO, "query"))
        reply["node"] = CLIENT_CAPS.disco_node
        for identity in CLIENT_INFO.identities:
            reply.addChild(identity.to_element())
        for feature in CLIENT_INFO.features:
            reply.addElement("feature")["var"] = feature
        bob.feed(answer.toXml())
        last = await wait_for(bob, event_of(TUNE))
        self.assertIn("Known", last.toXml())

    async def test_a_cluster_hears_what_was_sent_here_and_its_news_reach_the_rest(self):
        """PEP_NOTIFIED tells who got a notification here; a notification another node
        made (PEP_NOTIFIED_ELSEWHERE) goes to those here who want it, not to those it
        reached (xmppd.cluster.pep)."""
        await self.befriend("alice", "bob")
        self.learn_client_caps()
        told = []
        self.server.events.on(events.PEP_NOTIFIED, lambda *args: told.append(args))
        alice = await self.client("alice", "phone")
        bob = await self.client("bob", "pc")
        bob.feed(caps_presence())
        bob.feed("<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>")
        await wait_for(bob, iq_answer("ping1"))
        await self.publish(alice, title="Here")
        await wait_for(bob, event_of(TUNE))
        ((account, notification, sent),) = told
        alice_jid = parse_jid("alice@localhost")
        self.assertEqual((account, sent), (alice_jid, frozenset({"bob@localhost/pc"})))
        # the same notification from another node: bob/pc had it there, so not again...
        await self.server.emit(events.PEP_NOTIFIED_ELSEWHERE, alice_jid, notification,
                               frozenset({"bob@localhost/pc"}))
        seen = []
        bob.feed("<iq type='get' id='ping2'><ping xmlns='urn:xmpp:ping'/></iq>")
        await wait_for(bob, lambda element: seen.append(element) or iq_answer("ping2")(element))
        self.assertEqual([e for e in seen if event_of(TUNE)(e)], [])
        # ...but if it reached others only, bob/pc gets it here
        await self.server.emit(events.PEP_NOTIFIED_ELSEWHERE, alice_jid, notification,
                               frozenset({"bob@localhost/elsewhere"}))
        event = await wait_for(bob, event_of(TUNE))
        self.assertEqual(event["from"], "alice@localhost")
        self.assertEqual(len(told), 1)  # news from elsewhere are not told again

    async def test_own_resources_with_notify_get_events(self):
        self.learn_client_caps()
        alice = await self.client("alice", "phone")
        tablet = await self.client("alice", "tablet")
        tablet.feed(caps_presence())
        await wait_for(tablet, lambda element: element.name == "presence")
        await self.publish(alice, title="Mine")
        event = await wait_for(tablet, event_of(TUNE))
        self.assertIn("Mine", event.toXml())



class ServerCapsTest(PepTestCase):
    async def test_stream_feature_and_disco_of_the_caps_node(self):
        await pep.server_caps.refresh()  # what SERVER_STARTED does
        alice = await self.client("alice", "phone")
        caps = find_caps(alice.bind_features)
        self.assertIsNotNone(caps)
        alice.feed(f"<iq type='get' id='d1' to='localhost'>"
                   f"<query xmlns='{ns.DISCO_INFO}' node='{caps.disco_node}'/></iq>")
        answer = await wait_for(alice, iq_answer("d1"))
        self.assertTrue(verify(caps, answer.children[0]))


class NoRosterStore:
    """Stands in for the roster plugin's store: any read of it fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the roster store was used: {name}")


class NoReadsTest(PepTestCase):
    async def test_notifying_online_contacts_with_known_caps_reads_no_roster(self):
        await self.befriend("alice", "bob")
        self.learn_client_caps()
        alice = await self.client("alice", "phone", available=True)  # her roster in memory
        bob = await self.client("bob", "pc")
        bob.feed(caps_presence())
        await wait_for(bob, lambda element: element.name == "presence")
        roster = self.server.query(IRoster)
        store, roster.store = roster.store, NoRosterStore()
        try:
            await self.publish(alice, title="Cached")
            event = await wait_for(bob, event_of(TUNE))
        finally:
            roster.store = store
        self.assertIn("Cached", event.toXml())
