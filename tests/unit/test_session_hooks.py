"""Session hooks on real client streams: claimed top-level elements, and sessions kept past a
lost connection (hibernated), attached to a new stream, or ended for good, once."""

from __future__ import annotations

from twisted.logger import formatEvent, globalLogPublisher
from twisted.words.xish import domish

from tests.unit.test_c2s_stream import PASSWORD, StreamTestCase
from xmppd import events
from xmppd.c2s import filters
from xmppd.c2s.hooks import BEFORE_BIND, BOUND

TEST_NS = "urn:example:sm"  # a stand-in for stream management's namespace
MESSAGE = "<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>"


class HookTestCase(StreamTestCase):
    def setUp(self):
        self.lines: list[str] = []

        def observe(event) -> None:
            if event.get("log_namespace", "").startswith("xmppd"):
                self.lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return super().setUp()

    @property
    def hooks(self):
        return self.server.c2s_hooks

    def session_lines(self) -> list[str]:
        return [line for line in self.lines if line.startswith("session ")]

    def record(self, event) -> list:
        seen: list = []
        self.server.events.on(event, lambda *args: seen.append(args))
        return seen

    @staticmethod
    def bodies(harness) -> list[str]:
        return [str(next(e.elements())) for e in harness.elements() if e.name == "message"]


class ClaimTests(HookTestCase):
    def answer_r(self, element, stream) -> None:
        """Like stream management's <r/>: answered with <a/>, past the session's filters."""
        answer = domish.Element((TEST_NS, "a"))
        answer["h"] = str(len(self.handled))
        stream.send(answer)

    def setUp(self):
        self.handled: list = []
        return super().setUp()

    async def test_a_claimed_element_is_answered_and_the_session_goes_on(self):
        self.hooks.claim(TEST_NS, "r", self.answer_r)
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.stream.session.filters.add(filters.OUT, lambda e, s: self.handled.append(e))
        h.feed(f"<r xmlns='{TEST_NS}'/>")
        (answer,) = h.elements()
        self.assertEqual((answer.uri, answer.name, answer["h"]), (TEST_NS, "a", "0"))
        self.assertFalse(h.closed)
        self.assertEqual(self.handled, [])  # not a stanza: the OUT filters did not see it

    async def test_unclaimed_or_released_elements_are_still_stream_errors(self):
        undo = self.hooks.claim(TEST_NS, "r", self.answer_r)
        undo()
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed(f"<r xmlns='{TEST_NS}'/>")
        self.assertEqual(h.stream_error(), "unsupported-stanza-type")

    async def test_a_claim_holds_only_in_its_states(self):
        self.hooks.claim(TEST_NS, "r", self.answer_r)  # BOUND only, by default
        h = self.harness()
        await h.authenticate("alice", PASSWORD)
        h.feed(f"<r xmlns='{TEST_NS}'/>")
        self.assertEqual(h.stream_error(), "not-authorized")

    async def test_before_bind_claims_reach_an_authenticated_stream(self):
        seen = []
        self.hooks.claim(TEST_NS, "resume", lambda element, stream: seen.append(
            (stream.state, stream.account.full())), states=(BEFORE_BIND,))
        h = self.harness()
        await h.authenticate("alice", PASSWORD)
        h.feed(f"<resume xmlns='{TEST_NS}'/>")
        self.assertEqual(seen, [("bind", "alice@localhost")])
        self.assertFalse(h.closed)

    def test_never_before_authentication(self):
        self.hooks.claim(TEST_NS, "resume", lambda element, stream: None,
                         states=(BEFORE_BIND, BOUND))
        h = self.harness()
        h.header()
        h.feed(f"<resume xmlns='{TEST_NS}'/>")
        self.assertEqual(h.stream_error(), "not-authorized")

    def test_claims_are_exclusive_and_never_stanzas(self):
        self.hooks.claim(TEST_NS, "r", self.answer_r)
        self.assertRaises(ValueError, self.hooks.claim, TEST_NS, "r", self.answer_r)
        self.assertRaises(ValueError, self.hooks.claim, "jabber:client", "message", print)
        self.assertRaises(ValueError, self.hooks.claim, TEST_NS, "x", print, states=("auth",))


class KeptSession:
    """A keeper like stream management's, reduced to what the tests need: keep every lost
    session, queue what it is sent while kept, replay the queue on a resume."""

    def __init__(self, hooks) -> None:
        self.hooks = hooks
        self.queues: dict = {}
        hooks.add_filter_hook(self.install)
        hooks.add_keeper(self.keep)
        hooks.claim(TEST_NS, "resume", self.resume, states=(BEFORE_BIND,))

    def install(self, session) -> None:
        session.filters.add(filters.OUT, self.queue_while_kept, priority=-100)

    def keep(self, session) -> bool:
        self.queues[session] = []
        return True

    def queue_while_kept(self, element, session):
        if session.hibernating:
            self.queues[session].append(element)
            return None
        return element

    def resume(self, element, stream) -> None:
        (session,) = [s for s in self.queues if s.jid.full() == element["previd"]]
        self.hooks.attach(session, stream)
        stream.send(domish.Element((TEST_NS, "resumed")))
        for queued in self.queues.pop(session):
            session.send(queued)


class HibernationTests(HookTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        await self.fixture.add_user("bob", PASSWORD)
        self.bob = self.harness()
        await self.bob.login("bob", PASSWORD, "phone")

    async def lost_alice(self):
        """alice/laptop bound, then her connection drops without a close."""
        alice = self.harness()
        jid = await alice.login("alice", PASSWORD, "laptop")
        session = alice.stream.session
        alice.stream.connectionLost(None)
        return jid, session

    async def test_a_kept_session_stays_routable_and_resumes_on_a_new_stream(self):
        keeper = KeptSession(self.hooks)
        closed, resumed = self.record(events.SESSION_CLOSED), self.record(events.SESSION_RESUMED)
        jid, session = await self.lost_alice()
        self.assertIs(self.server.sessions.get(session.jid), session)
        self.assertTrue(session.hibernating)
        self.fixture.clock.advance(30)

        for n in range(2):
            self.bob.feed(MESSAGE.format(to=jid, id=f"m{n}", body=f"while away {n}"))
        self.assertEqual(self.bob.elements(), [])  # no error: the session took them
        self.assertEqual(len(keeper.queues[session]), 2)

        again = self.harness()
        await again.authenticate("alice", PASSWORD)
        again.feed(f"<resume xmlns='{TEST_NS}' previd='{jid}'/>")
        received = again.elements()
        self.assertEqual(received[0].name, "resumed")
        self.assertEqual([str(next(e.elements())) for e in received[1:]],
                         ["while away 0", "while away 1"])
        self.assertIs(again.stream.session, session)
        self.assertEqual(again.stream.state, "ready")

        self.bob.feed(MESSAGE.format(to=jid, id="m3", body="welcome back"))
        self.assertEqual(self.bodies(again), ["welcome back"])
        again.feed(MESSAGE.format(to="bob@localhost/phone", id="r1", body="thanks"))
        (reply,) = self.bob.elements()
        self.assertEqual(reply["from"], jid)
        self.assertEqual((closed, resumed), ([], [(session,)]))
        self.assertEqual(self.session_lines(), [
            "session alice@localhost/laptop hibernated after 0 s: connection lost",
            "session alice@localhost/laptop resumed from 127.0.0.1:40000 after hibernating "
            "30 s"])

        again.feed("</stream:stream>")  # and now it ends with its new stream, as usual
        self.assertEqual(closed, [(session, True)])
        self.assertIsNone(self.server.sessions.get(session.jid))

    async def test_a_hibernated_session_ended_fires_session_closed_once(self):
        KeptSession(self.hooks)
        closed = self.record(events.SESSION_CLOSED)
        _, session = await self.lost_alice()
        self.fixture.clock.advance(300)
        self.hooks.end(session, "hibernation timed out")
        self.hooks.end(session, "hibernation timed out")
        session.close("conflict")
        self.assertEqual(closed, [(session, False)])
        self.assertIsNone(self.server.sessions.get(session.jid))
        self.assertEqual(self.hooks.hibernating, set())
        self.assertEqual(self.session_lines()[-1],
                         "session alice@localhost/laptop ended after 5 min 0 s: hibernation "
                         "timed out")
        self.assertRaises(ValueError, self.hooks.attach, session, self.harness().stream)

    async def test_a_new_bind_of_the_same_resource_ends_the_hibernated_session(self):
        KeptSession(self.hooks)
        closed = self.record(events.SESSION_CLOSED)
        _, session = await self.lost_alice()
        h = self.harness()
        await h.login("alice", PASSWORD, "laptop")
        self.assertEqual(closed, [(session, False)])
        self.assertIs(self.server.sessions.get(session.jid), h.stream.session)
        self.assertIn("session alice@localhost/laptop ended after 0 s: conflict (replaced by "
                      "a new session)", self.session_lines())

    async def test_shutdown_ends_every_hibernated_session(self):
        KeptSession(self.hooks)
        closed = self.record(events.SESSION_CLOSED)
        _, session = await self.lost_alice()
        self.hooks.end_hibernated()
        self.assertEqual(closed, [(session, False)])

    async def test_only_a_lost_connection_is_offered_to_keepers(self):
        offered = []
        self.hooks.add_keeper(lambda session: offered.append(session) or True)
        closed = self.record(events.SESSION_CLOSED)
        for ending in ("</stream:stream>", "<nonsense/>"):
            h = self.harness()
            await h.login("alice", PASSWORD, "laptop")
            h.feed(ending)
            h.stream.connectionLost(None)
        self.assertEqual((offered, len(closed)), ([], 2))

    async def test_without_a_keeper_a_lost_connection_ends_the_session(self):
        self.hooks.add_keeper(lambda session: False)
        closed = self.record(events.SESSION_CLOSED)
        _, session = await self.lost_alice()
        self.assertEqual(closed, [(session, False)])
        self.assertFalse(session.hibernating)

    async def test_attach_takes_a_session_from_a_stream_still_open(self):
        closed, resumed = self.record(events.SESSION_CLOSED), self.record(events.SESSION_RESUMED)
        old = self.harness()
        jid = await old.login("alice", PASSWORD, "laptop")
        session = old.stream.session
        new = self.harness()
        await new.authenticate("alice", PASSWORD)
        self.hooks.attach(session, new.stream)
        self.assertEqual(old.stream_error(), "conflict")
        old.stream.connectionLost(None)
        self.assertEqual((closed, resumed), ([], [(session,)]))
        self.bob.feed(MESSAGE.format(to=jid, id="m1", body="here"))
        self.assertEqual(self.bodies(new), ["here"])

    async def test_attach_refuses_another_account_or_a_bound_stream(self):
        await self.fixture.add_user("carol", PASSWORD)
        KeptSession(self.hooks)
        _, session = await self.lost_alice()
        carol = self.harness()
        await carol.authenticate("carol", PASSWORD)
        self.assertRaises(ValueError, self.hooks.attach, session, carol.stream)
        self.assertRaises(ValueError, self.hooks.attach, session, self.bob.stream)
        self.assertTrue(session.hibernating)
