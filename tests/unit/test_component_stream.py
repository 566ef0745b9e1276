"""XEP-0114 component streams over a StringTransport on a real Server with a Clock: the
handshake (XEP-0114's own example), the domain served while connected and not after, and
each stream error: host-unknown, not-authorized, conflict, invalid-from,
improper-addressing, unsupported-stanza-type, connection-timeout; and the back-off of failed
handshakes (per address and per domain) on the Clock."""

from __future__ import annotations

import re

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from tests.helpers import ServerFixture
from xmppd.component.stream import ComponentFactory, handshake_digest
from xmppd.jid import JID
from xmppd.stanza import Stanza

DOMAIN = "comp.localhost"
SECRET = "test"
HEADER = ("<stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>")


class Component:
    def __init__(self, factory: ComponentFactory, ip: str = "127.0.0.1") -> None:
        # lenient like TCP: resuming reading after loseConnection does nothing (a handshake
        # that waited for its back-off and failed resumes the reading its wait paused)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", ip, 40000),
                                         lenient=True)
        self.stream = factory.buildProtocol(None)
        self.stream.makeConnection(self.transport)

    def feed(self, text: str) -> None:
        self.stream.dataReceived(text.encode())

    def out(self) -> str:
        return self.transport.value().decode()

    def connect(self, to: str = DOMAIN, secret: str = SECRET) -> str:
        self.feed(HEADER.format(to=to))
        match = re.search(r"id='([^']+)'", self.out())
        if match is None:
            return self.out()
        self.feed(f"<handshake>{handshake_digest(match.group(1), secret)}</handshake>")
        return self.out()


class ComponentStreamTest(TestCase):
    def setUp(self):
        self.fixture = ServerFixture(self.mktemp_path())
        self.server = self.fixture.server
        self.factory = ComponentFactory(self.server, {DOMAIN: SECRET})

    def mktemp_path(self):
        from pathlib import Path

        path = Path(self.mktemp())
        path.mkdir(parents=True)
        return path

    def test_the_xep_example_digest(self):
        self.assertEqual(handshake_digest("3BF96D32", "test"),
                         "aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e")

    def test_accepted_served_and_gone_when_closed(self):
        comp = Component(self.factory)
        out = comp.connect()
        self.assertTrue(out.endswith("<handshake/>"), out)
        self.assertIsNone(re.search(r"<stream:stream[^>]* version=", out), out)
        self.assertIn(DOMAIN, self.server.router.services)
        message = domish.Element((None, "message"))
        message["from"], message["to"] = "alice@localhost/phone", f"bot@{DOMAIN}"
        message.addElement("body", content="hi")
        self.server.router.route(Stanza(message, JID("alice", "localhost", "phone"),
                                        JID("bot", DOMAIN)), None)
        self.assertIn("<body>hi</body>", comp.out())
        comp.stream.connectionLost(None)
        self.assertNotIn(DOMAIN, self.server.router.services)

    def test_wrong_secret_unknown_domain_and_a_host(self):
        for to, secret in ((DOMAIN, "nope"), ("other.localhost", SECRET), ("localhost", SECRET)):
            comp = Component(self.factory)
            out = comp.connect(to, secret)
            condition = "not-authorized" if to == DOMAIN else "host-unknown"
            self.assertIn(f"<{condition} ", out)
            self.assertNotIn("<handshake/>", out)
            self.assertTrue(comp.transport.disconnecting)
        self.assertNotIn(DOMAIN, self.server.router.services)

    def test_a_second_connection_is_a_conflict(self):
        first = Component(self.factory)
        first.connect()
        second = Component(self.factory)
        self.assertIn("<conflict ", second.connect())
        self.assertFalse(first.transport.disconnecting)
        self.assertIn(DOMAIN, self.server.router.services)

    def test_stanzas_before_the_handshake_and_bad_stanzas_after(self):
        comp = Component(self.factory)
        comp.feed(HEADER.format(to=DOMAIN))
        comp.feed(f"<message from='{DOMAIN}' to='alice@localhost'/>")
        self.assertIn("<not-authorized ", comp.out())
        for stanza, condition in (
                ("<message from='alice@localhost' to='bob@localhost'/>", "invalid-from"),
                ("<message from='x.comp.localhost' to='bob@localhost'/>", "invalid-from"),
                ("<message from='a@@b' to='bob@localhost'/>", "invalid-from"),
                (f"<message from='{DOMAIN}'/>", "improper-addressing"),
                ("<message to='bob@localhost'/>", "improper-addressing"),
                ("<foo xmlns='urn:example'/>", "unsupported-stanza-type")):
            comp = Component(self.factory)
            comp.connect()
            comp.feed(stanza)
            self.assertIn(f"<{condition} ", comp.out(), stanza)
            comp.stream.connectionLost(None)

    def test_the_handshake_must_come_in_time(self):
        comp = Component(self.factory)
        comp.feed(HEADER.format(to=DOMAIN))
        self.fixture.clock.advance(self.server.config.c2s.auth_timeout + 1)
        self.assertIn("<connection-timeout ", comp.out())

    # -- the back-off of failed handshakes (xmppd.limits.auth, [limits] auth_delay = 1.0)

    def test_a_handshake_after_failures_is_checked_once_their_back_off_has_passed(self):
        clock = self.fixture.clock
        self.assertIn("<not-authorized ", Component(self.factory).connect(secret="nope"))
        # the 2nd attempt waits 1 s: the stream reads nothing and answers nothing meanwhile,
        # and a stanza pipelined behind the handshake waits for it, in order
        comp = Component(self.factory)
        comp.feed(HEADER.format(to=DOMAIN))
        stream_id = re.search(r"id='([^']+)'", comp.out()).group(1)
        comp.feed(f"<handshake>{handshake_digest(stream_id, 'nope')}</handshake>"
                  f"<message from='{DOMAIN}' to='alice@localhost'/>")
        self.assertEqual(comp.transport.producerState, "paused")
        clock.advance(0.9)
        self.assertNotIn("not-authorized", comp.out())
        clock.advance(0.1)
        self.assertIn("<not-authorized ", comp.out())
        self.assertTrue(comp.transport.disconnecting)
        # two failures in a row: the 3rd attempt, even the right one, waits 2 s after the last
        comp = Component(self.factory)
        comp.connect()
        clock.advance(1.9)
        self.assertNotIn("<handshake/>", comp.out())
        clock.advance(0.1)
        self.assertTrue(comp.out().endswith("<handshake/>"), comp.out())
        self.assertIn(DOMAIN, self.server.router.services)
        comp.stream.connectionLost(None)
        # the success forgot the domain's failures: the next one is checked at once
        self.assertTrue(Component(self.factory, "192.0.2.9").connect().endswith("<handshake/>"))

    def test_failures_count_per_domain_whatever_the_address(self):
        clock = self.fixture.clock
        for n in range(4):  # 0, 1, 2, 4 s: from a new address each time
            comp = Component(self.factory, f"192.0.2.{n}")
            clock.advance(4)
            self.assertIn("<not-authorized ", comp.connect(secret="nope"))
            clock.advance(4)
        self.assertNotIn("<not-authorized ", Component(self.factory, "198.51.100.1")
                         .connect(secret="nope"))  # the 5th waits 8 s after the 4th
        clock.advance(8)
        # an unknown domain counts nothing and waits for nothing
        self.assertIn("<host-unknown ", Component(self.factory, "192.0.2.1")
                      .connect("other.localhost"))

    def test_a_connection_gone_while_its_handshake_waits(self):
        Component(self.factory).connect(secret="nope")
        comp = Component(self.factory)
        comp.connect()  # right, but it waits 1 s for the failure before
        comp.stream.connectionLost(None)
        self.fixture.clock.advance(1)
        self.assertNotIn("<handshake/>", comp.out())
        self.assertNotIn(DOMAIN, self.server.router.services)

    def test_the_wait_stays_within_the_handshake_deadline(self):
        limits = self.server.limits
        limits.handshakes.delay, limits.handshakes.max_delay = 60.0, 600.0
        Component(self.factory).connect(secret="nope")
        Component(self.factory).connect(secret="nope")  # the next would wait 60 s
        comp = Component(self.factory)
        comp.connect()
        self.fixture.clock.advance(self.server.config.c2s.auth_timeout / 2)
        self.assertTrue(comp.out().endswith("<handshake/>"), comp.out())
