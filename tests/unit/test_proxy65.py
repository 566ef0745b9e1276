"""The XEP-0065 proxy's parts with in-memory transports and a Clock: the SOCKS5 subset and
its refusals, pairing and the activation errors, the relay (both ways, backpressure, the
bandwidth cap), the timeouts; then the plugin on a real server: disco, streamhost, the
activation errors over XMPP, and its options."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from tests.devices_case import DevicesCase, error_condition
from tests.integration.serverproc import free_port
from tests.sample_examples import sample_section
from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.options import PluginOptions
from xmppd.plugins.proxy65 import NS_BYTESTREAMS, Proxy65, proxy65
from xmppd.proxy65 import ActivationError, Broker, Socks5Factory, stream_hash
from xmppd.proxy65.broker import Limits
from xmppd.proxy65.bucket import TokenBucket
from xmppd.stanza import Stanza

REQUESTER = "alice@localhost/phone"
TARGET = "bob@localhost/pc"
DIGEST = stream_hash("s1", REQUESTER, TARGET)
GREETING = b"\x05\x01\x00"


def connect_request(address: bytes, command: int = 1, kind: int = 3,
                    port: bytes = b"\0\0") -> bytes:
    return bytes((5, command, 0, kind, len(address))) + address + port


def success(address: bytes) -> bytes:
    return bytes((5, 0, 0, 3, len(address))) + address + b"\0\0"


class Parts(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.broker = Broker(self.clock, Limits(timeout=30, max_rate=0, max_transfers=2))
        self.factory = Socks5Factory(self.broker)

    def connection(self, digest: str | None = DIGEST):
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        if digest is not None:
            protocol.dataReceived(GREETING + connect_request(digest.encode()))
            self.assertEqual(transport.value(), b"\x05\x00" + success(digest.encode()))
            transport.clear()
        return protocol

    def lose(self, protocol):
        protocol.connectionLost(None)


class Socks5Tests(Parts):
    def test_handshake_in_pieces(self):
        protocol = self.connection(None)
        for byte in GREETING + connect_request(DIGEST.upper().encode()):
            protocol.dataReceived(bytes((byte,)))
        self.assertEqual(protocol.transport.value(),
                         b"\x05\x00" + success(DIGEST.upper().encode()))
        self.assertEqual(protocol.digest, DIGEST)

    def test_refusals(self):
        for sent, answer in (
                (b"\x05\x01\x02", b"\x05\xff"),  # username/password only
                (GREETING + connect_request(DIGEST.encode(), command=2),
                 b"\x05\x00" + bytes((5, 7, 0, 3, 0, 0, 0))),
                (GREETING + bytes((5, 1, 0, 1, 127, 0, 0, 1, 0, 80)),
                 b"\x05\x00" + bytes((5, 8, 0, 3, 0, 0, 0))),
                (GREETING + connect_request(b"example.org"),
                 b"\x05\x00" + bytes((5, 2, 0, 3, 11)) + b"example.org\0\0"),
                (GREETING + connect_request(DIGEST.encode(), port=b"\0\x50"),
                 b"\x05\x00" + bytes((5, 2, 0, 3, 40)) + DIGEST.encode() + b"\0\0"),
                (b"\x04\x01\x00\x50", b"")):
            protocol = self.connection(None)
            protocol.dataReceived(sent)
            self.assertEqual(protocol.transport.value(), answer, sent)
            self.assertTrue(protocol.transport.disconnecting, sent)
            self.lose(protocol)
        self.assertEqual((self.broker.pending, self.broker.waiting), (set(), {}))

    def test_a_third_connection_is_refused(self):
        self.connection()
        self.connection()
        third = self.connection(None)
        third.dataReceived(GREETING + connect_request(DIGEST.encode()))
        self.assertEqual(third.transport.value()[2:4], b"\x05\x02")
        self.assertTrue(third.transport.disconnecting)

    def test_unactivated_connections_time_out(self):
        target = self.connection()
        silent = self.connection(None)
        self.clock.advance(29)
        self.assertFalse(target.transport.disconnecting or silent.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(target.transport.disconnecting and silent.transport.disconnecting)
        self.lose(target)
        self.lose(silent)
        self.assertEqual((self.broker.pending, self.broker.waiting), (set(), {}))

    def test_too_many_waiting(self):
        self.broker.limits = Limits(max_waiting=1)
        self.connection(None)
        refused = self.connection(None)
        self.assertTrue(refused.transport.disconnected)


class ActivationTests(Parts):
    def test_errors(self):
        def condition(sid="s1", requester=REQUESTER) -> str:
            try:
                self.broker.activate(sid, requester, TARGET, "alice@localhost")
            except ActivationError as error:
                return error.condition
            return "activated"

        self.assertEqual(condition(), "item-not-found")
        target = self.connection()
        self.assertEqual(condition(), "not-allowed")
        self.connection()
        self.assertEqual(condition(requester="mallory@localhost/x"), "item-not-found")
        self.assertEqual(condition(sid="s2"), "item-not-found")
        self.assertEqual(condition(), "activated")
        self.assertEqual(condition(), "item-not-found")  # once
        self.assertFalse(target.transport.disconnecting)
        self.clock.advance(60)  # activated: no timeout
        self.assertFalse(target.transport.disconnecting)

    def test_max_transfers_per_user(self):
        for sid in ("a", "b", "c"):
            digest = stream_hash(sid, REQUESTER, TARGET)
            self.connection(digest)
            self.connection(digest)
        self.broker.activate("a", REQUESTER, TARGET, "alice@localhost")
        relay = self.broker.activate("b", REQUESTER, TARGET, "alice@localhost")
        with self.assertRaises(ActivationError) as caught:
            self.broker.activate("c", REQUESTER, TARGET, "alice@localhost")
        self.assertEqual(caught.exception.condition, "resource-constraint")
        self.lose(next(iter(relay.sides)))
        self.broker.activate("c", REQUESTER, TARGET, "alice@localhost")

    def test_relay_both_ways_and_the_end(self):
        target, requester = self.connection(), self.connection()
        target.dataReceived(b"ignored before activation")
        self.broker.activate("s1", REQUESTER, TARGET, "alice@localhost")
        requester.dataReceived(b"file contents")
        target.dataReceived(b"reply")
        self.assertEqual(target.transport.value(), b"file contents")
        self.assertEqual(requester.transport.value(), b"reply")
        self.lose(requester)
        self.assertTrue(target.transport.disconnecting)
        self.assertEqual(self.broker.active, {})

    def test_backpressure(self):
        target, requester = self.connection(), self.connection()
        self.broker.activate("s1", REQUESTER, TARGET, "alice@localhost")
        # The target's transport is full: it pauses its producer, the requester's reading.
        target.transport.producer.pauseProducing()
        self.assertEqual(requester.transport.producerState, "paused")
        target.transport.producer.resumeProducing()
        self.assertEqual(requester.transport.producerState, "producing")

    def test_bandwidth_cap(self):
        self.broker.limits = Limits(max_rate=1000)
        target, requester = self.connection(), self.connection()
        self.broker.activate("s1", REQUESTER, TARGET, "alice@localhost")
        requester.dataReceived(b"x" * 900)
        self.assertEqual(requester.transport.producerState, "producing")
        requester.dataReceived(b"x" * 600)  # 500 bytes of debt: half a second
        self.assertEqual(requester.transport.producerState, "paused")
        target.transport.producer.pauseProducing()  # and the consumer is full too
        self.clock.advance(0.5)
        self.assertEqual(requester.transport.producerState, "paused")  # still full
        target.transport.producer.resumeProducing()
        self.assertEqual(requester.transport.producerState, "producing")
        self.assertEqual(len(target.transport.value()), 1500)


class BucketTests(SynchronousTestCase):
    def test_rate_and_burst(self):
        clock = Clock()
        bucket = TokenBucket(clock, 100)
        self.assertEqual(bucket.take(100), 0)
        self.assertEqual(bucket.take(50), 0.5)
        clock.advance(10)  # refills to the capacity, not beyond
        self.assertEqual(bucket.take(150), 0.5)


class Proxy65ServerTests(DevicesCase):
    enabled = ("proxy65",)
    users = ("alice", "bob")

    def setUp(self):
        self.port = free_port()
        self.sections = {"proxy65": {"host": "proxy.example.org", "port": self.port,
                                     "bind": "127.0.0.1"}}
        return super().setUp()

    async def test_disco_and_streamhost(self):
        alice = await self.online("alice", "phone")
        info = await self.ask(alice, "get", "<query xmlns='http://jabber.org/protocol/"
                              "disco#info'/>", to="proxy.localhost")
        query = next(info.elements())
        identities = [(i["category"], i["type"]) for i in query.elements()
                      if i.name == "identity"]
        self.assertEqual(identities, [("proxy", "bytestreams")])
        self.assertIn(NS_BYTESTREAMS, [f["var"] for f in query.elements() if f.name == "feature"])
        answer = await self.ask(alice, "get", f"<query xmlns='{NS_BYTESTREAMS}'/>",
                                to="proxy.localhost")
        (streamhost,) = next(answer.elements()).elements()
        self.assertEqual((streamhost["jid"], streamhost["host"]),
                         ("proxy.localhost", "proxy.example.org"))
        self.assertEqual(int(streamhost["port"]), self.port)
        items = await self.ask(alice, "get", "<query xmlns='http://jabber.org/protocol/"
                               "disco#items'/>", to="localhost")
        self.assertIn("proxy.localhost", [i["jid"] for i in next(items.elements()).elements()])

    async def test_reload_listens_again(self):
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        from twisted.internet.protocol import Protocol

        await self.fixture.registry.reload("proxy65")
        connected = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port),
                                          Protocol())
        connected.transport.loseConnection()
        alice = await self.online("alice", "phone")
        answer = await self.ask(alice, "get", f"<query xmlns='{NS_BYTESTREAMS}'/>",
                                to="proxy.localhost")
        self.assertEqual(answer["type"], "result")

    async def test_activation_errors(self):
        alice = await self.online("alice", "phone")
        for payload, condition in (
                (f"<query xmlns='{NS_BYTESTREAMS}' sid='s1'><activate>bob@localhost/pc"
                 "</activate></query>", "item-not-found"),
                (f"<query xmlns='{NS_BYTESTREAMS}'><activate>bob@localhost/pc</activate>"
                 "</query>", "bad-request"),
                (f"<query xmlns='{NS_BYTESTREAMS}' sid='s1'/>", "bad-request"),
                (f"<query xmlns='{NS_BYTESTREAMS}' sid='s1'><activate>@@</activate></query>",
                 "jid-malformed"),
                (f"<query xmlns='{NS_BYTESTREAMS}' sid='s1' mode='udp'><activate>b@localhost"
                 "</activate></query>", "feature-not-implemented")):
            answer = await self.ask(alice, "set", payload, to="proxy.localhost")
            self.assertEqual(error_condition(answer), condition, payload)


    async def test_only_local_accounts(self):
        plugin = proxy65  # the instance the server loaded
        for sender in ("mallory@elsewhere.example/x", "elsewhere.example", "localhost"):
            stanza = Stanza(domish.Element((None, "iq")), parse_jid(sender),
                            parse_jid("proxy.localhost"))
            for handler in (plugin.on_streamhost, plugin.on_activate):
                with self.assertRaises(StanzaError) as caught:
                    handler(stanza, None)
                self.assertEqual(caught.exception.condition, "forbidden")


class Proxy65OptionTests(SynchronousTestCase):
    def configure(self, **section):
        return Proxy65().configure(PluginOptions("proxy65", section))

    def test_the_sample_config_example(self):
        self.configure(**sample_section("proxy65"))

    def test_defaults(self):
        settings = self.configure(host="203.0.113.5")
        self.assertEqual((settings.domain, settings.port, settings.bind), ("proxy", 7777,
                                                                          "0.0.0.0"))
        self.assertEqual((settings.limits.timeout, settings.limits.max_rate,
                          settings.limits.max_transfers, settings.limits.max_waiting_per_ip),
                         (60.0, 10 * 1024 * 1024, 5, 10))
        self.assertEqual(self.configure(host="h", max_waiting_per_ip=2).limits
                         .max_waiting_per_ip, 2)

    def test_bad_values_name_the_key(self):
        for section, key in (({}, "host"), ({"host": "a b"}, "host"),
                             ({"host": "h", "port": 70000}, "port"),
                             ({"host": "h", "timeout": 0}, "timeout"),
                             ({"host": "h", "max_rate": -1}, "max_rate"),
                             ({"host": "h", "max_transfers": 0}, "max_transfers"),
                             ({"host": "h", "max_waiting_per_ip": 0},
                              "max_waiting_per_ip"),
                             ({"host": "h", "speed": 1}, "speed")):
            with self.assertRaises(ValueError) as caught:
                self.configure(**section)
            self.assertIn(key, str(caught.exception))
