"""Eager TCP sends (xmppd.stream.eager), over real loopback sockets and the real reactor."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, protocol, reactor, ssl, tcp
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest

from tests.certs import make_self_signed
from xmppd.stream.eager import EagerClient, EagerServer, send_eagerly
from xmppd.stream.tls import server_context_factory


class Collector(protocol.Protocol):
    """The far end: collects bytes until it has ``expected`` of them."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = bytearray()
        self.done = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self.expected and not self.done.called:
            self.done.callback(bytes(self.received))


class EagerServerProtocol(protocol.Protocol):
    def connectionMade(self) -> None:
        self.switched = send_eagerly(self.transport)
        self.factory.connected.callback(self)


class EagerWritesTests(unittest.TestCase):
    @defer.inlineCallbacks
    def connect(self, expected: int):
        factory = protocol.Factory.forProtocol(EagerServerProtocol)
        factory.connected = defer.Deferred()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        collector = Collector(expected)
        client = yield protocol.ClientCreator(reactor, lambda: collector).connectTCP(
            "127.0.0.1", port.getHost().port)
        server = yield factory.connected
        self.addCleanup(client.transport.loseConnection)
        self.addCleanup(server.transport.loseConnection)
        return server, collector

    @defer.inlineCallbacks
    def test_a_small_write_leaves_at_once_without_waiting_for_writability(self):
        server, collector = yield self.connect(5)
        self.assertTrue(server.switched)
        self.assertIsInstance(server.transport, EagerServer)
        server.transport.write(b"hello")
        # Sent by the write itself: nothing queued, the reactor not asked to watch the socket.
        self.assertEqual(server.transport._tempDataBuffer, [])
        self.assertNotIn(server.transport, reactor.getWriters())
        self.assertEqual((yield collector.done), b"hello")

    @defer.inlineCallbacks
    def test_what_the_kernel_does_not_take_is_sent_later_in_order(self):
        chunk = bytes(range(256)) * 65536  # 16 MiB, more than a socket buffer takes at once
        server, collector = yield self.connect(3 * len(chunk))
        server.transport.write(chunk)
        self.assertIn(server.transport, reactor.getWriters())  # the rest waits for the reactor
        server.transport.write(chunk)
        server.transport.write(chunk)
        self.assertEqual((yield collector.done), chunk * 3)

    @defer.inlineCallbacks
    def test_what_was_written_before_lose_connection_arrives_and_nothing_after(self):
        server, collector = yield self.connect(3)
        server.transport.write(b"one")
        server.transport.loseConnection()
        server.transport.write(b"two")  # Twisted drops writes once disconnecting
        self.assertEqual((yield collector.done), b"one")


class TLSClient(Collector):
    """Collects what arrives; with ``starttls`` set, switches to TLS first."""

    starttls = False

    def connectionMade(self) -> None:
        if self.starttls:
            self.transport.startTLS(ssl.CertificateOptions(verify=False))


class StartTLSServerProtocol(protocol.Protocol):
    def connectionMade(self) -> None:
        send_eagerly(self.transport)
        self.transport.startTLS(self.factory.context)
        send_eagerly(self.transport.protocol)
        self.factory.connected.callback(self)


class EagerTLSTests(unittest.TestCase):
    """Under TLS, a write becomes a TLS record and leaves at once: no timer, no reactor turn."""

    def setUp(self) -> None:
        issued = make_self_signed(Path(self.mktemp()), "example.org")
        self.context = server_context_factory(issued.cert_path, issued.key_path)

    @defer.inlineCallbacks
    def exchange(self, server_protocol, wrap, starttls: bool):
        factory = protocol.Factory.forProtocol(server_protocol)
        factory.connected = defer.Deferred()
        factory.context = self.context
        port = reactor.listenTCP(0, wrap(factory), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        collector = TLSClient(5)
        collector.starttls = starttls
        client_factory = protocol.Factory.forProtocol(lambda: collector)
        if not starttls:
            client_factory = TLSMemoryBIOFactory(ssl.CertificateOptions(verify=False), True,
                                                 client_factory)
        yield protocol.ClientCreator(reactor, lambda: client_factory.buildProtocol(None)
                                     ).connectTCP("127.0.0.1", port.getHost().port)
        server = yield factory.connected
        self.addCleanup(server.transport.loseConnection)
        self.addCleanup(collector.transport.loseConnection)
        return server, collector

    @defer.inlineCallbacks
    def check_written_through(self, server, collector):
        timers_before = len(reactor.getDelayedCalls())
        server.transport.write(b"hello")
        self.assertEqual(len(reactor.getDelayedCalls()), timers_before)  # no flush scheduled
        self.assertEqual((yield collector.done), b"hello")

    @defer.inlineCallbacks
    def test_direct_tls(self):
        server, collector = yield self.exchange(
            EagerServerProtocol, lambda f: TLSMemoryBIOFactory(self.context, False, f), False)
        self.assertIsInstance(server.transport.transport, EagerServer)
        yield self.check_written_through(server, collector)

    @defer.inlineCallbacks
    def test_starttls(self):
        server, collector = yield self.exchange(StartTLSServerProtocol, lambda f: f, True)
        self.assertIsInstance(server.transport, EagerServer)
        yield self.check_written_through(server, collector)


def test_switching_finds_the_tcp_connection_under_wrappers():
    class Wrapper:
        def __init__(self, transport) -> None:
            self.transport = transport

    client = tcp.Client.__new__(tcp.Client)
    assert send_eagerly(Wrapper(Wrapper(client)))
    assert type(client) is EagerClient
    assert send_eagerly(client)  # already switched: still fine
    assert not send_eagerly(Wrapper(object()))
    assert not send_eagerly(None)
