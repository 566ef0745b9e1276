"""Presence across federation: stanzas to remote entities reach the remote router (here a fake
that records them), stanzas from remote servers are routed in as an s2s stream would, and a
lost link ends the remote presence local accounts were shown (xmppd.im.remote_presence)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish
from zope.interface import implementer

from tests.unit.test_presence import (
    ALICE,
    PresenceTestCase,
    error_condition,
    is_presence,
    is_push,
    pushed_item,
)
from xmppd import events
from xmppd.im import subscription
from xmppd.im.remote_presence import RemotePresenceBook
from xmppd.interfaces import IRemoteRouter
from xmppd.jid import parse_jid
from xmppd.stanza import Stanza

REMOTE = "remote.example"
OTHER = "other.example"
ROMEO = parse_jid("romeo@remote.example")
JULIET = parse_jid("juliet@remote.example")
TYBALT = parse_jid("tybalt@remote.example")
NURSE = parse_jid("nurse@remote.example")
MERCUTIO = parse_jid("mercutio@other.example")


@implementer(IRemoteRouter)
class RecordingRemote:
    """Federation as the router sees it: records what would go to other servers."""

    def __init__(self) -> None:
        self.sent: list[Stanza] = []

    def send(self, stanza: Stanza) -> None:
        self.sent.append(stanza)

    def presence(self, type: str) -> list[tuple[str, str]]:
        """(from, to) of each presence of ``type`` sent out, in order."""
        return [(stanza.element["from"], stanza.element["to"]) for stanza in self.sent
                if stanza.kind == "presence" and stanza.type == type]

    def errors(self) -> list[str]:
        return [error_condition(stanza.element) for stanza in self.sent if stanza.type == "error"]


class RemoteTestCase(PresenceTestCase):
    async def _start(self) -> None:
        await super()._start()
        self.remote = RecordingRemote()
        self.server.router.remote = self.remote
        self.peer = object()  # the origin an IncomingServerStream would be: not a client session

    async def from_remote(self, sender: str, to: str, type: str | None = None,
                          status: str | None = None) -> None:
        """Route a presence in as a remote server's stream does, and wait for its handling."""
        element = domish.Element((None, "presence"), attribs={"from": sender, "to": to})
        if type is not None:
            element["type"] = type
        if status is not None:
            element.addElement("status", content=status)
        stanza = Stanza(element, parse_jid(sender), parse_jid(to))
        result = self.server.router.route(stanza, self.peer)
        if isinstance(result, defer.Deferred):
            await result
        await self.settle()

    async def link(self, event, domain: str) -> None:
        await self.server.emit(event, domain)
        await self.settle()


class RemotePresenceTests(RemoteTestCase):
    async def test_remote_available_presence_reaches_every_available_resource(self):
        alice = await self.client("alice", "a")
        other = await self.client("alice", "a2")
        idle = await self.client("alice", "a3", available=False)
        await self.from_remote("romeo@remote.example/phone", "alice@localhost", status="hi")
        for resource in (alice, other):
            shown = resource.take(is_presence(None, sender="romeo@remote.example/phone"))
            self.assertEqual([str(next(p.elements())) for p in shown], ["hi"])
        self.assertEqual(idle.take(is_presence(sender="romeo@remote.example/phone")), [])
        self.assertEqual(self.remote.errors(), [])

    async def test_link_down_ends_each_remote_full_jid_once_for_available_resources(self):
        alice = await self.client("alice", "a")
        other = await self.client("alice", "a2")
        idle = await self.client("alice", "a3", available=False)
        carol = await self.client("carol", "c")
        for sender in ("romeo@remote.example/phone", "romeo@remote.example/phone",
                       "romeo@remote.example/laptop", "juliet@remote.example/balcony",
                       "mercutio@other.example/street"):
            await self.from_remote(sender, "alice@localhost")
        for client in self.clients:
            client.clear()

        await self.link(events.S2S_LINK_DOWN, REMOTE)
        for resource in (alice, other):
            gone = resource.take(is_presence("unavailable"))
            self.assertEqual(sorted(p["from"] for p in gone),
                             ["juliet@remote.example/balcony", "romeo@remote.example/laptop",
                              "romeo@remote.example/phone"])
            self.assertEqual({p["to"] for p in gone}, {str(resource.jid)})
        self.assertEqual(idle.take(is_presence("unavailable")), [])
        self.assertEqual(carol.take(is_presence("unavailable")), [])  # saw nothing remote

        await self.link(events.S2S_LINK_DOWN, REMOTE)  # already forgotten: said only once
        self.assertEqual(alice.take(is_presence("unavailable")), [])

        await self.link(events.S2S_LINK_DOWN, OTHER)
        gone = alice.take(is_presence("unavailable"))
        self.assertEqual([p["from"] for p in gone], ["mercutio@other.example/street"])

    async def test_remote_unavailable_is_delivered_and_forgotten(self):
        alice = await self.client("alice", "a")
        await self.from_remote("romeo@remote.example/phone", "alice@localhost")
        await self.from_remote("juliet@remote.example/balcony", "alice@localhost")
        await self.from_remote("juliet@remote.example/garden", "alice@localhost")
        await self.from_remote("romeo@remote.example/phone", "alice@localhost", "unavailable")
        await alice.expect(is_presence("unavailable", sender="romeo@remote.example/phone"))
        # unavailable from a bare JID (a probe answer): none of its resources is available
        await self.from_remote("juliet@remote.example", "alice@localhost", "unavailable")
        await alice.expect(is_presence("unavailable", sender="juliet@remote.example"))
        alice.clear()
        await self.link(events.S2S_LINK_DOWN, REMOTE)
        self.assertEqual(alice.take(is_presence("unavailable")), [])

    async def test_directed_presence_to_a_resource_is_tracked(self):
        alice = await self.client("alice", "a")
        other = await self.client("alice", "a2")
        await self.from_remote("romeo@remote.example/phone", "alice@localhost/a")
        await alice.expect(is_presence(None, sender="romeo@remote.example/phone"))
        self.assertEqual(other.take(is_presence(sender="romeo@remote.example/phone")), [])
        await self.link(events.S2S_LINK_DOWN, REMOTE)
        gone = alice.take(is_presence("unavailable", sender="romeo@remote.example/phone"))
        self.assertEqual([p["to"] for p in gone], ["alice@localhost/a"])

    async def test_an_account_that_went_unavailable_forgets_what_it_saw(self):
        alice = await self.client("alice", "a")
        await self.from_remote("romeo@remote.example/phone", "alice@localhost")
        alice.send("<presence type='unavailable'/>")
        await alice.expect(is_presence("unavailable", sender="alice@localhost/a"))
        alice.send("<presence/>")
        await alice.expect(is_presence(None, sender="alice@localhost/a"))
        await self.settle()
        alice.clear()
        await self.link(events.S2S_LINK_DOWN, REMOTE)
        self.assertEqual(alice.take(is_presence("unavailable")), [])

    async def test_presence_from_local_entities_is_not_tracked(self):
        alice = await self.client("alice", "a")
        bob = await self.client("bob", "b")
        bob.send("<presence to='alice@localhost'/>")
        await alice.expect(is_presence(None, sender="bob@localhost/b"))
        await self.link(events.S2S_LINK_DOWN, "localhost")
        self.assertEqual(alice.take(is_presence("unavailable")), [])


class LinkUpTests(RemoteTestCase):
    async def _start(self) -> None:
        await super()._start()
        for contact, state in ((ROMEO, subscription.TO), (JULIET, subscription.BOTH),
                               (TYBALT, subscription.FROM), (NURSE, subscription.NONE_PENDING_OUT),
                               (MERCUTIO, subscription.BOTH)):
            await self.roster.set_state(ALICE, contact, state)
        await self.roster.set_state(parse_jid("bob@localhost"), ROMEO, subscription.BOTH)

    async def test_link_back_after_a_drop_probes_to_and_both_contacts_once(self):
        await self.client("alice", "a")
        await self.client("alice", "a2")
        await self.client("bob", "b", available=False)  # not available: no probe for bob
        self.remote.sent.clear()

        await self.link(events.S2S_LINK_UP, REMOTE)  # no drop before: the login probed already
        self.assertEqual(self.remote.presence("probe"), [])

        await self.link(events.S2S_LINK_DOWN, REMOTE)
        await self.link(events.S2S_LINK_UP, REMOTE)
        self.assertEqual(sorted(self.remote.presence("probe")),
                         [("alice@localhost", "juliet@remote.example"),
                          ("alice@localhost", "romeo@remote.example")])

        self.remote.sent.clear()
        await self.link(events.S2S_LINK_UP, REMOTE)  # the second link of the pair
        self.assertEqual(self.remote.presence("probe"), [])

    async def test_a_drop_with_nobody_available_probes_nothing(self):
        await self.link(events.S2S_LINK_DOWN, REMOTE)
        await self.client("bob", "b", available=False)
        await self.link(events.S2S_LINK_UP, REMOTE)
        self.assertEqual(self.remote.presence("probe"), [])


class FederatedExchangeTests(RemoteTestCase):
    async def test_initial_presence_probes_remote_contacts_and_reaches_remote_subscribers(self):
        await self.roster.set_state(ALICE, ROMEO, subscription.TO)
        await self.roster.set_state(ALICE, JULIET, subscription.FROM)
        alice = await self.client("alice", "a")
        self.assertEqual(self.remote.presence("probe"),
                         [("alice@localhost", "romeo@remote.example")])
        self.assertEqual(self.remote.presence("available"),
                         [("alice@localhost/a", "juliet@remote.example")])
        alice.harness.stream.connectionLost(None)
        await self.settle()
        self.assertEqual(self.remote.presence("unavailable"),
                         [("alice@localhost/a", "juliet@remote.example")])

    async def test_client_probe_and_directed_presence_go_out_from_the_full_jid(self):
        await self.roster.set_state(ALICE, ROMEO, subscription.TO)
        alice = await self.client("alice", "a")
        self.remote.sent.clear()
        alice.send("<presence type='probe' to='romeo@remote.example'/>"
                   "<presence type='probe' to='juliet@remote.example'/>"
                   "<presence to='tybalt@remote.example/sword'/>")
        await self.settle()
        self.assertEqual(self.remote.presence("probe"),
                         [("alice@localhost/a", "romeo@remote.example")])  # no 'to' for juliet
        self.assertEqual(self.remote.presence("available"),
                         [("alice@localhost/a", "tybalt@remote.example/sword")])
        alice.harness.stream.connectionLost(None)
        await self.settle()
        self.assertEqual(self.remote.presence("unavailable"),
                         [("alice@localhost/a", "tybalt@remote.example/sword")])

    async def test_remote_probe_is_answered_through_the_remote_router(self):
        await self.roster.set_state(ALICE, ROMEO, subscription.FROM)
        await self.client("alice", "a", presence="<presence><show>chat</show></presence>")
        self.remote.sent.clear()
        await self.from_remote("romeo@remote.example", "alice@localhost", "probe")
        await self.from_remote("juliet@remote.example/balcony", "alice@localhost", "probe")
        answers = [s for s in self.remote.sent if s.type == "available"]
        self.assertEqual([(s.element["from"], s.element["to"]) for s in answers],
                         [("alice@localhost/a", "romeo@remote.example")])
        self.assertEqual(str(next(answers[0].element.elements())), "chat")
        self.assertEqual(self.remote.presence("unsubscribed"),  # §4.3.2 rule 1
                         [("alice@localhost", "juliet@remote.example")])
        self.assertEqual(self.remote.errors(), [])


class FederatedSubscriptionTests(RemoteTestCase):
    async def test_subscribing_to_a_remote_contact(self):
        alice = await self.client("alice", "a")
        alice.send("<presence type='subscribe' to='juliet@remote.example/balcony'/>")
        item = pushed_item(await alice.expect(is_push("juliet@remote.example")))
        self.assertEqual((item["subscription"], item.getAttribute("ask")), ("none", "subscribe"))
        await self.settle()
        self.assertEqual(self.remote.presence("subscribe"),
                         [("alice@localhost", "juliet@remote.example")])

        await self.from_remote("juliet@remote.example", "alice@localhost", "subscribed")
        approval = await alice.expect(is_presence("subscribed"))
        self.assertEqual((approval["from"], approval["to"]),
                         ("juliet@remote.example", "alice@localhost"))
        item = pushed_item(await alice.expect(is_push("juliet@remote.example")))
        self.assertEqual((item["subscription"], item.getAttribute("ask")), ("to", None))
        self.assertEqual(await self.roster.get_state(ALICE, JULIET), subscription.TO)

        await self.from_remote("juliet@remote.example/balcony", "alice@localhost")
        await alice.expect(is_presence(None, sender="juliet@remote.example/balcony"))
        self.assertEqual(self.remote.errors(), [])

    async def test_a_remote_request_is_approved_with_presence_going_back(self):
        alice = await self.client("alice", "a")
        await self.from_remote("romeo@remote.example/phone", "alice@localhost", "subscribe")
        request = await alice.expect(is_presence("subscribe"))
        self.assertEqual(request["from"], "romeo@remote.example")  # §3.1.3: from the bare JID
        self.remote.sent.clear()
        alice.send("<presence type='subscribed' to='romeo@remote.example'/>")
        item = pushed_item(await alice.expect(is_push("romeo@remote.example")))
        self.assertEqual(item["subscription"], "from")
        await self.settle()
        self.assertEqual(self.remote.presence("subscribed"),
                         [("alice@localhost", "romeo@remote.example")])
        self.assertEqual(self.remote.presence("available"),  # §3.1.5: her current presence
                         [("alice@localhost/a", "romeo@remote.example")])
        self.assertEqual(await self.roster.get_state(ALICE, ROMEO), subscription.FROM)

    async def test_a_remote_request_for_a_nonexistent_account_is_ignored(self):
        await self.from_remote("romeo@remote.example", "nobody@localhost", "subscribe")
        self.assertEqual(await self.roster.pending_requests(parse_jid("nobody@localhost")), [])
        self.assertEqual(self.remote.sent, [])


class RemotePresenceBookTests(TestCase):
    def test_per_account_memory_is_bounded(self):
        book = RemotePresenceBook(limit=2)
        for resource in ("a", "b", "c"):
            book.available(ALICE, parse_jid(f"romeo@remote.example/{resource}"))
        self.assertEqual(book.count(ALICE), 2)
        self.assertTrue(book.available(ALICE, parse_jid("romeo@remote.example/a")))  # known
        self.assertFalse(book.available(ALICE, parse_jid("juliet@remote.example/x")))

    def test_lost_takes_only_that_domain_and_forgets_it(self):
        book = RemotePresenceBook()
        bob = parse_jid("bob@localhost")
        book.available(ALICE, parse_jid("romeo@remote.example/a"))
        book.available(ALICE, parse_jid("mercutio@other.example/b"))
        book.available(bob, parse_jid("juliet@remote.example/c"))
        lost = book.lost(REMOTE)
        self.assertEqual(lost, {ALICE: {parse_jid("romeo@remote.example/a")},
                                bob: {parse_jid("juliet@remote.example/c")}})
        self.assertEqual((book.count(ALICE), book.count(bob)), (1, 0))
        self.assertEqual(book.lost(REMOTE), {})

    def test_unavailable_from_a_bare_jid_forgets_its_resources_only(self):
        book = RemotePresenceBook()
        for jid in ("romeo@remote.example/a", "romeo@remote.example/b",
                    "juliet@remote.example/c"):
            book.available(ALICE, parse_jid(jid))
        book.unavailable(ALICE, ROMEO)
        self.assertEqual(book.lost(REMOTE), {ALICE: {parse_jid("juliet@remote.example/c")}})
        book.unavailable(ALICE, ROMEO)  # nothing left: no error
        book.forget_account(ALICE)
