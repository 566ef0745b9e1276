"""The presence plugin over real client streams, the real roster plugin and real SQLite:
subscriptions (RFC 6121 §3) and presence exchange (§4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from tests.helpers import ServerFixture, StreamHarness
from xmppd import events, ns
from xmppd.admin.api import AdminAPI
from xmppd.errors import StanzaError
from xmppd.im import subscription
from xmppd.im.keyed_queue import KeyedQueue
from xmppd.im.presence_exchange import MAX_DIRECTED
from xmppd.im.presence_stanzas import check_presence, readdressed
from xmppd.interfaces import IRoster
from xmppd.jid import parse_jid
from xmppd.stanza import Stanza

PASSWORD = "pencil and paper"
ALICE = parse_jid("alice@localhost")
BOB = parse_jid("bob@localhost")
CAROL = parse_jid("carol@localhost")
PLUGINS = '[plugins]\nenabled = ["roster", "presence"]\n'
TICK = 0.01
QUIET_TICKS = 8  # this long without a new stanza anywhere and the server is idle


def is_presence(type: str | None = None, sender: str | None = None, to: str | None = None):
    """A matcher for presence stanzas; ``type`` None is available presence."""

    def match(element: domish.Element) -> bool:
        return (element.name == "presence" and element.getAttribute("type") == type
                and (sender is None or element.getAttribute("from") == sender)
                and (to is None or element.getAttribute("to") == to))

    return match


def is_push(contact: str):
    def match(element: domish.Element) -> bool:
        return (element.name == "iq" and element.getAttribute("type") == "set"
                and any(item.getAttribute("jid") == contact
                        for query in element.elements() for item in query.elements()))

    return match


def pushed_item(push: domish.Element) -> domish.Element:
    return next(next(push.elements()).elements())


def error_condition(element: domish.Element) -> str:
    error = next(child for child in element.elements() if child.name == "error")
    return next(child.name for child in error.elements() if child.uri == ns.STANZA_ERRORS)


class Client:
    """One logged-in resource; what the server wrote waits in ``inbox`` until taken."""

    def __init__(self, harness: StreamHarness, jid: str) -> None:
        self.harness = harness
        self.jid = parse_jid(jid)
        self.inbox: list[domish.Element] = []

    @property
    def session(self):
        return self.harness.stream.session

    def send(self, xml: str) -> None:
        self.harness.feed(xml)

    def read(self) -> int:
        new = self.harness.elements()
        self.inbox += new
        return len(new)

    def take(self, match) -> list[domish.Element]:
        """Every stanza received so far that ``match``es, removed from the inbox."""
        self.read()
        taken = [element for element in self.inbox if match(element)]
        self.inbox = [element for element in self.inbox if not match(element)]
        return taken

    async def expect(self, match, timeout: float = 5.0) -> domish.Element:
        waited = 0.0
        while waited < timeout:
            taken = self.take(match)
            if taken:
                self.inbox = taken[1:] + self.inbox
                return taken[0]
            await sleep(TICK)
            waited += TICK
        raise AssertionError(f"{self.jid}: nothing matching arrived; inbox: {self.seen()}")

    def clear(self) -> None:
        self.take(lambda element: True)

    def seen(self) -> str:
        return ", ".join(element.toXml() for element in self.inbox) or "nothing"


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


class PresenceTestCase(TestCase):
    plugins = PLUGINS

    def setUp(self):
        path = Path(self.mktemp())
        path.mkdir(parents=True)
        self.fixture = ServerFixture(path, "require_encryption = false\n" + self.plugins)
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))
        self.clients: list[Client] = []
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        self.server = self.fixture.server
        self.routed: list[Stanza] = []
        route = self.server.router.route

        def recording_route(stanza, origin):
            self.routed.append(stanza)
            return route(stanza, origin)

        # before the plugins load: their contexts hand out the router's route as it is then
        self.server.router.route = recording_route
        await self.fixture.start()
        for user in ("alice", "bob", "carol"):
            await self.fixture.add_user(user, PASSWORD)
        self.roster = self.server.query(IRoster)

    async def client(self, user: str, resource: str = "r", available: bool = True,
                     presence: str = "<presence/>") -> Client:
        """A logged-in resource that fetched its roster and (by default) is available."""
        harness = StreamHarness(self.server)
        client = Client(harness, await harness.login(user, PASSWORD, resource))
        self.clients.append(client)
        client.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        await client.expect(lambda e: e.name == "iq" and e.getAttribute("id") == "roster")
        if available:
            client.send(presence)
            await client.expect(is_presence(sender=str(client.jid), to=str(client.jid)))
            await self.settle()
        return client

    async def settle(self) -> None:
        """Wait until no client has received anything for a while: the server is idle."""
        quiet = 0
        while quiet < QUIET_TICKS:
            await sleep(TICK)
            quiet = 0 if sum(client.read() for client in self.clients) else quiet + 1

    async def befriend(self, user, contact, user_state, contact_state) -> None:
        """Seed both rosters through IRoster, as if a handshake had happened."""
        await self.roster.set_state(user, contact, user_state)
        await self.roster.set_state(contact, user, contact_state)

    def routed_of_type(self, type: str) -> list[tuple[str, str]]:
        return [(str(s.sender), str(s.recipient)) for s in self.routed
                if s.kind == "presence" and s.type == type]


class SubscriptionTests(PresenceTestCase):
    async def test_full_handshake_ends_in_both_with_pushes_and_presence(self):
        alice = await self.client("alice", "a")
        bob = await self.client("bob", "b")

        alice.send("<presence type='subscribe' to='bob@localhost/b' id='s1'/>")
        request = await bob.expect(is_presence("subscribe"))
        self.assertEqual((request["from"], request["to"]), ("alice@localhost", "bob@localhost"))
        item = pushed_item(await alice.expect(is_push("bob@localhost")))
        self.assertEqual((item["subscription"], item.getAttribute("ask")), ("none", "subscribe"))

        bob.send("<presence type='subscribed' to='alice@localhost'/>")
        self.assertEqual(pushed_item(await bob.expect(is_push("alice@localhost")))
                         ["subscription"], "from")
        approval = await alice.expect(is_presence("subscribed"))
        self.assertEqual(approval["from"], "bob@localhost")
        item = pushed_item(await alice.expect(is_push("bob@localhost")))
        self.assertEqual((item["subscription"], item.getAttribute("ask")), ("to", None))
        await alice.expect(is_presence(None, sender="bob@localhost/b"))  # §3.1.5

        bob.send("<presence type='subscribe' to='alice@localhost'/>")
        await alice.expect(is_presence("subscribe", sender="bob@localhost"))
        alice.send("<presence type='subscribed' to='bob@localhost'/>")
        await bob.expect(is_presence("subscribed", sender="alice@localhost"))
        await bob.expect(is_presence(None, sender="alice@localhost/a"))
        await self.settle()
        self.assertEqual(await self.roster.get_state(ALICE, BOB), subscription.BOTH)
        self.assertEqual(await self.roster.get_state(BOB, ALICE), subscription.BOTH)

    async def test_pre_approval_answers_the_request_without_asking(self):
        alice = await self.client("alice", "a")
        bob = await self.client("bob", "b")
        alice.send("<presence type='subscribed' to='bob@localhost'/>")
        item = pushed_item(await alice.expect(is_push("bob@localhost")))
        self.assertEqual((item["subscription"], item.getAttribute("approved")), ("none", "true"))
        await self.settle()
        self.assertEqual(bob.take(is_presence("subscribed")), [])  # §3.4.2: not routed

        bob.send("<presence type='subscribe' to='alice@localhost'/>")
        await bob.expect(is_presence("subscribed", sender="alice@localhost"))
        await bob.expect(is_presence(None, sender="alice@localhost/a"))
        await self.settle()
        self.assertEqual(alice.take(is_presence("subscribe")), [])
        self.assertEqual(await self.roster.get_state(ALICE, BOB), subscription.FROM)
        self.assertEqual(await self.roster.get_state(BOB, ALICE), subscription.TO)

    async def test_request_to_offline_user_is_kept_and_delivered_once_at_login(self):
        alice = await self.client("alice", "a")
        for _ in range(2):
            alice.send("<presence type='subscribe' to='bob@localhost'><status>hi</status>"
                       "</presence>")
        await self.settle()
        bob = await self.client("bob", "b")
        requests = bob.take(is_presence("subscribe"))
        self.assertEqual(len(requests), 1)
        self.assertEqual(requests[0]["from"], "alice@localhost")
        self.assertEqual(str(next(requests[0].elements())), "hi")

    async def test_an_answered_request_is_not_delivered_again(self):
        alice = await self.client("alice", "a")
        alice.send("<presence type='subscribe' to='bob@localhost'/>")
        await self.settle()
        bob = await self.client("bob", "b")
        self.assertEqual(len(bob.take(is_presence("subscribe"))), 1)
        bob.send("<presence type='unsubscribed' to='alice@localhost'/>")  # a denial
        await alice.expect(is_presence("unsubscribed", sender="bob@localhost"))
        again = await self.client("bob", "b2")
        await self.settle()
        self.assertEqual(again.take(is_presence("subscribe")), [])
        self.assertEqual(await self.roster.get_state(ALICE, BOB), subscription.NONE)

    async def test_request_to_a_nonexistent_local_user_is_ignored(self):
        alice = await self.client("alice", "a")
        alice.send("<presence type='subscribe' to='nobody@localhost'/>")
        await alice.expect(is_push("nobody@localhost"))  # the sender's own ask is kept
        await self.settle()
        self.assertEqual(alice.take(lambda e: e.getAttribute("type") == "error"), [])
        nobody = parse_jid("nobody@localhost")
        self.assertEqual(await self.roster.items(nobody), [])
        self.assertEqual(await self.roster.pending_requests(nobody), [])

    async def test_subscription_stanza_without_to_is_bad_request(self):
        alice = await self.client("alice", "a")
        alice.send("<presence type='subscribe' id='x'/>")
        error = await alice.expect(is_presence("error"))
        self.assertEqual(error_condition(error), "bad-request")

    async def test_cancelling_a_subscription_sends_unavailable_from_each_resource(self):
        await self.befriend(ALICE, BOB, subscription.FROM, subscription.TO)
        alice = await self.client("alice", "a")
        await self.client("alice", "a2")
        bob = await self.client("bob", "b")
        alice.send("<presence type='unsubscribed' to='bob@localhost'/>")
        await bob.expect(is_presence("unsubscribed", sender="alice@localhost"))
        for resource in ("a", "a2"):
            await bob.expect(is_presence("unavailable", sender=f"alice@localhost/{resource}"))
        self.assertEqual(pushed_item(await bob.expect(is_push("alice@localhost")))
                         ["subscription"], "none")
        self.assertEqual(await self.roster.get_state(ALICE, BOB), subscription.NONE)

    async def test_account_deletion_cancels_every_subscription(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        await self.befriend(ALICE, CAROL, subscription.TO, subscription.FROM)
        await self.client("alice", "a")
        bob = await self.client("bob", "b")
        carol = await self.client("carol", "c")
        bob.clear()
        await AdminAPI(self.fixture.storage, ["localhost"], self.server).delete_user(ALICE)
        await bob.expect(is_presence("unsubscribe", sender="alice@localhost"))
        await bob.expect(is_presence("unsubscribed", sender="alice@localhost"))
        await bob.expect(is_presence("unavailable", sender="alice@localhost/a"))
        await carol.expect(is_presence("unsubscribe", sender="alice@localhost"))
        await self.settle()
        self.assertEqual(await self.roster.get_state(BOB, ALICE), subscription.NONE)
        self.assertEqual(await self.roster.get_state(CAROL, ALICE), subscription.NONE)
        self.assertEqual(carol.take(is_presence("unsubscribed")), [])  # carol had no 'to'


class FullRosterTests(PresenceTestCase):
    plugins = PLUGINS + "[plugins.roster]\nmax_items = 1\n"

    async def test_subscribing_with_a_full_roster_gets_the_rosters_error(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        alice = await self.client("alice", "a")
        alice.send("<presence type='subscribe' to='carol@localhost' id='full'/>")
        error = await alice.expect(is_presence("error"))
        self.assertEqual((error["id"], error_condition(error)), ("full", "not-allowed"))
        await self.settle()
        self.assertEqual(await self.roster.pending_requests(CAROL), [])


class ExchangeTests(PresenceTestCase):
    async def test_initial_presence_probes_contacts_and_gets_their_presence(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        bob = await self.client("bob", "b", presence="<presence><show>dnd</show></presence>")
        available = []
        self.server.events.on(events.RESOURCE_AVAILABLE, available.append)
        alice = await self.client("alice", "a")
        self.assertIn(("alice@localhost", "bob@localhost"), self.routed_of_type("probe"))
        answer = await alice.expect(is_presence(None, sender="bob@localhost/b"))
        self.assertEqual(str(next(answer.elements())), "dnd")
        await bob.expect(is_presence(None, sender="alice@localhost/a"))
        self.assertEqual(available, [alice.session])

    async def test_broadcast_reaches_subscribers_and_own_resources_only(self):
        await self.befriend(ALICE, BOB, subscription.FROM, subscription.TO)
        alice = await self.client("alice", "a")
        other = await self.client("alice", "a2")
        bob = await self.client("bob", "b")
        carol = await self.client("carol", "c")
        alice.send("<presence><show>away</show></presence>")
        update = await bob.expect(is_presence(None, sender="alice@localhost/a"))
        self.assertEqual(update["to"], "bob@localhost")
        await other.expect(is_presence(None, sender="alice@localhost/a"))
        await alice.expect(is_presence(None, sender="alice@localhost/a"))  # §4.2.2: echoed
        await self.settle()
        self.assertEqual(carol.take(is_presence(sender="alice@localhost/a")), [])
        probers = {sender for sender, _ in self.routed_of_type("probe")}
        self.assertEqual(probers, {"bob@localhost"})  # alice has no 'to' subscription

    async def test_new_resource_is_shown_its_other_resources(self):
        await self.client("alice", "a", presence="<presence><show>xa</show></presence>")
        second = await self.client("alice", "a2")
        shown = second.take(is_presence(None, sender="alice@localhost/a"))
        self.assertEqual([str(next(p.elements())) for p in shown], ["xa"])

    async def test_priority_and_last_presence_are_kept_on_the_session(self):
        alice = await self.client("alice", "a", available=False)
        self.assertFalse(alice.session.available)
        alice.send("<presence><priority>5</priority><status>here</status></presence>")
        await alice.expect(is_presence(None))
        self.assertEqual((alice.session.available, alice.session.priority), (True, 5))
        kept = alice.session.presence
        self.assertEqual((kept["from"], kept.getAttribute("to")), ("alice@localhost/a", None))
        alice.send("<presence><priority>-1</priority></presence>")
        await alice.expect(is_presence(None))
        self.assertEqual(alice.session.priority, -1)

    async def test_bad_show_or_priority_is_bad_request(self):
        alice = await self.client("alice", "a", available=False)
        for attributes, payload in (
                ("", "<priority>128</priority>"), ("", "<priority>high</priority>"),
                ("", "<priority>1</priority><priority>2</priority>"), ("", "<show>busy</show>"),
                (" type='available'", "")):
            alice.send(f"<presence{attributes}>{payload}</presence>")
            error = await alice.expect(is_presence("error"))
            self.assertEqual(error_condition(error), "bad-request")
        self.assertFalse(alice.session.available)

    async def test_directed_presence_is_delivered_and_ended_on_disconnect(self):
        alice = await self.client("alice", "a")
        carol = await self.client("carol", "c")
        alice.send("<presence to='carol@localhost/c'><status>psst</status></presence>")
        await carol.expect(is_presence(None, sender="alice@localhost/a"))
        alice.harness.stream.connectionLost(None)  # impolite
        await carol.expect(is_presence("unavailable", sender="alice@localhost/a",
                                       to="carol@localhost/c"))

    async def test_directed_unavailable_forgets_the_recipient(self):
        alice = await self.client("alice", "a")
        carol = await self.client("carol", "c")
        alice.send("<presence to='carol@localhost'/>")
        alice.send("<presence type='unavailable' to='carol@localhost'/>")
        await carol.expect(is_presence("unavailable", sender="alice@localhost/a"))
        alice.harness.stream.connectionLost(None)
        await self.settle()
        self.assertEqual(carol.take(is_presence("unavailable")), [])

    async def test_impolite_disconnect_sends_unavailable_to_subscribers_and_resources(self):
        await self.befriend(ALICE, BOB, subscription.FROM, subscription.TO)
        unavailable = []
        self.server.events.on(events.RESOURCE_UNAVAILABLE, unavailable.append)
        alice = await self.client("alice", "a")
        other = await self.client("alice", "a2")
        bob = await self.client("bob", "b")
        session = alice.session
        alice.harness.stream.connectionLost(None)
        await bob.expect(is_presence("unavailable", sender="alice@localhost/a"))
        await other.expect(is_presence("unavailable", sender="alice@localhost/a"))
        self.assertEqual(unavailable, [session])

    async def test_polite_close_after_unavailable_sends_it_only_once(self):
        await self.befriend(ALICE, BOB, subscription.FROM, subscription.TO)
        alice = await self.client("alice", "a")
        bob = await self.client("bob", "b")
        alice.send("<presence type='unavailable'><status>bye</status></presence>"
                   "</stream:stream>")
        alice.harness.stream.connectionLost(None)
        goodbye = await bob.expect(is_presence("unavailable", sender="alice@localhost/a"))
        self.assertEqual(str(next(goodbye.elements())), "bye")
        await self.settle()
        self.assertEqual(bob.take(is_presence("unavailable")), [])

    async def test_polite_close_alone_still_tells_subscribers(self):
        await self.befriend(ALICE, BOB, subscription.FROM, subscription.TO)
        alice = await self.client("alice", "a")
        bob = await self.client("bob", "b")
        alice.send("</stream:stream>")
        alice.harness.stream.connectionLost(None)
        await bob.expect(is_presence("unavailable", sender="alice@localhost/a"))
        await self.settle()
        self.assertEqual(bob.take(is_presence("unavailable")), [])

    async def test_directed_presence_recipients_are_bounded(self):
        alice = await self.client("alice", "a")
        for n in range(MAX_DIRECTED):
            alice.send(f"<presence to='room{n}@localhost'/>")
        alice.send("<presence to='one-too-many@localhost' id='last'/>")
        error = await alice.expect(is_presence("error"))
        self.assertEqual((error["id"], error_condition(error)), ("last", "resource-constraint"))

    async def test_pre_approval_is_advertised(self):
        alice = await self.client("alice", "a", available=False)
        features = [build(alice.harness.stream) for build in self.server.stream_features]
        self.assertIn((ns.PRE_APPROVAL, "sub"),
                      [(f.uri, f.name) for f in features if f is not None])

    async def test_probe_is_answered_only_for_a_from_subscription(self):
        await self.befriend(ALICE, BOB, subscription.FROM, subscription.TO)
        await self.client("alice", "a", presence="<presence><show>chat</show></presence>")
        bob = await self.client("bob", "b")
        carol = await self.client("carol", "c")
        bob.clear()
        self.routed.clear()
        for prober in (BOB, CAROL):
            self.server.router.send_from_server(
                domish.Element((None, "presence"), attribs={
                    "type": "probe", "from": prober.full(), "to": ALICE.full()}))
        answer = await bob.expect(is_presence(None, sender="alice@localhost/a"))
        self.assertEqual(str(next(answer.elements())), "chat")
        await self.settle()
        self.assertEqual(carol.take(is_presence(sender="alice@localhost/a")), [])
        self.assertIn(("alice@localhost", "carol@localhost"),
                      self.routed_of_type("unsubscribed"))  # §4.3.2 rule 1

    async def test_probe_for_an_account_with_no_resource_gets_unavailable(self):
        await self.befriend(ALICE, BOB, subscription.FROM, subscription.TO)
        bob = await self.client("bob", "b")
        bob.clear()
        self.server.router.send_from_server(domish.Element((None, "presence"), attribs={
            "type": "probe", "from": BOB.full(), "to": ALICE.full()}))
        await bob.expect(is_presence("unavailable", sender="alice@localhost"))

    async def test_client_probe_goes_out_only_with_a_to_subscription(self):
        await self.befriend(BOB, ALICE, subscription.TO, subscription.FROM)
        await self.client("alice", "a")
        bob = await self.client("bob", "b")
        bob.clear()
        self.routed.clear()
        bob.send("<presence type='probe' to='alice@localhost'/>"
                 "<presence type='probe' to='carol@localhost'/>")
        answer = await bob.expect(is_presence(None, sender="alice@localhost/a"))
        self.assertEqual(answer["to"], "bob@localhost/b")  # XEP-0318: to the asking resource
        await self.settle()
        self.assertEqual(self.routed_of_type("probe"), [("bob@localhost/b", "alice@localhost")])

    async def test_presence_to_a_nonexistent_local_user_is_dropped(self):
        alice = await self.client("alice", "a")
        alice.send("<presence to='nobody@localhost'/><presence type='probe' "
                   "to='nobody@localhost'/>")
        await self.settle()
        self.assertEqual(alice.take(is_presence("error")), [])


class StanzaRuleTests(TestCase):
    """The pure parts: checking presence payloads, copies, and the per-key queue."""

    def test_priority_range_and_default(self):
        element = domish.Element((ns.CLIENT, "presence"))
        self.assertEqual(check_presence(element), 0)
        for text, value in (("-128", -128), ("127", 127), (" +7 ", 7)):
            element = domish.Element((ns.CLIENT, "presence"))
            element.addElement("priority", content=text)
            self.assertEqual(check_presence(element), value)
        for text in ("-129", "1_0", "٣", "", "1.5"):
            element = domish.Element((ns.CLIENT, "presence"))
            element.addElement("priority", content=text)
            with pytest.raises(StanzaError) as caught:
                check_presence(element)
            self.assertEqual(caught.value.condition, "bad-request")

    def test_readdressed_copies_do_not_share_children(self):
        original = domish.Element((ns.CLIENT, "presence"), attribs={"to": "x@localhost"})
        original.addElement("status", content="hi")
        copy = readdressed(original, ALICE, None)
        next(copy.elements()).children[0] = "changed"
        self.assertEqual(str(next(original.elements())), "hi")
        self.assertEqual((copy["from"], copy.getAttribute("to")), ("alice@localhost", None))

    def test_keyed_queue_runs_one_key_in_order_and_others_at_once(self):
        queue, log = KeyedQueue(), []
        first = defer.Deferred()
        queue.run("k", lambda: first)
        queue.run("k", log.append, "second")
        queue.run("other", log.append, "other")
        self.assertEqual(log, ["other"])
        first.callback(None)
        self.assertEqual(log, ["other", "second"])
        self.assertEqual(len(queue), 0)
