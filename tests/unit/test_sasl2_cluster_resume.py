"""XEP-0198 resumption inline in SASL2 (XEP-0388) of a session another node holds: two
servers in one process joined by the Wire of test_sm_handover (the cluster's round trip as
a function call, or held back to see what waits for it)."""

from __future__ import annotations

import base64

from twisted.internet import defer, reactor, task
from zope.interface import implementer

from tests.helpers import StreamHarness
from tests.scramclient import ScramClient
from tests.unit.test_c2s_stream import PASSWORD
from tests.unit.test_sm_handover import ALICE, TwoNodesCase
from tests.unit.test_sm_manager import SM, bodies, condition
from xmppd import ns
from xmppd.interfaces import IRemoteResumption, IResumableSessions
from xmppd.jid import parse_jid
from xmppd.sasl2 import BIND2, SASL2

BIND = f"<bind xmlns='{BIND2}'><tag>Phone</tag></bind>"


def child(element, uri: str, name: str):
    return next(element.elements(uri, name), None)


def resume(previd: str, h: int) -> str:
    return f"<resume xmlns='{SM}' previd='{previd}' h='{h}'/>"


@implementer(IRemoteResumption)
class Held:
    """The cluster, slow: each question waits until the test lets ``wire`` answer it."""

    def __init__(self, wire) -> None:
        self.wire = wire
        self.pending: list = []

    def fetch(self, previd, account):
        d = defer.Deferred()
        self.pending.append((d, previd, account))
        return d

    def answer(self) -> None:
        d, previd, account = self.pending.pop(0)
        self.wire.fetch(previd, account).chainDeferred(d)

    def time_out(self) -> None:
        """What xmppd.cluster.resumption says when no node answered within its bound."""
        self.pending.pop(0)[0].callback(False)


class InlineResumeAcrossNodes(TwoNodesCase):
    async def authenticate(self, fixture, inline: str, user: str = "alice") -> StreamHarness:
        """A SASL2 SCRAM exchange on ``fixture`` up to the client's last word; what the
        server answers is left to read."""
        h = StreamHarness(fixture.server, direct_tls=True)
        h.header()
        h.events()
        client = ScramClient("sha-256", user, PASSWORD)
        first = base64.b64encode(client.first()).decode()
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
               f"<initial-response>{first}</initial-response>{inline}</authenticate>")
        challenge = await h.wait_for_element("challenge")
        final = client.final(base64.b64decode(str(challenge)))
        h.feed(f"<response xmlns='{SASL2}'>{base64.b64encode(final).decode()}</response>")
        return h

    async def answer(self, h: StreamHarness) -> list:
        """What the server wrote once it answered (the credentials come from a thread)."""
        for _ in range(500):
            elements = h.elements()
            if elements:
                return elements
            await task.deferLater(reactor, 0.01, lambda: None)
        raise AssertionError("no answer")

    async def idle(self, h: StreamHarness) -> list:
        """Give the server time it does not need: what it wrote meanwhile."""
        written = []
        for _ in range(30):
            await task.deferLater(reactor, 0.01, lambda: None)
            written += h.elements()
        return written

    def assert_resumed(self, received: list, previd: str, h: str = "0") -> None:
        success = received[0]
        self.assertEqual((success.uri, success.name), (SASL2, "success"), success.toXml())
        resumed = child(success, SM, "resumed")
        self.assertEqual((resumed["previd"], resumed["h"]), (previd, h))
        self.assertIsNone(child(success, BIND2, "bound"))  # bind ignored once resumed
        self.assertIsNone(child(success, SM, "failed"))
        self.assertEqual(str(child(success, SASL2, "authorization-identifier")), ALICE)
        self.assertNotIn("features", [e.name for e in received])  # XEP-0198 §7.2

    def assert_failed_and_bound(self, received: list, h: StreamHarness) -> None:
        success = received[0]
        self.assertEqual((success.uri, success.name), (SASL2, "success"), success.toXml())
        failed = child(success, SM, "failed")
        self.assertEqual((condition(failed), failed.getAttribute("h")),
                         ("item-not-found", None))
        self.assertIsNotNone(child(success, BIND2, "bound"))  # the client goes on, bound
        self.assertEqual(str(child(success, SASL2, "authorization-identifier")),
                         h.stream.session.jid.full())
        self.assertIn("features", [e.name for e in received[1:]])

    async def test_resumed_in_the_success_after_the_hand_over_then_the_replay(self):
        old, previd, bob = await self.phone_on_a()
        h = await self.authenticate(self.b, resume(previd, 1) + BIND)
        received = await self.answer(h)
        self.assert_resumed(received, previd)
        self.assertEqual(bodies(received[1:]), ["two", "three"])  # once each, after success
        self.assertTrue(all(any(c.uri == ns.DELAY for c in m.elements())
                            for m in received if m.name == "message"))
        self.assertEqual(self.wire.asked, 1)
        # moved, not ended: nothing offline on a, no unavailable presence to bob
        self.assertTrue(old.ended and old.moved)
        self.assertIsNone(self.a.server.sessions.get(parse_jid(ALICE)))
        self.assertEqual([e for e in bob.elements() if e.name == "presence"], [])
        self.assertEqual(await self.a.storage.offline.count("alice", "localhost"), 0)
        session = self.b.server.sessions.get(parse_jid(ALICE))
        self.assertIs(h.stream.session, session)
        self.assertFalse(session.hibernating)
        h.feed(f"<a xmlns='{SM}' h='2'/><r xmlns='{SM}'/>")
        (ack,) = h.elements()
        self.assertEqual((ack.name, ack["h"]), ("a", "0"))
        # a message from bob on a, after the move: it reaches her on b (the wire has no
        # routing between the nodes; b's own users reach her as any local session)
        carol = await self.client(self.b, "bob", "tablet")
        carol.feed(f"<message to='{ALICE}' type='chat' id='m4'><body>four</body></message>")
        self.assertEqual(bodies(h.elements()), ["four"])

    async def test_the_success_waits_for_the_cluster_and_only_the_cluster(self):
        old, previd, _bob = await self.phone_on_a()
        self.unwire_b()
        held = Held(self.wire)
        self.b.server.provide(IRemoteResumption, held)
        h = await self.authenticate(self.b, resume(previd, 1) + BIND)
        self.assertEqual(await self.idle(h), [])  # nothing before the hand-over
        self.assertEqual(len(held.pending), 1)
        self.assertIsNone(h.stream.account)  # not authenticated while it waits
        self.assertFalse(old.ended)
        held.answer()
        received = h.elements()  # in the same turn as the hand-over
        self.assert_resumed(received, previd)
        self.assertEqual(bodies(received[1:]), ["two", "three"])
        self.assertTrue(old.moved)

    async def test_a_stream_that_ends_while_waiting_resumes_nothing(self):
        old, previd, _bob = await self.phone_on_a()
        self.unwire_b()
        held = Held(self.wire)
        self.b.server.provide(IRemoteResumption, held)
        impatient = await self.authenticate(self.b, resume(previd, 1) + BIND)
        slow = await self.authenticate(self.b, resume(previd, 1) + BIND)
        await self.idle(slow)
        self.assertEqual(len(held.pending), 2)
        impatient.feed(f"<abort xmlns='{SASL2}'/>")  # the client must wait for the answer
        self.assertEqual(impatient.stream_error(), "policy-violation")
        self.b.clock.advance(self.b.server.config.c2s.auth_timeout)
        self.assertEqual(slow.stream_error(), "connection-timeout")
        self.assertFalse(impatient.stream.disconnected or slow.stream.disconnected)
        held.answer()  # both closing, neither gone yet: the session is not attached to one
        held.answer()
        self.assertEqual(impatient.elements() + slow.elements(), [])
        self.assertIsNone(impatient.stream.account)
        self.assertTrue(old.moved)
        session = self.b.server.sessions.get(parse_jid(ALICE))
        self.assertTrue(session.hibernating)  # on b now, resumable there
        again = await self.authenticate(self.b, resume(previd, 1) + BIND)
        received = await self.answer(again)
        self.assert_resumed(received, previd)
        self.assertEqual(held.pending, [])

    async def test_a_wait_that_ends_unanswered_fails_and_the_client_binds(self):
        old, previd, _bob = await self.phone_on_a()
        self.unwire_b()
        held = Held(self.wire)
        self.b.server.provide(IRemoteResumption, held)
        h = await self.authenticate(self.b, resume(previd, 1) + BIND)
        self.assertEqual(await self.idle(h), [])
        held.time_out()
        self.assert_failed_and_bound(h.elements(), h)
        self.assertTrue(old.hibernating and not old.ended)  # still on a

    async def test_a_client_gone_while_waiting_leaves_the_session_resumable_here(self):
        old, previd, _bob = await self.phone_on_a()
        self.unwire_b()
        held = Held(self.wire)
        self.b.server.provide(IRemoteResumption, held)
        h = await self.authenticate(self.b, resume(previd, 1) + BIND)
        await self.idle(h)
        h.stream.connectionLost(None)
        held.answer()  # the hand-over comes all the same: it hibernates on b
        self.assertTrue(old.moved)
        session = self.b.server.sessions.get(parse_jid(ALICE))
        self.assertTrue(session.hibernating)
        again = await self.authenticate(self.b, resume(previd, 1) + BIND)
        received = await self.answer(again)
        self.assert_resumed(received, previd)
        self.assertEqual(bodies(received[1:]), ["two", "three"])
        self.assertEqual(held.pending, [])  # found here: the cluster was not asked again

    async def test_another_accounts_id_and_an_unknown_one_fail_alike_and_bind(self):
        _old, previd, _bob = await self.phone_on_a()
        for id, user in ((previd, "mallory"), ("no-such-id", "alice")):
            h = await self.authenticate(self.b, resume(id, 0) + BIND, user)
            received = await self.answer(h)
            self.assert_failed_and_bound(received, h)
            self.assertEqual(h.stream.session.jid.user, user)
            self.assertFalse(h.closed)
        self.assertEqual(self.wire.asked, 2)
        self.assertTrue(self.a.server.sessions.get(parse_jid(ALICE)).hibernating)

    async def test_an_h_too_high_ends_the_new_stream_after_the_hand_over(self):
        _old, previd, _bob = await self.phone_on_a()
        h = await self.authenticate(self.b, resume(previd, 9) + BIND)
        (error,) = await self.answer(h)
        self.assertEqual((error.name, next(error.elements()).name),
                         ("error", "undefined-condition"))
        self.assertTrue(self.b.server.sessions.get(parse_jid(ALICE)).hibernating)

    async def test_a_session_held_here_is_not_asked_of_the_cluster(self):
        h = await self.authenticate(self.b, f"<bind xmlns='{BIND2}'><tag>Phone</tag>"
                                            f"<enable xmlns='{SM}' resume='true'/></bind>")
        (success, *_) = await self.answer(h)
        previd = child(child(success, BIND2, "bound"), SM, "enabled")["id"]
        jid = h.stream.session.jid
        h.stream.connectionLost(None)
        again = await self.authenticate(self.b, resume(previd, 0) + BIND)
        success = (await self.answer(again))[0]
        self.assertEqual(child(success, SM, "resumed")["previd"], previd)
        self.assertIs(again.stream.session.jid, jid)
        self.assertEqual(self.wire.asked, 0)
        self.assertIn(previd, self.b.server.query(IResumableSessions).by_id)
