"""Session filters on real client streams: counting, transforming, holding then flushing, and
an unfiltered session that pays nothing for the mechanism."""

from __future__ import annotations

from twisted.logger import globalLogPublisher

from tests.unit.test_c2s_stream import PASSWORD, StreamTestCase
from xmppd.c2s import filters
from xmppd.c2s.sessions import ClientSession

MESSAGE = "<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>"
PING = "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"


class FilterTestCase(StreamTestCase):
    async def two_sessions(self):
        """alice/laptop and bob/phone, both bound; returns their harnesses and sessions."""
        await self.fixture.add_user("bob", PASSWORD)
        alice, bob = self.harness(), self.harness()
        await alice.login("alice", PASSWORD, "laptop")
        await bob.login("bob", PASSWORD, "phone")
        return alice, bob, alice.stream.session, bob.stream.session

    @staticmethod
    def bodies(harness) -> list[str]:
        return [str(next(e.elements())) for e in harness.elements() if e.name == "message"]


class CountingTests(FilterTestCase):
    async def test_a_hook_counts_every_stanza_in_and_out_of_each_new_session(self):
        counts: dict[tuple[str, str], int] = {}

        def counter(direction):
            def count(element, session):
                key = (session.jid.resource, direction)
                counts[key] = counts.get(key, 0) + 1
                return element
            return count

        def install(session) -> None:
            session.filters.add(filters.IN, counter("in"))
            session.filters.add(filters.OUT, counter("out"))

        self.server.c2s_hooks.add_filter_hook(install)
        alice, bob, _, _ = await self.two_sessions()
        alice.feed(PING)
        self.assertEqual([e["type"] for e in alice.elements()], ["result"])
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m1", body="one"))
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m2", body="two"))
        self.assertEqual(self.bodies(bob), ["one", "two"])
        self.assertEqual(counts, {("laptop", "in"): 3, ("laptop", "out"): 1,
                                  ("phone", "out"): 2})

    async def test_the_hook_undo_spares_later_sessions(self):
        seen = []
        undo = self.server.c2s_hooks.add_filter_hook(seen.append)
        undo()
        h = self.harness()
        await h.login("alice", PASSWORD, "laptop")
        self.assertEqual(seen, [])


class TransformTests(FilterTestCase):
    async def test_out_filter_replaces_what_the_client_receives(self):
        alice, bob, _, bob_session = await self.two_sessions()

        def shout(element, session):
            copy = element.__class__((element.uri, element.name), attribs=dict(element.attributes))
            copy.addElement("body", content=str(next(element.elements())).upper())
            return copy

        bob_session.filters.add(filters.OUT, shout)
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m1", body="quiet"))
        self.assertEqual(self.bodies(bob), ["QUIET"])

    async def test_in_filter_changes_or_drops_what_the_client_sent(self):
        alice, bob, alice_session, _ = await self.two_sessions()

        def no_secrets(element, session):
            return None if "secret" in str(next(element.elements(), "")) else element

        alice_session.filters.add(filters.IN, no_secrets)
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m1", body="a secret"))
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m2", body="hello"))
        self.assertEqual(self.bodies(bob), ["hello"])
        self.assertEqual(alice.elements(), [])  # dropped quietly, no error

    async def test_a_failing_filter_drops_the_stanza_and_spares_the_sender(self):
        alice, bob, _, bob_session = await self.two_sessions()
        failures = []
        observer = lambda event: failures.append(event) if event.get("log_failure") else None  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

        def broken(element, session):
            raise RuntimeError("bug in a plugin")

        bob_session.filters.add(filters.OUT, broken)
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m1", body="hi"))
        self.assertEqual(self.bodies(bob), [])
        self.assertFalse(alice.closed)
        self.assertEqual(len(failures), 1)
        self.flushLoggedErrors(RuntimeError)


class HoldTests(FilterTestCase):
    async def test_held_stanzas_are_flushed_through_the_filters_after_the_holder(self):
        alice, bob, _, bob_session = await self.two_sessions()
        held: list = []
        counted: list[str] = []

        def hold(element, session):  # like CSI: keep while the client is inactive
            held.append(element)
            return None

        def count(element, session):  # like SM: nearest the wire, counts what goes out
            counted.append(element["id"])
            return element

        bob_session.filters.add(filters.OUT, hold, priority=10)
        bob_session.filters.add(filters.OUT, count, priority=-10)
        for n in range(3):
            alice.feed(MESSAGE.format(to="bob@localhost/phone", id=f"m{n}", body=f"b{n}"))
        self.assertEqual((self.bodies(bob), counted), ([], []))

        for element in held:
            bob_session.filters.pass_on(filters.OUT, element, after=hold)
        self.assertEqual(self.bodies(bob), ["b0", "b1", "b2"])
        self.assertEqual(counted, ["m0", "m1", "m2"])  # counted once, when sent

    async def test_pass_on_needs_a_filter_of_the_session(self):
        _, _, _, bob_session = await self.two_sessions()
        self.assertRaises(ValueError, bob_session.filters.pass_on, filters.OUT, None, print)
        bob_session.filters.add(filters.OUT, lambda element, session: element)
        self.assertRaises(ValueError, bob_session.filters.pass_on, filters.OUT, None, print)


class ZeroCostTests(FilterTestCase):
    async def test_an_unfiltered_session_uses_the_class_send_and_no_inbound(self):
        alice, bob, alice_session, bob_session = await self.two_sessions()
        for session in (alice_session, bob_session):
            self.assertNotIn("send", vars(session))
            self.assertIsNone(session.inbound)
            self.assertIsNone(vars(session).get("_filters"))  # nothing made per session

    async def test_removing_the_last_filter_restores_the_unfiltered_path(self):
        alice, bob, alice_session, bob_session = await self.two_sessions()
        undo_out = bob_session.filters.add(filters.OUT, lambda e, s: e)
        undo_out_2 = bob_session.filters.add(filters.OUT, lambda e, s: e)
        undo_in = alice_session.filters.add(filters.IN, lambda e, s: e)
        self.assertIn("send", vars(bob_session))
        self.assertIsNotNone(alice_session.inbound)
        undo_out()
        self.assertIn("send", vars(bob_session))  # one filter left
        undo_out_2()
        undo_in()
        self.assertNotIn("send", vars(bob_session))
        self.assertIsNone(alice_session.inbound)
        self.assertEqual(bob_session.send.__func__, ClientSession.send)
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m1", body="still works"))
        self.assertEqual(self.bodies(bob), ["still works"])

    async def test_each_undo_removes_its_own_registration_once(self):
        alice, bob, _, bob_session = await self.two_sessions()
        seen = []

        def tag(element, session):
            seen.append(element["id"])
            return element

        first = bob_session.filters.add(filters.OUT, tag)
        second = bob_session.filters.add(filters.OUT, tag)  # the same function twice
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m1", body="one"))
        self.assertEqual(seen, ["m1", "m1"])
        first()
        first()  # a second call changes nothing: the other registration stays
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m2", body="two"))
        self.assertEqual(seen, ["m1", "m1", "m2"])
        second()
        self.assertNotIn("send", vars(bob_session))
        alice.feed(MESSAGE.format(to="bob@localhost/phone", id="m3", body="three"))
        self.assertEqual(seen, ["m1", "m1", "m2"])
        self.assertEqual(self.bodies(bob), ["one", "two", "three"])

    async def test_unknown_direction_is_refused(self):
        _, _, alice_session, _ = await self.two_sessions()
        self.assertRaises(ValueError, alice_session.filters.add, "sideways", lambda e, s: e)
