"""The client stream state machine on in-memory transports: headers, SASL, bind, routing."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.helpers import ServerFixture, StreamHarness
from xmppd import events

PASSWORD = "pencil and paper"


class StreamTestCase(TestCase):
    c2s = "require_encryption = false\n"

    async def asyncSetUp(self):
        self.fixture = ServerFixture(self.mktemp_path(), self.c2s)
        await self.fixture.start()
        await self.fixture.add_user("alice", PASSWORD)
        self.server = self.fixture.server

    def setUp(self):
        from twisted.internet import defer

        d = defer.ensureDeferred(self.asyncSetUp())
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))
        return d

    def mktemp_path(self):
        from pathlib import Path

        path = Path(self.mktemp())
        path.mkdir(parents=True)
        return path

    def harness(self) -> StreamHarness:
        return StreamHarness(self.server)


class HeaderTests(StreamTestCase):
    def assert_header_error(self, header: str, condition: str) -> None:
        h = self.harness()
        h.feed(header)
        self.assertEqual(h.stream_error(), condition)
        self.assertTrue(h.closed)

    def test_unknown_host(self):
        h = self.harness()
        h.header(to="elsewhere.example")
        self.assertEqual(h.stream_error(), "host-unknown")

    def test_missing_to(self):
        self.assert_header_error(
            "<stream:stream version='1.0' xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams'>", "host-unknown")

    def test_wrong_stream_namespace(self):
        self.assert_header_error(
            "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
            "xmlns:stream='urn:wrong'>", "invalid-namespace")

    def test_wrong_content_namespace(self):
        self.assert_header_error(
            "<stream:stream to='localhost' version='1.0' xmlns='jabber:server' "
            "xmlns:stream='http://etherx.jabber.org/streams'>", "invalid-namespace")

    def test_missing_or_wrong_version(self):
        for version in ("", "version='0.9'", "version='one'"):  # 2.0: test_hostile_conformance
            self.assert_header_error(
                f"<stream:stream to='localhost' {version} xmlns='jabber:client' "
                "xmlns:stream='http://etherx.jabber.org/streams'>", "unsupported-version")

    def test_features_offer_scram_but_no_plain_without_tls(self):
        h = self.harness()
        h.header()
        kinds = h.events()
        self.assertEqual(kinds[0][0], "header")
        self.assertEqual(kinds[0][1].attributes["from"], "localhost")
        features = kinds[1][1]
        mechanisms = [str(m) for m in features.firstChildElement().elements()]
        self.assertIn("SCRAM-SHA-256", mechanisms)
        self.assertNotIn("PLAIN", mechanisms)
        self.assertFalse([m for m in mechanisms if m.endswith("-PLUS")])

    def test_stanza_before_auth_is_not_authorized(self):
        h = self.harness()
        h.header()
        h.events()
        h.feed("<message to='alice@localhost'><body>hi</body></message>")
        self.assertEqual(h.stream_error(), "not-authorized")

    def test_restricted_xml_and_oversized_stanza(self):
        for attack, condition in (("<!-- hello -->", "restricted-xml"),
                                  ("<?pi data?>", "restricted-xml"),
                                  ("<message><body>" + "x" * 300_000, "policy-violation"),
                                  ("<message></iq>", "not-well-formed")):
            h = self.harness()
            h.header()
            h.events()
            h.feed(attack)
            self.assertEqual(h.stream_error(), condition, attack[:20])
            self.assertTrue(h.closed)

    def test_auth_timeout_closes_an_idle_stream(self):
        h = self.harness()
        h.header()
        h.events()
        self.fixture.clock.advance(self.server.config.c2s.auth_timeout + 1)
        self.assertEqual(h.stream_error(), "connection-timeout")

    def test_unknown_mechanism_and_retry_limit(self):
        h = self.harness()
        h.header()
        h.events()
        for _ in range(3):
            h.feed("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NOPE'>=</auth>")
        events_ = h.events()
        failures = [v for k, v in events_ if k == "element" and v.name == "failure"]
        self.assertEqual(next(failures[0].elements()).name, "invalid-mechanism")
        errors = [v for k, v in events_ if k == "element" and v.name == "error"]
        self.assertEqual(next(errors[0].elements()).name, "policy-violation")


class TLSRequiredTests(StreamTestCase):
    c2s = ""  # the default: encryption required

    def test_no_mechanisms_before_tls_and_auth_refused(self):
        h = self.harness()
        h.header()
        features = h.elements()[0]
        names = [child.name for child in features.elements()]
        self.assertEqual(names, [])  # no TLS context in memory, and no SASL in the clear
        h.feed("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>")
        (failure,) = h.elements()
        self.assertEqual(next(failure.elements()).name, "encryption-required")


class SessionTests(StreamTestCase):
    async def test_login_bind_and_ping(self):
        bound = []
        self.server.events.on(events.SESSION_BOUND, bound.append)
        h = self.harness()
        jid = await h.login("alice", PASSWORD, "laptop")
        self.assertEqual(jid, "alice@localhost/laptop")
        self.assertEqual([s.jid.full() for s in bound], [jid])
        h.feed("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        (pong,) = h.elements()
        self.assertEqual((pong["type"], pong["id"], pong["to"]), ("result", "p1", jid))

    async def test_ping_without_to_and_to_own_bare_jid(self):
        """RFC 6120 §10.3.3: the server answers for the account (profanity's keepalive)."""
        h = self.harness()
        jid = await h.login("alice", PASSWORD, "laptop")
        h.feed("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
               "<iq type='get' id='p2' to='alice@localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        pongs = h.elements()
        self.assertEqual([(p["type"], p["id"], p["to"]) for p in pongs],
                         [("result", "p1", jid), ("result", "p2", jid)])
        self.assertEqual(pongs[1]["from"], "alice@localhost")

    async def test_ping_to_another_account_is_not_answered_for_it(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("<iq type='get' id='p1' to='bob@localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        (reply,) = h.elements()
        error = [c for c in reply.elements() if c.name == "error"][0]
        self.assertEqual((reply["type"], next(error.elements()).name),
                         ("error", "service-unavailable"))

    async def test_disco_without_to_describes_the_account(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("<iq type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/>"
               "</iq><iq type='get' id='d2' to='localhost'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        account, host = h.elements()
        identities = [(i["category"], i["type"]) for i in account.firstChildElement().elements()
                      if i.name == "identity"]
        self.assertEqual(identities, [("account", "registered"), ("pubsub", "pep")])
        identities = [(i["category"], i["type"]) for i in host.firstChildElement().elements()
                      if i.name == "identity"]
        self.assertEqual(identities, [("server", "im")])

    async def test_roster_without_to_still_answered(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        (result,) = [await h.wait_for_element("iq")]
        self.assertEqual((result["type"], result.firstChildElement().name), ("result", "query"))

    async def test_wrong_password_is_not_authorized(self):
        h = self.harness()
        with self.assertRaises(AssertionError):
            await h.login("alice", "wrong")
        self.assertIsNone(self.server.sessions.get(
            __import__("xmppd.jid").jid.parse_jid("alice@localhost/test")))

    async def test_unknown_iq_to_server_is_service_unavailable(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("<iq type='get' id='q1' to='localhost'><query xmlns='urn:example:none'/></iq>")
        (reply,) = h.elements()
        self.assertEqual(reply["type"], "error")
        error = [c for c in reply.elements() if c.name == "error"][0]
        self.assertEqual(next(error.elements()).name, "service-unavailable")

    async def test_version_and_session_element(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
               "<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
        session, version = h.elements()
        self.assertEqual(session["type"], "result")
        name = next(version.firstChildElement().elements())
        self.assertEqual(str(name), "xmppd")

    async def test_spoofed_from_ends_the_stream_with_invalid_from(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("<message from='bob@localhost/x' to='alice@localhost/test'>"
               "<body>hi</body></message>")
        self.assertEqual(h.stream_error(), "invalid-from")
        self.assertTrue(h.closed)

    async def test_own_bare_from_is_stamped_with_the_full_jid(self):
        h = self.harness()
        jid = await h.login("alice", PASSWORD)
        h.feed(f"<message from='alice@localhost' to='{jid}'><body>note</body></message>")
        (message,) = h.elements()
        self.assertEqual(message["from"], jid)

    async def test_resource_conflict_replaces_the_old_session(self):
        first, second = self.harness(), self.harness()
        await first.login("alice", PASSWORD, "same")
        await second.login("alice", PASSWORD, "same")
        self.assertEqual(first.stream_error(), "conflict")
        self.assertEqual(len(self.server.sessions), 1)

    async def test_server_chosen_resource(self):
        h = self.harness()
        jid = await h.login("alice", PASSWORD, resource=None)
        self.assertTrue(jid.startswith("alice@localhost/"))
        self.assertGreater(len(jid), len("alice@localhost/"))

    async def test_bad_resource_is_bad_request_and_the_stream_goes_on(self):
        h = self.harness()
        with self.assertRaises(AssertionError):  # login() expects a result
            await h.login("alice", PASSWORD, resource="\u0085nel")
        h.feed("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<resource>fine</resource></bind></iq>")
        (result,) = h.elements()
        self.assertEqual(result["type"], "result")

    async def test_whitespace_keepalives_are_harmless(self):
        h = self.harness()
        jid = await h.login("alice", PASSWORD)
        h.feed("   \n\t  ")
        h.feed(f"<message to='{jid}'><body>still here</body></message>\n \n")
        (message,) = h.elements()
        self.assertEqual(str(message.body), "still here")
        self.assertFalse(h.closed)

    async def test_malformed_recipient_is_jid_malformed(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("<message to='a@b@c/' id='m1'><body>x</body></message>"
               "<iq type='get' id='i1' to='@localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        replies = h.elements()
        self.assertEqual([r["type"] for r in replies], ["error", "error"])
        for reply in replies:
            error = [c for c in reply.elements() if c.name == "error"][0]
            self.assertEqual(next(error.elements()).name, "jid-malformed")
        self.assertFalse(h.closed)

    async def test_iq_without_type_is_bad_request(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("<iq id='t1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        (reply,) = h.elements()
        error = [c for c in reply.elements() if c.name == "error"][0]
        self.assertEqual(next(error.elements()).name, "bad-request")

    async def test_unknown_top_level_element_is_unsupported_stanza_type(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("<nonsense/>")
        self.assertEqual(h.stream_error(), "unsupported-stanza-type")

    async def test_polite_close_ends_the_session(self):
        closed = []
        self.server.events.on(events.SESSION_CLOSED, lambda s, polite: closed.append(polite))
        h = self.harness()
        await h.login("alice", PASSWORD)
        h.feed("</stream:stream>")
        self.assertEqual(h.events()[-1][0], "end")
        self.assertTrue(h.closed)
        h.stream.connectionLost(None)
        self.assertEqual(closed, [True])
        self.assertEqual(len(self.server.sessions), 0)


class RosterFeatureTests(StreamTestCase):
    c2s = 'require_encryption = false\n[plugins]\nenabled = ["roster"]\n'

    async def test_roster_versioning_is_a_post_auth_stream_feature(self):
        h = self.harness()
        await h.login("alice", PASSWORD)
        offered = [(c.uri, c.name) for c in h.bind_features.elements()]
        self.assertIn(("urn:xmpp:features:rosterver", "ver"), offered)
        h2 = self.harness()
        h2.header()
        pre_auth = [c.name for c in h2.elements()[0].elements()]
        self.assertNotIn("ver", pre_auth)


class OrderingTests(StreamTestCase):
    async def test_stream_waits_for_a_stanzas_work_before_the_next(self):
        """A handler's Deferred holds back the client's later stanzas (and pauses reading)."""
        from twisted.internet import defer

        pending = defer.Deferred()
        self.server.dispatcher.add_stanza("message", "chat", "outgoing",
                                          lambda stanza, origin: pending)
        h = self.harness()
        jid = await h.login("alice", PASSWORD)
        h.feed(f"<message type='chat' to='{jid}'><body>1</body></message>"
               "<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual(h.elements(), [])
        self.assertEqual(h.transport.producerState, "paused")
        pending.callback(True)
        (pong,) = h.elements()
        self.assertEqual(pong["id"], "after")
        self.assertEqual(h.transport.producerState, "producing")


class RenameTests(StreamTestCase):
    c2s = 'require_encryption = false\nresource_conflict = "rename"\n'

    async def test_resource_conflict_renames_the_new_session(self):
        first, second = self.harness(), self.harness()
        one = await first.login("alice", PASSWORD, "same")
        two = await second.login("alice", PASSWORD, "same")
        self.assertNotEqual(one, two)
        self.assertTrue(two.startswith("alice@localhost/same."))
        self.assertIsNone(first.stream_error())
