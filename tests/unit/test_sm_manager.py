"""XEP-0198 on real client streams, with the smacks plugin loaded as configured: enable,
acks both ways, hibernation and resumption, and no message lost when a session ends."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.helpers import ServerFixture
from tests.unit.test_c2s_stream import PASSWORD, StreamTestCase
from xmppd import ns
from xmppd.interfaces import IArchiveWrites
from xmppd.jid import parse_jid
from xmppd.plugins.smacks import smacks
from xmppd.registry import PluginError
from xmppd.sm.manager import LIVE_FACTOR

SM = ns.SM
MESSAGE = "<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>"
LOST = "alice@localhost/laptop"


def plugins(section: str = "") -> str:
    return ("require_encryption = false\n[plugins]\n"
            'enabled = ["offline", "smacks"]\n'
            f"[plugins.smacks]\n{section}\n")


def sm(elements, name: str | None = None) -> list:
    return [e for e in elements if e.uri == SM and (name is None or e.name == name)]


def bodies(elements) -> list[str]:
    return [str(next(c for c in e.elements() if c.name == "body"))
            for e in elements if e.name == "message"]


def condition(element) -> str:
    return next(c.name for c in element.elements() if c.uri == ns.STANZA_ERRORS)


@implementer(IArchiveWrites)
class Archive:
    """An archive whose writes the test finishes: ``settled`` answers the next of
    ``waits`` (a Deferred, or None when nothing waits)."""

    def __init__(self) -> None:
        self.waits: list = []
        self.asked: list[str] = []

    def settled(self, account: str):
        self.asked.append(account)
        return self.waits.pop(0) if self.waits else None


class SmTestCase(StreamTestCase):
    c2s = plugins("resumption_timeout = 300\nrequest_after = 3\nrequest_delay = 10")

    async def asyncSetUp(self):
        await super().asyncSetUp()
        await self.fixture.add_user("bob", PASSWORD)
        self.bob = await self.online("bob", "phone")

    @property
    def clock(self):
        return self.fixture.clock

    async def online(self, user: str, resource: str):
        """A bound session that counts as available (the presence plugin's part, which
        these tests leave out)."""
        h = self.harness()
        await h.login(user, PASSWORD, resource)
        h.stream.session.available = True
        return h

    async def enabled(self, resource: str = "laptop", resume: bool = True):
        h = await self.online("alice", resource)
        h.feed(f"<enable xmlns='{SM}' resume='{'true' if resume else 'false'}'/>")
        (enabled,) = h.elements()
        self.assertEqual(enabled.name, "enabled")
        return h, enabled.getAttribute("id")

    def send_to_alice(self, *bodies_: str, to: str = LOST) -> None:
        for n, body in enumerate(bodies_):
            self.bob.feed(MESSAGE.format(to=to, id=f"m{n}", body=body))
        self.assertEqual(self.bob.elements(), [])  # no error back

    async def offline_bodies(self, count: int) -> list[str]:
        """What offline storage keeps for alice, once ``count`` messages are there (the
        writes go through the database thread)."""
        for _ in range(500):
            if await self.fixture.storage.offline.count("alice", "localhost") >= count:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        rows = await self.fixture.storage.offline.fetch("alice", "localhost")
        return [xml.split("<body>")[1].split("</body>")[0] for _id, xml, _stamp in rows]


class EnableTests(SmTestCase):
    async def test_the_feature_is_offered_after_authentication(self):
        before = self.harness()
        before.header()
        features = before.elements()[0]
        self.assertEqual(sm(features.elements()), [])
        h = self.harness()
        await h.authenticate("alice", PASSWORD)
        self.assertEqual([e.name for e in sm(h.bind_features.elements())], ["sm"])

    async def test_enable_before_bind_fails_and_the_stream_goes_on(self):
        h = self.harness()
        await h.authenticate("alice", PASSWORD)
        h.feed(f"<enable xmlns='{SM}'/>")
        (answer,) = h.elements()
        self.assertEqual((answer.name, condition(answer)), ("failed", "unexpected-request"))
        self.assertFalse(h.closed)
        h.feed("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        self.assertEqual(h.elements()[0]["type"], "result")

    async def test_enable_with_resume_gives_an_unguessable_id_and_our_max(self):
        h, sm_id = await self.enabled()
        _, other = await self.enabled("desk")
        self.assertNotEqual(sm_id, other)
        self.assertGreaterEqual(len(sm_id), 32)
        h2 = await self.online("alice", "tablet")
        h2.feed(f"<enable xmlns='{SM}' resume='1' max='60'/>")
        (enabled,) = h2.elements()
        self.assertEqual((enabled["resume"], enabled["max"]), ("true", "60"))

    async def test_enable_twice_fails(self):
        h, _ = await self.enabled()
        h.feed(f"<enable xmlns='{SM}'/>")
        (answer,) = h.elements()
        self.assertEqual((answer.name, condition(answer)), ("failed", "unexpected-request"))
        self.assertFalse(h.closed)

    async def test_without_resume_no_id_and_a_lost_connection_ends_the_session(self):
        h = await self.online("alice", "laptop")
        h.feed(f"<enable xmlns='{SM}'/>")
        (enabled,) = h.elements()
        self.assertEqual(dict(enabled.attributes), {})
        session = h.stream.session
        h.stream.connectionLost(None)
        self.assertTrue(session.ended)
        self.assertIsNone(self.server.sessions.get(parse_jid(LOST)))

    async def test_r_and_a_before_enable_are_stream_errors(self):
        h = await self.online("alice", "laptop")
        h.feed(f"<r xmlns='{SM}'/>")
        self.assertEqual(h.stream_error(), "unsupported-stanza-type")


class AckTests(SmTestCase):
    async def test_r_is_answered_with_the_stanzas_handled_since_enable(self):
        h, _ = await self.enabled()
        h.feed(f"<r xmlns='{SM}'/>")
        self.assertEqual(sm(h.elements(), "a")[0]["h"], "0")
        for n in range(3):
            h.feed(MESSAGE.format(to="bob@localhost/phone", id=f"x{n}", body="hi"))
        h.feed(f"<iq type='get' id='p'><query xmlns='jabber:iq:roster'/></iq><r xmlns='{SM}'/>")
        self.assertEqual(sm(h.elements(), "a")[0]["h"], "4")

    async def test_answers_wait_for_the_archive_in_order(self):
        """Each <r/> waits for the archive's write of what came before it (IArchiveWrites:
        the message archive's group commit); an answer that need not wait still goes out
        behind the earlier ones, so h never goes back, and every <r/> gets its own <a/>."""
        archive = Archive()
        self.fixture.server.provide(IArchiveWrites, archive)
        h, _ = await self.enabled()
        first, third = defer.Deferred(), defer.Deferred()
        archive.waits = [first, None, third]
        for n in range(3):
            h.feed(MESSAGE.format(to="bob@localhost/phone", id=f"x{n}", body="hi"))
            h.feed(f"<r xmlns='{SM}'/>")
        self.assertEqual(archive.asked, ["alice@localhost"] * 3)
        third.callback(None)
        self.assertEqual(sm(h.elements(), "a"), [])  # the first is still on its way
        first.callback(None)
        self.assertEqual([a["h"] for a in sm(h.elements(), "a")], ["1", "2", "3"])
        self.assertNotIn(h.stream.session, self.manager().acks)

    async def test_an_answer_for_a_session_that_ended_is_not_sent(self):
        archive = Archive()
        self.fixture.server.provide(IArchiveWrites, archive)
        h, _ = await self.enabled(resume=False)
        wait = defer.Deferred()
        archive.waits = [wait]
        h.feed(f"<r xmlns='{SM}'/>")
        h.feed("</stream:stream>")
        h.elements()
        wait.callback(None)
        self.assertEqual(sm(h.elements(), "a"), [])

    def manager(self):
        return smacks.manager

    async def test_the_server_asks_once_after_request_after_stanzas(self):
        h, _ = await self.enabled()
        self.send_to_alice("one", "two", "three", "four")
        self.clock.advance(0)
        received = h.elements()
        self.assertEqual(bodies(received), ["one", "two", "three", "four"])
        self.assertEqual(len(sm(received, "r")), 1)  # coalesced, after what was written
        self.assertEqual(received[-1].name, "r")
        self.send_to_alice("five")
        self.clock.advance(30)
        self.assertEqual(sm(h.elements(), "r"), [])  # one outstanding <r/> at a time
        h.feed(f"<a xmlns='{SM}' h='5'/>")
        self.clock.advance(30)
        self.assertEqual(sm(h.elements(), "r"), [])  # nothing left to ask about

    async def test_the_server_asks_after_request_delay_for_fewer(self):
        h, _ = await self.enabled()
        self.send_to_alice("one")
        self.clock.advance(9)
        self.assertEqual(sm(h.elements(), "r"), [])
        self.clock.advance(1)
        self.assertEqual(len(sm(h.elements(), "r")), 1)
        h.feed(f"<a xmlns='{SM}' h='0'/>")  # an ack that acknowledges nothing: ask again
        self.clock.advance(10)
        self.assertEqual(len(sm(h.elements(), "r")), 1)

    async def test_h_too_high_ends_the_stream_and_unacked_messages_go_offline(self):
        h, _ = await self.enabled()
        self.send_to_alice("one", "two")
        h.elements()
        h.feed(f"<a xmlns='{SM}' h='1'/><a xmlns='{SM}' h='3'/>")
        (error,) = [e for e in h.elements() if e.name == "error"]
        children = [(c.uri, c.name, dict(c.attributes)) for c in error.elements()]
        self.assertEqual(children[0][1], "undefined-condition")
        self.assertIn((SM, "handled-count-too-high", {"h": "3", "send-count": "2"}), children)
        self.assertTrue(h.closed)
        self.assertEqual(await self.offline_bodies(1), ["two"])

    async def test_a_malformed_h_is_a_stream_error(self):
        h, _ = await self.enabled()
        h.feed(f"<a xmlns='{SM}' h='-1'/>")
        self.assertEqual(h.stream_error(), "bad-format")


class AckTimeoutTests(SmTestCase):
    async def test_an_unanswered_r_drops_the_connection_and_the_session_hibernates(self):
        h, _ = await self.enabled()
        session = h.stream.session
        self.send_to_alice("one", "two", "three")
        self.clock.advance(0)
        self.assertEqual(len(sm(h.elements(), "r")), 1)
        self.clock.advance(59)
        self.assertFalse(h.transport.disconnected)
        self.clock.advance(1)
        self.assertTrue(h.transport.disconnected)  # aborted, as TCP would much later
        h.stream.connectionLost(None)
        self.assertTrue(session.hibernating)
        self.clock.advance(299)
        self.assertFalse(session.ended)  # the resumption timeout counts from the drop

    async def test_an_answer_in_time_keeps_the_connection(self):
        h, _ = await self.enabled()
        self.send_to_alice("one", "two", "three")
        self.clock.advance(0)
        self.clock.advance(30)
        h.feed(f"<a xmlns='{SM}' h='3'/>")
        self.clock.advance(600)
        self.assertFalse(h.transport.disconnected)

    async def test_a_session_without_resumption_is_never_dropped(self):
        h, _ = await self.enabled(resume=False)
        self.send_to_alice("one", "two", "three")
        self.clock.advance(0)
        self.clock.advance(600)
        self.assertEqual(len(sm(h.elements(), "r")), 1)
        self.assertFalse(h.transport.disconnected)


class OverflowTests(SmTestCase):
    c2s = plugins("max_unacked = 2\nrequest_after = 10")

    async def test_a_burst_to_a_connected_client_waits_for_its_ack(self):
        """More than max_unacked in one turn (a login's presence burst) is not an overflow:
        the client could not have acked any of it yet."""
        h, _ = await self.enabled()
        self.send_to_alice(*[f"m{n}" for n in range(2 * LIVE_FACTOR)])
        self.clock.advance(0)
        self.assertFalse(h.transport.disconnected)
        self.assertEqual(len(sm(h.elements(), "r")), 1)
        h.feed(f"<a xmlns='{SM}' h='{2 * LIVE_FACTOR}'/>")
        self.assertFalse(h.transport.disconnected)
        self.send_to_alice("after the ack")
        self.assertFalse(h.transport.disconnected)

    async def test_too_many_unacked_ends_the_session_with_its_messages_offline(self):
        h, _ = await self.enabled()
        sent = [f"m{n}" for n in range(2 * LIVE_FACTOR + 1)]
        self.send_to_alice(*sent)
        self.assertIn("resource-constraint", [next(e.elements()).name
                                              for e in h.elements() if e.name == "error"])
        self.assertIsNone(self.server.sessions.get(parse_jid(LOST)))
        self.assertEqual(await self.offline_bodies(len(sent)), sent)

    async def test_a_hibernating_session_holds_max_unacked(self):
        h, _ = await self.enabled()
        session = h.stream.session
        h.stream.connectionLost(None)
        self.assertTrue(session.hibernating)
        self.send_to_alice("one", "two", "three")
        self.assertTrue(session.ended)
        self.assertEqual(await self.offline_bodies(3), ["one", "two", "three"])


class ResumeTests(SmTestCase):
    async def lost(self):
        """alice/laptop with SM, 'one' and 'two' sent to her, 'one' acked; then gone."""
        h, sm_id = await self.enabled()
        h.feed(MESSAGE.format(to="bob@localhost/phone", id="a1", body="from alice"))
        self.assertEqual(bodies(self.bob.elements()), ["from alice"])
        self.send_to_alice("one", "two")
        h.feed(f"<a xmlns='{SM}' h='1'/>")
        h.stream.connectionLost(None)
        return h.stream.session or self.server.sessions.get(parse_jid(LOST)), sm_id

    async def resume(self, sm_id: str, h: int, user: str = "alice"):
        again = self.harness()
        await again.authenticate(user, PASSWORD)
        again.feed(f"<resume xmlns='{SM}' previd='{sm_id}' h='{h}'/>")
        return again, again.elements()

    async def test_resumed_with_the_unacked_stanzas_once_each_with_delay_stamps(self):
        session, sm_id = await self.lost()
        self.assertTrue(session.hibernating)
        self.clock.advance(60)
        self.send_to_alice("three")  # a hibernated session takes messages, no error back
        again, received = await self.resume(sm_id, 1)
        self.assertEqual((received[0].name, received[0]["h"], received[0]["previd"]),
                         ("resumed", "1", sm_id))
        self.assertEqual(bodies(received), ["two", "three"])
        for message in received[1:3]:
            (delay,) = [c for c in message.elements() if c.uri == ns.DELAY]
            self.assertEqual(delay["from"], "localhost")
        self.assertIs(again.stream.session, session)
        self.clock.advance(300)  # the expiry timer was cancelled
        self.assertFalse(session.ended)
        self.send_to_alice("four")
        self.assertEqual(bodies(again.elements()), ["four"])
        again.feed(f"<a xmlns='{SM}' h='4'/><r xmlns='{SM}'/>")
        self.assertEqual(sm(again.elements(), "a")[0]["h"], "1")  # counts go on
        again.feed("</stream:stream>")
        self.assertEqual(await self.offline_bodies(0), [])  # all acknowledged

    async def test_resume_h_acknowledges_what_the_client_had(self):
        _, sm_id = await self.lost()
        _, received = await self.resume(sm_id, 2)
        self.assertEqual(bodies(received), [])

    async def test_resume_while_the_old_stream_is_open_conflicts_it(self):
        old, sm_id = await self.enabled()
        self.send_to_alice("one")
        old.elements()
        again, received = await self.resume(sm_id, 0)
        self.assertEqual(bodies(received), ["one"])
        self.assertEqual(old.stream_error(), "conflict")
        old.stream.connectionLost(None)
        self.send_to_alice("two")
        self.assertEqual(bodies(again.elements()), ["two"])

    async def test_unknown_ids_and_another_accounts_fail_alike(self):
        _, sm_id = await self.lost()
        await self.fixture.add_user("mallory", PASSWORD)
        for previd, user in (("no-such-id", "alice"), (sm_id, "mallory")):
            again, (answer,) = await self.resume(previd, 0, user)
            self.assertEqual((answer.name, condition(answer), answer.getAttribute("h")),
                             ("failed", "item-not-found", None))
            self.assertFalse(again.closed)  # it may still bind

    async def test_a_resume_without_h_is_a_bad_request(self):
        _, sm_id = await self.lost()
        again = self.harness()
        await again.authenticate("alice", PASSWORD)
        again.feed(f"<resume xmlns='{SM}' previd='{sm_id}'/>")
        (answer,) = again.elements()
        self.assertEqual((answer.name, condition(answer)), ("failed", "bad-request"))

    async def test_resume_after_bind_fails(self):
        _, sm_id = await self.lost()
        h = await self.online("alice", "other")
        h.feed(f"<resume xmlns='{SM}' previd='{sm_id}' h='0'/>")
        (answer,) = h.elements()
        self.assertEqual((answer.name, condition(answer)), ("failed", "unexpected-request"))

    async def test_resume_with_h_too_high_is_a_stream_error(self):
        session, sm_id = await self.lost()
        again, _ = await self.resume(sm_id, 7)
        self.assertTrue(again.closed)
        self.assertTrue(session.hibernating)  # still there for a sane client

    async def test_expiry_ends_the_session_and_keeps_unacked_messages_offline(self):
        session, sm_id = await self.lost()
        self.send_to_alice("three")
        self.clock.advance(299)
        self.assertTrue(session.hibernating)
        self.clock.advance(1)
        self.assertTrue(session.ended)
        self.assertIsNone(self.server.sessions.get(parse_jid(LOST)))
        self.assertEqual(await self.offline_bodies(2), ["two", "three"])
        _, (answer,) = await self.resume(sm_id, 1)
        self.assertEqual((answer.name, condition(answer), answer["h"]),
                         ("failed", "item-not-found", "1"))  # h known: XEP-0198 1.6
        self.send_to_alice("four", to="alice@localhost")
        self.assertEqual(await self.offline_bodies(3), ["two", "three", "four"])

    async def test_the_client_max_shortens_the_wait(self):
        h = await self.online("alice", "laptop")
        h.feed(f"<enable xmlns='{SM}' resume='true' max='30'/>")
        h.elements()
        session = h.stream.session
        h.stream.connectionLost(None)
        self.clock.advance(30)
        self.assertTrue(session.ended)

    async def test_a_polite_close_sends_unacked_messages_offline_and_iqs_back(self):
        h, _ = await self.enabled()
        self.send_to_alice("one")
        self.bob.feed(f"<iq type='get' id='q1' to='{LOST}'><query xmlns='jabber:iq:version'/>"
                      "</iq>")
        h.feed("</stream:stream>")
        (error,) = self.bob.elements()
        self.assertEqual((error.name, error["type"], error["id"]), ("iq", "error", "q1"))
        self.assertEqual(await self.offline_bodies(1), ["one"])

    async def test_unloading_ends_hibernated_sessions(self):
        session, _ = await self.lost()
        smacks.teardown()
        self.assertTrue(session.ended)
        self.assertEqual(await self.offline_bodies(1), ["two"])


class OptionTests(TestCase):
    async def test_bad_options_stop_start_up_naming_the_key(self):
        for section, key in (("resumption_timeout = -1", "resumption_timeout"),
                             ("request_after = 0", "request_after"),
                             ("max_unacked = true", "max_unacked"),
                             ("window = 3", "window")):
            path = Path(self.mktemp())
            path.mkdir(parents=True)
            fixture = ServerFixture(path, plugins(section))
            try:
                with self.assertRaises(PluginError) as raised:
                    await fixture.start()
            finally:
                await fixture.storage.close()
            self.assertIn(f"[plugins.smacks] {key}", str(raised.exception))


class RescueTests(SmTestCase):
    c2s = plugins("request_after = 100") + "[plugins.offline]\nmax_messages = 1\n"

    async def test_what_offline_storage_refuses_goes_back_and_the_rest_is_dropped(self):
        h, _ = await self.enabled()
        self.send_to_alice("kept", "refused")  # the second is over max_messages
        for kind in ("groupchat", "headline", "error"):
            self.bob.feed(f"<message to='{LOST}' type='{kind}' id='{kind}'><body>x</body>"
                          "</message>")
        self.bob.feed(f"<presence to='{LOST}'/>")
        self.bob.elements()
        h.feed("</stream:stream>")
        self.assertEqual(await self.offline_bodies(1), ["kept"])
        for _ in range(500):
            answers = self.bob.elements()
            if answers:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual([(e.name, e["id"], e["type"],
                           condition(next(c for c in e.elements() if c.name == "error")))
                          for e in answers],
                         [("message", "m1", "error", "recipient-unavailable")])


class WithoutOfflineTests(SmTestCase):
    c2s = plugins().replace('"offline", ', "")

    async def test_messages_go_back_to_their_senders(self):
        h, _ = await self.enabled()
        self.send_to_alice("one")
        h.feed("</stream:stream>")
        (error,) = self.bob.elements()
        self.assertEqual((error["id"], error["type"]), ("m0", "error"))
