"""SASL2 (XEP-0388) and Bind 2 (XEP-0386) on the real client stream, in memory.

The stream is "direct TLS" for the harness (``secure``), without channel bindings (there is
no real TLS under a StringTransport): the real-TLS paths are tests/integration/test_sasl2.py.
"""

from __future__ import annotations

import base64

from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from tests.helpers import HEADER, ServerFixture, StreamHarness
from tests.scramclient import ScramClient
from xmppd import ns
from xmppd.sasl2 import BIND2, SASL2
from xmppd.sasl2.completion import bind2_resource
from xmppd.sasl2.elements import parse_authenticate

PASSWORD = "pencil and paper"
AGENT = "d4565fa7-4d72-4749-b3d3-740edbf87770"
PLUGINS = """
[plugins]
enabled = ["disco", "roster", "presence", "offline", "smacks", "carbons", "csi", "fast"]
"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Sasl2Case(TestCase):
    plugins = PLUGINS

    def setUp(self):
        from pathlib import Path

        from twisted.internet import defer

        path = Path(self.mktemp())
        path.mkdir(parents=True)
        self.fixture = ServerFixture(path, "require_encryption = true\n" + self.plugins)
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))

        async def start():
            await self.fixture.start()
            await self.fixture.add_user("alice", PASSWORD)

        return defer.ensureDeferred(start())

    def harness(self, direct_tls: bool = True) -> StreamHarness:
        h = StreamHarness(self.fixture.server, direct_tls=direct_tls)
        h.header()
        self.features = [v for k, v in h.events() if k == "element"][0]
        return h

    def authentication(self):
        for child in self.features.elements():
            if (child.uri, child.name) == (SASL2, "authentication"):
                return child
        return None

    async def scram(self, h: StreamHarness, extra: str = "", agent: str | None = AGENT,
                    password: str = PASSWORD):
        """A SASL2 SCRAM-SHA-256 exchange; the element that ended it."""
        client = ScramClient("sha-256", "alice", password)
        ua = (f"<user-agent id='{agent}'><software>Test</software><device>Phone</device>"
              "</user-agent>") if agent else ""
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
               f"<initial-response>{b64(client.first())}</initial-response>{ua}{extra}"
               "</authenticate>")
        challenge = await h.wait_for_element("challenge")
        self.assertEqual(challenge.uri, SASL2)
        final = client.final(base64.b64decode(str(challenge)))
        h.feed(f"<response xmlns='{SASL2}'>{b64(final)}</response>")
        element = await self.next_element(h)
        if element.name == "success":
            data = child(element, SASL2, "additional-data")
            self.assertEqual(base64.b64decode(str(data)), client.expected_success_data())
        return element

    async def next_element(self, h: StreamHarness):
        from twisted.internet import reactor, task

        for attempt in range(500):
            elements = h.elements()
            if elements:
                self.rest = elements[1:]
                return elements[0]
            await task.deferLater(reactor, 0.01, lambda: None)
            if attempt > 20:  # a failure waits for its back-off (xmppd.limits.auth)
                self.fixture.clock.advance(0.5)
        raise AssertionError("nothing came")


def child(element, uri: str, name: str):
    for found in element.elements(uri, name):
        return found
    return None


class FeatureTests(Sasl2Case):
    def test_offered_after_tls_with_inline_features_of_loaded_plugins(self):
        self.harness()
        authentication = self.authentication()
        self.assertIsNotNone(authentication)
        mechanisms = [str(m) for m in authentication.elements(SASL2, "mechanism")]
        self.assertIn("SCRAM-SHA-256", mechanisms)
        inline = child(authentication, SASL2, "inline")
        bind = child(inline, BIND2, "bind")
        features = sorted(f["var"] for f in child(bind, BIND2, "inline").elements())
        self.assertEqual(features, sorted([ns.CARBONS, ns.CSI, ns.SM]))
        self.assertIsNotNone(child(inline, ns.SM, "sm"))
        fast = child(inline, "urn:xmpp:fast:0", "fast")
        # no channel binding on this transport: only the unbound HT mechanism
        self.assertEqual([str(m) for m in fast.elements()], ["HT-SHA-256-NONE"])

    def test_not_offered_before_tls_and_refused(self):
        h = self.harness(direct_tls=False)
        self.assertIsNone(self.authentication())
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='PLAIN'>"
               "<initial-response>AGFsaWNlAHg=</initial-response></authenticate>")
        (failure,) = h.elements()
        self.assertEqual((failure.uri, failure.name), (SASL2, "failure"))
        self.assertEqual(next(failure.elements()).name, "encryption-required")
        self.assertEqual(next(failure.elements()).uri, ns.SASL)


class MinimalPluginsTests(Sasl2Case):
    plugins = '[plugins]\nenabled = ["disco", "roster", "presence"]\n'

    def test_inline_lists_only_what_is_loaded(self):
        self.harness()
        inline = child(self.authentication(), SASL2, "inline")
        bind = child(inline, BIND2, "bind")
        self.assertEqual(list(child(bind, BIND2, "inline").elements()), [])
        self.assertEqual([(c.uri, c.name) for c in inline.elements()], [(BIND2, "bind")])


class AuthenticateTests(Sasl2Case):
    async def test_scram_then_bind2_with_sm_carbons_csi_inline(self):
        h = self.harness()
        success = await self.scram(h, f"<bind xmlns='{BIND2}'><tag>Phone</tag>"
                                      f"<enable xmlns='{ns.SM}' resume='true'/>"
                                      f"<enable xmlns='{ns.CARBONS}'/>"
                                      f"<inactive xmlns='{ns.CSI}'/></bind>")
        self.assertEqual(success.name, "success", success.toXml())
        identifier = str(child(success, SASL2, "authorization-identifier"))
        self.assertTrue(identifier.startswith("alice@localhost/Phone/"), identifier)
        bound = child(success, BIND2, "bound")
        enabled = child(bound, ns.SM, "enabled")
        self.assertEqual(enabled["resume"], "true")
        # the features follow at once, without a restart: post-bind features
        (features,) = self.rest
        self.assertEqual(features.name, "features")
        session = h.stream.session
        self.assertEqual(session.jid.full(), identifier)
        self.assertEqual(h.stream.mechanism, "SCRAM-SHA-256")
        # the stream is usable at once: an IQ to the server is answered
        h.feed("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        (answer,) = [e for e in await self.wait_all(h) if e.name == "iq"]
        self.assertEqual(answer["type"], "result")

    async def wait_all(self, h):
        from twisted.internet import reactor, task

        for _ in range(200):
            elements = h.elements()
            if elements:
                return elements
            await task.deferLater(reactor, 0.01, lambda: None)
        return []

    async def test_csi_state_inline(self):
        from xmppd.plugins.csi import csi

        h = self.harness()
        success = await self.scram(h, f"<bind xmlns='{BIND2}'><inactive xmlns='{ns.CSI}'/></bind>")
        self.assertEqual(success.name, "success")
        self.assertIn(h.stream.session, csi._states._inactive)  # the session starts inactive
        h.feed(f"<active xmlns='{ns.CSI}'/>")
        self.assertNotIn(h.stream.session, csi._states._inactive)

    async def test_too_many_sessions_leaves_the_stream_unbound(self):
        self.fixture.server.sessions.max_resources = 0
        h = self.harness()
        success = await self.scram(h, f"<bind xmlns='{BIND2}'><tag>Phone</tag></bind>")
        self.assertEqual(success.name, "success")
        self.assertEqual(str(child(success, SASL2, "authorization-identifier")),
                         "alice@localhost")  # bare: not bound
        self.assertIsNone(child(success, BIND2, "bound"))
        self.assertIsNone(h.stream.session)

    async def test_success_without_bind_is_bare_and_legacy_bind_follows(self):
        h = self.harness()
        success = await self.scram(h)
        self.assertEqual(str(child(success, SASL2, "authorization-identifier")),
                         "alice@localhost")
        (features,) = self.rest
        self.assertIsNotNone(child(features, ns.BIND, "bind"))
        h.feed("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<resource>r</resource></bind></iq>")
        (result,) = h.elements()
        self.assertEqual(result["type"], "result")

    async def test_wrong_password_is_not_authorized_and_nothing_is_bound(self):
        h = self.harness()
        failure = await self.scram(h, f"<bind xmlns='{BIND2}'/>", password="wrong")
        self.assertEqual((failure.uri, failure.name), (SASL2, "failure"))
        self.assertEqual(next(failure.elements()).name, "not-authorized")
        self.assertIsNone(h.stream.account)
        self.assertEqual(self.fixture.server.sessions.all(), [])

    def test_unknown_mechanism_is_invalid_mechanism(self):
        h = self.harness()
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='X-NOPE'/>")
        (failure,) = h.elements()
        self.assertEqual(next(failure.elements()).name, "invalid-mechanism")

    def test_missing_mechanism_is_invalid_mechanism(self):
        h = self.harness()
        h.feed(f"<authenticate xmlns='{SASL2}'/>")
        (failure,) = h.elements()
        self.assertEqual(next(failure.elements()).name, "invalid-mechanism")

    def test_bad_base64_is_incorrect_encoding(self):
        h = self.harness()
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
               "<initial-response>!!!</initial-response></authenticate>")
        (failure,) = h.elements()
        self.assertEqual(next(failure.elements()).name, "incorrect-encoding")

    def test_two_initial_responses_are_malformed(self):
        h = self.harness()
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
               "<initial-response>YQ==</initial-response><initial-response>YQ==</initial-response>"
               "</authenticate>")
        (failure,) = h.elements()
        self.assertEqual(next(failure.elements()).name, "malformed-request")

    def test_three_failures_end_the_stream(self):
        h = self.harness()
        for _ in range(3):
            h.feed(f"<authenticate xmlns='{SASL2}' mechanism='X-NOPE'/>")
        self.assertEqual(h.stream_error(), "policy-violation")

    async def test_abort(self):
        h = self.harness()
        client = ScramClient("sha-256", "alice", PASSWORD)
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
               f"<initial-response>{b64(client.first())}</initial-response></authenticate>")
        await h.wait_for_element("challenge")
        h.feed(f"<abort xmlns='{SASL2}'/>")
        (failure,) = h.elements()
        self.assertEqual((failure.uri, next(failure.elements()).name), (SASL2, "aborted"))
        # and a fresh attempt still works
        success = await self.scram(h)
        self.assertEqual(success.name, "success")

    def test_legacy_response_during_sasl2_is_a_stream_error(self):
        h = self.harness()
        client = ScramClient("sha-256", "alice", PASSWORD)
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
               f"<initial-response>{b64(client.first())}</initial-response></authenticate>")

        async def go():
            await h.wait_for_element("challenge")
            h.feed(f"<response xmlns='{ns.SASL}'>YQ==</response>")
            self.assertEqual(h.stream_error(), "policy-violation")

        from twisted.internet import defer
        return defer.ensureDeferred(go())

    async def test_downgrade_protection_hash_covers_the_sasl2_list(self):
        from xmppd.sasl.scram import downgrade_protection_hash

        h = self.harness()
        mechanisms = [str(m) for m in self.authentication().elements(SASL2, "mechanism")]
        client = ScramClient("sha-256", "alice", PASSWORD)
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
               f"<initial-response>{b64(client.first())}</initial-response></authenticate>")
        challenge = await h.wait_for_element("challenge")
        attributes = dict(a.split("=", 1) for a in base64.b64decode(str(challenge))
                          .decode().split(","))
        self.assertEqual(attributes["h"], downgrade_protection_hash("sha-256", mechanisms, None))


class ClaimedFromTests(Sasl2Case):
    def test_check(self):
        from xmppd.errors import SASLFailure
        from xmppd.sasl2.completion import check_claimed_from

        check_claimed_from(None, "alice@localhost")
        check_claimed_from("Alice@LOCALHOST/x", "alice@localhost")
        check_claimed_from("bob@localhost", None)  # no authorization identity: nothing to check
        for claimed in ("bob@localhost", "not a jid@@"):
            with self.assertRaises(SASLFailure) as raised:
                check_claimed_from(claimed, "alice@localhost")
            self.assertEqual(raised.exception.condition, "invalid-authzid")

    async def test_authzid_must_match_the_stream_from(self):
        for claimed, expected in (("alice@localhost", "success"), ("bob@localhost", "failure")):
            h = StreamHarness(self.fixture.server, direct_tls=True)
            h.feed(HEADER.format(to="localhost").replace(" version='1.0' xmlns",
                                                         f" from='{claimed}' version='1.0' xmlns"))
            h.events()
            client = ScramClient("sha-256", "alice", PASSWORD, gs2_header="n,a=alice@localhost,")
            h.feed(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
                   f"<initial-response>{b64(client.first())}</initial-response></authenticate>")
            challenge = await h.wait_for_element("challenge")
            final = client.final(base64.b64decode(str(challenge)))
            h.feed(f"<response xmlns='{SASL2}'>{b64(final)}</response>")
            answer = await self.next_element(h)
            self.assertEqual(answer.name, expected, answer.toXml())
            if expected == "failure":
                self.assertEqual(next(answer.elements()).name, "invalid-authzid")
                self.assertIsNone(h.stream.account)


class ResumeTests(Sasl2Case):
    async def test_inline_resume_after_lost_connection(self):
        h = self.harness()
        success = await self.scram(h, f"<bind xmlns='{BIND2}'><tag>Phone</tag>"
                                      f"<enable xmlns='{ns.SM}' resume='true'/></bind>")
        sm_id = child(child(success, BIND2, "bound"), ns.SM, "enabled")["id"]
        jid = h.stream.session.jid
        h.stream.connectionLost(None)
        # a message arrives while the session hibernates
        other = self.harness()
        await self.scram(other, f"<bind xmlns='{BIND2}'><tag>Laptop</tag></bind>",
                         agent="aaaaaaaa-4d72-4749-b3d3-740edbf87770")
        other.feed(f"<message to='{jid.full()}' type='chat'><body>while away</body></message>")
        h2 = self.harness()
        success = await self.scram(h2, f"<resume xmlns='{ns.SM}' previd='{sm_id}' h='0'/>"
                                       f"<bind xmlns='{BIND2}'><tag>Phone</tag></bind>")
        self.assertEqual(success.name, "success", success.toXml())
        resumed = child(success, ns.SM, "resumed")
        self.assertEqual(resumed["previd"], sm_id)
        self.assertIsNone(child(success, BIND2, "bound"))  # bind ignored once resumed
        self.assertEqual(str(child(success, SASL2, "authorization-identifier")), jid.full())
        names = [e.name for e in self.rest]
        self.assertNotIn("features", names)  # XEP-0198 §7.2: no features after a resume
        self.assertIn("message", names)
        self.assertIs(h2.stream.session.jid, jid)

    async def test_failed_resume_then_binds(self):
        h = self.harness()
        success = await self.scram(h, f"<resume xmlns='{ns.SM}' previd='nope' h='0'/>"
                                      f"<bind xmlns='{BIND2}'><tag>Phone</tag></bind>")
        failed = child(success, ns.SM, "failed")
        self.assertIsNotNone(child(failed, ns.STANZA_ERRORS, "item-not-found"))
        self.assertIsNotNone(child(success, BIND2, "bound"))
        self.assertIsNotNone(h.stream.session)


class ResourceTests(TestCase):
    def test_stable_for_a_device_and_hiding_its_id(self):
        one = bind2_resource("Phone", "alice@localhost", AGENT)
        self.assertEqual(one, bind2_resource("Phone", "alice@localhost", AGENT))
        self.assertTrue(one.startswith("Phone/"))
        self.assertNotIn(AGENT[:8], one)
        self.assertNotEqual(one, bind2_resource("Phone", "bob@localhost", AGENT))
        self.assertNotEqual(bind2_resource(None, "a@b", None), bind2_resource(None, "a@b", None))

    def test_parse_user_agent(self):
        element = domish.Element((SASL2, "authenticate"))
        element["mechanism"] = "PLAIN"
        agent = element.addElement("user-agent")
        agent["id"] = AGENT
        agent.addElement("software", content="Conversations")
        attempt = parse_authenticate(element)
        self.assertEqual((attempt.user_agent.id, attempt.user_agent.software),
                         (AGENT, "Conversations"))
        self.assertIsNone(attempt.initial_response)

