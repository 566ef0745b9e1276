"""Presence broadcasts from the rosters the roster plugin keeps in memory for online accounts:
after every way a roster can change, the next broadcast reaches exactly the right contacts,
and a broadcast of an online account reads nothing from storage."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from tests.unit.test_presence import (
    ALICE,
    BOB,
    CAROL,
    PASSWORD,
    Client,
    PresenceTestCase,
    is_presence,
    is_push,
    pushed_item,
)
from xmppd import ns
from xmppd.admin.api import AdminAPI
from xmppd.im import subscription
from xmppd.im.presence_stanzas import addressed_copy
from xmppd.jid import JID, parse_jid
from xmppd.stanza import Stanza


class CachedBroadcastTestCase(PresenceTestCase):
    async def _start(self) -> None:
        await super()._start()
        self.store = self.roster.store
        self.reads: list[str] = []
        for name in ("get_roster", "get_item"):
            self._count(name)

    def _count(self, name: str) -> None:
        read = getattr(self.store, name)

        def counted(*args):
            self.reads.append(name)
            return read(*args)

        setattr(self.store, name, counted)

    async def reached(self, client: Client, status: str) -> set[str]:
        """The addresses one broadcast of ``client``'s presence was routed to."""
        await self.settle()
        self.routed.clear()
        client.send(f"<presence><status>{status}</status></presence>")
        await client.expect(is_presence(None, sender=str(client.jid), to=str(client.jid)))
        await self.settle()
        return {str(stanza.recipient) for stanza in self.routed
                if stanza.kind == "presence" and stanza.type == "available"
                and stanza.sender == client.jid}

    async def assert_fresh(self, account: JID) -> None:
        """The roster kept in memory, if any, is the one in storage, version included."""
        cached = self.roster.cache.get(account)
        snapshot = await self.store.get_roster(account.user, account.host)
        if cached is not None:
            self.assertEqual((cached.version, cached.items), (snapshot.version, snapshot.items))


class KeptRosterTests(CachedBroadcastTestCase):
    async def test_a_login_reads_the_roster_once_and_broadcasts_read_nothing(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        await self.client("bob", "b")
        self.reads.clear()
        alice = await self.client("alice", "a")  # roster get, then initial presence
        self.assertEqual(self.reads.count("get_roster"), 1)
        self.reads.clear()
        for number in range(3):
            self.assertEqual(await self.reached(alice, f"s{number}"), {"bob@localhost"})
        self.assertEqual(self.reads, [])

    async def test_the_roster_is_kept_until_the_last_session_ends(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        first = await self.client("alice", "a")
        second = await self.client("alice", "a2")
        self.assertIn(ALICE, self.roster.cache)
        first.harness.stream.connectionLost(None)
        await self.settle()
        self.assertIn(ALICE, self.roster.cache)
        second.harness.stream.connectionLost(None)
        await self.settle()
        self.assertNotIn(ALICE, self.roster.cache)
        self.assertEqual(len(self.roster.cache), 0)  # nobody else was online

    async def test_an_offline_account_is_read_from_storage(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        self.assertEqual([jid.full() for jid in (await self.roster.contacts(ALICE)).subscribers],
                         ["bob@localhost"])
        self.assertNotIn(ALICE, self.roster.cache)
        await self.roster.set_state(ALICE, BOB, subscription.TO)
        self.assertEqual((await self.roster.contacts(ALICE)).subscribers, ())


class RosterChangeTests(CachedBroadcastTestCase):
    async def test_roster_set_and_remove(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        await self.befriend(ALICE, CAROL, subscription.BOTH, subscription.BOTH)
        alice = await self.client("alice", "a")
        await self.client("bob", "b")
        await self.client("carol", "c")
        self.assertEqual(await self.reached(alice, "1"), {"bob@localhost", "carol@localhost"})

        alice.send("<iq type='set' id='name'><query xmlns='jabber:iq:roster'>"
                   "<item jid='carol@localhost' name='Carol'/></query></iq>"
                   "<iq type='set' id='new'><query xmlns='jabber:iq:roster'>"
                   "<item jid='nobody@localhost'/></query></iq>")
        await alice.expect(lambda e: e.getAttribute("id") == "new")
        await self.assert_fresh(ALICE)
        self.assertEqual(await self.reached(alice, "2"), {"bob@localhost", "carol@localhost"})
        alice.send("<iq type='get' id='get'><query xmlns='jabber:iq:roster'/></iq>")
        result = await alice.expect(lambda e: e.getAttribute("id") == "get")
        query = next(result.elements())
        snapshot = await self.store.get_roster("alice", "localhost")
        self.assertEqual(query["ver"], str(snapshot.version))
        self.assertEqual([(i["jid"], i.getAttribute("name")) for i in query.elements()],
                         [("bob@localhost", None), ("carol@localhost", "Carol"),
                          ("nobody@localhost", None)])

        alice.send("<iq type='set' id='remove'><query xmlns='jabber:iq:roster'>"
                   "<item jid='bob@localhost' subscription='remove'/></query></iq>")
        await alice.expect(lambda e: e.getAttribute("id") == "remove")
        await self.assert_fresh(ALICE)
        await self.assert_fresh(BOB)  # bob's side changed by the unsubscribe(d) it got
        self.assertEqual(await self.reached(alice, "3"), {"carol@localhost"})

    async def test_subscribe_and_subscribed_in_both_directions(self):
        alice = await self.client("alice", "a")
        bob = await self.client("bob", "b")
        self.assertEqual(await self.reached(alice, "1"), set())

        alice.send("<presence type='subscribe' to='bob@localhost'/>")
        await bob.expect(is_presence("subscribe", sender="alice@localhost"))
        self.assertEqual(await self.reached(bob, "2"), set())  # a request is not a subscription
        bob.send("<presence type='subscribed' to='alice@localhost'/>")
        await alice.expect(is_presence("subscribed", sender="bob@localhost"))
        await self.settle()
        self.assertEqual(await self.reached(bob, "3"), {"alice@localhost"})
        self.assertEqual(await self.reached(alice, "4"), set())

        bob.send("<presence type='subscribe' to='alice@localhost'/>")
        await alice.expect(is_presence("subscribe", sender="bob@localhost"))
        alice.send("<presence type='subscribed' to='bob@localhost'/>")
        await bob.expect(is_presence("subscribed", sender="alice@localhost"))
        self.assertEqual(await self.reached(alice, "5"), {"bob@localhost"})
        self.assertEqual(await self.reached(bob, "6"), {"alice@localhost"})
        for account in (ALICE, BOB):
            await self.assert_fresh(account)

    async def test_unsubscribe_ends_one_direction_on_both_sides(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        alice = await self.client("alice", "a")
        bob = await self.client("bob", "b")
        alice.send("<presence type='unsubscribe' to='bob@localhost'/>")
        await bob.expect(is_presence("unsubscribe", sender="alice@localhost"))
        self.assertEqual(pushed_item(await bob.expect(is_push("alice@localhost")))
                         ["subscription"], "to")
        self.assertEqual(await self.reached(bob, "1"), set())  # bob's 'from' is gone
        self.assertEqual(await self.reached(alice, "2"), {"bob@localhost"})
        self.assertEqual([jid.full() for jid in (await self.roster.contacts(ALICE)).subscriptions],
                         [])
        for account in (ALICE, BOB):
            await self.assert_fresh(account)

    async def test_unsubscribed_ends_one_direction_on_both_sides(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        alice = await self.client("alice", "a")
        bob = await self.client("bob", "b")
        alice.send("<presence type='unsubscribed' to='bob@localhost'/>")
        await bob.expect(is_presence("unsubscribed", sender="alice@localhost"))
        self.assertEqual(pushed_item(await bob.expect(is_push("alice@localhost")))
                         ["subscription"], "from")
        self.assertEqual(await self.reached(alice, "1"), set())  # alice's 'from' is gone
        self.assertEqual(await self.reached(bob, "2"), {"alice@localhost"})
        self.assertEqual([jid.full() for jid in (await self.roster.contacts(BOB)).subscriptions],
                         [])
        for account in (ALICE, BOB):
            await self.assert_fresh(account)

    async def test_account_deletion(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        await self.befriend(ALICE, CAROL, subscription.BOTH, subscription.BOTH)
        alice = await self.client("alice", "a")
        await self.client("bob", "b")
        carol = await self.client("carol", "c")
        self.assertEqual(await self.reached(alice, "1"), {"bob@localhost", "carol@localhost"})

        await AdminAPI(self.fixture.storage, ["localhost"], self.server).delete_user(CAROL)
        self.assertNotIn(CAROL, self.roster.cache)  # her session may still be closing
        await self.settle()
        await self.assert_fresh(ALICE)
        self.assertEqual(await self.reached(alice, "2"), {"bob@localhost"})

        carol.harness.stream.connectionLost(None)
        self.clients.remove(carol)
        await self.fixture.add_user("carol", PASSWORD)
        again = await self.client("carol", "c")
        self.assertEqual(await self.roster.items(CAROL), [])
        await self.assert_fresh(CAROL)
        self.assertEqual(await self.reached(again, "3"), set())


class DeliveryTests(CachedBroadcastTestCase):
    async def test_presence_waits_behind_a_subscription_change_of_the_pair_only(self):
        await self.befriend(ALICE, BOB, subscription.BOTH, subscription.BOTH)
        await self.befriend(ALICE, CAROL, subscription.BOTH, subscription.BOTH)
        alice = await self.client("alice", "a")
        await self.client("bob", "b")
        await self.client("carol", "c")
        await self.settle()
        alice.clear()
        (handler,) = self.server.dispatcher._table[("presence", "available", "bare")]
        queue = handler.__self__.queue
        gate = defer.Deferred()
        queue.run((ALICE, BOB), lambda: gate)  # a change of (alice, bob) still being stored
        for sender in ("bob@localhost/b", "carol@localhost/c"):
            element = domish.Element((None, "presence"), attribs={"from": sender,
                                                                   "to": "alice@localhost"})
            self.server.router.route(Stanza(element, parse_jid(sender), ALICE), None)
        self.assertEqual(len(alice.take(is_presence(None, sender="carol@localhost/c"))), 1)
        self.assertEqual(alice.take(is_presence(None, sender="bob@localhost/b")), [])
        gate.callback(None)
        self.assertEqual(len(alice.take(is_presence(None, sender="bob@localhost/b"))), 1)
        self.assertEqual(len(queue), 0)


class AddressedCopyTests(TestCase):
    def test_a_copy_has_its_own_addresses_and_children_list_but_shares_the_children(self):
        source = domish.Element((ns.CLIENT, "presence"), attribs={"from": "a@localhost/r",
                                                                   "to": "x@localhost"})
        status = source.addElement("status", content="hi")
        copy = addressed_copy(source, "a@localhost/r", "b@localhost")
        self.assertEqual((copy["from"], copy["to"]), ("a@localhost/r", "b@localhost"))
        self.assertIs(next(copy.elements()), status)
        copy.addElement("extra")
        self.assertEqual([child.name for child in source.elements()], ["status"])
        self.assertEqual(source["to"], "x@localhost")
        bare = addressed_copy(source, "a@localhost", None)
        self.assertEqual((bare["from"], bare.getAttribute("to")), ("a@localhost", None))
        self.assertEqual((bare.uri, bare.name, bare.defaultUri), (ns.CLIENT, "presence", ns.CLIENT))
