"""XEP-0198 resumption on another node, without Redis: two servers in one process, the
holder's ``hand_over`` and the other's ``adopt`` joined by a JSON round trip (what the
cluster's channel carries, xmppd.cluster.resumption); and the state's own checks."""

from __future__ import annotations

import copy
import json

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.helpers import ServerFixture, StreamHarness
from tests.unit.test_c2s_stream import PASSWORD
from tests.unit.test_sm_manager import MESSAGE, SM, bodies, condition, sm
from xmppd import ns
from xmppd.c2s.detached import DetachedStream
from xmppd.im import subscription
from xmppd.interfaces import IRemoteResumption, IResumableSessions, IRoster
from xmppd.jid import parse_jid
from xmppd.sm import handover

C2S = ("require_encryption = false\n[plugins]\n"
       'enabled = ["roster", "presence", "offline", "carbons", "csi", "smacks"]\n'
       "[plugins.smacks]\nresumption_timeout = 300\nrequest_after = 100\nrequest_delay = 100\n")
ALICE = "alice@localhost/phone"


@implementer(IRemoteResumption)
class Wire:
    """The cluster reduced to a function call: ask ``holder``, adopt on ``here``."""

    def __init__(self, holder, here) -> None:
        self.holder, self.here = holder, here
        self.asked = 0

    def fetch(self, previd, account):
        self.asked += 1
        state = self.holder.query(IResumableSessions).hand_over(previd, account)
        if state is None:
            return defer.succeed(False)
        self.here.query(IResumableSessions).adopt(json.loads(json.dumps(state)))
        return defer.succeed(True)


class TwoNodesCase(TestCase):
    """Two servers joined by ``Wire``s, and alice's phone on node a (no tests of its own:
    tests/unit/test_sasl2_cluster_resume.py reuses it)."""

    async def asyncSetUp(self) -> None:
        self.a = ServerFixture(self.path("a"), C2S)
        self.b = ServerFixture(self.path("b"), C2S)
        for fixture in (self.a, self.b):
            # the plugins are module-level singletons: each server gets its own copies
            fixture.registry.check()
            fixture.registry._checked = [(copy.copy(plugin), settings)
                                         for plugin, settings in fixture.registry._checked]
            await fixture.start()
            for user in ("alice", "bob", "mallory"):
                await fixture.add_user(user, PASSWORD)
        self.wire = Wire(self.a.server, self.b.server)
        self.unwire_b = self.b.server.provide(IRemoteResumption, self.wire)
        self.a.server.provide(IRemoteResumption, Wire(self.b.server, self.a.server))

    def setUp(self):
        self.addCleanup(lambda: defer.ensureDeferred(self.a.stop()))
        self.addCleanup(lambda: defer.ensureDeferred(self.b.stop()))
        return defer.ensureDeferred(self.asyncSetUp())

    def path(self, name: str):
        from pathlib import Path

        path = Path(self.mktemp()) / name
        path.mkdir(parents=True)
        return path

    async def client(self, fixture, user: str, resource: str) -> StreamHarness:
        h = StreamHarness(fixture.server)
        await h.login(user, PASSWORD, resource)
        return h

    async def phone_on_a(self):
        """alice/phone on node a: SM with resumption, carbons on, inactive, available; bob
        on a sends her two messages, she acknowledges the first; then her connection drops."""
        roster = self.a.server.query(IRoster)  # friends: bob sees her presence come and go
        alice_jid, bob_jid = parse_jid("alice@localhost"), parse_jid("bob@localhost")
        await roster.set_state(alice_jid, bob_jid, subscription.BOTH)
        await roster.set_state(bob_jid, alice_jid, subscription.BOTH)
        bob = await self.client(self.a, "bob", "desk")
        bob.feed("<presence/>")
        await bob.settle()
        alice = await self.client(self.a, "alice", "phone")
        alice.feed("<presence><priority>7</priority></presence>"
                   "<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
                   f"<enable xmlns='{SM}' resume='true'/>")
        await alice.settle()
        (enabled,) = sm(alice.elements(), "enabled")
        await bob.settle()
        self.assertEqual([p.getAttribute("type") for p in bob.elements()
                          if p.name == "presence" and p["from"] == ALICE], [None])
        for n, body in enumerate(("one", "two")):
            bob.feed(MESSAGE.format(to=ALICE, id=f"m{n}", body=body))
        self.assertEqual(bodies(alice.elements()), ["one", "two"])
        alice.feed(f"<a xmlns='{SM}' h='1'/><inactive xmlns='urn:xmpp:csi:0'/>")
        alice.stream.connectionLost(None)
        session = self.a.server.sessions.get(parse_jid(ALICE))
        self.assertTrue(session.hibernating)
        bob.feed(MESSAGE.format(to=ALICE, id="m3", body="three"))  # queued while away
        return session, enabled["id"], bob

    async def resume_on_b(self, previd: str, h: int, user: str = "alice"):
        again = StreamHarness(self.b.server)
        await again.authenticate(user, PASSWORD)
        again.feed(f"<resume xmlns='{SM}' previd='{previd}' h='{h}'/>")
        await again.settle()
        return again, again.elements()


class TwoNodes(TwoNodesCase):
    async def test_resumed_on_the_other_node_with_everything_the_local_path_keeps(self):
        old, previd, bob = await self.phone_on_a()
        again, received = await self.resume_on_b(previd, 1)
        self.assertEqual((received[0].name, received[0]["h"], received[0]["previd"]),
                         ("resumed", "0", previd))  # she sent no stanza since <enable/>
        self.assertEqual(bodies(received), ["two", "three"])  # once each, delay-stamped
        self.assertTrue(all(any(c.uri == ns.DELAY for c in m.elements())
                            for m in received if m.name == "message"))
        # gone from node a as if resumed there: unbound, no unavailable presence to bob,
        # nothing kept offline
        self.assertTrue(old.ended and old.moved)
        self.assertIsNone(self.a.server.sessions.get(parse_jid(ALICE)))
        self.assertEqual([e for e in bob.elements() if e.name == "presence"], [])
        self.assertEqual(await self.a.storage.offline.count("alice", "localhost"), 0)
        # on node b: the same JID, available with its priority, carbons on, still inactive
        session = self.b.server.sessions.get(parse_jid(ALICE))
        self.assertIs(again.stream.session, session)
        self.assertFalse(session.hibernating)
        self.assertEqual((session.available, session.priority), (True, 7))
        self.assertEqual(session.presence.getAttribute("from"), ALICE)
        again.feed(f"<r xmlns='{SM}'/>")
        self.assertEqual(sm(again.elements(), "a")[0]["h"], "0")
        # inactive: bob's presence waits for <active/>
        carol = await self.client(self.b, "bob", "tablet")
        carol.feed(f"<presence to='{ALICE}'/>")
        self.assertEqual(again.elements(), [])
        again.feed("<active xmlns='urn:xmpp:csi:0'/>")
        (presence,) = again.elements()
        self.assertEqual(presence["from"], "bob@localhost/tablet")
        # carbons on: a message to her laptop on b is copied to her
        laptop = await self.client(self.b, "alice", "laptop")
        carol.feed(MESSAGE.format(to="alice@localhost/laptop", id="c1", body="copied"))
        self.assertEqual(bodies(laptop.elements()), ["copied"])
        (copy,) = again.elements()
        self.assertEqual([c.name for c in copy.elements() if c.uri == ns.CARBONS],
                         ["received"])
        again.feed(f"<a xmlns='{SM}' h='4'/>")  # two, three, the presence, the copy
        self.assertEqual(again.elements(), [])
        # the session is resumable again on node b under the same id
        again.stream.connectionLost(None)
        self.assertTrue(session.hibernating)
        self.assertIn(previd, self.b.server.query(IResumableSessions).by_id)
        self.assertNotIn(previd, self.a.server.query(IResumableSessions).by_id)

    async def test_control_an_end_on_the_holder_is_seen_by_bob(self):
        """What the hand-over must not do, done by an ordinary end on node a."""
        old, _previd, bob = await self.phone_on_a()
        self.a.clock.advance(301)
        self.assertTrue(old.ended and not old.moved)
        await bob.settle()
        self.assertEqual([p.getAttribute("type") for p in bob.elements()
                          if p.name == "presence" and p["from"] == ALICE], ["unavailable"])

    async def test_never_two_live_copies_and_the_session_can_move_back(self):
        _old, previd, _bob = await self.phone_on_a()
        first, _ = await self.resume_on_b(previd, 1)
        second, received = await self.resume_on_b(previd, 1)  # at once, on b again
        self.assertEqual(received[0].name, "resumed")
        self.assertEqual(first.stream_error(), "conflict")  # as a local resumption does
        self.assertEqual(self.wire.asked, 1)  # the second found it on b
        session = self.b.server.sessions.get(parse_jid(ALICE))
        self.assertIs(second.stream.session, session)
        second.stream.connectionLost(None)
        # the same id, back on node a: b hands it over this time
        back = StreamHarness(self.a.server)
        await back.authenticate("alice", PASSWORD)
        back.feed(f"<resume xmlns='{SM}' previd='{previd}' h='3'/>")
        await back.settle()
        (resumed,) = back.elements()
        self.assertEqual(resumed.name, "resumed")
        self.assertTrue(session.ended and session.moved)
        self.assertIsNone(self.b.server.sessions.get(parse_jid(ALICE)))
        self.assertIs(self.a.server.sessions.get(parse_jid(ALICE)), back.stream.session)

    async def test_a_resume_of_a_session_still_open_on_the_holder_closes_that_stream(self):
        alice = await self.client(self.a, "alice", "phone")
        alice.feed(f"<enable xmlns='{SM}' resume='true'/>")
        (enabled,) = sm(alice.elements(), "enabled")
        again, received = await self.resume_on_b(enabled["id"], 0)
        self.assertEqual(received[0].name, "resumed")
        self.assertEqual(alice.stream_error(), "conflict")
        alice.stream.connectionLost(None)  # its end is not the session's any more
        self.assertIs(self.b.server.sessions.get(parse_jid(ALICE)), again.stream.session)
        self.assertFalse(again.stream.session.ended)

    async def test_a_late_session_yields_to_the_one_its_client_bound_meanwhile(self):
        _old, previd, _bob = await self.phone_on_a()
        state = self.a.server.query(IResumableSessions).hand_over(previd, parse_jid(
            "alice@localhost"))
        fresh = await self.client(self.b, "alice", "phone")  # told <failed/>, bound again
        self.assertIsNone(self.b.server.query(IResumableSessions).adopt(
            json.loads(json.dumps(state))))
        self.assertIs(self.b.server.sessions.get(parse_jid(ALICE)), fresh.stream.session)
        self.assertNotIn(previd, self.b.server.query(IResumableSessions).by_id)
        for _ in range(200):  # two and three, kept offline (the database thread)
            if await self.b.storage.offline.count("alice", "localhost") >= 2:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(await self.b.storage.offline.count("alice", "localhost"), 2)
        self.assertFalse(fresh.closed)

    async def test_another_accounts_previd_and_an_unknown_one_fail_alike(self):
        _old, previd, _bob = await self.phone_on_a()
        for id, user in ((previd, "mallory"), ("no-such-id", "alice")):
            again, (answer,) = await self.resume_on_b(id, 0, user)
            self.assertEqual((answer.name, condition(answer), answer.getAttribute("h")),
                             ("failed", "item-not-found", None))
            self.assertFalse(again.closed)
        self.assertEqual(self.wire.asked, 2)
        self.assertTrue(self.a.server.sessions.get(parse_jid(ALICE)).hibernating)  # still there

    async def test_an_h_too_high_ends_the_new_stream_after_the_hand_over(self):
        _old, previd, _bob = await self.phone_on_a()
        again, (error,) = await self.resume_on_b(previd, 9)
        self.assertEqual((error.name, next(error.elements()).name),
                         ("error", "undefined-condition"))
        self.assertTrue(again.closed)
        # the session came over and hibernates on b, resumable with a sane h
        session = self.b.server.sessions.get(parse_jid(ALICE))
        self.assertTrue(session.hibernating)
        again2, received = await self.resume_on_b(previd, 1)
        self.assertEqual(bodies(received), ["two", "three"])

    async def test_the_adopted_session_times_out_with_what_was_left_and_goes_offline(self):
        _old, previd, _bob = await self.phone_on_a()
        self.a.clock.advance(200)
        state = self.a.server.query(IResumableSessions).hand_over(previd, parse_jid(
            "alice@localhost"))
        self.assertEqual(state["remaining"], 100)
        self.b.server.query(IResumableSessions).adopt(json.loads(json.dumps(state)))
        session = self.b.server.sessions.get(parse_jid(ALICE))
        self.b.clock.advance(99)
        self.assertFalse(session.ended)
        self.b.clock.advance(2)
        self.assertTrue(session.ended and not session.moved)

        for _ in range(200):
            if await self.b.storage.offline.count("alice", "localhost") >= 2:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(await self.b.storage.offline.count("alice", "localhost"), 2)


class StateTests(TestCase):
    def state(self) -> dict:
        return {"v": 1, "id": "abc", "jid": ALICE, "handled": 4, "sent": 7,
                "queue": [["<message xmlns='jabber:client' to='alice@localhost/phone'>"
                           "<body>hi</body></message>", 1.5]],
                "timeout": 300, "remaining": 120.0, "peer": "127.0.0.1:4000",
                "secure": True, "mechanism": "SCRAM-SHA-256", "plugins": {"roster": True}}

    def test_a_state_reads_back(self):
        taken = handover.read(json.loads(json.dumps(self.state())))
        self.assertEqual((taken.jid.full(), taken.handled, taken.sent, taken.remaining),
                         (ALICE, 4, 7, 120.0))
        ((element, when),) = taken.queue
        self.assertEqual((element.name, str(element.body), when), ("message", "hi", 1.5))
        self.assertEqual(taken.plugins, {"roster": True})

    def test_bad_states_are_refused_whole(self):
        for change in ({"v": 2}, {"jid": "alice@localhost"}, {"jid": "@@"},
                       {"handled": -1}, {"sent": 2 ** 32}, {"handled": "4"},
                       {"queue": [["<message", 1]]}, {"queue": [["<a/><b/>", 1]]},
                       {"timeout": 0}, {"id": ""}, {"remaining": "soon"}):
            state = {**self.state(), **change}
            with self.assertRaises(ValueError, msg=change):
                handover.read(state)
        state = self.state()
        del state["queue"]
        with self.assertRaises(ValueError):
            handover.read(state)

    def test_the_detached_stream_writes_nowhere(self):
        stream = DetachedStream(None, "10.0.0.1:5", True, "PLAIN")
        stream.send(object())
        stream.close_stream("conflict")
        self.assertTrue(stream.disconnected)
        self.assertEqual(repr(stream), "<DetachedStream from 10.0.0.1:5>")


class PepInterestTests(TestCase):
    def test_what_a_jid_wants_is_found_by_account(self):
        from xmppd.pep.interest import Interests

        interests = Interests()
        phone, laptop = parse_jid(ALICE), parse_jid("alice@localhost/laptop")
        bob, carol = parse_jid("bob@localhost"), parse_jid("carol@localhost")
        interests.set(bob, phone, frozenset({"urn:xmpp:avatar:metadata", "mood"}))
        interests.set(carol, phone, frozenset())
        interests.set(bob, laptop, frozenset({"mood"}))
        wanted = interests.of(phone)
        self.assertEqual(wanted, {"bob@localhost": ["mood", "urn:xmpp:avatar:metadata"],
                                  "carol@localhost": []})
        there = Interests()
        for account, nodes in json.loads(json.dumps(wanted)).items():
            there.set(parse_jid(account), phone, frozenset(nodes))
        self.assertEqual(there.wanting(bob, "mood"), [phone])
        self.assertEqual(interests.of(parse_jid("dave@localhost/x")), {})
